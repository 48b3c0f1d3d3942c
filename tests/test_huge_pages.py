"""reference.utils.huge_pages_environ / restart_with_huge_pages: `shakyo train` runs with 2 MB heap pages.

glibc reads GLIBC_TUNABLES when a process starts, so the training command re-executes
itself once with it set; the user's own GLIBC_TUNABLES or MALLOC_*_ settings win.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from reference.utils import HUGE_PAGES_TUNABLE, huge_pages_environ

ROOT = Path(__file__).resolve().parents[1]
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _glibc_at_least(major: int, minor: int) -> bool:
    libc, version = platform.libc_ver()
    if libc != "glibc":
        return False
    return tuple(int(v) for v in version.split(".")[:2]) >= (major, minor)


huge_pages_here = pytest.mark.skipif(
    sys.platform != "linux"
    or not _glibc_at_least(2, 35)
    or not THP.exists()
    or "[never]" in THP.read_text(),
    reason="needs Linux, glibc 2.35+ and transparent huge pages not switched off",
)

# Runs itself again through restart_with_huge_pages; each run prints one JSON line.
RESTART = """
import json, os, sys
from reference.utils import restart_with_huge_pages
print(json.dumps({"tunables": os.environ.get("GLIBC_TUNABLES"), "argv": sys.argv[1:]}), flush=True)
restart_with_huge_pages()
import numpy as np
a = np.ones(64 << 20, dtype=np.uint8)  # 64 MB from the heap, touched
huge = [l for l in open("/proc/self/smaps_rollup") if l.startswith("AnonHugePages:")]
print(json.dumps({"huge_kb": int(huge[0].split()[1]) if huge else 0, "sum": int(a[::4096].sum())}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_the_users_settings_win():
    base = {"PATH": "/usr/bin"}
    assert huge_pages_environ({**base, "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) is None
    assert huge_pages_environ({**base, "MALLOC_ARENA_MAX_": "2"}) is None


@huge_pages_here
def test_environment_adds_only_the_tunable():
    base = {"PATH": "/usr/bin", "HOME": "/tmp/x"}
    assert huge_pages_environ(base) == {**base, "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}


@huge_pages_here
def test_restarts_once_with_the_same_arguments_and_gets_huge_pages():
    p = subprocess.run(
        [sys.executable, "-c", RESTART, "train", "--x", "é"],
        cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(line) for line in p.stdout.strip().splitlines()]
    # first run: no tunable; the restarted run: the tunable, same argv; then no third run
    assert lines[0] == {"tunables": None, "argv": ["train", "--x", "é"]}
    assert lines[1] == {"tunables": HUGE_PAGES_TUNABLE, "argv": ["train", "--x", "é"]}
    assert len(lines) == 3 and lines[2]["sum"] == 16384
    assert lines[2]["huge_kb"] >= 2048, lines  # at least one 2 MB page backs the heap


@huge_pages_here
def test_user_tunables_mean_no_restart():
    p = subprocess.run(
        [sys.executable, "-c", RESTART],
        cwd=ROOT, env=_clean_env(GLIBC_TUNABLES="glibc.malloc.arena_max=4"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(line) for line in p.stdout.strip().splitlines()]
    assert lines[0]["tunables"] == "glibc.malloc.arena_max=4"
    assert len(lines) == 2  # ran once


@huge_pages_here
def test_shakyo_train_restarts_but_a_call_from_python_does_not(tmp_path):
    # `shakyo train` with a missing config: exit 2 after the restart, which leaves
    # the tunable in the environment the command runs in (seen by a sitecustomize).
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\nprint('TUNABLES', os.environ.get('GLIBC_TUNABLES'), file=sys.stderr)\n"
    )
    env = _clean_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    p = subprocess.run(
        [sys.executable, "-m", "shakyo.cli", "train", str(tmp_path / "missing.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr[-2000:]
    seen = [line for line in p.stderr.splitlines() if line.startswith("TUNABLES")]
    assert seen == ["TUNABLES None", f"TUNABLES {HUGE_PAGES_TUNABLE}"], p.stderr
    q = subprocess.run(
        [sys.executable, "-c",
         "import sys; from shakyo.cli import main; sys.exit(main(['train', sys.argv[1]]))",
         str(tmp_path / "missing.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert q.returncode == 2
    assert [line for line in q.stderr.splitlines() if line.startswith("TUNABLES")] == [
        "TUNABLES None"
    ]


def test_an_interpreter_that_cannot_start_again_means_no_restart(monkeypatch):
    import reference.utils as utils

    calls = []

    def refuse(*args):
        calls.append(args)
        raise PermissionError("not executable")

    monkeypatch.setattr(utils, "huge_pages_environ", lambda: {"GLIBC_TUNABLES": "x"})
    monkeypatch.setattr(utils.os, "execve", refuse)
    assert utils.restart_with_huge_pages() is None  # returns: training goes on without
    assert len(calls) == 1 and calls[0][2] == {"GLIBC_TUNABLES": "x"}
