"""Answers computed by running the reference, one module per kind.

A compute function takes the drawn values (``params``) and the question's
``args`` and returns a :class:`Result`: the answer and the *facts* its
explanation quotes (intermediate shapes, counts, thresholds), all measured on
the reference as it is now. Nothing is cached between attempts except built
models (building is not what a question asks about), so a patched reference
changes the answers at once.

Modules are imported when a question needs them: a metric question does not
pay for importing timm, a shape question not for fastai.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

# name -> "module:function"
REGISTRY: dict[str, str] = {
    "model_shape": "quiz.compute.shapes:model_shape",
    "block_shape": "quiz.compute.shapes:block_shape",
    "model_params": "quiz.compute.counts:model_params",
    "block_params": "quiz.compute.counts:block_params",
    "model_macs": "quiz.compute.counts:model_macs",
    "lr_mom_at": "quiz.compute.schedule:lr_mom_at",
    "lr_peak": "quiz.compute.schedule:lr_peak",
    "accumulation": "quiz.compute.schedule:accumulation",
    "dice": "quiz.compute.metric:dice",
    "tile_channel": "quiz.compute.data:tile_channel",
    "item_channel": "quiz.compute.data:item_channel",
    "ash": "quiz.compute.data:ash",
    "labelled_frame": "quiz.compute.data:labelled_frame",
}


@dataclass(frozen=True)
class Result:
    """A computed answer and the facts its explanation quotes."""

    answer: Any
    facts: dict[str, Any] = field(default_factory=dict)


def function(name: str):
    """The compute function registered as ``name`` (KeyError if there is none)."""
    module, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def run(name: str, params: dict[str, Any], args: dict[str, Any]) -> Result:
    return function(name)(params, **args)


@dataclass(frozen=True)
class Table:
    """A small table a question shows (rows of cells); printed as text or as Markdown."""

    rows: tuple[tuple[str, ...], ...]

    def text(self, indent: str = "  ") -> str:
        from quiz.terminal import width

        widths = [max(width(r[i]) for r in self.rows) for i in range(len(self.rows[0]))]
        return "\n".join(
            indent + "  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths)).rstrip()
            for r in self.rows
        )

    def markdown(self) -> str:
        head, *body = self.rows
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def fmt_shape(shape) -> str:
    """(1, 3, 256, 256) as the reference's shape trace prints it."""
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_int(n: int) -> str:
    return f"{int(n):,}"
