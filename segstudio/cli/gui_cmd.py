"""`segstudio gui [PROJECT]`: open the desktop app (the sample project when none is named)."""

from __future__ import annotations

import argparse
import os
import sys
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
    parser.add_argument("--smoke", action="store_true",
                        help="open the window and the project, print what opened and quit (exit 1 when "
                        "the project did not open): checks that an installed or bundled app starts")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.project is not None and not args.project.exists():
        print(f"error: no project folder at {args.project}; give the folder that holds project.json, "
              "or create one with 'segstudio new' or 'segstudio import' (for the commands: segstudio --help)", file=sys.stderr)
        return 2
    if not os.environ.get("SEGSTUDIO_SKIP_DISPLAY_CHECK"):
        from segstudio.cli.display_check import check_display

        problem = check_display()
        if problem is not None:
            print(problem.message, file=sys.stderr)
            return 3
    from segstudio.ui.app import run_gui  # Qt is imported only when the window is wanted

    return run_gui(args.project, welcome=args.welcome, smoke=args.smoke)
