"""The NaN case study's generated section: `shakyo diagnose nan-study`, run at build time.

A smaller tile than the command's default (64 instead of 256) keeps the study to about
20 s, and its text is cached under build/cache/, keyed by a hash of reference/ and the
library versions, so a rebuild with unchanged code costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from sitegen.paths import CACHE, REPO

SIZE, SEEDS = 64, 2

_INTRO = {
    "en": (
        "Generated when this site was built, by `shakyo diagnose nan-study --size {size} "
        "--seeds {seeds}` (a {size}² tile to keep the build fast; the command's default is "
        "256², about 20 s on a laptop CPU):"
    ),
    "ja": (
        "このサイトのビルド時に `shakyo diagnose nan-study --size {size} --seeds {seeds}` "
        "で生成した出力です（ビルドを速く保つため {size}² のタイルを使用。"
        "コマンドの既定値は 256² で、ノート PC の CPU で約 20 秒）："
    ),
}


def study_text(cache: Path = CACHE) -> str:
    """The command's output without its timing line, from the cache when reference/ is unchanged."""
    from sitegen.quiz import _versions
    from sitegen.util import tree_hash, write_json

    path = cache / f"nan-study-{tree_hash([REPO / 'reference'], extra=_versions())}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["text"]
    from reference.nan_study import format_study, nan_study

    text = format_study(nan_study("medium", SIZE, SEEDS))
    text = text.rsplit("\n(", 1)[0]  # the timing line differs from run to run
    for old in cache.glob("nan-study-*.json"):
        old.unlink()
    write_json(path, {"text": text})
    return text


def nan_study_section(ctx, lang: str, rel: str) -> str:
    text = ctx.memo("nan-study", study_text)
    intro = _INTRO["ja" if lang == "ja" else "en"].format(size=SIZE, seeds=SEEDS)
    return f"{intro}\n\n```text\n{text}\n```\n"
