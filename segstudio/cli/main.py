"""The `segstudio` command: one subcommand per job, over core and engine.

Each command module exposes `register(subparsers)`; its parsers set `func`, which takes
the parsed arguments and returns an exit code. Modules import torch or Qt only inside
those functions, so `segstudio info` starts fast and runs where neither is installed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from segstudio import __version__
from segstudio.core.errors import SegstudioError

COMMAND_MODULES = (
    "segstudio.cli.project_cmds",
    "segstudio.cli.engine_cmds",
    "segstudio.cli.model_cmds",
    "segstudio.cli.assist_cmds",
    "segstudio.cli.gui_cmd",
    "segstudio.cli.desktop_cmd",
    "segstudio.cli.remote_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segstudio",
        description="Annotate images, fine-tune segmentation models, pre-label and export.",
    )
    parser.add_argument("--version", action="version", version=f"segstudio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command module not written yet
                continue
            raise
        module.register(subparsers)
    return parser


def _with_gui_command(argv: list[str], commands: set[str]) -> list[str]:
    """`segstudio PROJECT [options]` is `segstudio gui PROJECT [options]`, as the README says."""
    first = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if first is None or argv[first] in commands:
        return argv
    return [*argv[:first], "gui", *argv[first:]]


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_with_gui_command(argv, _subcommands(parser)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        # No subcommand: open the app, as a double-clicked launcher would.
        args = parser.parse_args(["gui", *argv])
    try:
        return int(args.func(args) or 0)
    except SegstudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
