"""`shakyo diagnose nan-study`: the fp16 overflow of the random-init CoaT, on a CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reference.nan_study import FP16_MAX, format_study, nan_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    return nan_study("medium", size=32, seeds=1)


def test_stage_3_carries_the_largest_residual_stream_below_the_fp16_limit(study):
    (m,) = study.maxima
    assert FP16_MAX == 65504.0
    assert max(m) == m[2] and m[2] < FP16_MAX  # stage 3, finite headroom at init
    assert m[2] > 10 * m[0]  # the compounding position encoding: far above stage 1


def test_grown_encoder_overflows_in_fp16_at_the_stage_3_position_encoding(study):
    assert study.grown[2] > FP16_MAX  # in fp32 the grown stream passes the fp16 limit
    assert study.fp16_finite is False
    assert "forward at `enc.cpe3" in study.first_nonfinite
    assert study.bf16_finite and study.fp32_finite


def test_small_norm_encoder_stays_far_below_the_limit(study):
    assert max(study.small) < FP16_MAX / 10 and study.small_fp16_finite
    text = format_study(study)
    assert "OVERFLOWS" in text and "bfloat16 finite, float32 finite" in text


def test_bad_size_is_one_line_and_exit_2():
    p = subprocess.run(
        [sys.executable, "-m", "reference.cli", "diagnose", "nan-study", "--size", "30"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "shakyo diagnose: error: --size 30: the tile side must be a positive multiple of 16"
    ]
