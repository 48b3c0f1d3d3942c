"""The optimizer Over9000 = Lookahead(Ralamb) (site: facts/training/#optimizer).

Exercise ``over9000``.

Ralamb is RAdam (Adam with a rectified variance) times a per-tensor trust ratio.
For each parameter tensor p with gradient g, t = its step count after incrementing:

    m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²
    N_max = 2/(1−β₂) − 1,   N_t = N_max − 2t·β₂ᵗ/(1−β₂ᵗ)
    N_t ≥ 5:  step = lr·√((1−β₂ᵗ)(N_t−4)/(N_max−4)·(N_t−2)/N_t·N_max/(N_max−2)) / (1−β₁ᵗ)
    else:     step = lr / (1−β₁ᵗ)
    wd ≠ 0:   p ← p − wd·lr·p
    trust = min(‖p‖, 10) / ‖p‖   (1 if a norm is 0)
    N_t ≥ 5:  p ← p − step·trust·m/(√v + eps)    else: p ← p − step·trust·m

Lookahead(α, k): after every k-th step of the base optimizer,
slow ← slow + α(fast − slow), fast ← slow (slow starts as a copy of fast at the first sync).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch.optim import Optimizer


class Ralamb(Optimizer):
    """RAdam with the published trust ratio (see the module docstring).

    params: tensors or param-group dicts. fastai's one-cycle writes group['lr'] and
    group['betas'][0] before every batch, so both are read from the group at each step.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        # BEGIN EXERCISE over9000
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        # END EXERCISE over9000

    @torch.no_grad()
    def step(self, closure=None):
        # BEGIN EXERCISE over9000
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                p_fp32 = p.float()  # a copy for fp16 weights, p itself for float32
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p_fp32)
                    state["exp_avg_sq"] = torch.zeros_like(p_fp32)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                state["step"] += 1
                t = state["step"]

                beta2_t = beta2**t
                n_sma_max = 2 / (1 - beta2) - 1
                n_sma = n_sma_max - 2 * t * beta2_t / (1 - beta2_t)
                if n_sma >= 5:
                    step_size = (
                        lr
                        * math.sqrt(
                            (1 - beta2_t)
                            * (n_sma - 4)
                            / (n_sma_max - 4)
                            * (n_sma - 2)
                            / n_sma
                            * n_sma_max
                            / (n_sma_max - 2)
                        )
                        / (1 - beta1**t)
                    )
                else:
                    step_size = lr / (1 - beta1**t)

                if wd != 0:
                    p_fp32.add_(p_fp32, alpha=-wd * lr)

                # As published: both norms measure the weights (the code meant the norm of
                # the Adam update for radam_norm), so only tensors with ‖p‖ > 10 are shrunk.
                weight_norm = float(p_fp32.pow(2).sum().sqrt().clamp(0, 10))
                radam_norm = float(p_fp32.pow(2).sum().sqrt())
                if weight_norm == 0 or radam_norm == 0:
                    trust_ratio = 1.0
                else:
                    trust_ratio = weight_norm / radam_norm

                if n_sma >= 5:
                    denom = exp_avg_sq.sqrt().add_(eps)
                    p_fp32.addcdiv_(exp_avg, denom, value=-step_size * trust_ratio)
                else:
                    p_fp32.add_(exp_avg, alpha=-step_size * trust_ratio)
                if p_fp32 is not p:
                    p.copy_(p_fp32)
        return loss
        # END EXERCISE over9000


class Lookahead(Optimizer):
    """Lookahead around a built optimizer; shares its param_groups (so a scheduler that
    writes lr and betas into them reaches the base optimizer)."""

    def __init__(self, base_optimizer, alpha=0.5, k=6):
        # BEGIN EXERCISE over9000
        self.base_optimizer = base_optimizer
        self.alpha = alpha
        self.k = k
        self.step_counter = 0
        super().__init__(base_optimizer.param_groups, base_optimizer.defaults)
        # Optimizer.__init__ copied the group list: use the base's own list and a fresh
        # state for the slow weights (the base keeps its moments in its own state).
        self.param_groups = base_optimizer.param_groups
        self.state = defaultdict(dict)
        # END EXERCISE over9000

    def step(self, closure=None):
        # BEGIN EXERCISE over9000
        loss = self.base_optimizer.step(closure)
        self.step_counter += 1
        if self.step_counter % self.k == 0:
            with torch.no_grad():
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
        return loss
        # END EXERCISE over9000

    def state_dict(self):
        """The base optimizer's state_dict (moments, steps, groups) plus the slow weights
        (by parameter index) and the step counter: what a checkpoint needs to resume."""
        # BEGIN EXERCISE over9000
        state_dict = self.base_optimizer.state_dict()
        params = [p for group in self.param_groups for p in group["params"]]
        state_dict["slow_state"] = {
            i: self.state[p]["slow_buffer"]
            for i, p in enumerate(params)
            if "slow_buffer" in self.state.get(p, {})
        }
        state_dict["step_counter"] = self.step_counter
        return state_dict
        # END EXERCISE over9000

    def load_state_dict(self, state_dict):
        # BEGIN EXERCISE over9000
        state_dict = dict(state_dict)
        slow_state = state_dict.pop("slow_state", {})
        self.step_counter = state_dict.pop("step_counter", 0)
        self.base_optimizer.load_state_dict(state_dict)
        # The base's load_state_dict built new group dicts: share them again, or a
        # scheduler writing lr into self.param_groups would no longer reach the base.
        self.param_groups = self.base_optimizer.param_groups
        params = [p for group in self.param_groups for p in group["params"]]
        self.state = defaultdict(dict)
        for i, slow in slow_state.items():
            p = params[int(i)]
            self.state[p]["slow_buffer"] = slow.detach().to(p.device, p.dtype).clone()
        # END EXERCISE over9000


def Over9000(params, alpha=0.5, k=6, *args, **kwargs):
    """Lookahead(Ralamb(params, *args, **kwargs), alpha, k): the optimizer of the original."""
    # BEGIN EXERCISE over9000
    return Lookahead(Ralamb(params, *args, **kwargs), alpha=alpha, k=k)
    # END EXERCISE over9000
