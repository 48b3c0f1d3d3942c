"""Rung helpers for checks of whole modules (decoder blocks, CoaT_ULSTM).

A module built with random init can only be compared with the reference once
both hold the same weights, but the ``state_dict`` rung (strict loading, where
the names must be the original's) comes last on the ladder. So, for modules:

- ``shapes``: the output shape, and :func:`same_tensors`: the learner's state
  dict holds the reference's tensor shapes, names aside (a missing LayerNorm or
  an extra bias fails here, listing the odd tensors);
- ``values`` / ``gradients``: :func:`copy_weights` copies the reference's
  tensors into the learner's module by name where names agree, else by order
  among tensors of the same shape, so that a naming slip does not hide the
  arithmetic; outputs are compared with the first diverging submodule named;
- ``state_dict``: :func:`strict_load` loads the reference's state dict with
  ``strict=True`` into a fresh learner module and lists missing / unexpected
  keys; then the outputs are compared once more.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from checks.ladder import Ladder

_SHOW = 8  # keys listed per failure line


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the setting.

    The checks' tensors are tiny: a second thread costs more in synchronisation
    than it brings, and when other processes hold the cores (a training run, a
    busy CI machine) it makes a model check several times slower (measured: a
    CoaT_ULSTM(arch='tiny') forward 0.2 s on one thread, 0.7-2.6 s on two).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _keys_text(keys: Sequence[str], shapes: dict[str, tuple] | None = None) -> str:
    items = [f"{k} {tuple(shapes[k])}" if shapes is not None else k for k in keys[:_SHOW]]
    more = f", ... and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return ", ".join(items) + more


def perturb_constants(module: nn.Module, seed: int) -> nn.Module:
    """Add N(0, 0.3) noise to every parameter whose entries are all equal (LayerNorm's
    ones and zeros at init): weight and bias mix-ups are invisible while they are 1 and 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return module


def state_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def same_tensors(c: Ladder, ref: nn.Module, mine: Any, name: str) -> None:
    """Fail (at the current rung) unless both state dicts hold the same tensor shapes."""
    sm = c.call(f"{name}.state_dict() (its tensor shapes)", lambda: state_shapes(mine))
    if not c.grader:
        return
    sr = state_shapes(ref)
    cr, cm = Counter(sr.values()), Counter(sm.values())
    c.observe(f"the tensor shapes of {name}", cr == cm, sorted(cm.items()))
    if cr == cm:
        return
    lines = [
        f"the tensors of {name} differ from the reference's "
        f"(reference: {len(sr)} tensors, yours: {len(sm)})"
    ]
    renamed = [k for k in sr if k in sm and sr[k] != sm[k]]
    if renamed:
        shapes = ", ".join(f"{k} {sr[k]} vs yours {sm[k]}" for k in renamed[:_SHOW])
        lines.append(f"  same name, other shape: {shapes}")
    counts = [
        f"{shape}: reference {cr[shape]}, yours {cm[shape]}"
        for shape in dict.fromkeys([*cr, *cm])
        if cr[shape] != cm[shape]
    ]
    lines.append("  tensors per shape (names aside): " + "; ".join(counts[:_SHOW]))
    extra = [k for k in sm if k not in sr and cm[sm[k]] > cr[sm[k]]]
    if extra:
        lines.append(f"  yours only: {_keys_text(extra, sm)}")
    lacking = [k for k in sr if k not in sm and cr[sr[k]] > cm[sr[k]]]
    if lacking:
        lines.append(f"  the reference only: {_keys_text(lacking, sr)}")
    c.fail("\n".join(lines))


def _owner_class(module: nn.Module, key: str) -> str:
    prefix = key.rpartition(".")[0]
    try:
        return type(module.get_submodule(prefix)).__name__ if prefix else type(module).__name__
    except AttributeError:
        return ""


def _alike(kr: str, owner_r: str, km: str, mine: nn.Module, sr: dict, sm: dict) -> int:
    """-1: other shapes; 0: same shape; 1: + same tensor name; 2: + same owner class."""
    if sr[kr].shape != sm[km].shape:
        return -1
    if kr.rpartition(".")[2] != km.rpartition(".")[2]:
        return 0
    return 2 if owner_r == _owner_class(mine, km) else 1


def reference_weights(c: Ladder, ref: nn.Module) -> dict[str, Any]:
    """The reference's state dict and the class owning each tensor, sent to the learner's
    side (inputs, not answers: its random init)."""
    return c.give(
        lambda: {
            "state": ref.state_dict(),
            "owners": {k: _owner_class(ref, k) for k in ref.state_dict()},
        },
        key=("weights", id(ref)),
    )


