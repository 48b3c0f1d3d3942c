"""The training config: its keys, defaults, overrides and validation.

A config is a flat JSON object whose keys are those of the published
`train.py` (PATH, SEED, FOLD, BS, EPOCHS, NUM_WORKERS, LR_MAX, PCT_START, OUT,
FNAME, MODEL, WEIGHTS, LOSS_FUNC, METRIC; site: facts/training/#recipe) plus the reference's own
(ARCH, PRETRAINED, LABELS, PRECISION, RECIPE, ACC, RESUME, NAN_PATIENCE, IMPL,
DEVICE, TRACKER). `shakyo train CONFIG.json KEY VALUE ...` overrides keys from the
command line; each VALUE is parsed as JSON (`BS 4`, `PRETRAINED null`,
`RESUME true`) and kept as a plain string when it is not JSON (`ARCH mini`).
A dotted key (`A.B 1`) sets a field of a nested object.

Every mistake becomes one :class:`ConfigError` line that names the key and
what is allowed: an unknown key names the closest valid one (the published
README says `EPOCH` where the code reads `EPOCHS`), a wrong type or value
names the accepted ones. Relative paths (PATH, OUT, WEIGHTS, PRETRAINED) are
relative to the current directory, as in the published code.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.errors import ConfigError
from reference.utils import read_user_text

__all__ = ["KEYS", "Config", "load_config", "parse_overrides", "apply_override", "validate"]


@dataclass(frozen=True)
class Key:
    """One config key: accepted JSON types, default, allowed values and a one-line help."""

    name: str
    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None  # returns what is allowed, or None if ok
    nullable: bool = False


def _positive(v: Any) -> str | None:
    return None if v > 0 and math.isfinite(v) else "a number > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "an integer >= 0"


def _fraction(v: Any) -> str | None:
    return None if 0 < v < 1 else "a number strictly between 0 and 1"


def _device(v: Any) -> str | None:
    ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
    return None if ok else '"auto", "cpu", "cuda" or "cuda:N"'


def _impl(v: Any) -> str | None:
    if v in ("reference", "solutions", "exercises") or Path(v).is_dir():
        return None
    return "reference, solutions, exercises or an existing folder laid out like solutions/"


_NUM = (int, float)
_KEYS = [
    # --- keys of the published train.py -------------------------------------
    Key("PATH", (str,), "data/icrgw", "folder with the tiles made by `shakyo prepare` (train_adj2/, val_adj2/)"),
    Key("SEED", (int,), 2023, "seed of weights, shuffling and augmentation (set before the model is built)"),
    Key("FOLD", (int,), 0, "kept from the published config; the split is Kaggle's train/validation", nullable=True),
    Key("BS", (int,), 8, "batch size (train and validation)", check=_positive),
    Key("EPOCHS", (int,), 24, "number of epochs of the one-cycle schedule", check=_positive),
    # 2, not 0: with augmentation, 2 persistent workers served 1.06-7.6x the samples/s of the
    # main process alone on 512 samples (benchmarks/train_step.py, 2-core CPU, load 2-6).
    Key("NUM_WORKERS", (int,), 2, "DataLoader worker processes (0 = load in the main process)", check=_non_negative),
    Key("LR_MAX", _NUM, 3.5e-4, "peak learning rate of the one-cycle schedule", check=_positive),
    Key("PCT_START", _NUM, 0.1, "fraction of the whole run spent warming up", check=_fraction),
    Key("OUT", (str,), "out", "output folder; the run lives in OUT/FNAME"),
    Key("FNAME", (str,), None, "run name (default MODEL_ARCH_sSEED)", nullable=True),
    Key("MODEL", (str,), "CoaT_ULSTM", "model name in reference.models (e.g. CoaT_ULSTM, CoaT_U, CoaT_UT)"),
    Key("WEIGHTS", (str,), None, "whole-model checkpoint (state_dict) to start from", nullable=True),
    Key("LOSS_FUNC", (str,), "loss_comb", "loss function name in reference.losses"),
    Key("METRIC", (str,), "F_th", "metric name in reference.metrics"),
    # --- the reference's own keys -------------------------------------------
    Key("ARCH", (str,), "medium", "encoder size: tiny (tests), mini, small, medium"),
    Key("PRETRAINED", (str,), None, "ImageNet CoaT encoder checkpoint (`shakyo weights`)", nullable=True),
    Key("LABELS", (str,), None, "hard (majority mask) or soft (annotator mean); null = the recipe's",
        choices=("hard", "soft"), nullable=True),
    Key("PRECISION", (str,), None, "fp32, bf16 or fp16 (GradScaler); null = bf16 on a GPU that supports it, else fp32",
        choices=("fp32", "bf16", "fp16"), nullable=True),
    Key("RECIPE", (str,), "published", "published: eps 1e-8, wd 0, hard labels (what the code did); "
        "writeup: eps 1e-4, wd 0.01, soft labels (what the write-up says)", choices=("published", "writeup")),
    Key("ACC", (int,), None, "gradient accumulation target in samples; null = int(32/BS + 0.5)",
        check=_positive, nullable=True),
    Key("RESUME", (bool,), False, "continue OUT/FNAME/checkpoint.pth at the epoch where it stopped"),
    Key("NAN_PATIENCE", (int,), 20, "stop after this many consecutive non-finite steps", check=_positive),
    Key("IMPL", (str,), "reference", "whose model/loss/metric/optimizer to train: reference, solutions, "
        "exercises (your transcription) or a folder laid out like solutions/", check=_impl),
    Key("DEVICE", (str,), "auto", "auto (cuda if available), cpu, cuda or cuda:N", check=_device),
    Key("TRACKER", (str,), None, "experiment tracker: wandb (fastai's WandbCallback; WANDB_MODE=offline works "
        "without a network) or null", choices=("wandb",), nullable=True),
]  # fmt: skip
KEYS: dict[str, Key] = {k.name: k for k in _KEYS}

# The published README spells EPOCHS as EPOCH; difflib finds it anyway, the alias makes it certain.
_ALIASES = {"EPOCH": "EPOCHS", "LR": "LR_MAX", "BATCH_SIZE": "BS", "LOSS": "LOSS_FUNC"}


class Config(dict):
    """A validated config: a dict with every key of :data:`KEYS`, readable as attributes.

    `cfg.BS == cfg["BS"]`. It stays a plain dict for `json.dumps`.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def run_dir(self) -> Path:
        """OUT/FNAME, where the run writes config.json, model.pth, checkpoint.pth, *.csv."""
        return Path(self["OUT"]) / self["FNAME"]

    @property
    def n_acc(self) -> int:
        """Accumulation target in samples: ACC, or the published int(32/BS + 0.5) (site: facts/training/#accumulation)."""
        return self["ACC"] if self["ACC"] is not None else int(32 / self["BS"] + 0.5)

    @property
    def eps(self) -> float:
        # Published: fastai's partial(..., eps=1e-4) was discarded, so eps stayed 1e-8 (site: facts/training/#fastai-wrapper).
        return 1e-8 if self["RECIPE"] == "published" else 1e-4

    @property
    def weight_decay(self) -> float:
        # Published: Learner wd=None, so weight decay stayed 0; the write-up says 0.01 (site: facts/training/#fastai-wrapper).
        return 0.0 if self["RECIPE"] == "published" else 0.01


