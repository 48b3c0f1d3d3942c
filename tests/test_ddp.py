"""DDP on CPU: 2 gloo processes through fastai's distributed context (torchrun + accelerate).

Each run is a real launch of tests/ddp_worker.py (`reference.train.train` plus probes):
one process with BS 4 / ACC 4, and 2 ranks with BS 2 / ACC 2 (the same global batch and
the same steps, reference/distributed.py), on 8 training and 4 validation tiles of 32²
with CoaT_ULSTM tiny, 2 epochs of 2 steps. Augmentation is off in the worker (each rank
draws its own transforms, so only the augmentation-free runs can agree number for number).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from checks.tolerances import tolerance

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "ddp_worker.py"
DUMP_STEP = 3  # parameters compared after 3 optimizer steps (epoch 1, batch 0)


def _launch(cfg: dict, tmp: Path, name: str, ranks: int, *extra: str) -> Path:
    cfg_path, probes = tmp / f"{name}.json", tmp / f"probes_{name}"
    cfg_path.write_text(json.dumps(cfg))
    cmd = [sys.executable]
    if ranks > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    cmd += [str(WORKER), str(cfg_path), str(probes), "--dump-step", str(DUMP_STEP), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{name} failed:\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    return probes


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    from reference.data.prepare import prepare
    from reference.data.synth import synthesize

    tmp = tmp_path_factory.mktemp("ddp")
    synthesize(tmp / "raw", 8, 4, 0, seed=7, size=32, workers=1, progress=False)
    prepare(tmp / "raw", tmp / "tiles", workers=1, progress=False)
    base = {"PATH": str(tmp / "tiles"), "OUT": str(tmp / "runs"), "MODEL": "CoaT_ULSTM",
            "ARCH": "tiny", "EPOCHS": 2, "NUM_WORKERS": 0, "LR_MAX": 1e-2, "PCT_START": 0.3,
            "SEED": 11, "DEVICE": "cpu"}  # fmt: skip
    two = {**base, "BS": 2, "ACC": 2}
    return {
        "out": tmp / "runs",
        "one": _launch({**base, "FNAME": "one", "BS": 4, "ACC": 4}, tmp, "one", 1),
        "two": _launch({**two, "FNAME": "two"}, tmp, "two", 2),
        "cut": _launch({**two, "FNAME": "cut"}, tmp, "cut", 2, "--stop-after-epoch", "0"),
        "resumed": _launch({**two, "FNAME": "cut", "RESUME": True}, tmp, "resumed", 2),
    }


def _history(probes: Path, rank: int = 0) -> list[dict]:
    return json.loads((probes / f"result_rank{rank}.json").read_text())


def _numbers(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def _params(probes: Path, rank: int) -> torch.Tensor:
    return torch.load(probes / f"params_rank{rank}.pt", weights_only=True)


def test_ranks_hold_identical_parameters_after_k_steps(runs):
    p0, p1 = _params(runs["two"], 0), _params(runs["two"], 1)
    assert p0.numel() > 1_000_000  # the whole CoaT_ULSTM tiny, not an empty probe
    assert torch.equal(p0, p1)
    # Against one process with the doubled batch: the same steps up to the Lovász term,
    # computed per rank (measured: max |diff| 6.9e-6 after 3 steps).
    one = _params(runs["one"], 0)
    t = tolerance("model")
    assert torch.allclose(p0, one, atol=t.atol, rtol=t.rtol)
    assert not torch.equal(p0, one)  # the per-rank Lovász term is a real, small difference


def test_two_ranks_of_bs_b_give_the_table_of_one_process_with_bs_2b(runs):
    one, two = _history(runs["one"]), _history(runs["two"])
    assert [r["epoch"] for r in one] == [r["epoch"] for r in two] == [0, 1]
    t = tolerance("loss_table")
    for a, b in zip(one, two):
        for key in ("train_loss", "valid_loss", "f_th"):
            assert abs(a[key] - b[key]) <= t.atol + t.rtol * abs(a[key]), (key, a, b, str(t))
    assert _numbers(_history(runs["two"], 1)) == _numbers(two)  # rank 1 returns the same table


def test_only_rank_0_writes_the_run_files(runs):
    writes = {r: json.loads((runs["two"] / f"writes_rank{r}.json").read_text()) for r in (0, 1)}
    assert writes[1] == []
    written = {Path(w.split(" ", 1)[1]).name for w in writes[0] if w.startswith("os.rename")}
    for name in ("config.json", "model.pth", "checkpoint.pth", "history.csv", "summary.json"):
        assert name in written, (name, sorted(written))
    run = runs["out"] / "two"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["batches.csv", "checkpoint.pth", "config.json", "history.csv", "model.pth", "summary.json"]
    )


def test_resume_under_ddp_continues_exactly(runs):
    cut, resumed, full = _history(runs["cut"]), _history(runs["resumed"]), _history(runs["two"])
    assert [r["epoch"] for r in cut] == [0]
    assert _numbers(resumed) == _numbers(full)
    # Step 3 lies in epoch 1, which the resumed run trained from the checkpoint.
    assert torch.equal(_params(runs["resumed"], 0), _params(runs["two"], 0))
    assert torch.equal(_params(runs["resumed"], 1), _params(runs["two"], 0))
