"""Benchmark: CoaT_ULSTM training steps on one GPU, against the published setting.

    .venv/bin/python benchmarks/gpu.py [--steps 200] [--budget 270] [--json OUT.json]
    .venv/bin/python benchmarks/gpu.py --smoke        (5 steps of CoaT_ULSTM tiny on the CPU)

CoaT_ULSTM medium, random init, 5 frames at 256², BS 8, loss_comb, Over9000, gradient
clipping at 3.0, on one fixed random batch kept on the device (the data loader is not
timed). Variants: precision fp32 / bf16 (autocast) / fp16 (autocast + GradScaler),
channels_last memory format, torch.compile on/off. Each variant runs ``--steps`` timed
steps after a warm-up and reports samples/s, peak memory, whether every loss stayed
finite, and the model-FLOPs utilisation: FLOPs of one training step counted by
``torch.utils.flop_counter.FlopCounterMode`` (forward + backward) x steps/s, over the
dense bf16 peak of the GPU model (table below; fp16 where the GPU has no bf16).

The published setting is measured in the same run: a fastai Learner with the published
train.py's callbacks (GradientClip(3.0), GradientAccumulation(4), CSVLogger,
SaveModelCallback) and ``.to_fp16()``, one GPU, on the same batch served by a DataLoader.
The whole run stops starting variants once ``--budget`` seconds have passed (default
270 s, so it ends within 5 minutes); a skipped variant is printed as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

# Dense (no sparsity) bf16 tensor peak in TFLOP/s by GPU model name (vendor data sheets);
# fp16 for GPUs without bf16. Matched as a substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 80GB HBM3": 989.0,  # the SXM module's name
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "A10G": 70.0,
    "A10": 125.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
    "RTX A6000": 155.0,
    "V100": 125.0,  # fp16
    "T4": 65.0,  # fp16
    "P100": 18.7,  # fp16, no tensor cores
}

VARIANTS = [  # (precision, channels_last, compile)
    ("fp32", False, False),
    ("bf16", False, False),
    ("fp16", False, False),
    ("bf16", True, False),
    ("bf16", False, True),
    ("bf16", True, True),
    ("fp16", True, True),
    ("fp32", False, True),
]


def peak_tflops(name: str) -> float | None:
    """The table's peak for a device name (longest matching key), None when unknown."""
    hits = [k for k in PEAK_TFLOPS if k in name]
    return PEAK_TFLOPS[max(hits, key=len)] if hits else None


