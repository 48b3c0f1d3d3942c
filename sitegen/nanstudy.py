"""The NaN case study's generated section: `shakyo diagnose nan-study`, run at build time.

A smaller tile than the command's default (64 instead of 256) keeps the page build to a
few seconds; the page says so and gives the full command.
"""

from __future__ import annotations

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


def nan_study_section(ctx, lang: str, rel: str) -> str:
    from reference.nan_study import format_study, nan_study

    result = ctx.memo("nan-study", lambda: nan_study("medium", SIZE, SEEDS))
    text = format_study(result)
    text = text.rsplit("\n(", 1)[0]  # the timing line differs from build to build
    intro = _INTRO["ja" if lang == "ja" else "en"].format(size=SIZE, seeds=SEEDS)
    return f"{intro}\n\n```text\n{text}\n```\n"
