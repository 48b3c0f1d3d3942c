"""Data: Kaggle records, the ash colour, synthetic records, tiles, datasets.

``read_record`` and ``get_false_color`` need only NumPy; the torch datasets and
the albumentations pipeline are imported on first use, so ``shakyo prepare``
and ``shakyo synth`` start fast.
"""

from __future__ import annotations

from reference.data.ash import get_false_color
from reference.data.records import read_record

__all__ = ["ContrailsDataset", "ContrailsDatasetV0", "get_aug", "get_false_color", "read_record"]

_LAZY = {
    "ContrailsDatasetV0": "reference.data.dataset",
    "ContrailsDataset": "reference.data.dataset",
    "get_aug": "reference.data.augment",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reference.data' has no attribute {name!r}")
