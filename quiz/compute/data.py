"""Data questions: where the reference puts a colour and a frame, what ash value it computes.

The channel questions trace values through the reference's own code: a probe
record whose 24 (colour, frame) ash values are all different goes through
``reference.data.prepare.tile_image`` (the 24-channel tile), and that tile,
written as a tif, through ``reference.data.ContrailsDatasetV0`` with a
transform that records the (H, W, 15) array the augmentation receives. Where
each value lands answers the question.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import numpy as np

from quiz.compute import Result

COLOURS = ("R", "G", "B")


def _probe_record(n_frames: int = 8) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Bands (1, 1, T) whose ash value of (colour c, frame t) is (3t + c + 1) / 26, all distinct.

    Returns the record and the uint8 value the tile should hold for each (c, t).
    """
    from reference.data.ash import get_false_color, to_uint8

    v = np.array([[(3 * t + c + 1) / 26 for t in range(n_frames)] for c in range(3)])
    b14 = 243 + 60 * v[2]
    b15 = b14 - 4 + 6 * v[0]
    b11 = b14 + 4 - 9 * v[1]
    record = {
        f"band_{b}": a.reshape(1, 1, n_frames).astype(np.float32)
        for b, a in ((11, b11), (14, b14), (15, b15))
    }
    expected = to_uint8(get_false_color(record, full=True))[0, 0]  # (3, T)
    assert len(set(expected.ravel().tolist())) == expected.size, "probe values collide"
    return record, expected


def tile_channel(params: dict, what: str = "channel") -> Result:
    """Channel of (colour, frame) in the 24-channel tile, or (what="frame"/"colour") the
    frame / colour that tile ``channel`` holds."""
    from reference.data.prepare import tile_image

    record, expected = _probe_record()
    tile = tile_image(record)[0, 0]  # (24,)
    where = {
        (c, t): int(np.flatnonzero(tile == expected[c, t])[0]) for c in range(3) for t in range(8)
    }
    facts = {"n_channels": tile.size}
    if what == "channel":
        c, t = int(params["colour"]), int(params["frame"])
        facts.update(colour_name=COLOURS[c])
        return Result(where[(c, t)], facts)
    (c, t), = (ct for ct, j in where.items() if j == int(params["channel"]))  # fmt: skip
    facts.update(colour_name=COLOURS[c], frame=t)
    return Result(t if what == "frame" else c, facts)


def item_channel(params: dict) -> Result:
    """Channel of (colour, frame) in the (H, W, 15) array the dataset's augmentation gets."""
    import tifffile

    from reference.data import ContrailsDatasetV0
    from reference.data.prepare import tile_image

    record, expected = _probe_record()
    seen = {}

    def probe(image, mask):
        seen["image"] = image
        return {"image": image, "mask": mask}

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "train_adj2"
        folder.mkdir()
        tifffile.imwrite(
            folder / "probe_img.tif", np.repeat(np.repeat(tile_image(record), 2, 0), 2, 1)
        )
        tifffile.imwrite(folder / "probe_mask.tif", np.zeros((2, 2), np.uint8))
        item, mask = ContrailsDatasetV0(d, train=True, tfms=probe)[0]
    c, t = int(params["colour"]), int(params["frame"])
    image = seen["image"][0, 0]  # (15,)
    facts = {
        "colour_name": COLOURS[c],
        "n_channels": image.size,
        "item_shape": "(" + ", ".join(map(str, item.shape)) + ")",
    }
    return Result(int(np.flatnonzero(image == expected[c, t])[0]), facts)


def ash(params: dict, colour: str, byte: bool = False) -> Result:
    """The ash value of one colour for the drawn temperatures (or the tile's uint8 byte).

    params: b14 and, as the colour needs, b15 = b14 + d15 and b11 = b14 - d11 (kelvin).
    """
    from reference.data import ash as ref
    from reference.data.ash import get_false_color, normalize_range, to_uint8

    b14 = float(params["b14"])
    b15 = round(b14 + float(params.get("d15", 0.0)), 2)
    b11 = round(b14 - float(params.get("d11", 0.0)), 2)
    record = {
        f"band_{b}": np.full((1, 1, 8), v, np.float32) for b, v in ((11, b11), (14, b14), (15, b15))
    }
    c = COLOURS.index(colour)
    value = float(get_false_color(record)[0, 0, c])
    # The unclipped value, for the explanation: the same normalisation before the clip.
    raw_in = {"R": b15 - b14, "G": b14 - b11, "B": b14}[colour]
    # The reference's own bounds (its module constants), so the explanation follows the code.
    bounds = {"R": ref._TDIFF_BOUNDS, "G": ref._CLOUD_TOP_TDIFF_BOUNDS, "B": ref._T11_BOUNDS}[
        colour
    ]
    raw = float(normalize_range(np.float32([raw_in]), bounds)[0])
    facts = {
        "b11": f"{b11:g}",
        "b14": f"{b14:g}",
        "b15": f"{b15:g}",
        "raw": f"{raw:.4f}",
        "value": f"{value:.4f}",
        "diff": f"{raw_in:g}",
        "bounds": f"({bounds[0]:g}, {bounds[1]:g}) K",
        "scaled": f"{255 * value:.2f}",
    }
    if byte:
        return Result(int(to_uint8(np.float32([value]))[0]), facts)
    return Result(value, facts)


def labelled_frame(params: dict) -> Result:
    """The time index of the labelled frame: get_false_color's default N_TIMES_BEFORE."""
    from reference.data.ash import get_false_color
    from reference.data.dataset import N_FRAMES_USED

    n = inspect.signature(get_false_color).parameters["N_TIMES_BEFORE"].default
    return Result(int(n), {"n_used": N_FRAMES_USED, "after": 8 - n - 1})
