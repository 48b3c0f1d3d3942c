"""Forward behaviour of the CoaT family and baselines: shapes, frames used, sizes, timm parity."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from reference.models import (
    CoaT_U,
    CoaT_ULSTM,
    CoaT_UT,
    build_coat_encoder,
    coat_features,
    get_model,
)

OUT_FEATURES = ["x1_nocls", "x2_nocls", "x3_nocls", "x4_nocls"]


_BUILT: dict[type, torch.nn.Module] = {}


def tiny(cls):
    """One seeded tiny model per class for the whole file (building costs more than a forward)."""
    if cls not in _BUILT:
        torch.manual_seed(0)
        _BUILT[cls] = cls(arch="tiny").eval()
    return _BUILT[cls]


def rand_clip(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


def test_medium_coat_ulstm_shape_trace_matches_facts():
    # On the meta device every op computes shapes only: the full medium model at
    # 256 x 256 (5 frames at 512 x 512 in the encoder) traces in seconds on CPU.
    with torch.device("meta"):
        model = CoaT_ULSTM(arch="medium").eval()
    seen: dict[str, tuple] = {}

    def grab(name, use_input=False):
        def hook(module, inputs, output):
            t = inputs[0] if use_input else output
            seen[name] = tuple(t.shape)

        return hook

    enc = model.enc
    hooks = [
        enc.patch_embed1.register_forward_hook(grab("upsampled", use_input=True)),
        enc.patch_embed2.register_forward_hook(grab("x1", use_input=True)),
        enc.patch_embed3.register_forward_hook(grab("x2", use_input=True)),
        enc.patch_embed4.register_forward_hook(grab("x3", use_input=True)),
        model.lstm[1].register_forward_hook(grab("x4_lstm")),
        model.lstm[0].register_forward_hook(grab("x3_lstm")),
        model.dec4.register_forward_hook(grab("dec3")),
        model.dec3.register_forward_hook(grab("dec2")),
        model.dec2.register_forward_hook(grab("dec1")),
        model.fpn.register_forward_hook(grab("fpn")),
        model.final_conv.register_forward_hook(grab("final_conv")),
    ]
    with torch.no_grad():
        out = model(torch.empty(1, 3, 5, 256, 256, device="meta"))
    for h in hooks:
        h.remove()
    # FACTS §3, CoaT_ULSTM forward steps 2-6 for (1, 3, 5, 256, 256), medium
    assert seen == {
        "upsampled": (5, 3, 512, 512),
        "x1": (5, 128, 128, 128),
        "x2": (5, 256, 64, 64),
        "x3": (5, 320, 32, 32),
        "x3_lstm": (1, 5, 320, 32, 32),
        "x4_lstm": (1, 5, 512, 16, 16),
        "dec3": (1, 384, 32, 32),
        "dec2": (1, 192, 64, 64),
        "dec1": (1, 96, 128, 128),
        "fpn": (1, 192, 128, 128),
        "final_conv": (1, 1, 256, 256),
    }
    assert out.shape == (1, 1, 256, 256)


@pytest.mark.parametrize("cls", [CoaT_ULSTM, CoaT_UT])
def test_eight_frame_input_gives_the_output_of_its_first_five_frames(cls):
    model = tiny(cls)
    x8 = rand_clip((1, 3, 8, 32, 32))
    with torch.no_grad():
        out8 = model(x8)
        out5 = model(x8[:, :, :5])
        x_other_tail = x8.clone()
        x_other_tail[:, :, 5:] = rand_clip((1, 3, 3, 32, 32), seed=7)
        out_tail = model(x_other_tail)
    assert out8.shape == (1, 1, 32, 32)
    assert torch.equal(out8, out5)
    assert torch.equal(out8, out_tail)


@pytest.mark.parametrize("cls", [CoaT_ULSTM, CoaT_UT])
def test_temporal_models_use_earlier_frames(cls):
    model = tiny(cls)
    x = rand_clip((1, 3, 5, 32, 32))
    y = x.clone()
    y[:, :, 0] = rand_clip((1, 3, 32, 32), seed=9)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(y))


def test_coat_u_uses_frame_4_only():
    model = tiny(CoaT_U)
    x = rand_clip((2, 3, 5, 32, 32))
    others = x.clone()
    others[:, :, [0, 1, 2, 3]] = rand_clip((2, 3, 4, 32, 32), seed=3)
    frame4 = x.clone()
    frame4[:, :, 4] = rand_clip((2, 3, 32, 32), seed=4)
    with torch.no_grad():
        base = model(x)
        assert torch.equal(base, model(others))
        assert not torch.allclose(base, model(frame4))
        assert torch.equal(base, model(x[:, :, 4]))  # a single (B, 3, H, W) frame works too


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (128, 128), (64, 96)])
def test_any_size_divisible_by_16_works(size):
    model = tiny(CoaT_ULSTM)
    with torch.no_grad():
        out = model(rand_clip((1, 3, 5, *size)))
    assert out.shape == (1, 1, *size)
    assert torch.isfinite(out).all()


def test_bad_inputs_raise_one_clear_value_error():
    model = tiny(CoaT_ULSTM)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(rand_clip((1, 3, 5, 72, 72)))
    with pytest.raises(ValueError, match="at least 5 frames"):
        model(rand_clip((1, 3, 4, 32, 32)))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(rand_clip((1, 3, 32, 32)))


def test_encoder_loop_equals_timm_forward_features_at_built_size():
    torch.manual_seed(0)
    enc = build_coat_encoder("tiny", img_size=128).eval()
    x = rand_clip((3, 3, 128, 128))
    with torch.no_grad():
        want = enc.forward_features(x)
        got = coat_features(enc, x)
    assert list(want) == OUT_FEATURES
    for k, g in zip(OUT_FEATURES, got):
        assert torch.equal(want[k], g), k


def test_encoder_loop_at_other_size_equals_timm_built_for_that_size():
    # One encoder built for 512 evaluates a 96 x 160 input exactly like timm's
    # own model built for 96 x 160 with the same weights.
    torch.manual_seed(0)
    enc = build_coat_encoder("tiny", img_size=512).eval()
    ref = timm.models.coat.CoaT(
        img_size=(96, 160),
        patch_size=4,
        return_interm_layers=True,
        out_features=OUT_FEATURES,
        embed_dims=(16, 32, 64, 128),
        serial_depths=(1, 1, 1, 1),
        mlp_ratios=(2, 2, 2, 2),
    ).eval()
    ref.load_state_dict(enc.state_dict())
    x = rand_clip((2, 3, 96, 160))
    with torch.no_grad():
        want = ref.forward_features(x)
        got = coat_features(enc, x)
    for k, g in zip(OUT_FEATURES, got):
        assert torch.equal(want[k], g), k


def test_bilinear_by_one_is_an_identity_so_up_result_1_is_skipped():
    x = rand_clip((2, 1, 32, 32)) * 20 - 10
    same = F.interpolate(x, scale_factor=1, mode="bilinear", align_corners=False)
    assert torch.equal(same, x)
    model = tiny(CoaT_U)
    assert model.up_result == 1


@pytest.mark.parametrize("name", ["ResNet18_U", "ResNet18_ULSTM", "ResNet18_SimplerFCN"])
def test_baselines_map_clips_to_frame_logits(name):
    torch.manual_seed(0)
    model = get_model(name).eval()
    x = rand_clip((1, 3, 5, 32, 48))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 1, 32, 48)
    assert torch.isfinite(out).all()


def test_forward_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = CoaT_ULSTM(arch="tiny").train()
    out = model(rand_clip((1, 3, 5, 32, 32)))
    out.mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    # cls tokens are removed before any output is computed: timm's CoaT never uses them.
    assert all(n.startswith("enc.cls_token") for n in no_grad), no_grad
