"""Check of ``submission.py``: ``rle``."""

from __future__ import annotations

import numpy as np

from checks.ladder import SEEDS, Ladder
from reference import infer as ref_infer
from reference import submission as ref_submission

# (H, W), non-square: a row-major encoding gives other numbers.
_MASK_SHAPES = ((5, 4), (3, 7))


def _show(mask: np.ndarray) -> str:
    return "[" + " / ".join("".join(str(int(v)) for v in row) for row in mask) + "]"


def random_masks(seed: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """A random mask, one touching the first and last pixels, an empty and a full one."""
    rng = np.random.default_rng(seed)
    a = (rng.random(shape) < 0.4).astype(np.uint8)
    b = (rng.random(shape) < 0.6).astype(np.uint8)
    b[0, 0] = b[-1, -1] = b[1, 0] = b[-2, -1] = 1
    return [a, b, np.zeros(shape, np.uint8), np.ones(shape, np.uint8)]


def random_probs(seed: int) -> dict[str, np.ndarray]:
    """{record_id: (H, W) float32 probabilities}, some exactly at the threshold 0.5."""
    rng = np.random.default_rng(seed)
    probs = {}
    for i, shape in enumerate(_MASK_SHAPES):
        p = rng.random(shape).astype(np.float32)
        p[rng.random(shape) < 0.2] = 0.5
        probs[f"{1000 + 7 * i + seed}"] = p
    probs["empty"] = np.full(_MASK_SHAPES[0], 0.25, np.float32)
    return probs


def check_rle(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        mask = random_masks(0, _MASK_SHAPES[0])[0]
        what = f"rle_encode_less_memory(img), img (5, 4) uint8 {_show(mask)}"
        c.is_type(c.call(what, lambda: m.rle_encode_less_memory(mask.copy())), str, what)
        probs = random_probs(0)
        what = "masks_to_rles(probs, 0.5), probs {id: (H, W) float32}"
        got = c.call(what, lambda: m.masks_to_rles(probs, 0.5))
        c.is_type(got, dict, what)
        c.equal(sorted(got), sorted(probs), f"keys of {what}")

    with c.rung("values"):
        for seed in SEEDS:
            for shape in _MASK_SHAPES:
                for mask in random_masks(seed, shape):
                    for dtype in (np.uint8, bool):
                        img = mask.astype(dtype)
                        what = f"rle_encode_less_memory(img), img {shape} {np.dtype(dtype).name} {_show(mask)}"
                        expected = c.ref(
                            lambda img=img: ref_submission.rle_encode_less_memory(img.copy())
                        )
                        got = c.call_on_copies(
                            what, lambda **a: m.rle_encode_less_memory(a["img"]), img=img
                        )
                        c.equal(got, expected, what)
            probs = random_probs(seed)
            for threshold in (0.5, 0.3):
                what = f"masks_to_rles(probs, {threshold}), 3 records (seed {seed}), some p == 0.5"
                expected = c.ref(lambda p=probs, t=threshold: ref_infer.masks_to_rles(p, t))
                got = c.call_on_copies(
                    what, lambda t=threshold, **a: m.masks_to_rles(a["probs"], t), probs=probs
                )
                c.equal(got, expected, what)
