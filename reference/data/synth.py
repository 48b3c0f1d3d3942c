"""A synthetic ICRGW dataset in the Kaggle layout (``shakyo synth``).

The real data is 450 GB behind a Kaggle login; the demo, the tests and the
exercises need something that behaves like it in seconds. Each record is built
from a few smooth physical fields, so the ash image looks and trains like the
real one:

- a clear-sky surface (smooth brightness temperature, 275-300 K) under a water
  vapour field that sets the split-window difference B15 - B14 (about -0.6 to
  -2 K, the purple-blue of clear sky in ash colour);
- a low warm water-cloud layer and a high cold cirrus layer, each moving
  10-30 px per frame (at 256², scaled with the size) in its own direction, and
  slowly changing shape;
- contrails: 1-3 px wide, long, straight or gently curved streaks in the high
  layer, drifting with it, appearing and fading across the 8 frames. A
  contrail is a thin ice cloud: colder in B14 by a few K, B15 - B14 lower than
  clear sky (the 11-12 µm split-window signature of thin cirrus) and B14 - B11
  lower, so all three ash channels drop and it reads dark blue/black.
  (site: facts/data/#bands) gives this sign. Read as "positive 12.3 - 11.2 µm
  relative to clear sky", R = (B15 - B14 + 4) / 6 would make contrails *red*, not
  dark, so we follow the ash formula and the physics of thin cirrus: B14 - B15 > 0.
- R = 3-6 annotators per record who agree on the strong contrails up to a
  fraction of a pixel at the edges (half-width ± 0.2 px) and 1-2 px at the
  ends, and often miss the faint ones; ``human_pixel_masks`` is "more than half
  of them". The majority mask is well determined by the image: its global Dice
  against the drawn contrail footprint is about 0.93 (the best a model can do),
  so a small model trained on ~100 records can learn it.

Every record draws from its own generator, seeded by
``np.random.SeedSequence((seed, split, index))``, so the bytes depend only on
the seed, never on the number of workers or the order they finish in.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from reference.errors import ConfigError, DataError
from reference.utils import atomic_write_text, keep_heap_memory

SPLITS = ("train", "validation", "test")
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}
N_TIMES = 8
LABELLED = 4

# Generation knobs (keyword arguments of `synthesize`). Lengths in px are at 256²
# unless said otherwise; widths stay 1-3 px at every size, as in the real data.
DEFAULT_KNOBS: dict[str, object] = {
    "p_empty": 0.4,  # fraction of records drawn without any contrail
    "contrails_per_256": 5.0,  # mean contrails of a non-empty 256² record (scales with size)
    "length": (0.25, 0.8),  # contrail length as a fraction of the image side
    "width": (1.5, 3.0),  # full width in px (the labelled core is 1-3 px)
    "curvature": 0.15,  # max sagitta / length * 4 (0 = straight)
    "contrail_dt": (4.0, 8.0),  # K colder in B14 at full strength
    "contrail_split": (1.5, 3.0),  # K lower B15 - B14 at full strength
    "contrail_g": (1.5, 3.0),  # K lower B14 - B11 at full strength
    "faint_fraction": 0.08,  # share of contrails that are faint
    "faint_strength": (0.3, 0.55),  # strength of a faint contrail (strong ones: 0.85-1)
    "p_unlabelled_frame": 0.12,  # share of contrails absent in the labelled frame
    "drift": (10.0, 30.0),  # cloud-layer motion, px per frame at 256²
    "low_cover": (0.0, 0.5),  # low-cloud cover fraction range
    "high_cover": (0.0, 0.3),  # cirrus cover fraction range
    "annotators": (3, 6),  # R, inclusive
    "edge_jitter": 0.2,  # px: each annotator's half-width = true half-width ± this
    "end_jitter": 1.5,  # px: each annotator trims up to this much off each end
    "p_miss_strong": 0.03,  # chance that one annotator misses a strong contrail
    "p_miss_faint": 0.5,  # chance that one annotator misses a faint contrail
    "noise_k": 0.15,  # sensor noise, K (std)
}


# ----------------------------------------------------------------------------- fields


def _smooth_fields(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    cells: list[float],
    groups: tuple[int, ...] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """n independent smooth random fields: (h, w, n) float32, std ≈ 1 each.

    A sum of octaves of Gaussian noise on grids of ``cells`` px (larger =
    smoother; larger octaves weigh more), built on a coarse grid and upsampled
    bicubically once: the cost is one resize of the full field, whatever the
    number of octaves. ``groups`` (channel counts summing to n) returns a list of
    contiguous (h, w, g) arrays instead, the same values without a copy of the
    full-size field per group.
    """
    h, w = shape
    f = max(1.0, min(cells) / 2.5)  # coarse pixel size; the finest octave still has 2.5 px cells
    ch, cw = math.ceil(h / f) + 1, math.ceil(w / f) + 1
    coarse = np.zeros((ch, cw, n), np.float32)
    total = 0.0
    for c in cells:
        cc = c / f
        gh, gw = math.ceil(ch / cc) + 2, math.ceil(cw / cc) + 2
        low = rng.standard_normal((gh, gw, n), dtype=np.float32)
        up = cv2.resize(
            low, (int((gw - 1) * cc), int((gh - 1) * cc)), interpolation=cv2.INTER_CUBIC
        )
        weight = c**0.8
        coarse += np.float32(weight) * up.reshape(up.shape[0], up.shape[1], n)[:ch, :cw]
        total += weight**2
    coarse /= np.float32(math.sqrt(total))
    bounds = np.cumsum((0,) + (groups or (n,)))
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = coarse[..., a:b]
        if f == 1.0:
            parts.append(np.ascontiguousarray(part[:h, :w]))
            continue
        full = cv2.resize(
            np.ascontiguousarray(part),
            (math.ceil(cw * f), math.ceil(ch * f)),
            interpolation=cv2.INTER_CUBIC,
        )
        parts.append(full.reshape(full.shape[0], full.shape[1], b - a)[:h, :w])
    return parts if groups else parts[0]


def _cover_threshold(field: np.ndarray, fraction: float) -> float:
    """The value above which ``fraction`` of the field lies (quantile on a subsample)."""
    return float(np.quantile(field[::4, ::4], 1.0 - fraction))


def _soft_cover(
    field: np.ndarray, threshold: float, softness: float = 0.35, out: np.ndarray | None = None
) -> np.ndarray:
    """Smoothstep from the threshold up: 0 outside, -> 1 inside (cloud edges are soft).

    ``field`` is used as scratch space (pass a temporary); ``out`` receives the result.
    """
    x = field
    x -= np.float32(threshold)
    x /= np.float32(softness)
    np.clip(x, 0, 1, out=x)
    return np.multiply(x * x, 3 - 2 * x, out=out)


def _shift(canvas: np.ndarray, size: int, ox: float, oy: float) -> np.ndarray:
    """Crop a (size, size) window at float offset (ox, oy) of ``canvas`` (bilinear)."""
    m = np.array([[1, 0, ox], [0, 1, oy]], np.float32)
    return cv2.warpAffine(
        canvas,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )


# -------------------------------------------------------------------------- contrails


def _polyline_distance(
    pts: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from pixel centres to a polyline and the arc length of the nearest point.

    pts: (K+1, 2) vertices (x, y); x, y: (n,) pixel coordinates -> (d, s), each (n,).
    """
    a, b = pts[:-1], pts[1:]
    ab = b - a
    seg_len = np.sqrt((ab**2).sum(1))
    cum = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]]).astype(np.float32)
    px = x[:, None] - a[None, :, 0]
    py = y[:, None] - a[None, :, 1]
    t = np.clip((px * ab[:, 0] + py * ab[:, 1]) / np.maximum(seg_len**2, 1e-6), 0, 1)
    dx = px - t * ab[:, 0]
    dy = py - t * ab[:, 1]
    d2 = dx * dx + dy * dy
    k = d2.argmin(1)
    rows = np.arange(len(x))
    return np.sqrt(d2[rows, k]), cum[k] + t[rows, k] * seg_len[k]


