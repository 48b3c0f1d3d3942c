"""The optimizer `Over9000` = Lookahead(Ralamb) and its fastai adapters (site: facts/training/#optimizer).

Ralamb is RAdam (rectified Adam) with a LARS/LAMB-style trust ratio per tensor.
Per parameter tensor p with gradient g, t = step after increment:

    m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²
    N_max = 2/(1−β₂) − 1,   N_t = N_max − 2t·β₂ᵗ/(1−β₂ᵗ)
    N_t ≥ 5:  step = lr·√((1−β₂ᵗ)·(N_t−4)/(N_max−4)·(N_t−2)/N_t·N_max/(N_max−2)) / (1−β₁ᵗ)
    else:     step = lr / (1−β₁ᵗ)
    wd ≠ 0:   p ← p − wd·lr·p
    trust = min(‖p‖, 10) / ‖p‖      (1 if either norm is 0; see `trust` below)
    N_t ≥ 5:  p ← p − step·trust·m/(√v + eps)
    else:     p ← p − step·trust·m            (t = 1..5 with β₂ = 0.999)

Lookahead(α, k): after every k-th base step, slow ← slow + α(fast − slow), fast ← slow.
The slow copy is created at the first sync from the current fast weights, so the first
sync (step k) changes nothing and the first real pull-back happens at step 2k.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

__all__ = [
    "Ralamb",
    "Lookahead",
    "Over9000",
    "radam_step_size",
    "over9000_opt_func",
    "WrapperOver9000",
]

TRUST_MODES = ("published", "lamb")
# Upper clamp of the weight norm in the trust ratio (the original's constant).
WEIGHT_NORM_CLAMP = 10.0


def radam_step_size(t: int, lr: float, beta1: float, beta2: float) -> tuple[float, bool]:
    """RAdam step size at step t (1-based) and whether the variance is rectified (N_t ≥ 5)."""
    beta2_t = beta2**t
    n_max = 2 / (1 - beta2) - 1
    n_t = n_max - 2 * t * beta2_t / (1 - beta2_t)
    if n_t >= 5:
        rect = (1 - beta2_t) * (n_t - 4) / (n_max - 4) * (n_t - 2) / n_t * n_max / (n_max - 2)
        return lr * math.sqrt(rect) / (1 - beta1**t), True
    return lr / (1 - beta1**t), False


class Ralamb(Optimizer):
    """RAdam + trust ratio, per tensor (see the module docstring for the update).

    trust='published' (default) reproduces the original: weight_norm = clamp(‖p‖, 0, 10)
    and radam_norm = ‖p‖ (the code meant the norm of the Adam update but measures the
    weights), both after weight decay, so trust = min(‖p‖, 10)/‖p‖: it only shrinks the
    updates of tensors with ‖p‖ > 10.
    trust='lamb' uses the LAMB ratio clamp(‖p‖, 0, 10) / ‖r‖ with r = step/lr · m/(√v+eps)
    (or step/lr · m un-rectified), the Adam direction without the learning rate.

    The original cached the step size per step number across parameter groups; computing
    it per group is the same whenever groups share lr and betas (as in this solution).
    States have the dtype of the weights, at least float32.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        trust: str = "published",
        foreach: bool = True,
    ):
        if trust not in TRUST_MODES:
            raise ValueError(f"trust must be one of {TRUST_MODES}, got {trust!r}")
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(
                f"lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}"
            )
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, trust=trust)
        super().__init__(params, defaults)
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # fastai's one-cycle writes numpy floats; plain floats keep the arithmetic in Python.
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = (float(b) for b in group["betas"])
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("Ralamb does not support sparse gradients")
            if self.foreach and group["trust"] == "published" and _float32(params):
                self._update_foreach(params, lr, beta1, beta2, eps, wd)
                continue
            for p in params:
                self._update(p, group["trust"], lr, beta1, beta2, eps, wd)
        return loss

    def _update_foreach(
        self, params: list[torch.Tensor], lr: float, beta1: float, beta2: float, eps: float,
        wd: float,
    ) -> None:  # fmt: skip
        """`_update` for a list of float32 tensors at once (torch._foreach_* ops).

        The same elementwise operations in the same order, so the same bits as the
        per-tensor loop of the original (tests/test_optim.py); one Python call per
        operation instead of one per operation and tensor, which was a fifth of a
        CoaT_ULSTM tiny step on a CPU (benchmarks/train_step.py).
        """
        states = [self.state[p] for p in params]
        for p, st in zip(params, states):
            if not st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
        grads = [p.grad for p in params]
        ms, vs = [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states]
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, grads, alpha=1 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
        by_step: dict[int, list[int]] = defaultdict(list)  # one entry unless params joined late
        for i, st in enumerate(states):
            by_step[st["step"]].append(i)
        for t, idx in by_step.items():
            step_size, rectified = radam_step_size(t, lr, beta1, beta2)
            ws, m, v = [params[i] for i in idx], [ms[i] for i in idx], [vs[i] for i in idx]
            if wd != 0:
                torch._foreach_add_(ws, ws, alpha=-wd * lr)
            w_norm = torch.stack([w.pow(2).sum() for w in ws]).sqrt()
            weight_norm = w_norm.clamp(0, WEIGHT_NORM_CLAMP)
            ratio = torch.where(
                (weight_norm == 0) | (w_norm == 0),
                torch.ones_like(weight_norm),
                weight_norm / w_norm,
            )
            update = torch._foreach_mul(m, list((ratio * -step_size).unbind()))
            if rectified:
                denom = torch._foreach_sqrt(v)
                torch._foreach_add_(denom, eps)
                torch._foreach_addcdiv_(ws, update, denom)
            else:
                torch._foreach_add_(ws, update)

    def _update(
        self,
        p: torch.Tensor,
        trust: str,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        wd: float,
    ) -> None:
        # Half-precision weights are updated through a float32 copy (as the original's
        # p.data.float()); float32 and float64 weights are updated in place, which also
        # lets tests check the algorithm in float64.
        w = p.float() if p.dtype in (torch.float16, torch.bfloat16) else p
        grad = p.grad.to(w.dtype)
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(w, memory_format=torch.preserve_format)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        state["step"] += 1
        step_size, rectified = radam_step_size(state["step"], lr, beta1, beta2)

        if wd != 0:
            w.add_(w, alpha=-wd * lr)

        denom = v.sqrt().add_(eps) if rectified else None
        # Σw² then √ as in the original (torch.norm may round the last bit differently).
        w_norm = w.pow(2).sum().sqrt()
        weight_norm = w_norm.clamp(0, WEIGHT_NORM_CLAMP)
        if trust == "published":
            radam_norm = w_norm
        else:
            unit_step = radam_step_size(state["step"], 1.0, beta1, beta2)[0]
            direction = m / denom if rectified else m
            radam_norm = direction.pow(2).sum().sqrt() * unit_step
        # torch.where keeps the ratio on the device: no host sync per tensor.
        ratio = torch.where(
            (weight_norm == 0) | (radam_norm == 0),
            torch.ones_like(weight_norm),
            weight_norm / radam_norm,
        )
        scale = ratio * -step_size
        if rectified:
            w.addcdiv_(m * scale, denom)
        else:
            w.add_(m * scale)
        if w is not p:
            p.copy_(w)


