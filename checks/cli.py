"""``shakyo list | check | watch | hint | progress | reset | solution``: the learner's daily loop.

shakyo list                     exercises in order, with status and what is next
shakyo check [ID ...]           grade (default: every available exercise); exit 0 iff all pass
shakyo check --impl solutions   grade the bundled solutions (CI)
shakyo watch                    re-check the current exercise on every save
shakyo hint ID [N]              the next (or N-th) hint
shakyo progress                 what you have done so far
shakyo reset ID                 restore the pristine stub of one exercise
shakyo solution ID              the solution, once your exercise has passed
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

from checks import progress
from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR, Exercise, get_exercise, load_catalog
from checks.impl import impl_label, resolve_impl
from checks.regions import exercise_state, region_texts, reset_regions
from checks.runner import Result, run_check, run_checks
from reference.cli import positive_float
from reference.errors import ConfigError
from reference.utils import atomic_write_text

_IMPL_HELP = (
    "code under test: exercises (yours, default), solutions, or a folder laid out like solutions/"
)


# ----------------------------------------------------------------- arguments
def add_command_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name in ("list", "check", "watch", "reset", "progress"):
        parser.add_argument("--impl", default="exercises", help=_IMPL_HELP)
    if name == "check":
        parser.add_argument(
            "ids", nargs="*", metavar="ID", help="exercise ids (default: all available)"
        )
        parser.add_argument(
            "--json", action="store_true", help='print {"results": [...]} instead of a table'
        )
        parser.add_argument(
            "--timeout", type=positive_float, default=None, help="seconds per check (default 30)"
        )
    elif name == "watch":
        parser.add_argument(
            "id", nargs="?", metavar="ID", help="exercise to watch (default: the first not passed)"
        )
        parser.add_argument(
            "--interval",
            type=positive_float,
            default=0.5,
            help="seconds between looks at the files",
        )
        parser.add_argument("--once", action="store_true", help="check once and exit")
        parser.add_argument(
            "--max-iterations", type=int, default=None, help="stop after this many looks"
        )
    elif name == "hint":
        parser.add_argument("id", metavar="ID")
        parser.add_argument(
            "n", nargs="?", type=int, metavar="N", help="which hint (default: the next one)"
        )
        parser.add_argument(
            "--differs",
            action="store_true",
            help="where the published code and this exercise part ways (and why)",
        )
    elif name == "reset":
        parser.add_argument("id", metavar="ID")
        parser.add_argument(
            "--undo",
            action="store_true",
            help="put back your code of ID from the backup the last reset made",
        )
    elif name == "solution":
        parser.add_argument("id", metavar="ID")
        parser.add_argument(
            "--force", action="store_true", help="show it even before your check passed"
        )


def run_command(name: str, args: argparse.Namespace) -> int:
    return {
        "list": cmd_list,
        "check": cmd_check,
        "watch": cmd_watch,
        "hint": cmd_hint,
        "progress": cmd_progress,
        "reset": cmd_reset,
        "solution": cmd_solution,
    }[name](args)


# ------------------------------------------------------------------- helpers
def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _records_progress(impl_dir: Path) -> bool:
    """Progress is the learner's: recorded for any impl but the bundled solutions."""
    return impl_dir != SOLUTIONS_DIR


def _status(ex: Exercise, impl_dir: Path, entries: dict[str, progress.Entry]) -> str:
    """Status shown by `list`: from the files (todo) and the last recorded check."""
    if not ex.available:
        return "not yet available"
    state = exercise_state(impl_dir / ex.file, ex.id)
    if state == "todo":
        return "todo"
    e = entries.get(ex.id)
    if e is None or e.status == "unchecked":
        if state == "missing":
            return "no exercise markers (`shakyo reset` restores them)"
        return "started (not checked)"
    last = (
        f"{e.status} ({e.rung})"
        if e.status in ("failed", "error", "timeout") and e.rung != "-"
        else e.status
    )
    if e.ever_passed and e.status != "passed":
        return f"passed {e.passed_at[:10]}; last run {last}"
    return last


def _done(status: str) -> bool:
    """A pass stays a pass: 'passed' and 'passed ...; last run failed' both count."""
    return status.startswith("passed")


def _next(impl_dir: Path, entries: dict[str, progress.Entry]) -> Exercise | None:
    for ex in load_catalog():
        if ex.available and not _done(_status(ex, impl_dir, entries)):
            return ex
    return None


