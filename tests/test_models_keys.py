"""State-dict names, shapes, key counts and parameter counts against the team's checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from reference.errors import ConfigError
from reference.models import ARCHS, MODELS, build_coat_encoder, get_model, list_models

KEYS = json.loads((Path(__file__).parent / "data" / "checkpoint_keys.json").read_text())


def build_on_meta(name: str, **kw) -> torch.nn.Module:
    # Shapes and counts only: the meta device skips allocation and random init.
    with torch.device("meta"):
        return get_model(name, **kw)


@pytest.mark.parametrize("pair", sorted(KEYS))
def test_state_dict_matches_team_checkpoint(pair):
    name, arch = pair.split("/")
    want = KEYS[pair]
    model = build_on_meta(name, arch=arch)
    sd = model.state_dict()
    non_enc = {k: list(v.shape) for k, v in sd.items() if not k.startswith("enc.")}
    assert non_enc == want["non_encoder_keys"]
    assert list(non_enc) == list(want["non_encoder_keys"])  # same creation order too
    assert len(sd) == want["n_keys"]
    assert sum(p.numel() for p in model.parameters()) == want["n_params"]


def test_medium_coat_ulstm_has_53_323_425_parameters_on_cpu():
    model = get_model("CoaT_ULSTM", arch="medium")
    assert sum(p.numel() for p in model.parameters()) == 53_323_425  # FACTS §3
    assert sum(p.numel() for p in model.enc.parameters()) == 44_057_024
    assert sum(p.numel() for p in model.lstm.parameters()) == 2_923_008


@pytest.mark.parametrize("arch", ["mini", "small", "medium"])
def test_encoder_keys_equal_timm_coat_lite(arch):
    with torch.device("meta"):
        ours = build_coat_encoder(arch)
        theirs = timm.create_model(
            f"coat_lite_{arch}",
            pretrained=False,
            return_interm_layers=True,
            out_features=["x1_nocls", "x2_nocls", "x3_nocls", "x4_nocls"],
        )
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


def test_medium_encoder_has_592_keys():
    with torch.device("meta"):
        assert len(build_coat_encoder("medium").state_dict()) == 592  # FACTS §3, measured


def test_registry_lists_every_model_by_class_name():
    assert list_models() == [
        "CoaT_ULSTM",
        "CoaT_U",
        "CoaT_UT",
        "ResNet18_U",
        "ResNet18_ULSTM",
        "ResNet18_SimplerFCN",
    ]
    for name, cls in MODELS.items():
        assert cls.__name__ == name


def test_unknown_model_name_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match="did you mean 'CoaT_ULSTM'"):
        get_model("CoaT_LSTM")


def test_unknown_arch_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match="did you mean 'medium'"):
        get_model("CoaT_U", arch="meduim")


def test_tiny_arch_is_small_and_heads_divide_dims():
    dims = ARCHS["tiny"]["embed_dims"]
    assert all(d % 8 == 0 for d in dims)  # 8 CoaT heads
    for n in dims[-2:]:
        assert n // 64 >= 1 and n % (n // 64) == 0  # Tmixer heads
    model = build_on_meta("CoaT_ULSTM", arch="tiny")
    assert (
        sum(p.numel() for p in model.enc.parameters()) < 250_000
    )  # 231,296: about 0.5% of medium's 44M


def test_every_registered_model_takes_pre_arch_num_classes_ps():
    import inspect

    for name, cls in MODELS.items():
        params = list(inspect.signature(cls).parameters)
        assert params[:4] == ["pre", "arch", "num_classes", "ps"], name
    with pytest.raises(ConfigError, match="resnet18"):
        build_on_meta("ResNet18_U", arch="resnet34")
