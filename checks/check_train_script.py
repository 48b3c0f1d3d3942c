"""Check of ``train_script.py``: ``train-script`` (the published train.py, re-typed).

The learner's ``train(config)`` and the published assembly (checks.train_script_fixture)
train the same ScriptNet from the same weights on the same tiles, with the same seeds
and the same seeded augmentation, in fastai on the CPU. Compared, in this order:

    shapes    a fit ran; as many training batches and epochs as the published script
    values    lr and mom of every training batch (the one-cycle call)
    training  the optimizer steps and the loss of every batch, the epoch table, the
              weights saved at the end; then the set-up (callbacks, loaders) and the files

A difference names the first differing batch and the likely cause: the first place
where the learner's Learner or loaders are set up otherwise than the published ones.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from checks.ladder import Ladder
from checks.tolerances import tolerance
from checks.train_fixture import tiny_cpu_run
from checks.train_script_fixture import (
    SETTINGS,
    ScriptNet,
    make_config,
    published_train,
    recorded_cpu_run,
    write_tiles,
)
from reference.data import get_aug

_WHAT = (
    "train(config): ContrailsDatasetV0 tiles of 32 x 32 (18 train, 6 valid), BS 4, EPOCHS 2, "
    "LR_MAX 0.03, PCT_START 0.3, MODEL a small conv net, LOSS_FUNC loss_comb, METRIC F_th()"
)
_EXPECTED_CBS = {
    "GradientClip": "GradientClip(3.0)",
    "GradientAccumulation": "GradientAccumulation(int(32 / BS + 0.5))",
    "CSVLogger": "CSVLogger()",
    "SaveModelCallback": "SaveModelCallback(monitor='f_th')",
}


def _close(a: float, b: float, tol: str) -> bool:
    t = tolerance(tol)
    return abs(a - b) <= t.atol + t.rtol * abs(b)


def likely_causes(ref: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """Where the learner's set-up differs from the published one, most telling first."""
    causes = [
        f"your Learner has no {name} (the published cbs hold {text})"
        for name, text in _EXPECTED_CBS.items()
        if name not in mine["callbacks"]
    ]
    bs = ref["bs"]
    if mine["n_acc"] is not None and mine["n_acc"] != ref["n_acc"]:
        every = lambda n: max(1, math.ceil(n / bs))  # noqa: E731
        causes.append(
            f"GradientAccumulation({mine['n_acc']}): fastai counts samples, and the published "
            f"script passes int(32 / BS + 0.5) = {ref['n_acc']} at BS {bs}, a step every "
            f"{every(ref['n_acc'])} batch(es); yours steps every {every(mine['n_acc'])}"
        )
    if mine["clip"] is not None and mine["clip"] != ref["clip"]:
        causes.append(f"GradientClip({mine['clip']}) where the published script clips at 3.0")
    if mine["monitor"] is not None and mine["monitor"] != ref["monitor"]:
        causes.append(
            f"SaveModelCallback(monitor={mine['monitor']!r}) keeps another epoch than "
            "monitor='f_th'"
        )
    for key, text in (
        ("train_shuffle", "the training loader {} shuffle (fastai's from_dsets shuffles the first dataset)"),
        ("train_drop_last", "the training loader {} drop its last partial batch (from_dsets does)"),
        ("valid_shuffle", "the validation loader {} shuffle (from_dsets keeps it in order)"),
        ("valid_tfms", "the validation dataset {} augmented (the published script passes tfms=None)"),
    ):  # fmt: skip
        if mine[key] != ref[key]:
            causes.append(text.format("does" if mine[key] else "does not"))
    if mine["bs"] != bs:
        causes.append(f"batch size {mine['bs']} where config['BS'] is {bs}")
    if mine["n_train"] != ref["n_train"]:
        causes.append(
            f"the training dataset has {mine['n_train']} items, the published one {ref['n_train']}"
        )
    return causes


def _cause_lines(causes: list[str]) -> str:
    if not causes:
        return ""
    return "\n  likely cause: " + causes[0] + "".join(f"\n  also: {c}" for c in causes[1:3])


def _batches_table(ref: list[dict], mine: list[dict], first: int | None) -> str:
    lines = [
        "  per training batch (P = the published script, Y = yours):",
        "        i ep  b |     lr P        lr Y    |   loss P      loss Y    | step P Y",
    ]
    for i, (r, m) in enumerate(zip(ref, mine)):
        mark = ">>" if i == first else "  "
        lines.append(
            f"  {mark} {i:4d} {r['epoch']:2d} {r['batch']:2d} | {r['lr']:11.4e} {m['lr']:11.4e} | "
            f"{r['loss']:11.7f} {m['loss']:11.7f} | {'x' if r['step'] else '.':>4} "
            f"{'x' if m['step'] else '.'}"
        )
    return "\n".join(lines)


def _first_bad(ref: list[dict], mine: list[dict], fields: dict[str, str]) -> tuple[int, str] | None:
    for i, (r, m) in enumerate(zip(ref, mine)):
        for key, tol in fields.items():
            if key == "step":
                if r["step"] != m["step"]:
                    return i, key
            elif not _close(m[key], r[key], tol):
                return i, key
    return None


