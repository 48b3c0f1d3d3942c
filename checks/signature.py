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

Type annotations never matter.
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


def _same_default(a: Any, b: Any) -> bool:
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


def _default_text(p: inspect.Parameter) -> str:
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
            problems.append(f"`{p.name}` has {_default_text(q)}; the original's is {p.default!r}")
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
