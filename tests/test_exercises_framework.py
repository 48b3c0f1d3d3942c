"""The exercise framework itself: catalog, regions, stub generation, reset, graduation."""

from __future__ import annotations

import shutil

import pytest

from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR, load_catalog
from checks.graduation import NEEDED, components, missing_exercises
from checks.mutants import load_mutants
from checks.regions import exercise_state, find_regions, make_stub, region_texts, reset_regions
from checks.rungs import resolve_check
from checks.stubs import generated_stub, stub_files
from reference.errors import ConfigError

ISSUE_ORDER = [
    "ash-false-color",
    "tile-layout",
    "layer-norm-2d",
    "pixel-shuffle-icnr",
    "unet-block",
    "fpn",
    "lstm-block",
    "coat-ulstm",
    "lovasz",
    "loss-comb",
    "f-th",
    "over9000",
    "one-cycle",
    "train-loop",
    "train-script",
    "rle",
]

SOLUTION = """import torch


class Thing:
    def __init__(self, n):
        # BEGIN EXERCISE demo-one
        self.n = n
        # END EXERCISE demo-one

    def forward(self, x):
        y = x + 1
        # BEGIN EXERCISE demo-two
        return y * self.n
        # END EXERCISE demo-two
"""


def test_catalog_lists_the_issue_exercises_in_order():
    assert [e.id for e in load_catalog()] == ISSUE_ORDER


def test_every_available_exercise_is_complete():
    mutants = load_mutants()
    for ex in load_catalog():
        if not ex.available:
            continue
        assert 2 <= len(ex.hints) <= 3, ex.id
        text = (SOLUTIONS_DIR / ex.file).read_text()
        assert any(r.id == ex.id for r in find_regions(text)), (
            f"{ex.id}: no region in solutions/{ex.file}"
        )
        assert callable(resolve_check(ex)), ex.id
        assert sum(m.exercise == ex.id for m in mutants) >= 2, f"{ex.id}: fewer than 2 mutants"


def test_solutions_import_neither_the_reference_nor_themselves_by_name():
    """Solutions are independent of reference/, and import each other relatively
    (`from .layers import ...`) so that the stubs import the learner's files."""
    for f in SOLUTIONS_DIR.glob("*.py"):
        for line in f.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                root = words[1].split(".")[0]
                assert root not in ("reference", "solutions", "exercises"), f"{f.name}: {line}"


def test_regenerating_stubs_keeps_a_file_holding_learner_code(tmp_path):
    from checks.stubs import write_stubs

    for f in stub_files():
        (tmp_path / f).write_text(generated_stub(f) + "# stale\n")
    mine = stub_files()[0]
    (tmp_path / mine).write_text((SOLUTIONS_DIR / mine).read_text())
    written, kept = write_stubs(tmp_path)
    assert kept == [mine] and set(written) == set(stub_files()) - {mine}
    assert (tmp_path / mine).read_text() == (SOLUTIONS_DIR / mine).read_text()
    written, kept = write_stubs(tmp_path, force=True)
    assert written == [mine] and (tmp_path / mine).read_text() == generated_stub(mine)


def test_make_stub_replaces_bodies_and_keeps_markers():
    stub = make_stub(SOLUTION)
    assert "self.n = n" not in stub and "return y * self.n" not in stub
    assert (
        'raise NotImplementedError("demo-one: write Thing.__init__ (shakyo hint demo-one)")' in stub
    )
    assert (
        'raise NotImplementedError("demo-two: write Thing.forward (shakyo hint demo-two)")' in stub
    )
    assert stub.count("# BEGIN EXERCISE") == 2 and "y = x + 1" in stub
    assert make_stub(stub) == stub  # a stub is its own stub


def test_region_outside_a_function_is_refused():
    with pytest.raises(ConfigError, match="inside a function"):
        find_regions("# BEGIN EXERCISE x\na = 1\n# END EXERCISE x\n")
    with pytest.raises(ConfigError, match="never closed"):
        find_regions("def f():\n    # BEGIN EXERCISE x\n    pass\n")


def test_reset_restores_one_exercise_and_keeps_the_other(tmp_path):
    stub = make_stub(SOLUTION)
    learner = stub.replace(
        '        raise NotImplementedError("demo-one: write Thing.__init__ (shakyo hint demo-one)")',
        "        self.n = 2 * n",
    ).replace(
        '        raise NotImplementedError("demo-two: write Thing.forward (shakyo hint demo-two)")',
        "        return y",
    )
    out = reset_regions(learner, stub, "demo-two")
    assert "self.n = 2 * n" in out and "return y\n" not in out
    assert region_texts(out, "demo-two") == region_texts(stub, "demo-two")
    # Markers deleted by the learner: no partial reset, the caller restores the whole file.
    assert reset_regions(learner.replace("# END EXERCISE demo-two", ""), stub, "demo-two") is None
    p = tmp_path / "f.py"
    p.write_text(out)
    assert exercise_state(p, "demo-two") == "todo" and exercise_state(p, "demo-one") == "started"


def test_committed_stubs_equal_the_generated_ones():
    """exercises/*.py == stubs generated from solutions/*.py. A learner's own code in
    the regions is put back to the stub first, so this holds in a learner's clone too."""
    assert stub_files(), "no stub files"
    for f in stub_files():
        path = EXERCISES_DIR / f
        assert path.is_file(), f"exercises/{f} is missing: run `python -m checks.stubs`"
        committed = path.read_text()
        expected = generated_stub(f)
        for rid in {r.id for r in find_regions(committed)}:
            committed = reset_regions(committed, expected, rid) or committed
        assert committed == expected, f"exercises/{f} is stale: run `python -m checks.stubs`"


def test_graduation_refuses_todo_exercises(tmp_path):
    impl = tmp_path / "impl"
    shutil.copytree(SOLUTIONS_DIR, impl, ignore=shutil.ignore_patterns("__pycache__"))
    for f in stub_files():
        (impl / f).write_text(generated_stub(f))
    unavailable, todo = missing_exercises(impl)
    assert set(unavailable) | set(todo) == set(NEEDED)
    with pytest.raises(ConfigError) as e:
        components(str(impl))
    named = unavailable or todo
    assert all(i in str(e.value) for i in named)


def test_graduation_gives_the_trainer_its_table():
    unavailable, todo = missing_exercises("solutions")
    assert todo == []
    if unavailable:
        pytest.skip(f"not in this version yet: {unavailable}")
    comps = components("solutions")
    assert set(comps) == {"get_model", "losses", "metrics", "opt_func"}
    assert comps.metric_factory().name == "f_th"
    with pytest.raises(ConfigError, match="implements only"):
        comps.model_factory("ResNet18_U")
