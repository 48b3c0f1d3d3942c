"""Run-length encoding and submission rows (site: facts/inference/#rle).

Exercise ``rle``.
"""

from __future__ import annotations

import numpy as np


def rle_encode_less_memory(img: np.ndarray) -> str:
    """Run-length encoding of a binary mask, as the published submission code writes it.

    img: (H, W) of 0/1 -> "start length start length ..." ('' for an empty mask).
    Pixels are numbered from 1 in column-major order (down the first column,
    then the next); the first and last pixel are forced to 0.
    """
    # BEGIN EXERCISE rle
    raise NotImplementedError("rle: write rle_encode_less_memory (shakyo hint rle)")
    # END EXERCISE rle


def masks_to_rles(probs: dict[str, np.ndarray], threshold: float) -> dict[str, str]:
    """{record_id: (H, W) probabilities} -> {record_id: RLE of p > threshold}."""
    # BEGIN EXERCISE rle
    raise NotImplementedError("rle: write masks_to_rles (shakyo hint rle)")
    # END EXERCISE rle