def _next_line(ex: Exercise | None, impl_dir: Path) -> str:
    if ex is None:
        return "next: nothing left; every available exercise passed. Try `shakyo train CONFIG IMPL exercises`."
    return (
        f"next: {ex.id} ({ex.title})\n"
        f"  edit {_rel(impl_dir / ex.file)}, then `shakyo check {ex.id}`; stuck? `shakyo hint {ex.id}`"
    )


# ---------------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    impl_dir = resolve_impl(args.impl)
    entries = progress.load() if _records_progress(impl_dir) else {}
    nxt = _next(impl_dir, entries)
    catalog = load_catalog()
    w = max(len(e.id) for e in catalog)
    fw = max(len(e.file) for e in catalog)
    print(f"  #  {'exercise':<{w}}  {'file':<{fw}}  status")
    for ex in catalog:
        mark = "  <- next" if nxt is not None and ex.id == nxt.id else ""
        print(
            f"{ex.index:>3}  {ex.id:<{w}}  {ex.file:<{fw}}  {_status(ex, impl_dir, entries)}{mark}"
        )
    print()
    print(_next_line(nxt, impl_dir))
    return 0


# --------------------------------------------------------------------- check
_WIDTHS = (20, 8, 11)


def _row(r: Result) -> str:
    secs = f"{r.seconds:.1f}s" if r.status not in ("todo", "unavailable") or r.seconds else "-"
    w = max(_WIDTHS[0], len(r.id))
    return f"{r.id:<{w}}  {r.status:<{_WIDTHS[1]}}  {r.rung or '-':<{_WIDTHS[2]}}  {secs}"


def _details(r: Result) -> str:
    head = {
        "failed": f"failed at the {r.rung} rung",
        "error": "your code raised an exception",
        "timeout": f"timed out ({r.rung or 'import'} rung)",
    }.get(r.status, r.status)
    body = "\n".join("  " + ln for ln in r.message.splitlines())
    return f"--- {r.id}: {head}\n{body}"


def _require_files(impl_dir: Path, exercises: list[Exercise]) -> None:
    """A folder passed as --impl must hold the file of every exercise asked for.

    (`shakyo reset` restores exercises/ only, so that is not the fix for a folder.)
    """
    if impl_dir in (EXERCISES_DIR, SOLUTIONS_DIR):
        return
    for ex in exercises:
        if ex.available and not (impl_dir / ex.file).is_file():
            raise ConfigError(
                f"--impl {_rel(impl_dir)}: {ex.file} is missing in that folder (exercise {ex.id}); "
                f"copy it there (solutions/{ex.file} shows the layout) or pick the ids to check"
            )


def cmd_check(args: argparse.Namespace) -> int:
    impl_dir = resolve_impl(args.impl)
    ids = args.ids or None
    if ids:
        for i in ids:
            get_exercise(i)  # unknown id: one line with a suggestion, exit 2
    _require_files(impl_dir, [get_exercise(i) for i in ids] if ids else load_catalog())
    as_json = args.json
    start = time.perf_counter()
    if not as_json:
        selected = (
            [get_exercise(i) for i in ids] if ids else [e for e in load_catalog() if e.available]
        )
        loading = any(
            e.available and exercise_state(impl_dir / e.file, e.id) != "todo" for e in selected
        )
        note = " (loading torch and the reference first)" if loading else ""
        print(f"checking {impl_label(impl_dir)}/ against the reference{note}", flush=True)
        print(f"{'exercise':<{_WIDTHS[0]}}  {'status':<{_WIDTHS[1]}}  {'rung':<{_WIDTHS[2]}}  time")

    def show(r: Result) -> None:
        if _records_progress(impl_dir) and r.status != "unavailable":
            progress.record_result(r.id, r.status, r.rung)
        if not as_json:
            print(_row(r), flush=True)

    results = run_checks(ids, impl=impl_dir, timeout=args.timeout, on_result=show)
    if as_json:
        print(json.dumps({"results": [r.as_json() for r in results]}, indent=2))
    else:
        for r in results:
            if r.status in ("failed", "error", "timeout"):
                print()
                print(_details(r))
            elif r.status == "passed" and r.message:
                print(
                    f"\n--- {r.id}: passed\n"
                    + "\n".join("  " + ln for ln in r.message.splitlines())
                )
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        print(f"\n{summary} ({len(results)} checked) in {time.perf_counter() - start:.1f} s")
        if results and all(r.status == "todo" for r in results):
            first = get_exercise(results[0].id)
            print(
                f"every exercise is still a stub: start with `{first.id}` in "
                f"{_rel(impl_dir / first.file)} (`shakyo hint {first.id}` helps)"
            )
    ok = bool(results) and all(r.status == "passed" for r in results)
    return 0 if ok else 1


