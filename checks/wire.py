"""What crosses between the grader and the learner's process: plain data, safely.

The learner's process (see :mod:`checks.sandbox`) sends the results of the learner's
code to the grader, and the grader sends it the reference data it needs as input (a
reference state dict to load, say). Pickle would let a learner's object run code in the
grader when it is read back, so values are first turned into plain structures (numbers,
strings, bytes, lists, tuples, dicts of them, tensors and arrays as raw bytes) and read
with an unpickler that knows no class at all. Anything else (a module, an optimizer) is
sent as an :class:`Opaque` placeholder naming its type: the grader never needs its
insides, only the learner's process does.

Messages are length-prefixed frames on a socket.
"""

from __future__ import annotations

import io
import pickle
import socket
import struct
from types import SimpleNamespace
from typing import Any

import numpy as np

_MAX_FRAME = 1 << 31  # 2 GiB: a larger frame is a broken stream, not a result


class Opaque:
    """Stands in, on the grader's side, for an object that lives only in the learner's
    process. Attribute access gives another placeholder (``module.LayerNorm2d``); calling
    one is a bug of the check (learner code must run on the learner's side)."""

    def __init__(self, kind: str, path: str = "") -> None:
        self._kind, self._path = kind, path

    def __getattr__(self, name: str) -> Opaque:
        if name.startswith("__"):
            raise AttributeError(name)
        return Opaque(self._kind, f"{self._path}.{name}" if self._path else name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"internal: the grader called the learner's {self._kind} {self._path or ''}; "
            "learner code runs in the learner's process (wrap it in c.call)"
        )

    def __repr__(self) -> str:
        return f"<{self._kind}{' ' + self._path if self._path else ''} (in the learner's process)>"


def encode(x: Any, depth: int = 0) -> Any:
    """``x`` as plain data (see the module docstring)."""
    import torch

    if depth > 50:
        return ("opaque", "deeply nested value")
    if x is None or isinstance(x, (bool, int, str, bytes)):
        return ("v", x)
    if isinstance(x, float):
        return ("f", struct.pack("<d", x))  # bit-exact, NaN and inf included
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return ("t", str(t.dtype).replace("torch.", ""), tuple(t.shape), raw)
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        return ("n", a.dtype.str, a.shape, a.tobytes())
    if isinstance(x, np.generic):
        return encode(x.item(), depth + 1)
    if isinstance(x, (list, tuple)):
        return ("l" if isinstance(x, list) else "u", [encode(v, depth + 1) for v in x])
    if isinstance(x, dict):
        return ("d", [(encode(k, depth + 1), encode(v, depth + 1)) for k, v in x.items()])
    if isinstance(x, SimpleNamespace):
        return ("s", [(k, encode(v, depth + 1)) for k, v in vars(x).items()])
    if isinstance(x, torch.dtype):
        return ("dt", str(x).replace("torch.", ""))
    if isinstance(x, torch.Size):
        return ("u", [("v", int(v)) for v in x])
    return ("opaque", type(x).__name__)


def decode(x: Any) -> Any:
    import torch

    tag = x[0]
    if tag == "v":
        return x[1]
    if tag == "f":
        return struct.unpack("<d", x[1])[0]
    if tag == "t":
        dtype = getattr(torch, x[1])
        if not x[3]:
            return torch.empty(x[2], dtype=dtype)
        raw = torch.frombuffer(bytearray(x[3]), dtype=torch.uint8)  # owns its buffer
        return raw.view(dtype).reshape(x[2])
    if tag == "n":
        return np.frombuffer(x[3], dtype=np.dtype(x[1])).reshape(x[2]).copy()
    if tag == "l":
        return [decode(v) for v in x[1]]
    if tag == "u":
        return tuple(decode(v) for v in x[1])
    if tag == "d":
        return {decode(k): decode(v) for k, v in x[1]}
    if tag == "s":
        return SimpleNamespace(**{k: decode(v) for k, v in x[1]})
    if tag == "dt":
        return getattr(torch, x[1])
    if tag == "opaque":
        return Opaque(x[1])
    raise ValueError(f"unknown wire tag {tag!r}")


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        raise pickle.UnpicklingError(f"refused: {module}.{name} (plain data only)")


def dumps(message: Any) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return _NoClasses(io.BytesIO(data)).load()


def send(sock: socket.socket, message: Any) -> None:
    data = dumps(message)
    sock.sendall(struct.pack("<Q", len(data)) + data)


def _read(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> Any:
    (n,) = struct.unpack("<Q", _read(sock, 8))
    if n > _MAX_FRAME:
        raise EOFError(f"a frame of {n} bytes: the stream is broken")
    return loads(_read(sock, n))
