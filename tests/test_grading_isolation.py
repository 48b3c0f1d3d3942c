"""Hostile and broken learner code (issue 11): the grader survives, reports a sensible
status, grades the next exercise, and never passes wrong code.

Each case puts a few lines into a copy of the solutions: at the start of the `rle`
exercise's first function (``body``), or at the end of a module (``module``, run when the
file is imported). The check of that exercise, then the check of the next one, run as
`shakyo check` runs them. Budgets are generous except where a case must run out of its
budget: an endless loop times out with any budget, so no case depends on the machine's
speed.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import checks.runner
from checks.catalog import SOLUTIONS_DIR
from checks.runner import run_checks
from checks.sandbox import REFUSED
from shakyo.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    status: str
    says: str  # a piece of the message
    where: str = "body"  # body: start of rle_encode_less_memory; module: end of the file
    file: str = "submission.py"
    exercise: str = "rle"
    wrong: bool = False  # the case also breaks the answer (a wrong answer must never pass)
    budget: float = 30.0


LOOP_BUDGET = 3.0  # for the cases that never end: fires whatever the machine's speed

CASES = [
    Case("sys-exit-0", "import sys\nsys.exit(0)", "error", "your code called sys.exit(0)"),
    Case("os-exit-0", "import os\nos._exit(0)", "error", "your process exited with status 0"),
    Case("keyboard-interrupt", "raise KeyboardInterrupt", "error", "raised KeyboardInterrupt"),
    Case(
        "loop-catching-base-exception",
        "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n"
        "    except BaseException:\n        pass",
        "timeout",
        "its process was killed",
        budget=LOOP_BUDGET,
    ),
    Case(
        "signals-ignored",
        "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
        "timeout",
        "its process was killed",
        budget=LOOP_BUDGET,
    ),
    Case(
        "one-long-torch-op",  # one matmul of ~0.9 TFLOP: C code that never returns to Python
        "import torch\nx = torch.ones(7000, 7000)\nx = x @ x",
        "timeout",
        f"ran past its budget of {LOOP_BUDGET:g} s",
        budget=LOOP_BUDGET,
    ),
    Case(
        "prints-50-mb",
        "print('x' * 50_000_000)",
        "error",
        "wrote more than the 8 MB a check allows",
    ),
    Case(
        "segfault",
        "import ctypes\nctypes.string_at(0)",
        "error",
        "crashed with SIGSEGV (a segmentation fault)",
    ),
    Case("memory-hog", "x = bytearray(64 * 2**30)", "error", "ran out of memory"),
    Case(
        "killed",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "error",
        "your process was killed (SIGKILL",
    ),
    Case(
        "endless-recursion",
        "def f(n):\n    return f(n + 1)\nf(0)",
        "error",
        "[the frame above repeated",
    ),
    Case(
        "imports-the-reference",
        "from reference.submission import rle_encode_less_memory as f\nreturn f(img)",
        "error",
        f"{REFUSED}: `import reference.submission`",
    ),
    Case(
        "takes-the-reference-from-sys-modules",
        "import sys\nreturn sys.modules['reference.submission'].rle_encode_less_memory(img)",
        "error",
        f"{REFUSED}: reference.submission.rle_encode_less_memory is not available here",
    ),
    Case(
        "re-exports-the-reference-object",
        "import gc as _gc\n_gc.unfreeze()\ndef _theirs(o):\n    try:\n"
        "        return (o.__name__, o.__module__) == "
        "('rle_encode_less_memory', 'reference.submission')\n"
        "    except Exception:\n        return False\n"
        "rle_encode_less_memory = next(o for o in _gc.get_objects() if _theirs(o))",
        "failed",
        "is the reference's own object (reference/submission.py), not yours",
        where="module",
    ),
    Case(
        "imports-the-checks",
        "import checks.tolerances",
        "failed",
        f"{REFUSED}: `import checks.tolerances`",
        where="module",
    ),
    Case(
        "patches-the-reference-layernorm-and-the-tolerances",
        "import sys as _sys\n_t = _sys.modules['checks.tolerances']\n"
        "_t._ROWS[:] = [type(r)(r.name, 1e9, 1e9) for r in _t._ROWS]\n"
        "_sys.modules['reference.models.layers'].LayerNorm2d = LayerNorm2d\n",
        "failed",
        "this matches a known mistake: eps is added to the standard deviation",
        where="module",
        file="layers.py",
        exercise="layer-norm-2d",
        wrong=True,
    ),
    Case(
        "patches-the-comparisons",
        "import numpy, torch\nnumpy.array_equal = lambda *a, **k: True\n"
        "torch.equal = torch.allclose = lambda *a, **k: True\nreturn '1 2'",
        "failed",
        "got:      '1 2'",
        wrong=True,
    ),
    Case(
        "reads-the-expected-value-from-frames",
        "import inspect\nfor fr in inspect.stack():\n    for k, v in fr.frame.f_locals.items():\n"
        "        if k in ('expected', 'ref', 'want') and isinstance(v, str):\n"
        "            return v\nreturn ''",
        "failed",
        "got:      ''",
        wrong=True,
    ),
    Case(
        "closes-the-file-descriptors",
        "import os\nos.closerange(3, 1024)",
        "error",
        "lost its connection to the grader",
    ),
    Case(
        "writes-junk-to-the-channel",
        "import os, stat\nfor fd in range(3, 64):\n    try:\n"
        "        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n            os.write(fd, b'\\xff' * 64)\n"
        "    except OSError:\n        pass",
        "error",
        "not a message of the check",
    ),
    Case(
        "writes-a-project-file",
        "open(PROJECT_FILE, 'a').write('# 1e9\\n')",
        "error",
        "the project's file checks/tolerances.py changed during the check",
    ),
]
NEXT = {"rle": "f-th", "layer-norm-2d": "rle"}  # exercises in other files


def _impl(tmp_path: Path, case: Case, project_file: Path) -> Path:
    impl = tmp_path / "impl"
    shutil.copytree(SOLUTIONS_DIR, impl, ignore=shutil.ignore_patterns("__pycache__"))
    p = impl / case.file
    text = p.read_text().replace("PROJECT_FILE", repr(str(project_file)))
    code = case.code.replace("PROJECT_FILE", repr(str(project_file)))
    if case.file == "layers.py" and case.wrong:
        old = "torch.sqrt(s + self.eps)"
        assert text.count(old) == 1
        text = text.replace(old, "(torch.sqrt(s) + self.eps)")
    if case.where == "module":
        text += "\n" + code + "\n"
    else:
        marker = "    # BEGIN EXERCISE rle\n"
        assert text.count(marker) == 2
        i = text.index(marker) + len(marker)
        text = text[:i] + textwrap.indent(code, "    ") + "\n" + text[i:]
    p.write_text(text)
    return impl


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The grader's project files, a copy: a case that writes to them writes there."""
    root = tmp_path / "project"
    for top in checks.runner.WATCHED:
        (root / top).mkdir(parents=True)
    shutil.copy(Path(checks.runner.__file__).parent / "tolerances.py", root / "checks")
    monkeypatch.setattr(checks.runner, "REPO", root)
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_code_gets_its_status_and_the_next_exercise_is_graded(case, tmp_path, project):
    impl = _impl(tmp_path, case, project / "checks" / "tolerances.py")
    first, after = run_checks([case.exercise, NEXT[case.exercise]], impl=impl, timeout=case.budget)
    assert first.status == case.status, first.message
    assert case.says in first.message, first.message
    assert after.status == "passed", after.message
    if case.status == "timeout":  # killed soon after its budget, not left to run
        assert first.seconds < case.budget + 60


def test_a_process_the_learners_code_started_is_killed_with_it(tmp_path, project):
    pid_file = tmp_path / "pid"
    case = Case(
        "starts-a-process",
        f"import subprocess\np = subprocess.Popen(['sleep', '600'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))",
        "passed",
        "",
    )
    (r,) = run_checks(["rle"], impl=_impl(tmp_path, case, project / "x"))
    assert r.status == "passed", r.message
    pid = int(pid_file.read_text())
    # SIGKILL was sent to its process group; it is gone (or a zombie) within moments.
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    pytest.fail(f"the learner's child {pid} still runs 10 s after its check (state {state})")


@pytest.mark.parametrize("code", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_shakyo_check_exits_non_zero_when_the_learners_code_exits(code, tmp_path, capsys, project):
    impl = _impl(tmp_path, Case("exit", code, "error", ""), project / "x")
    assert main(["check", "rle", "f-th", "--impl", str(impl)]) == 1
    out = capsys.readouterr().out
    assert "rle" in out and "error" in out
    assert "f-th" in out and "passed" in out
    assert "1 passed" in out
