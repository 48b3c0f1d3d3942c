"""Figures of the site, drawn at build time by the project's own code on synthetic data.

Each maker writes a PNG beside the page that asks for it (build/site-src/<page
folder>/) and returns the Markdown that shows it. A figure used by both
languages is drawn once per build.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sitegen.paths import BUILD, REPO

FIG_DPI = 110
# The published config.json trains 4 epochs; the README's `EPOCH 24` never reaches it
# (train.py reads EPOCHS), so a run started as the README says follows this schedule.
PUBLISHED_CONFIG_EPOCHS = 4
SYNTH_SEED, SYNTH_SIZE, SYNTH_TRAIN = 3, 128, 6


def _target(ctx, page: str, name: str) -> tuple[Path, str]:
    """(where to write the PNG, its link from the page)."""
    folder = (ctx.src / page).parent
    return folder / name, name


def _img(link: str, alt: str, caption: str) -> str:
    # The caption is raw HTML: Markdown code spans would stay as backticks.
    caption = re.sub(r"`([^`]+)`", r"<code>\1</code>", caption)
    return f'<figure markdown="span">\n  ![{alt}]({link})\n  <figcaption>{caption}</figcaption>\n</figure>'


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _synth_record(ctx) -> Path:
    """A small synthetic Kaggle-layout dataset (`shakyo synth`); the train record with most contrail."""

    def make() -> Path:
        from reference.cli import main

        out = BUILD / "synth"
        if not (out / "train_metadata.json").is_file():
            args = ["synth", str(out), "--train", str(SYNTH_TRAIN), "--val", "0", "--test", "0"]
            args += ["--seed", str(SYNTH_SEED), "--size", str(SYNTH_SIZE), "--workers", "1"]
            if main(args) != 0:
                raise RuntimeError("shakyo synth failed")
        records = sorted((out / "train").iterdir())
        return max(records, key=lambda r: np.load(r / "human_pixel_masks.npy").mean())

    return ctx.memo("synth-record", make)


def ash_record(ctx, lang: str, page: str) -> str:
    from reference.cli import main

    path, link = _target(ctx, page, "ash-record.png")
    record = _synth_record(ctx)
    if not path.is_file() and main(["viz", "record", str(record), "--out", str(path)]) != 0:
        raise RuntimeError("shakyo viz record failed")
    cmd = f"shakyo synth data/s --train {SYNTH_TRAIN} --val 0 --test 0 --seed {SYNTH_SEED} --size {SYNTH_SIZE}"
    if lang == "en":
        cap = (
            f"A synthetic record ({SYNTH_SIZE}×{SYNTH_SIZE}) drawn by `shakyo viz record`: the ash colour of "
            "the 8 frames (top), each annotator's mask, the majority mask and its outline on frame 4 "
            f"(bottom). Made at build time with `{cmd}`."
        )
    else:
        cap = (
            f"`shakyo viz record` で描いた合成レコード ({SYNTH_SIZE}×{SYNTH_SIZE})。上段は 8 フレームの "
            "ash カラー、下段は各アノテーターのマスク、多数決マスク、フレーム 4 に重ねたその輪郭です。"
            f"ビルド時に `{cmd}` で作りました。"
        )
    return _img(link, "ash colour record", cap)


def dice_curve(ctx, lang: str, page: str) -> str:
    """reference.metrics.dice_curve on the synthetic masks with synthetic probabilities."""
    import cv2

    from reference.figures import plot_dice_curve
    from reference.metrics import DEFAULT_THRESHOLDS
    from reference.metrics import dice_curve as curve

    path, link = _target(ctx, page, "dice-curve.png")
    if not path.is_file():
        record = _synth_record(ctx)
        masks = [
            np.load(r / "human_pixel_masks.npy")[..., 0].astype(np.float32)
            for r in sorted(record.parent.iterdir())
        ]
        rng = np.random.default_rng(0)
        probs = []
        for m in masks:
            # A blurred, noisy "prediction": roughly what a decent model's sigmoid output looks like.
            soft = cv2.GaussianBlur(m, (0, 0), 1.0)
            soft /= max(float(soft.max()), 1e-6)
            logit = 8 * (soft - 0.5) + rng.normal(0, 1.2, m.shape)
            probs.append(1 / (1 + np.exp(-logit)))
        d = curve(np.stack(probs), np.stack(masks))
        th = np.asarray(DEFAULT_THRESHOLDS)
        best = float(th[int(np.argmax(d))])
        plot_dice_curve(th, d, best, path, dpi=FIG_DPI)
    if lang == "en":
        cap = (
            "The global Dice of all pixels at each of F_th's 80 thresholds (0.10 … 0.89), computed by "
            "`reference.metrics.dice_curve` and drawn by `reference.figures.plot_dice_curve`. The masks "
            "are synthetic records; the probabilities are blurred, noisy copies of the masks."
        )
    else:
        cap = (
            "F_th の 80 個の閾値 (0.10 … 0.89) それぞれでの、全ピクセルをまとめた Dice。"
            "`reference.metrics.dice_curve` で計算し、`reference.figures.plot_dice_curve` で描きました。"
            "マスクは合成レコード、確率はマスクをぼかしてノイズを加えたものです。"
        )
    return _img(link, "Dice against threshold", cap)


def one_cycle(ctx, lang: str, page: str) -> str:
    """fastai's combined_cos with the team's config, and with the 4 epochs a README run gets."""
    from fastai.callback.schedule import combined_cos

    from reference.config import load_config

    cfg = load_config(REPO / "configs" / "coat_ulstm.json")
    path, link = _target(ctx, page, "one-cycle.png")
    if not path.is_file():
        lr_max, pct = float(cfg["LR_MAX"]), float(cfg["PCT_START"])
        lr_sched = combined_cos(pct, lr_max / 25, lr_max, lr_max / 1e5)
        mom_sched = combined_cos(pct, 0.95, 0.85, 0.95)
        runs = (
            (int(cfg["EPOCHS"]), "tab:blue", f"EPOCHS {cfg['EPOCHS']} (configs/coat_ulstm.json)"),
            (PUBLISHED_CONFIG_EPOCHS, "tab:red",
             f"EPOCHS {PUBLISHED_CONFIG_EPOCHS}: the published config.json (`EPOCH 24` ignored)"),
        )  # fmt: skip
        fig = _figure(10, 5.4)
        axes = fig.subplots(2, 2, sharey="row", height_ratios=(2, 1))
        pos = np.linspace(0, 1, 2000, endpoint=False)
        lr = np.array([float(lr_sched(p)) for p in pos])
        mom = np.array([float(mom_sched(p)) for p in pos])
        for col, (epochs, color, label) in enumerate(runs):
            ax_lr, ax_mom = axes[0, col], axes[1, col]
            ep = pos * epochs
            ax_lr.plot(ep, lr, color=color, lw=2)
            ax_mom.plot(ep, mom, color=color, lw=2)
            peak = pct * epochs
            ax_lr.axvline(peak, color="gray", ls=":", lw=1)
            ax_lr.annotate(f"peak: epoch {peak:.1f}", (peak, lr_max), textcoords="offset points",
                           xytext=(8, -14), fontsize=9, color=color)  # fmt: skip
            ax_lr.set_title(label, fontsize=10)
            ax_mom.set_xlabel("epoch")
            for ax in (ax_lr, ax_mom):
                ax.grid(alpha=0.3)
                ax.set_xlim(0, epochs)
        axes[0, 0].set_ylabel("learning rate")
        axes[1, 0].set_ylabel("momentum (β₁)")
        fig.suptitle(f"fastai one-cycle (combined_cos): LR_MAX {lr_max:g}, PCT_START {pct:g}")
        fig.savefig(path, dpi=FIG_DPI)
    if lang == "en":
        cap = (
            "The learning rate and momentum of every training batch, from fastai's own scheduler "
            "(`combined_cos`, what `fit_one_cycle` uses) with the values of `configs/coat_ulstm.json`. "
            "The x axis is linear up to epoch 1, logarithmic after."
        )
    else:
        cap = (
            "学習バッチごとの学習率とモメンタム。fastai の `combined_cos` (`fit_one_cycle` が使うもの) に "
            "`configs/coat_ulstm.json` の値を入れて描きました。左はこのキットの設定の 24 エポック、右は公開 README "
            "のとおりに始めた学習が実際に回す 4 エポックです。"
        )
    return _img(link, "one-cycle schedule", cap)


def _measured_trust(norms: np.ndarray, trust: str) -> np.ndarray:
    """The factor Ralamb applies to a tensor's first step, measured on the optimizer itself.

    At step 1 the update is unrectified: p <- p - lr/(1-b1) * ratio * m with m = (1-b1) g,
    so |dp| / (lr |g|) is the trust ratio.
    """
    import torch

    from reference.optim import Ralamb

    out = []
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(256, generator=g, dtype=torch.float64)
    direction /= direction.norm()
    grad = torch.randn(256, generator=g, dtype=torch.float64)
    for n in norms:
        p = torch.nn.Parameter(direction * float(n))
        before = p.detach().clone()
        p.grad = grad.clone()
        opt = Ralamb([p], lr=1e-3, trust=trust)
        opt.step()
        out.append(float((p.detach() - before).norm() / (1e-3 * grad.norm())))
    return np.array(out)


def trust_ratio(ctx, lang: str, page: str) -> str:
    from sitegen.trace import _data

    path, link = _target(ctx, page, "trust-ratio.png")
    if not path.is_file():
        norms = np.logspace(-2, 3, 60)
        fig = _figure(9, 4.6)
        ax = fig.subplots()
        ax.plot(norms, _measured_trust(norms, "published"), lw=2, color="tab:blue",
                label="trust='published' (the original: min(‖p‖, 10) / ‖p‖)")  # fmt: skip
        ax.plot(norms, _measured_trust(norms, "lamb"), lw=2, ls="--", color="tab:orange",
                label="trust='lamb' (min(‖p‖, 10) / ‖Adam step‖, what LAMB meant)")  # fmt: skip
        tensor_norms = np.array(_data(ctx)["norms"])
        big = int((tensor_norms > 10).sum())
        ax.plot(tensor_norms, np.full_like(tensor_norms, 0.02), "|", color="k", ms=12, alpha=0.4,
                label=f"‖p‖ of CoaT_ULSTM medium's {tensor_norms.size} tensors at init ({big} above 10)")  # fmt: skip
        ax.axvline(10, color="gray", lw=1, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="‖p‖ (L2 norm of one parameter tensor)",
               ylabel="factor on the first step", title="Ralamb's trust ratio, measured on reference.optim.Ralamb")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower left")
        fig.savefig(path, dpi=FIG_DPI)
    if lang == "en":
        cap = (
            "The factor by which `Ralamb` scales a tensor's first update, measured by running one step of "
            "`reference.optim.Ralamb` on a tensor of each norm. As published, the ratio is 1 up to ‖p‖ = 10 "
            "and 10/‖p‖ above: it only slows down large tensors. Ticks at the bottom: the tensor norms of "
            "a randomly initialised CoaT_ULSTM medium."
        )
    else:
        cap = (
            "`Ralamb` が 1 回目の更新に掛ける倍率。ノルムを変えたテンソルで `reference.optim.Ralamb` を "
            "1 ステップ動かして測りました。公開版では ‖p‖ = 10 までは 1、それより大きいと 10/‖p‖ で、"
            "大きなテンソルの更新を小さくするだけです。下端の目盛りは、ランダム初期化した "
            "CoaT_ULSTM medium の各テンソルのノルムです。"
        )
    return _img(link, "trust ratio", cap)


def half_pixel(ctx, lang: str, page: str) -> str:
    """Why flips hurt when the mask sits half a pixel off the image (an illustration)."""
    from matplotlib.patches import Rectangle

    path, link = _target(ctx, page, "half-pixel.png")
    if not path.is_file():
        n, row, shift = 8, 3, 0.5  # a streak on pixel row 3; its label half a pixel lower
        fig = _figure(9, 3.4)
        panels = (
            ("as given: label 0.5 px below the streak", row, [row + shift]),
            ("flipped top-bottom: label 0.5 px above", n - 1 - row, [n - 1 - row - shift]),
            ("trained on both: two answers for one streak", row, [row + shift, row - shift]),
        )
        for ax, (title, streak, labels) in zip(fig.subplots(1, 3), panels, strict=True):
            img = np.zeros((n, n))
            img[streak, :] = 1
            ax.imshow(img, cmap="Blues", vmin=0, vmax=1.6, extent=(-0.5, n - 0.5, n - 0.5, -0.5))
            for i, centre in enumerate(labels):
                ax.add_patch(Rectangle((-0.5, centre - 0.5), n, 1, fill=False, ec="tab:red", lw=2,
                                       ls="-" if i == 0 else "--"))  # fmt: skip
            ax.set_title(title, fontsize=9)
            ax.set_xticks(range(n))
            ax.set_yticks(range(n))
        fig.savefig(path, dpi=FIG_DPI)
    if lang == "en":
        cap = (
            "Blue: a one-pixel contrail in the image. Red box: its label, drawn half a pixel lower, as the "
            "masks are. A flip moves the label to the other side of the streak (dashed): trained on both, "
            "a model learns a band two pixels wide for a one-pixel line. (The direction of the real shift "
            "is not known; the argument does not depend on it.)"
        )
    else:
        cap = (
            "青は画像中の幅 1 ピクセルの飛行機雲、赤枠はそのラベルで、実際のマスクと同じく半ピクセル下に"
            "ずれています。反転するとラベルは筋の反対側に移ります (破線)。両方で学習したモデルは、"
            "1 ピクセルの線に対して幅 2 ピクセルの帯を覚えてしまいます (実際のずれの向きは不明ですが、"
            "議論は向きに依存しません)。"
        )
    return _img(link, "half-pixel shift", cap)
