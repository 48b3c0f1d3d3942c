"""Known mistakes: when a check fails, which mutant of ``checks/mutants.toml`` gave the same answers?

When the learner's check fails at a rung, the learner's code is run once more in
recording mode (comparisons never raise; the run stops after that rung), and so is
each mutant of the exercise that fails at the same rung, on the same inputs. Every
comparison leaves an :class:`checks.ladder.Observation`: its key, whether it
passed, and for failures a digest of the answer. A mutant *matches* when its
observations are the learner's: the same comparisons in the same order, passed
where the learner's passed, failed where they failed, with the same answers (within
each comparison's tolerance row; exactly for shapes, types, texts and exceptions).
All of the rung counts, not just its first failure: two mistakes that agree up to
the first wrong answer often part later.

Only then does the message name it. Two different mistakes that agree on every
one of those comparisons are indistinguishable on these inputs; the message
then names both. A mutant linked to a catalog ``differs`` entry is the
published code's own behaviour: the message then says what the original does,
why the kit differs and where to read more.

Recordings are cached in the process (keyed by mutant and rung) and on disk, under
the state folder (``.shakyo/cache/diagnosis``, keyed also by a hash of ``checks/``,
``reference/`` and ``solutions/`` and the library versions): a learner who fails the
same model check again waits for the mutant replays only once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from checks.catalog import SOLUTIONS_DIR, Exercise
from checks.observe import Observation, same_observation

_CACHE: dict[tuple[str, str], list[Observation] | None] = {}


def record_mutant(
    m, ex: Exercise, rung: str, limits, expect: list[Observation] | None = None
) -> list[Observation] | None:
    """The observations of mutant ``m`` replayed in recording mode up to ``rung`` (None if
    the mutant no longer applies to the solutions). With ``expect`` (the learner's
    observations), a replay that parts from them stops there: the shorter recording
    cannot match. Such a partial recording is cached too: it rules the mutant out for
    any later learner whose observations also part from it."""
    key = (m.label, rung)
    path = _disk_path(m.label, rung)
    entry = _CACHE.get(key) or _load(path)
    if entry is not None:
        complete, observations = entry
        if complete or (expect is not None and _rules_out(observations, expect)):
            _CACHE[key] = entry
            return observations
    observations, complete = _record(m, ex, rung, limits, expect)
    _CACHE[key] = (complete, observations)
    _store(path, complete, observations)
    return observations


def _rules_out(partial: list[Observation], learner: list[Observation]) -> bool:
    """Does a partial recording part from ``learner`` somewhere (so it cannot match)?"""
    return any(
        i >= len(learner) or not same_observation(learner[i], o) for i, o in enumerate(partial)
    )


_PROJECT_KEY: list[str] = []  # computed once per process


def _disk_path(label: str, rung: str) -> Path:
    import hashlib
    import sys

    import numpy
    import torch

    from checks.progress import state_dir
    from checks.runner import project_digest

    if not _PROJECT_KEY:
        files = "".join(f"{k}={v}\n" for k, v in sorted(project_digest().items()))
        versions = f"{sys.version}|{torch.__version__}|{numpy.__version__}"
        _PROJECT_KEY.append(hashlib.sha1((files + versions).encode()).hexdigest()[:16])
        _sweep(state_dir() / "cache" / "diagnosis", keep=_PROJECT_KEY[0])
    name = hashlib.sha1(f"{label}|{rung}".encode()).hexdigest()[:16]
    return state_dir() / "cache" / "diagnosis" / _PROJECT_KEY[0] / f"{name}.bin"


def _sweep(root: Path, keep: str) -> None:
    """Entries of other versions of the project are of no more use: removed."""
    import shutil

    try:
        for d in root.iterdir():
            if d.is_dir() and d.name != keep:
                shutil.rmtree(d, ignore_errors=True)
    except OSError:
        pass


def _load(path: Path) -> tuple[bool, list[Observation] | None] | None:
    """(complete, observations) from the disk cache; None when absent or unreadable."""
    from checks import wire

    try:
        complete, data = wire.loads(path.read_bytes())
        if data is None:
            return (bool(complete), None)
        return (
            bool(complete),
            [Observation(tuple(k), p, kind, wire.decode(v), t) for k, p, kind, v, t in data],
        )
    except Exception:  # noqa: BLE001 - a missing or damaged entry is recomputed
        return None


def _store(path: Path, complete: bool, observations: list[Observation] | None) -> None:
    """Write an entry atomically; a cache that cannot be written is skipped."""
    import os

    from checks import wire

    data = None
    if observations is not None:
        data = [(o.key, o.passed, o.kind, wire.encode(o.value), o.tol) for o in observations]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        tmp.write_bytes(wire.dumps((complete, data)))
        os.replace(tmp, path)
    except OSError:
        pass


def _record(m, ex: Exercise, rung: str, limits, expect) -> tuple[list | None, bool]:
    """(observations or None, whether the recording is complete)."""
    from checks.mutants import apply_mutant
    from checks.runner import lockstep
    from reference.errors import ConfigError

    with tempfile.TemporaryDirectory(prefix=f"shakyo-diagnose-{m.name}-") as tmp:
        dst = Path(tmp) / "impl"
        try:
            apply_mutant(m, SOLUTIONS_DIR, dst)
        except ConfigError:
            return None, True
        ladder = lockstep(ex, dst, limits, record=rung, expect=expect).ladder
        return ladder.observations, not ladder.mismatched


def matches(learner: list[Observation], mutant: list[Observation] | None) -> bool:
    """True when the recorded runs agree observation by observation (see above)."""
    if not mutant or all(o.passed for o in learner) or len(learner) != len(mutant):
        return False
    return all(same_observation(a, b) for a, b in zip(learner, mutant))


def known_mistakes(ex: Exercise, rung: str, learner: list[Observation], limits) -> list:
    """The mutants of ``ex`` failing at ``rung`` whose recording equals the learner's."""
    from checks.mutants import load_mutants

    if all(o.passed for o in learner):
        return []
    candidates = [m for m in load_mutants() if m.exercise == ex.id and m.expected_rung == rung]
    return [m for m in candidates if matches(learner, record_mutant(m, ex, rung, limits, learner))]


def explain(ex: Exercise, found: list) -> str:
    """The lines added to a failure message for the matched mutants ('' when none)."""
    lines = []
    for m in found:
        if m.differs:
            d = ex.differ(m.differs)
            lines += [
                "this is what the published code does, and the kit deliberately does not:",
                f"  the original: {d.original}",
                f"  the kit:      {d.kit}",
                f"  read more:    (site: exercises/{ex.id}/#differs-{d.id})",
            ]
        else:
            lines += [f"this matches a known mistake: {m.description}", f"  fix: {m.fix}"]
    if len(found) > 1:
        lines.insert(0, "these known mistakes give exactly these answers on the check's inputs:")
    return "\n".join(lines)


def clear_cache() -> None:
    _CACHE.clear()


def named_in(message: str) -> set[str]:
    """Labels ('exercise/name') of the mutants a failure message names."""
    import re

    from checks.mutants import load_mutants

    named = set(re.findall(r"this matches a known mistake: (.*)", message))
    out = {m.label for m in load_mutants() if m.description and m.description in named}
    out |= {m.label for m in load_mutants() if m.differs and f"#differs-{m.differs})" in message}
    return out
