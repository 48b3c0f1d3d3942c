"""TRACKER wandb: fastai's WandbCallback logs per-batch loss and lr, the epoch metrics, and the
threshold curve at the end; offline (WANDB_MODE=offline), no network, no key needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("wandb")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    from reference.data.prepare import prepare
    from reference.data.synth import synthesize

    base = tmp_path_factory.mktemp("track_data")
    synthesize(base / "raw", 4, 2, 0, seed=3, size=32, workers=1, progress=False)
    prepare(base / "raw", base / "tiles", workers=1, progress=False)
    return base / "tiles"


def _config(tiles: Path, out: Path, **kw) -> dict:
    cfg = {"PATH": str(tiles), "OUT": str(out), "FNAME": "tracked", "MODEL": "CoaT_ULSTM",
           "ARCH": "tiny", "BS": 2, "ACC": 2, "EPOCHS": 2, "NUM_WORKERS": 0, "LR_MAX": 1e-2,
           "SEED": 5, "DEVICE": "cpu", "PRECISION": "fp32", "TRACKER": "wandb"}  # fmt: skip
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def tracked(tiles, tmp_path_factory):
    """Train 2 epochs x 2 batches with TRACKER wandb offline; record every wandb.log call."""
    import wandb

    from reference.train import train

    out = tmp_path_factory.mktemp("track_runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.delenv("WANDB_API_KEY", raising=False)
    calls: list[dict] = []
    # wandb.init rebinds the module's `wandb.log` to the run's method: spy on the method.
    real_log = wandb.sdk.wandb_run.Run.log

    def spy(self, data, *args, **kwargs):
        calls.append(dict(data))
        return real_log(self, data, *args, **kwargs)

    mp.setattr(wandb.sdk.wandb_run.Run, "log", spy)
    try:
        result = train(_config(tiles, out))
    finally:
        mp.undo()
    return {"result": result, "calls": calls, "run_dir": out / "tracked"}


def test_every_training_batch_logs_loss_and_learning_rate(tracked):
    batches = [c for c in tracked["calls"] if "raw_loss" in c]
    assert len(batches) == 2 * 2  # 2 epochs x 2 training batches (4 tiles, BS 2)
    for c in batches:
        assert {"train_loss", "raw_loss", "lr_0", "mom_0", "epoch"} <= set(c)
    lrs = [c["lr_0"] for c in batches]
    assert len(set(lrs)) == 4  # the one-cycle schedule moves the lr every batch
    assert max(lrs) <= 1e-2 + 1e-12


def test_every_epoch_logs_valid_loss_and_f_th(tracked):
    epochs = [c for c in tracked["calls"] if "f_th" in c]
    history = tracked["result"]["history"]
    assert len(epochs) == len(history) == 2
    for logged, row in zip(epochs, history):
        assert logged["valid_loss"] == pytest.approx(row["valid_loss"], rel=1e-6)
        assert logged["f_th"] == pytest.approx(row["f_th"], rel=1e-6)


def test_the_threshold_curve_of_the_best_epoch_is_logged_at_the_end(tracked):
    import wandb

    last = tracked["calls"][-1]
    assert set(last) == {"threshold_curve"}
    plot = last["threshold_curve"]
    table = plot.table if hasattr(plot, "table") else plot._data_table  # wandb.plot.line object
    assert isinstance(table, wandb.Table) and table.columns == ["threshold", "dice"]
    assert [list(map(float, r)) for r in table.data] == tracked["result"]["curve"]
    assert len(table.data) == 80  # F_th's grid: 0.10 .. 0.89


def test_the_run_is_offline_under_the_run_dir_and_keeps_its_id(tracked):
    run_dir = tracked["run_dir"]
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    offline = list((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["TRACKER"] == "wandb"


def test_no_tracker_adds_no_callback(tiles, tmp_path):
    from fastai.callback.wandb import WandbCallback

    from reference.config import validate
    from reference.train import build_learner

    cfg = validate(_config(tiles, tmp_path, TRACKER=None))
    learn, _ = build_learner(cfg, cfg.run_dir)
    assert not any(isinstance(cb, WandbCallback) for cb in learn.cbs)
    assert not (cfg.run_dir / "wandb_id.txt").exists()


def test_fastai_config_formatting_keeps_plain_values():
    """fastai issue #4173: its config formatter raised TypeError on ints and strings."""
    import fastai.callback.wandb as fw

    from reference.tracking import _tolerate_plain_config_values

    _tolerate_plain_config_values()
    assert fw._format_config({"batch size": 4, "device": "cpu", "frozen": False, "xs": [1, "a"]}) == {
        "batch size": 4, "device": "cpu", "frozen": False, "xs": [1, "a"]}  # fmt: skip
