"""The ash false-colour image (site: facts/data/#ash-colour), the input of every model.

Three brightness-temperature combinations, each normalised with fixed bounds::

    R = (B15 - B14 + 4) / 6      bounds (-4, 2) K    12.3 - 11.2 µm split window
    G = (B14 - B11 + 4) / 9      bounds (-4, 5) K    11.2 - 8.4 µm
    B = (B14 - 243) / 60         bounds (243, 303) K 11.2 µm temperature

stacked on axis 2 and clipped jointly to [0, 1]. Thin ice clouds (contrails)
are colder in B14 and have B15 - B14 below the clear-sky value, so they read
dark blue/black.
"""

from __future__ import annotations

import numpy as np

_TDIFF_BOUNDS = (-4.0, 2.0)
_CLOUD_TOP_TDIFF_BOUNDS = (-4.0, 5.0)
_T11_BOUNDS = (243.0, 303.0)


def normalize_range(data: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """(data - lo) / (hi - lo), same shape, computed in data's float dtype."""
    lo, hi = bounds
    return (data - data.dtype.type(lo)) / data.dtype.type(hi - lo)


def get_false_color(
    record: dict[str, np.ndarray], N_TIMES_BEFORE: int = 4, full: bool = False
) -> np.ndarray:
    """Ash colour of a record.

    record: dict with 'band_11', 'band_14', 'band_15', each (H, W, T) kelvin.
    Returns float32 in [0, 1]: (H, W, 3, T) = (H, W, colour, time) when ``full``,
    else (H, W, 3), the frame ``N_TIMES_BEFORE`` (the labelled frame, 4).

    Computed in float32 like the original (bands are float32 on disk), so the
    uint8 tiles built from it match the published ones bit for bit.
    """
    b11, b14, b15 = (np.asarray(record[f"band_{b}"], dtype=np.float32) for b in (11, 14, 15))
    r = normalize_range(b15 - b14, _TDIFF_BOUNDS)
    g = normalize_range(b14 - b11, _CLOUD_TOP_TDIFF_BOUNDS)
    b = normalize_range(b14, _T11_BOUNDS)
    false_color = np.clip(np.stack([r, g, b], axis=2), 0, 1)
    if full:
        return false_color
    return false_color[..., N_TIMES_BEFORE]


def to_uint8(v: np.ndarray) -> np.ndarray:
    """floor(255·v) as uint8 (site: facts/data/#tiles): clip to [0, 255], then truncate.

    v: any shape, float in [0, 1] -> same shape, uint8. Truncation, not
    rounding, is what the published preparation did (a cast of 255·v).
    """
    return np.clip(v * np.float32(255), 0, 255).astype(np.uint8)


def false_color_uint8(record: dict[str, np.ndarray]) -> np.ndarray:
    """``to_uint8(get_false_color(record, full=True))``, the same bytes, about 3x faster.

    Returns (H, W, 3, 8) uint8. Each colour is computed in one float32 scratch
    array with in-place operations in the same order as ``get_false_color``
    (difference, minus lo, divided by (hi - lo), clip to [0, 1], times 255) and
    cast straight into its slot, instead of stacking the three colours first
    (np.stack on axis 2 with 8-float rows was half of ``shakyo prepare``'s
    time). The second clip of ``to_uint8`` is a no-op after the first: 255·[0, 1]
    is inside [0, 255]. ``tests/test_data_ash.py`` pins the equality.
    """
    b11, b14, b15 = (np.asarray(record[f"band_{b}"], dtype=np.float32) for b in (11, 14, 15))
    out = np.empty(b14.shape[:2] + (3,) + b14.shape[2:], np.uint8)
    tmp = np.empty(b14.shape, np.float32)
    f32 = np.float32
    for c, (hi, lo, bounds) in enumerate(
        ((b15, b14, _TDIFF_BOUNDS), (b14, b11, _CLOUD_TOP_TDIFF_BOUNDS), (b14, None, _T11_BOUNDS))
    ):
        if lo is None:
            np.subtract(hi, f32(bounds[0]), out=tmp)
        else:
            np.subtract(hi, lo, out=tmp)
            tmp -= f32(bounds[0])
        tmp /= f32(bounds[1] - bounds[0])
        np.clip(tmp, 0, 1, out=tmp)
        tmp *= f32(255)
        np.copyto(out[:, :, c], tmp, casting="unsafe")
    return out
