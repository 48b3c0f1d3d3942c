"""Benchmark: the reference training Learner against the published one, and the data loader.

    .venv/bin/python benchmarks/train_step.py [--arch tiny] [--size 64] [--train 96] [--repeats 7]

Both Learners train the same seeded CoaT_ULSTM (fp32, CPU) on the same
synthetic tiles with the same DataLoaders, loss, metric, optimizer and
one-cycle schedule. They differ in their callbacks and in how Over9000 runs (the same
bits either way, tests/test_optim_foreach.py): the published per-tensor Python loop, or
the reference's torch._foreach_* ops over all tensors at once. Callbacks:

- reference: ``reference.train.build_learner`` (GradientClip measured per step,
  GradientAccumulation, NaN guard, per-batch log batches.csv, best model,
  checkpoint + history every epoch, per-epoch reseeding);
- published: GradientClip(3.0), GradientAccumulation, CSVLogger,
  SaveModelCallback(monitor='f_th'), i.e. the published train.py's list.

The third difference is the process: the reference's training keeps freed memory in
the process (glibc malloc thresholds, reference.utils.keep_heap_memory) so that a batch does not
page-fault its activations in again, and `shakyo train` starts with huge pages for the
heap (GLIBC_TUNABLES, reference.utils.huge_pages_environ); a published run has glibc's
defaults. So each Learner lives in its own process, the reference's started with the
environment `shakyo train` gives itself. Each repeat fits one epoch of each, the first of the
pair alternating, so that a load spike of the machine hits both. Printed: the medians
of training samples/s (the training phase of the epoch), of epoch time (training +
validation + end-of-epoch callbacks) and of minor page faults and system time per
training batch, and the median over the pairs of published time / reference time
(> 1: the reference is faster). Then the training DataLoader alone (augmentation on, >= 500
samples, persistent workers) at NUM_WORKERS 0 and 2.
Other processes skew the numbers: quote the load average printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastai.callback.core import Callback  # noqa: E402

from reference.config import validate  # noqa: E402
from reference.data.prepare import prepare  # noqa: E402
from reference.data.synth import synthesize  # noqa: E402
from reference.utils import huge_pages_environ  # noqa: E402


class _Clock(Callback):
    """Wall time of the training phase and of the whole epoch (all callbacks included)."""

    def __init__(self, order: int, marks: dict, starts: bool) -> None:
        self.order, self.marks, self.starts = order, marks, starts

    def _mark(self, name: str) -> None:
        use = resource.getrusage(resource.RUSAGE_SELF)
        self.marks[name] = time.perf_counter()
        self.marks[name + "_faults"] = use.ru_minflt
        self.marks[name + "_sys"] = use.ru_stime

    def before_epoch(self) -> None:
        if self.starts:  # the first callback of the epoch
            self._mark("epoch0")

    def before_train(self) -> None:
        if self.starts:
            self._mark("train0")

    def after_train(self) -> None:
        if not self.starts:  # the last callback of the training phase
            self._mark("train1")

    def after_epoch(self) -> None:
        if not self.starts:
            self._mark("epoch1")


def _timed(learn) -> dict:
    marks: dict = {}
    learn.add_cbs([_Clock(-10_000, marks, True), _Clock(10_000, marks, False)])
    return marks


def published_learner(cfg, run_dir: Path):
    """The published train.py's Learner (site: facts/training/#recipe) on the reference's data, model and loss."""
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    import torch
    from fastai.callback.progress import CSVLogger
    from fastai.callback.tracker import SaveModelCallback
    from fastai.callback.training import GradientAccumulation, GradientClip
    from fastai.learner import Learner

    from reference.losses import loss_comb
    from reference.metrics import F_th
    from reference.models import get_model
    from reference.optim import over9000_opt_func
    from reference.train import _dataloaders
    from reference.utils import seed_everything

    run_dir.mkdir(parents=True, exist_ok=True)
    # Same seed, same order as build_learner: the two Learners start from the same weights.
    seed_everything(cfg.SEED)
    model = get_model(cfg.MODEL, arch=cfg.ARCH)
    dls, _ = _dataloaders(cfg, torch.device("cpu"))
    cbs = [
        GradientClip(3.0),
        GradientAccumulation(cfg.n_acc),
        CSVLogger(),
        SaveModelCallback(monitor="f_th"),
    ]
    return Learner(dls, model, loss_func=loss_comb, metrics=[F_th()], cbs=cbs,
                   # The published Ralamb updates one tensor at a time (foreach=False).
                   opt_func=over9000_opt_func(eps=cfg.eps, weight_decay=cfg.weight_decay,
                                              foreach=False),
                   path=run_dir, model_dir=".")  # fmt: skip


def _learner_process(name: str, config: dict, conn) -> None:
    """One Learner in its own process: build it, then fit one epoch per request, send the times.

    Its own process because the reference's training configures the process (glibc malloc
    keeps freed memory, reference.utils.keep_heap_memory): in a shared process the published Learner
    would get that for free, and a real published run does not have it.
    """
    from reference.train import build_learner

    cfg = validate(config)
    if name == "reference":
        learn, _ = build_learner(cfg, cfg.run_dir)
    else:
        learn = published_learner(cfg, cfg.run_dir)
    conn.send((len(learn.dls.train) * cfg.BS, len(learn.dls.valid.dataset)))  # drop_last
    while conn.recv() == "fit":
        marks = _timed(learn)
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(1, cfg.LR_MAX, pct_start=cfg.PCT_START)
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, _Clock)])
        conn.send({"train": marks["train1"] - marks["train0"],
                   "epoch": marks["epoch1"] - marks["epoch0"],
                   "faults": marks["train1_faults"] - marks["train0_faults"],
                   "sys": marks["train1_sys"] - marks["train0_sys"]})  # fmt: skip


@contextlib.contextmanager
def _environ(env: dict | None):
    """os.environ replaced by ``env`` (None: unchanged) while a child process starts."""
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _answer(conn, name: str):
    try:
        return conn.recv()
    except EOFError:
        raise SystemExit(f"the {name} Learner's process died (its traceback is above)") from None


def bench_learners(configs: dict[str, dict], repeats: int, envs: dict | None = None) -> dict:
    """Fit one epoch of each Learner per repeat, alternating; times of every paired repeat.

    configs: {"reference": cfg, "published": cfg} (plain dicts); each Learner lives in
    its own process for the whole benchmark, so the pairs share the machine's load.
    envs: {name: environment its process starts with} (default: this process's).
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs, conns = {}, {}
    try:
        for name, config in configs.items():
            conns[name], child = ctx.Pipe()
            procs[name] = ctx.Process(target=_learner_process, args=(name, config, child))
            with _environ((envs or {}).get(name)):
                procs[name].start()
            child.close()  # a child that dies ends our recv() with EOFError instead of a hang
        sizes = {name: _answer(conn, name) for name, conn in conns.items()}
        n_train, n_valid = sizes["reference"]
        times = {name: {"train": [], "epoch": [], "faults": [], "sys": []} for name in configs}
        for r in range(repeats + 1):  # repeat 0 warms up (allocator, first-call costs)
            # Alternate which Learner goes first, so that a drift of the load hits both alike.
            order = ("reference", "published")
            for name in order if r % 2 else order[::-1]:
                conns[name].send("fit")
                got = _answer(conns[name], name)
                if r:
                    for key, value in got.items():
                        times[name][key].append(value)
        for conn in conns.values():
            conn.send("stop")
    finally:
        for p in procs.values():
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return {"times": times, "n_train": n_train, "n_valid": n_valid}


def speedups(times: dict) -> dict[str, float]:
    """Median over paired repeats of published time / reference time (> 1: reference faster)."""
    out = {}
    for phase in ("train", "epoch"):
        pairs = zip(times["published"][phase], times["reference"][phase])
        out[phase] = statistics.median(p / r for p, r in pairs)
    return out


def bench_loader(cfg, workers: int, n_samples: int, passes: int) -> float:
    """Samples/s of the augmented training DataLoader alone (median of ``passes`` epochs).

    The dataset is repeated up to ``n_samples`` items; with workers they are persistent
    (started once, as a long training run keeps them), so the start-up is not timed.
    """
    import torch
    from fastai.data.load import DataLoader

    from reference.callbacks import _ReseedAug
    from reference.data import ContrailsDatasetV0, get_aug

    aug = get_aug(seed=cfg.SEED)
    ds = ContrailsDatasetV0(cfg.PATH, train=True, tfms=aug)
    reps = -(-n_samples // len(ds))
    ds_big = torch.utils.data.ConcatDataset([ds] * reps)
    dl = DataLoader(ds_big, bs=cfg.BS, shuffle=True, drop_last=True, num_workers=workers,
                    persistent_workers=workers > 0, wif=_ReseedAug(aug))  # fmt: skip
    rates = []
    for i in range(passes + 1):
        t = time.perf_counter()
        n = sum(len(x) for x, _ in dl)
        if i:  # pass 0 starts the workers
            rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny", choices=("tiny", "mini"))
    ap.add_argument("--size", type=int, default=64, help="tile side (64-128)")
    ap.add_argument("--train", type=int, default=96, help="training tiles")
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7, help="paired runs (median; >= 3)")
    ap.add_argument(
        "--loader-samples",
        type=int,
        default=512,
        help="samples of the DataLoader-only measurement (0 = skip)",
    )
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()

    import torch

    work = Path(args.dir or tempfile.mkdtemp(prefix="shakyo-bench-"))
    synthesize(work / "data", args.train, 4, 0, seed=1, size=args.size, progress=False)
    prepare(work / "data", work / "tiles", progress=False)
    base = dict(PATH=str(work / "tiles"), OUT=str(work / "runs"), ARCH=args.arch, BS=args.bs,
                ACC=args.bs, EPOCHS=1, NUM_WORKERS=0, PRECISION="fp32", DEVICE="cpu",
                LR_MAX=1e-3, PCT_START=0.25)  # fmt: skip
    configs = {name: {**base, "FNAME": name} for name in ("reference", "published")}
    cfg_ref = validate(configs["reference"])
    huge = huge_pages_environ()
    print(
        f"CoaT_ULSTM {args.arch}, {args.size}x{args.size} tiles, BS {args.bs}, fp32 CPU, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} "
        f"(before), scratch {work}; reference process: "
        + (f"GLIBC_TUNABLES={huge['GLIBC_TUNABLES']}" if huge else "no huge pages (not available)")
    )
    # The reference's process starts as `shakyo train` starts it: with huge pages for the
    # heap (reference.utils.huge_pages_environ; glibc reads it at start-up).
    res = bench_learners(configs, args.repeats, envs={"reference": huge})
    t, n, nv = res["times"], res["n_train"], res["n_valid"]
    for name in ("reference", "published"):
        tr, ep = statistics.median(t[name]["train"]), statistics.median(t[name]["epoch"])
        # validation + the end-of-epoch callbacks (history, checkpoint, best model)
        rest = statistics.median(e - r for e, r in zip(t[name]["epoch"], t[name]["train"]))
        batches = n // args.bs
        faults = statistics.median(t[name]["faults"]) / batches
        sys_ms = statistics.median(t[name]["sys"]) / batches * 1000
        print(
            f"{name:9s}  train {n / tr:7.2f} samples/s   "
            f"epoch ({n} train + {nv} valid) {ep:6.2f} s, of which after training {rest:.2f} s "
            f"(median of {args.repeats}); "
            f"per training batch {faults:.0f} minor page faults, {sys_ms:.1f} ms system time"
        )
    up = speedups(t)
    for phase in ("train", "epoch"):
        pairs = [p / r for p, r in zip(t["published"][phase], t["reference"][phase])]
        print(f"  {phase} ratio of each pair: " + " ".join(f"{x:.3f}" for x in pairs))
    print(
        f"reference vs published (median of {args.repeats} paired runs, > 1 = reference faster): "
        f"train samples/s {up['train']:.3f}x, epoch time {up['epoch']:.3f}x; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if args.loader_samples:
        from reference.utils import keep_heap_memory

        keep_heap_memory()  # as in a training process
        loader = {w: bench_loader(cfg_ref, w, args.loader_samples, 3) for w in (0, 2)}
        print(
            f"data loader with augmentation, {loader[0][1]} samples, persistent workers: "
            f"NUM_WORKERS 0 {loader[0][0]:.1f} samples/s, NUM_WORKERS 2 {loader[2][0]:.1f} "
            f"samples/s, ratio 2/0 {loader[2][0] / loader[0][0]:.2f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} (after)")


if __name__ == "__main__":
    main()
