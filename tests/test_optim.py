"""Over9000 = Lookahead(Ralamb) against a float64 re-derivation of FACTS §6, and in fastai."""

import copy
import io
import math
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from reference.optim import Lookahead, Over9000, Ralamb, WrapperOver9000, over9000_opt_func

BETA2 = 0.999
# Quadratic toy problem f(p) = Σ c·(p − target)², g = 2c(p − target): the gradient depends
# on the weights, so a Lookahead pull-back changes every later step.
P0 = [np.array([0.5, -0.3, 0.2]), np.array([[8.0, -7.0], [6.0, 5.0]])]  # ‖b‖ = √174 ≈ 13.2 > 10
TARGET = [np.array([1.0, 1.0, -1.0]), np.zeros((2, 2))]
C = [np.array([1.0, 2.0, 0.5]), np.array([[0.1, 0.2], [0.3, 0.4]])]


def schedule(t):
    """lr and β₁ change every step, as fastai's one-cycle does (bias correction uses the current β₁)."""
    return 0.05 * (1 + 0.1 * t), 0.95 - 0.01 * t


def rederive(steps, wd=0.0, eps=1e-8, trust="published", alpha=0.5, k=6):
    """FACTS §6 step by step in float64 numpy; returns the weights after each step and flags."""
    ps = [p.copy() for p in P0]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    slow = [None, None]
    history, rectified, trusts = [], [], []
    for t in range(1, steps + 1):
        lr, beta1 = schedule(t)
        grads = [2 * c * (p - tg) for p, c, tg in zip(ps, C, TARGET)]
        n_max = 2 / (1 - BETA2) - 1
        n_t = n_max - 2 * t * BETA2**t / (1 - BETA2**t)
        rectified.append(n_t >= 5)
        step_trusts = []
        for i, g in enumerate(grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
            if n_t >= 5:
                r = (1 - BETA2**t) * (n_t - 4) / (n_max - 4) * (n_t - 2) / n_t * n_max / (n_max - 2)
                step = lr * math.sqrt(r) / (1 - beta1**t)
                direction = m[i] / (np.sqrt(v[i]) + eps)
            else:
                step = lr / (1 - beta1**t)
                direction = m[i]
            if wd != 0:
                ps[i] = ps[i] - wd * lr * ps[i]
            norm = math.sqrt(float(np.sum(ps[i] ** 2)))
            weight_norm = min(norm, 10.0)
            if trust == "published":
                radam_norm = norm
            else:  # LAMB: norm of the Adam update without the learning rate
                radam_norm = math.sqrt(float(np.sum(direction**2))) * step / lr
            ratio = 1.0 if weight_norm == 0 or radam_norm == 0 else weight_norm / radam_norm
            step_trusts.append(ratio)
            ps[i] = ps[i] - step * ratio * direction
        trusts.append(step_trusts)
        if t % k == 0:
            for i in range(len(ps)):
                if slow[i] is None:
                    slow[i] = ps[i].copy()
                slow[i] = slow[i] + alpha * (ps[i] - slow[i])
                ps[i] = slow[i].copy()
        history.append([p.copy() for p in ps])
    return history, rectified, trusts


def make_params(dtype=torch.float64):
    return [nn.Parameter(torch.tensor(p, dtype=dtype)) for p in P0]


def torch_step(params, opt, t):
    lr, beta1 = schedule(t)
    for g in opt.param_groups:
        g["lr"], g["betas"] = lr, (beta1, BETA2)
    loss = sum(
        (torch.tensor(c) * (p - torch.tensor(tg)) ** 2).sum() for p, c, tg in zip(params, C, TARGET)
    )
    opt.zero_grad()
    loss.backward()
    opt.step()


def run_torch(steps, **kw):
    params = make_params()
    opt = Over9000(params, **kw)
    history = []
    for t in range(1, steps + 1):
        torch_step(params, opt, t)
        history.append([p.detach().numpy().copy() for p in params])
    return history, opt


def test_rederivation_covers_both_branches_and_a_shrinking_trust():
    _, rectified, trusts = rederive(14)
    assert rectified == [False] * 5 + [True] * 9  # t = 1..5 un-rectified with β₂ = 0.999
    assert all(tr[0] == 1.0 for tr in trusts)  # ‖a‖ < 10: no effect
    assert all(0.7 < tr[1] < 0.85 for tr in trusts)  # ‖b‖ ≈ 12-13 > 10: trust = 10/‖b‖


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_over9000_matches_the_float64_rederivation_for_14_steps(wd):
    expected, _, _ = rederive(14, wd=wd)
    got, _ = run_torch(14, weight_decay=wd)
    for t, (e_t, g_t) in enumerate(zip(expected, got), start=1):
        for e, g in zip(e_t, g_t):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")


def test_weight_decay_changes_the_trajectory():
    a, _ = run_torch(8)
    b, _ = run_torch(8, weight_decay=0.01)
    assert not np.allclose(a[-1][0], b[-1][0], rtol=1e-6)


def test_first_sync_is_a_no_op_and_the_second_pulls_back():
    # Plain Ralamb and Over9000 agree to step 6 (slow copy created at the first sync from the
    # current weights) and differ from step 12 on.
    params = make_params()
    ralamb = Ralamb(params)
    plain = []
    for t in range(1, 13):
        torch_step(params, ralamb, t)
        plain.append([p.detach().numpy().copy() for p in params])
    la, _ = run_torch(12)
    for t in range(6):
        for x, y in zip(plain[t], la[t]):
            np.testing.assert_array_equal(x, y)
    assert not np.allclose(plain[11][1], la[11][1], rtol=1e-6)


def test_lamb_trust_matches_its_rederivation_and_differs_from_published():
    expected, _, _ = rederive(14, trust="lamb")
    got, _ = run_torch(14, trust="lamb")
    for e_t, g_t in zip(expected, got):
        for e, g in zip(e_t, g_t):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    published, _ = run_torch(14)
    assert not np.allclose(got[-1][1], published[-1][1], rtol=1e-6)


def test_float32_weights_follow_the_rederivation():
    params = make_params(torch.float32)
    opt = Over9000(params)
    for t in range(1, 15):
        lr, beta1 = schedule(t)
        for g in opt.param_groups:
            g["lr"], g["betas"] = lr, (beta1, BETA2)
        loss = sum(
            (
                torch.tensor(c, dtype=torch.float32)
                * (p - torch.tensor(tg, dtype=torch.float32)) ** 2
            ).sum()
            for p, c, tg in zip(params, C, TARGET)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    expected, _, _ = rederive(14)
    for e, p in zip(expected[-1], params):
        assert p.dtype == torch.float32
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_continues_bit_identically():
    params = make_params()
    opt = Over9000(params)
    for t in range(1, 9):  # past the first sync: slow copies exist
        torch_step(params, opt, t)
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert saved["opt"]["lookahead"]["step"] == 8 and len(saved["opt"]["slow_state"]) == 2

    resumed = [nn.Parameter(p.clone()) for p in saved["params"]]
    opt2 = Over9000(resumed)
    opt2.load_state_dict(saved["opt"])
    fresh = [nn.Parameter(p.clone()) for p in saved["params"]]
    opt3 = Over9000(fresh)  # only the base state: slow copies and step counter lost
    # deepcopy: torch's load_state_dict keeps the given state tensors (no copy), so two
    # optimizers loaded from one dict would share and both update them in place.
    base_only = {k: v for k, v in saved["opt"].items() if k in ("state", "param_groups")}
    opt3.load_state_dict(copy.deepcopy(base_only))
    for t in range(9, 19):  # syncs at 12 and 18
        torch_step(params, opt, t)
        torch_step(resumed, opt2, t)
        torch_step(fresh, opt3, t)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)
    assert not torch.equal(params[1], fresh[1])


def test_lookahead_shares_param_groups_with_the_base_optimizer():
    params = make_params()
    opt = Over9000(params, lr=0.1)
    assert opt.param_groups is opt.base_optimizer.param_groups
    opt.param_groups[0]["betas"] = (0.5, 0.9)
    assert opt.base_optimizer.param_groups[0]["betas"] == (0.5, 0.9)
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, dtype=torch.float64))]})
    assert len(opt.base_optimizer.param_groups) == 2 and len(opt.param_groups) == 2
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    torch_step(params, opt, 1)  # our helper writes lr; the scheduler then halves it
    sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(schedule(1)[0] * 0.5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="trust"):
        Ralamb(make_params(), trust="lars")
    with pytest.raises(ValueError, match="k"):
        Lookahead(Ralamb(make_params()), k=0)


