"""reference.diagnose: first divergence, NaN hunt and shape trace on small hand-built models."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reference.diagnose import (
    first_divergence,
    format_shape_trace,
    nan_hunt,
    shape_trace,
)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.GELU(), nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)), nn.Linear(8, 2)
    )


X = torch.linspace(-1, 1, 12).reshape(3, 4)


class _DoubleGrad(torch.autograd.Function):
    """Identity forward; its backward doubles the gradient (a wrong hand-written backward)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class Passthrough(nn.Module):
    def __init__(self, wrong_backward: bool = False) -> None:
        super().__init__()
        self.wrong_backward = wrong_backward

    def forward(self, x):
        return _DoubleGrad.apply(x) if self.wrong_backward else x.clone()


# --------------------------------------------------------------------------- first divergence


def test_identical_models_do_not_diverge():
    a = mlp()
    report = first_divergence(a, copy.deepcopy(a), X)
    assert not report.diverged and report.ok
    # 7 module outputs, plus gradients w.r.t. outputs/inputs, plus 8 parameter gradients.
    assert report.n_compared > 7 + 8
    assert str(report).startswith("no divergence")


def test_changed_bias_is_reported_at_exactly_that_module():
    a = mlp()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[2][0].bias[5] += 0.25
    report = first_divergence(a, b, X)
    assert report.diverged and report.phase == "forward"
    assert report.module == "2.0" and report.cls_a == "Linear" and report.culprit == "2.0"
    # A bias shift of 0.25 on output column 5 moves exactly that column, by exactly 0.25.
    assert report.max_abs_diff == pytest.approx(0.25, abs=1e-6)
    assert report.index[1] == 5
    assert report.close_fraction == pytest.approx(7 / 8)
    assert report.shape_a == report.shape_b == (3, 8)
    assert "inside this module" in report.note
    assert "`2.0` (Linear)" in str(report)


def test_changed_layernorm_weight_is_reported_there_not_later():
    a = mlp()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[2][1].weight[0] = 3.0
    report = first_divergence(a, b, X)
    assert report.module == "2.1" and report.cls_a == "LayerNorm"


def test_wrong_backward_is_reported_in_backward_with_its_module():
    a = nn.Sequential(nn.Linear(4, 8), Passthrough(), nn.Linear(8, 2))
    b = copy.deepcopy(a)
    b[1].wrong_backward = True
    report = first_divergence(a, b, X)
    assert report.phase == "backward"
    # The first gradient to differ is the one reaching the output of `0`;
    # the backward that produced it is that of `1`.
    assert report.module == "0" and report.where == "gradient w.r.t. output"
    assert report.culprit == "1"
    assert report.value_b == pytest.approx(2 * report.value_a)


class Cut(nn.Module):
    def __init__(self, detach: bool) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.l, self.m, self.detach = nn.Linear(4, 4), nn.Linear(4, 2), detach

    def forward(self, x):
        h = self.l(x)
        return self.m(h.detach() if self.detach else h)


def test_a_detached_graph_in_b_is_reported_where_the_gradient_stops():
    report = first_divergence(Cut(False), Cut(True), X)
    assert report.phase == "backward" and report.module == "l"
    assert "no gradient reached it in B" in report.where and ".detach()" in report.note
    assert report.culprit == "(model)"  # the forward code that detaches


