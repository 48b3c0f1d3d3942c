"""`shakyo train` end to end on CPU: run dir, one-cycle per batch, determinism, exact resume
after kill -9, and the NaN guard.

Tiles are 32x32 (4 train, 2 validation records of the synthetic generator) and the
model is CoaT_ULSTM `tiny`: 2 training batches per epoch keep every run to seconds.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from reference.callbacks import BATCH_COLUMNS, HISTORY_COLUMNS
from reference.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
LR_MAX, PCT_START, EPOCHS2 = 1e-2, 0.3, 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU, 2 threads are over 10x slower for these sizes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiles(tmp_path_factory) -> Path:
    from reference.data.prepare import prepare
    from reference.data.synth import synthesize

    base = tmp_path_factory.mktemp("train_data")
    synthesize(base / "raw", 4, 2, 0, seed=7, size=32, workers=1, progress=False)
    prepare(base / "raw", base / "tiles", workers=1, progress=False)
    return base / "tiles"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


def config(tiles: Path, out: Path, fname: str, **kw) -> dict:
    cfg = {
        "PATH": str(tiles), "OUT": str(out), "FNAME": fname, "MODEL": "CoaT_ULSTM", "ARCH": "tiny",
        "BS": 2, "ACC": 2, "EPOCHS": EPOCHS2, "NUM_WORKERS": 0, "LR_MAX": LR_MAX,
        "PCT_START": PCT_START, "SEED": 11, "DEVICE": "cpu",
    }  # fmt: skip
    cfg.update(kw)
    return cfg


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def numbers(rows: list[list[str]], skip_time: bool = True) -> list[list[str]]:
    return [r[:-1] if skip_time else r for r in rows]


@pytest.fixture(scope="module")
def run_a(tiles, out):
    from reference.train import train

    return train(config(tiles, out, "a"))


def test_run_writes_the_run_dir_and_the_loss_falls(run_a):
    run_dir = Path(run_a["run_dir"])
    names = {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}
    assert {
        "config.json",
        "model.pth",
        "checkpoint.pth",
        "history.csv",
        "batches.csv",
        "summary.json",
    } <= names
    header, rows = read_csv(run_dir / "history.csv")
    assert header == HISTORY_COLUMNS == ["epoch", "train_loss", "valid_loss", "f_th", "time"]
    assert [int(r[0]) for r in rows] == [0, 1]
    train_loss = [float(r[1]) for r in rows]
    valid_loss = [float(r[2]) for r in rows]
    assert train_loss[1] < train_loss[0] and valid_loss[1] < valid_loss[0]
    assert [h["train_loss"] for h in run_a["history"]] == train_loss
    # The resolved config is what `shakyo predict` reads back to rebuild the model.
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["MODEL"], saved["ARCH"], saved["PRECISION"], saved["ACC"]) == (
        "CoaT_ULSTM",
        "tiny",
        "fp32",
        2,
    )
    # model.pth is the best epoch's plain state_dict and loads strictly.
    from reference.models import get_model, load_checkpoint

    load_checkpoint(get_model("CoaT_ULSTM", arch="tiny", pre=None), run_dir / "model.pth")
    best = max(range(2), key=lambda i: (float(rows[i][3]), -i))
    assert run_a["best_epoch"] == best and run_a["best_f_th"] == float(rows[best][3])


def test_train_loss_is_the_debiased_ema_of_the_raw_batch_losses(run_a):
    """FACTS §7: train_loss = EMA(β=0.98) of the raw losses, debiased, never reset."""
    header, rows = read_csv(Path(run_a["run_dir"]) / "batches.csv")
    assert header == BATCH_COLUMNS
    ema, ends = 0.0, {}
    for k, r in enumerate(rows, start=1):
        ema = 0.98 * ema + 0.02 * float(r[2])
        ends[int(r[0])] = ema / (1 - 0.98**k)
    for h in run_a["history"]:
        assert h["train_loss"] == pytest.approx(ends[h["epoch"]], rel=1e-5)


def one_cycle(pos: float, lr_max: float, pct: float) -> tuple[float, float]:
    """FACTS §7, written out independently: (lr, mom) at run position pos in [0, 1)."""
    if pos < pct:
        c = (1 - math.cos(math.pi * pos / pct)) / 2
        return lr_max / 25 + (lr_max - lr_max / 25) * c, 0.95 - 0.10 * c
    c = (1 - math.cos(math.pi * (pos - pct) / (1 - pct))) / 2
    return lr_max + (lr_max / 1e5 - lr_max) * c, 0.85 + 0.10 * c


def test_batches_csv_follows_the_one_cycle_formula(run_a):
    _, rows = read_csv(Path(run_a["run_dir"]) / "batches.csv")
    n_iter = 2  # 4 train tiles, BS 2, drop_last
    assert [(int(r[0]), int(r[1])) for r in rows] == [
        (e, i) for e in range(EPOCHS2) for i in range(n_iter)
    ]
    for r in rows:
        pos = (int(r[0]) * n_iter + int(r[1])) / (EPOCHS2 * n_iter)
        lr, mom = one_cycle(pos, LR_MAX, PCT_START)
        # fastai evaluates the schedule's breakpoints in float32.
        assert float(r[4]) == pytest.approx(lr, rel=1e-5) and float(r[5]) == pytest.approx(
            mom, rel=1e-5
        )
        # ACC 2 = BS: a step every batch, each with a finite pre-clip norm, never skipped.
        assert math.isfinite(float(r[6])) and float(r[7]) == 1.0 and r[8] == "0"


def test_same_seed_gives_the_same_table(run_a, tiles, out):
    from reference.train import train

    run_b = train(config(tiles, out, "b"))
    a_dir, b_dir = Path(run_a["run_dir"]), Path(run_b["run_dir"])
    assert numbers(read_csv(a_dir / "history.csv")[1]) == numbers(
        read_csv(b_dir / "history.csv")[1]
    )
    assert read_csv(a_dir / "batches.csv") == read_csv(b_dir / "batches.csv")


def _kill_during_epoch(cfg_path: Path, batches: Path, epoch: int, timeout: float = 420) -> str:
    # Same intra-op thread count as this process, so float reductions add up alike.
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference.cli", "train", str(cfg_path)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if batches.exists() and any(
                line.startswith(f"{epoch},") for line in batches.read_text().splitlines()
            ):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.time() >= deadline:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (
        f"run ended on its own ({proc.returncode}): {err.decode()[-2000:]}"
    )
    return err.decode()


def test_resume_after_kill_9_gives_the_uninterrupted_table(tiles, out, tmp_path):
    from reference.train import train

    full = train(config(tiles, out, "full", EPOCHS=3))
    cfg = config(tiles, out, "killed", EPOCHS=3)
    cfg_path = tmp_path / "killed.json"
    cfg_path.write_text(json.dumps(cfg))
    run_dir = out / "killed"
    _kill_during_epoch(cfg_path, run_dir / "batches.csv", epoch=1)
    # Killed inside epoch 1: the checkpoint is epoch 0's, the history has one row.
    ck = torch.load(run_dir / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert ck["epoch"] == 0 and len(read_csv(run_dir / "history.csv")[1]) == 1

    resumed = train(dict(cfg, RESUME=True))
    keys = ("epoch", "train_loss", "valid_loss", "f_th")
    assert [[h[k] for k in keys] for h in resumed["history"]] == [
        [h[k] for k in keys] for h in full["history"]
    ]
    assert numbers(read_csv(run_dir / "history.csv")[1]) == numbers(
        read_csv(out / "full" / "history.csv")[1]
    )
    # Per batch too: the killed epoch's partial rows were dropped and redone identically.
    assert read_csv(run_dir / "batches.csv") == read_csv(out / "full" / "batches.csv")
    assert (resumed["best_epoch"], resumed["best_f_th"]) == (full["best_epoch"], full["best_f_th"])


def test_resume_refuses_a_changed_recipe_and_a_finished_run_returns_its_history(run_a, tiles, out):
    from reference.train import train

    with pytest.raises(
        ConfigError,
        match=r"RESUME: .*checkpoint.pth was trained with LR_MAX 0.01, the config says 0.02",
    ):
        train(config(tiles, out, "a", RESUME=True, LR_MAX=2e-2))
    again = train(config(tiles, out, "a", RESUME=True))
    assert again["history"] == run_a["history"] and again["best_epoch"] == run_a["best_epoch"]


def test_missing_tiles_name_the_folder_and_the_prepare_command(tiles, tmp_path, capsys):
    from reference.cli import main
    from reference.config import validate
    from reference.train import tile_dirs

    cfg_path = tmp_path / "c.json"
    cfg_path.write_text(
        json.dumps({"PATH": str(tmp_path / "nowhere"), "ARCH": "tiny", "DEVICE": "cpu"})
    )
    assert main(["train", str(cfg_path), "OUT", json.dumps(str(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train_adj2 is missing" in err and "shakyo prepare" in err
    # Tiles prepared with hard labels do not pass for a soft-label run.
    with pytest.raises(DataError, match="holds hard labels but LABELS is soft.*--labels soft"):
        tile_dirs(validate({"PATH": str(tiles), "LABELS": "soft"}))


class Blowup(nn.Module):
    """Identity until switched on, then x * inf: a stand-in for an fp16 overflow."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * math.inf if self.on else x