def copy_into(mine: nn.Module, given: dict[str, Any]) -> dict[str, str]:
    """(learner side) Copy the given reference tensors into ``mine``; {learner key: ref key}.

    By name where name and shape agree; the others in order among tensors of the same
    shape, most alike first (call :func:`same_tensors` first).
    """
    sr, owners, sm = given["state"], given["owners"], mine.state_dict()
    mapping = {k: k for k in sm if k in sr and sr[k].shape == sm[k].shape}
    left_r = [k for k in sr if k not in mapping.values()]
    left_m = [k for k in sm if k not in mapping]
    # Most alike first: same shape, tensor name ('weight', 'bias') and owner class;
    # then same shape and tensor name; then same shape.
    for level in (2, 1, 0):
        for k in list(left_m):
            match = next(
                (r for r in left_r if _alike(r, owners[r], k, mine, sr, sm) >= level), None
            )
            if match is not None:
                mapping[k] = match
                left_r.remove(match)
                left_m.remove(k)
    with torch.no_grad():
        for km, kr in mapping.items():
            sm[km].copy_(sr[kr])
    return mapping


def copy_weights(c: Ladder, ref: nn.Module, mine: Any, name: str) -> dict[str, str]:
    """The reference's tensors copied into the learner's module; {learner key: ref key}."""
    given = reference_weights(c, ref)
    return c.call(f"the reference's weights copied into {name}", lambda: copy_into(mine, given))


def _apply(key: str, old: list[str], new: list[str]) -> str | None:
    """``key`` with its first run of components ``old`` replaced by ``new`` (None: no run)."""
    parts = key.split(".")
    for i in range(len(parts) - len(old) + 1):
        if parts[i : i + len(old)] == old and (old or i > 0):
            return ".".join(parts[:i] + new + parts[i + len(old) :])
    return None


def rename_rule(missing: list[str], unexpected: list[str]) -> tuple[str, str] | None:
    """One rename that turns every reference key the learner lacks into exactly the keys
    the learner has instead, e.g. ('final_conv.0', 'final_conv') or ('bn', 'norm'):
    (the original's components, the learner's), found from the first missing key."""
    if not missing or len(missing) != len(unexpected):
        return None
    a = missing[0].split(".")
    for u in unexpected:
        b = u.split(".")
        pre = 0
        while pre < min(len(a), len(b)) and a[pre] == b[pre]:
            pre += 1
        suf = 0
        while suf < min(len(a), len(b)) - pre and a[-1 - suf] == b[-1 - suf]:
            suf += 1
        old, new = a[pre : len(a) - suf], b[pre : len(b) - suf]
        if (not old or not new) and pre > 0:  # a component more or less: anchor on the one before
            old, new = a[pre - 1 : len(a) - suf], b[pre - 1 : len(b) - suf]
        mapped = [_apply(k, old, new) for k in missing]
        if None not in mapped and sorted(mapped) == sorted(unexpected):
            return ".".join(old), ".".join(new)
    return None


def _rename_advice(rule: tuple[str, str], classes: dict[str, str]) -> str:
    old, new = rule
    if old == new + ".0":
        cls = f" ({classes[new]})" if new in classes else ""
        return (
            f"the original wraps your `{new}`{cls} in an nn.Sequential (its keys carry "
            f"`{old}.`): self.{new.split('.')[-1]} = nn.Sequential(...)"
        )
    if new == old + ".0":
        return f"yours wraps `{old}` in an nn.Sequential; the original does not: drop the nn.Sequential"
    return f"call it `{old.split('.')[-1]}` as the original does (the attribute name is the key)"


def _try_load(mine: nn.Module, state: dict) -> tuple[str | None, dict, dict[str, str]]:
    """(learner side) load strictly; (the error text or None, the module's tensor shapes,
    the class of each submodule)."""
    try:
        mine.load_state_dict(state, strict=True)
        error = None
    except RuntimeError as e:
        error = " ".join(str(e).split())
    return error, state_shapes(mine), {n: type(m).__name__ for n, m in mine.named_modules()}