class GradOnly(nn.Module):
    """Adds p - p.detach(): zero in the forward, but p's gradient is the output gradient
    (times ``scale``)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(8))
        self.scale = scale

    def forward(self, x):
        return x + self.scale * (self.p - self.p.detach())


def test_parameter_gradient_only_difference_names_its_owner():
    a = nn.Sequential(nn.Linear(4, 8), GradOnly(1.0), nn.Linear(8, 2))
    b = copy.deepcopy(a)
    b[1].scale = 3.0
    report = first_divergence(a, b, X)
    assert report.phase == "parameter gradient"
    assert report.module == "1" and report.cls_a == "GradOnly"
    assert report.where == "gradient of 1.p"
    assert report.value_b == pytest.approx(3 * report.value_a)


class WithLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1]) + h.sum()


def test_tuple_outputs_of_an_lstm_are_compared():
    a = WithLSTM()
    b = copy.deepcopy(a)
    x = torch.linspace(-1, 1, 2 * 3 * 4).reshape(2, 3, 4)
    assert first_divergence(a, copy.deepcopy(a), x).ok
    with torch.no_grad():
        b.lstm.bias_hh_l0[0] += 0.5
    report = first_divergence(a, b, x)
    assert report.module == "lstm" and report.cls_a == "LSTM"
    assert report.where.startswith("output[")


class DictOut(nn.Module):
    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return {"same": x * 2, "moved": x + self.shift}


class UsesDict(nn.Module):
    def __init__(self, shift: float) -> None:
        super().__init__()
        self.split = DictOut(shift)

    def forward(self, x):
        d = self.split(x)
        return d["same"] + d["moved"]


def test_dict_outputs_name_the_differing_key():
    report = first_divergence(UsesDict(0.0), UsesDict(0.5), X)
    assert report.module == "split" and report.where == "output['moved']"
    assert report.max_abs_diff == pytest.approx(0.5)


class Flaky(nn.Module):
    """Identity on the first call, x * 1.5 on the second (when ``broken``)."""

    def __init__(self, broken: bool) -> None:
        super().__init__()
        self.broken, self.calls = broken, 0

    def forward(self, x):
        self.calls += 1
        return x * 1.5 if self.broken and self.calls % 2 == 0 else x.clone()


class TwoCalls(nn.Module):
    def __init__(self, broken: bool) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.lin = nn.Linear(4, 4)
        self.act = Flaky(broken)

    def forward(self, x):
        return self.act(self.lin(self.act(x)))


def test_repeated_calls_are_labelled_and_the_right_call_is_named():
    a, b = TwoCalls(False), TwoCalls(True)
    report = first_divergence(a, b, X, backward=False)
    assert report.module == "act#2"
    assert [r.name for r in shape_trace(a, X)] == ["(model)", "act#1", "lin", "act#2"]


class FunctionalGap(nn.Module):
    """Two children with plain tensor code between them (no module to hook there)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.first, self.second, self.factor = nn.Linear(4, 4), nn.Linear(4, 2), factor

    def forward(self, x):
        return self.second(self.first(x) * self.factor)


def test_difference_in_code_between_modules_points_at_the_caller():
    report = first_divergence(FunctionalGap(1.0), FunctionalGap(2.0), X)
    # `first` matches; `second` is the first call whose output differs, but its
    # inputs already differ, so the code to look at is the caller's forward.
    assert report.module == "second" and report.culprit == "(model)"
    assert report.in_code == "`FunctionalGap.forward`" and report.between == ("first", "second")
    assert str(report).startswith(
        "first divergence (forward): in `FunctionalGap.forward`, between `first` and `second`"
    )
    assert "the input of `second` already differs" in report.note


class Wrapper(nn.Module):
    """Given code that hands its input to its only child unchanged."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.inner = nn.Linear(4, 4)

    def forward(self, x):
        return self.inner(x)


class ScalesBeforeGiven(nn.Module):
    def __init__(self, factor: float, wrapped: bool) -> None:
        super().__init__()
        self.factor, self.wrapped = factor, wrapped
        self.enc = Wrapper()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = x * self.factor
        h = self.enc(x) if self.wrapped else self.enc.inner(x)  # A skips the wrapper's call
        return self.head(h)


def test_a_difference_before_given_code_names_the_callers_code_not_a_submodule():
    report = first_divergence(
        ScalesBeforeGiven(1.0, False), ScalesBeforeGiven(3.0, True), X, given=("enc",)
    )
    assert report.in_code == "`ScalesBeforeGiven.forward`"
    assert report.between == (None, "enc")  # not `enc.inner`
    assert "before `enc`, its first module call" in str(report)
    assert "enc.inner" not in str(report)


def test_a_difference_inside_given_code_is_reported_at_the_given_module():
    a, b = ScalesBeforeGiven(1.0, True), ScalesBeforeGiven(1.0, True)
    with torch.no_grad():
        b.enc.inner.weight.add_(1.0)
    report = first_divergence(a, b, X, given=("enc",))
    assert report.module == "enc" and "given code" in report.note


def test_shape_mismatch_is_a_divergence():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    b = nn.Sequential(nn.Linear(4, 9), nn.Linear(9, 2))
    report = first_divergence(a, b, X)
    assert report.module == "0" and report.shape_a == (3, 8) and report.shape_b == (3, 9)
    assert report.max_abs_diff is None and "shapes differ" in report.where


class Renamed(nn.Module):
    """The same computation as ``mlp()`` with the learner's own attribute names."""

    def __init__(self, ref: nn.Sequential) -> None:
        super().__init__()
        self.first, self.act = copy.deepcopy(ref[0]), nn.GELU()
        self.inner, self.norm = copy.deepcopy(ref[2][0]), copy.deepcopy(ref[2][1])
        self.out = copy.deepcopy(ref[3])

    def forward(self, x):
        return self.out(self.norm(self.inner(self.act(self.first(x)))))


