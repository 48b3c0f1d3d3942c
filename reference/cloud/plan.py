"""A cloud plan: what to rent, what to train, where the data comes from and where the model goes.

A plan is a TOML file in ``configs/cloud/`` with six tables::

    [offer]    the Vast.ai offer query: GPU, VRAM, max $/h, reliability, download speed
    [instance] image, disk, max hours (the deadline), the margin kept for publishing
    [project]  the git repository and commit the instance installs
    [train]    the training config of this repository, its overrides, the seeds, encoder weights
    [data]     a Kaggle dataset of prepared tiles, or the competition (then `shakyo prepare` runs)
    [publish]  the Kaggle dataset that receives the model (and `<slug>-logs` for the logs)

Every mistake is one :class:`PlanError` line naming the file, the ``[table] key`` and
what to write instead; the CLI turns it into exit code 2. The training config and
its overrides are validated here with :func:`reference.config.load_config`, so a
typo fails before anything is rented.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference.errors import CloudError, ShakyoError
from reference.utils import read_user_text

__all__ = ["COMPETITION", "Plan", "PlanError", "load_plan", "FIELDS"]

COMPETITION = "google-research-identify-contrails-reduce-global-warming"


class PlanError(CloudError):
    """A plan file is missing, not TOML, or has an unknown key or a bad value."""


_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]{4,48}[a-z0-9]$")
_SHA256 = re.compile(r"^([0-9a-f]{64})?$")


def _positive(v: Any) -> str | None:
    return None if v > 0 and math.isfinite(v) else "a number > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 and math.isfinite(v) else "a number >= 0"


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "a number between 0 and 1"


def _dataset_ref(v: Any) -> str | None:
    ok = _SLUG.match(v) is not None
    return None if ok else '"owner/slug" with a slug of 6-50 lowercase letters, digits and -'


def _title(v: Any) -> str | None:
    return None if 6 <= len(v) <= 50 else "a title of 6 to 50 characters (Kaggle's rule)"


def _sha256(v: Any) -> str | None:
    return None if _SHA256.match(v) else '64 lowercase hex digits (`sha256sum FILE`), or ""'


def _seeds(v: Any) -> str | None:
    ok = v and all(isinstance(s, int) and not isinstance(s, bool) for s in v)
    return None if ok and len(set(v)) == len(v) else "a list of distinct integers, e.g. [2023]"


def _plain(v: Any) -> str | None:
    # These values are written into the on-start script: keep them to safe characters.
    return None if re.fullmatch(r"[A-Za-z0-9_.:/@+=,~-]*", v) else "letters, digits and _.:/@+=,~-"


@dataclass(frozen=True)
class Field:
    """One plan key: table, name, accepted TOML types, default (or required), check, example."""

    table: str
    name: str
    types: tuple[type, ...]
    default: Any
    example: str
    help: str
    check: Callable[[Any], str | None] | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False


_NUM = (int, float)
_R = True
FIELDS: list[Field] = [
    Field("offer", "gpu_name", (str,), "RTX_4090", 'gpu_name = "RTX_4090"', "GPU model as Vast names it (spaces as _)", _plain),
    Field("offer", "num_gpus", (int,), 1, "num_gpus = 1", "GPUs per instance", _positive),
    Field("offer", "min_gpu_ram_gb", _NUM, 24, "min_gpu_ram_gb = 24", "least VRAM per GPU in GB", _positive),
    Field("offer", "max_dph", _NUM, None, "max_dph = 0.6", "most dollars per hour, all included (Vast's dph_total)", _positive, required=_R),
    Field("offer", "min_reliability", _NUM, 0.98, "min_reliability = 0.98", "least host reliability (0-1)", _fraction),
    Field("offer", "min_inet_down_mbps", _NUM, 200, "min_inet_down_mbps = 200", "least download speed (the tiles are large)", _non_negative),
    Field("instance", "image", (str,), None, 'image = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"', "Docker image with Python >= 3.11, git and CUDA", _plain, required=_R),
    Field("instance", "disk_gb", _NUM, 100, "disk_gb = 100", "container disk in GB (data + venv + runs)", _positive),
    Field("instance", "max_hours", _NUM, None, "max_hours = 12", "the instance is destroyed this long after launch, finished or not", _positive, required=_R),
    Field("instance", "publish_margin_min", _NUM, 20, "publish_margin_min = 20", "minutes before the deadline when training stops to publish", _non_negative),
    Field("project", "repo", (str,), None, 'repo = "https://github.com/you/shakyo.git"', "git URL the instance clones (public, or with a read token you accept to share)", _plain, required=_R),
    Field("project", "ref", (str,), "HEAD", 'ref = "HEAD"', "commit, tag or branch; resolved to a commit at launch", _plain),
    Field("train", "config", (str,), None, 'config = "configs/coat_ulstm.json"', "training config, relative to the repository root", _plain, required=_R),
    Field("train", "overrides", (dict,), {}, "overrides = { EPOCHS = 12, BS = 4 }", "training config keys to override (PATH and OUT are set on the instance)"),
    Field("train", "seeds", (list,), None, "seeds = [2023]", "one run per seed (default: the config's SEED)", _seeds),
    Field("train", "weights", (str,), "", 'weights = "coat_lite_medium"', "`shakyo weights NAME --to weights` on the instance; \"\" = none", _plain),
    Field("data", "source", (str,), "dataset", 'source = "dataset"', "dataset (prepared tiles) or competition (raw records, then shakyo prepare)", choices=("dataset", "competition")),
    Field("data", "dataset", (str,), "", 'dataset = "you/icrgw-tiles"', "Kaggle dataset holding train_adj2/ and val_adj2/ (source = dataset)"),
    Field("data", "competition", (str,), COMPETITION, f'competition = "{COMPETITION}"', "Kaggle competition (source = competition)", _plain),
    Field("data", "sha256", (str,), "", 'sha256 = ""', "SHA-256 of the downloaded archive; \"\" = only the zip's own CRCs", _sha256),
    Field("data", "labels", (str,), "hard", 'labels = "hard"', "`shakyo prepare --labels` (source = competition)", choices=("hard", "soft")),
    Field("publish", "dataset", (str,), None, 'dataset = "you/coat-ulstm-12ep"', "private Kaggle dataset for the model (created on first use)", _dataset_ref, required=_R),
    Field("publish", "title", (str,), None, 'title = "CoaT-ULSTM 12 epochs"', "its title", _title, required=_R),
    Field("publish", "license", (str,), "CC0-1.0", 'license = "CC0-1.0"', "its licence name", _plain),
    Field("kernel", "slug", (str,), "", 'slug = "coat-ulstm-12ep-infer"', "inference notebook slug (default: the dataset slug + -infer)"),
    Field("kernel", "enable_gpu", (bool,), True, "enable_gpu = true", "run the notebook on a GPU"),
]  # fmt: skip
_BY_TABLE: dict[str, dict[str, Field]] = {}
for _f in FIELDS:
    _BY_TABLE.setdefault(_f.table, {})[_f.name] = _f


@dataclass(frozen=True)
class Plan:
    """A validated plan. ``values[table][key]``; helpers for the derived names.

    ``train_configs`` holds the validated training config of every seed (the
    overrides applied), as :func:`reference.config.load_config` returned it.
    """

    path: Path
    values: dict[str, dict[str, Any]]
    train_configs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The plan's name: its file stem (the state file and the instance label use it)."""
        return self.path.stem

    def __getitem__(self, table: str) -> dict[str, Any]:
        return self.values[table]

    @property
    def seeds(self) -> list[int]:
        return list(self.values["train"]["seeds"])

    @property
    def logs_dataset(self) -> str:
        """Where the logs (and, after a failure, the checkpoint) are published: `<dataset>-logs`."""
        owner, slug = self.values["publish"]["dataset"].split("/")
        return f"{owner}/{slug[:45]}-logs"

    @property
    def kernel_ref(self) -> str:
        owner, slug = self.values["publish"]["dataset"].split("/")
        return f"{owner}/{self.values['kernel']['slug'] or slug[:44] + '-infer'}"

    @property
    def owner(self) -> str:
        return self.values["publish"]["dataset"].split("/")[0]

    def max_cost(self, dph: float | None = None) -> float:
        """Upper bound in dollars: max_hours at `dph` (default: the plan's max_dph)."""
        return (dph if dph is not None else self["offer"]["max_dph"]) * self["instance"][
            "max_hours"
        ]

    def offer_query(self) -> str:
        """The vastai search query string for this plan (cheapest offers that fit)."""
        o, i = self["offer"], self["instance"]
        parts = [
            f"gpu_name={o['gpu_name']}",
            f"num_gpus={o['num_gpus']}",
            f"gpu_ram>={o['min_gpu_ram_gb']}",
            f"dph_total<={o['max_dph']}",
            f"reliability>={o['min_reliability']}",
            f"inet_down>={o['min_inet_down_mbps']}",
            f"disk_space>={i['disk_gb']}",
            "rentable=true",
        ]
        return " ".join(parts)


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             dict: "a table { KEY = value }", list: "a list [ ... ]"}  # fmt: skip
    return " or ".join(names[t] for t in types if not (t is int and float in types))


