"""Time the checks as a learner meets them: fresh `shakyo` processes, and `shakyo watch`.

    .venv/bin/python benchmarks/checks.py                  # this working tree
    .venv/bin/python benchmarks/checks.py --before a8fa0b4 # and an older commit, same run

Measured, each in a fresh process (torch, fastai and the reference imported inside):

- all:    `shakyo check --impl solutions` (every available exercise), wall and CPU seconds
- single: `shakyo check rle --impl solutions` (and coat-ulstm, the slowest model check)
- watch:  `shakyo watch rle` on a copy of the solutions: the time from a save to the
          result line, median and worst of several saves

Targets (issue 11, on an idle 2-core machine): all <= 15 s, a single check <= 3 s, a watch
re-check of a non-model exercise <= 1 s. The load average is printed before and after:
on a busy machine wall times grow, CPU seconds (user + system of the process and its
children) much less; the work is sequential, so on an idle machine the wall time is
about the CPU time. ``--before REV`` checks REV out into a temporary git worktree and
times it in the same run, alternating with this tree, so both see the same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# on an idle machine; coat-ulstm (the slowest, a model) is shown without one
TARGETS = {"all": 15.0, "single rle": 3.0, "watch rle": 1.0}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), SHAKYO_STATE_DIR=tempfile.mkdtemp())
    env.pop("SHAKYO_DEBUG", None)
    return env


def _shakyo(tree: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from shakyo.cli import main; sys.exit(main())",
        *args,
    ]


def timed(tree: Path, *args: str) -> tuple[float, float, int]:
    """(wall s, CPU s of the process and its children, exit code) of one `shakyo` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    rc = subprocess.run(
        _shakyo(tree, *args), cwd=tree, env=_env(tree), capture_output=True
    ).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def watch_latencies(tree: Path, saves: int) -> list[float]:
    """Seconds from each save of submission.py to the `rle` result line of `shakyo watch`."""
    impl = Path(tempfile.mkdtemp(prefix="shakyo-bench-watch-")) / "impl"
    shutil.copytree(tree / "solutions", impl, ignore=shutil.ignore_patterns("__pycache__"))
    target = impl / "submission.py"
    proc = subprocess.Popen(
        _shakyo(tree, "watch", "rle", "--impl", str(impl)),
        cwd=tree,
        env=_env(tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    out: list[float] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("watching"):
                break
        for i in range(saves):
            time.sleep(1.0)  # a learner between two saves
            target.write_text(target.read_text() + f"\n# save {i}\n")
            saved = time.perf_counter()
            for line in proc.stdout:
                if line.startswith("rle "):
                    out.append(time.perf_counter() - saved)
                    break
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(impl.parent, ignore_errors=True)
    return out


def measure(tree: Path, saves: int) -> dict[str, tuple]:
    m: dict[str, tuple] = {}
    m["all"] = timed(tree, "check", "--impl", "solutions")
    m["single rle"] = timed(tree, "check", "rle", "--impl", "solutions")
    m["single coat-ulstm"] = timed(tree, "check", "coat-ulstm", "--impl", "solutions")
    lat = watch_latencies(tree, saves)
    m["watch rle"] = (statistics.median(lat), max(lat), len(lat)) if lat else (float("nan"),) * 3
    return m


def _row(label: str, what: str, v: tuple, target: float | None) -> str:
    if what.startswith("watch"):
        text = f"median {v[0]:5.2f} s, worst {v[1]:5.2f} s of {v[2]} saves"
        value = v[0]
    else:
        text = f"{v[0]:6.2f} s wall, {v[1]:6.2f} s CPU, exit {v[2]}"
        value = v[0]
    mark = ""
    if target is not None:
        mark = f"  (target <= {target:g} s: {'ok' if value <= target else 'over'})"
    return f"  {label:<8} {what:<18} {text}{mark}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REV", help="also time this git revision")
    parser.add_argument("--saves", type=int, default=5, help="saves timed in watch mode")
    args = parser.parse_args()

    trees = [("now", REPO)]
    worktree = None
    if args.before:
        worktree = Path(tempfile.mkdtemp(prefix="shakyo-bench-before-")) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(worktree), args.before],
            cwd=REPO,
            check=True,
        )
        trees.insert(0, (f"before ({args.before})", worktree))
    print(f"load average before: {load()}  ({os.cpu_count()} CPUs)")
    results = {}
    try:
        for _, tree in trees:
            timed(tree, "check", "rle", "--impl", "solutions")  # warm caches for both alike
        for label, tree in trees:
            results[label] = measure(tree, args.saves)
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO)
    print(f"load average after:  {load()}")
    for label, m in results.items():
        print(f"{label}:")
        for what, v in m.items():
            target = TARGETS.get(what)
            print(_row("", what, v, target if label == "now" else None))
    now = results["now"]
    if len(results) == 2:
        before = results[trees[0][0]]
        print("ratios now / before (wall):")
        for what in now:
            print(f"  {what:<18} {now[what][0] / before[what][0]:5.2f}")
    ok = all(v[2] == 0 for k, v in now.items() if not k.startswith("watch"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
