"""Reading weights: ImageNet encoder checkpoints (``pre=``) and full-model checkpoints.

Two entry points:

- :func:`load_encoder_weights` fills an encoder (timm CoaT, torchvision
  ResNet18) from an ImageNet checkpoint, non-strictly: the classifier head
  and other keys the encoder lacks are ignored and reported in one line.
- :func:`load_checkpoint` fills a whole model strictly from a file written by
  ``torch.save(model.state_dict(), path)`` (also with DataParallel's
  ``module.`` prefix, or fastai's ``{'model': ...}`` wrapper).

Every problem a user can cause (missing file, unreadable file, wrong model)
raises :class:`~reference.errors.WeightsError` with one line naming the file.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from reference.errors import WeightsError

__all__ = ["read_state_dict", "load_encoder_weights", "load_checkpoint", "EncoderLoadReport"]

_SHOW = 3  # how many key names an error or summary lists


def _first(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def reader_text(e: BaseException, limit: int = 120) -> str:
    """A reader's error as a short plain clause: no terminal escapes (torch colours its
    advice), its first line, cut at a word boundary with an ellipsis past ``limit``."""
    raw = _ESCAPE.sub("", str(e))
    # torch's weights-only refusal is a page of advice; the cause is after this tag.
    cause = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", raw, re.S)
    if cause:
        raw = "torch.load(weights_only=True) refused it: " + cause.group(1)
    text = " ".join(raw.split("\n")[0].split()) or type(e).__name__
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + " ..."


def _is_run_checkpoint(path: Path) -> bool:
    """Whether ``path`` is the checkpoint.pth of a run (reference.run_state), told from the
    key names in its pickle without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            data = z.read(name) if name else b""
    except (OSError, zipfile.BadZipFile):
        return False
    return b"train_iter" in data and b"acc_count" in data


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` onto the CPU.

    Accepts ``.safetensors`` files, and ``torch.save`` files holding a plain
    state dict or one wrapped as ``{'model': sd}`` (official CoaT, fastai) or
    ``{'state_dict': sd}``. A ``module.`` prefix on every key (nn.DataParallel)
    is removed.
    """
    path = Path(path)
    if path.is_dir():
        inside = path / "model.pth" if (path / "model.pth").is_file() else "the .pth file in it"
        raise WeightsError(f"{path}: is a folder, not a weights file; pass {inside}")
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file not found; check the path (or WEIGHTS/pre setting)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            # weights_only: a checkpoint is data; never run pickled code from a download.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any reader failure is the file's fault, not ours
        if _is_run_checkpoint(path):
            raise WeightsError(
                f"{path}: a run checkpoint of `shakyo train` (model, optimizer and RNG states), "
                f"not model weights; pass {path.parent / 'model.pth'} (the run's best model), "
                "or continue that run with RESUME true"
            ) from None
        raise WeightsError(
            f"{path}: cannot read weights ({reader_text(e)}); re-download or re-save the file"
        ) from None
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{path}: not a state dict (expected a mapping of names to tensors); "
            "save it with torch.save(model.state_dict(), path)"
        )
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _aliases(module: nn.Module) -> dict[str, list[str]]:
    """Every state_dict name -> all names of the same tensor.

    CoaT shares one position-encoding conv between the blocks of a stage, so one
    tensor has several names (cpe1.proj.weight = serial_blocks1.0.cpe.proj.weight).
    Files saved without duplicates (safetensors) hold one name; loading it fills all.
    """
    groups: dict[int, list[str]] = {}
    for k, v in module.state_dict(keep_vars=True).items():
        groups.setdefault(id(v), []).append(k)
    return {k: names for names in groups.values() for k in names}


@dataclass
class EncoderLoadReport:
    """What :func:`load_encoder_weights` did: loaded, ignored (in file only), missing (in encoder only)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = f"encoder weights {self.path}: loaded {len(self.loaded)} tensors"
        line += f"; ignored {len(self.ignored)}" + (
            f" ({_first(self.ignored)})" if self.ignored else ""
        )
        line += f"; missing {len(self.missing)}" + (
            f" ({_first(self.missing)})" if self.missing else ""
        )
        return line


def load_encoder_weights(
    enc: nn.Module, path: str | os.PathLike, verbose: bool = True
) -> EncoderLoadReport:
    """Load an ImageNet checkpoint into ``enc`` non-strictly and report what happened.

    Keys the encoder lacks (the classifier ``head.*``, ``norm4.*`` ...) are
    ignored. A file that fits no key at all, or a tensor of the wrong shape,
    is a :class:`WeightsError` (wrong architecture). Missing encoder keys
    leave those tensors at their random init and give a warning.
    A full-model checkpoint (keys under ``enc.``) is accepted too.
    """
    sd = read_state_dict(path)
    own = enc.state_dict()
    if not any(k in own for k in sd) and any(k.startswith("enc.") for k in sd):
        sd = {k[len("enc.") :]: v for k, v in sd.items() if k.startswith("enc.")}
    report = EncoderLoadReport(str(path))
    report.loaded = [k for k in sd if k in own]
    report.ignored = [k for k in sd if k not in own]
    aliases = _aliases(enc)
    report.missing = [k for k in own if not any(a in sd for a in aliases[k])]
    bad = [k for k in report.loaded if sd[k].shape != own[k].shape]
    if not report.loaded:
        raise WeightsError(
            f"{path}: no tensor matches the encoder (file keys: {_first(list(sd))}); "
            f"pass an ImageNet checkpoint of the right architecture"
        )
    if bad:
        shapes = ", ".join(
            f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in bad[:_SHOW]
        )
        raise WeightsError(
            f"{path}: {len(bad)} tensors have the wrong shape for this encoder ({shapes}); "
            "pick the checkpoint of the same arch"
        )
    enc.load_state_dict({k: sd[k] for k in report.loaded}, strict=False)
    if verbose:
        print(report.summary())
    if report.missing:
        warnings.warn(
            f"{path}: {len(report.missing)} encoder tensors keep their random init "
            f"({_first(report.missing)})",
            stacklevel=2,
        )
    return report


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a full-model checkpoint into ``model`` strictly; returns ``model``.

    Any missing key, unexpected key or shape mismatch is a WeightsError naming
    the file and the first offending keys (nothing is loaded in that case).
    """
    sd = read_state_dict(path)
    own = model.state_dict()
    aliases = _aliases(model)
    missing = [k for k in own if not any(a in sd for a in aliases[k])]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
        if bad:
            parts.append(
                f"{len(bad)} wrong shapes ("
                + ", ".join(
                    f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in bad[:_SHOW]
                )
                + ")"
            )
        raise WeightsError(
            f"{path}: does not fit {type(model).__name__}: "
            + "; ".join(parts)
            + "; check the model name and arch the checkpoint was trained with"
        )
    # Completeness was checked above, aliases included; strict would count an alias as missing.
    model.load_state_dict(sd, strict=False)
    return model