class ExplodesInEpoch1(nn.Module):
    """CoaT_ULSTM tiny whose output becomes inf from the 3rd training forward on (epoch 1)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.blowup, self.calls = inner, Blowup(), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            self.blowup.on = self.blowup.on or self.calls >= 3
        return self.blowup(self.inner(x))


def test_nan_guard_names_the_module_skips_steps_and_stops(tiles, out, capsys):
    import reference.train as T

    comps = T.get_components()
    make = comps["get_model"]
    comps["get_model"] = lambda name, **kw: ExplodesInEpoch1(make(name, **kw))
    with pytest.raises(T.TrainingStopped) as e:
        T.train(config(tiles, out, "nan", EPOCHS=3, NAN_PATIENCE=2), components=comps)
    msg = str(e.value)
    assert "\n" not in msg and "2 consecutive non-finite steps (NAN_PATIENCE 2)" in msg
    assert "first non-finite value in forward at `blowup`" in msg
    # fp32 already: the advice is the learning rate and the encoder weights (FACTS §9).
    assert (
        "try a lower LR_MAX (now 0.01) or PRETRAINED encoder weights" in msg
        and "PRECISION" not in msg
    )
    err = capsys.readouterr().err
    assert "NaN guard: non-finite loss" in err and "at epoch 1 iter 0" in err
    # The guard ran nan_hunt once for the streak, not once per step.
    assert err.count("nan_hunt:") == 2  # the first-seen line and the stop line
    run_dir = out / "nan"
    _, rows = read_csv(run_dir / "batches.csv")
    assert [(r[0], r[1], r[8]) for r in rows] == [
        ("0", "0", "0"),
        ("0", "1", "0"),
        ("1", "0", "1"),
        ("1", "1", "1"),
    ]
    assert not math.isfinite(float(rows[2][2]))
    # Training stopped in epoch 1: history and checkpoint are epoch 0's, every weight finite.
    assert len(e.value.result["history"]) == 1
    ck = torch.load(run_dir / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert ck["epoch"] == 0
    for state in (ck["model"], torch.load(run_dir / "model.pth", map_location="cpu")):
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    assert json.loads((run_dir / "summary.json").read_text())["stopped"] == msg


def test_non_finite_weights_are_never_saved(tmp_path):
    from types import SimpleNamespace

    from reference.callbacks import BestModel

    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight[0, 0] = math.nan
    cb = BestModel(tmp_path / "model.pth")
    cb.learn = SimpleNamespace(
        model=model, metrics=[], recorder=SimpleNamespace(values=[[0.3, 0.2, 0.9]]), epoch=4
    )
    cb.best, cb.idx = -math.inf, 2
    cb.after_epoch()
    assert cb.refused == [4] and not (tmp_path / "model.pth").exists()
    with torch.no_grad():
        model.weight[0, 0] = 1.0
    cb.after_epoch()  # 0.9 is still better than -inf: now it is written
    assert (tmp_path / "model.pth").exists() and cb.best_epoch == 4


def test_workers_draw_their_own_augmentations_reproducibly(tiles, tmp_path):
    """With NUM_WORKERS > 0 every worker gets a copy of the same albumentations RNG; the
    reseed hook must make the workers' streams differ, and an epoch reseed must replay them."""
    import shutil

    from reference.callbacks import epoch_seed
    from reference.config import validate
    from reference.train import _dataloaders
    from reference.utils import seed_everything

    # 4 copies of one tile in both folders: two batches differ only by their augmentation.
    one = sorted((tiles / "train_adj2").glob("*_img.tif"))[0]
    for split in ("train_adj2", "val_adj2"):
        (tmp_path / split).mkdir()
        for k in range(4):
            shutil.copy(one, tmp_path / split / f"{k}_img.tif")
            shutil.copy(str(one).replace("_img", "_mask"), tmp_path / split / f"{k}_mask.tif")
    dls, aug = _dataloaders(
        validate({"PATH": str(tmp_path), "BS": 1, "NUM_WORKERS": 2}), torch.device("cpu")
    )

    def one_epoch() -> list[torch.Tensor]:
        s = epoch_seed(11, 0)  # what EpochSeed does at before_epoch
        seed_everything(s)
        dls.train.rng = __import__("random").Random(s)
        aug.set_random_seed(s)
        return [x for x, _ in dls.train]

    first, again = one_epoch(), one_epoch()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # Worker 0 makes batches 0 and 2, worker 1 batches 1 and 3: their first draws differ.
    assert not torch.equal(first[0], first[1])


def test_unfinished_exercises_and_cpu_mixed_precision_are_config_errors(tiles, out, tmp_path):
    from reference.errors import WeightsError
    from reference.train import train

    with pytest.raises(
        ConfigError, match="IMPL exercises: your code trains through the `shakyo train`"
    ):
        train(config(tiles, out, "impl", IMPL="exercises"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="PRECISION fp16 needs a CUDA GPU"):
            train(config(tiles, out, "fp16", PRECISION="fp16"))
    with pytest.raises(WeightsError):
        train(config(tiles, out, "weights", WEIGHTS=str(tmp_path / "missing.pth")))


def test_redirected_output_has_the_table_but_no_progress_bars(tiles, out, capsys):
    """stdout not a terminal (a log file, CI): fastai's table only, no bar updates."""
    from reference.train import train

    train(config(tiles, out, "nobar", EPOCHS=1))
    printed = capsys.readouterr().out
    assert "epoch     train_loss  valid_loss  f_th" in printed
    table_row = [ln for ln in printed.splitlines() if ln.strip().startswith("0 ")]
    assert len(table_row) == 1, printed
    assert "Epoch 1/1 :" not in printed  # the bar's prefix, written on every update
