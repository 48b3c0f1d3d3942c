"""`shakyo demo`: every stage runs and leaves its files; a rerun reuses the data.

The quality target (F_th >= 0.8 in about five minutes) is measured by running
`make demo`, not here: the smoke tests train one epoch on a handful of tiles,
and one slow test checks that the demo's setting learns in a short schedule.
"""

from __future__ import annotations

import json

import pytest

from reference.cli import main
from reference.demo import _synth, run_demo
from reference.submission import rle_decode

STAGES = ["synth", "prepare", "viz", "train", "evaluate", "predict", "check", "figures"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    lines: list[str] = []
    summary = run_demo(out, seed=7, quick=True, log=lines.append)
    return out, summary, lines


def test_summary_has_the_numbers_and_stage_times(demo):
    out, summary, _ = demo
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary, default=list))
    for key in ("f_th", "threshold", "seconds", "submission"):
        assert key in on_disk
    assert 0.0 <= on_disk["f_th"] <= 1.0
    assert 0.1 <= on_disk["threshold"] <= 0.89
    assert list(on_disk["stages"]) == STAGES
    assert all(s >= 0 for s in on_disk["stages"].values())
    assert on_disk["seconds"] >= sum(on_disk["stages"].values()) - 0.1
    # The training metric and the evaluation count the same predictions of the same weights.
    assert on_disk["dice"] == pytest.approx(on_disk["f_th"], abs=1e-9)


def test_every_stage_leaves_its_files(demo):
    out, summary, lines = demo
    assert [line.split()[1] for line in lines[:-1]] == STAGES
    assert lines[0].startswith("[1/8] synth") and lines[-1].startswith("demo: f_th")
    for name in ("record.png", "training_curves.png", "dice_curve.png", "predictions.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    run_dir = out / "runs" / "demo_s7"
    for name in ("model.pth", "history.csv", "config.json", "threshold.json", "dice_curve.csv"):
        assert (run_dir / name).is_file(), name
    rows = (out / "submission.csv").read_text().splitlines()
    assert rows[0] == "record_id,encoded_pixels"
    test_ids = sorted(p.name for p in (out / "data" / "test").iterdir())
    assert sorted(r.split(",")[0] for r in rows[1:]) == test_ids
    for row in rows[1:]:  # every mask decodes at the record's size
        rle = row.split(",")[1]
        assert rle_decode(rle, (64, 64)).shape == (64, 64)


def test_rerun_reuses_the_same_dataset_and_replaces_it_for_another_seed(demo):
    out, summary, _ = demo
    setting = {**summary["data"]}
    seed = setting.pop("seed")
    band = next((out / "data" / "train").iterdir()) / "band_14.npy"
    before = band.stat().st_mtime_ns
    assert _synth(out / "data", seed, setting).startswith("reused")
    assert band.stat().st_mtime_ns == before
    what = _synth(out / "data", seed + 1, setting)
    assert "records" in what and not band.exists()  # another seed: other record ids
    assert not (out / "tiles").exists()  # stale tiles of the old dataset are gone


def test_cli_rejects_a_negative_seed(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "o"), "--seed", "-1"])
    assert rc == 2
    assert "--seed -1" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_setting_learns_the_contrails_in_a_short_schedule(tmp_path):
    """The demo's data and optimizer setting leave the background plateau quickly.

    `make demo` (16 epochs, ~4 minutes) is where the F_th >= 0.8 target is
    measured; this guard trains the same setting for 6 epochs (144 steps, one
    cycle) through every stage. With the former setting (default synth data,
    LR_MAX 1e-3) F_th stayed near 0 for ~700 steps, so a regression in the model,
    loss, optimizer or Learner that slows learning shows up here as F_th < 0.5.
    """
    summary = run_demo(tmp_path / "out", seed=2023, overrides={"EPOCHS": 6}, log=lambda _: None)
    assert summary["f_th"] >= 0.5, summary["f_th"]
