"""The known-mistake diagnosis names a mistake however it is written, and never a wrong one."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from checks.catalog import SOLUTIONS_DIR, load_catalog
from checks.diagnosis import named_in as named_mistakes
from checks.mutants import load_mutants
from checks.runner import run_check

VARIANTS = tomllib.loads(
    (Path(__file__).parent / "data" / "mistake_variants.toml").read_text(encoding="utf-8")
)["variant"]
AVAILABLE = {e.id for e in load_catalog() if e.available}


def _label(v: dict) -> str:
    return f"{v['exercise']}/{v['mutant'] or 'new-mistake'}: {v['new'][:40]}"


@pytest.mark.parametrize("variant", VARIANTS, ids=[_label(v) for v in VARIANTS])
def test_a_differently_written_mistake_is_named_and_a_new_one_is_not(variant, tmp_path):
    impl = tmp_path / "impl"
    shutil.copytree(SOLUTIONS_DIR, impl, ignore=shutil.ignore_patterns("__pycache__"))
    path = impl / variant["file"]
    text = path.read_text(encoding="utf-8")
    assert text.count(variant["old"]) == 1, variant["old"]
    path.write_text(text.replace(variant["old"], variant["new"]), encoding="utf-8")
    r = run_check(variant["exercise"], impl)
    assert r.status == "failed", r.message
    expected = {f"{variant['exercise']}/{variant['mutant']}"} if variant["mutant"] else set()
    assert named_mistakes(r.message) == expected, r.message


def test_every_available_exercise_has_a_differently_written_variant():
    named = {v["exercise"] for v in VARIANTS if v["mutant"]}
    assert AVAILABLE <= named, sorted(AVAILABLE - named)


def test_the_variants_name_real_mutants():
    labels = {m.label for m in load_mutants()}
    for v in VARIANTS:
        if v["mutant"]:
            assert f"{v['exercise']}/{v['mutant']}" in labels


def test_a_passing_check_names_no_mistake():
    r = run_check("layer-norm-2d", "solutions")
    assert r.status == "passed" and r.message == ""


def test_mutant_recordings_are_cached_on_disk_and_a_damaged_entry_is_recomputed(
    tmp_path, monkeypatch
):
    from checks import diagnosis
    from checks.catalog import get_exercise

    monkeypatch.setenv("SHAKYO_STATE_DIR", str(tmp_path / "state"))
    replays = []
    real = diagnosis._record
    monkeypatch.setattr(diagnosis, "_record", lambda *a: replays.append(a[0].label) or real(*a))
    m = next(m for m in load_mutants() if m.label == "rle/row-major")
    ex = get_exercise("rle")
    run_check(ex, SOLUTIONS_DIR)  # imports the check and the reference, as a check does
    from checks.runner import memory_mb
    from checks.sandbox import Limits

    limits = Limits(seconds=60, memory_mb=memory_mb())

    def record():
        diagnosis.clear_cache()
        return diagnosis.record_mutant(m, ex, m.expected_rung, limits)

    stale = tmp_path / "state" / "cache" / "diagnosis" / "0123456789abcdef"
    stale.mkdir(parents=True)
    (stale / "entry.bin").write_bytes(b"of an older version of the project")
    diagnosis._PROJECT_KEY.clear()
    first = record()
    assert replays == ["rle/row-major"] and first and not all(o.passed for o in first)
    assert not stale.exists()  # entries of other versions are swept
    (entry,) = (tmp_path / "state" / "cache" / "diagnosis").rglob("*.bin")
    again = record()
    assert replays == ["rle/row-major"]  # read from disk, not replayed
    assert [(o.key, o.passed, o.value) for o in again] == [
        (o.key, o.passed, o.value) for o in first
    ]
    entry.write_bytes(b"\x80not a cache entry")
    assert [o.key for o in record()] == [o.key for o in first]
    assert replays == ["rle/row-major"] * 2  # the damaged entry was recomputed
