"""The signature rung: the learner's ``def`` lines against the published ones.

A learner re-types the original, ``def`` lines included, so the contract is the
published signature (catalog key ``signatures``), not the reference's. A copy
passes when

- every parameter of the original (but ``*args``, ``**kwargs`` and the
  catalog's ``optional_params``) is there, by the same name, with the same
  default, and the positional ones come first in the original's order
  (the checks and the trainer call them positionally and by keyword);
- every extra parameter has a default, or is ``*args`` / ``**kwargs``
  (the original's own extras, such as ``self_attention=False``, are fine).

Type annotations never matter. The learner's signatures are read in the learner's
process and travel as descriptions (:func:`describe_signature`): defaults become
comparable tokens (numbers, strings, tuples, arrays as values, functions by module and
name), so the grader compares them without ever holding the learner's objects.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

_P = inspect.Parameter
_VAR = (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)


def parse_signature(text: str) -> inspect.Signature:
    """'(self, x, eps=1e-6)' -> inspect.Signature; defaults may use nn, np, torch, math."""
    import torch
    from torch import nn

    namespace: dict[str, Any] = {"nn": nn, "np": np, "torch": torch, "math": math}
    exec(compile(f"def _contract{text}:\n    pass\n", "<catalog signature>", "exec"), namespace)
    return inspect.signature(namespace["_contract"])


class Default:
    """A described default value: compared by its description, shown by its repr."""

    def __init__(self, token: Any, text: str) -> None:
        self.token, self.text = token, text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Default) and self.token == other.token

    def __hash__(self) -> int:
        return hash(repr(self.token))

    def __repr__(self) -> str:
        return self.text


def describe_default(x: Any) -> Any:
    """A plain, comparable token for a default value."""
    if x is None or isinstance(x, (bool, str)):
        return ("v", x)
    if isinstance(x, (int, float)):
        return ("num", float(x))  # 0 and 0.0, 1e-6 and 0.000001
    if isinstance(x, (tuple, list)):
        return ("seq", tuple(describe_default(v) for v in x))
    if isinstance(x, np.ndarray):
        return ("array", x.shape, tuple(round(float(v), 12) for v in x.ravel()))
    name = getattr(x, "__qualname__", None) or getattr(x, "__name__", None)
    module = getattr(x, "__module__", None)
    if name and module:
        return ("obj", module, name)
    return ("repr", repr(x))


_KINDS = {
    p.value: p
    for p in (
        _P.POSITIONAL_ONLY,
        _P.POSITIONAL_OR_KEYWORD,
        _P.VAR_POSITIONAL,
        _P.KEYWORD_ONLY,
        _P.VAR_KEYWORD,
    )
}


def _default_text(x: Any) -> str:
    if callable(x) and getattr(x, "__qualname__", None) and getattr(x, "__module__", None):
        return f"{x.__module__}.{x.__qualname__}"
    return repr(x)


def describe_signature(obj: Any) -> list[tuple[str, int, bool, Any, str]] | None:
    """[(name, kind, has a default, default token, default repr)] of ``obj``'s parameters;
    None when it has no Python signature."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        has = p.default is not _P.empty
        out.append(
            (
                p.name,
                int(p.kind.value),
                has,
                describe_default(p.default) if has else None,
                repr(p.default) if has else "",
            )
        )
    return out


def signature_of(description: list) -> inspect.Signature:
    """The inspect.Signature of a description, defaults as :class:`Default` tokens."""
    params = []
    for name, kind, has, token, text in description:
        default = Default(_freeze(token), text) if has else _P.empty
        params.append(_P(name, _KINDS[int(kind)], default=default))
    return inspect.Signature(params)


def _freeze(token: Any) -> Any:
    """Tokens come back from the wire with lists for tuples: make them hashable again."""
    if isinstance(token, (list, tuple)):
        return tuple(_freeze(t) for t in token)
    return token


def contract_signature(text: str) -> inspect.Signature:
    """The catalog's published signature, described like a learner's."""
    sig = parse_signature(text)
    description = [
        (p.name, int(p.kind.value), p.default is not _P.empty,
         describe_default(p.default) if p.default is not _P.empty else None,
         _default_text(p.default) if p.default is not _P.empty else "")
        for p in sig.parameters.values()
    ]  # fmt: skip
    return signature_of(description)


def _same_default(a: Any, b: Any) -> bool:
    if isinstance(a, Default) or isinstance(b, Default):
        return a == b
    if a is b:
        return True
    try:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            a, b = np.asarray(a), np.asarray(b)
            return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-12))
        return bool(a == b)  # 0 and 0.0, (0.9, 0.999) and its copy, 'medium' and "medium"
    except Exception:
        return False


def signature_text(sig: inspect.Signature) -> str:
    """The signature without annotations, as a learner writes it."""
    return str(
        sig.replace(
            return_annotation=inspect.Signature.empty,
            parameters=[p.replace(annotation=_P.empty) for p in sig.parameters.values()],
        )
    )


def _has_default_text(p: inspect.Parameter) -> str:
    return "no default" if p.default is _P.empty else f"default {p.default!r}"


def contract_problems(
    mine: inspect.Signature, contract: inspect.Signature, optional: tuple[str, ...] = ()
) -> list[str]:
    """What keeps ``mine`` from being called as ``contract`` is ([] when nothing)."""
    ours = dict(mine.parameters)
    needed = [p for p in contract.parameters.values() if p.kind not in _VAR]
    required = [p for p in needed if p.name not in optional]
    known = {p.name for p in contract.parameters.values()}
    mine_list = list(mine.parameters.values())
    contract_list = list(contract.parameters.values())
    renamed: set[str] = set()
    problems: list[str] = []
    for p in required:
        q = ours.get(p.name)
        if q is None:
            i = contract_list.index(p)
            other = mine_list[i] if i < len(mine_list) else None
            if other is not None and other.name not in known and other.kind not in _VAR:
                renamed.add(other.name)
                problems.append(f"your `{other.name}` is called `{p.name}` in the original")
            else:
                problems.append(f"`{p.name}` is missing (the checks pass it by this name)")
        elif q.kind in _VAR:
            problems.append(f"`{p.name}` must be a plain parameter, not {q}")
        elif p.kind == _P.POSITIONAL_OR_KEYWORD and q.kind != _P.POSITIONAL_OR_KEYWORD:
            problems.append(f"`{p.name}` must be positional, as in the original (yours: {q})")
        elif p.default is not _P.empty and not _same_default(q.default, p.default):
            problems.append(
                f"`{p.name}` has {_has_default_text(q)}; the original's is {p.default!r}"
            )
    positional = [p.name for p in required if p.kind == _P.POSITIONAL_OR_KEYWORD]
    mine_positional = [
        q.name
        for q in mine.parameters.values()
        if q.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
    ]
    if not problems and mine_positional[: len(positional)] != positional:
        problems.append(
            f"the positional parameters must start as in the original: "
            f"({', '.join(positional)}); yours start ({', '.join(mine_positional[: len(positional)])})"
        )
    for q in mine.parameters.values():
        if q.name in known or q.name in renamed or q.kind in _VAR or q.default is not _P.empty:
            continue
        problems.append(
            f"`{q.name}` is not in the original and has no default: give it one, "
            "or the original's calls cannot fill it"
        )
    return problems
