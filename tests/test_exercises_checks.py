"""CI: every solution passes its check, every stub reports todo, failures say where and how much."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR, load_catalog
from checks.impl import Impl
from checks.regions import make_stub, reset_regions
from checks.runner import run_check, run_checks
from checks.stubs import generated_stub, stub_files

AVAILABLE = [e.id for e in load_catalog() if e.available]


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory) -> Path:
    """Freshly generated stubs (not the learner's exercises/, which may hold their work)."""
    d = tmp_path_factory.mktemp("stubs")
    shutil.copy(EXERCISES_DIR / "__init__.py", d / "__init__.py")
    for f in stub_files():
        (d / f).write_text(generated_stub(f))
    return d


def _copy_solutions(tmp_path: Path) -> Path:
    d = tmp_path / "impl"
    shutil.copytree(SOLUTIONS_DIR, d, ignore=shutil.ignore_patterns("__pycache__"))
    return d


def test_every_solution_passes():
    results = run_checks(impl="solutions")
    assert [r.id for r in results] == AVAILABLE
    bad = [(r.id, r.status, r.rung, r.message) for r in results if r.status != "passed"]
    assert not bad


def test_every_stub_imports_and_reports_todo(stub_dir):
    imp = Impl(stub_dir)
    for f in stub_files():
        imp.module(f)  # a stub must import: only function bodies were replaced
    imp.close()
    results = run_checks(impl=stub_dir)
    assert {r.status for r in results} == {"todo"}
    assert all("BEGIN EXERCISE" in r.message for r in results)


def test_eps_outside_the_square_root_fails_at_values_and_names_the_module(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "layers.py"
    p.write_text(p.read_text().replace("torch.sqrt(s + self.eps)", "(torch.sqrt(s) + self.eps)"))
    r = run_check("layer-norm-2d", impl)
    assert (r.status, r.rung) == ("failed", "values")
    assert "LayerNorm2d(7)(x)" in r.message  # what was called
    assert "max |got - expected| = " in r.message and "close values:" in r.message
    assert "tolerance 'forward': atol 1e-05, rtol 0.0001" in r.message
    assert "first divergence (forward): `(model)` (LayerNorm2d)" in r.message


def test_an_exception_in_learner_code_is_an_error_trimmed_to_the_learner_file(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "layers.py"
    p.write_text(
        p.read_text().replace(
            "u = x.mean(1, keepdim=True)", "u = x.mean(1, keepdim=True).view(-1, 5)"
        )
    )
    r = run_check("layer-norm-2d", impl)
    assert (r.status, r.rung) == ("error", "shapes")
    assert "while running LayerNorm2d(7)(x)" in r.message
    assert f'File "{p}", line' in r.message and "in forward" in r.message
    assert "RuntimeError" in r.message
    assert "checks/" not in r.message and "torch/" not in r.message  # only the learner's frames


def test_an_endless_loop_times_out(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "layers.py"
    p.write_text(
        p.read_text().replace("u = x.mean(1, keepdim=True)", "while True:\n            pass")
    )
    r = run_check("layer-norm-2d", impl, timeout=2.0)
    assert r.status == "timeout", r.message
    assert "budget of 2 s" in r.message and "its process was killed" in r.message
    # Where the budget ran out depends on the machine's speed (on a very busy one, before
    # the first call); when it was in the loop, the message names the call.
    assert r.rung in ("import", "signature", "shapes")
    if r.rung == "shapes":
        assert "while running LayerNorm2d(" in r.message
    assert r.seconds < 2.0 + 60  # killed, not left to run


def test_an_endless_loop_at_import_times_out_at_the_import_rung(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "layers.py"
    p.write_text(p.read_text() + "\nwhile True:\n    pass\n")
    r = run_check("layer-norm-2d", impl, timeout=2.0)
    assert (r.status, r.rung) == ("timeout", "import"), r.message


def test_an_exercise_waiting_for_an_earlier_stub_is_todo(tmp_path):
    impl = _copy_solutions(tmp_path)
    p = impl / "data.py"
    solution = p.read_text()
    p.write_text(reset_regions(solution, make_stub(solution), "ash-false-color"))
    r = run_check("tile-layout", impl)
    assert r.status == "todo"
    assert "needs `ash-false-color` first" in r.message


def test_an_unavailable_exercise_is_reported_not_run():
    ex = next((e for e in load_catalog() if not e.available), None)
    if ex is None:
        pytest.skip("every exercise is available")
    r = run_check(ex, "solutions")
    assert r.status == "unavailable"
