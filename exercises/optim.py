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
        raise NotImplementedError("over9000: write Ralamb.__init__ (shakyo hint over9000)")
        # END EXERCISE over9000

    @torch.no_grad()
    def step(self, closure=None):
        # BEGIN EXERCISE over9000
        raise NotImplementedError("over9000: write Ralamb.step (shakyo hint over9000)")
        # END EXERCISE over9000


class Lookahead(Optimizer):
    """Lookahead around a built optimizer; shares its param_groups (so a scheduler that
    writes lr and betas into them reaches the base optimizer)."""

    def __init__(self, base_optimizer, alpha=0.5, k=6):
        # BEGIN EXERCISE over9000
        raise NotImplementedError("over9000: write Lookahead.__init__ (shakyo hint over9000)")
        # END EXERCISE over9000

    def step(self, closure=None):
        # BEGIN EXERCISE over9000
        raise NotImplementedError("over9000: write Lookahead.step (shakyo hint over9000)")
        # END EXERCISE over9000

    def state_dict(self):
        """The base optimizer's state_dict (moments, steps, groups) plus the slow weights
        (by parameter index) and the step counter: what a checkpoint needs to resume."""
        # BEGIN EXERCISE over9000
        raise NotImplementedError("over9000: write Lookahead.state_dict (shakyo hint over9000)")
        # END EXERCISE over9000

    def load_state_dict(self, state_dict):
        # BEGIN EXERCISE over9000
        raise NotImplementedError("over9000: write Lookahead.load_state_dict (shakyo hint over9000)")
        # END EXERCISE over9000


def Over9000(params, alpha=0.5, k=6, *args, **kwargs):
    """Lookahead(Ralamb(params, *args, **kwargs), alpha, k): the optimizer of the original."""
    # BEGIN EXERCISE over9000
    raise NotImplementedError("over9000: write Over9000 (shakyo hint over9000)")
    # END EXERCISE over9000
