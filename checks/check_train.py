"""Check of ``train_loop.py``: ``train-loop`` (plain-PyTorch fit_one_cycle vs fastai's Learner).

Both sides train the same TinyNet from the same weights (checks.train_fixture). The
failure's first line names the first quantity that differs, in the order a run
produces them: the schedule (lr, mom) and the first loss (values rung); then the
model's mode at every forward call (train mode with gradients for training batches,
eval mode without for validation), the metric's reset() before every validation, the
per-batch step / loss / lr / mom, the epoch table and the best epoch's weights
(training rung).
"""

from __future__ import annotations

import numpy as np
import torch

from checks.ladder import Ladder
from checks.tolerances import tolerance
from checks.train_fixture import (
    BS,
    LOOP,
    N_TRAIN_BATCHES,
    N_VALID_BATCHES,
    SIZE,
    MetricSpy,
    TinyNet,
    batches,
    expected_modes,
    fastai_run,
    loop_data,
    spy_on_modes,
    spy_on_steps,
    tiny_cpu_run,
    unreset_epochs,
)

_LOG_KEYS = ("epoch", "batch", "lr", "mom", "loss", "step")
_TABLE_KEYS = ("epoch", "train_loss", "valid_loss", "f_th")
_NAMES = {"lr": "lr / lr_max", "mom": "mom", "loss": "raw loss", "step": "optimizer step"}


def _close(a: float, b: float, tol: str) -> bool:
    t = tolerance(tol)
    return abs(a - b) <= t.atol + t.rtol * abs(b)


def _what() -> str:
    args = ", ".join(f"{k}={v}" for k, v in LOOP.items())
    return (
        f"fit_one_cycle(TinyNet, {N_TRAIN_BATCHES} train batches of {BS} x (3, 5, {SIZE}, "
        f"{SIZE}), {N_VALID_BATCHES} valid batches (2, 2, 1), opt=Over9000, "
        f"loss_func=loss_comb, metric=F_th(), {args})"
    )


def _log_side_by_side(ref: list[dict], mine: list[dict], first: int | None) -> str:
    lines = [
        "  per training batch (F = fastai's Learner, Y = yours; lr as lr / lr_max):",
        "        i ep  b |   lr F      lr Y     |  mom F     mom Y    |   loss F      loss Y    | step F Y",
    ]
    lr_max = LOOP["lr_max"]
    for i, (r, m) in enumerate(zip(ref, mine)):
        mark = ">>" if i == first else "  "
        lines.append(
            f"  {mark} {i:4d} {r['epoch']:2d} {r['batch']:2d} | {r['lr'] / lr_max:9.6f} "
            f"{m['lr'] / lr_max:9.6f} | {r['mom']:9.6f} {m['mom']:9.6f} | {r['loss']:11.7f} "
            f"{m['loss']:11.7f} | {'x' if r['step'] else '.':>4} {'x' if m['step'] else '.'}"
        )
    return "\n".join(lines)


def _table_side_by_side(ref: list[dict], mine: list[dict], first: int | None) -> str:
    lines = [
        "  epoch table (F = fastai's Learner, Y = yours):",
        "     epoch |  train_loss F  train_loss Y |  valid_loss F  valid_loss Y |    f_th F      f_th Y",
    ]
    for e, (r, m) in enumerate(zip(ref, mine)):
        mark = ">>" if e == first else "  "
        lines.append(
            f"  {mark} {e:5d} | {r['train_loss']:13.7f} {m['train_loss']:13.7f} | "
            f"{r['valid_loss']:13.7f} {m['valid_loss']:13.7f} | {r['f_th']:10.7f} {m['f_th']:10.7f}"
        )
    return "\n".join(lines)


def _log_array(log: list[dict], keys: tuple[str, ...]) -> np.ndarray:
    lr_max = LOOP["lr_max"]
    return np.array(
        [[float(r[k]) / (lr_max if k == "lr" else 1.0) for k in keys] for r in log],
        dtype=np.float64,
    )


def _first_bad_batch(
    ref: list[dict], mine: list[dict], fields: dict[str, str]
) -> tuple[int, str] | None:
    """(batch index, field) of the first batch where a field differs beyond its row."""
    lr_max = LOOP["lr_max"]
    for i, (r, m) in enumerate(zip(ref, mine)):
        for key, tol in fields.items():
            if key == "step":
                if bool(m["step"]) != bool(r["step"]):
                    return i, "step"
                continue
            scale = lr_max if key == "lr" else 1.0
            if not _close(float(m[key]) / scale, float(r[key]) / scale, tol):
                return i, key
    return None