def _contrail_geometry(rng: np.random.Generator, size: int, knobs: dict) -> dict:
    """One contrail in labelled-frame coordinates: vertices, width, strength, lifetime."""
    length = max(12.0, rng.uniform(*knobs["length"]) * size)
    cx, cy = rng.uniform(0.1, 0.9, 2) * size
    theta = rng.uniform(0, np.pi)
    d = np.array([np.cos(theta), np.sin(theta)])
    n = np.array([-d[1], d[0]])
    bend = rng.uniform(-1, 1) * knobs["curvature"] * length
    u = np.linspace(-0.5, 0.5, 9)[:, None]
    pts = np.array([cx, cy]) + u * length * d + (u**2 - 0.25) * bend * n
    faint = rng.random() < knobs["faint_fraction"]
    strength = rng.uniform(*knobs["faint_strength"]) if faint else rng.uniform(0.85, 1.0)
    # Lifetime: visible in frames birth .. death-1. Most contrails are there in
    # the labelled frame (born at least one frame earlier, so they are already
    # fully formed); a few are born after it or gone before it: not labelled.
    if rng.random() < knobs["p_unlabelled_frame"]:
        if rng.random() < 0.5:
            birth, death = int(rng.integers(5, 8)), 8
        else:
            birth, death = 0, int(rng.integers(2, 5))
    else:
        birth, death = int(rng.integers(0, 4)), int(rng.integers(6, 10))
    return {
        "pts": pts.astype(np.float32),
        "length": float(length),
        "half_width": rng.uniform(*knobs["width"]) / 2,
        "faint": bool(faint),
        "strength": float(strength),
        "birth": birth,
        "death": death,
    }


