"""Over9000's foreach path gives the bits of the per-tensor loop (the published code's form)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reference.optim import Over9000


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_foreach_update_equals_the_per_tensor_loop_bit_for_bit(weight_decay):
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GELU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 3))
    with torch.no_grad():
        a[3].weight.mul_(40)  # a tensor with norm > 10: the trust ratio clamps it
    b, start = copy.deepcopy(a), copy.deepcopy(a)
    opts = [Over9000(m.parameters(), lr=1e-2, weight_decay=weight_decay, foreach=f)
            for m, f in ((a, True), (b, False))]  # fmt: skip
    x, y = torch.randn(4, 3, 8, 8), torch.randn(4, 3)
    assert a[3].weight.norm() > 10
    for _ in range(14):  # steps 1-5 unrectified, then rectified; Lookahead syncs at 6 and 12
        for m, o in zip((a, b), opts):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    for p, s in zip(a.parameters(), start.parameters()):
        assert not torch.equal(p, s)  # every tensor really moved