def _check(f: Field, value: Any, where: str) -> Any:
    ok = isinstance(value, f.types) and not (isinstance(value, bool) and bool not in f.types)
    if not ok:
        raise PlanError(
            f"{where}[{f.table}] {f.name} must be {_type_name(f.types)}, got {json.dumps(value, default=str)}; e.g. {f.example}"
        )
    if f.choices is not None and value not in f.choices:
        allowed = ", ".join(f'"{c}"' for c in f.choices)
        raise PlanError(
            f"{where}[{f.table}] {f.name} must be one of {allowed}, got {json.dumps(value)}"
        )
    if f.check is not None:
        need = f.check(value)
        if need:
            raise PlanError(
                f"{where}[{f.table}] {f.name} must be {need}, got {json.dumps(value)}; e.g. {f.example}"
            )
    return float(value) if float in f.types and not isinstance(value, bool) else value


def _unknown(table: str, key: str | None, where: str) -> PlanError:
    if key is None:
        guess = difflib.get_close_matches(table, _BY_TABLE, n=1)
        hint = f"did you mean [{guess[0]}]?" if guess else f"tables: {', '.join(_BY_TABLE)}"
        return PlanError(f"{where}unknown table [{table}]; {hint}")
    guess = difflib.get_close_matches(key, _BY_TABLE[table], n=1)
    hint = f"did you mean {guess[0]}?" if guess else f"keys: {', '.join(_BY_TABLE[table])}"
    return PlanError(f"{where}[{table}] unknown key {key}; {hint}")


