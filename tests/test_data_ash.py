"""Ash false colour and uint8 quantisation, against hand-computed values (FACTS §1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.data import get_false_color
from reference.data.ash import false_color_uint8, to_uint8


def _record(b11, b14, b15):
    return {
        "band_11": np.asarray(b11, np.float32),
        "band_14": np.asarray(b14, np.float32),
        "band_15": np.asarray(b15, np.float32),
    }


def test_ash_colour_hand_computed_pixel():
    # B15 - B14 = -1 -> R = 3/6; B14 - B11 = 2 -> G = 6/9; B14 = 273 -> B = 30/60.
    rec = _record(np.full((1, 1, 8), 271.0), np.full((1, 1, 8), 273.0), np.full((1, 1, 8), 272.0))
    img = get_false_color(rec)
    assert img.shape == (1, 1, 3)
    assert img.dtype == np.float32
    np.testing.assert_allclose(img[0, 0], [0.5, 2 / 3, 0.5], rtol=0, atol=1e-6)


def test_ash_colour_clips_each_channel_to_unit_range():
    # R: B15 - B14 = -10 -> -1 -> 0. G: B14 - B11 = 20 -> 24/9 -> 1. B: 320 K -> 77/60 -> 1.
    rec = _record(np.full((1, 1, 8), 300.0), np.full((1, 1, 8), 320.0), np.full((1, 1, 8), 310.0))
    np.testing.assert_array_equal(get_false_color(rec)[0, 0], [0.0, 1.0, 1.0])
    # B: 213 K -> -0.5 -> 0; R: B15 - B14 = +5 -> 1.5 -> 1.
    rec = _record(np.full((1, 1, 8), 213.0), np.full((1, 1, 8), 213.0), np.full((1, 1, 8), 218.0))
    np.testing.assert_allclose(get_false_color(rec)[0, 0], [1.0, 4 / 9, 0.0], atol=1e-6)


def test_full_returns_every_frame_and_default_is_frame_4():
    t = np.arange(8, dtype=np.float64)
    b14 = np.broadcast_to(250.0 + 6.0 * t, (2, 3, 8))  # B = (7 + 6t) / 60
    b15 = b14 - 1.0
    b11 = b14 - 2.0
    full = get_false_color(_record(b11, b14, b15), full=True)
    assert full.shape == (2, 3, 3, 8)
    assert full.dtype == np.float32
    np.testing.assert_allclose(full[1, 2, 2], (7 + 6 * t) / 60, atol=1e-6)
    np.testing.assert_allclose(full[0, 0, 0], np.full(8, 0.5), atol=1e-6)
    single = get_false_color(_record(b11, b14, b15))
    np.testing.assert_allclose(single[0, 0], [0.5, 6 / 9, 31 / 60], atol=1e-6)
    np.testing.assert_array_equal(
        get_false_color(_record(b11, b14, b15), N_TIMES_BEFORE=2), full[..., 2]
    )


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (0.0, 0),
        (0.5, 127),
        (0.9, 229),
        (0.999, 254),
        (1.0, 255),
        (-0.2, 0),
        (1.3, 255),
        (3 / 255, 3),
    ],
)
def test_to_uint8_truncates_not_rounds(v, expected):
    # 0.5 -> 127.5 -> 127 and 0.9 -> 229.5 -> 229: a cast, not a rounding.
    assert to_uint8(np.array([v], np.float32))[0] == expected


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    spread=st.sampled_from([0.5, 5.0, 40.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_fused_uint8_colour_equals_floor_of_get_false_color(seed, h, w, spread, dtype):
    """shakyo prepare writes false_color_uint8; it must be the same bytes as the
    readable to_uint8(get_false_color(full=True)), clipping included."""
    rng = np.random.default_rng(seed)
    b14 = rng.normal(270, spread * 2, (h, w, 8))
    rec = _record(
        b14 - rng.normal(2, spread, (h, w, 8)), b14, b14 + rng.normal(-1, spread, (h, w, 8))
    )
    rec = {k: v.astype(dtype) for k, v in rec.items()}
    want = to_uint8(get_false_color(rec, full=True))
    got = false_color_uint8(rec)
    assert got.dtype == np.uint8 and got.shape == (h, w, 3, 8)
    np.testing.assert_array_equal(got, want)
