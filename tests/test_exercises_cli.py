"""`shakyo list / check / watch / hint / progress / reset / solution` driven in-process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from checks import progress
from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR, load_catalog
from checks.stubs import generated_stub, stub_files
from shakyo.cli import main


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("SHAKYO_STATE_DIR", str(d))
    return d


@pytest.fixture
def learner(tmp_path) -> Path:
    """A learner's exercises folder, fresh from the stubs."""
    d = tmp_path / "exercises"
    d.mkdir()
    shutil.copy(EXERCISES_DIR / "__init__.py", d / "__init__.py")
    for f in stub_files():
        (d / f).write_text(generated_stub(f))
    return d


def _solve(learner: Path, file: str) -> None:
    shutil.copy(SOLUTIONS_DIR / file, learner / file)


def test_list_shows_every_exercise_in_order_and_what_is_next(learner, capsys):
    assert main(["list", "--impl", str(learner)]) == 0
    out = capsys.readouterr().out
    positions = [out.index(f" {e.id} ") for e in load_catalog()]
    assert positions == sorted(positions)
    assert re.search(r"ash-false-color +data\.py +todo  <- next", out)
    assert "next: ash-false-color" in out and "shakyo check ash-false-color" in out


def test_check_on_stubs_is_a_friendly_all_todo_table(learner, capsys):
    assert main(["check", "--impl", str(learner)]) == 1
    out = capsys.readouterr().out
    assert "exercise" in out and "status" in out
    assert "every exercise is still a stub: start with `ash-false-color`" in out


def test_check_json_and_exit_code(learner, capsys):
    _solve(learner, "layers.py")
    assert main(["check", "layer-norm-2d", "rle", "--impl", str(learner), "--json"]) == 1
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["id"], r["status"]) for r in results] == [
        ("layer-norm-2d", "passed"),
        ("rle", "todo"),
    ]
    assert set(results[0]) == {"id", "status", "rung", "message", "seconds"}
    assert main(["check", "layer-norm-2d", "--impl", str(learner), "--json"]) == 0
    # the learner's progress is recorded
    assert progress.load()["layer-norm-2d"].status == "passed"


def test_check_prints_the_failure_message(learner, capsys):
    _solve(learner, "layers.py")
    p = learner / "layers.py"
    p.write_text(p.read_text().replace("(x - u).pow(2).mean(1", "(x - u).pow(2).sum(1"))
    assert main(["check", "layer-norm-2d", "--impl", str(learner)]) == 1
    out = capsys.readouterr().out
    assert "--- layer-norm-2d: failed at the values rung" in out
    assert "max |got - expected|" in out
    assert progress.load()["layer-norm-2d"].rung == "values"


def test_unknown_exercise_is_one_line_exit_2(capsys):
    assert main(["check", "layer-norm"]) == 2
    err = capsys.readouterr().err
    assert "unknown exercise `layer-norm`" in err and "did you mean `layer-norm-2d`" in err


def test_hints_come_one_after_the_other(capsys):
    assert main(["hint", "layer-norm-2d"]) == 0
    assert "hint 1 of 3" in capsys.readouterr().out
    assert main(["hint", "layer-norm-2d"]) == 0
    assert "hint 2 of 3" in capsys.readouterr().out
    assert main(["hint", "layer-norm-2d", "3"]) == 0
    out = capsys.readouterr().out
    assert "hint 3 of 3" in out and "weight[:, None, None]" in out and "(more:" not in out
    assert main(["hint", "layer-norm-2d", "9"]) == 2
    assert progress.load()["layer-norm-2d"].hints_seen == 3


def test_solution_is_shown_only_after_a_pass(learner, capsys):
    assert main(["solution", "layer-norm-2d"]) == 2
    assert "has not passed yet" in capsys.readouterr().err
    assert main(["solution", "layer-norm-2d", "--force"]) == 0
    assert "torch.sqrt(s + self.eps)" in capsys.readouterr().out
    _solve(learner, "layers.py")
    assert main(["check", "layer-norm-2d", "--impl", str(learner)]) == 0
    assert main(["solution", "layer-norm-2d"]) == 0
    assert "LayerNorm2d.forward" in capsys.readouterr().out


def test_reset_restores_one_exercise_of_a_shared_file(learner, state_dir, capsys):
    _solve(learner, "data.py")
    assert main(["reset", "tile-layout", "--impl", str(learner)]) == 0
    text = (learner / "data.py").read_text()
    assert 'raise NotImplementedError("tile-layout: write tile_image' in text
    assert "np.clip(np.stack([r, g, b], axis=2), 0, 1)" in text  # ash-false-color kept
    backups = list((state_dir / "backups").iterdir())
    assert len(backups) == 1 and "tile_image" in backups[0].read_text()
    # markers deleted: the whole file comes back
    (learner / "layers.py").write_text("print('my own file')\n")
    assert main(["reset", "layer-norm-2d", "--impl", str(learner)]) == 0
    assert (learner / "layers.py").read_text() == generated_stub("layers.py")
    assert "the whole file" in capsys.readouterr().out