def validate_plan(raw: dict[str, Any], path: Path, repo_root: Path | None = None) -> Plan:
    """Check every table and key of `raw` (a parsed TOML document), fill defaults, return a Plan.

    repo_root: where `[train] config` is looked up (default: the current directory).
    """
    where = f"{path}: "
    for table, body in raw.items():
        if table not in _BY_TABLE:
            raise _unknown(table, None, where)
        if not isinstance(body, dict):
            raise PlanError(f"{where}{table} must be a table: write [{table}] on its own line")
        for key in body:
            if key not in _BY_TABLE[table]:
                raise _unknown(table, key, where)
    values: dict[str, dict[str, Any]] = {}
    for f in FIELDS:
        given = raw.get(f.table, {})
        if f.name in given:
            value = _check(f, given[f.name], where)
        elif f.required:
            raise PlanError(
                f"{where}[{f.table}] {f.name} is missing; add it, e.g. {f.example}  # {f.help}"
            )
        else:
            value = json.loads(json.dumps(f.default))
        values.setdefault(f.table, {})[f.name] = value
    data = values["data"]
    if data["source"] == "dataset":
        if not data["dataset"]:
            raise PlanError(
                f'{where}[data] dataset is missing for source = "dataset"; e.g. dataset = "you/icrgw-tiles", or source = "competition"'
            )
        if need := _dataset_ref(data["dataset"]):
            raise PlanError(
                f"{where}[data] dataset must be {need}, got {json.dumps(data['dataset'])}"
            )
    if values["kernel"]["slug"] and not re.fullmatch(
        r"[a-z0-9][a-z0-9-]{4,48}[a-z0-9]", values["kernel"]["slug"]
    ):
        raise PlanError(
            f"{where}[kernel] slug must be 6-50 lowercase letters, digits and -, got {json.dumps(values['kernel']['slug'])}"
        )
    for key in ("PATH", "OUT", "RESUME", "SEED"):
        if key in values["train"]["overrides"]:
            what = (
                "[train] seeds"
                if key == "SEED"
                else "the bootstrap (the instance's data and run folders)"
            )
            raise PlanError(
                f"{where}[train] overrides must not set {key}: it is set by {what}; remove it"
            )
    configs = _train_configs(values, where, repo_root or Path.cwd())
    if values["train"]["seeds"] is None:
        values["train"]["seeds"] = [configs[0]["SEED"]]
        configs = _train_configs(values, where, repo_root or Path.cwd())
    return Plan(path, values, configs)


def _train_configs(values: dict, where: str, root: Path) -> list[dict[str, Any]]:
    from reference.config import load_config

    t = values["train"]
    cfg_path = root / t["config"]
    if not cfg_path.is_file():
        raise PlanError(
            f"{where}[train] config {t['config']} not found under {root}; e.g. {_BY_TABLE['train']['config'].example}"
        )
    seeds = t["seeds"] if t["seeds"] is not None else [None]
    out = []
    for seed in seeds:
        pairs = list(t["overrides"].items()) + ([("SEED", seed)] if seed is not None else [])
        try:
            out.append(dict(load_config(cfg_path, pairs)))
        except ShakyoError as e:
            raise PlanError(
                f"{where}[train] overrides: {str(e).removeprefix('override: ')}"
            ) from None
    if len(out) > 1 and len({c["FNAME"] for c in out}) == 1:
        # A config with a fixed FNAME (CoaT_ULSTM_medium_s2023): one run folder per seed.
        base = re.sub(r"_s\d+$", "", out[0]["FNAME"])
        for c in out:
            c["FNAME"] = f"{base}_s{c['SEED']}"
    return out


def load_plan(path: str | Path, repo_root: Path | None = None) -> Plan:
    """Read and validate a plan file; PlanError (one line) on any problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_user_text(path, "plan file", "configs/cloud/demo.toml", PlanError))
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"{path}: not valid TOML ({e})") from None
    return validate_plan(raw, path, repo_root)
