"""Graduation: the learner's model, loss, metric and optimizer inside the reference trainer.

``shakyo train CONFIG [KEY VALUE ...]`` runs here (see :mod:`shakyo.cli`). With
``IMPL reference`` (the default) it is the reference's training; with ``IMPL
exercises``, ``IMPL solutions`` or ``IMPL DIR`` (a folder laid out like
``solutions/``) :func:`components` replaces the reference's model, loss,
metric and optimizer with the learner's and hands them to
``reference.train.train``. The reference never imports this module. Training
refuses, with one line naming them, while any exercise it needs is still a stub.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from checks.catalog import EXERCISES_DIR, SOLUTIONS_DIR, get_exercise
from checks.impl import Impl, resolve_impl
from checks.regions import find_regions, is_stub_region
from reference.errors import ConfigError

# What the trainer plugs in, and the exercises each part needs (in ladder order).
MODEL = ("coat-ulstm", "CoaT_ULSTM")
LOSS = ("loss-comb", "loss_comb")
METRIC = ("f-th", "F_th")
OPTIMIZER = ("over9000", "Over9000")
NEEDED = (
    "layer-norm-2d",
    "pixel-shuffle-icnr",
    "unet-block",
    "fpn",
    "lstm-block",
    "coat-ulstm",
    "lovasz",
    "loss-comb",
    "f-th",
    "over9000",
)


class Components(dict):
    """The trainer's table ({'get_model', 'losses', 'metrics', 'opt_func'}) with attribute
    access: ``model_factory`` / ``get_model``, ``loss_func``, ``metric_factory``,
    ``opt_func_factory``."""

    @property
    def model_factory(self):
        return self["get_model"]

    get_model = model_factory

    @property
    def loss_func(self):
        return self["losses"][LOSS[1]]

    @property
    def metric_factory(self):
        return self["metrics"][METRIC[1]]

    @property
    def opt_func_factory(self):
        return self["opt_func"]


def _still_stub(path: Path, exercise_id: str) -> bool:
    """True when any region of the exercise in ``path`` is still the stub's raise."""
    if not path.is_file():
        return True
    text = path.read_text(encoding="utf-8")
    try:
        regions = [r for r in find_regions(text, str(path)) if r.id == exercise_id]
    except ConfigError:
        return False  # markers broken by hand: the learner rewrote the file; let it run
    lines = text.splitlines()
    return any(is_stub_region(lines, r) for r in regions)


def missing_exercises(impl: str | Path) -> tuple[list[str], list[str]]:
    """(exercises not in this version yet, exercises still todo in ``impl``)."""
    impl_dir = resolve_impl(impl)
    unavailable, todo = [], []
    for exercise_id in NEEDED:
        ex = get_exercise(exercise_id)
        if not ex.available:
            unavailable.append(exercise_id)
        elif _still_stub(impl_dir / ex.file, exercise_id):
            todo.append(exercise_id)
    return unavailable, todo


def _loader(impl: str | Path):
    """file -> module. The bundled packages import under their own names (picklable
    classes, readable tracebacks); any other folder through a fresh Impl."""
    impl_dir = resolve_impl(impl)
    if impl_dir in (EXERCISES_DIR, SOLUTIONS_DIR):
        package = impl_dir.name

        def load(file: str) -> ModuleType:
            return importlib.import_module(f"{package}.{Path(file).stem}")

        return load
    return Impl(impl_dir).module


def components(impl: str | Path) -> Components:
    """The learner's parts for ``reference.train``; ConfigError naming every missing exercise."""
    impl = str(impl)
    unavailable, todo = missing_exercises(impl)
    if unavailable:
        raise ConfigError(
            f"IMPL {impl}: exercises {', '.join(unavailable)} are not in this version yet; "
            "use IMPL reference"
        )
    if todo:
        raise ConfigError(
            f"IMPL {impl}: still todo: {', '.join(todo)}; finish them (`shakyo check {todo[0]}`) "
            "or use IMPL reference"
        )
    load = _loader(impl)

    def symbol(part: tuple[str, str]) -> Any:
        return getattr(load(get_exercise(part[0]).file), part[1])

    model_cls, loss, metric, optimizer = (symbol(p) for p in (MODEL, LOSS, METRIC, OPTIMIZER))

    def get_model(name: str, **kwargs: Any):
        if name != MODEL[1]:
            raise ConfigError(
                f"MODEL {name}: IMPL {impl} implements only {MODEL[1]}; set MODEL {MODEL[1]} "
                "or use IMPL reference"
            )
        try:
            return model_cls(**kwargs)
        except Exception as e:
            arch = kwargs.get("arch")
            if arch in ("mini", "small", "medium"):
                raise
            raise ConfigError(
                f"ARCH {arch}: your CoaT_ULSTM(arch={arch!r}) raised {type(e).__name__}: {e}; "
                "the original knows mini, small and medium (tiny is the reference's test size): "
                "set ARCH mini"
            ) from None

    def opt_func(
        eps: float = 1e-8, weight_decay: float = 0.0, alpha: float = 0.5, k: int = 6, **_: Any
    ):
        """fastai opt_func around the learner's Over9000 (fastai's one-cycle writes lr and mom)."""
        from fastai.optimizer import OptimWrapper

        def make(params, lr: float = 1e-3):
            return OptimWrapper(
                params, opt=optimizer, lr=lr, eps=eps, weight_decay=weight_decay, alpha=alpha, k=k
            )

        return make

    return Components(
        get_model=get_model,
        losses={LOSS[1]: loss},
        metrics={METRIC[1]: metric},
        opt_func=opt_func,
    )


def train(config: Any) -> dict:
    """``reference.train.train`` with the parts of ``config['IMPL']`` (the reference's by default)."""
    from reference.config import Config, validate
    from reference.train import get_components
    from reference.train import train as reference_train

    cfg = config if isinstance(config, Config) else validate(dict(config))
    if cfg.IMPL == "reference":
        return reference_train(cfg)
    comps = get_components()
    comps.update(components(cfg.IMPL))
    return reference_train(cfg, components=comps)


# ------------------------------------------------------------------- the CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reference.train import add_arguments as reference_arguments

    reference_arguments(parser)
    parser.epilog = (
        (parser.epilog or "")
        + ". IMPL exercises (or solutions, or a folder laid out like solutions/) trains your "
        "CoaT_ULSTM, loss_comb, F_th and Over9000 inside the reference's trainer; it needs "
        "tiles from `shakyo demo` or `shakyo prepare` and ARCH mini, small or medium"
    )


def run(args: argparse.Namespace) -> int:
    from reference.config import load_config
    from reference.train import report

    result = train(load_config(args.config, args.overrides))
    report(result)
    return 0
