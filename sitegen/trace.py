"""The model page's numbers, from the running reference: shape trace, diagram, parameter counts.

``reference.diagnose.shape_trace`` runs CoaT_ULSTM medium (random init, eval mode)
on one (1, 3, 5, 256, 256) input and records every module call; forward hooks on
the decoder's modules record their inputs as well, for the diagram. Nothing here
is typed by hand: change the model and the page changes. The run (about 10 s on
2 CPU cores) is cached in build/cache/, keyed by a hash of reference/ and the
library versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from sitegen.paths import CACHE, REPO
from sitegen.util import fence, md_escape_cell, tree_hash, write_json

INPUT_SHAPE = (1, 3, 5, 256, 256)
MODEL, ARCH = "CoaT_ULSTM", "medium"
HOOKED = ("lstm.0", "lstm.1", "dec4", "dec3", "dec2", "fpn", "final_conv")
PARAM_MODELS = ("CoaT_ULSTM", "CoaT_U", "CoaT_UT")
PARAM_ARCHS = ("mini", "small", "medium")


def _versions() -> str:
    import timm
    import torch

    return f"torch {torch.__version__} timm {timm.__version__}"


def _shape(obj) -> list:
    """Shapes of a tensor or of the tensors in a (nested) list/tuple."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [list(obj.shape)]
    if isinstance(obj, list | tuple):
        return [s for o in obj for s in _shape(o)]
    return []


def _run() -> dict:
    import torch

    from reference.diagnose import shape_trace
    from reference.models import get_model

    torch.manual_seed(0)
    model = get_model(MODEL, arch=ARCH).eval()
    inputs: dict[str, list] = {}

    def hook(name: str):
        def record(module, args, output) -> None:  # returns None: the output stays as it is
            inputs.setdefault(name, _shape(args))

        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in HOOKED]
    x = torch.rand(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))
    try:
        rows = shape_trace(model, x)
    finally:
        for h in handles:
            h.remove()
    children = {
        name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()
    }
    direct = sum(p.numel() for p in model.parameters(recurse=False))
    enc_direct = sum(p.numel() for p in model.enc.parameters(recurse=False))
    return {
        "rows": [asdict(r) for r in rows],
        "inputs": inputs,
        "children": children,
        "root_params": direct,
        "enc_direct": enc_direct,
        "total": sum(p.numel() for p in model.parameters()),
        "norms": [float(p.detach().norm()) for p in model.parameters()],
    }


def cache_path(cache: Path = CACHE) -> Path:
    return cache / f"trace-{tree_hash([REPO / 'reference'], extra=_versions())}.json"


def trace_data(cache: Path = CACHE) -> dict:
    path = cache_path(cache)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    data = _run()
    for old in cache.glob("trace-*.json"):
        old.unlink()
    write_json(path, data)
    return data


def _fmt(shapes: list) -> str:
    return ", ".join("(" + ", ".join(str(d) for d in s) + ")" for s in shapes) or "-"


def _data(ctx) -> dict:
    return ctx.memo("trace", trace_data)


def shape_summary(ctx, lang: str, page: str) -> str:
    """The calls at depth <= 1 (the model and what it calls directly), with shapes."""
    d = _data(ctx)
    head = (
        "| module | class | output shape | parameters (with children) |"
        if lang == "en"
        else "| モジュール | クラス | 出力の形 | パラメータ数 (子を含む) |"
    )
    totals = {r["name"]: None for r in d["rows"]}
    own: dict[str, int] = {}
    for r in d["rows"]:
        own.setdefault(r["name"].split("#")[0], r["n_params"])
    for name in totals:
        base = name.split("#")[0]
        totals[name] = sum(v for k, v in own.items() if k == base or k.startswith(base + "."))
    lines = [head, "|---|---|---|---:|"]
    for r in d["rows"]:
        if r["depth"] > 1:
            continue
        name = r["name"]
        total = d["total"] if r["depth"] == 0 else totals[name]
        lines.append(
            f"| `{md_escape_cell(name)}` | `{r['cls']}` | {_fmt(r['shapes'])} | {total:,} |"
        )
    return "\n".join(lines)


def full_trace(ctx, lang: str, page: str) -> str:
    """Every module call, folded, as `format_shape_trace` prints it."""
    from reference.diagnose import ShapeRow, format_shape_trace

    d = _data(ctx)
    rows = [ShapeRow(**r) for r in d["rows"]]
    title = (
        f"The whole trace: {len(rows)} module calls"
        if lang == "en"
        else f"トレース全体: モジュール呼び出し {len(rows)} 回"
    )
    body = fence(format_shape_trace(rows), "text")
    return f'??? abstract "{title}"\n\n' + "\n".join("    " + ln for ln in body.splitlines())


