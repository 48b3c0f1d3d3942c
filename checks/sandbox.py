"""The learner's process: a forked child that runs the learner's side of a check.

The grader (this process, warm: torch, fastai and the reference already imported)
forks one child per check. The child

- gets its own working directory (a fresh temporary folder), its stdout and stderr
  redirected to files there (capped by RLIMIT_FSIZE: the grader shows their head and
  tail), an address-space cap (RLIMIT_AS: the grader's current size plus
  ``Limits.memory_mb``), no core files, one torch thread;
- loses the reference: the reference's modules are replaced in ``sys.modules`` (and in
  the check modules' globals) by :class:`Forbidden` stand-ins, and an import hook refuses
  ``reference``, ``checks`` and ``solutions`` to the learner's files ("exercises are
  graded without the reference");
- imports the learner's file, climbs the ladder on the learner's side
  (:class:`checks.ladder.Ladder`, side ``learner``) and sends what the learner's code
  returns over a socket (:mod:`checks.wire`), then ends with ``os._exit``.

The grader climbs the same ladder on its side in lockstep and makes the verdict. It
kills the child's whole process group with SIGKILL when the budget (plus a grace) runs
out, whatever the learner's code does with signals or exceptions.
"""

from __future__ import annotations

import builtins
import gc
import os
import queue
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks import wire

REPO = Path(__file__).resolve().parent.parent
# Reference modules the learner's side may keep: plumbing, no answers. reference.diagnose
# records the learner's activations for the first-divergence report.
_ALLOWED_REFERENCE = {"reference", "reference.errors", "reference.utils", "reference.diagnose"}
_GUARDED = ("reference", "checks", "solutions", "shakyo", "sitegen")
REFUSED = "exercises are graded without the reference"
LOST_CHANNEL = 70  # the learner's process exit status when its channel to the grader broke


@dataclass(frozen=True)
class Limits:
    seconds: float  # the check's budget
    grace: float = 1.0  # after the budget, before SIGKILL
    memory_mb: int = 4096  # address space the learner's process may add
    output_bytes: int = 8 << 20  # per captured stream


class ChildGone(Exception):
    """The learner's process ended (or broke the channel) before the grader was done."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BudgetExceeded(Exception):
    def __init__(self, what: str | None) -> None:
        super().__init__(what or "")
        self.what = what


class Forbidden:
    """A reference module, as the learner's process sees it: nothing to take."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __getattr__(self, attr: str) -> Any:
        raise ImportError(f"{REFUSED}: {self.__name}.{attr} is not available here")

    def __repr__(self) -> str:
        return f"<{self.__name}: {REFUSED}>"


# ---------------------------------------------------------------- grader side
class GraderChannel:
    """The grader's end: a reader thread drains the child's messages (so neither side
    blocks the other on a full socket), ``receive`` waits for the next one until the
    deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.inbox: queue.Queue = queue.Queue()
        self.ended: Any = None  # the child's closing message, or the reason it is gone
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = wire.recv(self.sock)
            except EOFError as e:
                kind = "garbled" if "stream is broken" in str(e) else "eof"
                self.inbox.put((kind, str(e)))
                return
            except OSError as e:
                self.inbox.put(("eof", str(e)))
                return
            except Exception as e:  # noqa: BLE001 - not a message of the check: the stream is broken
                self.inbox.put(("garbled", f"{type(e).__name__}: {e}"))
                return
            if not isinstance(message, tuple) or not message:
                self.inbox.put(("garbled", "a message that is not a tuple"))
                return
            self.inbox.put(message)
            if message[0] in ("end", "crash"):
                return

    def send(self, message: Any) -> None:
        try:
            wire.send(self.sock, message)
        except OSError as e:
            raise ChildGone(f"the channel broke ({e.strerror or e})") from None

    def _next(self, what: str | None) -> Any:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BudgetExceeded(what)
        try:
            message = self.inbox.get(timeout=left)
        except queue.Empty:
            raise BudgetExceeded(what) from None
        if message[0] in _CLOSING:
            self.ended = message
            raise ChildGone(_ended_reason(message))
        return message

    def receive(self, seq: int, what: str) -> Any:
        message = self._next(what)
        if message[0] not in ("ok", "raise") or message[1] != seq:
            raise RuntimeError(
                f"internal: the two sides of the check went out of step at {what!r} "
                f"(got {message[0]} #{message[1]}, expected call #{seq})"
            )
        return message

    def receive_kind(self, kind: str) -> Any:
        message = self._next(None)
        if message[0] != kind:
            raise RuntimeError(f"internal: expected a {kind} message, got {message[0]}")
        return message

    def drain(self, timeout: float) -> Any:
        """Wait (at most ``timeout``) for the child's closing message; None if none came."""
        end = time.monotonic() + timeout
        while self.ended is None:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                return None
            if message[0] in _CLOSING:
                self.ended = message
        return self.ended


_CLOSING = ("end", "crash", "eof", "garbled")
GARBLED = (
    "your process sent the grader something that is not a message of the check (does your "
    "code write to a socket or file descriptor it did not open?)"
)


def _ended_reason(message: Any) -> str:
    if message[0] == "garbled":
        return GARBLED
    if message[0] == "crash":
        return f"the check broke in your process:\n{message[1]}"
    if message[0] == "eof":
        return "your process ended before the check was done"
    return f"your process stopped early ({message[1]})"