def _batch(bs: int, size: int, frames: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(bs, 3, frames, size, size, generator=g)
    y = (torch.rand(bs, 1, size, size, generator=g) > 0.9).float()
    return x.to(device), y.to(device)


def _model(arch: str, device, channels_last: bool):
    from reference.models import get_model
    from reference.utils import seed_everything

    seed_everything(2023)
    model = get_model("CoaT_ULSTM", arch=arch).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def step_flops(arch: str, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward + backward of the model and loss, counted by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from reference.losses import loss_comb

    model = _model(arch, x.device, False)
    counter = FlopCounterMode(display=False)
    with counter:
        loss_comb(model(x), y).backward()
    return counter.get_total_flops()


def run_variant(arch, x, y, precision, channels_last, compiled, steps, warmup) -> dict:
    """Time `steps` training steps of one variant; samples/s, peak memory, finite losses."""
    from reference.losses import loss_comb
    from reference.optim import Over9000

    device = x.device
    model = _model(arch, device, channels_last)
    opt = Over9000(model.parameters(), lr=3.5e-4)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    fwd = torch.compile(model) if compiled else model
    xb = x.to(memory_format=torch.channels_last_3d) if channels_last else x

    def step() -> torch.Tensor:
        ctx = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with ctx:
            loss = loss_comb(fwd(xb), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        return loss.detach()

    t_compile = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    t_compile = time.perf_counter() - t_compile
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        losses.append(step())
    _sync(device)
    dt = time.perf_counter() - t0
    finite = bool(torch.isfinite(torch.stack(losses)).all())
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"samples_s": steps * len(x) / dt, "step_s": dt / steps, "peak_gib": peak,
            "finite": finite, "warmup_s": t_compile, "last_loss": float(losses[-1])}  # fmt: skip


def run_published(arch, x, y, steps, warmup, fp16: bool) -> dict:
    """The published Learner (its callbacks, .to_fp16()) on the same batch; the last `steps` timed."""
    import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
    from fastai.callback.fp16 import MixedPrecision
    from fastai.callback.progress import CSVLogger
    from fastai.callback.tracker import SaveModelCallback
    from fastai.callback.training import GradientAccumulation, GradientClip
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner

    from reference.losses import loss_comb
    from reference.metrics import F_th
    from reference.optim import over9000_opt_func

    class Repeat(torch.utils.data.Dataset):
        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int):
            return x[i % len(x)].cpu(), y[i % len(y)].cpu()

    bs, device = len(x), x.device
    dl = DataLoader(
        Repeat(bs * (warmup + steps)), bs=bs, shuffle=False, drop_last=True, device=device
    )
    dv = DataLoader(Repeat(bs), bs=bs, device=device)
    model = _model(arch, device, False)
    with tempfile.TemporaryDirectory() as tmp:
        cbs = [GradientClip(3.0), GradientAccumulation(int(32 / bs + 0.5)), CSVLogger(),
               SaveModelCallback(monitor="f_th")]  # fmt: skip
        learn = Learner(DataLoaders(dl, dv, device=device), model, loss_func=loss_comb,
                        metrics=[F_th()], opt_func=over9000_opt_func(), cbs=cbs, path=tmp,
                        model_dir=".")  # fmt: skip
        if fp16:
            learn.add_cb(MixedPrecision())
        losses: list[float] = []
        marks: dict[str, float] = {}

        from fastai.callback.core import Callback

        class Clock(Callback):
            order = 100

            def after_batch(self) -> None:
                if self.training:
                    losses.append(float(self.learn.loss.detach()))
                    if self.iter == warmup - 1:
                        _sync(device)
                        marks["t0"], marks["n0"] = time.perf_counter(), self.iter + 1

            def after_train(self) -> None:
                _sync(device)
                marks["t1"] = time.perf_counter()

        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(1, 3.5e-4, pct_start=0.1, cbs=[Clock()])
    n = warmup + steps - marks["n0"]
    dt = marks["t1"] - marks["t0"]
    return {"samples_s": n * bs / dt if n else float("nan"), "step_s": dt / max(n, 1),
            "peak_gib": float("nan"), "finite": all(map(math.isfinite, losses)),
            "warmup_s": float("nan"), "last_loss": losses[-1]}  # fmt: skip


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="5 steps of CoaT_ULSTM tiny on the CPU")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per variant (>= 200)")
    ap.add_argument("--budget", type=float, default=270.0, help="seconds before skipping")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.smoke:
        device, arch, size, bs, steps, warmup = torch.device("cpu"), "tiny", 32, 2, 5, 1
        variants = [("fp32", False, False)]
    else:
        if not torch.cuda.is_available():
            print("gpu.py: no CUDA GPU is visible; run with --smoke on a CPU", file=sys.stderr)
            return 2
        device, arch, size, bs, steps, warmup = (
            torch.device("cuda"),
            "medium",
            256,
            8,
            args.steps,
            10,
        )
        variants = VARIANTS
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
        torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peak = peak_tflops(name)
    x, y = _batch(bs, size, 5, device)
    flops = step_flops(arch, x, y)
    print(f"CoaT_ULSTM {arch}, 5 frames at {size}x{size}, BS {bs}, {steps} timed steps, on "
          f"{name} (dense bf16 peak {peak or 'unknown'} TFLOP/s); one step = "
          f"{flops / 1e9:.1f} GFLOP (FlopCounterMode); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    rows = []
    print("published  (fastai Learner, its callbacks, fp16)" if device.type == "cuda" else
          "published  (fastai Learner, its callbacks, fp32 on CPU)")  # fmt: skip
    pub = run_published(arch, x, y, steps, warmup, fp16=device.type == "cuda")
    rows.append({"variant": "published", **pub})
    for precision, cl, comp in variants:
        label = f"{precision}{' channels_last' if cl else ''}{' compile' if comp else ''}"
        if time.perf_counter() - t_start > args.budget:
            rows.append({"variant": label, "skipped": "time budget"})
            continue
        try:
            r = run_variant(arch, x, y, precision, cl, comp, steps, warmup)
        except Exception as e:  # one broken variant (e.g. no compiler) must not end the run
            rows.append({"variant": label, "error": f"{type(e).__name__}: {e}"[:200]})
            continue
        rows.append({"variant": label, **r})
    base = pub["samples_s"]
    print(f"{'variant':28s} {'samples/s':>10s} {'vs pub':>7s} {'peak GiB':>9s} "
          f"{'MFU':>6s} {'finite':>6s} {'warm-up s':>9s}")  # fmt: skip
    for r in rows:
        if "samples_s" not in r:
            print(f"{r['variant']:28s} {r.get('skipped') or r.get('error')}")
            continue
        r["vs_published"] = r["samples_s"] / base
        r["mfu"] = flops * r["samples_s"] / bs / (peak * 1e12) if peak else None
        mfu = f"{100 * r['mfu']:5.1f}%" if r["mfu"] is not None else "   n/a"
        print(f"{r['variant']:28s} {r['samples_s']:10.2f} {r['vs_published']:6.2f}x "
              f"{r['peak_gib']:9.2f} {mfu} {str(r['finite']):>6s} {r['warmup_s']:9.1f}")  # fmt: skip
    print(f"total {time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.1f}")
    if args.json:
        from reference.utils import atomic_write_text

        meta = {"device": name, "arch": arch, "size": size, "bs": bs, "steps": steps,
                "step_flops": flops, "peak_tflops": peak}  # fmt: skip
        atomic_write_text(args.json, json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