def _amplitude(c: dict, t: int) -> float:
    """Visibility of a contrail in frame t: faint when young, full, then fading."""
    if not c["birth"] <= t < c["death"]:
        return 0.0
    if t == c["birth"] and t > 0:
        return 0.6
    if t == c["death"] - 1 and c["death"] < N_TIMES:
        return 0.5
    return 1.0


def _render_patch(c: dict, canvas_size: int, margin: int) -> dict:
    """Distance and arc length of every canvas pixel near a contrail (its bounding box)."""
    pts = c["pts"] + np.float32(margin)
    pad = c["half_width"] + 2.5
    x0, y0 = np.floor(pts.min(0) - pad).astype(int).clip(0, canvas_size)
    x1, y1 = np.ceil(pts.max(0) + pad + 1).astype(int).clip(0, canvas_size)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d, s = _polyline_distance(pts, xx.ravel(), yy.ravel())
    shape = (y1 - y0, x1 - x0)
    return {"box": (slice(y0, y1), slice(x0, x1)), "d": d.reshape(shape), "s": s.reshape(shape)}


_BAND_NAMES = ("08", "09", "10", "11", "12", "13", "14", "15", "16")
_ROWS = 16  # rows per block of _radiances: 16 x 256 x 8 float32 = 128 KB per array


