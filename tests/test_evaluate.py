"""`shakyo evaluate`: Dice curve, best threshold and figures of a run folder.

The run folder is made here: a seeded tiny CoaT_ULSTM state_dict + config.json
over synthesized, prepared 64 x 64 validation tiles. Its numbers are checked
against a float64 Dice computed in this file from the same probabilities, and
against the training metric F_th fed the same logits.
"""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from reference.cli import main
from reference.data import ContrailsDatasetV0
from reference.data.prepare import prepare
from reference.data.synth import synthesize
from reference.evaluate import evaluate
from reference.metrics import F_th, dice_curve
from reference.models import get_model
from reference.utils import seed_everything

BS = 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    # Several contrails per record, so the Dice curve is not all zeros.
    synthesize(root / "data", 2, 7, 0, seed=5, size=64, workers=1, progress=False, p_empty=0.0)
    prepare(root / "data", root / "tiles", workers=1, progress=False)
    seed_everything(0)
    model = get_model("CoaT_ULSTM", arch="tiny")
    with torch.no_grad():
        # A random decoder outputs p ≈ 0.5 everywhere; a bias spreads the logits over the
        # threshold grid so that the curve has a real maximum inside it.
        model.final_conv[0].conv[-1].bias.fill_(-0.3)
    run = root / "run"
    run.mkdir()
    torch.save(model.state_dict(), run / "model.pth")
    config = {"PATH": str(root / "tiles"), "MODEL": "CoaT_ULSTM", "ARCH": "tiny", "BS": BS}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def result(run_dir):
    return evaluate(run_dir, progress=False)


def _logits_and_targets(run_dir):
    """Logits (N, 1, H, W) and targets (N, 1, H, W) of the validation tiles, batch by batch."""
    model = get_model("CoaT_ULSTM", arch="tiny")
    model.load_state_dict(torch.load(run_dir / "model.pth"))
    model.eval()
    cfg = json.loads((run_dir / "config.json").read_text())
    ds = ContrailsDatasetV0(cfg["PATH"], train=False)
    logits, targets = [], []
    with torch.no_grad():
        for i in range(0, len(ds), BS):
            x, y = zip(*(ds[j] for j in range(i, min(i + BS, len(ds)))))
            logits.append(model(torch.stack(x)))
            targets.append(torch.stack(y))
    return logits, targets


def _float64_dice(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """FACTS §5 written out: p > th strictly (th as float32, the dtype of p), global counts."""
    t = targets.reshape(-1) > 0.5
    p = probs.reshape(-1)
    out = []
    for th in thresholds:
        pred = p > np.float32(th)
        tp = float(np.sum(pred & t))
        fp = float(np.sum(pred & ~t))
        fn = float(np.sum(~pred & t))
        out.append(2 * tp / (2 * tp + fn + fp + 1e-6))
    return np.array(out)


def test_evaluate_matches_independent_dice_and_f_th(run_dir, result):
    logits, targets = _logits_and_targets(run_dir)
    probs = torch.sigmoid(torch.cat(logits)).numpy()
    y = torch.cat(targets).numpy()
    ths = np.arange(0.1, 0.9, 0.01)

    expected = _float64_dice(probs, y, ths)
    assert 0.0 < expected.max() < 1.0  # the setting gives a curve worth comparing
    assert np.argmax(expected) not in (0, len(ths) - 1)  # maximum inside the grid
    np.testing.assert_allclose(result["curve"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dice_curve(probs, y, ths), expected, rtol=0, atol=1e-12)
    assert result["dice"] == pytest.approx(expected.max(), abs=1e-12)
    assert result["threshold"] == pytest.approx(ths[np.argmax(expected)], abs=1e-9)

    # The training metric, fed the same logits batch by batch, reports the same numbers.
    metric = F_th()
    metric.reset()
    for pred, target in zip(logits, targets):
        metric.accumulate(SimpleNamespace(pred=pred, y=target))
    assert metric.value == pytest.approx(result["dice"], abs=1e-12)
    assert metric.best_threshold == pytest.approx(result["threshold"], abs=1e-9)
    assert result["n_tiles"] == 7


def test_evaluate_writes_csv_json_and_figures(run_dir, result):
    with open(run_dir / "dice_curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 80
    assert rows[0]["threshold"] == "0.10" and rows[-1]["threshold"] == "0.89"
    np.testing.assert_array_equal([float(r["dice"]) for r in rows], result["curve"])
    best = json.loads((run_dir / "threshold.json").read_text())
    assert best["threshold"] == result["threshold"] and best["dice"] == result["dice"]
    i = int(np.argmax(result["curve"]))
    assert float(rows[i]["threshold"]) == best["threshold"]
    for name in ("dice_curve.png", "predictions.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_prints_threshold_and_accepts_data_folder(run_dir, capsys):
    cfg = json.loads((run_dir / "config.json").read_text())
    rc = main(["evaluate", str(run_dir), "--data", f"{cfg['PATH']}/val_adj2", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    best = json.loads((run_dir / "threshold.json").read_text())
    assert f"best threshold {best['threshold']:.2f}: global Dice {best['dice']:.4f}" in out
    assert "on 7 validation tiles" in out


def test_cli_bad_run_dir_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["evaluate", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "config.json" in err and "shakyo train" in err
    (tmp_path / "config.json").write_text(
        json.dumps({"MODEL": "CoaT_ULSTM", "PATH": str(tmp_path)})
    )
    rc = main(["evaluate", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "val_adj2" in err and "shakyo prepare" in err
