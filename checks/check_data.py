"""Checks of ``data.py``: ``ash-false-color`` and ``tile-layout``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tifffile

from checks.ladder import SEEDS, Ladder
from reference.data import ash as ref_ash
from reference.data import prepare as ref_prepare

_N_TILES = 3  # tiles per folder (_write_tiles)
# (H, W, T): non-square, so a transposed result cannot pass.
_RECORD_SHAPES = ((6, 5, 8), (4, 7, 8))


def random_record(seed: int, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Bands 11, 14, 15 (float32 kelvin) whose combinations overshoot every bound,
    so that the clipping is exercised on both sides."""
    rng = np.random.default_rng(seed)
    b14 = rng.uniform(225.0, 320.0, shape).astype(np.float32)
    b15 = (b14 + rng.uniform(-6.0, 4.0, shape)).astype(np.float32)  # R bounds (-4, 2)
    b11 = (b14 - rng.uniform(-6.0, 7.0, shape)).astype(np.float32)  # G bounds (-4, 5)
    return {"band_11": b11, "band_14": b14, "band_15": b15}


def _reference_data():
    import reference.data as ref_data

    return ref_data


def check_ash_false_color(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        rec = random_record(0, _RECORD_SHAPES[0])
        for kw in ({"full": True}, {}):
            what = f"get_false_color(record{', full=True' if kw else ''}), bands (6, 5, 8) float32"
            expected = c.ref(lambda kw=kw: ref_ash.get_false_color(rec, **kw))
            got = c.call_on_copies(
                what, lambda kw=kw, **a: m.get_false_color(a["record_data"], **kw), record_data=rec
            )
            c.same_shape(got, expected, what)

    with c.rung("values"):
        for seed in SEEDS:
            data = np.random.default_rng(seed).uniform(-10, 320, (5, 3)).astype(np.float32)
            for bounds in ((-4.0, 2.0), (243.0, 303.0)):
                what = f"normalize_range(data, {bounds}), data (5, 3) float32 (seed {seed})"
                expected = c.ref(lambda d=data, b=bounds: ref_ash.normalize_range(d, b))
                got = c.call_on_copies(
                    what, lambda b=bounds, **a: m.normalize_range(a["data"], b), data=data
                )
                c.close(got, expected, "data", what)
            for shape in _RECORD_SHAPES:
                rec = random_record(seed, shape)
                for kw in ({"full": True}, {}, {"N_TIMES_BEFORE": 2}):
                    args = "".join(f", {k}={v}" for k, v in kw.items())
                    what = f"get_false_color(record{args}), bands {shape} float32 (seed {seed})"
                    expected = c.ref(lambda r=rec, kw=kw: ref_ash.get_false_color(r, **kw))
                    got = c.call_on_copies(
                        what,
                        lambda kw=kw, **a: m.get_false_color(a["record_data"], **kw),
                        record_data=rec,
                    )
                    c.close(got, expected, "data", what)


def _write_tiles(folder: Path, seed: int, hw: tuple[int, int], train: bool) -> list[str]:
    """Three tiles with ids in an order that string sorting changes; returns the ids."""
    rng = np.random.default_rng(seed)
    ids = ["b7", "a3", "a10"]  # _N_TILES
    for rid in ids:
        img = rng.integers(0, 256, (*hw, 24), dtype=np.uint8)
        mask = (rng.random(hw) < 0.3).astype(np.uint8) * 255
        # Samples last, one grey page, as `shakyo prepare` writes them.
        tifffile.imwrite(
            folder / f"{rid}_img.tif", img, photometric="minisblack", planarconfig="contig"
        )
        tifffile.imwrite(
            folder / f"{rid}_mask.tif", mask if train else mask[..., None], photometric="minisblack"
        )
    return ids


class _Tfms:
    """A deterministic stand-in for the albumentations pipeline: rolls image and mask
    together and inverts the image, which only gives the reference's result when it
    receives the (H, W, 15) uint8 image before scaling, as albumentations does
    (whenever it is given, for training and validation items alike, as the original)."""

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        image = np.roll(255 - np.asarray(image), 1, axis=1)
        mask = np.roll(np.asarray(mask), 1, axis=1)
        return {"image": np.ascontiguousarray(image), "mask": np.ascontiguousarray(mask)}


def check_tile_layout(c: Ladder) -> None:
    ref_data = _reference_data() if c.grader else None

    m = c.module
    with c.rung("shapes"):
        rec = random_record(0, _RECORD_SHAPES[0])
        what = "tile_image(record), bands (6, 5, 8) float32"
        expected = c.ref(lambda: ref_prepare.tile_image(rec))
        got = c.call_on_copies(what, lambda **a: m.tile_image(a["record_data"]), record_data=rec)
        c.same_shape(got, expected, what)

    with tempfile.TemporaryDirectory(prefix="shakyo-tiles-") as tmp:
        # Two data roots laid out as `shakyo prepare` writes them: the dataset appends
        # train_adj2 / val_adj2 itself, as the original does.
        roots = {}
        for i, (hw, train) in enumerate((((6, 5), True), ((4, 7), False))):
            root = Path(tmp) / f"data{i}"
            folder = root / ("train_adj2" if train else "val_adj2")
            folder.mkdir(parents=True)
            _write_tiles(folder, i, hw, train)
            roots[(hw, train)] = root

        with c.rung("shapes"):
            for (hw, train), root in roots.items():
                what = f"ContrailsDatasetV0(path, train={train})[0], tiles {hw} x 24 in path/{'train_adj2' if train else 'val_adj2'}"
                ds = c.call(what, lambda f=root, t=train: m.ContrailsDatasetV0(f, train=t))
                ref = c.ref(lambda f=root, t=train: ref_data.ContrailsDatasetV0(f, train=t))
                c.equal(
                    c.call(f"len({what[:-3]})", lambda ds=ds: len(ds)),
                    _N_TILES,
                    f"len of {what[:-3]}",
                )
                item = c.call(what, lambda ds=ds: ds[0])
                c.is_type(item, (tuple, list), what)
                c.equal(len(item), 2, f"number of values returned by {what} (image, mask)")
                ref_item = c.ref(lambda ref=ref: ref[0])
                c.same_shape(item[0], ref_item[0] if c.grader else None, f"image of {what}")
                c.same_shape(item[1], ref_item[1] if c.grader else None, f"mask of {what}")

        with c.rung("values"):
            for seed in SEEDS:
                rec = random_record(seed, _RECORD_SHAPES[1])
                what = f"tile_image(record), bands (4, 7, 8) float32 (seed {seed})"
                expected = c.ref(lambda r=rec: ref_prepare.tile_image(r))
                got = c.call_on_copies(
                    what, lambda **a: m.tile_image(a["record_data"]), record_data=rec
                )
                c.close(got, expected, "exact", what)
            for (hw, train), root in roots.items():
                for tfms, repeat in ((None, 1), (_Tfms(), 2)):
                    args = f"train={train}" + (", tfms=<roll + invert>, repeat=2" if tfms else "")
                    ds = c.call(
                        f"ContrailsDatasetV0(path, {args})",
                        lambda f=root, t=train, a=tfms, r=repeat: m.ContrailsDatasetV0(
                            f, train=t, tfms=a, repeat=r
                        ),
                    )
                    ref = c.ref(
                        lambda f=root, t=train, a=tfms, r=repeat: ref_data.ContrailsDatasetV0(
                            f, train=t, tfms=a, repeat=r
                        )
                    )
                    n = _N_TILES * repeat
                    what_len = f"len(ContrailsDatasetV0(path, {args})), 3 tiles"
                    c.equal(c.call(what_len, lambda ds=ds: len(ds)), n, what_len)
                    for idx in range(n):
                        what = f"ContrailsDatasetV0(path, {args})[{idx}], tiles {hw} x 24"
                        img, mask = c.call(what, lambda ds=ds, i=idx: tuple(ds[i])[:2])
                        ref_img, ref_mask = (
                            c.ref(lambda ref=ref, i=idx: ref[i]) if c.grader else (None, None)
                        )
                        c.close(img, ref_img, "data", f"image of {what}")
                        c.close(mask, ref_mask, "data", f"mask of {what}")
