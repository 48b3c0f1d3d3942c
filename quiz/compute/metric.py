"""Metric questions: the reference's F_th counting on a tiny table of pixels.

The table (drawn by :func:`quiz.draw.pixels`) is fed to
:class:`reference.metrics.DiceAccumulator`, the counting behind the fastai
metric ``F_th``: its 80 thresholds, its strict ``p > th``, its global sums
and its first-of-the-best threshold.
"""

from __future__ import annotations

import numpy as np

from quiz.compute import Result, Table, fmt_shape

_WORDS = {"en": ("pixel", "image {k}: ", "label"), "ja": ("画素", "画像 {k}: ", "ラベル")}


def pixel_table(images: list[list[tuple[float, int]]]) -> dict[str, Table]:
    """The table of (p, label) pixels, one per language (its row labels are words)."""
    n = len(images[0])
    out = {}
    for lang, (pixel, image, label) in _WORDS.items():
        rows = [(pixel, *(str(i) for i in range(1, n + 1)))]
        for k, img in enumerate(images, 1):
            tag = image.format(k=k) if len(images) > 1 else ""
            rows.append((f"{tag}p", *(f"{p:.3f}" for p, _ in img)))
            rows.append((f"{tag}{label}", *(str(t) for _, t in img)))
        out[lang] = Table(tuple(rows))
    return out


def _index(thresholds: np.ndarray, th: float) -> int:
    (i,) = np.flatnonzero(np.isclose(thresholds, th, atol=1e-9, rtol=0))
    return int(i)


def dice(params: dict, what: str) -> Result:
    """F_th of the drawn ``table`` (a list of images of (p, label) pixels).

    what: "value" (F_th), "threshold" (the threshold it picks), "counts" ((tp, fp, fn)
    at ``th``), "predicted" (pixels counted as contrail at ``th``), "global" (the Dice
    at ``th`` over all images together), "n_thresholds" (how many thresholds it tries).
    """
    from reference.metrics import DEFAULT_THRESHOLDS, DiceAccumulator, dice_curve

    images = params.get("table", [[(0.5, 1)]])
    acc = DiceAccumulator(DEFAULT_THRESHOLDS)
    for img in images:
        acc.update(np.array([p for p, _ in img], np.float32), np.array([t for _, t in img]))
    best = acc.best_index
    facts = {
        "table": pixel_table(images),
        "n_th": len(acc.thresholds),
        "th_first": f"{acc.thresholds[0]:.2f}",
        "th_last": f"{acc.thresholds[-1]:.2f}",
        "best_th": f"{acc.best_threshold:.2f}",
        "value": f"{acc.value:.4f}",
        "tp": int(acc.tp[best]),
        "fp": int(acc.fp[best]),
        "fn": int(acc.fn[best]),
        "n_pixels": sum(len(i) for i in images),
        "n_pos": sum(t for i in images for _, t in i),
    }
    # Thresholds tied with the best one (F_th keeps the first).
    ties = np.flatnonzero(np.isclose(acc.dice, acc.dice[best], rtol=0, atol=1e-12))
    facts["ties"] = f"{acc.thresholds[ties[0]]:.2f}–{acc.thresholds[ties[-1]]:.2f}"
    if "th" in params:
        i = _index(acc.thresholds, params["th"])
        tp, fp, fn = int(acc.tp[i]), int(acc.fp[i]), int(acc.fn[i])
        per_image = [
            float(
                dice_curve(
                    np.array([p for p, _ in img], np.float32), np.array([t for _, t in img])
                )[i]
            )
            for img in images
        ]
        facts.update(
            th=f"{params['th']:.2f}",
            tp_th=tp,
            fp_th=fp,
            fn_th=fn,
            dice_th=f"{float(acc.dice[i]):.4f}",
            per_image=", ".join(f"{d:.4f}" for d in per_image),
            mean_image=f"{sum(per_image) / len(per_image):.4f}",
            counts=fmt_shape((tp, fp, fn)),
        )
    answer = {
        "value": lambda: acc.value,
        "threshold": lambda: acc.best_threshold,
        "counts": lambda: (facts["tp_th"], facts["fp_th"], facts["fn_th"]),
        "predicted": lambda: facts["tp_th"] + facts["fp_th"],
        "global": lambda: float(acc.dice[_index(acc.thresholds, params["th"])]),
        "n_thresholds": lambda: len(acc.thresholds),
    }[what]()
    return Result(answer, facts)