# --------------------------------------------------------------------- watch
def _mtimes(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.py")}


def cmd_watch(args: argparse.Namespace) -> int:
    impl_dir = resolve_impl(args.impl)
    _require_files(impl_dir, [get_exercise(args.id)] if args.id else load_catalog())
    record = _records_progress(impl_dir)

    passed_here: set[str] = set()  # advances the watch even where progress is not recorded

    def target() -> Exercise | None:
        if args.id:
            return get_exercise(args.id)
        entries = progress.load() if record else {}
        for ex in load_catalog():
            if (
                ex.available
                and ex.id not in passed_here
                and not _done(_status(ex, impl_dir, entries))
            ):
                return ex
        return None

    def check_once() -> Result | None:
        ex = target()
        if ex is None:
            print(_next_line(None, impl_dir))
            return None
        print(f"\n[{time.strftime('%H:%M:%S')}] shakyo check {ex.id}", flush=True)
        r = run_check(ex, impl_dir)
        if record:
            progress.record_result(r.id, r.status, r.rung)
        if r.status == "passed":
            passed_here.add(r.id)
        print(_row(r))
        if r.status == "todo":
            print("  " + r.message)
        elif r.status != "passed":
            print(_details(r))
        return r

    try:
        r = check_once()
        if args.once:
            return 0 if r is not None and r.status == "passed" else 1
        # After a pass, the next exercise is the current one: show it at once.
        while r is not None and r.status == "passed" and not args.id:
            r = check_once()
        print(f"watching {_rel(impl_dir)}/*.py (Ctrl-C to stop)", flush=True)
        seen = _mtimes(impl_dir)
        looks = 0
        while args.max_iterations is None or looks < args.max_iterations:
            time.sleep(args.interval)
            looks += 1
            now = _mtimes(impl_dir)
            if now != seen:
                seen = now
                r = check_once()
                while r is not None and r.status == "passed" and not args.id:
                    r = check_once()
    except KeyboardInterrupt:
        print("\nstopped watching")
    return 0


# ---------------------------------------------------------------------- hint
def _print_differs(ex: Exercise) -> None:
    print(f"{ex.id}: the published code ({ex.original.file}) and this exercise")
    if not ex.differs:
        print("  nothing to note: a faithful copy of the original is what the check expects")
    for d in ex.differs:
        verdict = "a copy of the original passes" if d.accepted else "the kit departs on purpose"
        print(f"  - {d.id} ({verdict})")
        for label, text in (("the original: ", d.original), ("the kit:      ", d.kit)):
            print(
                textwrap.fill(text, 96, initial_indent="      " + label, subsequent_indent=" " * 20)
            )
        print(f"      read more:    (site: exercises/{ex.id}/#differs-{d.id})")


def cmd_hint(args: argparse.Namespace) -> int:
    ex = get_exercise(args.id)
    if not ex.available:
        raise ConfigError(f"{ex.id}: not yet available in this version")
    if args.differs:
        _print_differs(ex)
        return 0
    n_hints = len(ex.hints)
    if args.n is None:
        seen = progress.load().get(ex.id, progress.Entry(ex.id)).hints_seen
        n = min(seen + 1, n_hints)
    else:
        n = args.n
        if not 1 <= n <= n_hints:
            raise ConfigError(f"hint {n}: {ex.id} has hints 1 to {n_hints}")
    print(f"{ex.id}, hint {n} of {n_hints}:")
    print(f"  {ex.hints[n - 1]}")
    if n < n_hints:
        print(f"(more: `shakyo hint {ex.id}` again, or `shakyo hint {ex.id} {n + 1}`)")
    if ex.differs:
        departures = sum(not d.accepted for d in ex.differs)
        extra = f", {departures} where the kit departs on purpose" if departures else ""
        print(
            f"(the published code and this exercise: {len(ex.differs)} note(s){extra}; "
            f"`shakyo hint {ex.id} --differs`)"
        )
    progress.record_hint(ex.id, n)
    return 0


# ------------------------------------------------------------------ progress
def cmd_progress(args: argparse.Namespace) -> int:
    impl_dir = resolve_impl(args.impl)
    entries = progress.load()
    available = [e for e in load_catalog() if e.available]
    statuses = {e.id: _status(e, impl_dir, entries) for e in available}
    done = sum(_done(s) for s in statuses.values())
    width = 30
    filled = round(width * done / max(len(available), 1))
    print(
        f"[{'#' * filled}{'.' * (width - filled)}] {done} of {len(available)} exercises passed"
        f" ({len(load_catalog())} in the catalog)"
    )
    width = max(len(s) for s in statuses.values())
    for ex in available:
        e = entries.get(ex.id)
        status, extra = statuses[ex.id], ""
        if e is not None:
            if status == "passed":
                status = f"passed {e.passed_at[:10]}"
            extra = f"   hints seen {e.hints_seen}, last run {e.updated}"
        print(f"  {ex.id:<20} {status:<{width}}{extra}")
    print(f"\nstate file: {_rel(progress.progress_path())}")
    print(_next_line(_next(impl_dir, entries), impl_dir))
    return 0


# --------------------------------------------------------------------- reset
def _backups(file: str, exercise_id: str) -> list[Path]:
    """Backups `shakyo reset` made of ``file`` for ``exercise_id``, oldest first."""
    folder = progress.state_dir() / "backups"
    found = list(folder.glob(f"{file}.{exercise_id}.*")) if folder.is_dir() else []
    return sorted(found, key=lambda p: p.name.rsplit(".", 1)[-1])


def _backup(file: str, exercise_id: str, text: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"{time.time() % 1:.6f}"[1:].replace(".", "")
    path = progress.state_dir() / "backups" / f"{file}.{exercise_id}.{stamp}"
    atomic_write_text(path, text)
    return path


def cmd_reset(args: argparse.Namespace) -> int:
    from checks.stubs import generated_stub

    ex = get_exercise(args.id)
    impl_dir = resolve_impl(args.impl)
    if impl_dir == SOLUTIONS_DIR:
        raise ConfigError(
            "--impl solutions: the solutions are never reset; reset your exercises instead"
        )
    if not (SOLUTIONS_DIR / ex.file).is_file():
        raise ConfigError(f"{ex.id}: not yet available in this version (no solutions/{ex.file})")
    path = impl_dir / ex.file
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if args.undo:
        return _undo_reset(ex, path, current)
    pristine = generated_stub(ex.file)
    if current is not None:
        backup = _backup(ex.file, ex.id, current)
    new = reset_regions(current, pristine, ex.id) if current is not None else None
    if new is None:
        atomic_write_text(path, pristine)
        what = "the whole file (its exercise markers were missing or changed)"
    else:
        atomic_write_text(path, new)
        what = f"the regions of {ex.id}"
    if _records_progress(impl_dir):
        progress.reset_entry(ex.id)
    print(f"restored {what} in {_rel(path)}")
    if current is not None:
        print(
            f"your previous version is in {_rel(backup)}; `shakyo reset {ex.id} --undo` puts it back"
        )
    return 0


def _undo_reset(ex: Exercise, path: Path, current: str | None) -> int:
    backups = _backups(ex.file, ex.id)
    if not backups:
        raise ConfigError(
            f"{ex.id}: no backup of {_rel(path)} to go back to; `shakyo reset {ex.id}` keeps one "
            "each time it resets"
        )
    source = backups[-1]
    saved = source.read_text(encoding="utf-8")
    when = source.name.rsplit(".", 1)[-1][:15]
    # Only this exercise's regions come back: other exercises of the file keep today's code.
    new = reset_regions(current, saved, ex.id) if current is not None else None
    if current is not None:
        _backup(ex.file, ex.id, current)  # so that the undo can be undone
    atomic_write_text(path, new if new is not None else saved)
    source.unlink()
    what = f"your code of {ex.id}" if new is not None else "the whole file"
    print(f"put back {what} in {_rel(path)}, as it was before the reset of {when}")
    return 0


# ------------------------------------------------------------------ solution
def cmd_solution(args: argparse.Namespace) -> int:
    ex = get_exercise(args.id)
    if not ex.available:
        raise ConfigError(f"{ex.id}: not yet available in this version")
    if not args.force and not progress.has_passed(ex.id):
        raise ConfigError(
            f"{ex.id} has not passed yet; `shakyo check {ex.id}` first "
            f"(or `shakyo hint {ex.id}`), or add --force to look anyway"
        )
    path = SOLUTIONS_DIR / ex.file
    for qualname, body in region_texts(path.read_text(encoding="utf-8"), ex.id):
        print(f"# {_rel(path)}: {qualname}")
        print(body)
        print()
    return 0


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - `shakyo` is the entry point
    from shakyo.cli import main as shakyo_main

    return shakyo_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["add_command_arguments", "run_command", "EXERCISES_DIR"]
