"""Check of ``train_loop.py``: ``train-loop`` (plain-PyTorch fit_one_cycle vs fastai's Learner)."""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import warnings

import torch
import torch._dynamo  # noqa: F401  (torch.optim imports it at its first step; see below)
from fastai.callback.core import Callback
from fastai.callback.tracker import SaveModelCallback
from fastai.callback.training import GradientAccumulation, GradientClip
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from torch import nn

from checks.ladder import Ladder
from checks.tolerances import tolerance
from reference import losses as ref_losses
from reference import metrics as ref_metrics
from reference import optim as ref_optim

# fastai and torch._dynamo (which torch.optim imports lazily) are imported with this module,
# before the runner starts a check's clock: the budget measures the check, not imports.

# The run both sides train: BS 2, n_acc 6 (a step every 3 batches, so one accumulation
# straddles the epoch boundary), 8 batches per epoch, 2 epochs, clip 0.5 (it binds on
# some steps, not all), lr_max 3 (Ralamb's first 5 steps are un-normalised: the weights
# move visibly in 5 steps).
_LOOP = {"epochs": 2, "lr_max": 3.0, "pct_start": 0.25, "n_acc": 6, "clip": 0.5}
_BS, _N_TRAIN, _N_VALID, _SIZE = 2, 16, 5, 16  # 5 validation samples: batches of 2, 2, 1


class TinyNet(nn.Module):
    """(B, 3, 5, H, W) -> (B, 1, H, W) logits: frames as channels, conv-BN-ReLU-conv.
    BatchNorm makes train and eval mode differ."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(15, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        return self.conv2(torch.relu(self.bn(self.conv1(x.reshape(b, c * t, h, w)))))


def loop_data() -> tuple[torch.Tensor, ...]:
    """Training masks: channel 0 of frame 4 + channel 1 of frame 3 > 1. Validation masks
    are mostly the complement of that rule: the better the model learns, the worse it scores, and
    f_th stays at the Dice of 'all positive' (every p > 0.1) in both epochs. The tie makes
    fastai keep epoch 0 (strictly better only), so the best weights are not the last."""
    g = torch.Generator().manual_seed(0)
    xt = torch.rand(_N_TRAIN, 3, 5, _SIZE, _SIZE, generator=g)
    xv = torch.rand(_N_VALID, 3, 5, _SIZE, _SIZE, generator=g)
    yt = (xt[:, 0, 4] + xt[:, 1, 3] > 1.0).float()[:, None]
    yv = (xv[:, 0, 4] + xv[:, 1, 3] <= 1.0).float()[:, None]
    # The last validation sample (alone in its batch) follows the training rule: its loss
    # is far from the others', so a mean over batches differs from the mean over samples.
    yv[-1] = 1.0 - yv[-1]
    return xt, yt, xv, yv


def _batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(a.clone(), b.clone()) for a, b in zip(x.split(_BS), y.split(_BS))]


def fastai_run(model: nn.Module, xt, yt, xv, yv) -> tuple[list[dict], list[dict]]:
    """The reference: fastai's Learner as the original trained (site: facts/training/#recipe), on CPU in float32,
    without shuffling or augmentation. Returns (table, log) as fit_one_cycle's docstring
    defines them; ``model`` ends with the best epoch's weights (SaveModelCallback)."""

    class BatchRecord(Callback):
        order = 70  # after ParamScheduler (60) has written this batch's lr and mom

        def before_fit(self) -> None:
            self.batch_log: list[dict] = []

        def before_batch(self) -> None:
            self.did_step = False

        def after_step(self) -> None:  # skipped when GradientAccumulation cancels the batch
            self.did_step = True

        def after_batch(self) -> None:
            if self.learn.training:
                h = self.learn.opt.hypers[-1]
                self.batch_log.append(
                    {"epoch": self.learn.epoch, "batch": self.learn.iter, "lr": float(h["lr"]),
                     "mom": float(h["mom"]), "loss": self.learn.loss.detach().item(),
                     "step": self.did_step}
                )  # fmt: skip

    dl_t = DataLoader(list(zip(xt, yt)), bs=_BS, shuffle=False, drop_last=True, num_workers=0)
    dl_v = DataLoader(list(zip(xv, yv)), bs=_BS, shuffle=False, num_workers=0)
    record = BatchRecord()
    with tempfile.TemporaryDirectory(prefix="shakyo-train-loop-") as tmp:
        learn = Learner(
            DataLoaders(dl_t, dl_v, device=torch.device("cpu")),
            model,
            loss_func=ref_losses.loss_comb,
            metrics=[ref_metrics.F_th()],
            opt_func=ref_optim.over9000_opt_func(),
            cbs=[
                GradientClip(_LOOP["clip"]),
                GradientAccumulation(_LOOP["n_acc"]),
                SaveModelCallback(monitor="f_th"),
                record,
            ],
            path=tmp,
        )
        with learn.no_logging(), learn.no_bar(), contextlib.redirect_stdout(io.StringIO()):
            learn.fit_one_cycle(_LOOP["epochs"], _LOOP["lr_max"], pct_start=_LOOP["pct_start"])
    table = [
        {"epoch": e, "train_loss": float(v[0]), "valid_loss": float(v[1]), "f_th": float(v[2])}
        for e, v in enumerate(learn.recorder.values)
    ]
    return table, record.batch_log


