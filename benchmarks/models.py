"""Forward + backward time of the model family on CPU (sizing tests and demos).

    .venv/bin/python benchmarks/models.py [--model CoaT_ULSTM] [--arch mini] [--shape 2 3 5 64 64]
                                          [--repeats 3]

Builds the model once (seeded), runs one warm-up step, then `--repeats`
forward + backward passes (sum of logits as the loss) and prints the median
and the individual times. Other processes on the machine skew the numbers:
quote the load average and thread count printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from reference.models import get_model
from reference.utils import seed_everything


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="CoaT_ULSTM")
    parser.add_argument("--arch", default="mini", help="CoaT arch (ignored by ResNet18 baselines)")
    parser.add_argument("--shape", type=int, nargs=5, default=[2, 3, 5, 64, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    seed_everything(0)
    kw = {"arch": args.arch} if args.model.startswith("CoaT") else {}
    model = get_model(args.model, **kw).train()
    n_params = sum(p.numel() for p in model.parameters())
    x = torch.rand(*args.shape)

    def step() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
        return time.perf_counter() - t0, time.process_time() - c0

    step()  # warm-up: first-call allocations and oneDNN kernel selection
    runs = [step() for _ in range(args.repeats)]
    times = [wall for wall, _ in runs]
    # CPU seconds of this process (all threads) stay meaningful on a busy machine.
    cpu = statistics.median(c for _, c in runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.model}/{args.arch} {n_params:,} params, input {tuple(args.shape)}: "
        f"forward+backward median {statistics.median(times):.3f} s "
        f"(runs {', '.join(f'{t:.3f}' for t in times)}), {cpu:.3f} CPU s; "
        f"torch threads {torch.get_num_threads()}, load average {load:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