def _radiances(out, t_surf, d15, d11, wv, c_low, e, strength, noise, temps) -> None:
    """Brightness temperatures of a block of rows into ``out`` {'08' .. '16': (n, S, 8)}.

    Clear sky, under a low water cloud (B14 - B11 ≈ +2.5 K), under semi-transparent
    cirrus (emission of a cold ice layer plus the thin-ice split-window signature
    B15 < B14, largest at medium emissivity), minus the contrails (weaker through
    thick cirrus), plus sensor noise. t_surf, d15, d11, wv: (n, S); c_low, e (the
    cirrus emissivity), strength (the contrails): (n, S, 8); noise: three (n, S, 8)
    views; temps: (t_low, t_high, dT, split_k, g_k) float32 scalars.
    """
    f32 = np.float32
    t_low, t_high, dT, split_k, g_k = temps
    ts = t_surf[..., None]
    clear = 1 - c_low
    b14 = ts + (t_low - ts) * c_low
    b15 = b14 + d15[..., None] * clear
    b15 -= f32(0.5) * c_low
    b11 = b14 - d11[..., None] * clear
    b11 -= f32(2.5) * c_low
    b14 += (t_high - b14) * e
    b15 += (t_high - b15) * e
    b15 -= f32(3) * e * (1 - e)
    b11 += (t_high + f32(1) - b11) * e
    strength = strength * (1 - f32(0.5) * e)
    b14 -= dT * strength
    b15 -= (dT + split_k) * strength
    b11 -= (dT - g_k) * strength
    np.add(b14, noise[0], out=out["14"])
    np.add(b15, noise[1], out=out["15"])
    np.add(b11, noise[2], out=out["11"])
    b14, b11 = out["14"], out["11"]
    # The other bands are cheap plausible derivations: they complete the layout,
    # no model here reads them.
    np.add(wv[..., None], (t_high - wv[..., None]) * e, out=out["08"])
    np.add(out["08"], f32(7), out=out["09"])
    np.add(out["08"], f32(12), out=out["10"])
    np.add(f32(0.85) * b14, f32(24), out=out["12"])
    np.subtract(f32(1.25) * b14, f32(0.25) * b11, out=out["13"])
    np.add(f32(0.6) * b14, f32(0.4 * 222), out=out["16"])


