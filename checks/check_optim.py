"""Check of ``optim.py``: ``over9000`` (Ralamb, Lookahead, Over9000)."""

from __future__ import annotations

import io
import math

import torch
import torch._dynamo  # noqa: F401
from fastai.optimizer import OptimWrapper

from checks.ladder import SEEDS, Ladder
from reference import optim as ref_optim

# torch.optim imports torch._dynamo at the first step (3-10 s); importing it, and fastai,
# with this module keeps that outside the check's clock (the runner imports checks first).

# Parameter shapes per case: a tensor with ‖p‖ > 10 (where the published trust ratio
# shrinks the update), a zero bias (‖p‖ = 0: trust 1), a small tensor, and one frozen
# tensor that never gets a gradient (must be left alone, also by Lookahead).
_PARAM_SHAPES = (((6, 5), (5,), (3, 4), (2,)), ((4, 9), (7,), (2, 3, 2), (3,)))
_SCALES = (2.6, 0.0, 0.4, 1.0)
_LR = 0.05  # large, so that every term of the update moves the weights visibly


def make_params(seed: int, shapes) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) * k for s, k in zip(shapes, _SCALES)]


def make_grads(seed: int, shapes, steps: int) -> list[list[torch.Tensor | None]]:
    """grads[t][i]: gradient of parameter i at step t (None for the frozen last one).
    Each tensor's gradients have their own scale and a drift, so m and v differ."""
    g = torch.Generator().manual_seed(1000 + seed)
    out = []
    for t in range(steps):
        row: list[torch.Tensor | None] = [
            (torch.randn(s, generator=g) + 0.3 * math.sin(t)) * (0.1 + i)
            for i, s in enumerate(shapes[:-1])
        ]
        out.append(row + [None])
    return out


def schedule(steps: int) -> list[tuple[float, float]]:
    """(lr, mom) per step, as fastai's one-cycle writes them into the param groups."""
    out = []
    for t in range(steps):
        p = t / max(steps - 1, 1)
        out.append((_LR * (0.2 + 0.8 * math.sin(math.pi * p)), 0.95 - 0.1 * math.sin(math.pi * p)))
    return out


def _step(opt, ps, row, sched_t, mult: bool = True) -> list[torch.Tensor]:
    """(either side) lr and betas[0] into the groups (when ``sched_t``), the gradients of
    ``row``, one step; the parameters after it."""
    if sched_t is not None:
        for group in opt.param_groups:
            group["lr"] = sched_t[0] * (group.get("lr_mult", 1.0) if mult else 1.0)
            group["betas"] = (sched_t[1], group["betas"][1])
    for p, gr in zip(ps, row):
        p.grad = None if gr is None else gr.clone()
    opt.step()
    return [p.detach().clone() for p in ps]


def _trajectory(make_opt, params, grads, sched) -> list[list[torch.Tensor]]:
    """(the reference's side) the parameters after every step."""
    ps = [p.clone().requires_grad_() for p in params]
    opt = make_opt(ps)
    return [_step(opt, ps, row, sched[t] if sched else None) for t, row in enumerate(grads)]


def _learner_run(c: Ladder, make_opt, params, grads, sched, what: str):
    """(learner code) the optimizer built and stepped; yields (step, parameters after it)."""
    ps = [p.clone().requires_grad_() for p in params]
    opt = c.call(what, lambda: make_opt(ps))
    for t, row in enumerate(grads):
        sched_t = sched[t] if sched else None
        after = c.call(f"{what}: step {t + 1}", lambda row=row, s=sched_t: _step(opt, ps, row, s))
        yield t + 1, after


def _compare_step(c: Ladder, mine, ref, params, t: int, what: str) -> None:
    for i, p0 in enumerate(params):
        desc = (
            f"{what}: parameter {i} {tuple(p0.shape)} (‖p0‖ = {float(p0.norm()):.2f}) "
            f"after step {t}, as p_t − p_0"
        )
        c.close(mine[i] - p0, ref[i] - p0, "optimizer", desc)


def _compare_runs(c: Ladder, make_mine, make_ref, params, grads, sched, what: str) -> None:
    """Parameters after every step; compared as displacements p_t − p_0 so that the
    tolerance measures the updates, not the weights."""
    ref_states = c.ref(lambda: _trajectory(make_ref, params, grads, sched))
    for t, mine in _learner_run(c, make_mine, params, grads, sched, what):
        _compare_step(c, mine, ref_states[t - 1], params, t, what)