def _compare_log(c: Ladder, log_ref, log, table_ref, table, fields: dict[str, str]) -> None:
    """Fail at the first batch where one of ``fields`` differs; the headline names it."""
    keys = tuple(fields)
    bad = _first_bad_batch(log_ref, log, fields)
    c.observe(f"per-batch {', '.join(keys)}", bad is None, _log_array(log, keys), "loss_table")
    if bad is None:
        return
    i, key = bad
    r, m = log_ref[i], log[i]
    tol = "" if key == "step" else f" (tolerance {tolerance(fields[key])})"
    where = f"training batch {i} (epoch {r['epoch']}, batch {r['batch']})"
    c.fail(
        f"first difference: the {_NAMES[key]} of {where}: expected {r[key]!r}, "
        f"got {m[key]!r}{tol}\n  called:   {_what()}\n"
        f"{_log_side_by_side(log_ref, log, i)}\n{_table_side_by_side(table_ref, table, None)}"
    )


def _describe_mode(mode: tuple[bool, bool]) -> str:
    return f"{'train' if mode[0] else 'eval'} mode, gradients {'on' if mode[1] else 'off'}"


def _compare_modes(c: Ladder, modes: list[tuple[bool, bool]]) -> None:
    expected = expected_modes()
    ok = modes == expected
    c.observe("model.training and grad mode of every forward call", ok, repr(modes))
    if ok:
        return
    per_epoch = N_TRAIN_BATCHES + N_VALID_BATCHES
    if len(modes) != len(expected):
        c.fail(
            f"first difference: the number of forward calls: expected {len(expected)} "
            f"({N_TRAIN_BATCHES} training + {N_VALID_BATCHES} validation batches per epoch), "
            f"got {len(modes)}\n  called:   {_what()}"
        )
    k = next(i for i, (a, b) in enumerate(zip(modes, expected)) if a != b)
    epoch, j = divmod(k, per_epoch)
    phase = (
        f"training batch {j}" if j < N_TRAIN_BATCHES else f"validation batch {j - N_TRAIN_BATCHES}"
    )
    if j < N_TRAIN_BATCHES and not modes[k][0]:
        cause = (
            "the model is still in eval mode from the validation before: call model.train() "
            "at the start of every epoch"
        )
    elif j >= N_TRAIN_BATCHES and modes[k][0]:
        cause = "validation runs in train mode (BatchNorm uses and updates batch statistics): call model.eval() before validating"
    elif j >= N_TRAIN_BATCHES:
        cause = "validation runs with gradients on: wrap it in torch.no_grad()"
    else:
        cause = "the training forward runs without gradients: no torch.no_grad() around training"
    c.fail(
        f"first difference: the model's mode in epoch {epoch}, {phase}: expected "
        f"{_describe_mode(expected[k])}, got {_describe_mode(modes[k])}\n  {cause}\n"
        f"  called:   {_what()}"
    )


def check_train_loop(c: Ladder) -> None:
    with tiny_cpu_run():
        _check_train_loop(c)


def _learner_fit(fit, xt, yt, xv, yv) -> dict:
    """(learner side) The learner's fit_one_cycle on TinyNet (seed 0) with the trusted helpers
    of the learner's process (the bundled solutions' Over9000, loss_comb and F_th: the
    reference is not there), spied on; everything the grader needs, as data."""
    from solutions.losses import loss_comb
    from solutions.metrics import F_th
    from solutions.optim import Over9000

    torch.manual_seed(0)
    model = TinyNet()
    opt = Over9000(model.parameters())
    applied, modes, metric = spy_on_steps(opt), spy_on_modes(model), MetricSpy(F_th)
    out = fit(
        model, batches(xt, yt), batches(xv, yv), LOOP["epochs"], LOOP["lr_max"], opt,
        loss_comb, metric, pct_start=LOOP["pct_start"], n_acc=LOOP["n_acc"], clip=LOOP["clip"],
    )  # fmt: skip
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"out": out, "applied": applied, "modes": modes, "calls": metric.calls, "state": state}


def _reference_fit(xt, yt, xv, yv) -> dict:
    """(grader side) fastai's Learner on the same TinyNet, data and seeds."""
    torch.manual_seed(0)
    model = TinyNet()
    table, log = fastai_run(model, xt, yt, xv, yv)
    best = max(range(len(table)), key=lambda e: (table[e]["f_th"], -e))
    if best == len(table) - 1:  # the fixture must keep the best weights apart from the last
        raise RuntimeError("train-loop fixture: fastai's best epoch is the last one; fix loop_data")
    return {"table": table, "log": log, "best": best, "state": model.state_dict()}