def make_record(
    seed: int, split: str, index: int, size: int = 256, **knobs: object
) -> dict[str, np.ndarray]:
    """Generate one record: {'band_08' .. 'band_16': (size, size, 8) float32 kelvin,
    'human_pixel_masks': (size, size, 1) int32, 'human_individual_masks':
    (size, size, 1, R) int32} (masks only outside the test split; the
    individual masks only in train, as on Kaggle).
    """
    k = {**DEFAULT_KNOBS, **knobs}
    unknown = set(knobs) - set(DEFAULT_KNOBS)
    if unknown:
        raise ConfigError(
            f"unknown synth knob(s) {sorted(unknown)}; known: {sorted(DEFAULT_KNOBS)}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], index]))
    S = size
    scale = S / 256
    f32 = np.float32

    # Two cloud layers moving in clearly different directions.
    speed = rng.uniform(*k["drift"], 2) * scale
    a_low = rng.uniform(0, 2 * np.pi)
    a_high = a_low + rng.uniform(np.pi / 3, 5 * np.pi / 3)
    v_low = speed[0] * np.array([np.cos(a_low), np.sin(a_low)])
    v_high = speed[1] * np.array([np.cos(a_high), np.sin(a_high)])
    margin = int(math.ceil(speed.max() * LABELLED + 4))
    L = S + 2 * margin
    cells = [max(2.0, c * scale) for c in (96, 32, 10)]

    # Static clear sky: surface temperature, split-window and 8.4 µm differences,
    # upper-level water vapour (band 08). Then the moving layers: [shape,
    # evolution] of low and high clouds on a canvas larger than the image.
    sky = _smooth_fields(rng, 4, (S, S), cells[:2])
    t_surf = f32(rng.uniform(278, 298)) + f32(5) * sky[..., 0]
    d15 = np.clip(f32(-1.2) + f32(0.4) * sky[..., 1], -2.5, -0.3)
    d11 = f32(1.4) + f32(0.4) * sky[..., 2]
    wv = f32(rng.uniform(230, 242)) + f32(3) * sky[..., 3]
    low, high = _smooth_fields(rng, 4, (L, L), cells, groups=(2, 2))
    thr_low = _cover_threshold(low[..., 0], rng.uniform(*k["low_cover"]) + 1e-3)
    thr_high = _cover_threshold(high[..., 0], rng.uniform(*k["high_cover"]) + 1e-3)
    t_low = f32(rng.uniform(262, 282))
    t_high = f32(rng.uniform(215, 238))
    tau_high = rng.uniform(0.5, 2.5)

    # Contrails (labelled-frame image coordinates) and the per-record signature.
    n = (
        0
        if rng.random() < k["p_empty"]
        else 1 + rng.poisson(max(0.0, k["contrails_per_256"] * scale - 1))
    )
    contrails = [_contrail_geometry(rng, S, k) for _ in range(n)]
    patches = [_render_patch(c, L, margin) for c in contrails]
    dT, split_k, g_k = (
        f32(rng.uniform(*k[name])) for name in ("contrail_dt", "contrail_split", "contrail_g")
    )

    # Per frame: where each layer is (a shifted window of its canvas).
    c_low, e_high, strength = (np.zeros((S, S, N_TIMES), np.float32) for _ in range(3))
    for t in range(N_TIMES):
        dt = t - LABELLED
        lw = _shift(low, S, margin - v_low[0] * dt, margin - v_low[1] * dt)
        hw = _shift(high, S, margin - v_high[0] * dt, margin - v_high[1] * dt)
        evo = f32(0.25 * dt / LABELLED)
        _soft_cover(lw[..., 0] + evo * lw[..., 1], thr_low, out=c_low[..., t])
        # Cirrus edges are wispier than water-cloud edges.
        _soft_cover(hw[..., 0] + evo * hw[..., 1], thr_high, softness=0.8, out=e_high[..., t])
        visible = [(c, p, _amplitude(c, t)) for c, p in zip(contrails, patches)]
        visible = [v for v in visible if v[2] > 0]
        if visible:
            canvas = np.zeros((L, L), np.float32)
            for c, p, amp in visible:
                half = max(0.4, c["half_width"] + 0.08 * dt)  # contrails spread with age
                prof = np.clip(f32(half + 0.5) - p["d"], 0, 1) * f32(amp * c["strength"])
                np.maximum(canvas[p["box"]], prof, out=canvas[p["box"]])
            strength[..., t] = _shift(canvas, S, margin - v_high[0] * dt, margin - v_high[1] * dt)
    # Emissivity grows with the cirrus cover up to 1 - exp(-tau) of its thickest part.
    e = e_high
    e *= f32(1 - math.exp(-tau_high))
    # Sensor noise: uniform with the requested std (a Gaussian costs 3x more to draw);
    # one draw serves the three bands through reversed views (decorrelated pixels).
    noise = rng.random((S, S, N_TIMES), dtype=np.float32)
    noise -= f32(0.5)
    noise *= f32(k["noise_k"] * math.sqrt(12))
    bands = {b: np.empty((S, S, N_TIMES), np.float32) for b in _BAND_NAMES}
    # A block of rows at a time: the ~50 elementwise steps then run on arrays that
    # stay in the CPU cache instead of streaming 2 MB per step through memory.
    for r in range(0, S, _ROWS):
        rows = slice(r, r + _ROWS)
        _radiances(
            {b: v[rows] for b, v in bands.items()},
            t_surf[rows],
            d15[rows],
            d11[rows],
            wv[rows],
            c_low[rows],
            e[rows],
            strength[rows],
            (noise[rows], noise[::-1][rows], noise[:, ::-1][rows]),
            (t_low, t_high, dT, split_k, g_k),
        )

    record = {f"band_{b}": v for b, v in bands.items()}
    if split == "test":
        return record

    R = int(rng.integers(k["annotators"][0], k["annotators"][1] + 1))
    votes = np.zeros((R, L, L), np.uint8)
    for c, p in zip(contrails, patches):
        labelled = _amplitude(c, LABELLED) > 0
        p_miss = k["p_miss_faint"] if c["faint"] else k["p_miss_strong"]
        for i in range(R):
            # Draw every number even when unused, so one contrail's choices do not
            # shift the random stream of the next.
            miss = rng.random() < p_miss
            half = c["half_width"] + rng.uniform(-1, 1) * k["edge_jitter"]
            s0 = rng.uniform(0, k["end_jitter"])
            s1 = c["length"] - rng.uniform(0, k["end_jitter"])
            if labelled and not miss:
                votes[i][p["box"]] |= ((p["d"] < half) & (p["s"] >= s0) & (p["s"] <= s1)).astype(
                    np.uint8
                )
    individual = votes[:, margin : margin + S, margin : margin + S].transpose(1, 2, 0)[
        :, :, None, :
    ]
    record["human_pixel_masks"] = (individual.sum(-1) * 2 > R).astype(np.int32)
    if split == "train":
        record["human_individual_masks"] = np.ascontiguousarray(individual, dtype=np.int32)
    return record


# ---------------------------------------------------------------------------- writing


def record_ids(seed: int, split: str, n: int) -> list[str]:
    """Kaggle-like 19-digit numeric record ids, a pure function of (seed, split, index)."""
    ids = []
    for i in range(n):
        state = np.random.SeedSequence([seed, _SPLIT_CODE[split], i, 0x1D]).generate_state(
            2, np.uint64
        )
        ids.append(str(10**18 + int(state[0]) % (9 * 10**18)))
    return ids


def _save_npy(path: Path, arr: np.ndarray) -> None:
    # np.save(str) would append ".npy" to a temporary name; a file object keeps the name.
    with open(path, "wb") as f:
        np.save(f, arr)


def _write_record(task: tuple[str, str, str, int, int, int, dict]) -> tuple[str, int, int]:
    """Generate one record and move it into place in one rename (worker process).

    Returns (split, contrail pixels, pixels) of the labelled frame.
    """
    out, split, rid, index, seed, size, knobs = task
    record = make_record(seed, split, index, size, **knobs)
    split_dir = Path(out) / split
    final = split_dir / rid
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{rid}-", dir=split_dir))
    try:
        for name, arr in record.items():
            _save_npy(tmp / f"{name}.npy", arr)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700; records are ordinary shared folders
        if final.exists():  # a rerun with the same seed writes the same bytes
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mask = record.get("human_pixel_masks")
    return split, int(mask.sum()) if mask is not None else 0, size * size if mask is not None else 0


def _init_worker() -> None:
    # One OpenCV thread per worker process: the processes already fill the cores.
    cv2.setNumThreads(1)
    keep_heap_memory()  # no page faults for every NumPy temporary (40 % of the time)


def _metadata(seed: int, split: str, ids: list[str], size: int) -> str:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], 0x3E7A]))
    rows = []
    for rid in ids:
        rows.append(
            {
                "record_id": rid,
                "projection_wkt": "synthetic: shakyo synth (no map projection)",
                "row_min": float(rng.uniform(-4e6, 4e6)),
                "row_size": 2000.0 * 256 / size,
                "col_min": float(rng.uniform(-4e6, 4e6)),
                "col_size": 2000.0 * 256 / size,
                "timestamp": float(1.5535e9 + rng.uniform(0, 1.3e8)),
            }
        )
    return json.dumps(rows)