@dataclass
class ChildRun:
    """The learner's process of one check, from the grader's side."""

    pid: int
    channel: GraderChannel
    workdir: Path
    started: float
    status: int | None = None  # os.waitpid status once reaped
    output_cap: int = 8 << 20  # bytes per captured stream (RLIMIT_FSIZE)

    def kill(self) -> None:
        for target in (
            lambda: os.killpg(self.pid, signal.SIGKILL),
            lambda: os.kill(self.pid, signal.SIGKILL),
        ):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass

    def reap(self, timeout: float) -> int | None:
        """The exit status (waits at most ``timeout``; None if still running)."""
        end = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            if time.monotonic() >= end:
                return None
            time.sleep(0.01)
        return self.status

    def finish(self) -> int | None:
        """End the child (wait a moment for a clean end, then SIGKILL) and reap it."""
        self.channel.drain(0.5)
        if self.reap(0.5) is None:
            self.kill()
            self.reap(5.0)
        self.kill()  # anything it started in its process group
        try:
            self.channel.sock.close()
        except OSError:
            pass
        return self.status

    def output(self, limit: int = 1500) -> str:
        """The head and tail of what the learner's code printed ('' when nothing)."""
        parts = []
        for name in ("stdout", "stderr"):
            path = self.workdir / f"{name}.txt"
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if not size:
                continue
            with open(path, "rb") as f:
                head = f.read(limit)
                tail = b""
                if size > 2 * limit:
                    f.seek(size - limit)
                    tail = f.read(limit)
                elif size > limit:
                    tail = f.read()
            text = _lines(head)
            if size > 2 * limit:
                text += f"\n[... {size - 2 * limit:,} bytes left out ...]\n" + _lines(tail)
            else:
                text += _lines(tail)
            capped = ", the cap: the rest was not written" if size >= self.output_cap else ""
            parts.append(f"your code printed on {name} ({size:,} bytes{capped}):\n{text.rstrip()}")
        return "\n".join(parts)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_child(child_main, limits: Limits) -> ChildRun:
    """Fork; the child runs ``child_main(channel_socket, workdir, limits)`` and never returns."""
    parent_sock, child_sock = socket.socketpair()
    workdir = Path(tempfile.mkdtemp(prefix="shakyo-check-"))
    (workdir / "work").mkdir()
    sys.stdout.flush()
    sys.stderr.flush()
    # Objects of the grader go to the permanent generation before the fork: the child's
    # garbage collector leaves them alone, so fewer pages are copied on write.
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # the learner's process
        code = 0
        try:
            parent_sock.close()
            child_main(child_sock, workdir, limits)
        except BaseException:  # noqa: BLE001 - nothing may escape into the grader's code
            code = LOST_CHANNEL
        finally:
            os._exit(code)
    gc.unfreeze()
    child_sock.close()
    deadline = time.monotonic() + limits.seconds
    channel = GraderChannel(parent_sock, deadline)
    return ChildRun(pid, channel, workdir, time.monotonic(), output_cap=limits.output_bytes)


def _lines(data: bytes, width: int = 160) -> str:
    """Printed bytes as text, each line cut at ``width`` characters."""
    out = []
    for line in data.decode("utf-8", "replace").split("\n"):
        out.append(
            line if len(line) <= width else f"{line[:width]} [... {len(line) - width:,} more]"
        )
    return "\n".join(out)


# --------------------------------------------------------------- learner side
class LearnerChannel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, message: Any) -> None:
        wire.send(self.sock, message)

    def receive(self, seq: int, what: str) -> Any:
        message = wire.recv(self.sock)
        if message[0] != "give" or message[1] != seq:
            raise RuntimeError(f"internal: expected give #{seq}, got {message[0]} #{message[1]}")
        return message


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def confine(workdir: Path, limits: Limits, impl_dir: Path) -> None:
    """Everything the learner's process does before any learner code runs."""
    os.setpgid(0, 0)  # its own process group: the grader kills it and what it started
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, not a kill
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for name in ("stdout", "stderr"):
        fd = os.open(workdir / f"{name}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1 if name == "stdout" else 2)
        os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    sys.stdin = open(os.devnull)  # noqa: SIM115
    os.chdir(workdir / "work")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
    cap = _address_space() + limits.memory_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import torch

    torch.set_num_threads(1)
    _hide_the_reference()
    _refuse_imports(impl_dir)


def _hide_the_reference() -> None:
    hidden = [
        name
        for name in list(sys.modules)
        if (name == "reference" or name.startswith("reference.")) and name not in _ALLOWED_REFERENCE
    ]
    gone = {}
    for name in hidden:
        module = sys.modules[name]
        gone[id(module)] = Forbidden(name)
        sys.modules[name] = gone[id(module)]
    for name, module in list(sys.modules.items()):
        if not (name.startswith("checks.") or name.startswith("solutions.")):
            continue
        namespace = getattr(module, "__dict__", {})
        for key, value in list(namespace.items()):
            stand_in = gone.get(id(value))
            if stand_in is None and getattr(value, "__module__", "") in hidden:
                stand_in = Forbidden(f"{value.__module__}.{getattr(value, '__name__', key)}")
            if stand_in is not None:
                namespace[key] = stand_in

    class Blocker:
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] == "reference" and fullname not in _ALLOWED_REFERENCE:
                raise ImportError(f"{REFUSED}: {fullname}")
            return None

    sys.meta_path.insert(0, Blocker())


def _refuse_imports(impl_dir: Path) -> None:
    """The learner's files may not import the reference, the checks or the solutions."""
    original = builtins.__import__
    root = str(impl_dir)

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in _GUARDED:
            caller = (globals or {}).get("__file__") or ""
            if str(caller).startswith(root):
                raise ImportError(
                    f"{REFUSED}: `import {name}` in {caller} is refused; the check compares "
                    "your code with the reference in another process"
                )
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded


def crash_report(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip()[-3000:]
