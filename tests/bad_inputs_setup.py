"""The world the bad-input table (tests/test_bad_inputs.py) breaks, one piece per case.

:func:`build_base` makes, once per session, a folder holding everything a careless
user could point a command at: a tiny synthetic Kaggle dataset, its tiles, a run
folder (config.json, model.pth and a run checkpoint.pth), a train config, a valid
submission. Each case copies it, breaks one thing with a setup function below and
runs one command in the copy.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import numpy as np

TRAIN_CONFIG = {
    "PATH": "tiles",
    "OUT": "runs",
    "FNAME": "r",
    "MODEL": "CoaT_ULSTM",
    "ARCH": "tiny",
    "PRETRAINED": None,
    "EPOCHS": 1,
    "BS": 2,
    "NUM_WORKERS": 0,
    "DEVICE": "cpu",
    "PRECISION": "fp32",
}

# Root writes through chmod; /sys refuses even root. Elsewhere a 0555 folder does.
UNWRITABLE = "/sys" if os.geteuid() == 0 else "ro"


def build_base(base: Path) -> Path:
    import torch

    from reference.data.prepare import prepare
    from reference.data.synth import synthesize
    from reference.models import get_model
    from reference.submission import write_submission

    synthesize(base / "kaggle", 3, 2, 2, seed=0, size=64, workers=1, progress=False)
    prepare(base / "kaggle", base / "tiles", workers=1, progress=False)
    run = base / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**TRAIN_CONFIG, "FNAME": "run", "OUT": "."}))
    torch.manual_seed(0)
    sd = get_model("CoaT_ULSTM", arch="tiny").state_dict()
    torch.save(sd, run / "model.pth")
    # What reference.run_state writes: a model among optimizer and RNG states.
    torch.save(
        {"model": sd, "opt": {}, "epoch": 0, "train_iter": 1, "acc_count": 0,
         "rng": {"numpy": np.random.get_state()}},
        run / "checkpoint.pth",
    )  # fmt: skip
    (base / "cfg.json").write_text(json.dumps(TRAIN_CONFIG))
    test_ids = sorted(p.name for p in (base / "kaggle/test").iterdir())
    write_submission(base / "sub.csv", {rid: "" for rid in test_ids})
    (base / "afile").write_text("a plain file where a folder is expected\n")
    (base / "garbage.pth").write_bytes(b"not a checkpoint at all\n" * 10)
    (base / "impl_empty").mkdir()
    if UNWRITABLE == "ro":
        (base / "ro").mkdir(mode=0o555)
    return base


def tokens(root: Path) -> dict[str, str]:
    """Names a case's argv and expected text use: {TRAIN0} = the first train record, ..."""

    def first(folder: str, pattern: str = "*") -> str:
        return str(sorted((root / folder).glob(pattern))[0].relative_to(root))

    return {
        "TRAIN0": first("kaggle/train"),
        "VAL0": first("kaggle/validation"),
        "TEST0": first("kaggle/test"),
        "TILE0": first("tiles/train_adj2", "*_img.tif"),
        "MASK0": first("tiles/train_adj2", "*_mask.tif"),
        "UNWRITABLE": UNWRITABLE,
    }


def copy_world(base: Path, root: Path) -> None:
    """Copy the world for one case; the big read-only files (.pth, .npy) are hard links.

    Every setup below that changes such a file first unlinks it (:func:`_fresh`), so the
    base is never written through a link.
    """

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith((".pth", ".npy")):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(base, root, copy_function=link_or_copy)


def _fresh(path: Path) -> Path:
    """``path`` unlinked (a hard link to the base must not be written through)."""
    if path.is_file():
        path.unlink()
    return path


# ------------------------------------------------------------------ setups


def band(record: str, name: str, change) -> callable:
    """Setup: replace ``record/band_{name}.npy`` by ``change(array)`` (np.save)."""

    def setup(root: Path, tok: dict) -> None:
        path = root / record.format(**tok) / f"band_{name}.npy"
        arr = change(np.load(path))
        np.save(_fresh(path), arr)

    return setup


def npy(record: str, file: str, value) -> callable:
    """Setup: write the array ``value`` (or ``value(shape_source)``) as record/file."""

    def setup(root: Path, tok: dict) -> None:
        path = root / record.format(**tok) / file
        np.save(_fresh(path), value(path) if callable(value) else value)

    return setup


def write(rel: str, data: str | bytes) -> callable:
    def setup(root: Path, tok: dict) -> None:
        path = root / rel.format(**tok)
        path.parent.mkdir(parents=True, exist_ok=True)
        _fresh(path)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return setup


def truncate(rel: str, keep: float = 0.5) -> callable:
    def setup(root: Path, tok: dict) -> None:
        path = root / rel.format(**tok)
        data = path.read_bytes()
        _fresh(path).write_bytes(data[: int(len(data) * keep)])

    return setup


def remove(rel: str) -> callable:
    def setup(root: Path, tok: dict) -> None:
        path = root / rel.format(**tok)
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return setup


def mkdir(rel: str) -> callable:
    def setup(root: Path, tok: dict) -> None:
        (root / rel.format(**tok)).mkdir(parents=True, exist_ok=True)

    return setup


def copy(src: str, dst: str) -> callable:
    def setup(root: Path, tok: dict) -> None:
        d = root / dst.format(**tok)
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / src.format(**tok), d)

    return setup


def both(*setups) -> callable:
    def setup(root: Path, tok: dict):
        return [s(root, tok) for s in setups]

    return setup


def lock_prepare(rel: str) -> callable:
    """Setup: hold ``rel/.prepare.lock`` as a running prepare would (kept until the case ends)."""

    def setup(root: Path, tok: dict):
        folder = root / rel
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / ".prepare.lock", "w")  # noqa: SIM115 (held across the case)
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return f

    return setup


def tif(rel: str, shape: tuple[int, ...]) -> callable:
    def setup(root: Path, tok: dict) -> None:
        import tifffile

        tifffile.imwrite(_fresh(root / rel.format(**tok)), np.zeros(shape, np.uint8))

    return setup


def crop(a: np.ndarray) -> np.ndarray:
    return a[: a.shape[0] // 2]


def sides(n: int) -> callable:
    """Setup: every band of the first test record cut to n x n px."""

    def setup(root: Path, tok: dict) -> None:
        for f in (root / tok["TEST0"]).glob("*.npy"):
            arr = np.load(f)[:n, :n]
            np.save(_fresh(f), arr)

    return setup


def celsius(record: str) -> callable:
    def setup(root: Path, tok: dict) -> None:
        for f in (root / record.format(**tok)).glob("band_*.npy"):
            arr = np.load(f) - np.float32(273.15)
            np.save(_fresh(f), arr)

    return setup