def _unknown(key: str, where: str) -> ConfigError:
    top = key.split(".")[0]
    guess = _ALIASES.get(top.upper()) or next(iter(difflib.get_close_matches(top, KEYS, n=1)), None)
    if guess is None:
        guess = next(iter(difflib.get_close_matches(top.upper(), KEYS, n=1, cutoff=0.5)), None)
    hint = f"; did you mean {guess}?" if guess else f"; valid keys: {', '.join(KEYS)}"
    return ConfigError(f"{where}unknown key {key}{hint}")


def _type_name(types: tuple[type, ...], nullable: bool) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    parts = [names[t] for t in types if not (t is int and float in types)]
    return " or ".join(parts + (["null"] if nullable else []))


def _check_value(key: Key, value: Any, where: str) -> Any:
    if value is None:
        if key.nullable:
            return None
        raise ConfigError(f"{where}{key.name} must be {_type_name(key.types, False)}, not null")
    # bool is a subclass of int in Python: `BS true` must not pass as 1.
    ok = isinstance(value, key.types) and not (isinstance(value, bool) and bool not in key.types)
    if not ok:
        raise ConfigError(
            f"{where}{key.name} must be {_type_name(key.types, key.nullable)}, got {json.dumps(value)}"
        )
    if key.choices is not None and value not in key.choices:
        allowed = ", ".join(str(c) for c in key.choices)
        raise ConfigError(f"{where}{key.name} must be one of {allowed}, got {json.dumps(value)}")
    if key.check is not None:
        need = key.check(value)
        if need:
            raise ConfigError(f"{where}{key.name} must be {need}, got {json.dumps(value)}")
    return float(value) if float in key.types else value


