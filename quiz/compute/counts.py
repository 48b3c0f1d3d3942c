"""Counts questions: parameters of the reference's modules, multiply-adds of a forward pass.

Parameters are counted on the reference's classes built on the ``meta`` device
(shapes only). Multiply-adds (MACs) are counted by forward hooks while the
reference runs a forward pass on meta tensors: a convolution costs
out.numel() · (in_channels / groups) · kh · kw, a linear layer out.numel() ·
in_features, a one-layer LSTM over (N, T, I) costs N · T · 4H · (I + H).
Norms, activations, additions and interpolations are not counted: they are
cheap next to these, and "MACs" conventionally leaves them out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quiz.compute import Result, fmt_int, fmt_shape
from quiz.compute.shapes import built_model, tile_sizes


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_params(params: dict, module: str = "", model: str = "CoaT_ULSTM") -> Result:
    """Parameters of ``module`` of the model (the whole model for ""). params: arch."""
    m = built_model(model, params.get("arch", "medium"))
    target = m.get_submodule(module) if module else m
    children = {name: _n(c) for name, c in m.named_children()}
    facts: dict[str, Any] = {f"n_{k}": fmt_int(v) for k, v in children.items()}
    decoder = sum(v for k, v in children.items() if k not in ("enc", "lstm", "mixer"))
    facts.update(
        n_total=fmt_int(_n(m)), n_decoder=fmt_int(decoder), arch=params.get("arch", "medium")
    )
    facts["dims"] = ", ".join(str(d) for d in m.nc)
    facts.update({f"c_{k}": fmt_int(_n(c)) for k, c in target.named_children()})
    return Result(_n(target), facts)


def block_params(params: dict, block: str) -> Result:
    """Parameters of a reference block built from the drawn constructor arguments."""
    from reference.models import layers

    args = {
        "LSTM_block": ("n",),
        "UnetBlock": ("up_in_c", "x_in_c", "nf"),
        "UpBlock": ("up_in_c", "nf"),
        "LayerNorm2d": ("C",),
    }[block]
    with torch.device("meta"):
        module = getattr(layers, block)(*(params[a] for a in args))
    facts: dict[str, Any] = {}
    for name, p in module.named_parameters():
        facts["p_" + name.replace(".", "_")] = fmt_int(p.numel())
        facts["s_" + name.replace(".", "_")] = fmt_shape(p.shape)
    for name, child in module.named_children():
        facts[f"n_{name}"] = fmt_int(_n(child))
    return Result(_n(module), facts)


def _macs(module: nn.Module, out: Any, args: tuple) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, nn.LSTM):
        if module.num_layers != 1 or module.bidirectional or not module.batch_first:
            raise NotImplementedError("MACs of a one-layer, one-way, batch_first LSTM only")
        n, t, i = args[0].shape
        return n * t * 4 * module.hidden_size * (i + module.hidden_size)
    return 0


def model_macs(params: dict, module: str, model: str = "CoaT_ULSTM") -> Result:
    """MACs of ``module`` in one forward pass of an input (B, 3, 5, H, W); params: B, H, W, arch."""
    m = built_model(model, params.get("arch", "medium"))
    target = m.get_submodule(module)
    per_layer: dict[str, int] = {}

    def hook(name: str):
        def count(mod, args, out) -> None:
            per_layer[name] = per_layer.get(name, 0) + _macs(
                mod, out[0] if isinstance(out, tuple) else out, args
            )

        return count

    handles = [
        sub.register_forward_hook(hook(name))
        for name, sub in target.named_modules()
        if isinstance(sub, nn.Conv2d | nn.Linear | nn.LSTM)
    ]
    try:
        with torch.no_grad():
            m(torch.empty(params["B"], 3, 5, params["H"], params["W"], device="meta"))
    finally:
        for h in handles:
            h.remove()
    facts: dict[str, Any] = {"m_" + k.replace(".", "_"): fmt_int(v) for k, v in per_layer.items()}
    facts["layers"] = ", ".join(f"{k} {v:,}" for k, v in per_layer.items())
    facts["arch"] = params.get("arch", "medium")
    facts.update(tile_sizes(params))
    return Result(sum(per_layer.values()), facts)
