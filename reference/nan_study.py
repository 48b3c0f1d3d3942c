"""`shakyo diagnose nan-study`: the published recipe's NaN, reproduced at small scale on a CPU.

The failure (site: nan/#fp16-overflow): with fp16 autocast and a random-init CoaT encoder,
training printed NaN from about batch 190. This command shows why, in four steps:

1. the residual stream of a random-init CoaT (fp32 forward of one ash-like tile) per
   stage, as its largest |value| against fp16's largest finite number 65,504: stage 3
   has the least headroom, because its convolutional position encoding
   (x + dwconv(x), one module shared by all blocks of the stage) compounds;
2. the same encoder after a growth that warm-up can bring (the stage-3 position
   encoding's weights x GROWTH): a float16 forward overflows, and
   :func:`reference.diagnose.nan_hunt` names the first module whose output is not finite;
3. the same grown encoder in bfloat16 and in float32: finite (fp32's range; bf16 has it too);
4. a pretrained-like encoder, emulated by small-norm position encodings (x SHRINK):
   its residual stream stays far below the limit.

Inputs are uniform [0, 1] tiles (ash colours lie there), upsampled x2 as the model does.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

from reference.errors import ConfigError

__all__ = ["FP16_MAX", "StudyResult", "nan_study", "format_study", "add_arguments", "run"]

FP16_MAX = float(torch.finfo(torch.float16).max)  # 65504
GROWTH, SHRINK = 2.0, 0.5


class _Encoder(nn.Module):
    """The CoaT encoder of CoaT_ULSTM on one frame: (N, 3, H, W) -> 4 stage maps."""

    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        from reference.models.coat import coat_features, upsample_input

        return coat_features(self.enc, upsample_input(x))


def _encoder(arch: str, seed: int) -> _Encoder:
    from reference.models.coat import build_coat_encoder
    from reference.utils import seed_everything

    # CoaT_ULSTM builds its encoder first: these are the weights of a seeded
    # CoaT_ULSTM's encoder (random init), without paying for the decoder.
    seed_everything(seed)
    return _Encoder(build_coat_encoder(arch)).eval()


def _scale_cpe(model: _Encoder, stages: tuple[int, ...], factor: float) -> None:
    with torch.no_grad():
        for i in stages:
            getattr(model.enc, f"cpe{i}").proj.weight.mul_(factor)


def stage_maxima(model: _Encoder, x: torch.Tensor) -> list[float]:
    """max |residual stream| over the blocks of each of the 4 stages (fp32 forward)."""
    maxima = [0.0] * 4
    hooks = []
    for i in range(4):
        for blk in getattr(model.enc, f"serial_blocks{i + 1}"):

            def hook(_m, _a, out, i=i):
                maxima[i] = max(maxima[i], float(out.detach().abs().max()))

            hooks.append(blk.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return maxima


def _finite_in(model: _Encoder, x: torch.Tensor, dtype: torch.dtype) -> bool:
    m = model.to(dtype)
    try:
        with torch.no_grad():
            return all(bool(torch.isfinite(f).all()) for f in m(x.to(dtype)))
    finally:
        model.float()


@dataclass
class StudyResult:
    arch: str
    size: int
    seeds: list[int]
    maxima: list[list[float]]  # per seed, per stage (random init)
    grown: list[float]  # the grown encoder of the first seed, per stage
    fp16_finite: bool
    first_nonfinite: str
    bf16_finite: bool
    fp32_finite: bool
    small: list[float]  # the small-norm encoder, per stage
    small_fp16_finite: bool
    seconds: float


def nan_study(arch: str = "medium", size: int = 256, seeds: int = 3) -> StudyResult:
    """Run the four steps of the module docstring; `size` is the tile side (input 2x that)."""
    from reference.diagnose import nan_hunt

    if size % 16 or size <= 0:
        raise ConfigError(f"--size {size}: the tile side must be a positive multiple of 16")
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: need at least 1 random init")
    t0 = time.perf_counter()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    first_enc = _encoder(arch, 0)
    maxima = [stage_maxima(first_enc if s == 0 else _encoder(arch, s), x) for s in range(seeds)]
    small = copy.deepcopy(first_enc)
    grown = first_enc
    _scale_cpe(grown, (3,), GROWTH)
    grown_max = stage_maxima(grown, x)
    report = nan_hunt(grown.half(), x.half(), backward=False)
    first = report.summary()
    grown.float()
    _scale_cpe(small, (1, 2, 3, 4), SHRINK)
    return StudyResult(
        arch, size, list(range(seeds)), maxima, grown_max,
        fp16_finite=report.ok and report.output_finite, first_nonfinite=first,
        bf16_finite=_finite_in(grown, x, torch.bfloat16), fp32_finite=_finite_in(grown, x, torch.float32),
        small=stage_maxima(small, x), small_fp16_finite=_finite_in(small, x, torch.float16),
        seconds=time.perf_counter() - t0,
    )  # fmt: skip


def _row(vals: list[float]) -> str:
    return " ".join(f"{v:>9.3g}" for v in vals) + f"   headroom {FP16_MAX / max(vals):6.2f}x"


def format_study(r: StudyResult) -> str:
    """The study as text (the command's output; the site shows it in a code block)."""
    ok = {True: "finite", False: "OVERFLOWS"}
    lines = [
        f"CoaT_ULSTM {r.arch} encoder, random init, one {r.size}x{r.size} tile "
        f"(encoder input {2 * r.size}x{2 * r.size}); fp16 max {FP16_MAX:,.0f}",
        "",
        "1. max |residual stream| per stage (fp32 forward)",
        f"   {'':10s} {'stage 1':>9s} {'stage 2':>9s} {'stage 3':>9s} {'stage 4':>9s}",
    ]
    lines += [f"   seed {s:<5d} {_row(m)}" for s, m in zip(r.seeds, r.maxima)]
    lines += [
        "",
        f"2. seed 0 after warm-up growth (stage-3 position encoding x{GROWTH:g}):",
        f"   {'grown':10s} {_row(r.grown)}",
        f"   float16 forward: {ok[r.fp16_finite]}",
        f"   {r.first_nonfinite}",
        f"3. the same grown encoder: bfloat16 {ok[r.bf16_finite]}, float32 {ok[r.fp32_finite]}",
        f"4. pretrained-like (all position encodings x{SHRINK:g}, small-norm):",
        f"   {'small':10s} {_row(r.small)}",
        f"   float16 forward: {ok[r.small_fp16_finite]}",
        "",
        f"({r.seconds:.1f} s on the CPU)",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", choices=["nan-study"], help="what to diagnose")
    parser.add_argument("--arch", default="medium", choices=("tiny", "mini", "small", "medium"))
    parser.add_argument("--size", type=int, default=256, help="tile side (the encoder sees 2x)")
    parser.add_argument("--seeds", type=int, default=3, help="random inits for step 1")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    r = nan_study(args.arch, args.size, args.seeds)
    print(format_study(r))
    if args.json:
        from reference.utils import atomic_write_text

        atomic_write_text(args.json, json.dumps(r.__dict__, indent=2) + "\n")
    sys.stdout.flush()
    return 0
