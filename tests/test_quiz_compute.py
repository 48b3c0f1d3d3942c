"""Computed answers against independent derivations, and a wrong reference changes them.

Each golden value is derived here by hand, apart from the quiz and the reference:
shapes from the strides (x2 upsampling, encoder strides 4 … 32, a doubling per
decoder block), parameter counts from layer formulas, learning rates from the
closed form of the one-cycle schedule, F_th by counting with plain Python.
The last part patches the reference (a different upsampling, a shallower
encoder, another threshold grid ...) and checks that the answers move with it:
they are computed, not stored.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
import torch

from quiz.compute import counts, data, fmt_shape, metric, schedule, shapes
from quiz.draw import pixels

# The published arch table (site: facts/model/#encoder), written out independently.
DIMS = {"mini": (64, 128, 320, 512), "small": (64, 128, 320, 512), "medium": (128, 256, 320, 512)}
SIZES = [
    (1, 64, 64, "medium"),
    (2, 96, 160, "mini"),
    (3, 256, 128, "small"),
    (4, 48, 320, "medium"),
]


def by_hand(B: int, H: int, W: int, arch: str) -> dict[str, tuple[int, ...]]:
    d1, d2, d3, d4 = DIMS[arch]
    return {
        "up": (5 * B, 3, 2 * H, 2 * W),  # frames into the batch, bicubic x2
        "tokens1": (5 * B, 1 + (H // 2) * (W // 2), d1),  # stride 4 on 2H, plus the class token
        "x2_all": (5 * B, d2, H // 4, W // 4),
        "x3": (B, 5, d3, H // 8, W // 8),
        "seq4": (B * (H // 16) * (W // 16), 5, d4),
        "l4": (B, d4, H // 16, W // 16),
        "skip1": (B, d1, H // 2, W // 2),
        "dec4_shuf": (B, 256, H // 8, W // 8),
        "dec4_cat": (B, 256 + d3, H // 8, W // 8),
        "dec2": (B, 96, H // 2, W // 2),
        "fpn0": (B, 32, H // 16, W // 16),
        "fpn": (B, 3 * 32 + 96, H // 2, W // 2),
        "final_shuf": (B, 192 // 4, H, W),
        "out": (B, 1, H, W),
    }


@pytest.mark.parametrize("B, H, W, arch", SIZES)
def test_model_shapes_follow_the_strides(B, H, W, arch):
    # One forward pass records every point; the facts are the same shapes as the answers.
    r = shapes.model_shape({"B": B, "H": H, "W": W, "arch": arch}, "x3")
    assert r.answer == by_hand(B, H, W, arch)["x3"]
    for point, want in by_hand(B, H, W, arch).items():
        assert r.facts[point] == fmt_shape(want), (point, B, H, W, arch)


def test_an_eight_frame_input_is_read_as_five_frames():
    assert shapes.model_shape({"B": 2, "T": 8, "H": 64, "W": 96}, "up").answer == (10, 3, 128, 192)
    assert shapes.model_shape({"B": 2, "T": 8, "H": 64, "W": 96}, "out").answer == (2, 1, 64, 96)


def test_meta_shapes_are_the_shapes_of_a_real_forward_pass():
    # The tiny arch exists for tests; on the CPU it really computes.
    p = {"B": 1, "H": 32, "W": 48, "arch": "tiny"}
    meta = shapes.model_shape(p, "out").facts
    cpu = shapes.model_shape(p, "out", device="cpu").facts
    assert meta == cpu
    assert meta["out"] == "(1, 1, 32, 48)"


@pytest.mark.parametrize(
    "block, point, p, want",
    [
        ("UnetBlock", "cat", dict(B=2, up_in_c=384, x_in_c=128, nf=96, h=12, w=8), (2, 192 + 128, 24, 16)),
        ("UnetBlock", "out", dict(B=1, up_in_c=512, x_in_c=320, nf=384, h=8, w=8), (1, 384, 16, 16)),
        ("UpBlock", "shuf", dict(B=4, up_in_c=192, nf=1, h=16, w=32), (4, 48, 32, 64)),
        ("UpBlock", "out", dict(B=1, up_in_c=64, nf=2, h=16, w=16), (1, 2, 32, 32)),
        ("PixelShuffle_ICNR", "conv", dict(B=2, ni=96, nf=48, h=8, w=16), (2, 4 * 48, 8, 16)),
        ("PixelShuffle_ICNR", "out", dict(B=2, ni=96, nf=48, h=8, w=16), (2, 48, 16, 32)),
    ],
)  # fmt: skip
def test_block_shapes_by_hand(block, point, p, want):
    assert shapes.block_shape(p, block, point).answer == want


# ------------------------------------------------------------------ counts
def conv(i: int, o: int, k: int) -> int:
    return o * i * k * k + o


def unet_block(up: int, x: int, nf: int) -> int:
    shuf = conv(up, 2 * up, 1) + 2 * (2 * up)  # 1x1 conv to (up // 2) * 4, LayerNorm2d
    return shuf + 2 * x + conv(up // 2 + x, nf, 3) + conv(nf, nf, 3)


def test_parameter_counts_from_the_layer_formulas():
    for n in (64, 320, 512):
        assert counts.block_params({"n": n}, "LSTM_block").answer == 4 * (n * n + n * n + 2 * n)
    for up, x, nf in ((512, 320, 384), (384, 256, 192), (192, 64, 96)):
        p = {"up_in_c": up, "x_in_c": x, "nf": nf}
        assert counts.block_params(p, "UnetBlock").answer == unet_block(up, x, nf)
    for nf in (1, 2, 4):  # final_conv: UpBlock(192, nf) = shuffle to 48, conv, LayerNorm2d(48), 1x1
        want = conv(192, 192, 1) + 2 * 192 + conv(48, 48, 3) + 2 * 48 + conv(48, nf, 1)
        assert counts.block_params({"up_in_c": 192, "nf": nf}, "UpBlock").answer == want


def test_model_parameter_counts_are_the_published_ones():
    # The team's checkpoints (site: facts/model/#parameters), not the reference's code.
    published = {"mini": 19_487_073, "small": 28_314_017, "medium": 53_323_425}
    for arch, n in published.items():
        assert counts.model_params({"arch": arch}).answer == n
    assert counts.model_params({"arch": "medium"}, module="enc").answer == 44_057_024
    lstms = 8 * 320**2 + 8 * 320 + 8 * 512**2 + 8 * 512
    assert lstms == 2_923_008
    for arch in published:
        assert counts.model_params({"arch": arch}, module="lstm").answer == lstms
        d1 = DIMS[arch][0]
        assert counts.model_params({"arch": arch}, module="dec2").answer == unet_block(192, d1, 96)


@pytest.mark.parametrize("B, H, W", [(1, 256, 256), (1, 128, 384), (2, 384, 128)])
def test_multiply_adds_by_hand(B, H, W):
    h8, w8, h16, w16 = H // 8, W // 8, H // 16, W // 16
    dec4 = B * (h16 * w16 * 1024 * 512 + h8 * w8 * 384 * 576 * 9 + h8 * w8 * 384 * 384 * 9)
    assert counts.model_macs({"B": B, "H": H, "W": W}, "dec4").answer == dec4
    lstm = B * h16 * w16 * 5 * 4 * 512 * (512 + 512)
    assert counts.model_macs({"B": B, "H": H, "W": W}, "lstm.1").answer == lstm


# ------------------------------------------------------------------ schedule
def closed_form(k: int, E: int, N: int, lr_max: float = 3.5e-4, pct: float = 0.1):
    """One-cycle (site: facts/training/#one-cycle) at batch k, in float64."""
    pos = k / (E * N)
    if pos < pct:
        c = (1 - math.cos(math.pi * pos / pct)) / 2
        return lr_max / 25 + (lr_max - lr_max / 25) * c, 0.95 - 0.10 * c
    c = (1 - math.cos(math.pi * (pos - pct) / (1 - pct))) / 2
    return lr_max + (lr_max / 1e5 - lr_max) * c, 0.85 + 0.10 * c


@pytest.mark.parametrize(
    "E, N, k", [(4, 100, 0), (4, 100, 17), (4, 100, 39), (12, 250, 1500), (24, 50, 1199)]
)
def test_lr_and_mom_are_the_closed_form_of_the_one_cycle(E, N, k):
    lr, mom = closed_form(k, E, N)
    got_lr = schedule.lr_mom_at({"E": E, "N": N, "k": k}, "lr").answer
    got_mom = schedule.lr_mom_at({"E": E, "N": N, "k": k}, "mom").answer
    assert got_lr == pytest.approx(lr, rel=1e-5)
    assert got_mom == pytest.approx(mom, abs=1e-6)


@pytest.mark.parametrize("E, N", [(2, 60), (4, 250), (4, 123)])
def test_the_peak_is_the_first_batch_past_pct_start(E, N):
    k = math.ceil(Fraction(1, 10) * E * N)  # first k with k / (E N) >= 0.1, exactly
    assert schedule.lr_peak({"E": E, "N": N}, "batch").answer == k
    assert schedule.lr_peak({"E": E, "N": N}, "epochs").answer == pytest.approx(k / N)


@pytest.mark.parametrize("bs", [2, 3, 5, 6, 8, 12, 16])
def test_accumulation_steps_once_enough_samples_were_seen(bs):
    n_acc = int(32 / bs + 0.5)  # the published target (site: facts/training/#accumulation)
    every = math.ceil(n_acc / bs)  # batches per step
    assert schedule.accumulation({"BS": bs}, "first").answer == every
    assert schedule.accumulation({"BS": bs}, "steps").answer == 12 // every
    assert schedule.accumulation({"BS": bs}, "scale").answer == pytest.approx(bs / n_acc)
    assert schedule.accumulation({"BS": 3, "ACC": 8}, "steps").answer == 4  # 3, 6, 9 -> step


# ------------------------------------------------------------------ metric
def f_th_by_hand(images):
    """(best dice, its first threshold, counts at every threshold) with plain loops."""
    best, best_th, table = -1.0, None, {}
    for i in range(10, 90):
        th = i / 100
        tp = sum(1 for img in images for p, t in img if p > th and t == 1)
        fp = sum(1 for img in images for p, t in img if p > th and t == 0)
        fn = sum(1 for img in images for p, t in img if p <= th and t == 1)
        d = 2 * tp / (2 * tp + fn + fp + 1e-6)
        table[i] = (tp, fp, fn)
        if d > best + 1e-12:
            best, best_th = d, th
    return best, best_th, table


@pytest.mark.parametrize("seed", range(6))
def test_f_th_value_threshold_and_counts_by_hand(seed):
    images = pixels(random.Random(seed), {}, n=8, images=1 + seed % 2)
    best, best_th, table = f_th_by_hand(images)
    assert metric.dice({"table": images}, "value").answer == pytest.approx(best, abs=1e-9)
    assert metric.dice({"table": images}, "threshold").answer == pytest.approx(best_th)
    for th in (0.3, 0.5, 0.7):
        got = metric.dice({"table": images, "th": th}, "counts").answer
        assert got == table[round(th * 100)]


def test_a_pixel_exactly_on_the_threshold_is_not_counted():
    images = [[(0.5, 1), (0.505, 0), (0.495, 1)]]
    assert metric.dice({"table": images, "th": 0.5}, "predicted").answer == 1
    assert metric.dice({"table": images}, "n_thresholds").answer == 80


def test_f_th_is_global_not_a_mean_over_images():
    images = [[(0.9, 1), (0.8, 0)], [(0.9, 1), (0.2, 1), (0.1, 1)]]
    r = metric.dice({"table": images, "th": 0.5}, "global")
    # Both images: TP 2, FP 1, FN 2 -> 4 / 7; the per-image mean would be (2/3 + 1/2) / 2.
    assert r.answer == pytest.approx(4 / 7, abs=1e-6)
    assert r.facts["mean_image"] == f"{(2 / 3 + 1 / 2) / 2:.4f}"


# ------------------------------------------------------------------ data
def test_tile_and_item_channels_by_the_layout():
    for c in range(3):
        for t in range(8):
            assert data.tile_channel({"colour": c, "frame": t}).answer == 8 * c + t
        for t in range(5):
            assert data.item_channel({"colour": c, "frame": t}).answer == 5 * c + t
    assert data.tile_channel({"channel": 13}, "frame").answer == 5
    assert data.tile_channel({"channel": 13}, "colour").answer == 1


@pytest.mark.parametrize("b14, d", [(262.0, -1.5), (235.0, -5.0), (288.0, 2.5), (250.5, 0.6)])
def test_ash_values_by_the_formulas(b14, d):
    clip = lambda v: min(max(v, 0.0), 1.0)  # noqa: E731
    assert data.ash({"b14": b14, "d15": d}, "R").answer == pytest.approx(
        clip((d + 4) / 6), abs=1e-5
    )
    assert data.ash({"b14": b14, "d11": d}, "G").answer == pytest.approx(
        clip((d + 4) / 9), abs=1e-5
    )
    b = clip((b14 - 243) / 60)
    assert data.ash({"b14": b14}, "B").answer == pytest.approx(b, abs=1e-5)
    assert data.ash({"b14": b14}, "B", byte=True).answer == math.floor(255 * b + 1e-6)


def test_the_labelled_frame_is_four():
    assert data.labelled_frame({}).answer == 4


# ------------------------------------------------------------------ a wrong reference
@pytest.fixture
def fresh_models():
    shapes.built_model.cache_clear()
    yield
    shapes.built_model.cache_clear()


def test_a_patched_upsampling_changes_the_shape_answers(monkeypatch):
    import torch.nn.functional as F

    from reference.models import coat

    p = {"B": 2, "H": 64, "W": 96}
    assert shapes.model_shape(p, "x3").answer == (2, 5, 320, 8, 12)
    x4 = lambda x: F.interpolate(x, scale_factor=4, mode="bicubic").clip(0, 1)  # noqa: E731
    monkeypatch.setattr(coat, "upsample_input", x4)
    assert shapes.model_shape(p, "up").answer == (10, 3, 256, 384)
    assert shapes.model_shape(p, "x3").answer == (2, 5, 320, 16, 24)
    monkeypatch.setattr(coat, "N_FRAMES", 3)  # a model that kept 3 frames
    assert shapes.model_shape(p, "seq4").answer == (2 * 8 * 12, 3, 512)


def test_a_patched_patch_stride_changes_the_encoder_shapes(monkeypatch, fresh_models):
    from reference.models import coat

    build = coat.build_coat_encoder

    def stride_8(arch="medium", img_size=512):
        enc = build(arch, img_size)
        old = enc.patch_embed1
        new = type(old)(
            img_size=img_size, patch_size=8, in_chans=3, embed_dim=old.proj.out_channels
        )
        new.strict_img_size = False
        enc.patch_embed1 = new
        return enc

    monkeypatch.setattr(coat, "build_coat_encoder", stride_8)
    got = shapes.model_shape({"B": 1, "H": 64, "W": 64}, "x1_all").answer
    assert got == (5, 128, 16, 16)  # stride 8 on 128: half of the published 32


def test_a_shallower_encoder_changes_the_counts(monkeypatch, fresh_models):
    from reference.models import coat

    published = counts.model_params({"arch": "medium"}, module="enc").answer
    shallower = dict(coat.ARCHS["medium"], serial_depths=(3, 6, 10, 7))
    monkeypatch.setitem(coat.ARCHS, "medium", shallower)
    shapes.built_model.cache_clear()
    assert counts.model_params({"arch": "medium"}, module="enc").answer < published


def test_a_patched_layer_norm_changes_the_block_count(monkeypatch):
    from torch import nn

    from reference.models import layers

    class NoBias(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(c))

    before = counts.block_params({"up_in_c": 512, "x_in_c": 320, "nf": 384}, "UnetBlock").answer
    monkeypatch.setattr(layers, "LayerNorm2d", NoBias)
    after = counts.block_params({"up_in_c": 512, "x_in_c": 320, "nf": 384}, "UnetBlock").answer
    assert before - after == 1024 + 320  # the biases of LayerNorm2d(1024) and LayerNorm2d(320)


def test_a_patched_scheduler_and_config_change_the_schedule_answers(monkeypatch):
    import fastai.callback.schedule as fs

    p = {"E": 4, "N": 100, "k": 0}
    assert schedule.lr_mom_at(p, "lr").answer == pytest.approx(3.5e-4 / 25)
    original = fs.combined_cos
    monkeypatch.setattr(fs, "combined_cos", lambda pct, a, b, c: original(pct, a * 2, b, c))
    assert schedule.lr_mom_at(p, "lr").answer == pytest.approx(3.5e-4 / 25 * 2)
    assert schedule.lr_mom_at(p, "mom").answer == pytest.approx(0.95 * 2)

    from reference.config import Config

    assert schedule.accumulation({"BS": 2}, "first").answer == 8
    monkeypatch.setattr(Config, "n_acc", property(lambda self: 4))
    assert schedule.accumulation({"BS": 2}, "first").answer == 2


def test_patched_thresholds_change_the_metric_answers(monkeypatch):
    from reference import metrics

    # Dice 1 only for thresholds in [0.455, 0.505): the first such grid value is the answer.
    images = [[(0.505, 1), (0.455, 0), (0.435, 0)]]
    assert metric.dice({"table": images}, "threshold").answer == pytest.approx(0.46)
    monkeypatch.setattr(metrics, "DEFAULT_THRESHOLDS", np.arange(0.1, 0.9, 0.05))
    assert metric.dice({"table": images}, "n_thresholds").answer == 16
    assert metric.dice({"table": images}, "threshold").answer == pytest.approx(0.5)
    monkeypatch.setattr(metrics, "DEFAULT_THRESHOLDS", np.arange(0.3, 0.9, 0.07))
    assert metric.dice({"table": images}, "threshold").answer == pytest.approx(0.44)
    assert metric.dice({"table": images}, "value").answer == pytest.approx(2 / 3, abs=1e-6)


def test_a_patched_tile_layout_and_ash_bounds_change_the_data_answers(monkeypatch):
    from reference.data import ash, prepare

    def frame_major(record):  # channel = frame * 3 + colour
        fc = ash.get_false_color(record, full=True)
        return ash.to_uint8(fc).transpose(0, 1, 3, 2).reshape(*fc.shape[:2], -1)

    monkeypatch.setattr(prepare, "tile_image", frame_major)
    assert data.tile_channel({"colour": 1, "frame": 6}).answer == 6 * 3 + 1
    # (G, frame 1) now sits in tile channel 4, which the dataset reads as (R, frame 4).
    assert data.item_channel({"colour": 1, "frame": 1}).answer == 4
    monkeypatch.setattr(ash, "_T11_BOUNDS", (233.0, 293.0))
    assert data.ash({"b14": 263.0}, "B").answer == pytest.approx(0.5, abs=1e-6)