def test_differently_named_model_is_matched_by_order_and_says_so():
    a = mlp()
    b = Renamed(a)
    assert first_divergence(a, b, X).ok
    with torch.no_grad():
        b.inner.bias[0] -= 1.0
    report = first_divergence(a, b, X)
    assert report.module == "2.0" and report.module_b == "inner"
    assert "order" in report.matched_by and "names differ" in report.note
    assert "in B: `inner`" in str(report)


class WithActModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.lin1, self.act, self.lin2 = nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)

    def forward(self, x):
        return self.lin2(self.act(self.lin1(x)))


class WithActFunction(WithActModule):
    """The learner writes the activation as a function: one module fewer."""

    def __init__(self) -> None:
        super().__init__()
        del self.act

    def forward(self, x):
        return self.lin2(nn.functional.gelu(self.lin1(x)))


def test_a_missing_module_keeps_matching_by_name():
    a, b = WithActModule(), WithActFunction()
    report = first_divergence(a, b, X)
    assert report.ok and report.matched_by == "module name"
    assert "only in A (act)" in report.note
    with torch.no_grad():
        b.lin2.bias[1] += 0.125
    report = first_divergence(a, b, X)
    assert report.module == "lin2" and report.max_abs_diff == pytest.approx(0.125)


def test_models_and_rng_are_left_as_they_were():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    a.train()
    a[3].eval()
    b = copy.deepcopy(a)
    sentinel = torch.full_like(a[0].weight, 7.0)
    a[0].weight.grad = sentinel
    stats = a[1].running_mean.clone(), a[1].num_batches_tracked.clone()
    rng = torch.get_rng_state()
    # Dropout in train mode: both runs draw the same mask, so identical models match.
    assert first_divergence(a, b, X).ok
    nan_hunt(a, X)
    shape_trace(a, X)
    assert a[0].weight.grad is sentinel and b[0].weight.grad is None
    assert torch.equal(a[1].running_mean, stats[0])
    assert torch.equal(a[1].num_batches_tracked, stats[1])
    assert [m.training for m in a] == [True, True, True, False]
    assert torch.equal(torch.get_rng_state(), rng)
    for m in a.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert all(not p._post_accumulate_grad_hooks for p in a.parameters())


class Raises(nn.Module):
    def forward(self, x):
        raise ValueError("learner bug")


def test_hooks_are_removed_when_the_model_raises():
    a = nn.Sequential(nn.Linear(4, 4), Raises())
    with pytest.raises(ValueError, match="learner bug"):
        first_divergence(a, copy.deepcopy(a), X)
    with pytest.raises(ValueError):
        nan_hunt(a, X)
    for m in a.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_custom_loss_and_target_are_used():
    a = mlp()
    calls = []

    def loss_fn(out, target):
        calls.append(target)
        return ((out - target) ** 2).mean()

    assert first_divergence(a, copy.deepcopy(a), X, loss_fn=loss_fn, target=torch.ones(3, 2)).ok
    assert len(calls) == 2


# --------------------------------------------------------------------------- NaN hunt