# ---- fastai -----------------------------------------------------------------------------


def tiny_learner(opt_func, n=16, bs=4, **kw):
    import fastai.callback.schedule  # noqa: F401  (patches Learner.fit_one_cycle)
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner

    g = torch.Generator().manual_seed(0)
    xs = torch.randn(n, 4, generator=g)
    ys = xs @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    ds = list(zip(xs, ys))
    dls = DataLoaders(DataLoader(ds, bs=bs), DataLoader(ds, bs=bs), device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    return Learner(dls, model, loss_func=nn.MSELoss(), opt_func=opt_func, **kw)


# fastai's combine_scheds keeps the phase boundaries in a float32 tensor, so the position
# inside a phase is float32-rounded: the schedule matches the exact formula to ~1e-8 only.
SCHED_RTOL = 1e-6


def one_cycle(pos, lr_max, pct):
    """FACTS §7: fastai combined_cos for lr (div 25, div_final 1e5) and mom (0.95, 0.85, 0.95)."""
    if pos < pct:
        c = (1 - math.cos(math.pi * pos / pct)) / 2
        return lr_max / 25 + (lr_max - lr_max / 25) * c, 0.95 - 0.10 * c
    c = (1 - math.cos(math.pi * (pos - pct) / (1 - pct))) / 2
    return lr_max + (lr_max / 1e5 - lr_max) * c, 0.85 + 0.10 * c


def hyper_recorder():
    from fastai.callback.core import Callback

    class RecordHypers(Callback):
        order = 70  # after ParamScheduler (60) has written this batch's values

        def before_fit(self):
            self.rows = []

        def before_step(self):
            la = self.learn.opt.opt
            pg = la.param_groups
            self.rows.append([(g["lr"], g["betas"][0], g["betas"][1]) for g in pg])
            assert pg is la.base_optimizer.param_groups

    return RecordHypers()


def test_fit_one_cycle_reaches_lr_and_beta1_of_the_torch_optimizer():
    rec = hyper_recorder()
    learn = tiny_learner(over9000_opt_func(eps=1e-4, weight_decay=0.01), cbs=[rec])
    with learn.no_logging():
        learn.fit_one_cycle(2, lr_max=1e-2, pct_start=0.25)
    assert len(rec.rows) == 8  # 2 epochs × 4 batches
    for i, row in enumerate(rec.rows):
        lr, mom = one_cycle(i / 8, 1e-2, 0.25)
        assert row[0][0] == pytest.approx(lr, rel=SCHED_RTOL)
        assert row[0][1] == pytest.approx(mom, rel=SCHED_RTOL)
        assert row[0][2] == 0.999
    ralamb = learn.opt.opt.base_optimizer
    group = ralamb.param_groups[0]
    assert group["eps"] == 1e-4 and group["weight_decay"] == 0.01  # Learner wd=None keeps it
    assert all(s["step"] == 8 for s in ralamb.state.values())
    assert learn.opt.opt.lookahead_step == 8


def test_learner_wd_overrides_weight_decay():
    learn = tiny_learner(over9000_opt_func(), wd=0.02)
    with learn.no_logging():
        learn.fit(1, lr=1e-3)
    assert learn.opt.opt.param_groups[0]["weight_decay"] == 0.02


def test_splitter_param_groups_are_all_scheduled():
    rec = hyper_recorder()
    learn = tiny_learner(
        over9000_opt_func(),
        cbs=[rec],
        splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())],
    )
    with learn.no_logging():
        learn.fit_one_cycle(1, lr_max=slice(1e-3, 1e-2), pct_start=0.25)
    assert len(learn.opt.opt.param_groups) == 2
    last = rec.rows[-1]
    lr0, mom = one_cycle(3 / 4, 1e-3, 0.25)
    lr1, _ = one_cycle(3 / 4, 1e-2, 0.25)
    assert last[0][0] == pytest.approx(lr0, rel=SCHED_RTOL)
    assert last[1][0] == pytest.approx(lr1, rel=SCHED_RTOL)
    assert last[0][1] == last[1][1] == pytest.approx(mom, rel=SCHED_RTOL)