def strict_load(c: Ladder, ref: nn.Module, mine: Any, name: str) -> None:
    """``mine.load_state_dict(ref.state_dict(), strict=True)``; on failure list the keys."""
    state = reference_weights(c, ref)["state"]
    error, sm, classes = c.call(f"{name}.load_state_dict(...)", lambda: _try_load(mine, state))
    c.observe(f"{name}.load_state_dict(reference state dict, strict=True)", error is None, error)
    if error is None or not c.grader:
        if error is not None:
            c.fail(error)
        return
    sr = state_shapes(ref)
    missing = [k for k in sr if k not in sm]
    unexpected = [k for k in sm if k not in sr]
    wrong = [k for k in sr if k in sm and sr[k] != sm[k]]
    rule = rename_rule(missing, unexpected) if not wrong else None
    if rule is not None:
        c.fail(
            f"{name}.load_state_dict(reference state dict, strict=True) failed: one rename\n"
            f"  your keys say `{rule[1]}` where the original's say `{rule[0]}` "
            f"({len(missing)} keys, e.g. yours {unexpected[0]}, the original's {missing[0]})\n"
            f"  fix: {_rename_advice(rule, classes)}"
        )
    lines = [
        f"{name}.load_state_dict(reference state dict, strict=True) failed: the names are "
        "the state_dict prefixes of the original (site: facts/model/#coat-ulstm)"
    ]
    if missing:
        lines.append(f"  missing in yours ({len(missing)}): {_keys_text(missing, sr)}")
    if unexpected:
        lines.append(f"  unexpected in yours ({len(unexpected)}): {_keys_text(unexpected, sm)}")
    if wrong:
        shapes = ", ".join(f"{k} {sr[k]} vs yours {sm[k]}" for k in wrong[:_SHOW])
        lines.append(f"  wrong shape ({len(wrong)}): {shapes}")
    if len(lines) == 1:
        lines.append(f"  {error}")
    c.fail("\n".join(lines))


def _tensors(inputs: Any) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if isinstance(inputs, (list, tuple)):
        return [t for x in inputs for t in _tensors(x)]
    return []


def _clone_inputs(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().clone().requires_grad_(inputs.is_floating_point())
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(_clone_inputs(x) for x in inputs)
    return inputs


def _run(model: nn.Module, inputs: Any) -> Any:
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def _weight(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(1000 + seed))


def gradients(model: nn.Module, inputs: Any, seed: int) -> dict[str, Any]:
    """(either side) d/d(inputs) and d/d(parameters) of (model(*inputs) * w).sum(), w ~ N(0, 1)
    drawn from ``seed`` in the output's shape."""
    x = _clone_inputs(inputs)
    model.zero_grad(set_to_none=True)
    out = _run(model, x)
    (out * _weight(out.shape, seed)).sum().backward()
    return {
        "inputs": [t.grad for t in _tensors(x)],
        "params": {k: p.grad for k, p in model.named_parameters(remove_duplicate=False)},
    }


def compare_gradients(
    c: Ladder,
    ref: nn.Module,
    mine: Any,
    inputs: Any,
    mapping: dict[str, str],
    what: str,
    seed: int,
    tol: str = "gradient",
    input_names: Sequence[str] | None = None,
) -> None:
    """d/d(inputs) and d/d(parameters) of (module(*inputs) * w).sum(), w ~ N(0, 1) fixed.

    ``inputs`` is one tensor or a tuple of positional arguments (lists inside are
    fine). Parameters are paired through ``mapping`` from :func:`copy_weights`.
    """
    expected = c.ref(lambda: gradients(ref, inputs, seed))
    call = f"gradients of ({what} * w).sum(), w ~ N(0, 1)"
    got = c.call(call, lambda: gradients(mine, inputs, seed))
    diagnose = dict(
        models=(ref, mine),
        inputs=inputs,
        backward=True,
        loss_fn=lambda o: (o * _weight(o.shape, seed)).sum(),
    )
    names = input_names or [f"input {i}" for i in range(len(got["inputs"]))]
    for i, n in enumerate(names):
        if got["inputs"][i] is None:
            c.fail(f"{call}: no gradient reached {n} (a .detach() or torch.no_grad() in forward?)")
        c.close(got["inputs"][i], expected["inputs"][i], tol, f"d/d({n}) of {call}", **diagnose)
    for km, gm in got["params"].items():
        gr = expected["params"].get(mapping.get(km, "")) if c.grader else None
        if c.grader and gr is None:
            continue
        if gm is None:
            c.fail(f"{call}: no gradient reached your parameter `{km}` (is it an nn.Parameter?)")
        c.close(gm, gr, tol, f"d/d({km}) of {call}", **diagnose)


def build(c: Ladder, what: str, fn: Callable[[], nn.Module], seed: int) -> Any:
    """The learner's module built under ``torch.manual_seed(seed)`` (in the learner's process)."""

    def seeded() -> nn.Module:
        torch.manual_seed(seed)
        return fn()

    return c.call(what, seeded)