_LOG_KEYS = ("epoch", "batch", "lr", "mom", "loss", "step")
_TABLE_KEYS = ("epoch", "train_loss", "valid_loss", "f_th")


def _close(a: float, b: float, tol: str) -> bool:
    t = tolerance(tol)
    return abs(a - b) <= t.atol + t.rtol * abs(b)


def _log_side_by_side(ref: list[dict], mine: list[dict], first: int | None) -> str:
    lines = [
        "  per training batch (F = fastai's Learner, Y = yours; lr as lr / lr_max):",
        "        i ep  b |   lr F      lr Y     |  mom F     mom Y    |   loss F      loss Y    | step F Y",
    ]
    for i, (r, m) in enumerate(zip(ref, mine)):
        mark = ">>" if i == first else "  "
        lr_max = _LOOP["lr_max"]
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


def _what() -> str:
    args = ", ".join(f"{k}={v}" for k, v in _LOOP.items())
    return (
        f"fit_one_cycle(TinyNet, {_N_TRAIN // _BS} train batches of {_BS} x (3, 5, {_SIZE}, "
        f"{_SIZE}), 3 valid batches (2, 2, 1), opt=Over9000, loss_func=loss_comb, "
        f"metric=F_th(), {args})"
    )


def _first_bad_batch(
    ref: list[dict], mine: list[dict], fields: dict[str, str]
) -> tuple[int, str] | None:
    """(batch index, field) of the first batch where a field differs beyond its row."""
    lr_max = _LOOP["lr_max"]
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


def _fail_log(c: Ladder, ref, mine, table_ref, table_mine, bad: tuple[int, str], fields) -> None:
    i, key = bad
    r, m = ref[i], mine[i]
    what = {"lr": "lr / lr_max", "mom": "mom", "loss": "raw loss", "step": "optimizer step"}[key]
    tol = fields[key]
    detail = (
        f"  first divergence at batch {i} (epoch {r['epoch']}, batch {r['batch']}): {what} "
        f"expected {r[key]!r}, got {m[key]!r}"
        + ("" if key == "step" else f" (tolerance {tolerance(tol)})")
    )
    c.fail(
        f"called:   {_what()}\n{detail}\n{_log_side_by_side(ref, mine, i)}\n"
        f"{_table_side_by_side(table_ref, table_mine, None)}"
    )


def _spy_on_steps(model: nn.Module, opt) -> list[tuple[int, float, float]]:
    """[(training batch index, lr, betas[0])] read from opt.param_groups[0] at every
    opt.step(); the batch index counts the model's training forward calls (train mode,
    gradients enabled: validation runs under no_grad)."""
    applied: list[tuple[int, float, float]] = []
    forwards = [0]

    def count(module: nn.Module, inputs) -> None:
        forwards[0] += int(module.training and torch.is_grad_enabled())

    model.register_forward_pre_hook(count)
    step = opt.step

    def recording_step(*args, **kwargs):
        group = opt.param_groups[0]
        applied.append((forwards[0] - 1, float(group["lr"]), float(group["betas"][0])))
        return step(*args, **kwargs)

    opt.step = recording_step
    return applied


@contextlib.contextmanager
def tiny_cpu_run():
    """One thread and no oneDNN while both sides train. For tensors this small, a second
    thread only waits on the other (3.3 s instead of 0.4 s for this check on a busy 2-core
    machine), and oneDNN builds kernels for every new shape on first use. Both sides run
    inside, so they compute alike; the previous settings come back afterwards."""
    threads = torch.get_num_threads()
    flags = torch.backends.mkldnn.flags(enabled=False)
    with warnings.catch_warnings():  # setting the flags warns about TF32 on Intel GPUs
        warnings.simplefilter("ignore", UserWarning)
        flags.__enter__()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            flags.__exit__(None, None, None)


def check_train_loop(c: Ladder) -> None:
    with tiny_cpu_run():
        _check_train_loop(c)