def _check_train_loop(c: Ladder) -> None:
    fit = c.module.fit_one_cycle
    xt, yt, xv, yv = loop_data()
    ref = c.ref(lambda: _reference_fit(xt, yt, xv, yv))

    with c.rung("shapes"):
        run = c.call(_what(), lambda: _learner_fit(fit, xt, yt, xv, yv))
        if not c.grader:
            return  # everything after this reads what the learner's run sent
        table_ref, log_ref, best = ref["table"], ref["log"], ref["best"]
        out, applied, modes = run["out"], run["applied"], run["modes"]
        c.is_type(out, tuple, _what())
        c.equal(len(out), 2, f"number of values returned by {_what()} (table, log)")
        table, log = out
        for name, rows, n, keys in (
            ("table", table, LOOP["epochs"], _TABLE_KEYS),
            ("log", log, len(log_ref), _LOG_KEYS),
        ):
            c.equal(len(rows), n, f"number of rows in the {name} of {_what()}")
            missing = [k for k in keys if k not in rows[0]]
            if missing:
                c.fail(
                    f"called:   {_what()}\n  the {name}'s rows need the keys {list(keys)}\n"
                    f"  got:      {sorted(rows[0])}"
                )

    with c.rung("values"):
        # The schedule and the very first loss (before any step): no training involved yet.
        _compare_log(
            c, log_ref, log, table_ref, table, {"lr": "fastai_schedule", "mom": "fastai_schedule"}
        )
        _compare_log(c, log_ref[:1], log[:1], table_ref, table, {"loss": "scalar"})
        # What the optimizer really had at each of its steps (not what the log says), for the
        # steps taken after the same batch as fastai's (the training rung compares the steps).
        stepping = [i for i, r in enumerate(log_ref) if r["step"]]
        mine_stepping = [i for i, r in enumerate(log) if r.get("step")]
        for k, ((lr, mom), i, j) in enumerate(zip(applied, stepping, mine_stepping)):
            if i != j:
                break
            r = log_ref[i]
            ok_lr = _close(lr / LOOP["lr_max"], r["lr"] / LOOP["lr_max"], "fastai_schedule")
            ok = ok_lr and _close(mom, r["mom"], "fastai_schedule")
            c.observe(f"lr and betas[0] at optimizer step {k}", ok, [lr, mom], "fastai_schedule")
            if not ok:
                c.fail(
                    f"first difference: the {'lr' if not ok_lr else 'mom'} of optimizer step {k} "
                    f"(fastai steps after training batch {i}): opt.param_groups[0] held lr {lr!r}, "
                    f"betas[0] {mom!r}; fastai's one-cycle sets lr {r['lr']!r}, mom {r['mom']!r} "
                    f"for that batch (tolerance {tolerance('fastai_schedule')}, lr as lr / lr_max)\n"
                    f"  called:   {_what()}\n{_log_side_by_side(log_ref, log, i)}"
                )

    with c.rung("training"):
        _compare_modes(c, modes)
        unreset = unreset_epochs(run["calls"])
        c.observe("metric.reset() before every validation", not unreset, repr(unreset))
        if unreset:
            c.fail(
                f"first difference: the metric is not reset before the validation of epoch "
                f"{unreset[0]}, so F_th adds up the counts of several validations: call "
                f"metric.reset() before every validation\n  called:   {_what()}"
            )
        _compare_log(
            c, log_ref, log, table_ref, table,
            {"step": "exact", "loss": "loss_table", "lr": "fastai_schedule", "mom": "fastai_schedule"},
        )  # fmt: skip
        for key in _TABLE_KEYS[1:]:
            got = [float(m[key]) for m in table]
            bad = [e for e, r in enumerate(table_ref) if not _close(got[e], r[key], "loss_table")]
            c.observe(f"epoch table: {key}", not bad, got, "loss_table")
            if bad:
                e = bad[0]
                c.fail(
                    f"first difference: {key} of epoch {e}: expected {table_ref[e][key]!r}, "
                    f"got {got[e]!r} (tolerance {tolerance('loss_table')})\n  called:   {_what()}\n"
                    f"{_table_side_by_side(table_ref, table, e)}\n"
                    f"{_log_side_by_side(log_ref, log, None)}"
                )
        # SaveModelCallback: the best epoch's weights (epoch `best`), loaded back at the end.
        ref_sd, mine_sd = ref["state"], run["state"]
        f_ths = [round(r["f_th"], 6) for r in table_ref]
        for name, expected in ref_sd.items():
            got = mine_sd.get(name)
            what = (
                f"{_what()}: model.state_dict()[{name!r}] at the end (fastai loads the best "
                f"epoch back: epoch {best} of f_th {f_ths}, the first of equals)"
            )
            if got is None:
                c.fail(f"called:   {what}\n  missing from your model")
            c.close(got, expected, "loss_table", what)
