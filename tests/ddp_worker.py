"""One process of tests/test_ddp.py: `reference.train.train` on a config, with test probes.

    python tests/ddp_worker.py CONFIG.json PROBE_DIR [--stop-after-epoch E] [--dump-step K]
    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py ...   (the same, on 2 ranks)

Probes (written under PROBE_DIR, never under the run's OUT):
- params_rank{r}.pt: the bare model's parameters, flattened, right after optimizer step K;
- writes_rank{r}.json: every file this rank created, opened for writing or renamed under
  OUT (a Python audit hook), to prove that only rank 0 writes;
- result_rank{r}.json: the history returned by train().
--stop-after-epoch E ends the fit after epoch E's files are written (an interrupted run).
The augmentation is switched off: each rank would draw its own transforms (see
reference/distributed.py), and the test compares against one process number for number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("probes")
    ap.add_argument("--stop-after-epoch", type=int, default=None)
    ap.add_argument("--dump-step", type=int, default=None)
    args = ap.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    probes = Path(args.probes)
    probes.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(Path(args.config).read_text())
    out = os.path.realpath(cfg["OUT"])
    writes: list[str] = []

    def audit(event: str, a: tuple) -> None:
        if event == "open" and isinstance(a[0], (str, bytes, os.PathLike)):
            mode, flags = a[1] or "", a[2] or 0
            writing = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)
            if writing and os.path.realpath(os.fsdecode(a[0])).startswith(out):
                writes.append(f"open {os.fsdecode(a[0])}")
        elif event in ("os.rename", "os.mkdir", "tempfile.mkstemp"):  # os.replace: os.rename
            target = a[1] if event == "os.rename" else a[0]  # (src, dst, ...): the final name
            path = os.fsdecode(target) if isinstance(target, (str, bytes, os.PathLike)) else ""
            if os.path.realpath(path).startswith(out):
                writes.append(f"{event} {path}")

    sys.addaudithook(audit)
    torch.set_num_threads(1)

    from fastai.callback.core import Callback, CancelFitException

    import reference.data
    import reference.train as train_mod

    reference.data.get_aug = lambda seed=None: None

    class Probe(Callback):
        order = 100

        def after_batch(self) -> None:
            if self.training and self.learn.train_iter == args.dump_step:
                model = getattr(self.learn.model, "module", self.learn.model)
                flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
                torch.save(flat, probes / f"params_rank{rank}.pt")

        def after_epoch(self) -> None:
            if self.epoch == args.stop_after_epoch:
                raise CancelFitException()

    build = train_mod.build_learner

    def build_with_probe(*a, **kw):
        learn, info = build(*a, **kw)
        learn.add_cb(Probe())
        return learn, info

    train_mod.build_learner = build_with_probe
    result = train_mod.train(cfg)
    (probes / f"result_rank{rank}.json").write_text(json.dumps(result["history"]))
    (probes / f"writes_rank{rank}.json").write_text(json.dumps(writes))


if __name__ == "__main__":
    main()