class Overflow(nn.Module):
    """x * 1e39 overflows float32 (max 3.4e38) to inf, as a fp16 conv overflows at 65,504."""

    def forward(self, x):
        return x * 1e39


def test_nan_hunt_names_the_overflowing_module_with_finite_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), Overflow(), nn.LayerNorm(8), nn.Linear(8, 2))
    report = nan_hunt(model, X)
    assert not report.ok
    f = report.findings[0]
    assert f.phase == "forward" and f.module == "1" and f.cls == "Overflow"
    assert f.culprit == "1"
    assert all(s.finite for _, s in f.inputs)
    # Inputs of `1` are the Linear output; its absmax is bounded by the hand-computed
    # |W| |x| + |b| for x in [-1, 1].
    bound = float((model[0].weight.abs().sum(1) + model[0].bias.abs()).max().detach())
    assert 0 < f.inputs[0][1].absmax <= bound + 1e-6
    assert f.outputs[0][1].n_nonfinite > 0
    assert not report.output_finite and report.n_nonfinite_modules >= 2
    line = report.summary()
    assert "\n" not in line and "`1` (Overflow)" in line and "inputs finite" in line


def test_nan_hunt_reports_an_inf_parameter_up_front_and_its_module():
    model = mlp()
    with torch.no_grad():
        model[3].weight[1, 2] = float("inf")
    report = nan_hunt(model, X)
    first, forward = report.findings[0], report.findings[1]
    assert first.phase == "parameter" and first.where == "3.weight" and first.module == "3"
    assert first.outputs[0][1].n_posinf == 1
    assert forward.phase == "forward" and forward.module == "3"
    assert all(s.finite for _, s in forward.inputs)
    assert [name for name, _ in forward.params] == ["weight", "bias"]
    line = report.summary()
    assert "1 parameter/buffer tensor(s) non-finite, first `3.weight`" in line
    assert "forward at `3` (Linear)" in line


class SqrtAbs(nn.Module):
    def forward(self, x):
        return x.abs().sqrt()  # finite at 0, but d/dx sqrt|x| at 0 is inf * 0 = nan


def test_nan_hunt_finds_a_backward_nan_in_the_module_that_makes_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), SqrtAbs(), nn.Linear(8, 1))
    with torch.no_grad():
        model[0].weight[0] = 0.0
        model[0].bias[0] = 0.0  # output channel 0 of `0` is exactly 0
    report = nan_hunt(model, X)
    assert report.output_finite and report.loss is not None
    f = report.findings[0]
    assert f.phase == "backward" and f.culprit == "1"
    assert report.findings[-1].phase == "parameter gradient"
    assert nan_hunt(mlp(), X).ok


def test_nan_hunt_reports_a_non_finite_input():
    x = X.clone()
    x[0, 0] = float("nan")
    report = nan_hunt(mlp(), x)
    assert report.findings[0].phase == "input"
    assert report.findings[0].outputs[0][1].n_nan == 1
    forward = report.findings[1]
    assert forward.module == "0" and "model input" in forward.note and forward.culprit is None


# --------------------------------------------------------------------------- shape trace


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 8, 1), nn.GELU())
        self.lstm = nn.LSTM(8, 6, batch_first=True)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        y = self.block(self.conv(x)).mean((2, 3))  # (B, 8)
        out, _ = self.lstm(y[:, None])  # (B, 1, 6)
        return self.head(out[:, 0])


