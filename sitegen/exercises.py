"""One page per exercise, in English and Japanese, generated from the catalog.

The catalog (``exercises/catalog.toml``) is the only list: the pages, their
order in the navigation and the table of the exercise index all come from it.
Its texts are English; ``docs/exercises/catalog.ja.toml`` holds their Japanese
translation, one table per exercise, stamped with the hash of the English
fields it translates (:func:`source_hash`). A missing translation shows the
English text under a note; a stale one is listed by ``python -m sitegen
translations`` and fails the test of translations.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sitegen.paths import DOCS, SiteError
from sitegen.util import fence, indent, md_escape_cell, text_hash

JA_CATALOG = DOCS / "exercises" / "catalog.ja.toml"
CONCEPT_PAGES = {
    "task": "task/index.md",
    "model": "model/index.md",
    "training": "training/index.md",
}

LABELS = {
    "en": {
        "unavailable": (
            '!!! note "Not available yet"\n    This exercise is in the ladder but its stub, '
            "check and solution are not in this version yet. `shakyo check {id}` reports "
            "`unavailable`."
        ),
        "difficulty": "Difficulty",
        "time": "Time",
        "minutes": "about {m} min",
        "concept": "Explained in",
        "original": "In the original",
        "file": "File",
        "symbols": "Symbols",
        "also": "Also",
        "published": "The published signatures (the signature rung compares yours with these):",
        "kit_sig": "(this exercise's own function; the original has none)",
        "fastai_sig": "(fastai's signature)",
        "differs": "Differs from the published code",
        "nothing": "Nothing: a faithful copy of the published code passes every rung.",
        "accepted": "A faithful copy of the original passes.",
        "departure": "A deliberate departure: a copy of the original fails here, and the check says why.",
        "published_does": "The published code",
        "kit_does": "The kit",
        "write": "Write it",
        "write_where": (
            "In `exercises/{file}`, write the code between `# BEGIN EXERCISE {id}` and "
            "`# END EXERCISE {id}` ({symbols}). Then:"
        ),
        "mistake": "A common mistake, and what the check prints",
        "mistake_intro": (
            "This page was built by making one typical mistake in a copy of the solution "
            "(mutant `{name}`, in `{file}`) and running the check on it. The output below "
            "is what `shakyo check {id}` printed at build time."
        ),
        "no_mistake": "No mutant is registered for this exercise yet.",
        "hints": "Hints",
        "hint": "Hint {n}",
        "hints_cli": "The same hints, one at a time, in the terminal: `shakyo hint {id}`.",
        "next": "Next",
        "next_ex": "Next exercise: [{title}]({page})",
        "last": "This is the last exercise: graduate with `shakyo train configs/demo.json IMPL exercises`.",
        "concept_link": "The idea behind it: [{title}]({page})",
        "concept_titles": {
            "task": "The task and the data",
            "model": "The model",
            "training": "Loss, metric, optimizer, schedule",
        },
        "index_head": "| # | exercise | what you write | difficulty | time |",
        "missing_ja": "",
    },
    "ja": {
        "unavailable": (
            '!!! note "まだ公開されていません"\n    この演習は一覧に載っていますが、'
            "スタブ・チェック・解答はまだこの版に入っていません。`shakyo check {id}` は "
            "`unavailable` を返します。"
        ),
        "difficulty": "難しさ",
        "time": "目安の時間",
        "minutes": "約 {m} 分",
        "concept": "解説",
        "original": "元のコードでの場所",
        "file": "ファイル",
        "symbols": "名前",
        "also": "ほかに",
        "published": "公開コードのシグネチャ (signature ラングはあなたのコードをこれと比べます):",
        "kit_sig": "(この演習のための関数です。元のコードにはありません)",
        "fastai_sig": "(fastai のシグネチャ)",
        "differs": "公開コードとの違い",
        "nothing": "ありません。公開コードをそのまま写せば、すべてのラングを通ります。",
        "accepted": "元のコードをそのまま写しても通ります。",
        "departure": "意図的な違いです。元のコードの写しはここで落ち、チェックが理由を説明します。",
        "published_does": "公開コード",
        "kit_does": "このキット",
        "write": "書いてみる",
        "write_where": (
            "`exercises/{file}` の `# BEGIN EXERCISE {id}` と `# END EXERCISE {id}` の間に"
            "コードを書きます ({symbols})。それから:"
        ),
        "mistake": "よくある間違いと、チェックの出力",
        "mistake_intro": (
            "このページを作るとき、解答のコピーにわざと典型的な間違いを一つ入れ"
            "(ミュータント `{name}`、`{file}`)、チェックを走らせました。下の出力は、"
            "ビルド時に `shakyo check {id}` が実際に表示したものです (メッセージは英語です)。"
        ),
        "no_mistake": "この演習にはまだミュータントが登録されていません。",
        "hints": "ヒント",
        "hint": "ヒント {n}",
        "hints_cli": "同じヒントは端末でも一つずつ見られます: `shakyo hint {id}`。",
        "next": "次へ",
        "next_ex": "次の演習: [{title}]({page})",
        "last": "これが最後の演習です。`shakyo train configs/demo.json IMPL exercises` で卒業しましょう。",
        "concept_link": "考え方の解説: [{title}]({page})",
        "concept_titles": {
            "task": "課題とデータ",
            "model": "モデル",
            "training": "損失関数・評価指標・最適化・学習率",
        },
        "index_head": "| # | 演習 | 書くもの | 難しさ | 時間 |",
        "missing_ja": (
            '!!! warning "翻訳待ち"\n    この演習の説明はまだ日本語になっていません。'
            "下の説明とヒントは英語のままです。"
        ),
    },
}


@dataclass(frozen=True)
class Translation:
    title: str
    why: str
    hints: tuple[str, ...]
    differs: dict[str, tuple[str, str]]  # id -> (original, kit)
    source: str  # hash of the English fields it was made from


def source_hash(ex) -> str:
    """Hash of the English catalog fields a Japanese translation covers."""
    fields = {
        "title": ex.title,
        "why": ex.why,
        "hints": list(ex.hints),
        "differs": [[d.id, d.original, d.kit] for d in ex.differs],
    }
    return text_hash(json.dumps(fields, ensure_ascii=False, sort_keys=True))


def load_translations(path: Path = JA_CATALOG) -> dict[str, Translation]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SiteError(f"{path}: {e}") from None
    out = {}
    for eid, t in data.items():
        try:
            out[eid] = Translation(
                t["title"],
                t["why"],
                tuple(t["hints"]),
                {k: (v["original"], v["kit"]) for k, v in t.get("differs", {}).items()},
                t["source"],
            )
        except KeyError as e:
            raise SiteError(f"{path}: [{eid}] lacks {e}; see the comment at the top") from None
    return out


def stale_translations(catalog, translations: dict[str, Translation]) -> list[str]:
    """'id: why' for every exercise whose Japanese text is missing or older than its English."""
    out = []
    for ex in catalog:
        t = translations.get(ex.id)
        if t is None:
            out.append(f"{ex.id}: no translation in {JA_CATALOG.relative_to(DOCS.parent)}")
        elif t.source != source_hash(ex):
            out.append(f"{ex.id}: translated from {t.source}, the English is now {source_hash(ex)}")
        elif set(t.differs) != {d.id for d in ex.differs} or len(t.hints) != len(ex.hints):
            out.append(f"{ex.id}: the translation's hints or differs entries do not match")
    extra = sorted(set(translations) - {e.id for e in catalog})
    out += [f"{i}: translated, but not in the catalog" for i in extra]
    return out


def page_path(ex) -> str:
    """The Markdown path of an exercise page below the docs folder, from the catalog slug."""
    return ex.docs.strip("/") + ".md"


def _stars(n: int) -> str:
    return "●" * n + "○" * (3 - n)


def _text(ex, t: Translation | None, lang: str):
    """(title, why, hints, differs {id: (original, kit)}) in ``lang``."""
    english = (ex.title, ex.why, ex.hints, {d.id: (d.original, d.kit) for d in ex.differs})
    if lang == "en" or t is None:
        return english
    differs = {d.id: t.differs.get(d.id, english[3][d.id]) for d in ex.differs}
    hints = t.hints if len(t.hints) == len(ex.hints) else ex.hints
    return t.title, t.why, hints, differs


def _rel(from_page: str, to_page: str) -> str:
    """A relative Markdown link from one docs page to another."""
    up = from_page.count("/")
    return "../" * up + to_page


def exercise_page(ex, nxt, shown, lang: str, t: Translation | None = None) -> str:
    """The Markdown of one exercise page (see the page anatomy in the module docstring)."""
    L = LABELS[lang]
    title, why, hints, differs = _text(ex, t, lang)
    me = page_path(ex)
    out = [
        "---",
        f"title: {json.dumps(ex.id)}",
        "---",
        "",
        f"# {title}",
        "",
        f"`{ex.id}` · {L['difficulty']} {_stars(ex.difficulty)} · {L['time']}: "
        + L["minutes"].format(m=ex.minutes)
        + f" · {L['concept']}: [{L['concept_titles'][ex.concept]}]"
        f"({_rel(me, CONCEPT_PAGES[ex.concept])})",
        "",
    ]
    if lang == "ja" and t is None:
        out += [L["missing_ja"], ""]
    if not ex.available:
        out += [L["unavailable"].format(id=ex.id), ""]
    out += [why, ""]

    o = ex.original
    out += [f"## {L['original']} {{#in-the-original}}", ""]
    out += [
        f"- {L['file']}: `{o.file}`",
        f"- {L['symbols']}: " + ", ".join(f"`{s}`" for s in o.symbols),
    ]
    if o.also:
        out.append(f"- {L['also']}: {o.also}")
    out += ["", L["published"], ""]
    sig_lines = []
    for sym in ex.symbols:
        note = {"exercise": L["kit_sig"], "fastai": L["fastai_sig"]}.get(ex.source_of(sym), "")
        sig_lines.append(f"{sym}{ex.signatures[sym]}" + (f"  # {note}" if note else ""))
    out += [fence("\n".join(sig_lines), "python"), ""]

    out += [f"## {L['differs']} {{#differs}}", ""]
    if not ex.differs:
        out += [L["nothing"], ""]
    for d in ex.differs:
        original, kit = differs[d.id]
        kind = "info" if d.accepted else "warning"
        verdict = L["accepted"] if d.accepted else L["departure"]
        out += [
            f"### {d.id} {{#differs-{d.id}}}",
            "",
            f'!!! {kind} "{verdict}"',
            "",
            indent(f"**{L['published_does']}:** {original}"),
            "",
            indent(f"**{L['kit_does']}:** {kit}"),
            "",
        ]

    symbols = ", ".join(f"`{s}`" for s in ex.symbols)
    out += [
        f"## {L['write']} {{#write-it}}",
        "",
        L["write_where"].format(file=ex.file, id=ex.id, symbols=symbols),
        "",
    ]
    out += [fence(f"shakyo check {ex.id}\nshakyo hint {ex.id}", "bash"), ""]

    out += [f"## {L['mistake']} {{#common-mistake}}", ""]
    if shown is None:
        out += [L["no_mistake"], ""]
    else:
        out += [L["mistake_intro"].format(name=shown.mutant, file=shown.file, id=ex.id), ""]
        diff = "\n".join(
            ["- " + line for line in shown.old.splitlines()]
            + ["+ " + line for line in shown.new.splitlines()]
        )
        out += [fence(diff, "diff"), "", fence(shown.output, "text"), ""]

    out += [f"## {L['hints']} {{#hints}}", ""]
    for i, h in enumerate(hints, 1):
        out += [f'??? tip "{L["hint"].format(n=i)}"', "", indent(h), ""]
    out += [L["hints_cli"].format(id=ex.id), ""]

    out += [f"## {L['next']} {{#next}}", ""]
    out += [
        "- "
        + L["concept_link"].format(
            title=L["concept_titles"][ex.concept], page=_rel(me, CONCEPT_PAGES[ex.concept])
        )
    ]
    if nxt is not None:
        nt = nxt.title if lang == "en" else nxt.id
        out.append("- " + L["next_ex"].format(title=nt, page=_rel(me, page_path(nxt))))
    else:
        out.append("- " + L["last"])
    return "\n".join(out).rstrip() + "\n"


def index_table(catalog, lang: str, translations: dict[str, Translation]) -> str:
    """The ladder as a table, in catalog order, for the exercise index."""
    L = LABELS[lang]
    rows = [L["index_head"], "|---|---|---|---|---|"]
    for ex in catalog:
        t = translations.get(ex.id) if lang == "ja" else None
        title = t.title if t else ex.title
        link = f"[`{ex.id}`]({Path(page_path(ex)).name})"
        if not ex.available:
            link += " (—)"
        rows.append(
            f"| {ex.index} | {link} | {md_escape_cell(title)} | {_stars(ex.difficulty)} | "
            + L["minutes"].format(m=ex.minutes)
            + " |"
        )
    total = sum(e.minutes for e in catalog if e.available)
    foot = (
        f"\nAll available exercises together: about {total / 60:.1f} hours."
        if lang == "en"
        else f"\n公開済みの演習をすべて合わせて約 {total / 60:.1f} 時間です。"
    )
    return "\n".join(rows) + "\n" + foot + "\n"


def write_pages(
    dest: Path, catalog, shown: dict, translations: dict[str, Translation]
) -> list[Path]:
    """Write every exercise page (both languages) below ``dest``; return the paths."""
    written = []
    for i, ex in enumerate(catalog):
        nxt = catalog[i + 1] if i + 1 < len(catalog) else None
        for lang in ("en", "ja"):
            rel = page_path(ex) if lang == "en" else page_path(ex)[: -len(".md")] + ".ja.md"
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            text = exercise_page(ex, nxt, shown.get(ex.id), lang, translations.get(ex.id))
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
