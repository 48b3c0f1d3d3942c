"""Weights: ImageNet encoder checkpoints through ``pre=``, full-model checkpoints, user errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from timm.models.coat import CoaT
from torchvision.models import resnet18

from reference.errors import WeightsError
from reference.models import (
    ARCHS,
    CoaT_U,
    CoaT_ULSTM,
    ResNet18_U,
    load_checkpoint,
    load_encoder_weights,
    read_state_dict,
)

HEAD_KEYS = {"head.weight", "head.bias", "norm4.weight", "norm4.bias"}


@pytest.fixture(scope="module")
def imagenet_sd():
    """A fake ImageNet CoaT checkpoint of the tiny arch: a timm classifier, random init."""
    torch.manual_seed(123)
    clf = CoaT(img_size=224, patch_size=4, num_classes=10, **ARCHS["tiny"])
    sd = clf.state_dict()
    assert HEAD_KEYS <= set(sd)  # the classifier has what the encoder lacks
    return sd


@pytest.fixture(scope="module")
def tiny_sd():
    torch.manual_seed(0)
    return CoaT_ULSTM(arch="tiny").state_dict()


def _write(path, sd, fmt):
    if fmt == "official":
        torch.save({"model": sd}, path)
    elif fmt == "plain":
        torch.save(sd, path)
    else:
        # Like timm's hub files: one name per shared tensor (CoaT shares its cpe/crpe
        # convs between the blocks of a stage), as safetensors refuses aliases.
        seen, unique = set(), {}
        for k, v in sd.items():
            if v.data_ptr() not in seen:
                seen.add(v.data_ptr())
                unique[k] = v.contiguous()
        assert len(unique) < len(sd)
        save_file(unique, str(path))


@pytest.mark.parametrize("fmt", ["official", "plain", "safetensors"])
def test_pre_loads_imagenet_encoder_and_reports_ignored_keys(tmp_path, imagenet_sd, fmt, capsys):
    path = tmp_path / ("ck.safetensors" if fmt == "safetensors" else "ck.pth")
    _write(path, imagenet_sd, fmt)
    model = CoaT_U(arch="tiny", pre=path)
    report = model.pre_report
    assert set(report.ignored) == HEAD_KEYS
    assert report.missing == []
    n_enc = len(model.enc.state_dict())
    if fmt == "safetensors":  # one name per shared tensor; the loop below checks every alias
        assert len(report.loaded) < n_enc
    else:
        assert len(report.loaded) == n_enc
    for k, v in model.enc.state_dict().items():
        assert torch.equal(v, imagenet_sd[k]), k
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0
    assert f"loaded {len(report.loaded)} tensors" in line and "ignored 4" in line
    assert "missing 0" in line


def test_pre_with_partial_checkpoint_warns_about_random_tensors(tmp_path, imagenet_sd):
    partial = {k: v for k, v in imagenet_sd.items() if not k.startswith("serial_blocks4")}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.warns(UserWarning, match="keep their random init"):
        model = CoaT_U(arch="tiny", pre=path)
    assert all(k.startswith("serial_blocks4") for k in model.pre_report.missing)


def test_pre_of_another_arch_is_a_weights_error(tmp_path, imagenet_sd):
    path = tmp_path / "tiny.pth"
    torch.save({"model": imagenet_sd}, path)
    with pytest.raises(WeightsError, match="wrong shape") as e:
        CoaT_U(arch="mini", pre=path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_pre_accepts_a_full_model_checkpoint(tmp_path, tiny_sd):
    path = tmp_path / "full.pth"
    torch.save(tiny_sd, path)
    model = CoaT_U(arch="tiny", pre=path)
    assert model.pre_report.missing == []
    assert torch.equal(model.enc.patch_embed1.proj.weight, tiny_sd["enc.patch_embed1.proj.weight"])


@pytest.mark.parametrize("wrap", ["plain", "module", "fastai", "safetensors"])
def test_load_checkpoint_round_trip(tmp_path, tiny_sd, wrap):
    sd = tiny_sd
    if wrap == "module":  # nn.DataParallel
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / ("model.safetensors" if wrap == "safetensors" else "model.pth")
    if wrap == "safetensors":
        _write(path, sd, "safetensors")
    else:
        torch.save({"model": sd} if wrap == "fastai" else sd, path)
    torch.manual_seed(99)  # a different init, to be overwritten
    model = CoaT_ULSTM(arch="tiny")
    assert not torch.equal(model.dec4.conv1[0].weight, tiny_sd["dec4.conv1.0.weight"])
    assert load_checkpoint(model, path) is model
    for k, v in model.state_dict().items():
        assert torch.equal(v, tiny_sd[k]), k


def test_load_checkpoint_of_another_model_names_missing_keys(tmp_path, tiny_sd):
    path = tmp_path / "ulstm.pth"
    torch.save(tiny_sd, path)
    model = CoaT_U(arch="tiny")
    with pytest.raises(WeightsError) as e:
        load_checkpoint(model, path)
    msg = str(e.value)
    assert str(path) in msg and "unexpected" in msg and "lstm.0.lstm.weight_ih_l0" in msg
    assert "\n" not in msg


def test_load_checkpoint_shape_mismatch_names_the_tensor(tmp_path, tiny_sd):
    path = tmp_path / "ulstm.pth"
    torch.save(tiny_sd, path)
    model = CoaT_ULSTM(arch="tiny", num_classes=2)
    before = model.final_conv[0].conv[3].weight.clone()
    with pytest.raises(WeightsError, match=r"final_conv\.0\.conv\.3\.weight \(1, 48, 1, 1\)"):
        load_checkpoint(model, path)
    assert torch.equal(model.final_conv[0].conv[3].weight, before)  # nothing half-loaded


def test_missing_and_unreadable_files_are_one_line_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read") as e:
        CoaT_U(arch="tiny", pre=garbage)
    assert "\n" not in str(e.value) and str(garbage) in str(e.value)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError, match="cannot read"):
        read_state_dict(bad_st)
    not_sd = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_sd)
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(not_sd)


def test_checkpoint_that_fits_no_encoder_key_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="no tensor matches the encoder"):
        load_encoder_weights(CoaT(patch_size=4, return_interm_layers=True, **ARCHS["tiny"]), path)


def test_resnet18_baseline_loads_torchvision_weights(tmp_path, capsys):
    torch.manual_seed(5)
    sd = resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(sd, path)
    model = ResNet18_U(pre=path)
    assert torch.equal(model.enc.conv1.weight, sd["conv1.weight"])
    assert "ignored 2 (fc.weight, fc.bias)" in capsys.readouterr().out
