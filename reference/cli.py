"""The reference's commands of ``shakyo``, and the dispatcher they share.

Each subcommand lives in the module that does the work; that module exposes
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the
subcommand actually typed is imported, so ``shakyo --help`` stays fast and a
data command does not pay for importing fastai.

The ``shakyo`` command itself is :mod:`shakyo.cli`: these commands plus the
learner's (``list``, ``check``, ... from ``checks``), which the reference never
imports. ``python -m reference.cli`` runs the reference's commands alone
(e.g. under ``torchrun``).

User errors (:class:`reference.errors.ShakyoError`) become one line on stderr
and exit code 2; a closed pipe (``shakyo list | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "diagnose": (
        "reference.nan_study",
        "reproduce the fp16 NaN of the published recipe on a CPU (diagnose nan-study)",
    ),
    "demo": ("reference.demo", "synthesize, prepare, train, evaluate and predict on a laptop CPU"),
    "cloud": (
        "reference.cloud.cli",
        "train on a rented vast.ai GPU, publish the model to Kaggle (cloud plan|launch|status|...)",
    ),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one stderr line (and exit 2), not usage + error.

    Subparsers (``submission check``, ``viz record``) inherit the class.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (``--timeout``, ``--interval``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _top_help(commands: dict[str, tuple[str, str]]) -> str:
    lines = ["usage: shakyo COMMAND [ARGS ...]", "", "commands:"]
    width = max(len(n) for n in commands)
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in commands.items()]
    lines += ["", "Run `shakyo COMMAND --help` for the arguments of a command."]
    return "\n".join(lines)


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    """The reference's commands alone (``python -m reference.cli``)."""
    return dispatch(argv, COMMANDS)


def dispatch(argv: list[str] | None, commands: dict[str, tuple[str, str]]) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run one of ``commands``; the exit code."""
    if argv is None and sys.argv[1:2] == ["train"]:
        # A real command line (not a call from Python): training gets huge pages.
        from reference.utils import restart_with_huge_pages

        restart_with_huge_pages()
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv), commands)
    except BrokenPipeError:
        # The reader went away (`shakyo list | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _dispatch(argv: list[str], commands: dict[str, tuple[str, str]]) -> int:
    from reference.errors import ShakyoError

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help(commands))
        return 0
    name = argv[0]
    if name not in commands:
        import difflib

        close = difflib.get_close_matches(name, commands, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else "; run `shakyo --help`"
        print(f"shakyo: unknown command `{name}`{hint}", file=sys.stderr)
        return 2
    module = _load(commands[name][0])
    if module is None:
        print(f"shakyo: `{name}` is not available in this version yet", file=sys.stderr)
        return 2
    parser = OneLineParser(prog=f"shakyo {name}", description=commands[name][1])
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