def validate(
    raw: dict[str, Any], source: str | None = None, overridden: frozenset[str] = frozenset()
) -> Config:
    """Check every key of `raw`, fill defaults and return a :class:`Config`.

    Raises ConfigError (one line) on an unknown key, a wrong type or a value
    outside the allowed ones. It names `source` (the config file) when given,
    except for the keys in `overridden`: their value came from the command line,
    so the line says "override" instead.
    """
    file_where = f"{source}: " if source else ""
    if not isinstance(raw, dict):
        raise ConfigError(f'{file_where}a config must be a JSON object {{"KEY": value, ...}}')
    for name in raw:
        if name not in KEYS:
            raise _unknown(name, file_where)
    cfg = Config()
    for name, key in KEYS.items():
        where = "override: " if name in overridden else file_where
        cfg[name] = _check_value(key, raw.get(name, key.default), where)
    if cfg["FNAME"] is None:
        cfg["FNAME"] = f"{cfg['MODEL']}_{cfg['ARCH']}_s{cfg['SEED']}"
    if "/" in cfg["FNAME"] or cfg["FNAME"] in ("", ".", ".."):
        where = "override: " if "FNAME" in overridden else file_where
        raise ConfigError(
            f"{where}FNAME must be a plain folder name, got {json.dumps(cfg['FNAME'])}"
        )
    if cfg["LABELS"] is None:
        cfg["LABELS"] = "hard" if cfg["RECIPE"] == "published" else "soft"
    return cfg


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """`["BS", "4", "ARCH", "mini"]` -> `[("BS", 4), ("ARCH", "mini")]`.

    Values are JSON (numbers, true/false, null, quoted strings, objects); a value
    that is not JSON is kept as the raw string.
    """
    if len(pairs) % 2:
        raise ConfigError(f"override {pairs[-1]} has no value; overrides come as KEY VALUE pairs")
    out = []
    for key, text in zip(pairs[::2], pairs[1::2]):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out.append((key, value))
    return out


def apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `raw[key] = value`; a dotted key `A.B` sets `raw["A"]["B"]` in a nested object."""
    parts = key.split(".")
    if parts[0] not in KEYS:
        raise _unknown(key, "override: ")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            path = ".".join(parts[: i + 1])
            raise ConfigError(
                f"override {key}: {path} is not an object, so it has no field {parts[i + 1]}"
            )
        node = child
    node[parts[-1]] = value


def load_config(
    path: str | Path | dict[str, Any] | None, overrides: list[str] | list[tuple[str, Any]] = ()
) -> Config:
    """Read a JSON config file (or take a dict), apply overrides, validate.

    overrides: raw CLI strings `["KEY", "VALUE", ...]` or parsed `(key, value)` pairs.
    """
    if path is None or isinstance(path, dict):
        raw, source = json.loads(json.dumps(path or {})), None
    else:
        source = str(path)
        try:
            raw = json.loads(read_user_text(path, "config file", "configs/demo.json", ConfigError))
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(f'{path}: a config must be a JSON object {{"KEY": value, ...}}')
    pairs = list(overrides)
    if pairs and isinstance(pairs[0], str):
        pairs = parse_overrides(pairs)  # type: ignore[arg-type]
    for key, value in pairs:
        apply_override(raw, key, value)
    return validate(raw, source, frozenset(k.split(".")[0] for k, _ in pairs))


def keys_table() -> str:
    """The config keys as a Markdown table (for the README and `shakyo train --help`)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for k in _KEYS:
        rows.append(f"| `{k.name}` | `{json.dumps(k.default)}` | {k.help} |")
    return "\n".join(rows)
