"""DDP for `shakyo train`: fastai's distributed context, on GPUs (nccl) and on CPUs (gloo).

Started by a launcher that sets RANK / WORLD_SIZE (``torchrun``, ``accelerate launch``),
`reference.train` fits inside :func:`distrib_ctx`. It is fastai's own
``Learner.distrib_ctx`` (an ``accelerate.Accelerator`` wraps the model in
DistributedDataParallel, ``DistributedDL`` shards the data, ranks > 0 print nothing),
with one fastai class replaced, :class:`ShardedDL`, for three reasons:

1. fastai 2.8.12's ``DistributedDL._broadcast`` moves the shuffled indices to
   ``.cuda()`` because nccl only takes CUDA tensors. gloo (CPU) takes CPU tensors
   and a CPU-only machine has no CUDA at all, so the broadcast goes through the
   device of the process group's backend. This is the only CPU workaround.
2. fastai gives rank r a contiguous slice of the epoch's indices, so the global
   batch k of two ranks holds samples k and n/2 + k: another grouping than one
   process with the doubled batch. Here rank r takes the blocks r, r + W, r + 2W,
   ... of the shuffled indices (W ranks, blocks of BS): the W per-rank batches of
   step k are exactly batch k of one process with BS·W.
3. Validation is gathered (see :class:`ShakyoDistributedTrainer`), so the loader's
   own gathering in ``to_detach`` is switched off.

Equivalence (tested on CPU with 2 gloo processes, tests/test_ddp.py): W ranks with BS b
and ACC a/W follow one process with BS b·W and ACC a. BS and ACC count the samples *one
rank* sees; GradientAccumulation divides each rank's loss by ACC/BS, and DDP averages
the ranks' gradients, so both settings step after the same batches with the same
scale. What differs: the Lovász term of loss_comb is computed over the whole batch it
is given (per_image=False), so its gradient over W shards of b is not its gradient
over b·W (a few 1e-4 relative in the table); and each rank's augmentation draws from
its own stream (as each DataLoader worker does), so with augmentation the ranks see
other random transforms than one process would.

Logged values are those of the global batch on every rank: after the forward, the
predictions and targets of all ranks are gathered and ``learn.loss`` is recomputed on
them (training: for the table, the NaN guard and batches.csv; the gradient still comes
from each rank's own loss). In validation the gathered predictions feed F_th and the
valid loss, with the padding of the last batch removed.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.distributed as dist
from fastai.callback.progress import ProgressCallback
from fastai.distributed import DistributedDL, DistributedTrainer
from fastai.torch_core import num_distrib, rank_distrib, to_detach

__all__ = ["ShardedDL", "ShakyoDistributedTrainer", "distrib_ctx", "gather_cat"]


def _backend_device() -> str:
    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate `t` (same shape on every rank) of all ranks along dim 0, in rank order."""
    t = t.detach().contiguous()
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return torch.cat(out)


class ShardedDL(DistributedDL):
    """fastai's DistributedDL with a backend-aware broadcast and batch-block sharding.

    Rank r of W gets blocks r, r+W, ... of BS shuffled indices. Training (drop_last):
    the indices past the last full W·BS group are dropped, as one process with BS·W
    drops its last partial batch. Validation: the indices are padded (repeated) to a
    multiple of W·BS; the trainer trims the repeats after gathering.
    """

    def _broadcast(self, t, rank):
        # fastai: `LongTensor(t).cuda()` (nccl needs CUDA tensors); gloo runs on the CPU.
        t = torch.tensor(t, dtype=torch.long, device=_backend_device())
        dist.broadcast(t, rank)
        return t.cpu().tolist()

    def _group(self) -> int:
        return self.world_size * self.bs

    def __len__(self) -> int:
        n = len(self.dl.dataset) if self.dl.n is None else self.dl.n
        steps = n / self._group()
        return int(steps) if self.drop_last else math.ceil(steps)

    def get_idxs(self):
        idxs = self._broadcast(list(self.dl.get_idxs()), 0)
        self.n, group = len(idxs), self._group()
        if self.drop_last:
            idxs = idxs[: self.n // group * group]
        else:
            self.n_padded = math.ceil(self.n / group) * group
            idxs += (idxs * (self.n_padded // self.n + 1))[: self.n_padded - self.n]
        blocks = [idxs[i : i + self.bs] for i in range(0, len(idxs), self.bs)]
        return [i for block in blocks[self.rank :: self.world_size] for i in block]

    def to_detach(self, b, cpu=True, gather=True):
        # The trainer gathered the validation batch already (ShakyoDistributedTrainer.after_loss).
        return to_detach(b, cpu, gather=False)


class ShakyoDistributedTrainer(DistributedTrainer):
    """fastai's DistributedTrainer with :class:`ShardedDL` and the global batch's loss."""

    def _wrap_dl(self, dl):
        # fastai passes `self.learn.model.device`: DDP sets it only for a CUDA module.
        return dl if isinstance(dl, ShardedDL) else ShardedDL(dl, device=self.learn.dls.device)

    def before_validate(self) -> None:
        super().before_validate()
        self.seen = 0

    def after_loss(self) -> None:
        pred, yb = gather_cat(self.learn.pred), [gather_cat(y) for y in self.learn.yb]
        if not self.training:
            # Drop the repeats that pad the last group of the validation set.
            keep = min(len(pred), self.learn.dl.n - self.seen)
            self.seen += len(pred)
            pred, yb = pred[:keep], [y[:keep] for y in yb]
            self.learn.pred, self.learn.yb = pred, tuple(yb)
        with torch.no_grad():
            self.learn.loss = self.learn.loss_func(pred, *yb).detach()


@contextlib.contextmanager
def distrib_ctx(learn):
    """fastai's ``Learner.distrib_ctx`` with :class:`ShakyoDistributedTrainer`.

    SyncBatchNorm only on CUDA (torch has none for CPU; CoaT_ULSTM has no BatchNorm).
    On CPU the Accelerator gets ``cpu=True``, or it would not wrap the model.
    The process group is the launcher's; accelerate creates it from the environment.
    """
    import fastai.distributed  # noqa: F401  (patches Learner.detach_distributed)

    if num_distrib() <= 1:
        yield learn
        return
    cuda = learn.dls.device.type == "cuda"
    # accelerate picks gloo (MULTI_CPU) only when told cpu=True; without it a CPU run is
    # not wrapped in DDP at all and every rank silently trains on its own shard.
    learn.add_cb(ShakyoDistributedTrainer(sync_bn=cuda, cpu=not cuda))
    if rank_distrib():
        learn.remove_cb(ProgressCallback)
    try:
        yield learn
    finally:
        learn.detach_distributed()