def param_counts(ctx, lang: str, page: str) -> str:
    """Parameters per top-level module, and what the trace does not see (the cls tokens)."""
    d = _data(ctx)
    head = "| module | parameters |" if lang == "en" else "| モジュール | パラメータ数 |"
    lines = [head, "|---|---:|"]
    for name, n in d["children"].items():
        if n:
            lines.append(f"| `{name}` | {n:,} |")
    total_label = "**total**" if lang == "en" else "**合計**"
    lines.append(f"| {total_label} | **{d['total']:,}** |")
    return "\n".join(lines)


def _node(name: str, label: str, shapes: list) -> str:
    return f'{name}["{label}<br/>{_fmt(shapes)}"]' if shapes else f'{name}["{label}"]'


def model_diagram(ctx, lang: str, page: str) -> str:
    """A Mermaid flowchart of CoaT_ULSTM whose shapes come from the trace."""
    d = _data(ctx)
    rows = {r["name"]: r for r in d["rows"]}
    inp = d["inputs"]
    x1, x2 = inp["dec2"][1], inp["dec3"][1]  # skip connections: the last frame's maps
    x3, x4 = inp["lstm.0"][0], inp["lstm.1"][0]
    ja = lang == "ja"
    t = {
        "in": "入力" if ja else "input",
        "up": "bicubic ×2, clip" if not ja else "bicubic で 2 倍, clip",
        "enc": "CoaT encoder, per frame" if not ja else "CoaT エンコーダ (フレームごと)",
        "last": "last frame" if not ja else "最後のフレーム",
        "lstm": "LSTM over 5 frames, last step" if not ja else "5 フレームの LSTM, 最後のステップ",
        "out": "logits, frame 4" if not ja else "ロジット (フレーム 4)",
    }
    b, c, nt, h, w = INPUT_SHAPE
    upsampled = [[b * nt, c, 2 * h, 2 * w]]
    lines = [
        "```mermaid",
        "flowchart TB",
        _node("IN", t["in"], [list(INPUT_SHAPE)]),
        _node("UP", t["up"], upsampled),
        _node("ENC", t["enc"], []),
        _node("X1", "x1 → " + t["last"], [x1]),
        _node("X2", "x2 → " + t["last"], [x2]),
        _node("X3", "x3", [x3]),
        _node("X4", "x4", [x4]),
        _node(
            "L3", f"lstm.0: {t['lstm']}<br/>{_fmt(rows['lstm.0']['shapes'])} →", [inp["dec4"][1]]
        ),
        _node(
            "L4", f"lstm.1: {t['lstm']}<br/>{_fmt(rows['lstm.1']['shapes'])} →", [inp["dec4"][0]]
        ),
        _node("D4", "dec4 UnetBlock", rows["dec4"]["shapes"]),
        _node("D3", "dec3 UnetBlock", rows["dec3"]["shapes"]),
        _node("D2", "dec2 UnetBlock", rows["dec2"]["shapes"]),
        _node("FPN", "fpn + concat", rows["fpn"]["shapes"]),
        _node("FC", "final_conv UpBlock: " + t["out"], rows["final_conv"]["shapes"]),
        "IN --> UP --> ENC",
        "ENC --> X1 & X2 & X3 & X4",
        "X3 --> L3",
        "X4 --> L4",
        "L4 -- up --> D4",
        "L3 -- skip --> D4",
        "D4 -- up --> D3",
        "X2 -- skip --> D3",
        "D3 -- up --> D2",
        "X1 -- skip --> D2",
        "L4 & D4 & D3 --> FPN",
        "D2 --> FPN",
        "FPN --> FC",
        "```",
    ]
    return "\n".join(lines)


def params_table(ctx, lang: str, page: str) -> str:
    """Parameter counts of the three CoaT models for the three published archs."""
    from reference.models import get_model

    def make() -> dict:
        import torch

        out = {}
        with torch.device("meta"):
            for m in PARAM_MODELS:
                for a in PARAM_ARCHS:
                    model = get_model(m, arch=a)
                    out[f"{m}/{a}"] = sum(p.numel() for p in model.parameters())
        return out

    counts = ctx.memo("params", make)
    lines = ["| model | " + " | ".join(PARAM_ARCHS) + " |", "|---|" + "---:|" * len(PARAM_ARCHS)]
    for m in PARAM_MODELS:
        lines.append(
            f"| `{m}` | " + " | ".join(f"{counts[f'{m}/{a}']:,}" for a in PARAM_ARCHS) + " |"
        )
    return "\n".join(lines)


if (
    __name__ == "__main__"
):  # `python -m sitegen.trace`: fill the cache (the build runs it in parallel)
    trace_data()
