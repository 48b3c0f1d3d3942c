"""Reference fragments generated from the code: the CLI, the config keys, the exercise table."""

from __future__ import annotations

import argparse
import importlib

from sitegen.util import fence


def exercise_table(ctx, lang: str, page: str) -> str:
    from sitegen.exercises import index_table

    return index_table(ctx.catalog, lang, ctx.translations)


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:  # argparse has no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            out += list(action.choices.items())
    return out


def command_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of every `shakyo` command (and sub-command), as `shakyo CMD --help` builds it."""
    from shakyo.cli import COMMANDS

    out = []
    for name, (module_name, help_) in COMMANDS.items():
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"shakyo {name}", description=help_)
        if hasattr(module, "add_command_arguments"):
            module.add_command_arguments(name, parser)
        else:
            module.add_arguments(parser)
        out.append((name, parser))
        for sub, sp in _subparsers(parser):
            out.append((f"{name} {sub}", sp))
    return out


def cli_reference(ctx, lang: str, page: str) -> str:
    import os

    from reference.cli import _top_help
    from shakyo.cli import COMMANDS

    # argparse wraps help at $COLUMNS; fix it so the page does not depend on the terminal.
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parsers = ctx.memo("parsers", command_parsers)
        parts = [fence(_top_help(COMMANDS), "text"), ""]
        for name, parser in parsers:
            anchor = name.replace(" ", "-")
            top = name in COMMANDS
            parts += [f"{'##' if top else '###'} `shakyo {name}` {{#{anchor}}}", ""]
            parts += [fence(parser.format_help(), "text"), ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def config_keys(ctx, lang: str, page: str) -> str:
    from reference.config import keys_table

    table = keys_table()
    if lang == "ja":
        head, sep, *rows = table.splitlines()
        table = "\n".join(["| キー | 既定値 | 意味 |", sep, *rows])
    return table