def _float32(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.dtype == torch.float32 for p in params)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    return v


class Lookahead(Optimizer):
    """Lookahead around any torch optimizer; shares its `param_groups`.

    base_optimizer: a built torch optimizer; alpha: slow step size; k: sync period.
    fastai and torch schedulers write lr/betas into `param_groups`, which are the base
    optimizer's own dicts. The slow copies live in `self.state[p]['slow_buffer']`.
    Parameters without a gradient at a sync are not synced (as in the original).
    """

    def __init__(self, base_optimizer: Optimizer, alpha: float = 0.5, k: int = 6):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.base_optimizer = base_optimizer
        self.alpha, self.k = alpha, k
        self.lookahead_step = 0
        # Optimizer.__init__ sets up torch's hook machinery; it appends the base's group
        # dicts (the same objects) to a new list, which is then replaced by the base's list
        # so that groups added later (Optimizer.add_param_group appends to self.param_groups,
        # with the base's defaults) are shared too.
        super().__init__(base_optimizer.param_groups, base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state = defaultdict(dict)

    @torch.no_grad()
    def sync(self) -> None:
        """slow ← slow + α(fast − slow); fast ← slow (slow created from fast at first use)."""
        for group in self.param_groups:
            for fast in group["params"]:
                if fast.grad is None:
                    continue
                state = self.state[fast]
                if "slow_buffer" not in state:
                    state["slow_buffer"] = fast.detach().clone()
                slow = state["slow_buffer"]
                slow.add_(fast - slow, alpha=self.alpha)
                fast.copy_(slow)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = self.base_optimizer.step(closure)
        self.lookahead_step += 1
        if self.lookahead_step % self.k == 0:
            self.sync()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def _param_index(self) -> dict[int, int]:
        # Same numbering as torch's Optimizer.state_dict: params in group order.
        params = (p for g in self.param_groups for p in g["params"])
        return {id(p): i for i, p in enumerate(params)}

    def state_dict(self) -> dict[str, Any]:
        """Base optimizer's state_dict plus 'slow_state' {index: {'slow_buffer'}} and 'lookahead'."""
        sd = self.base_optimizer.state_dict()
        index = self._param_index()
        sd["slow_state"] = {
            index[id(p)]: {"slow_buffer": s["slow_buffer"]}
            for p, s in self.state.items()
            if "slow_buffer" in s
        }
        sd["lookahead"] = {"alpha": self.alpha, "k": self.k, "step": self.lookahead_step}
        # fastai's one-cycle writes numpy floats into the groups; plain floats (same values)
        # keep the dict loadable with torch.load(weights_only=True).
        sd["param_groups"] = [{k: _plain(v) for k, v in g.items()} for g in sd["param_groups"]]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore base state, slow copies and the step counter (a missing part starts fresh)."""
        state_dict = dict(state_dict)
        slow_state = state_dict.pop("slow_state", {})
        lookahead = state_dict.pop("lookahead", None)
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        params = [p for g in self.param_groups for p in g["params"]]
        self.state = defaultdict(dict)
        for i, s in slow_state.items():
            p = params[int(i)]
            self.state[p]["slow_buffer"] = s["slow_buffer"].detach().to(p.device, p.dtype).clone()
        if lookahead is not None:
            self.alpha, self.k = lookahead["alpha"], lookahead["k"]
            self.lookahead_step = lookahead["step"]
        else:
            self.lookahead_step = 0

    def __repr__(self) -> str:
        return f"Lookahead(alpha={self.alpha}, k={self.k}, {self.base_optimizer!r})"


def Over9000(
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    alpha: float = 0.5,
    k: int = 6,
    **kwargs: Any,
) -> Lookahead:
    """Lookahead(Ralamb(params, **kwargs), alpha, k): the optimizer of the original solution."""
    return Lookahead(Ralamb(params, **kwargs), alpha=alpha, k=k)


def over9000_opt_func(
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    alpha: float = 0.5,
    k: int = 6,
    trust: str = "published",
    foreach: bool = True,
) -> Callable:
    """fastai `opt_func` for Learner: `opt_func(params, lr) -> OptimWrapper(Over9000(...))`.

    params are what fastai's splitter gives: a list of tensors (one group) or a list of
    lists (one group each; OptimWrapper turns them into dicts). fastai's one-cycle then
    writes `lr` and `mom`; OptimWrapper maps `mom` to `betas[0]` and `wd` to `weight_decay`.
    The defaults reproduce what the original actually trained with: eps 1e-8, weight decay 0.
    """
    from fastai.optimizer import OptimWrapper

    def opt_func(params, lr: float = 1e-3) -> OptimWrapper:
        return OptimWrapper(
            params,
            opt=Over9000,
            lr=lr,
            eps=eps,
            weight_decay=weight_decay,
            alpha=alpha,
            k=k,
            trust=trust,
            foreach=foreach,
        )

    return opt_func


def WrapperOver9000(param_groups, **kwargs: Any):
    """The original's fastai adapter, trap included: **every keyword is discarded**.

    `opt_func=partial(WrapperOver9000, eps=1e-4)` therefore trains with eps 1e-8, and
    Learner's `lr` is dropped too (Ralamb starts at 1e-3 until one-cycle writes lr).
    Kept to show the trap; use `over9000_opt_func` for a working adapter.
    """
    from fastai.optimizer import OptimWrapper

    return OptimWrapper(param_groups, opt=Over9000)
