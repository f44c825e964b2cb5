"""`segstudio install-desktop`: the app's launcher and icon in the Linux desktop's menus.

Follows the freedesktop.org layout under $XDG_DATA_HOME (~/.local/share): the .desktop entry
in applications/, the scalable icon in icons/hicolor/scalable/apps/. The entry starts this
installation's own `segstudio` (an absolute path), so a venv install works from the menu.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DESKTOP_FILE = "segstudio.desktop"
ICON_FILE = "segstudio.svg"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install-desktop", help="add segstudio to the desktop's application menu (Linux)",
        description="Install the launcher (.desktop entry) and icon for this user, so segstudio "
                    "appears in the application menu and opens project folders.")
    parser.add_argument("--uninstall", action="store_true", help="remove the launcher and icon again")
    parser.set_defaults(func=_run)


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def launcher_command() -> list[str]:
    """How the menu entry starts this installation: its `segstudio` script, else this Python."""
    script = Path(sys.executable).with_name("segstudio")
    if script.is_file():
        return [str(script)]
    found = shutil.which("segstudio")
    return [found] if found else [sys.executable, "-m", "segstudio"]


def install(resources: Path, target: Path | None = None) -> tuple[Path, Path]:
    """Write the entry and icon under `target` (XDG data home); returns their paths."""
    target = target or data_home()
    entry = target / "applications" / DESKTOP_FILE
    icon = target / "icons" / "hicolor" / "scalable" / "apps" / ICON_FILE
    lines = (resources / DESKTOP_FILE).read_text(encoding="utf-8").splitlines()
    command = " ".join(shlex.quote(part) for part in launcher_command())
    lines = [f"Exec={command} gui %f" if line.startswith("Exec=") else line for line in lines]
    lines = [f"TryExec={launcher_command()[0]}" if line.startswith("TryExec=") else line for line in lines]
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copyfile(resources / "icons" / ICON_FILE, icon)
    return entry, icon


def uninstall(target: Path | None = None) -> list[Path]:
    target = target or data_home()
    removed = []
    for path in (target / "applications" / DESKTOP_FILE, target / "icons" / "hicolor" / "scalable" / "apps" / ICON_FILE):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def _refresh_menus(target: Path) -> None:
    tool = shutil.which("update-desktop-database")
    if tool:  # optional: most desktops notice the new file on their own
        subprocess.run([tool, str(target / "applications")], capture_output=True, check=False, timeout=30)


def _run(args: argparse.Namespace) -> int:
    if not sys.platform.startswith("linux"):
        print("install-desktop is for Linux desktops; on macOS and Windows use the packaged app "
              "(see packaging/README.md)", file=sys.stderr)
        return 2
    if args.uninstall:
        removed = uninstall()
        print("removed " + ", ".join(map(str, removed)) if removed else "nothing to remove")
        return 0
    resources = Path(__file__).resolve().parents[1] / "resources"
    entry, icon = install(resources)
    _refresh_menus(data_home())
    print(f"installed the launcher {entry}\nand the icon {icon}\n"
          "segstudio now appears in the application menu (log out and in if it does not at once).")
    return 0
