"""The ``shakyo`` command.

Each subcommand lives in the module that does the work; that module exposes
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the
subcommand actually typed is imported, so ``shakyo --help`` stays fast and a
data command does not pay for importing fastai.

User errors (:class:`reference.errors.ShakyoError`) become one line on stderr
and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). The order is the order of ``shakyo --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("reference.data.synth", "write a synthetic dataset in the Kaggle ICRGW layout"),
    "prepare": ("reference.data.prepare", "convert Kaggle record folders into ash-colour tiles"),
    "viz": ("reference.viz", "draw figures (viz record RECORD_DIR --out FILE.png, ...)"),
    "weights": ("reference.models.weights", "download an official CoaT ImageNet checkpoint"),
    "train": ("reference.train", "train a model from a JSON config (KEY VALUE overrides)"),
    "evaluate": (
        "reference.evaluate",
        "Dice curve over thresholds and the best threshold of a run",
    ),
    "predict": ("reference.infer", "predict test record folders and write submission.csv"),
    "submission": ("reference.submission", "validate a submission file (submission check FILE)"),
    "demo": ("reference.demo", "synthesize, prepare, train, evaluate and predict on a laptop CPU"),
    "cloud": (
        "reference.cloud.cli",
        "train on a rented vast.ai GPU, publish the model to Kaggle (cloud plan|launch|status|...)",
    ),
    "list": ("checks.cli", "list the exercises in order with their status"),
    "check": ("checks.cli", "grade exercises against the reference"),
    "watch": ("checks.cli", "re-check the current exercise on every save"),
    "hint": ("checks.cli", "show a hint for an exercise"),
    "progress": ("checks.cli", "show your progress"),
    "reset": ("checks.cli", "restore the pristine stub of an exercise"),
    "solution": ("checks.cli", "show the solution of a passed exercise"),
}


def _top_help() -> str:
    lines = ["usage: shakyo COMMAND [ARGS ...]", "", "commands:"]
    width = max(len(n) for n in COMMANDS)
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `shakyo COMMAND --help` for the arguments of a command."]
    return "\n".join(lines)


def _load(name: str):
    module_name, _ = COMMANDS[name]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    from reference.errors import ShakyoError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else "; run `shakyo --help`"
        print(f"shakyo: unknown command `{name}`{hint}", file=sys.stderr)
        return 2
    module = _load(name)
    if module is None:
        print(f"shakyo: `{name}` is not available in this version yet", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"shakyo {name}", description=COMMANDS[name][1])
    if hasattr(module, "add_command_arguments"):
        module.add_command_arguments(name, parser)
    else:
        module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        if hasattr(module, "run_command"):
            return int(module.run_command(name, args) or 0)
        return int(module.run(args) or 0)
    except ShakyoError as e:
        print(f"shakyo {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shakyo {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
