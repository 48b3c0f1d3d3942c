"""Shared pytest fixtures. Data fixtures carry a ``data_`` prefix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def data_synth_dir(tmp_path_factory) -> Path:
    """A tiny synthetic Kaggle dataset: 64² records, train 6, validation 3, test 2, seed 0."""
    from reference.data.synth import synthesize

    out = tmp_path_factory.mktemp("data_synth") / "kaggle"
    synthesize(out, 6, 3, 2, seed=0, size=64, workers=1, progress=False)
    return out


@pytest.fixture
def data_record_writer():
    """write(folder, b11, b14, b15, pixel=None, individual=None): a minimal record folder
    holding only what the ash colour and the tiles need."""

    def write(folder: Path, b11, b14, b15, pixel=None, individual=None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, arr in (("band_11", b11), ("band_14", b14), ("band_15", b15)):
            np.save(folder / f"{name}.npy", np.asarray(arr, np.float32))
        if pixel is not None:
            np.save(folder / "human_pixel_masks.npy", np.asarray(pixel, np.int32))
        if individual is not None:
            np.save(folder / "human_individual_masks.npy", np.asarray(individual, np.int32))
        return folder

    return write


@pytest.fixture(scope="session")
def built_site() -> Path:
    """site/ as `make docs` built it (`make test` builds it first); built here when missing."""
    from sitegen.paths import SITE, SRC

    if not (SITE / "index.html").is_file() or not SRC.is_dir():
        from sitegen.build import build

        build(log=lambda _: None)
    return SITE