def test_shape_trace_rows_and_parameter_counts():
    rows = shape_trace(Small(), torch.zeros(2, 3, 5, 5))
    got = [(r.name, r.cls, r.depth, r.shapes, r.n_params) for r in rows]
    assert got == [
        ("(model)", "Small", 0, [(2, 2)], 0),
        ("conv", "Conv2d", 1, [(2, 4, 5, 5)], 3 * 4 * 9 + 4),
        ("block", "Sequential", 1, [(2, 8, 5, 5)], 0),
        ("block.0", "Conv2d", 2, [(2, 8, 5, 5)], 4 * 8 + 8),
        ("block.1", "GELU", 2, [(2, 8, 5, 5)], 0),
        # LSTM: 4 gates x hidden 6 x (input 8 + hidden 6) weights + 2 biases of 4 x 6.
        ("lstm", "LSTM", 1, [(2, 1, 6), (1, 2, 6), (1, 2, 6)], 4 * 6 * (8 + 6) + 2 * 4 * 6),
        ("head", "Linear", 1, [(2, 2)], 6 * 2 + 2),
    ]
    table = format_shape_trace(rows)
    assert "(2, 1, 6), (1, 2, 6), (1, 2, 6)" in table
    assert table.splitlines()[-1].endswith(f"{112 + 40 + 384 + 14:,}")


def test_tools_run_under_bfloat16_autocast():
    model = mlp()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rows = shape_trace(model, X)
        assert first_divergence(model, copy.deepcopy(model), X, atol=1e-2, rtol=1e-2).ok
        assert nan_hunt(model, X).ok
    assert rows[1].name == "0" and rows[1].dtypes == ["bfloat16"]


def test_nan_hunt_names_a_float16_overflow_under_autocast():
    # FACTS.md §9: a fp16 matmul/conv past 65,504 gives inf, the next LayerNorm NaN.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.LayerNorm(8))
    with torch.no_grad():
        model[0].weight.fill_(0.25)
        model[0].bias.fill_(0.5)  # every output of `0` is >= 0.5 for x >= 0
        model[1].weight.fill_(3e4)  # so every output of `1` is >= 8 * 0.5 * 3e4 > 65,504
    with torch.autocast("cpu", dtype=torch.float16):
        report = nan_hunt(model, X.abs())
    f = report.findings[0]
    assert f.module == "1" and f.phase == "forward"
    assert f.outputs[0][1].dtype == "float16" and f.outputs[0][1].n_posinf == 3 * 8
    assert all(s.finite for _, s in f.inputs)
    assert model[1].weight.dtype == torch.float32  # autocast left the parameter alone


def test_nan_hunt_names_a_float16_backward_overflow_and_the_module_making_it():
    # With all weights of `1` equal, its 8 outputs in a row are equal up to the bias,
    # so the LayerNorm divides by a small std; the gradient sent back through `1`
    # (W^T g, W = 3e4) then passes 65,504 while the forward stays finite.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.LayerNorm(8))
    with torch.no_grad():
        model[1].weight.fill_(3e4)
    with torch.autocast("cpu", dtype=torch.float16):
        report = nan_hunt(model, X)
    assert report.output_finite and report.n_nonfinite_modules == 0
    f = report.findings[0]
    assert f.phase == "backward" and f.module == "0" and f.culprit == "1"
    assert f.outputs[0][1].n_nonfinite > 0
    assert report.findings[1].phase == "parameter gradient"


def test_tools_run_without_gradients():
    model = mlp()
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            assert first_divergence(model, copy.deepcopy(model), X).ok
            report = nan_hunt(model, X)
            assert report.ok and not report.backward_run


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_coat_ulstm_tiny_first_divergence_and_trace():
    try:
        from reference.models import CoaT_ULSTM
    except ImportError as e:
        pytest.skip(f"reference.models.CoaT_ULSTM not importable yet: {e}")
    torch.manual_seed(0)
    a = CoaT_ULSTM(arch="tiny").eval()
    b = copy.deepcopy(a)
    x = torch.rand(1, 3, 5, 32, 32)
    name, p = next((n, p) for n, p in b.named_parameters() if n.startswith("dec2."))
    with torch.no_grad():
        p.add_(0.5)
    report = first_divergence(a, b, x, backward=False)
    assert report.diverged and report.module == name.rsplit(".", 1)[0]
    rows = shape_trace(a, x)
    assert rows[0].name == "(model)" and rows[0].shapes == [(1, 1, 32, 32)]
    lstm = next(r for r in rows if r.cls == "LSTM")
    h = lstm.shapes[0][-1]  # one layer, hidden = input size (FACTS.md §3, LSTM_block)
    assert lstm.n_params == 4 * h * (h + h) + 2 * 4 * h
