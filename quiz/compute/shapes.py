"""Shapes questions: run the reference's forward pass and read the shapes off it.

The model (or block) is the reference's own class, built and run on PyTorch's
``meta`` device: every operation computes its output shape exactly as on the
CPU, but no number is stored or multiplied, so CoaT_ULSTM medium at any tile
size costs well under a second. Output shapes come from
:func:`reference.diagnose.shape_trace` (the table on the site's model page);
input shapes from forward pre-hooks on the named modules. The tests compare a
meta run with a real CPU run.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import nn

from quiz.compute import Result, fmt_shape

ROOT = "(model)"

# A named point of CoaT_ULSTM's forward pass: (module, "in" or "out", which tensor).
MODEL_POINTS: dict[str, tuple[str, str, int]] = {
    "up": ("enc.patch_embed1", "in", 0),  # frames flattened into the batch, bicubic x2
    "tokens1": ("enc.serial_blocks1.0", "out", 0),  # stage-1 tokens, class token first
    "x1_all": ("enc.patch_embed2", "in", 0),  # stage maps of every frame
    "x2_all": ("enc.patch_embed3", "in", 0),
    "x3_all": ("enc.patch_embed4", "in", 0),
    "x3": ("lstm.0", "in", 0),  # (B, T, C, h, w): the frames back apart
    "x4": ("lstm.1", "in", 0),
    "seq3": ("lstm.0.lstm", "in", 0),  # one sequence of frames per pixel
    "seq4": ("lstm.1.lstm", "in", 0),
    "l3": ("dec4", "in", 1),  # the LSTMs' last steps
    "l4": ("dec4", "in", 0),
    "skip2": ("dec3", "in", 1),  # last frame of x2
    "skip1": ("dec2", "in", 1),  # last frame of x1
    "dec4_shuf": ("dec4.shuf", "out", 0),
    "dec4_cat": ("dec4.conv1", "in", 0),
    "dec4": ("dec4", "out", 0),
    "dec3": ("dec3", "out", 0),
    "dec2": ("dec2", "out", 0),
    "fpn0": ("fpn.convs.0", "out", 0),
    "fpn": ("fpn", "out", 0),
    "final_shuf": ("final_conv.0.shuf", "out", 0),
    "out": (ROOT, "out", 0),
}

# Blocks built alone: constructor arguments (drawn names), inputs, named points.
BLOCKS: dict[str, dict[str, Any]] = {
    "UnetBlock": {
        "args": ("up_in_c", "x_in_c", "nf"),
        "inputs": lambda p: [(p["B"], p["up_in_c"], p["h"], p["w"]), (p["B"], p["x_in_c"], 2 * p["h"], 2 * p["w"])],
        "points": {"up": (ROOT, "in", 0), "skip": (ROOT, "in", 1), "shuf": ("shuf", "out", 0),
                   "cat": ("conv1", "in", 0), "out": (ROOT, "out", 0)},
    },
    "UpBlock": {
        "args": ("up_in_c", "nf"),
        "inputs": lambda p: [(p["B"], p["up_in_c"], p["h"], p["w"])],
        "points": {"x": (ROOT, "in", 0), "shuf": ("shuf", "out", 0), "out": (ROOT, "out", 0)},
    },
    "PixelShuffle_ICNR": {
        "args": ("ni", "nf"),
        "inputs": lambda p: [(p["B"], p["ni"], p["h"], p["w"])],
        "points": {"x": (ROOT, "in", 0), "conv": ("0", "out", 0), "out": (ROOT, "out", 0)},
    },
}  # fmt: skip


def _shapes(obj) -> list[tuple[int, ...]]:
    if isinstance(obj, torch.Tensor):
        return [tuple(obj.shape)]
    if isinstance(obj, list | tuple):
        return [s for o in obj for s in _shapes(o)]
    return []


def trace_points(
    model: nn.Module, inputs: Any, points: dict[str, tuple[str, str, int]]
) -> dict[str, tuple[int, ...]]:
    """The shape at every point: outputs from the reference's shape trace, inputs from hooks.

    A module called several times (CoaT's shared position encodings) gives its first call.
    """
    from reference.diagnose import shape_trace

    seen_in: dict[str, list] = {}

    def hook(name: str):
        def record(module, args) -> None:
            seen_in.setdefault(name, _shapes(args))

        return record

    handles = []
    for name in {m for m, io, _ in points.values() if io == "in"}:
        module = model if name == ROOT else model.get_submodule(name)
        handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        rows = shape_trace(model, inputs)
    finally:
        for h in handles:
            h.remove()
    seen_out: dict[str, list] = {}
    for r in rows:
        seen_out.setdefault(r.name.split("#")[0], [tuple(s) for s in r.shapes])
    out = {}
    for key, (name, io, i) in points.items():
        out[key] = (seen_in if io == "in" else seen_out)[name][i]
    return out


@cache
def built_model(name: str, arch: str, device: str = "meta") -> nn.Module:
    """The reference model ``name``/``arch`` in eval mode (built once per process)."""
    from reference.models import get_model

    with torch.device(device):
        return get_model(name, arch=arch).eval()


def tile_sizes(p: dict) -> dict[str, int]:
    """H/2, H/4, ... of the drawn tile, for the explanations."""
    out = {}
    for k in (2, 4, 8, 16):
        out[f"H{k}"], out[f"W{k}"] = p["H"] // k, p["W"] // k
    return out


def model_shape(
    params: dict, point: str, model: str = "CoaT_ULSTM", device: str = "meta"
) -> Result:
    """Shape at ``point`` (a key of MODEL_POINTS) for an input (B, 3, T, H, W).

    params: B, H, W (divisible by 16), optional T (default 5) and arch (default medium).
    """
    arch = params.get("arch", "medium")
    shape = (params["B"], 3, params.get("T", 5), params["H"], params["W"])
    m = built_model(model, arch, device)
    x = torch.rand(shape, device=device) if device != "meta" else torch.empty(shape, device="meta")
    shapes = trace_points(m, x, MODEL_POINTS)
    facts: dict[str, Any] = {k: fmt_shape(v) for k, v in shapes.items()}
    facts.update(input=fmt_shape(shape), arch=arch, model=model, **tile_sizes(params))
    facts["BT"] = shapes["up"][0]  # images the encoder sees: B records x the frames kept
    facts.update({f"d{i}": d for i, d in enumerate(m.nc, 1)})
    return Result(shapes[point], facts)


def block_shape(params: dict, block: str, point: str, device: str = "meta") -> Result:
    """Shape at ``point`` of a reference block (a key of BLOCKS) built from the drawn arguments."""
    from reference.models import layers

    spec = BLOCKS[block]
    with torch.device(device):
        module = getattr(layers, block)(*(params[a] for a in spec["args"])).eval()
    inputs = tuple(torch.empty(s, device=device) for s in spec["inputs"](params))
    shapes = trace_points(module, inputs, spec["points"])
    facts: dict[str, Any] = {k: fmt_shape(v) for k, v in shapes.items()}
    facts.update({f"{k}2": 2 * params[k] for k in ("h", "w")})
    for k in ("up_in_c", "ni"):
        if k in params:
            facts.update({f"{k}_2": params[k] // 2, f"{k}_4": params[k] // 4})
    return Result(shapes[point], facts)
