"""ClipAndMeasure gives the bits of torch.nn.utils.clip_grad_norm_ (GradientClip) on both sides of max_norm.

It skips the multiplication of every gradient when the clip coefficient is exactly 1;
these tests hold it to clip_grad_norm_ itself, not to a value it computed.
"""

from types import SimpleNamespace

import pytest
import torch
from fastai.callback.core import CancelStepException

from reference.callbacks import ClipAndMeasure


def _model_with_grads(scale: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Linear(5, 3, bias=False))
    for p in model.parameters():
        p.grad = torch.randn_like(p) * scale
    model[0].bias.grad = None  # a parameter without gradient is left out, as in clip_grad_norm_
    return model


def _run(model: torch.nn.Module, max_norm: float) -> SimpleNamespace:
    learn = SimpleNamespace(model=model, grad_norm=None, step_state=None)
    cb = ClipAndMeasure(max_norm)
    cb.learn = learn
    cb.before_step()
    return learn


@pytest.mark.parametrize("scale", [1e-3, 0.1, 10.0, 1e3])  # norms far below and above 3
def test_same_bits_as_clip_grad_norm(scale):
    ours, theirs = _model_with_grads(scale), _model_with_grads(scale)
    learn = _run(ours, 3.0)
    norm = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 3.0)
    assert learn.grad_norm == float(norm)
    assert learn.step_state == "stepped"
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad)
            assert a.grad.view(torch.int32).equal(b.grad.view(torch.int32))  # sign of zero too
    if scale >= 10.0:  # the clipped side really changed the gradients
        assert not torch.equal(ours[1].weight.grad, _model_with_grads(scale)[1].weight.grad)


def test_norm_just_below_the_threshold_is_not_clipped():
    model = _model_with_grads(1.0)
    total = torch.nn.utils.get_total_norm(
        [p.grad for p in model.parameters() if p.grad is not None]
    )
    before = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    _run(model, float(total) * 1.0001)
    after = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_non_finite_norm_drops_the_step():
    model = _model_with_grads(1.0)
    model[1].weight.grad[0, 0] = float("nan")
    zeroed = []
    learn = SimpleNamespace(model=model, grad_norm=None, step_state=None,
                            opt=SimpleNamespace(zero_grad=lambda: zeroed.append(True)))  # fmt: skip
    cb = ClipAndMeasure(3.0)
    cb.learn = learn
    with pytest.raises(CancelStepException):
        cb.before_step()
    assert zeroed == [True]
    assert learn.grad_norm != learn.grad_norm  # NaN is recorded for batches.csv


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name", ["0.weight", "1.running_var"])  # a parameter, a buffer
def test_all_finite_sees_one_bad_value_anywhere(bad, name):
    from reference.run_state import all_finite

    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    assert all_finite(model)
    with torch.no_grad():
        model.state_dict()[name].view(-1)[-1] = bad  # state_dict tensors share the storage
    assert not all_finite(model)