def test_reset_undo_puts_back_the_learners_code_of_that_exercise_only(learner, state_dir, capsys):
    _solve(learner, "data.py")
    mine = (
        (learner / "data.py")
        .read_text()
        .replace(
            "return (data - bounds[0]) / (bounds[1] - bounds[0])",
            "return (data - bounds[0]) / (bounds[1] - bounds[0])  # my ash-false-color",
        )
    )
    (learner / "data.py").write_text(mine)
    assert main(["reset", "tile-layout", "--impl", str(learner)]) == 0
    assert "`shakyo reset tile-layout --undo` puts it back" in capsys.readouterr().out
    # the learner goes on with ash-false-color after the reset...
    text = (learner / "data.py").read_text().replace("# my ash-false-color", "# edited later")
    (learner / "data.py").write_text(text)
    assert main(["reset", "tile-layout", "--undo", "--impl", str(learner)]) == 0
    back = (learner / "data.py").read_text()
    assert "self.fnames = sorted(str(p) for p in self.path.glob" in back  # tile-layout is back
    assert "# edited later" in back  # ...and that edit survives the undo
    assert "as it was before the reset of" in capsys.readouterr().out
    # the undo can itself be undone (the stub comes back), and with no backup left: one line
    assert main(["reset", "tile-layout", "--undo", "--impl", str(learner)]) == 0
    assert (
        'raise NotImplementedError("tile-layout: write tile_image'
        in (learner / "data.py").read_text()
    )
    capsys.readouterr()
    assert main(["reset", "rle", "--undo", "--impl", str(learner)]) == 2
    assert "no backup of" in capsys.readouterr().err


def test_a_pass_stays_a_pass_when_a_later_run_fails(learner, capsys):
    _solve(learner, "submission.py")
    assert main(["check", "rle", "--impl", str(learner)]) == 0
    broken = (learner / "submission.py").read_text().replace("img.T.flatten()", "img.flatten()")
    (learner / "submission.py").write_text(broken)
    assert main(["check", "rle", "--impl", str(learner)]) == 1
    capsys.readouterr()
    assert main(["progress", "--impl", str(learner)]) == 0
    out = capsys.readouterr().out
    assert "1 of " in out and re.search(
        r"rle +passed \d{4}-\d\d-\d\d; last run failed \(values\)", out
    )
    assert main(["list", "--impl", str(learner)]) == 0
    assert re.search(
        r"rle +submission\.py +passed \d{4}-\d\d-\d\d; last run failed", capsys.readouterr().out
    )
    assert main(["solution", "rle"]) == 0  # it has passed once


def test_progress_files_written_before_the_passed_column_still_read(state_dir):
    (state_dir).mkdir(parents=True, exist_ok=True)
    progress.progress_path().write_text(
        "# old header\nrle\tpassed\tvalues\t1\t2026-11-27T22:00:00Z\nfpn\tfailed\tvalues\t0\t2026-11-28T01:00:00Z\n"
    )
    entries = progress.load()
    assert entries["rle"].passed_at == "2026-11-27T22:00:00Z" and not entries["fpn"].ever_passed


def test_piping_into_head_ends_quietly():
    proc = subprocess.run(
        f"{sys.executable} -m shakyo.cli list --impl solutions | head -n 1",
        shell=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.stdout.count("\n") == 1 and proc.stderr == ""


def test_progress_summarises(learner, capsys):
    _solve(learner, "submission.py")
    main(["check", "rle", "--impl", str(learner)])
    capsys.readouterr()
    assert main(["progress", "--impl", str(learner)]) == 0
    out = capsys.readouterr().out
    assert "1 of " in out and "exercises passed" in out
    assert "progress.txt" in out
    assert (progress.progress_path()).read_text().count("rle\tpassed\tvalues") == 1


def test_watch_rechecks_on_save_and_moves_on(learner, capsys):
    def save_solution():
        # what a learner's editor does: write the file
        _solve(learner, "data.py")

    timer = threading.Timer(1.0, save_solution)
    timer.start()
    try:
        rc = main(["watch", "--impl", str(learner), "--interval", "0.1", "--max-iterations", "40"])
    finally:
        timer.cancel()
    assert rc == 0
    out = capsys.readouterr().out
    first = out.index("shakyo check ash-false-color")
    assert "todo" in out[first:]
    assert out.index("passed") > first
    # after ash-false-color and tile-layout pass, the next exercise becomes current
    assert "shakyo check layer-norm-2d" in out


def test_watch_once(learner, capsys):
    assert main(["watch", "--once", "--impl", str(learner)]) == 1
    assert "shakyo check ash-false-color" in capsys.readouterr().out


def test_watch_on_the_solutions_walks_the_whole_ladder_once(capsys):
    assert (
        main(["watch", "--impl", "solutions", "--max-iterations", "1", "--interval", "0.01"]) == 0
    )
    out = capsys.readouterr().out
    available = [e.id for e in load_catalog() if e.available]
    assert [ln.split()[-1] for ln in out.splitlines() if "shakyo check" in ln] == available
    assert "every available exercise passed" in out


def test_hint_reads_the_catalogs_differs_list(capsys):
    from checks.catalog import get_exercise

    ex = get_exercise("over9000")
    assert main(["hint", "over9000", "1"]) == 0
    assert "`shakyo hint over9000 --differs`" in capsys.readouterr().out
    assert main(["hint", "over9000", "--differs"]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # the texts are wrapped for the terminal
    for d in ex.differs:
        assert f"- {d.id} (" in out and " ".join(d.original.split()) in flat
        assert " ".join(d.kit.split()) in flat
        assert f"(site: exercises/over9000/#differs-{d.id})" in out
    assert "the kit departs on purpose" in out and "a copy of the original passes" in out
