"""The course's assignments: the ladder's chapters, each a group of the catalog's files.

The exercises are not listed here: an exercise belongs to the chapter of its ``file``
(catalog.toml), and a chapter's notebooks are its files, one notebook per file, in
catalog order. A file of the catalog that no chapter names is an error (the test of
the build proves every file has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from checks.catalog import SOLUTIONS_DIR, Exercise, load_catalog
from reference.errors import ConfigError


@dataclass(frozen=True)
class Chapter:
    slug: str  # the nbgrader assignment name
    title: str
    files: tuple[str, ...]
    title_ja: str = ""

    def heading(self, lang: str) -> str:
        return self.title_ja if lang == "ja" and self.title_ja else self.title


CHAPTERS = (
    Chapter("01-data", "Data", ("data.py",), "データ"),
    Chapter("02-decoder-blocks", "Decoder blocks", ("layers.py",), "デコーダのブロック"),
    Chapter("03-model", "The model", ("coat.py",), "モデル"),
    Chapter("04-loss-and-metric", "Loss and metric", ("losses.py", "metrics.py"), "損失と評価指標"),
    Chapter(
        "05-optimizer-and-schedule",
        "Optimizer and schedule",
        ("optim.py", "schedule.py"),
        "最適化手法とスケジュール",
    ),
    Chapter(
        "06-training-loop", "The training loop", ("train_loop.py", "train_script.py"), "学習ループ"
    ),
    Chapter("07-submission", "Submission", ("submission.py",), "提出"),
)
QUIZ = Chapter("08-quiz", "Quiz (optional, not graded)", (), "クイズ (任意、採点なし)")


@dataclass(frozen=True)
class Notebook:
    """One notebook: a file of the kit and its exercises, in catalog order."""

    chapter: Chapter
    file: str
    exercises: tuple[Exercise, ...]

    @property
    def name(self) -> str:
        return Path(self.file).stem


def chapter_of(file: str) -> Chapter:
    for c in CHAPTERS:
        if file in c.files:
            return c
    raise ConfigError(f"course/chapters.py: no chapter holds {file}; add it to CHAPTERS")


def notebooks(only: list[str] | None = None) -> list[Notebook]:
    """The graded notebooks (available exercises whose solution exists), by chapter.

    ``only``: chapter slugs to keep (ConfigError naming the known ones on a typo).
    """
    known = [c.slug for c in CHAPTERS]
    for slug in only or ():
        if slug not in known and slug != QUIZ.slug:
            raise ConfigError(
                f"unknown assignment `{slug}`; assignments are {', '.join(known)}, {QUIZ.slug}"
            )
    by_file: dict[str, list[Exercise]] = {}
    for ex in load_catalog():
        chapter_of(ex.file)  # every file of the catalog has a chapter, available or not
        if ex.available and (SOLUTIONS_DIR / ex.file).is_file():
            by_file.setdefault(ex.file, []).append(ex)
    out = []
    for c in CHAPTERS:
        if only is not None and c.slug not in only:
            continue
        out += [Notebook(c, f, tuple(by_file[f])) for f in c.files if f in by_file]
    return out
