"""Run-length encoding of the submission: column-major, 1-indexed, exact round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reference.submission import parse_rle, rle_decode, rle_encode, rle_encode_less_memory


def _masks(min_side: int = 1, max_side: int = 12):
    shapes = st.tuples(st.integers(min_side, max_side), st.integers(min_side, max_side))
    return shapes.flatmap(lambda s: arrays(np.uint8, s, elements=st.integers(0, 1)))


def _reference_rle(mask: np.ndarray) -> str:
    """A slow, independent encoder: walk the pixels column by column in Python."""
    h, w = mask.shape
    pairs: list[int] = []
    index = 0
    run_start = None
    for x in range(w):
        for y in range(h):
            index += 1  # 1-indexed position in column-major order
            if mask[y, x] and run_start is None:
                run_start = index
            elif not mask[y, x] and run_start is not None:
                pairs += [run_start, index - run_start]
                run_start = None
    if run_start is not None:
        pairs += [run_start, index + 1 - run_start]
    return " ".join(map(str, pairs))


# Hand-derived: columns of [[0,1,1],[0,0,0],[1,0,0]] are (0,0,1), (1,0,0), (1,0,0)
# -> flat 0 0 1 1 0 0 1 0 0 -> runs at 3 (length 2) and 7 (length 1).
# Row-major order would give "2 2 7 1".
HAND_3X3 = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=np.uint8)
# (2, 3): columns (1,1), (0,1), (0,0) -> flat 1 1 0 1 0 0 -> "1 2 4 1";
# the published encoder zeroes pixel 1 -> 0 1 0 1 0 0 -> "2 1 4 1".
HAND_2X3 = np.array([[1, 0, 0], [1, 1, 0]], dtype=np.uint8)


def test_rle_is_column_major_on_a_hand_example():
    assert rle_encode(HAND_3X3) == "3 2 7 1"
    assert rle_encode_less_memory(HAND_3X3) == "3 2 7 1"


def test_rle_of_a_non_square_mask_uses_height_as_column_length():
    assert rle_encode(HAND_2X3) == "1 2 4 1"
    assert rle_encode_less_memory(HAND_2X3) == "2 1 4 1"
    np.testing.assert_array_equal(rle_decode("1 2 4 1", (2, 3)), HAND_2X3)


def test_rle_of_empty_and_full_masks():
    assert rle_encode(np.zeros((4, 5))) == ""
    assert rle_decode("", (4, 5)).sum() == 0
    assert rle_decode("-", (4, 5)).sum() == 0
    assert rle_encode(np.ones((4, 5))) == "1 20"
    # The published encoder drops both ends of a full mask.
    assert rle_encode_less_memory(np.ones((4, 5))) == "2 18"
    assert rle_encode_less_memory(np.ones((1, 1))) == ""


@pytest.mark.parametrize("corner", [(0, 0), (0, 6), (4, 0), (4, 6)])
def test_single_pixel_at_each_corner_round_trips(corner):
    mask = np.zeros((5, 7), dtype=np.uint8)
    mask[corner] = 1
    y, x = corner
    assert rle_encode(mask) == f"{x * 5 + y + 1} 1"
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_rle_encode_less_memory_does_not_modify_its_input():
    mask = np.ones((3, 3), dtype=np.uint8)
    rle_encode_less_memory(mask)
    assert mask.sum() == 9


@settings(max_examples=300, deadline=None)
@given(_masks())
def test_rle_round_trip(mask):
    rle = rle_encode(mask)
    assert rle == _reference_rle(mask)
    np.testing.assert_array_equal(rle_decode(rle, mask.shape), mask)


@settings(max_examples=300, deadline=None)
@given(_masks())
def test_rle_encode_less_memory_forces_first_and_last_pixel_to_zero(mask):
    forced = mask.copy()
    forced[0, 0] = 0  # first pixel in column-major order
    forced[-1, -1] = 0  # last pixel
    assert rle_encode_less_memory(mask) == rle_encode(forced)
    if mask[0, 0] == 0 and mask[-1, -1] == 0:
        assert rle_encode_less_memory(mask) == rle_encode(mask)


def test_bool_and_float_masks_encode_like_integer_masks():
    assert rle_encode(HAND_3X3.astype(bool)) == "3 2 7 1"
    assert rle_encode(HAND_3X3.astype(np.float32)) == "3 2 7 1"


@pytest.mark.parametrize(
    "rle, problem",
    [
        ("3", "odd number"),
        ("0 2", ">= 1"),
        ("3 0", "length 0"),
        ("-3 2", "not a positive integer"),
        ("3 x", "not a positive integer"),
        ("1.5 2", "not a positive integer"),
        ("5 2 1 1", "unsorted or overlaps"),
        ("1 3 3 1", "unsorted or overlaps"),
    ],
)
def test_parse_rle_rejects_malformed_strings(rle, problem):
    with pytest.raises(ValueError, match=problem):
        parse_rle(rle)


def test_rle_decode_rejects_a_run_past_the_last_pixel():
    assert rle_decode("9 1", (3, 3))[2, 2] == 1
    with pytest.raises(ValueError, match="> H\\*W = 9"):
        rle_decode("9 2", (3, 3))
