"""benchmarks/gpu.py: the CPU smoke run (5 steps) and the GPU peak table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA GeForce RTX 4090", 165.0),
        ("Tesla P100-PCIE-16GB", 18.7),
        ("Some Future GPU", None),
    ],
)
def test_peak_table_matches_the_data_sheets(gpu_bench, name, peak):
    assert gpu_bench.peak_tflops(name) == peak


def test_smoke_runs_5_finite_steps_on_the_cpu_and_writes_json(gpu_bench, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_bench.main(["--smoke", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert (res["device"], res["arch"], res["steps"]) == ("CPU", "tiny", 5)
    assert res["step_flops"] > 1e9  # CoaT_ULSTM tiny, 2 x 5 frames at 32²: a few GFLOP
    rows = {r["variant"]: r for r in res["rows"]}
    assert set(rows) == {"published", "fp32"}
    for r in rows.values():
        assert r["finite"] is True and r["samples_s"] > 0 and r["mfu"] is None
    assert rows["published"]["vs_published"] == 1.0
    printed = capsys.readouterr().out
    assert "one step =" in printed and "published" in printed