def _compare_batches(c: Ladder, ref: dict, mine: dict, fields: dict[str, str]) -> None:
    rb, mb = ref["batches"], mine["batches"]
    bad = _first_bad(rb, mb, fields)
    got = [[float(b[k]) for k in fields] for b in mb]
    c.observe(f"per-batch {', '.join(fields)}", bad is None, got, "loss_table")
    if bad is None:
        return
    i, key = bad
    r, m = rb[i], mb[i]
    name = {"lr": "lr", "mom": "mom", "loss": "raw loss", "step": "optimizer step"}[key]
    tol = "" if key == "step" else f" (tolerance {tolerance(fields[key])})"
    c.fail(
        f"first difference: the {name} of training batch {i} (epoch {r['epoch']}, batch "
        f"{r['batch']}): expected {r[key]!r}, got {m[key]!r}{tol}"
        f"{_cause_lines(likely_causes(ref['setup'], mine['setup']))}\n"
        f"  called:   {_WHAT}\n{_batches_table(rb, mb, i)}"
    )


def check_train_script(c: Ladder) -> None:
    with tiny_cpu_run(), tempfile.TemporaryDirectory(prefix="shakyo-train-script-") as tmp:
        _check(c, Path(tmp))


def _published(tmp: Path) -> dict:
    """(grader side) the published assembly with the reference's parts."""
    root = write_tiles(tmp / "data")
    torch.manual_seed(0)
    model = ScriptNet()  # built before the run's seeds, as on the learner's side
    with recorded_cpu_run(aug_factory=get_aug) as st:
        published_train(make_config(root, tmp / "published", model))
    weights = torch.load(tmp / "published" / "script_0.pth", weights_only=True)
    return {"run": st["runs"][-1], "weights": weights}


def _learner_train(train, modules, tmp: Path) -> dict:
    """(learner side) the learner's train(config), with the trusted helpers of the learner's
    process (the solutions' loss_comb and F_th, their seeded augmentation); as data."""
    from solutions.data import get_aug
    from solutions.losses import loss_comb
    from solutions.metrics import F_th

    root = write_tiles(tmp / "data")
    out = tmp / "yours"
    torch.manual_seed(0)
    model = ScriptNet()
    config = make_config(root, out, model, loss_func=loss_comb, metric=F_th())
    with recorded_cpu_run(modules, get_aug) as st:
        train(config)
    saved = out / "script_0.pth"
    return {
        "runs": st["runs"],
        "fp16": st["fp16"],
        "weights": torch.load(saved, weights_only=True) if saved.is_file() else None,
        "files": {n: (out / n).is_file() for n in ("history.csv", "models/model.pth")},
    }


def _check(c: Ladder, tmp: Path) -> None:
    published = c.ref(lambda: _published(tmp / "grader"))
    modules = (c.module, c.module_of("data.py"))

    with c.rung("shapes"):
        run = c.call(_WHAT, lambda: _learner_train(c.module.train, modules, tmp / "learner"))
        if not c.grader:
            return  # everything after this reads what the learner's run sent
        ref, ref_weights = published["run"], published["weights"]
        if run["fp16"]:
            c.note(
                "your train() calls to_fp16(): the check trains in float32 on the CPU "
                "(mixed precision needs a GPU), so it compares the float32 runs"
            )
        if not run["runs"]:
            c.fail(
                f"called:   {_WHAT}\n  no fastai Learner was fitted: call learn.fit_one_cycle(...)"
            )
        mine = run["runs"][-1]
        causes = _cause_lines(likely_causes(ref["setup"], mine["setup"]))
        n_ref, n_mine = len(ref["batches"]), len(mine["batches"])
        c.observe("number of training batches", n_ref == n_mine, n_mine)
        if n_ref != n_mine:
            c.fail(
                f"first difference: {n_mine} training batches in all, the published script has "
                f"{n_ref} ({SETTINGS['EPOCHS']} epochs of {n_ref // SETTINGS['EPOCHS']}){causes}\n"
                f"  called:   {_WHAT}"
            )
        c.equal(
            len(mine.get("table", [])), len(ref["table"]), f"rows of the epoch table of {_WHAT}"
        )

    with c.rung("values"):
        _compare_batches(c, ref, mine, {"lr": "fastai_schedule", "mom": "fastai_schedule"})

    with c.rung("training"):
        _compare_batches(c, ref, mine, {"step": "exact", "loss": "loss_table"})
        for key in ("train_loss", "valid_loss", "f_th"):
            got = [r[key] for r in mine["table"]]
            bad = [
                e for e, r in enumerate(ref["table"]) if not _close(got[e], r[key], "loss_table")
            ]
            c.observe(f"epoch table: {key}", not bad, got, "loss_table")
            if bad:
                e = bad[0]
                c.fail(
                    f"first difference: {key} of epoch {e}: expected {ref['table'][e][key]!r}, "
                    f"got {got[e]!r} (tolerance {tolerance('loss_table')}){causes}\n"
                    f"  called:   {_WHAT}"
                )
        saved, weights = "script_0.pth", run["weights"]
        c.observe(f"{saved} written", weights is not None)
        if weights is None:
            c.fail(
                f"called:   {_WHAT}\n  no {saved} in config['OUT']: save "
                "learn.model.module.state_dict() to OUT/{FNAME}_{FOLD}.pth at the end"
            )
        c.equal(sorted(weights), sorted(ref_weights), f"keys of the state dict in {saved}")
        for name, expected in ref_weights.items():
            c.close(weights[name], expected, "loss_table", f"{saved}[{name!r}] (the best epoch's)")
        setup = likely_causes(ref["setup"], mine["setup"])
        c.observe("the Learner's set-up", not setup, repr(setup))
        if setup:
            c.fail(
                f"the run matches on these tiles, but the set-up differs from the published "
                f"script's: {setup[0]}"
                + "".join(f"\n  also: {s}" for s in setup[1:3])
                + f"\n  called:   {_WHAT}"
            )
        for name, present in run["files"].items():
            c.observe(f"{name} written", present)
            if not present:
                c.fail(f"called:   {_WHAT}\n  config['OUT'] has no {name}")
