"""The model checks: weights copied before the values rung, strict names at the state_dict
rung, and failures that name the diverging submodule and the size of the error."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from checks.catalog import SOLUTIONS_DIR, get_exercise
from checks.impl import Impl
from checks.ladder import CheckFailed, Ladder
from checks.modelcheck import copy_weights, same_tensors, strict_load
from checks.runner import run_check


def _copy_solutions(tmp_path: Path) -> Path:
    d = tmp_path / "impl"
    shutil.copytree(SOLUTIONS_DIR, d, ignore=shutil.ignore_patterns("__pycache__"))
    return d


def _ladder() -> Ladder:
    c = Ladder(get_exercise("unet-block"), Impl("solutions"))
    c.current = "shapes"
    return c


class _Ref(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 1)
        self.norm = nn.LayerNorm(4)


class _Renamed(nn.Module):
    """Same tensors, other names and order of creation."""

    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(4)
        self.first = nn.Conv2d(3, 4, 1)


def test_copy_weights_pairs_renamed_tensors_by_shape_and_order():
    ref, mine = _Ref(), _Renamed()
    same_tensors(_ladder(), ref, mine, "Renamed()")  # names aside, the shapes agree
    mapping = copy_weights(_ladder(), ref, mine, "Renamed()")
    assert mapping == {
        "ln.weight": "norm.weight",
        "ln.bias": "norm.bias",
        "first.weight": "conv1.weight",
        "first.bias": "conv1.bias",
    }
    assert torch.equal(mine.first.weight, ref.conv1.weight)
    assert torch.equal(mine.ln.bias, ref.norm.bias)


def test_strict_load_lists_missing_and_unexpected_keys():
    with pytest.raises(CheckFailed) as e:
        strict_load(_ladder(), _Ref(), _Renamed(), "Renamed()")
    msg = e.value.message
    assert "missing in yours (4): conv1.weight (4, 3, 1, 1), conv1.bias (4,), norm.weight" in msg
    assert "unexpected in yours (4): ln.weight (4,), ln.bias (4,), first.weight" in msg


def test_an_extra_tensor_fails_with_the_counts_per_shape():
    mine = _Ref()
    mine.extra = nn.LayerNorm(4)
    with pytest.raises(CheckFailed) as e:
        same_tensors(_ladder(), _Ref(), mine, "Mine()")
    assert "(reference: 4 tensors, yours: 6)" in e.value.message
    assert "(4,): reference 3, yours 5" in e.value.message
    assert "yours only: extra.weight (4,), extra.bias (4,)" in e.value.message


def test_eps_outside_the_square_root_fails_coat_ulstm_at_values_naming_the_module(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "layers.py"
    p.write_text(p.read_text().replace("torch.sqrt(s + self.eps)", "(torch.sqrt(s) + self.eps)"))
    r = run_check("coat-ulstm", impl)
    assert (r.status, r.rung) == ("failed", "values"), r.message
    assert "CoaT_ULSTM(arch='mini')((2, 3, 5, 16, 32)), seed 0" in r.message
    assert "max |got - expected| = " in r.message
    # A LayerNorm2d of the decoder (which one depends on how far the tiny error grows).
    assert re.search(r"first divergence \(forward\): `dec\d\.shuf\.1` \(LayerNorm2d\)", r.message)
    assert "max |A - B| = " in r.message


def test_icnr_init_that_ignores_init_fails_at_values(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "layers.py"
    text = p.read_text()
    old = "k = init(torch.zeros(nf_sub // scale**2, ni, kh, kw, dtype=x.dtype, device=x.device))"
    assert old in text
    new = "k = nn.init.kaiming_normal_(torch.zeros(nf_sub // scale**2, ni, kh, kw))"
    p.write_text(text.replace(old, new))
    r = run_check("pixel-shuffle-icnr", impl)
    assert (r.status, r.rung) == ("failed", "values"), r.message
    assert "icnr_init(w, scale=2, init=fill_with_arange), w: (12, 5, 1, 1)" in r.message


def test_an_imagenet_normalisation_before_the_encoder_names_the_learners_forward(tmp_path):
    """A learner-style transcription that normalises with ImageNet statistics before the
    encoder: the report names CoaT_ULSTM.forward, before `enc`, never the given encoder."""
    impl = _copy_solutions(tmp_path)
    p = impl / "coat.py"
    old = "        x1, x2, x3, x4 = self.enc(x).values()\n"
    assert p.read_text().count(old) == 1
    p.write_text(
        p.read_text().replace(
            old,
            "        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)\n"
            "        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)\n"
            "        x = (x - mean) / std\n" + old,
        )
    )
    r = run_check("coat-ulstm", impl)
    assert (r.status, r.rung) == ("failed", "values"), r.message
    assert "first divergence (forward): in `CoaT_ULSTM.forward`, before `enc`" in r.message
    assert "input of `enc`" in r.message
    assert "patch_embed" not in r.message


def test_rename_rule_finds_one_consistent_rename():
    from checks.modelcheck import rename_rule

    ref = ["final_conv.0.shuf.0.weight", "final_conv.0.conv.3.bias"]
    mine = ["final_conv.shuf.0.weight", "final_conv.conv.3.bias"]
    assert rename_rule(ref, mine) == ("final_conv.0", "final_conv")
    assert rename_rule(mine, ref) == ("final_conv", "final_conv.0")
    ref = ["dec4.bn.weight", "dec3.bn.weight", "dec4.bn.bias"]
    assert rename_rule(ref, [k.replace(".bn.", ".norm.") for k in ref]) == ("bn", "norm")
    assert rename_rule(["weight", "bias"], ["gamma", "beta"]) is None  # two renames
    assert rename_rule(["a.weight"], ["a.weight", "b.weight"]) is None


def test_an_unwrapped_final_conv_is_reported_as_one_rename_with_its_fix(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "coat.py"
    old = "self.final_conv = nn.Sequential(UpBlock(96 + 32 * 3, num_classes, blur=True))"
    p.write_text(
        p.read_text().replace(old, "self.final_conv = UpBlock(192, num_classes, blur=True)")
    )
    r = run_check("coat-ulstm", impl)
    assert (r.status, r.rung) == ("failed", "state_dict"), r.message
    assert "failed: one rename" in r.message
    assert "your keys say `final_conv` where the original's say `final_conv.0`" in r.message
    assert "the original wraps your `final_conv` (UpBlock) in an nn.Sequential" in r.message
