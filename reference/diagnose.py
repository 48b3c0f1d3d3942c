"""Where two models first differ, where a NaN first appears, what shape every module returns.

Three tools built on module hooks, used by the checks (which module of a
learner's model first diverges from the reference), by the training NaN guard,
and by the docs (the shape trace of CoaT_ULSTM):

- :func:`first_divergence` runs two models of the same architecture on the same
  input and names the first module, in execution order, whose output differs;
  if the forward matches, the first gradient that differs in backward order,
  then the first parameter gradient.
- :func:`nan_hunt` names the first module whose output (then gradient) is not
  finite, with statistics of its inputs, output and parameters (site: nan/#fp16-overflow:
  a fp16 overflow in the random-init CoaT residual stream becomes inf, then NaN
  in the next LayerNorm; this tells which).
- :func:`shape_trace` lists every module call with its output shapes and its own
  parameter count; :func:`format_shape_trace` prints it as a table.

Vocabulary. A *call* is one execution of a module. Its *label* is the module's
name from ``named_modules()`` (``(model)`` for the root); a module called
several times in one forward gets ``name#1``, ``name#2``, ... *Execution order*
is the order in which calls finish (a child before its parent), so the first
differing call is the innermost module where the difference appears. Outputs
that are tuples, lists or dicts are flattened into paths such as
``output[1][0]`` (an ``nn.LSTM`` returns ``output[0]``, ``output[1][0]``,
``output[1][1]``).

The models are left as they were: train/eval mode, buffers (BatchNorm running
statistics), ``.grad`` of every parameter and the global RNG state are
restored, and every hook is removed, also when a model raises. Both runs draw
random numbers from the same seed, so dropout masks match. ``inputs`` is one
tensor, a tuple of positional arguments, or a dict of keyword arguments.

This file is longer than the house limit of ~400 lines because the three tools
share one hook recorder; splitting it would scatter that machinery.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

ROOT = "(model)"

# --------------------------------------------------------------------------- tensors


def _flatten(obj: Any, path: str) -> list[tuple[str, torch.Tensor]]:
    """Tensors inside nested tuples/lists/dicts with their paths, e.g. ``output[1][0]``."""
    if isinstance(obj, torch.Tensor):
        return [(path, obj)]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _flatten(v, f"{path}[{k!r}]")]
    if isinstance(obj, (tuple, list)):
        return [x for i, v in enumerate(obj) for x in _flatten(v, f"{path}[{i}]")]
    return []


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _prepare_inputs(inputs: Any, requires_grad: bool) -> Any:
    """Private copies of the inputs (a model may write into them in place); float
    ones require grad so that the gradient reaching the first module is seen too."""

    def copy(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().clone()
        return t.requires_grad_(requires_grad and (t.is_floating_point() or t.is_complex()))

    return _map_tensors(inputs, copy)


def _call_model(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _default_loss(out: Any) -> torch.Tensor:
    """sum(out * R) with R a fixed N(0, 1) tensor of the output's shape (seed 0).

    Not plain ``out.sum()``: its gradient is all ones, and a normalisation layer
    maps all-ones to zero (the sum over channels of a LayerNorm output is
    constant), which would hide any error behind it.
    """
    g = torch.Generator().manual_seed(0)
    loss = None
    for _, t in _flatten(out, "output"):
        if not (t.is_floating_point() and t.requires_grad):
            continue
        r = torch.randn(t.shape, generator=g, dtype=torch.float32).to(t.device)
        term = (t.float() * r).sum()
        loss = term if loss is None else loss + term
    return loss


def _loss(out: Any, loss_fn: Callable | None, target: Any) -> torch.Tensor | None:
    if loss_fn is None:
        return _default_loss(out)
    loss = loss_fn(out) if target is None else loss_fn(out, target)
    return loss if loss.numel() == 1 else loss.sum()


_N_STATS = 8  # min, max, mean, absmax over the finite values; n_nan, n_posinf, n_neginf, numel


def _raw_stats(t: torch.Tensor) -> torch.Tensor:
    """(8,) float64 tensor of statistics (one sync to choose the finite fast path)."""
    t = t.detach()
    if t.is_complex():
        t = t.abs()
    x = t.float()
    if x.numel() == 0:
        return torch.zeros(_N_STATS, dtype=torch.float64, device=x.device)
    lo, hi = torch.aminmax(x)  # min/max propagate NaN, so finite extremes mean all finite
    if bool(torch.isfinite(lo) & torch.isfinite(hi)):
        zero = torch.zeros((), dtype=torch.float64, device=x.device)
        parts = [lo, hi, x.mean(dtype=torch.float64), torch.maximum(lo.abs(), hi.abs())]
        parts += [zero, zero, zero, torch.tensor(x.numel())]
        return torch.stack([p.to(torch.float64).to(x.device) for p in parts])
    finite = torch.isfinite(x)
    n_finite = finite.sum()
    lo = torch.where(finite, x, math.inf).min()
    hi = torch.where(finite, x, -math.inf).max()
    mean = torch.where(finite, x, 0.0).sum(dtype=torch.float64) / n_finite.clamp(min=1)
    parts = [lo, hi, mean, torch.maximum(lo.abs(), hi.abs()), torch.isnan(x).sum()]
    parts += [torch.isposinf(x).sum(), torch.isneginf(x).sum(), torch.tensor(x.numel())]
    return torch.stack([p.to(torch.float64).to(x.device) for p in parts])


@dataclass
class TensorStats:
    """Statistics of one tensor; min/max/mean/absmax are over its finite values."""

    shape: tuple[int, ...]
    dtype: str
    numel: int
    min: float
    max: float
    mean: float
    absmax: float
    n_nan: int
    n_posinf: int
    n_neginf: int

    @classmethod
    def of(cls, t: torch.Tensor, raw: torch.Tensor | None = None) -> TensorStats:
        v = (_raw_stats(t) if raw is None else raw).tolist()
        ints = [int(x) for x in v[4:]]
        return cls(tuple(t.shape), str(t.dtype).replace("torch.", ""), ints[3], *v[:4], *ints[:3])

    @property
    def n_nonfinite(self) -> int:
        return self.n_nan + self.n_posinf + self.n_neginf

    @property
    def finite(self) -> bool:
        return self.n_nonfinite == 0

    def __str__(self) -> str:
        s = f"{self.shape} {self.dtype}: "
        if self.n_nonfinite < self.numel:
            s += f"min {self.min:.4g} max {self.max:.4g} mean {self.mean:.4g} "
            s += f"absmax {self.absmax:.4g}"
        if not self.finite:
            s += (
                " (of the finite values); "
                if self.n_nonfinite < self.numel
                else "no finite value; "
            )
            s += f"{self.n_nan} nan, {self.n_posinf} +inf, {self.n_neginf} -inf of {self.numel}"
        return s


class _Lazy:
    """A tensor and its device-side raw statistics; converted to TensorStats on demand."""

    def __init__(self, t: torch.Tensor) -> None:
        self.shape, self.dtype = tuple(t.shape), t.dtype
        self.raw = _raw_stats(t)

    def stats(self) -> TensorStats:
        return TensorStats.of(torch.empty(self.shape, dtype=self.dtype, device="meta"), self.raw)

    def finite(self) -> bool:
        return bool(self.raw[4:7].sum() == 0)


# --------------------------------------------------------------------------- recording


@dataclass(eq=False)
class _Call:
    name: str
    module: nn.Module
    cls: str
    leaf: bool
    depth: int  # number of calls open around this one (0 for the root)
    caller: _Call | None = None  # the innermost call open when this one started
    label: str = ""
    inputs: list[tuple[str, Any]] = field(default_factory=list)
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    out_shapes: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)
    t0: int = 0  # when it started and finished, on one counter for all calls
    t1: int = 0

    @property
    def parent(self) -> str:
        """Label of the call this one was made from (its caller, not its name's prefix)."""
        return self.caller.label if self.caller is not None else ROOT

    def ancestors(self) -> list[_Call]:
        chain, c = [], self.caller
        while c is not None:
            chain.append(c)
            c = c.caller
        return chain


@dataclass(eq=False)
class _GradEvent:
    call: _Call
    kind: str  # "output" or "input": the gradient w.r.t. that tensor of the call
    path: str
    token: tuple[int, int]  # identity of the tensor (id, version) at forward time
    value: Any

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call.label, self.kind, self.path)


