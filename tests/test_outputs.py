"""reference/outputs.py: output paths checked before work, run folders removed on a user error."""

from __future__ import annotations

import pytest

from reference.errors import ConfigError, DataError
from reference.outputs import check_output_file, check_output_folder, removed_on_user_error


def test_a_run_folder_made_by_a_failed_run_is_removed_with_the_parents_it_made(tmp_path):
    run = tmp_path / "out" / "r"
    with pytest.raises(DataError), removed_on_user_error(run, keep_if="checkpoint.pth"):
        run.mkdir(parents=True)
        (run / "config.json").write_text("{}")
        raise DataError("a damaged tile")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("why", ["existed", "checkpoint", "bug", "nan-stop"])
def test_a_run_folder_worth_keeping_stays(tmp_path, why):
    run = tmp_path / "r"
    if why == "existed":
        run.mkdir()
    error = RuntimeError("our bug") if why == "bug" else DataError("bad input")
    if why == "nan-stop":
        error.result = {"best_epoch": 3}  # TrainingStopped carries what was trained
    with pytest.raises(type(error)), removed_on_user_error(run, keep_if="checkpoint.pth"):
        run.mkdir(exist_ok=True)
        if why == "checkpoint":
            (run / "checkpoint.pth").write_bytes(b"an epoch of work")
        raise error
    assert run.is_dir()


def test_output_file_checks_name_the_path_and_leave_nothing(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="--out .*: is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(ConfigError, match=r"f is a file, not a folder"):
        check_output_file(tmp_path / "f" / "s.csv")
    with pytest.raises(ConfigError, match=r"OUT x: .*f is a file"):
        check_output_folder(tmp_path / "f" / "runs", "OUT x")
    assert check_output_file(tmp_path / "new" / "s.csv") == tmp_path / "new" / "s.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # no probe, no folder made


def test_only_rank_0_removes_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    run = tmp_path / "r"
    with pytest.raises(DataError), removed_on_user_error(run, keep_if="checkpoint.pth"):
        run.mkdir()  # rank 0 is writing it
        raise DataError("bad input")
    assert run.is_dir()
