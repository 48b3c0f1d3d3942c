"""The question catalog: ``quiz/questions.toml`` read into :class:`Question` objects.

The file's header comment documents every field. Loading checks what can be
checked without running the reference: required fields, kinds and answer
types, the form of the site link, that both languages exist and use the same
placeholders. Whether each compute function exists and each placeholder is
filled is proved by the tests (that needs torch).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import string
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from reference.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
QUESTIONS_PATH = REPO / "quiz" / "questions.toml"
LANGS = ("en", "ja")
# Computed kinds draw their numbers and run the reference; the others hold a fact.
COMPUTED_KINDS = ("shapes", "counts", "schedule", "metric", "data")
KINDS = (*COMPUTED_KINDS, "design", "original")
ANSWER_TYPES = ("shape", "ints", "int", "float", "choice", "location")
# `(site: PAGE/#ANCHOR)`, the form the site's `sitegen refs` check resolves.
SITE_LINK = re.compile(r"^\(site: ([a-z0-9][a-z0-9/._-]*/)#([A-Za-z0-9_-]+)\)$")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Texts:
    """The words of a question in one language; ``{name}`` placeholders are filled per attempt."""

    text: str
    explain: str


@dataclass(frozen=True)
class Option:
    """One answer of a multiple-choice question, with why it is right or wrong."""

    right: bool
    texts: dict[str, tuple[str, str]]  # lang -> (text, why)


@dataclass(frozen=True)
class Location:
    """Where in the published code a behaviour comes from (a fact of the original)."""

    repo: str
    file: str
    first: int
    last: int
    commit: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.file}#L{self.first}" + (
            f"-L{self.last}" if self.last != self.first else ""
        )

    def __str__(self) -> str:
        lines = f"{self.first}" if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.file}:{lines}"


@dataclass(frozen=True)
class Question:
    """One catalog entry (see the comment at the top of questions.toml)."""

    id: str
    kind: str
    page: str  # "model/" (the site page)
    anchor: str  # "forward"
    answer: str  # answer type, one of ANSWER_TYPES
    texts: dict[str, Texts]
    ja_source: str  # hash of the English texts the Japanese was made from
    compute: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    draw: dict[str, Any] = field(default_factory=dict)
    rel_tol: float = 0.0  # float answers: relative tolerance
    abs_tol: float = 0.0  # float answers: absolute tolerance
    format: str = ""  # float answers: how the answer is printed (a format spec)
    options: tuple[Option, ...] = ()
    location: Location | None = None
    index: int = 0  # 1-based position in the catalog

    @property
    def computed(self) -> bool:
        return self.kind in COMPUTED_KINDS

    @property
    def link(self) -> str:
        return f"{self.page}#{self.anchor}"

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in LANGS if lang in self.texts)


def english_hash(q: Question) -> str:
    """Hash of the English words a Japanese translation covers (texts and options)."""
    fields = {
        "text": q.texts["en"].text,
        "explain": q.texts["en"].explain,
        "options": [list(o.texts["en"]) for o in q.options],
    }
    data = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:12]


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields of a template (``{{`` escapes a brace)."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _texts(entry: dict, lang: str, where: str) -> Texts:
    t = entry.get(lang)
    if not isinstance(t, dict) or not {"text", "explain"} <= set(t):
        raise ConfigError(f"{where}: needs {lang}.text and {lang}.explain")
    return Texts(t["text"].strip(), t["explain"].strip())


def _option(o: dict, where: str) -> Option:
    texts = {}
    for lang in LANGS:
        t = o.get(lang)
        if not isinstance(t, dict) or not {"text", "why"} <= set(t):
            raise ConfigError(f"{where}: every option needs {lang}.text and {lang}.why")
        texts[lang] = (t["text"].strip(), t["why"].strip())
    return Option(bool(o.get("right", False)), texts)


def _parse(entry: dict, index: int, path: Path) -> Question:
    qid = entry.get("id", f"#{index}")
    where = f"{path.name}: question {qid}"
    for key in ("id", "kind", "page", "answer", "en", "ja"):
        if key not in entry:
            raise ConfigError(f"{where}: lacks `{key}`")
    if not _ID.match(qid):
        raise ConfigError(f"{where}: ids are kebab-case (a-z, 0-9, -)")
    if entry["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind {entry['kind']!r}; one of {', '.join(KINDS)}")
    if entry["answer"] not in ANSWER_TYPES:
        raise ConfigError(f"{where}: answer {entry['answer']!r}; one of {', '.join(ANSWER_TYPES)}")
    m = SITE_LINK.match(entry["page"])
    if not m:
        raise ConfigError(f"{where}: page must read (site: PAGE/#ANCHOR), got {entry['page']!r}")
    texts = {lang: _texts(entry, lang, where) for lang in LANGS}
    kind, answer = entry["kind"], entry["answer"]
    options = tuple(_option(o, where) for o in entry.get("option", []))
    location = None
    if kind in COMPUTED_KINDS:
        if not entry.get("compute"):
            raise ConfigError(f"{where}: a {kind} question names its `compute` function")
        if answer in ("choice", "location"):
            raise ConfigError(f"{where}: a computed question answers a value, not {answer}")
    elif kind == "design":
        if answer != "choice" or len(options) < 3 or sum(o.right for o in options) != 1:
            raise ConfigError(f"{where}: a design question has >= 3 options, exactly one right")
    elif kind == "original":
        loc = entry.get("location", {})
        try:
            location = Location(
                loc.get("repo", "DrHB/2nd-place-contrails"),
                loc["file"],
                int(loc["lines"][0]),
                int(loc["lines"][-1]),
                loc["commit"],
            )
        except (KeyError, IndexError, TypeError, ValueError):
            raise ConfigError(
                f"{where}: location needs file, lines = [first, last], commit"
            ) from None
        if answer != "location" or not 1 <= location.first <= location.last:
            raise ConfigError(f"{where}: answer = 'location' with 1 <= first <= last")
    en, ja = texts["en"], texts["ja"]
    if "answer" in placeholders(en.text) | placeholders(ja.text):
        raise ConfigError(f"{where}: the question text must not show {{answer}}")
    for part in ("text", "explain"):
        if placeholders(getattr(en, part)) != placeholders(getattr(ja, part)):
            raise ConfigError(f"{where}: the en and ja {part} use different {{placeholders}}")
    tol = entry.get("tolerance", {})
    if answer == "float" and not (tol.get("rel") or tol.get("abs")):
        raise ConfigError(f"{where}: a float answer needs tolerance = {{rel = ..}} or {{abs = ..}}")
    return Question(
        id=qid,
        kind=kind,
        page=m.group(1),
        anchor=m.group(2),
        answer=answer,
        texts=texts,
        ja_source=str(entry["ja"].get("source", "")),
        compute=entry.get("compute", ""),
        args=dict(entry.get("args", {})),
        draw=dict(entry.get("draw", {})),
        rel_tol=float(tol.get("rel", 0.0)),
        abs_tol=float(tol.get("abs", 0.0)),
        format=entry.get("format", ""),
        options=options,
        location=location,
        index=index,
    )


@cache
def _load(path: Path) -> tuple[Question, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    questions = tuple(_parse(e, i, path) for i, e in enumerate(data.get("question", []), 1))
    ids = [q.id for q in questions]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{path.name}: duplicate question ids {', '.join(dup)}")
    return questions


def load_questions(path: Path = QUESTIONS_PATH) -> tuple[Question, ...]:
    """Every question, in catalog order."""
    return _load(Path(path).resolve())


def select(questions: tuple[Question, ...], topic: str | None) -> tuple[Question, ...]:
    """The questions of one kind or the one question with that id (all for None or 'all')."""
    if topic in (None, "all"):
        return questions
    if topic in KINDS:
        return tuple(q for q in questions if q.kind == topic)
    by_id = [q for q in questions if q.id == topic]
    if by_id:
        return tuple(by_id)
    names = list(KINDS) + [q.id for q in questions]
    close = difflib.get_close_matches(topic, names, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise ConfigError(
        f"unknown topic `{topic}`; {hint}topics are {', '.join(KINDS)}, all, "
        "or a question id (`shakyo quiz --list`)"
    )


def stale_translations(questions: tuple[Question, ...]) -> list[str]:
    """'id: why' for every question whose Japanese was made from other English words."""
    out = []
    for q in questions:
        now = english_hash(q)
        if q.ja_source != now:
            out.append(
                f"{q.id}: Japanese made from {q.ja_source or '(no stamp)'}, English now {now}"
            )
    return out


def stamp(path: Path = QUESTIONS_PATH, only: str | None = None) -> int:
    """Write the current English hash into ``ja.source`` of every question (or ``only``)."""
    text = path.read_text(encoding="utf-8")
    _load.cache_clear()
    n = 0
    for q in load_questions(path):
        if only is not None and q.id != only:
            continue
        pat = re.compile(
            rf'(^id = "{re.escape(q.id)}"\n(?:(?!^\[\[question\]\]).*\n)*?^ja\.source = ")[0-9a-f]*(")',
            re.M,
        )
        text, k = pat.subn(rf"\g<1>{english_hash(q)}\g<2>", text)
        n += k
    if only is not None and n == 0:
        raise ConfigError(f"{path.name}: no question {only} with a `ja.source = ` line")
    path.write_text(text, encoding="utf-8")
    _load.cache_clear()
    return n
