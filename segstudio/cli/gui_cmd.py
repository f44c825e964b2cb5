"""`segstudio gui [PROJECT]`: open the desktop app (the sample project when none is named)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="open the desktop app",
        description="Open the annotation window on PROJECT. Without one, the built-in sample "
        "project (CamVid road scenes) opens, copied to your data folder on first use.",
    )
    parser.add_argument("project", nargs="?", type=Path, help="project folder to open")
    parser.add_argument("--welcome", action="store_true",
                        help="start at the welcome screen instead of the sample project")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from segstudio.ui.app import run_gui  # Qt is imported only when the window is wanted

    return run_gui(args.project, welcome=args.welcome)
