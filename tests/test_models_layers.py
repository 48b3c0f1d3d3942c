"""Blocks of FACTS §3 against hand formulas and independent float64 re-derivations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reference.models import (
    FPN,
    LayerNorm2d,
    LSTM_block,
    PixelShuffle_ICNR,
    SinusoidalPosEmb,
    Tmixer,
    UnetBlock,
    UpBlock,
    icnr_init,
)


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_layernorm2d_matches_float64_formula():
    x = randn(2, 5, 3, 4) * 3 + 1
    ln = LayerNorm2d(5)
    with torch.no_grad():
        ln.weight.copy_(randn(5, seed=1))
        ln.bias.copy_(randn(5, seed=2))
    xd = x.double()
    want = torch.empty_like(xd)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                v = xd[b, :, i, j]
                u = v.sum() / 5
                s = ((v - u) ** 2).sum() / 5  # biased variance
                want[b, :, i, j] = (v - u) / math.sqrt(
                    s + 1e-6
                ) * ln.weight.double() + ln.bias.double()
    torch.testing.assert_close(ln(x).double(), want, rtol=0, atol=1e-5)
    assert LayerNorm2d(3).eps == 1e-6
    assert torch.equal(LayerNorm2d(3).weight, torch.ones(3))
    assert torch.equal(LayerNorm2d(3).bias, torch.zeros(3))


def test_icnr_replicates_each_kernel_over_its_four_sub_pixels():
    torch.manual_seed(0)
    w = icnr_init(torch.empty(4 * 6, 10, 1, 1))
    assert w.shape == (24, 10, 1, 1)
    for j in range(6):
        for r in range(4):
            assert torch.equal(w[4 * j + r], w[4 * j])
    assert not torch.allclose(w[0], w[4])  # distinct features get distinct kernels
    # Kaiming normal, fan_in = 10: std sqrt(2/10); loose check on 60 draws.
    assert 0.2 < w[::4].std().item() < 0.75
    # After PixelShuffle(2) the 2 x 2 sub-pixels of each output feature are equal.
    # (oneDNN's conv is not bit-identical across output channels: 1 ulp tolerance.)
    y = F.pixel_shuffle(F.conv2d(randn(1, 10, 3, 3), w), 2)  # (1, 6, 6, 6)
    blocks = y.unfold(2, 2, 2).unfold(3, 2, 2)  # (1, 6, 3, 3, 2, 2)
    torch.testing.assert_close(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6, rtol=0)


def test_pixel_shuffle_icnr_weight_is_nearest_upsampling_bias_is_default():
    torch.manual_seed(0)
    ps = PixelShuffle_ICNR(8, 4, blur=False)
    assert [type(m) for m in ps] == [nn.Conv2d, LayerNorm2d, nn.GELU, nn.PixelShuffle]
    # ICNR sets only the weight: the bias keeps PyTorch's uniform(+-1/sqrt(8)) init,
    # different within each group of 4, as in the original.
    assert ps[0].bias.abs().max() <= 1 / math.sqrt(8)
    assert len(set(ps[0].bias[:4].tolist())) == 4
    with torch.no_grad():
        ps[0].bias.zero_()
    y = ps(randn(2, 8, 5, 7))
    assert y.shape == (2, 4, 10, 14)
    for di, dj in [(0, 1), (1, 0), (1, 1)]:
        torch.testing.assert_close(y[..., di::2, dj::2], y[..., ::2, ::2], atol=1e-6, rtol=0)
    # blur adds a top/left replication pad and a 2 x 2 stride-1 mean: size is kept.
    blurred = PixelShuffle_ICNR(8, 4, blur=True)
    assert [type(m) for m in blurred][4:] == [nn.ReplicationPad2d, nn.AvgPool2d]
    assert blurred(randn(1, 8, 5, 7)).shape == (1, 4, 10, 14)


def test_unet_block_composes_as_in_facts():
    torch.manual_seed(0)
    blk = UnetBlock(16, 6, 10)
    up, skip = randn(2, 16, 4, 4, seed=1), randn(2, 6, 8, 8, seed=2)
    ps = blk.shuf
    shuf = F.pixel_shuffle(F.gelu(ps[1](F.conv2d(up, ps[0].weight, ps[0].bias))), 2)
    cat = F.gelu(torch.cat([shuf, blk.bn(skip)], dim=1))
    h = F.gelu(F.conv2d(cat, blk.conv1[0].weight, blk.conv1[0].bias, padding=1))
    want = F.gelu(F.conv2d(h, blk.conv2[0].weight, blk.conv2[0].bias, padding=1))
    torch.testing.assert_close(blk(up, skip), want, rtol=0, atol=1e-6)
    assert blk.shuf[0].out_channels == 4 * 8  # up_in_c // 2 features before the shuffle
    assert blk.conv1[0].in_channels == 8 + 6


def test_up_block_skips_layernorm_below_16_channels():
    small, big = UpBlock(32, 1), UpBlock(192, 1)
    assert isinstance(small.conv[1], nn.Identity)
    assert isinstance(big.conv[1], LayerNorm2d) and big.conv[1].weight.shape == (48,)
    assert big(randn(2, 192, 4, 6)).shape == (2, 1, 8, 12)


def test_fpn_upsamples_each_level_to_the_last_and_concatenates():
    torch.manual_seed(0)
    fpn = FPN([12, 10, 8], [3, 3, 3])
    xs = [randn(1, 12, 2, 2, seed=1), randn(1, 10, 4, 4, seed=2), randn(1, 8, 8, 8, seed=3)]
    last = randn(1, 5, 16, 16, seed=4)
    out = fpn(xs, last)
    assert out.shape == (1, 3 * 3 + 5, 16, 16)
    assert torch.equal(out[:, 9:], last)
    lvl0 = F.interpolate(fpn.convs[0](xs[0]), scale_factor=8, mode="bilinear", align_corners=False)
    assert torch.equal(out[:, :3], lvl0)


def _lstm_step_float64(lstm: nn.LSTM, seq: torch.Tensor) -> torch.Tensor:
    """Textbook LSTM (gates i, f, g, o) in float64. seq: (T, C) -> (T, hidden)"""
    w_ih, w_hh = lstm.weight_ih_l0.double(), lstm.weight_hh_l0.double()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).double()
    n = lstm.hidden_size
    h = torch.zeros(n, dtype=torch.float64)
    c = torch.zeros(n, dtype=torch.float64)
    outs = []
    for x_t in seq.double():
        z = w_ih @ x_t + w_hh @ h + b
        i, f, g, o = (
            z[:n].sigmoid(),
            z[n : 2 * n].sigmoid(),
            z[2 * n : 3 * n].tanh(),
            z[3 * n :].sigmoid(),
        )
        c = f * c + i * g
        h = o * c.tanh()
        outs.append(h)
    return torch.stack(outs)


def test_lstm_block_runs_one_lstm_per_pixel_over_frames():
    torch.manual_seed(0)
    blk = LSTM_block(6)
    x = randn(2, 4, 6, 3, 2)  # (B, T, C, H, W)
    out = blk(x)
    assert out.shape == x.shape
    for b in range(2):
        for i in range(3):
            for j in range(2):
                seq = x[b, :, :, i, j]  # (T, C)
                torch.testing.assert_close(out[b, :, :, i, j], blk.lstm(seq[None])[0][0])
                torch.testing.assert_close(
                    out[b, :, :, i, j].double(),
                    _lstm_step_float64(blk.lstm, seq),
                    atol=1e-5,
                    rtol=0,
                )


def test_sinusoidal_pos_emb_hand_values():
    # dim 4, M 10000: frequencies 1 and 10000^(-1/2) = 0.01; layout [sin..., cos...]
    emb = SinusoidalPosEmb(4)(torch.arange(3))
    want = torch.tensor(
        [[math.sin(p), math.sin(0.01 * p), math.cos(p), math.cos(0.01 * p)] for p in range(3)]
    )
    torch.testing.assert_close(emb, want.float(), atol=1e-6, rtol=0)


def _tmixer_float64(mixer: Tmixer, x: torch.Tensor) -> torch.Tensor:
    """Independent re-derivation of Tmixer from FACTS §3 in float64. x: (B, T, C, H, W) -> (B, C, H, W)"""
    B, T, C, H, W = x.shape
    x = x.double()
    half = C // 2
    freq = torch.tensor([10000 ** (-k / half) for k in range(half)], dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq
    enc = torch.cat([ang.sin(), ang.cos()], dim=1)  # (T, C)
    tok = x.permute(0, 1, 3, 4, 2).reshape(B, T, H * W, C)
    q_tok = tok[:, -1] + enc[-1]
    k_tok = (tok + enc[None, :, None, :]).reshape(B, T * H * W, C)
    v_tok = tok.reshape(B, T * H * W, C)

    def ln(z, mod):
        u = z.mean(-1, keepdim=True)
        s = ((z - u) ** 2).mean(-1, keepdim=True)
        return (z - u) / torch.sqrt(s + 1e-5) * mod.weight.double() + mod.bias.double()

    def lin(z, weight, bias):
        return z @ weight.double().T + bias.double()

    for blk in mixer.blocks:
        heads = blk.attn.num_heads
        wq, wk, wv = blk.attn.in_proj_weight.chunk(3)
        bq, bk, bv = blk.attn.in_proj_bias.chunk(3)
        q = lin(ln(q_tok, blk.norm1), wq, bq)
        k = lin(ln(k_tok, blk.norm1), wk, bk)
        v = lin(ln(v_tok, blk.norm1), wv, bv)
        d = C // heads
        outs = []
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            att = (q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d)).softmax(-1)
            outs.append(att @ v[..., sl])
        a = lin(torch.cat(outs, -1), blk.attn.out_proj.weight, blk.attn.out_proj.bias)
        z = q_tok + a
        hid = lin(ln(z, blk.norm2), blk.mlp.fc1.weight, blk.mlp.fc1.bias)
        hid = 0.5 * hid * (1 + torch.erf(hid / math.sqrt(2)))  # exact GELU
        q_tok = z + lin(hid, blk.mlp.fc2.weight, blk.mlp.fc2.bias)
    return q_tok.reshape(B, H, W, C).permute(0, 3, 1, 2)


@pytest.mark.parametrize("n", [64, 128])
def test_tmixer_matches_float64_attention_derivation(n):
    torch.manual_seed(0)
    mixer = Tmixer(n).eval()
    assert [b.attn.num_heads for b in mixer.blocks] == [n // 64] * 2
    x = randn(2, 5, n, 3, 2, seed=5)
    out = mixer(x)
    assert out.shape == (2, n, 3, 2)
    torch.testing.assert_close(out.double(), _tmixer_float64(mixer, x), atol=2e-5, rtol=0)