def _check_train_loop(c: Ladder) -> None:
    fit = c.module.fit_one_cycle
    xt, yt, xv, yv = loop_data()
    torch.manual_seed(0)
    model_ref = TinyNet()
    model_mine = copy.deepcopy(model_ref)
    table_ref, log_ref = fastai_run(model_ref, xt, yt, xv, yv)
    best = max(range(len(table_ref)), key=lambda e: (table_ref[e]["f_th"], -e))
    if best == len(table_ref) - 1:  # the fixture must keep the best weights apart from the last
        raise RuntimeError("train-loop fixture: fastai's best epoch is the last one; fix loop_data")

    with c.rung("shapes"):
        opt = ref_optim.Over9000(model_mine.parameters())
        applied = _spy_on_steps(model_mine, opt)
        out = c.call(
            _what(),
            lambda: fit(
                model_mine, _batches(xt, yt), _batches(xv, yv), _LOOP["epochs"], _LOOP["lr_max"],
                opt, ref_losses.loss_comb, ref_metrics.F_th(), pct_start=_LOOP["pct_start"],
                n_acc=_LOOP["n_acc"], clip=_LOOP["clip"],
            ),
        )  # fmt: skip
        c.is_type(out, tuple, _what())
        if len(out) != 2:
            c.fail(
                f"called:   {_what()}\n  expected a pair (table, log)\n  got:      {len(out)} items"
            )
        table, log = out
        for name, rows, n, keys in (
            ("table", table, _LOOP["epochs"], _TABLE_KEYS),
            ("log", log, len(log_ref), _LOG_KEYS),
        ):
            if len(rows) != n:
                c.fail(
                    f"called:   {_what()}\n  expected {n} rows in the {name}\n  got:      {len(rows)}"
                )
            missing = [k for k in keys if k not in rows[0]]
            if missing:
                c.fail(
                    f"called:   {_what()}\n  the {name}'s rows need the keys {list(keys)}\n"
                    f"  got:      {sorted(rows[0])}"
                )

    with c.rung("values"):
        # The schedule and the very first loss (before any step): no training involved yet.
        fields = {"lr": "fastai_schedule", "mom": "fastai_schedule"}
        bad = _first_bad_batch(log_ref, log, fields)
        if bad is None and not _close(float(log[0]["loss"]), log_ref[0]["loss"], "scalar"):
            bad, fields = (0, "loss"), {"loss": "scalar"}
        if bad is not None:
            _fail_log(c, log_ref, log, table_ref, table, bad, fields)
        # What the optimizer really had at each of its steps (not what the log says).
        for i, lr, mom in applied:
            r = log_ref[min(max(i, 0), len(log_ref) - 1)]
            ok_lr = _close(lr / _LOOP["lr_max"], r["lr"] / _LOOP["lr_max"], "fastai_schedule")
            if not (ok_lr and _close(mom, r["mom"], "fastai_schedule")):
                c.fail(
                    f"called:   {_what()}\n  opt.step() after batch {i} ran with lr {lr!r}, "
                    f"betas[0] {mom!r} in opt.param_groups[0]; fastai's one-cycle sets lr "
                    f"{r['lr']!r}, mom {r['mom']!r} for that batch (tolerance "
                    f"{tolerance('fastai_schedule')}, lr as lr / lr_max)\n"
                    f"{_log_side_by_side(log_ref, log, i)}"
                )

    with c.rung("training"):
        fields = {
            "step": "exact",
            "loss": "loss_table",
            "lr": "fastai_schedule",
            "mom": "fastai_schedule",
        }
        bad = _first_bad_batch(log_ref, log, fields)
        if bad is not None:
            _fail_log(c, log_ref, log, table_ref, table, bad, fields)
        for e, (r, m) in enumerate(zip(table_ref, table)):
            for key in _TABLE_KEYS[1:]:
                if not _close(float(m[key]), r[key], "loss_table"):
                    c.fail(
                        f"called:   {_what()}\n  epoch table, epoch {e}: {key} expected {r[key]!r}, "
                        f"got {m[key]!r} (tolerance {tolerance('loss_table')})\n"
                        f"{_table_side_by_side(table_ref, table, e)}\n"
                        f"{_log_side_by_side(log_ref, log, None)}"
                    )
        # SaveModelCallback: the best epoch's weights (epoch `best`), loaded back at the end.
        ref_sd, mine_sd = model_ref.state_dict(), model_mine.state_dict()
        for name, expected in ref_sd.items():
            got = mine_sd.get(name)
            what = (
                f"{_what()}: model.state_dict()[{name!r}] at the end (fastai reloads the best "
                f"epoch, {best}, of f_th {[round(r['f_th'], 6) for r in table_ref]})"
            )
            if got is None:
                c.fail(f"called:   {what}\n  missing from your model")
            c.close(got, expected, "loss_table", what)