class _Recorder:
    """Hooks on every module of ``model`` (and tensor hooks for gradients) while active.

    ``mode``: "values" keeps detached copies, "stats" keeps :class:`_Lazy`
    statistics, "shapes" keeps nothing but shapes.
    """

    def __init__(self, model: nn.Module, mode: str, grads: bool) -> None:
        self.model, self.mode, self.grads = model, mode, grads
        self.started: list[_Call] = []  # call order
        self.calls: list[_Call] = []  # execution (finish) order
        self.events: list[_GradEvent] = []  # backward firing order
        self.param_order: list[str] = []  # parameter gradients, accumulation order
        self._handles: list[Any] = []
        self._alive: list[torch.Tensor] = []  # keeps id() of watched tensors unique
        self._open: dict[int, list[_Call]] = {}
        self._copies: dict[tuple[int, int], Any] = {}
        self._stack: list[_Call] = []  # calls open right now, outermost first
        self._clock = 0

    def __enter__(self) -> _Recorder:
        try:
            for name, m in self.model.named_modules():
                name = name or ROOT
                pre = m.register_forward_pre_hook(partial(self._pre, name), with_kwargs=True)
                post = m.register_forward_hook(partial(self._post, name), with_kwargs=True)
                self._handles += [pre, post]
            if self.grads:
                for pname, p in self.model.named_parameters():
                    if p.requires_grad:
                        hook = partial(self._accumulated, pname)
                        self._handles.append(p.register_post_accumulate_grad_hook(hook))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()
        self._alive.clear()
        self._copies.clear()
        counts: dict[str, int] = {}
        for c in self.started:
            counts[c.name] = counts.get(c.name, 0) + 1
        seen: dict[str, int] = {}
        for c in self.started:
            seen[c.name] = seen.get(c.name, 0) + 1
            c.label = c.name if counts[c.name] == 1 else f"{c.name}#{seen[c.name]}"

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _capture(self, t: torch.Tensor, share: bool = False) -> Any:
        """A copy (or statistics) of ``t``; with ``share``, one per tensor version.

        A container's output is its last child's output and a module's input is
        the previous one's output: sharing the copy of an unchanged tensor halves
        the work. ``t`` is kept alive so that its id() is not reused meanwhile.
        """
        if self.mode == "shapes":
            return None
        key = None
        if share and not t.is_inference():
            key = (id(t), t._version)
            if key in self._copies:
                return self._copies[key]
        value = t.detach().clone() if self.mode == "values" else _Lazy(t)
        if key is not None:
            self._alive.append(t)
            self._copies[key] = value
        return value

    def _watch(self, call: _Call, kind: str, path: str, t: torch.Tensor) -> None:
        if not (self.grads and t.requires_grad):
            return
        token = (id(t), t._version)
        self._alive.append(t)
        self._handles.append(t.register_hook(partial(self._on_grad, call, kind, path, token)))

    def _on_grad(self, call, kind, path, token, grad: torch.Tensor) -> None:
        self.events.append(_GradEvent(call, kind, path, token, self._capture(grad)))

    def _accumulated(self, pname: str, p: torch.Tensor) -> None:
        self.param_order.append(pname)

    def _pre(self, name: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        leaf = next(iter(module.children()), None) is None
        caller = self._stack[-1] if self._stack else None
        call = _Call(name, module, type(module).__name__, leaf, len(self._stack), caller)
        call.t0, self._clock = self._clock, self._clock + 1
        self._stack.append(call)
        tensors = _flatten(tuple(args), "input") + _flatten(kwargs, "input")
        if self.mode != "shapes":
            call.inputs = [(p, self._capture(t, share=True)) for p, t in tensors]
        for p, t in tensors:
            self._watch(call, "input", p, t)
        self._open.setdefault(id(module), []).append(call)
        self.started.append(call)

    def _post(self, name: str, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        call = self._open[id(module)].pop()
        call.t1, self._clock = self._clock, self._clock + 1
        self._stack.remove(call)
        tensors = _flatten(output, "output")
        call.out_shapes = [
            (p, tuple(t.shape), str(t.dtype).replace("torch.", "")) for p, t in tensors
        ]
        if self.mode != "shapes":
            call.outputs = [(p, self._capture(t, share=True)) for p, t in tensors]
        for p, t in tensors:
            self._watch(call, "output", p, t)
        self.calls.append(call)


@contextlib.contextmanager
def _preserved(model: nn.Module) -> Iterator[None]:
    """Restore train/eval flags, buffers and ``.grad`` after the block; start with no grads."""
    params = list(model.parameters())
    grads = [p.grad for p in params]
    buffers = [
        (m, k, b, b.detach().clone())
        for m in model.modules()
        for k, b in m._buffers.items()
        if b is not None
    ]
    modes = [(m, m.training) for m in model.modules()]
    for p in params:
        p.grad = None
    try:
        yield
    finally:
        for p, g in zip(params, grads):
            p.grad = g
        with torch.no_grad():
            for m, k, b, v in buffers:
                b.copy_(v)
                m._buffers[k] = b
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed the RNG for the block and give the caller's RNG state back afterwards."""
    if seed is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _grad_possible() -> bool:
    return torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def _record(model, inputs, mode, backward, loss_fn, target, seed, on_forward=None):
    """Run forward (and backward) under a recorder; return it and the parameter grads."""
    rec = _Recorder(model, mode, grads=backward)
    param_grads: dict[str, Any] = {}
    loss = None
    with _preserved(model), _seeded(seed):
        with rec:
            out = _call_model(model, _prepare_inputs(inputs, backward))
            go_on = backward if on_forward is None else backward and on_forward(rec)
            if go_on:
                loss = _loss(out, loss_fn, target)
                if loss is not None and loss.requires_grad and torch.isfinite(loss).all():
                    loss.backward()
        for pname, p in model.named_parameters():
            if p.grad is not None:
                param_grads[pname] = rec._capture(p.grad)
    return rec, param_grads, loss


def _consumers(rec: _Recorder, event: _GradEvent) -> list[str]:
    """Labels of the innermost calls that took ``event``'s tensor as input.

    Their backward produced the gradient of that tensor. Outer calls that got
    the same tensor (a container passing its input to its first child) are
    dropped: the child is the more precise answer.
    """
    calls = [
        e.call
        for e in rec.events
        if e.kind == "input" and e.token == event.token and (e.call is not event.call or e is event)
    ]
    outer = {id(a) for c in calls for a in c.ancestors()}
    return list(dict.fromkeys(c.label for c in calls if id(c) not in outer))


# --------------------------------------------------------------------------- first divergence


@dataclass
class _Diff:
    path: str
    shape_a: tuple[int, ...] | None
    shape_b: tuple[int, ...] | None
    max_abs_diff: float | None = None
    index: tuple[int, ...] | None = None
    value_a: float | None = None
    value_b: float | None = None
    close_fraction: float | None = None
    problem: str = ""  # set for a structure or shape mismatch


def _compare(path: str, a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> _Diff | None:
    """None when ``b`` agrees with the reference ``a``: |b - a| <= atol + rtol * |a|
    elementwise (``torch.isclose(b, a)``), NaN matching NaN, inf matching inf."""
    if a.shape != b.shape:
        return _Diff(path, tuple(a.shape), tuple(b.shape), problem="shapes differ")
    b = b.to(a.device)
    if a.dtype == b.dtype and torch.equal(a, b):
        return None  # the common case of a correct copy, ~10x faster than isclose
    if a.is_complex() or b.is_complex():
        a, b = (
            torch.view_as_real(a.to(torch.complex128)),
            torch.view_as_real(b.to(torch.complex128)),
        )
    dtype = torch.float32 if a.device.type == "mps" else torch.float64
    a64, b64 = a.to(dtype), b.to(dtype)
    close = torch.isclose(b64, a64, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return None
    diff = (a64 - b64).abs()
    same = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
    diff = torch.where(same, 0.0, torch.nan_to_num(diff, nan=math.inf))
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape))
    return _Diff(
        path,
        tuple(a.shape),
        tuple(b.shape),
        float(diff.flatten()[flat]),
        index,
        float(a64.flatten()[flat]),
        float(b64.flatten()[flat]),
        float(close.double().mean()),
    )


def _compare_lists(xs: list, ys: list, atol: float, rtol: float) -> _Diff | None:
    pa, pb = [p for p, _ in xs], [p for p, _ in ys]
    if pa != pb:
        got_a, got_b = ", ".join(pa) or "no tensor", ", ".join(pb) or "no tensor"
        problem = f"structure differs: A gives {got_a}; B gives {got_b}"
        return _Diff("", None, None, problem=problem)
    for (p, a), (_, b) in zip(xs, ys):
        d = _compare(p, a, b, atol, rtol)
        if d is not None:
            return d
    return None


@dataclass
class DivergenceReport:
    """Where model B first differs from the reference model A.

    Values agree when |b - a| <= atol + rtol * |a|. ``str(report)`` is the
    message the checks print; the fields are for code.
    """

    diverged: bool
    atol: float
    rtol: float
    phase: str | None = None  # "forward", "backward", "parameter gradient"
    module: str | None = None  # label in model A
    module_b: str | None = None  # label in model B (differs when matched by order)
    cls_a: str | None = None
    cls_b: str | None = None
    where: str = ""  # "output[0]", "gradient w.r.t. input[0]", a parameter name
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    max_abs_diff: float | None = None
    index: tuple[int, ...] | None = None
    value_a: float | None = None
    value_b: float | None = None
    close_fraction: float | None = None
    matched_by: str = "module name"
    n_compared: int = 0
    note: str = ""
    # Label (in A) of the module whose code most likely makes the difference: the
    # diverging module itself, its parent when its inputs already differ, the module
    # whose backward produced a differing gradient, or a parameter's owner.
    culprit: str | None = None
    # When the difference arises in forward code outside any module: the function
    # ("CoaT_ULSTM.forward") and the module calls of B it lies between (None: the start).
    in_code: str | None = None
    between: tuple[str | None, str] | None = None

    @property
    def ok(self) -> bool:
        return not self.diverged

    def __str__(self) -> str:
        tol = f"atol {self.atol:g}, rtol {self.rtol:g}"
        if not self.diverged:
            s = f"no divergence: {self.n_compared} tensors match "
            s += f"({tol}; matched by {self.matched_by})"
            return s + (f"\n  note: {self.note}" if self.note else "")
        b_name = ""
        if self.module_b is not None and (self.module_b != self.module or self.cls_b != self.cls_a):
            b_name = f"; in B: `{self.module_b}` ({self.cls_b})"
        if self.in_code is not None and self.between is not None:
            before, call = self.between
            span = (
                f"between `{before}` and `{call}`"
                if before
                else f"before `{call}`, its first module call"
            )
            lines = [f"first divergence ({self.phase}): in {self.in_code}, {span}"]
        else:
            lines = [f"first divergence ({self.phase}): `{self.module}` ({self.cls_a}{b_name})"]
        lines.append(f"  {self.where}: shape A {self.shape_a}, B {self.shape_b}")
        if self.max_abs_diff is not None:
            lines.append(
                f"  max |A - B| = {self.max_abs_diff:.4g} at index {self.index}: "
                f"A = {self.value_a:.6g}, B = {self.value_b:.6g}"
            )
            lines.append(f"  close values: {100 * self.close_fraction:.2f}% ({tol})")
        lines.append(f"  matched by {self.matched_by}; {self.n_compared} tensors compared before")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.culprit is not None and self.culprit != self.module and self.in_code is None:
            lines.append(f"  look at: `{self.culprit}`")
        return "\n".join(lines)


def _pair_calls(
    ra: _Recorder, rb: _Recorder, given: tuple[str, ...] = ()
) -> tuple[list[tuple[_Call, _Call]], str, str]:
    """Pairs (call in A, call in B) in A's execution order, and how they were matched.

    By label when at least half of A's labels exist in B (a learner's extra or
    missing module, say an ``nn.GELU`` written as ``F.gelu``, is skipped and
    named in the note); otherwise the leaf modules by execution order, then the
    model outputs.
    """
    la, lb = [c.label for c in ra.calls], [c.label for c in rb.calls]
    set_a, set_b = set(la), set(lb)
    only_a = [x for x in la if x not in set_b]
    only_b = [x for x in lb if x not in set_a and x not in given]  # given code may wrap
    if len(only_a) <= len(la) / 2:
        by_label = {c.label: c for c in rb.calls}
        pairs = [(c, by_label[c.label]) for c in ra.calls if c.label in by_label]
        note = ""
        if only_a or only_b:
            some_a, some_b = ", ".join(only_a[:3]) or "-", ", ".join(only_b[:3]) or "-"
            note = (
                f"not compared: {len(only_a)} module call(s) only in A ({some_a}) "
                f"and {len(only_b)} only in B ({some_b})"
            )
        return pairs, "module name", note
    leaves_a = [c for c in ra.calls if c.leaf and c.name != ROOT]
    leaves_b = [c for c in rb.calls if c.leaf and c.name != ROOT]
    pairs = list(zip(leaves_a, leaves_b))
    if ra.calls and rb.calls:
        pairs.append((ra.calls[-1], rb.calls[-1]))  # the root finishes last
    note = (
        f"module names differ (only in A: {', '.join(only_a[:3])}; only in B: "
        f"{', '.join(only_b[:3]) or '-'}), so leaf modules were matched by execution order "
        f"({len(leaves_a)} in A, {len(leaves_b)} in B), then the model outputs"
    )
    return pairs, "execution order (names differ)", note


def _report(diff: _Diff, phase: str, ca, cb, where: str, **kw) -> DivergenceReport:
    kw.setdefault("culprit", ca.label if isinstance(ca, _Call) else ca)
    return DivergenceReport(
        True,
        phase=phase,
        module=ca.label if isinstance(ca, _Call) else ca,
        module_b=cb.label if isinstance(cb, _Call) else cb,
        cls_a=ca.cls if isinstance(ca, _Call) else kw.pop("cls_a", None),
        cls_b=cb.cls if isinstance(cb, _Call) else kw.pop("cls_b", None),
        where=where + (f" ({diff.problem})" if diff.problem else ""),
        shape_a=diff.shape_a,
        shape_b=diff.shape_b,
        max_abs_diff=diff.max_abs_diff,
        index=diff.index,
        value_a=diff.value_a,
        value_b=diff.value_b,
        close_fraction=diff.close_fraction,
        **kw,
    )


def _given_root(call: _Call, given: tuple[str, ...]) -> _Call:
    """The outermost ancestor of ``call`` (or itself) named in ``given``, else ``call``."""
    chain = [call, *call.ancestors()]
    hits = [c for c in chain if any(c.name == g or c.name.startswith(g + ".") for g in given)]
    return hits[-1] if hits else call


def _origin(cb: _Call, ra: _Recorder, atol: float, rtol: float) -> _Call:
    """The outermost call of B whose inputs already differ on the way down to ``cb``: the
    difference was made before it, in its caller's forward code. A caller with a twin in A
    is passed when its own inputs differ from the twin's; one without (given code that
    wraps its submodules) when it hands its input down unchanged."""
    twins = {c.label: c for c in ra.calls}
    c = cb
    while c.caller is not None and c.caller.caller is not None:
        up = c.caller
        twin = twins.get(up.label)
        if twin is not None:
            if _compare_lists(twin.inputs, up.inputs, atol, rtol) is None:
                break
        elif _compare_lists(up.inputs, c.inputs, 0.0, 0.0) is not None:
            break
        c = up
    return c


def _between_report(
    d_in: _Diff, ca: _Call, cb: _Call, ra: _Recorder, rb: _Recorder, n: int, note: str, common: dict
) -> DivergenceReport:
    """A difference made in forward code outside modules: which function, between which calls."""
    origin = _origin(cb, ra, common["atol"], common["rtol"])
    owner = origin.caller
    if origin is not cb:  # report the input of the call the difference went into
        twin = next((c for c in ra.calls if c.label == origin.label), None)
        d_in = (
            _compare_lists(twin.inputs, origin.inputs, common["atol"], common["rtol"])
            if twin
            else None
        ) or d_in
    earlier = [c for c in rb.calls if c.caller is owner and c.t1 < origin.t0]
    before = max(earlier, key=lambda c: c.t1).label if earlier else None
    code = f"`{owner.cls}.forward`"
    of = "" if owner.name == ROOT else f" of `{owner.label}`"
    made = f"between `{before}` and `{origin.label}`" if before else f"before `{origin.label}`"
    why = (
        f"the input of `{origin.label}` already differs while everything before matches: "
        f"the code of {code}{of} {made} makes the difference"
    )
    return _report(
        d_in,
        "forward",
        ca,
        cb,
        f"input of `{origin.label}`" + (f" ({d_in.path})" if d_in.path else ""),
        n_compared=n,
        note=_join(note, why),
        culprit=owner.label,
        in_code=code + of,
        between=(before, origin.label),
        **common,
    )


def _forward_note(ca: _Call, cb: _Call, atol: float, rtol: float) -> tuple[str, str]:
    """(culprit, explanation) for the first call whose outputs differ."""
    d = _compare_lists(ca.inputs, cb.inputs, atol, rtol)
    if d is None:
        if ca.leaf:
            return ca.label, "its inputs match, so the difference arises inside this module"
        return ca.label, (
            "its inputs and the outputs of its submodules match, so the difference arises "
            "in its own forward code, outside its submodules"
        )
    where = f"{d.path}: max diff {d.max_abs_diff:.3g}" if d.max_abs_diff is not None else d.problem
    return ca.parent, (
        f"its inputs already differ ({where}): the difference arises outside any module, "
        f"in the forward code of `{ca.parent}` before this call"
    )


@dataclass
class Recording:
    """One model's forward (and backward) under the recorder, as data: what
    :func:`compare_recordings` compares. Plain enough to travel between processes
    (:func:`recording_to_data` / :func:`recording_from_data`)."""

    calls: list[_Call]  # execution (finish) order, linked to their callers
    events: list[_GradEvent]  # backward firing order
    param_order: list[str]  # parameter gradients, accumulation order
    param_grads: dict[str, Any]
    param_names: list[str]
    classes: dict[str, str]  # module name ("(model)" for the root) -> class name


def record_run(
    model: nn.Module,
    inputs: Any,
    *,
    backward: bool = True,
    loss_fn: Callable | None = None,
    target: Any = None,
    seed: int | None = 0,
) -> Recording:
    """``model`` on ``inputs`` under the recorder (values kept), as first_divergence runs it."""
    backward = backward and _grad_possible()
    rec, grads, _ = _record(model, inputs, "values", backward, loss_fn, target, seed)
    return Recording(
        calls=rec.calls,
        events=rec.events,
        param_order=rec.param_order,
        param_grads=grads,
        param_names=[k for k, _ in model.named_parameters()],
        classes={(n or ROOT): type(m).__name__ for n, m in model.named_modules()},
    )


def recording_to_data(r: Recording) -> dict[str, Any]:
    """The recording as nested lists, dicts, strings, numbers and tensors."""
    index = {id(c): i for i, c in enumerate(r.calls)}
    calls = [
        {
            "name": c.name, "cls": c.cls, "leaf": c.leaf, "depth": c.depth,
            "caller": index.get(id(c.caller)) if c.caller is not None else None,
            "label": c.label, "inputs": list(c.inputs), "outputs": list(c.outputs),
            "out_shapes": list(c.out_shapes), "t0": c.t0, "t1": c.t1,
        }
        for c in r.calls
    ]  # fmt: skip
    events = [
        {"call": index.get(id(e.call)), "kind": e.kind, "path": e.path, "token": e.token,
         "value": e.value}
        for e in r.events
        if id(e.call) in index
    ]  # fmt: skip
    return {
        "calls": calls, "events": events, "param_order": list(r.param_order),
        "param_grads": dict(r.param_grads), "param_names": list(r.param_names),
        "classes": dict(r.classes),
    }  # fmt: skip


def recording_from_data(d: dict[str, Any]) -> Recording:
    calls = [
        _Call(c["name"], None, c["cls"], c["leaf"], c["depth"], None, c["label"],
              [tuple(x) for x in c["inputs"]], [tuple(x) for x in c["outputs"]],
              [tuple(x) for x in c["out_shapes"]], c["t0"], c["t1"])
        for c in d["calls"]
    ]  # fmt: skip
    for c, raw in zip(calls, d["calls"]):
        c.caller = calls[raw["caller"]] if raw["caller"] is not None else None
    events = [
        _GradEvent(calls[e["call"]], e["kind"], e["path"], tuple(e["token"]), e["value"])
        for e in d["events"]
    ]
    return Recording(
        calls, events, list(d["param_order"]), dict(d["param_grads"]),
        list(d["param_names"]), dict(d["classes"]),
    )  # fmt: skip


def first_divergence(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: Any,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    backward: bool = True,
    loss_fn: Callable | None = None,
    target: Any = None,
    seed: int | None = 0,
    given: tuple[str, ...] = (),
) -> DivergenceReport:
    """The first module whose output, then gradient, differs between ``model_a`` and ``model_b``.

    ``given``: names of modules of B that are given code (an exercise's encoder, say):
    a difference inside one is reported at that module, never at its submodules. When
    the inputs of the first differing call already differ, the report names the forward
    function where the difference arose and the two module calls it lies between.

    ``model_a`` is the reference. Forward: calls compared in A's execution
    order, matched by label (by order of leaf modules when the names differ).
    Backward (if ``backward`` and the forward matched): loss = ``loss_fn(out,
    target)`` (``loss_fn(out)`` without target; default: a fixed random
    projection of the outputs, see ``_default_loss``); the gradients w.r.t.
    every module's outputs and inputs are compared in A's backward order, then
    the parameter gradients in A's accumulation order. Both runs use ``seed``.
    The two runs may also be recorded apart (:func:`record_run`, in another process)
    and compared with :func:`compare_recordings`.
    """
    kw = dict(backward=backward, loss_fn=loss_fn, target=target, seed=seed)
    ra, rb = record_run(model_a, inputs, **kw), record_run(model_b, inputs, **kw)
    return compare_recordings(ra, rb, atol=atol, rtol=rtol, backward=backward, given=given)


def compare_recordings(
    ra: Recording,
    rb: Recording,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    backward: bool = True,
    given: tuple[str, ...] = (),
) -> DivergenceReport:
    """:func:`first_divergence` of two recorded runs (A the reference)."""
    backward = backward and _grad_possible()
    ga, gb = ra.param_grads, rb.param_grads
    pairs, matched_by, note = _pair_calls(ra, rb, given)
    common = dict(atol=atol, rtol=rtol, matched_by=matched_by)
    n = 0
    for ca, cb in pairs:
        d = _compare_lists(ca.outputs, cb.outputs, atol, rtol)
        if d is not None:
            d_in = _compare_lists(ca.inputs, cb.inputs, atol, rtol)
            if d_in is not None and cb.caller is not None:
                return _between_report(d_in, ca, cb, ra, rb, n, note, common)
            root_a, root_b = _given_root(ca, given), _given_root(cb, given)
            if root_b is not cb:  # inside given code: report the given module itself
                why = (
                    f"`{root_b.label}` is given code: its inputs match and its output differs, "
                    "so look at the weights it was built or loaded with"
                )
                return _report(
                    d,
                    "forward",
                    root_a,
                    root_b,
                    d.path,
                    n_compared=n,
                    note=_join(note, why),
                    **common,
                )
            culprit, why = _forward_note(ca, cb, atol, rtol)
            return _report(
                d,
                "forward",
                ca,
                cb,
                d.path,
                n_compared=n,
                note=_join(note, why),
                culprit=culprit,
                **common,
            )
        n += len(ca.outputs)
    if not backward:
        return DivergenceReport(False, n_compared=n, note=note, **common)

    to_b = {id(ca): cb for ca, cb in pairs}
    events_b = {e.key: e for e in rb.events}
    for ea in ra.events:
        cb = to_b.get(id(ea.call))
        if cb is None:
            continue  # a container not compared when matching by order
        eb = events_b.get((cb.label, ea.kind, ea.path))
        where = f"gradient w.r.t. {ea.path}"
        if eb is None:
            d = _Diff(ea.path, tuple(ea.value.shape), None, problem="no gradient reached it in B")
        else:
            d = _compare(ea.path, ea.value, eb.value, atol, rtol)
        if d is not None:
            culprit, why = _backward_note(ra, ea)
            if eb is None:  # the cut is in the caller's code or inside a consumer
                culprit = ea.call.parent
                why = (
                    "B's graph is cut after this tensor (a .detach(), torch.no_grad, .data or a "
                    "non-differentiable op); in A, " + why
                )
            return _report(
                d,
                "backward",
                ea.call,
                cb,
                where,
                n_compared=n,
                note=_join(note, why),
                culprit=culprit,
                **common,
            )
        n += 1

    name_b, why = _pair_params(ra.param_names, rb.param_names)
    note = _join(note, why)
    order = ra.param_order + [k for k in name_b if k not in set(ra.param_order)]
    for pa in dict.fromkeys(k for k in order if k in name_b):
        pb = name_b[pa]
        owner_a, owner_b = _owner(pa), _owner(pb)
        ga_, gb_ = ga.get(pa), gb.get(pb)
        if ga_ is None and gb_ is None:
            continue
        if ga_ is None or gb_ is None:
            d = _Diff(pa, None, None, problem=f"no gradient in {'A' if ga_ is None else 'B'}")
        else:
            d = _compare(pa, ga_, gb_, atol, rtol)
        if d is not None:
            why = (
                "all module output and input gradients match, so the backward of this module "
                "computes its parameter gradient differently"
            )
            return _report(
                d,
                "parameter gradient",
                owner_a,
                owner_b,
                f"gradient of {pa}",
                n_compared=n,
                note=_join(note, why),
                cls_a=ra.classes.get(owner_a, ""),
                cls_b=rb.classes.get(owner_b, ""),
                **common,
            )
        n += 1
    return DivergenceReport(False, n_compared=n, note=note, **common)


def _pair_params(names_a: list[str], names_b: list[str]) -> tuple[dict[str, str], str]:
    """Parameter name in A -> in B: by name where at least half match, else by order."""
    shared = [k for k in names_a if k in set(names_b)]
    if len(shared) >= len(names_a) / 2:
        skipped = len(names_a) + len(names_b) - 2 * len(shared)
        why = f"{skipped} parameter(s) not in both models were skipped" if skipped else ""
        return {k: k for k in shared}, why
    if len(names_a) == len(names_b):
        return dict(zip(names_a, names_b)), "parameters matched by registration order"
    return {}, "parameter lists differ; their gradients were not compared"


def _owner(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else ROOT


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _class_of(model: nn.Module, name: str) -> str:
    return type(model if name == ROOT else model.get_submodule(name)).__name__


def _backward_note(rec: _Recorder, event: _GradEvent) -> tuple[str | None, str]:
    """(culprit label, explanation) for a gradient that differs or is not finite."""
    consumers = _consumers(rec, event)
    if consumers:
        names = ", ".join(f"`{c}`" for c in consumers)
        return consumers[0], (
            f"this gradient is produced by the backward of {names} (taking this tensor as input)"
        )
    is_model_output = any(
        e.token == event.token and e.kind == "output" and e.call.name == ROOT for e in rec.events
    )
    if event.call.name == ROOT or is_model_output:
        return None, "this is the gradient of the loss w.r.t. the model output: the loss differs"
    parent = event.call.parent
    return parent, (
        f"this tensor is consumed by code outside any module, in the forward of `{parent}`: "
        f"the backward of that code differs"
    )


# --------------------------------------------------------------------------- NaN hunt


@dataclass
class NanFinding:
    """One place where a non-finite value appears."""

    # "parameter", "buffer", "input", "forward", "loss", "backward" or "parameter gradient"
    phase: str
    module: str  # label of the module (owner of the parameter)
    cls: str
    where: str  # "output[0]", "gradient w.r.t. output", a parameter name
    inputs: list[tuple[str, TensorStats]] = field(default_factory=list)
    outputs: list[tuple[str, TensorStats]] = field(default_factory=list)
    params: list[tuple[str, TensorStats]] = field(default_factory=list)
    note: str = ""
    culprit: str | None = None  # label of the module whose code most likely made the value

    def headline(self) -> str:
        bad = next((s for _, s in self.outputs if not s.finite), None)
        count = f": {bad.n_nonfinite} non-finite of {bad.numel}" if bad else ""
        return f"{self.phase} at `{self.module}` ({self.cls}), {self.where}{count}"

    def __str__(self) -> str:
        lines = [f"first non-finite value, {self.headline()}"]
        lines += [f"  {p}: {s}" for p, s in self.inputs + self.outputs]
        lines += [f"  parameter {p}: {s}" for p, s in self.params]
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.culprit is not None and self.culprit != self.module and self.in_code is None:
            lines.append(f"  look at: `{self.culprit}`")
        return "\n".join(lines)


@dataclass
class NanReport:
    """Result of :func:`nan_hunt`; ``findings`` in the order they were checked."""

    findings: list[NanFinding]
    output_finite: bool
    loss: float | None
    n_nonfinite_modules: int  # module calls with a non-finite output in the forward
    backward_run: bool

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        """One line, for the training NaN guard."""
        if self.ok:
            done = "forward, backward and parameter gradients" if self.backward_run else "forward"
            return f"nan_hunt: no non-finite value in the parameters, {done}"
        # After a diverged step every parameter may be NaN: count them, name the first.
        stored = [f for f in self.findings if f.phase in ("parameter", "buffer")]
        rest = [f for f in self.findings if f not in stored]
        parts = []
        if stored:
            parts.append(
                f"{len(stored)} parameter/buffer tensor(s) non-finite, first `{stored[0].where}`"
            )
        if rest:
            f = rest[0]
            part = f"first non-finite value in {f.headline()}"
            finite_in = [st for _, st in f.inputs]
            if f.phase == "forward" and finite_in and all(st.finite for st in finite_in):
                part += f", its inputs finite (absmax {max(st.absmax for st in finite_in):.4g})"
            if f.culprit is not None and f.culprit != f.module:
                part += f", look at `{f.culprit}`"
            parts.append(part)
        return "nan_hunt: " + "; ".join(parts)

    def __str__(self) -> str:
        if self.ok:
            return self.summary()
        parts = [str(f) for f in self.findings[:10]]
        if len(self.findings) > 10:
            parts.append(f"... and {len(self.findings) - 10} more")
        tail = f"model output finite: {self.output_finite}; modules with a non-finite output: "
        tail += f"{self.n_nonfinite_modules}; loss: {self.loss}"
        return "\n".join([*parts, tail])


def _own_params(module: nn.Module) -> list[tuple[str, TensorStats]]:
    return [(k, TensorStats.of(p)) for k, p in module.named_parameters(recurse=False)]


def _lazy_list(items: list[tuple[str, Any]]) -> list[tuple[str, TensorStats]]:
    return [(p, v.stats()) for p, v in items]


def nan_hunt(
    model: nn.Module,
    inputs: Any,
    *,
    loss_fn: Callable | None = None,
    target: Any = None,
    backward: bool = True,
    seed: int | None = 0,
) -> NanReport:
    """Where a non-finite value first appears: parameters, inputs, forward, loss, backward.

    Non-finite parameters and buffers are reported up front; then the first
    module call, in execution order, with a non-finite output, with the
    statistics of its inputs, outputs and own parameters. The backward runs
    only when the forward and the loss are finite (otherwise every gradient is
    NaN and says nothing); then the first gradient, in backward order, that is
    non-finite, and the first non-finite parameter gradient.
    """
    findings: list[NanFinding] = []
    for kind, named in (
        ("parameter", model.named_parameters()),
        ("buffer", model.named_buffers()),
    ):
        for name, t in named:
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
                owner = _owner(name)
                findings.append(
                    NanFinding(
                        kind,
                        owner,
                        _class_of(model, owner),
                        name,
                        outputs=[(name, TensorStats.of(t))],
                        culprit=owner,
                    )
                )
    bad_in = [(p, TensorStats.of(t)) for p, t in _flatten(inputs, "input") if t.is_floating_point()]
    bad_in = [(p, s) for p, s in bad_in if not s.finite]
    if bad_in:
        findings.append(
            NanFinding("input", ROOT, type(model).__name__, bad_in[0][0], outputs=bad_in)
        )

    def forward_finite(rec: _Recorder) -> bool:
        return all(v.finite() for c in rec.calls for _, v in c.outputs)

    backward = backward and _grad_possible()
    rec, pgrads, loss = _record(
        model, inputs, "stats", backward, loss_fn, target, seed, forward_finite
    )
    bad_calls = [c for c in rec.calls if not all(v.finite() for _, v in c.outputs)]
    output_finite = not rec.calls or rec.calls[-1] not in bad_calls
    loss_value = float(loss.detach().float()) if loss is not None else None
    backward_run = bool(rec.events) or bool(pgrads)

    if bad_calls:
        c = bad_calls[0]
        ins = _lazy_list(c.inputs)
        culprit = c.label
        if not all(s.finite for _, s in ins) and bad_in:
            culprit, note = None, "its inputs are non-finite because the model input is"
        elif not all(s.finite for _, s in ins):
            culprit = c.parent
            note = (
                f"its inputs are already non-finite: the values arise outside any module, in the "
                f"forward code of `{c.parent}` before this call"
            )
        elif c.leaf:
            note = "its inputs are finite: this module creates the non-finite values"
        else:
            note = (
                "its inputs and its submodules' outputs are finite: the values arise in its own "
                "forward code, outside its submodules"
            )
        if output_finite:
            note += "; the model output is finite (the values are masked later)"
        path = next(p for p, v in c.outputs if not v.finite())
        outs = _lazy_list(c.outputs)
        findings.append(
            NanFinding(
                "forward", c.label, c.cls, path, ins, outs, _own_params(c.module), note, culprit
            )
        )
    elif loss is not None and not bool(torch.isfinite(loss.detach()).all()):
        note = "the model output is finite, so the loss function creates the non-finite value"
        findings.append(NanFinding("loss", ROOT, type(model).__name__, "loss", note=note))
    else:
        bad_event = next((e for e in rec.events if not e.value.finite()), None)
        if bad_event is not None:
            c = bad_event.call
            where = f"gradient w.r.t. {bad_event.path}"
            grads = [(where, bad_event.value.stats())]
            culprit, note = _backward_note(rec, bad_event)
            findings.append(
                NanFinding(
                    "backward",
                    c.label,
                    c.cls,
                    where,
                    _lazy_list(c.inputs),
                    grads,
                    _own_params(c.module),
                    note,
                    culprit,
                )
            )
        order = rec.param_order + [k for k in pgrads if k not in set(rec.param_order)]
        for name in dict.fromkeys(order):
            v = pgrads.get(name)
            if v is not None and not v.finite():
                owner = _owner(name)
                module = model if owner == ROOT else model.get_submodule(owner)
                findings.append(
                    NanFinding(
                        "parameter gradient",
                        owner,
                        type(module).__name__,
                        f"gradient of {name}",
                        outputs=[(name, v.stats())],
                        params=_own_params(module),
                        culprit=owner,
                    )
                )
                break
    return NanReport(findings, output_finite, loss_value, len(bad_calls), backward_run)


# --------------------------------------------------------------------------- shape trace


@dataclass
class ShapeRow:
    """One module call of a shape trace."""

    name: str  # label: module name, ``(model)`` for the root, ``name#k`` for repeated calls
    cls: str
    depth: int  # calls open around this one: 0 for the root, 1 for what it calls, ...
    shapes: list[tuple[int, ...]]  # output tensor shapes, flattened in output order
    dtypes: list[str]
    n_params: int  # parameters registered directly on this module (not its children)


def shape_trace(model: nn.Module, inputs: Any) -> list[ShapeRow]:
    """Every module call in call order (a parent before its children), without gradients."""
    rec = _Recorder(model, "shapes", grads=False)
    with _preserved(model), _seeded(0), torch.no_grad(), rec:
        _call_model(model, inputs)
    return [
        ShapeRow(
            c.label,
            c.cls,
            c.depth,
            [s for _, s, _ in c.out_shapes],
            [d for _, _, d in c.out_shapes],
            sum(p.numel() for p in c.module.parameters(recurse=False)),
        )
        for c in rec.started
    ]


def format_shape_trace(rows: list[ShapeRow]) -> str:
    """A plain-text table: module (indented by depth), class, output shapes, own parameters."""
    cells = [("module", "class", "output shape", "params")]
    for r in rows:
        shapes = ", ".join(str(tuple(s)) for s in r.shapes) or "-"
        cells.append(("  " * r.depth + r.name, r.cls, shapes, f"{r.n_params:,}"))
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = [
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}"
        for a, b, c, d in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    seen: dict[str, int] = {}
    for r in rows:
        seen.setdefault(r.name.split("#")[0], r.n_params)  # a repeated call shares its parameters
    lines.append(f"parameters of the modules that ran: {sum(seen.values()):,}")
    return "\n".join(lines)


__all__ = [
    "DivergenceReport",
    "NanFinding",
    "NanReport",
    "ShapeRow",
    "TensorStats",
    "first_divergence",
    "format_shape_trace",
    "nan_hunt",
    "shape_trace",
]