def test_published_wrapper_discards_eps_and_lr():
    learn = tiny_learner(partial(WrapperOver9000, eps=1e-4), lr=0.05)
    learn.create_opt()
    group = learn.opt.opt.param_groups[0]
    assert group["eps"] == 1e-8 and group["lr"] == 1e-3 and group["weight_decay"] == 0
    ours = tiny_learner(over9000_opt_func(eps=1e-4), lr=0.05)
    ours.create_opt()
    assert (
        ours.opt.opt.param_groups[0]["eps"] == 1e-4 and ours.opt.opt.param_groups[0]["lr"] == 0.05
    )


def test_learner_save_and_load_with_optimizer_state(tmp_path):
    learn = tiny_learner(over9000_opt_func(), path=tmp_path)
    with learn.no_logging():
        learn.fit_one_cycle(2, lr_max=1e-2)
    # fastai writes numpy floats (lr) into the groups; the state dict still loads with
    # weights_only=True outside fastai's allow-list.
    assert isinstance(learn.opt.opt.param_groups[0]["lr"], np.floating)
    buf = io.BytesIO()
    torch.save(learn.opt.state_dict(), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["lookahead"]["step"] == 8
    learn.save("ckpt", with_opt=True)
    other = tiny_learner(over9000_opt_func(), path=tmp_path)
    other.load("ckpt", with_opt=True)
    a, b = learn.opt.opt, other.opt.opt
    assert b.lookahead_step == a.lookahead_step == 8
    for pa, pb in zip(
        (p for g in a.param_groups for p in g["params"]),
        (p for g in b.param_groups for p in g["params"]),
    ):
        assert torch.equal(a.state[pa]["slow_buffer"], b.state[pb]["slow_buffer"])
        sa, sb = a.base_optimizer.state[pa], b.base_optimizer.state[pb]
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"]) and sa["step"] == sb["step"]
    assert copy.deepcopy(b.param_groups[0]["lr"]) == a.param_groups[0]["lr"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_over9000_on_cuda_matches_the_rederivation():
    params = [nn.Parameter(torch.tensor(p, dtype=torch.float64, device="cuda")) for p in P0]
    opt = Over9000(params)
    for t in range(1, 15):
        lr, beta1 = schedule(t)
        for g in opt.param_groups:
            g["lr"], g["betas"] = lr, (beta1, BETA2)
        loss = sum(
            (torch.tensor(c, device="cuda") * (p - torch.tensor(tg, device="cuda")) ** 2).sum()
            for p, c, tg in zip(params, C, TARGET)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    expected, _, _ = rederive(14)
    for e, p in zip(expected[-1], params):
        np.testing.assert_allclose(p.detach().cpu().numpy(), e, rtol=1e-12, atol=1e-14)
