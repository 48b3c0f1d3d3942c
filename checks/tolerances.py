"""The one tolerance table of the checks (ARCHITECTURE "Precision and determinism").

Two values are close when |got - expected| <= atol + rtol * |expected|,
elementwise (``torch.isclose``). Every check names the row it uses, and every
failure message prints it. Checks run on CPU in float32; the reference is
computed live from ``reference/`` on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    name: str
    atol: float
    rtol: float

    def __str__(self) -> str:
        if self.atol == 0 and self.rtol == 0:
            return f"'{self.name}': exact"
        return f"'{self.name}': atol {self.atol:g}, rtol {self.rtol:g}"


_ROWS = [
    # Integers, strings, uint8 images: no rounding can excuse a difference.
    Tolerance("exact", 0.0, 0.0),
    # Elementwise float32 arithmetic in another order (data preparation).
    Tolerance("data", 1e-6, 1e-5),
    # A module's or function's forward pass in float32.
    Tolerance("forward", 1e-5, 1e-4),
    # Gradients w.r.t. inputs and parameters (backward sums amplify rounding).
    Tolerance("gradient", 1e-5, 1e-4),
    # Losses and metrics (scalars from long float32 sums).
    Tolerance("scalar", 1e-6, 1e-5),
    # Parameters after k optimizer steps.
    Tolerance("optimizer", 1e-6, 1e-5),
    # lr / mom schedules (float64 formulas).
    Tolerance("schedule", 1e-12, 1e-9),
    # lr / lr_max and mom against fastai's own scheduler: combine_scheds keeps the leg
    # boundaries in float32 (pct 0.1 -> 0.10000000149), so its positions are off by ~1e-8.
    # Measured: <= 1.3e-7 (lr / lr_max) and <= 1.3e-8 (mom) up to 24 epochs x 700 batches.
    Tolerance("fastai_schedule", 5e-7, 1e-6),
    # A whole model's forward (deep float32 sums).
    Tolerance("model", 1e-4, 1e-3),
    # The loss table of a short training run, step k.
    Tolerance("loss_table", 1e-4, 1e-3),
]

TOLERANCES: dict[str, Tolerance] = {t.name: t for t in _ROWS}


def tolerance(name: str) -> Tolerance:
    return TOLERANCES[name]