def _groups(params, lr=_LR, **kw):
    """Two param groups, the second at half the lr (fastai's splitter makes groups)."""
    return [
        {"params": params[:2], "lr": lr, "lr_mult": 1.0, **kw},
        {"params": params[2:], "lr": lr / 2, "lr_mult": 0.5, **kw},
    ]


def check_over9000(c: Ladder) -> None:
    m = c.module
    with c.rung("shapes"):
        shapes = _PARAM_SHAPES[0]
        params = make_params(0, shapes)
        grads = make_grads(0, shapes, 1)
        what = "Over9000(params, lr=0.05)"
        for _, after in _learner_run(
            c, lambda ps: m.Over9000(ps, lr=_LR), params, grads, None, what
        ):
            for i, p0 in enumerate(params):
                c.same_shape(after[i], p0, f"{what}: parameter {i} after one step")
            moved = not torch.equal(after[-1], params[-1])
            c.observe(f"{what}: the parameter without a gradient unchanged", not moved, moved)
            if moved:
                c.fail(
                    f"called:   {what}, one step\n  the last parameter has no gradient "
                    "(p.grad is None) and must not change; it did"
                )
        keys = c.call(
            f"{what}.param_groups[0].keys()",
            lambda: sorted(m.Over9000([p.clone() for p in params], lr=_LR).param_groups[0]),
        )
        for key in ("lr", "betas", "eps", "weight_decay"):
            if key not in keys:
                c.fail(
                    f"called:   {what}.param_groups[0]\n  has no key {key!r}: fastai's "
                    "one-cycle writes lr and betas[0] into the groups, so they must live there"
                )

    with c.rung("values"):
        for seed in SEEDS:
            for shapes in _PARAM_SHAPES:
                params = make_params(seed, shapes)
                grads = make_grads(seed, shapes, 8)
                tag = f"shapes {[tuple(s) for s in shapes]} (seed {seed})"
                _compare_runs(
                    c,
                    lambda ps: m.Ralamb(ps, lr=_LR),
                    lambda ps: ref_optim.Ralamb(ps, lr=_LR),
                    params,
                    grads,
                    None,
                    f"Ralamb(params, lr={_LR}), 8 steps, {tag}",
                )
        # The schedule moves lr and betas[0] at every step; weight decay and two groups.
        for seed in SEEDS:
            shapes = _PARAM_SHAPES[seed]
            params = make_params(seed, shapes)
            grads = make_grads(seed, shapes, 8)
            _compare_runs(
                c,
                lambda ps: m.Ralamb(_groups(ps), weight_decay=0.01),
                lambda ps: ref_optim.Ralamb(_groups(ps), weight_decay=0.01),
                params,
                grads,
                schedule(8),
                f"Ralamb(two groups, lr {_LR} and {_LR / 2}, weight_decay=0.01), lr and betas[0] "
                f"changed before every step, 8 steps (seed {seed})",
            )
        # Lookahead: syncs at steps 6 and 12; the slow copy is born at step 6, so step 12
        # is the first real pull-back.
        for seed in SEEDS:
            shapes = _PARAM_SHAPES[1 - seed]
            params = make_params(seed, shapes)
            grads = make_grads(seed, shapes, 13)
            _compare_runs(
                c,
                lambda ps: m.Over9000(ps, lr=_LR),
                lambda ps: ref_optim.Over9000(ps, lr=_LR),
                params,
                grads,
                schedule(13),
                f"Over9000(params, lr={_LR}) (alpha 0.5, k 6), lr and betas[0] changed before "
                f"every step, 13 steps (seed {seed})",
            )
            _compare_runs(
                c,
                lambda ps: m.Lookahead(m.Ralamb(ps, lr=_LR), alpha=0.3, k=4),
                lambda ps: ref_optim.Lookahead(ref_optim.Ralamb(ps, lr=_LR), alpha=0.3, k=4),
                params,
                grads,
                None,
                f"Lookahead(Ralamb(params, lr={_LR}), alpha=0.3, k=4), 13 steps (seed {seed})",
            )

    with c.rung("state_dict"):
        # A checkpoint in the middle of a run: 7 steps, state_dict() through torch.save /
        # torch.load, a fresh Over9000 on fresh tensors, load_state_dict(), 6 more steps.
        # The resumed run must equal an uninterrupted one: Ralamb's moments and step counts,
        # Lookahead's slow weights (born at step 6) and step counter (sync at step 12), and
        # param groups that a scheduler can still write into.
        for seed in SEEDS:
            shapes = _PARAM_SHAPES[seed]
            params = make_params(seed, shapes)
            grads = make_grads(seed, shapes, 13)
            sched = schedule(13)
            what = f"Over9000(params, lr={_LR}): 7 steps, state_dict() -> torch.save/load -> a new Over9000.load_state_dict(), 6 more steps (seed {seed})"
            ref = c.ref(
                lambda params=params, grads=grads, sched=sched: _trajectory(
                    lambda qs: ref_optim.Over9000(qs, lr=_LR), params, grads, sched
                )
            )
            ps = [p.clone().requires_grad_() for p in params]
            opt = c.call(what, lambda ps=ps: m.Over9000(ps, lr=_LR))
            for t in range(7):
                c.call(
                    f"{what}: step {t + 1}",
                    lambda o=opt, ps=ps, t=t, g=grads, s=sched: _step(
                        o, ps, g[t], s[t], mult=False
                    ),
                )
            c.call(
                f"{what}: state_dict()",
                lambda o=opt: _through_torch_save(o.state_dict()),
                fails=True,
            )
            resumed = [p.detach().clone().requires_grad_() for p in params]
            c.call("the resumed model's tensors", lambda ps=ps, r=resumed: _copy_into(r, ps))
            opt = c.call(what, lambda r=resumed: m.Over9000(r, lr=_LR))
            c.call(
                f"{what}: load_state_dict(saved)",
                lambda o=opt: o.load_state_dict(_SAVED[0]),
                fails=True,
            )
            for t in range(7, 13):
                after = c.call(
                    f"{what}: step {t + 1}",
                    lambda o=opt, r=resumed, t=t, g=grads, s=sched: _step(
                        o, r, g[t], s[t], mult=False
                    ),
                )
                for i, p0 in enumerate(params):
                    desc = (
                        f"{what}: parameter {i} {tuple(p0.shape)} after step {t + 1}, as p_t − p_0"
                    )
                    c.close(after[i] - p0, ref[t][i] - p0, "optimizer", desc)

    with c.rung("training"):
        # As the trainer uses it: fastai's OptimWrapper, whose set_hyper('mom') writes betas[0].
        shapes = _PARAM_SHAPES[0]
        params = make_params(1, shapes)
        grads = make_grads(1, shapes, 7)
        sched = schedule(7)

        def wrapped(opt_cls):
            def make(ps):
                return OptimWrapper(ps, opt=opt_cls, lr=1e-3, eps=1e-8, weight_decay=0.0)

            return make

        def wrapped_step(opt, ps, row, sched_t):
            opt.set_hypers(lr=sched_t[0], mom=sched_t[1])
            for p, gr in zip(ps, row):
                p.grad = None if gr is None else gr.clone()
            opt.step()
            return [p.detach().clone() for p in ps]

        def reference_states():
            ps_ref = [p.clone().requires_grad_() for p in params]
            opt_ref = wrapped(ref_optim.Over9000)(ps_ref)
            return [wrapped_step(opt_ref, ps_ref, row, sched[t]) for t, row in enumerate(grads)]

        ref_states = c.ref(reference_states)
        ps = [p.clone().requires_grad_() for p in params]
        what = "OptimWrapper(params, opt=Over9000, lr=1e-3, eps=1e-8, weight_decay=0.0)"
        opt = c.call(what, lambda: wrapped(m.Over9000)(ps))
        for t, row in enumerate(grads):
            after = c.call(
                f"{what}: set_hypers(lr=, mom=) and step {t + 1}",
                lambda row=row, t=t: wrapped_step(opt, ps, row, sched[t]),
            )
            for i, p0 in enumerate(params):
                desc = (
                    f"{what}, one-cycle-like lr/mom: parameter {i} after step {t + 1}, as p_t − p_0"
                )
                c.close(after[i] - p0, ref_states[t][i] - p0, "optimizer", desc)


def _through_torch_save(state: dict) -> None:
    """(learner side) the state dict written with torch.save and read back, kept for the
    resumed optimizer of the same side (see _copy_into); nothing crosses to the grader."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    _SAVED.clear()
    _SAVED.append(torch.load(buf, weights_only=False))


def _copy_into(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for d, s in zip(dst, src):
            d.copy_(s.detach())


_SAVED: list = []
