"""The numbers of one attempt: drawn from a question's ``draw`` table.

``draw = { B = [1, 2, 4], H = [64, 96] }`` picks one value of each list; a table
with ``gen`` calls a generator below with the values drawn so far, e.g.
``k = { gen = "batch_index", epochs = "E", batches = "N" }``. Keys are drawn in
the order written, so a generator may depend on earlier keys.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Pixel = tuple[float, int]  # (probability, label)


def pixels(
    rng: random.Random, drawn: dict, n: int = 8, images: int = 1, exact: float | None = None
) -> list[list[Pixel]]:
    """``images`` lists of ``n`` (p, label) pairs, at least one contrail and one background pixel.

    p has three decimals ending in 5 (0.005 … 0.995), so it never equals one of
    F_th's thresholds (0.10, 0.11, …) and the counts do not hinge on float
    rounding. ``exact`` puts one contrail pixel exactly on that threshold.
    A pixel with a high p is more often a contrail, as from a trained model.
    """
    out = []
    for _ in range(images):
        while True:
            img = []
            for _ in range(n):
                p = rng.randrange(5, 1000, 10) / 1000
                img.append((p, int(rng.random() < 0.15 + 0.7 * p)))
            if 0 < sum(t for _, t in img) < n:
                break
        out.append(img)
    if exact is not None:
        out[0][rng.randrange(n)] = (float(exact), 1)
    return out


def batch_index(rng: random.Random, drawn: dict, epochs: str = "E", batches: str = "N") -> int:
    """A training batch index of the whole run, 0 .. E·N − 1."""
    return rng.randrange(int(drawn[epochs]) * int(drawn[batches]))


GENERATORS: dict[str, Callable[..., Any]] = {"pixels": pixels, "batch_index": batch_index}


def draw(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One attempt's values of a question's ``draw`` table."""
    out: dict[str, Any] = {}
    for name, s in spec.items():
        if isinstance(s, list):
            out[name] = rng.choice(s)
        elif isinstance(s, dict):
            kw = {k: v for k, v in s.items() if k != "gen"}
            out[name] = GENERATORS[s["gen"]](rng, out, **kw)
        else:
            out[name] = s
    return out


def attempt_rng(seed: int | str, question_id: str, attempt: int = 0) -> random.Random:
    """The generator of one attempt: the same (seed, id, attempt) draws the same numbers."""
    return random.Random(f"{seed}:{question_id}:{attempt}")