def synthesize(
    out: str | os.PathLike,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    size: int = 256,
    workers: int | None = None,
    progress: bool | None = None,
    **knobs: object,
) -> dict[str, float]:
    """Write a synthetic dataset in the Kaggle layout under ``out``.

    out/train/{id}/band_08.npy … band_16.npy (size, size, 8) float32 K,
    human_pixel_masks.npy (size, size, 1) int32, human_individual_masks.npy
    (size, size, 1, R) int32; out/validation/{id}/ the same without individual
    masks; out/test/{id}/ bands only; train_metadata.json,
    validation_metadata.json, sample_submission.csv. ``knobs`` override
    DEFAULT_KNOBS. Returns {'records', 'seconds', 'records_per_s',
    'contrail_fraction'}.
    """
    from tqdm import tqdm

    if size < 32 or size % 16:
        raise ConfigError(
            f"--size {size}: must be a multiple of 16, at least 32 (e.g. 64, 128, 256)"
        )
    if seed < 0 or min(n_train, n_val, n_test) < 0:
        raise ConfigError("--seed and the record counts must be >= 0")
    unknown = set(knobs) - set(DEFAULT_KNOBS)
    if unknown:
        raise ConfigError(
            f"unknown synth knob(s) {sorted(unknown)}; known: {sorted(DEFAULT_KNOBS)}"
        )
    out = Path(out)
    counts = {"train": n_train, "validation": n_val, "test": n_test}
    ids = {split: record_ids(seed, split, n) for split, n in counts.items()}
    all_ids = [r for split in SPLITS for r in ids[split]]
    if len(set(all_ids)) != len(all_ids):  # 1 in 10^18 per pair; refuse rather than overwrite
        raise ConfigError(f"--seed {seed}: two record ids collide; pick another seed")
    ours = {*SPLITS, "train_metadata.json", "validation_metadata.json", "sample_submission.csv"}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours) if out.is_dir() else []
    if foreign:
        raise DataError(
            f"{out}: holds {foreign[0]}"
            + (f" (+{len(foreign) - 1} more)" if len(foreign) > 1 else "")
            + ", which synth does not write; synthesize into an empty folder "
            "(or one holding this same dataset)"
        )
    # Checked before anything is created: a refused run leaves the folder as it was.
    for split in SPLITS:
        if not (out / split).is_dir():
            continue
        for p in (out / split).iterdir():
            if p.name.startswith(".tmp-"):
                # Left by an interrupted run (hidden, so never read as a record). Only
                # old ones are removed: a fresh one may belong to a run still writing.
                if time.time() - p.stat().st_mtime > 3600:
                    shutil.rmtree(p, ignore_errors=True)
            elif p.name not in ids[split]:
                raise DataError(
                    f"{out / split}: holds record {p.name} that this seed and count would not write; "
                    "synthesize into an empty folder"
                )

    try:
        for split in SPLITS:
            (out / split).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"{out}: cannot create the dataset folders ({e.strerror}); pick a writable --out"
        ) from None

    tasks = [
        (str(out), split, rid, i, seed, size, dict(knobs))
        for split in SPLITS
        for i, rid in enumerate(ids[split])
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    start = time.perf_counter()
    positive = total = 0
    # progress=None: a bar on a terminal only (logs and tests stay clean).
    bar = tqdm(
        total=len(tasks),
        desc="synth",
        unit="rec",
        disable=None if progress is None else not progress,
    )
    if workers == 1:
        results = map(_write_record, tasks)
        for _, pos, tot in results:
            positive, total = positive + pos, total + tot
            bar.update()
    else:
        import multiprocessing as mp

        # spawn, not fork: a forked child inherits OpenCV's thread-pool state without
        # its threads and can hang in its first cv2 call (seen under pytest).
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for _, pos, tot in pool.imap_unordered(_write_record, tasks, chunksize=2):
                positive, total = positive + pos, total + tot
                bar.update()
    bar.close()

    for split in ("train", "validation"):
        atomic_write_text(out / f"{split}_metadata.json", _metadata(seed, split, ids[split], size))
    atomic_write_text(
        out / "sample_submission.csv",
        "record_id,encoded_pixels\n" + "".join(f"{rid},-\n" for rid in ids["test"]),
    )
    seconds = time.perf_counter() - start
    return {
        "records": len(tasks),
        "seconds": seconds,
        "records_per_s": len(tasks) / max(seconds, 1e-9),
        "contrail_fraction": positive / max(total, 1),
    }


# -------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out", help="folder to write (created; must be empty or hold this same dataset)"
    )
    parser.add_argument("--train", type=int, default=96, help="train records (default 96)")
    parser.add_argument("--val", type=int, default=32, help="validation records (default 32)")
    parser.add_argument("--test", type=int, default=2, help="test records (default 2, like Kaggle)")
    parser.add_argument(
        "--seed", type=int, default=2023, help="the dataset is a function of this seed"
    )
    parser.add_argument("--size", type=int, default=256, help="image side in px (64, 128, 256)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")


def run(args: argparse.Namespace) -> int:
    keep_heap_memory()  # this process makes the records itself with --workers 1
    stats = synthesize(
        args.out, args.train, args.val, args.test, args.seed, args.size, args.workers
    )
    print(
        f"synth: wrote {stats['records']} records to {args.out} in {stats['seconds']:.1f} s "
        f"({stats['records_per_s']:.1f} records/s); "
        f"{100 * stats['contrail_fraction']:.2f}% contrail pixels in train+validation"
    )
    return 0
