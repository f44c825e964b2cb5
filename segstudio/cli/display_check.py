"""Before the window opens on Linux: can Qt show it here? (standard library only, no Qt import)

Qt's own answer to a missing system library is "Could not load the Qt platform plugin xcb ...
Reinstalling the application may fix this problem", which sends users the wrong way. This
module finds the platform plugin Qt will load, asks the dynamic linker (`ldd`) which of its
libraries are missing, and says which packages to install with the command of the
distribution it runs on. It also explains a session with no display at all.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Package managers in the order we look for them, and the install command of each.
INSTALL_COMMANDS = {
    "apt": "sudo apt-get install -y",
    "dnf": "sudo dnf install -y",
    "pacman": "sudo pacman -S --needed",
    "zypper": "sudo zypper install -y",
}
# os-release IDs (ID and ID_LIKE) for each package manager.
DISTRO_FAMILIES = {
    "apt": ("debian", "ubuntu", "linuxmint", "pop", "raspbian"),
    "dnf": ("fedora", "rhel", "centos", "rocky", "almalinux", "amzn"),
    "pacman": ("arch", "manjaro", "endeavouros"),
    "zypper": ("opensuse", "suse", "sles", "opensuse-leap", "opensuse-tumbleweed"),
}
# Library soname -> package per package manager (apt, dnf, pacman, zypper): the libraries
# PySide6's xcb and wayland plugins link against that minimal installs most often lack.
PACKAGES: dict[str, tuple[str, str, str, str]] = {
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm", "libxcb-icccm4"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms", "libxcb-keysyms1"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor", "libxcb-cursor0"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image", "libxcb-image0"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil",
                                "libxcb-render-util0"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util", "libxcb-util1"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11", "libxkbcommon-x11-0"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon", "libxkbcommon0"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11", "libX11-xcb1"),
    "libX11.so.6": ("libx11-6", "libX11", "libx11", "libX11-6"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb", "libxcb1"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd", "libEGL1"),
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libglvnd", "libGL1"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl", "libglvnd", "libOpenGL0"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig", "libfontconfig1"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2", "libfreetype6"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus", "libdbus-1-3"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2", "libglib-2_0-0"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client", "wayland", "libwayland-client0"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor", "wayland", "libwayland-cursor0"),
}
_XCB_PACKAGE = re.compile(r"^libxcb-([a-z0-9-]+)\.so\.(\d+)$")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


@dataclass(frozen=True)
class DisplayProblem:
    """Why the window cannot open here, and what to do (printed as is)."""

    message: str


def package_manager(os_release: Mapping[str, str], which: Callable[[str], str | None] | None = None) -> str | None:
    """apt, dnf, pacman or zypper for this distribution (None when unknown)."""
    which = which or shutil.which
    ids = {os_release.get("ID", "").lower(), *os_release.get("ID_LIKE", "").lower().split()}
    for manager, family in DISTRO_FAMILIES.items():
        if ids & set(family):
            return manager
    probes = {"apt": "apt-get", "dnf": "dnf", "pacman": "pacman", "zypper": "zypper"}
    return next((manager for manager, tool in probes.items() if which(tool)), None)


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def package_for(soname: str, manager: str | None) -> str:
    """The package that provides `soname` under `manager` (the soname itself when unknown)."""
    column = list(INSTALL_COMMANDS).index(manager) if manager in INSTALL_COMMANDS else None
    if soname in PACKAGES and column is not None:
        return PACKAGES[soname][column]
    match = _XCB_PACKAGE.match(soname)
    if match and column is not None:  # the other xcb extensions follow one naming pattern
        name, version = match.groups()
        return (f"libxcb-{name}{version}", "libxcb", "libxcb", f"libxcb-{name}{version}")[column]
    return soname


def missing_libraries(binaries: list[Path], run: Callable[[list[str]], str] | None = None) -> list[str]:
    """Sonames that the dynamic linker cannot find for any of `binaries` (in first-seen order)."""
    run = run or _ldd
    found: list[str] = []
    for binary in binaries:
        for name in _NOT_FOUND.findall(run(["ldd", str(binary)])):
            if name not in found:
                found.append(name)
    return found


def _ldd(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""  # no ldd (musl, a stripped container): let Qt try and speak for itself


def platform_name(env: Mapping[str, str]) -> str:
    """The platform plugin Qt will try first, as Qt 6 chooses it on Linux."""
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    if env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def _qt_dir() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt"


def check_display(env: Mapping[str, str] | None = None, qt_dir: Path | None = None,
                  os_release: Mapping[str, str] | None = None,
                  run: Callable[[list[str]], str] | None = None,
                  system: str = sys.platform) -> DisplayProblem | None:
    """None when Qt can open a window here; otherwise what is wrong and what to do."""
    if not system.startswith("linux"):
        return None
    env = os.environ if env is None else env
    platform = platform_name(env)
    if platform in ("offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return DisplayProblem(
            "segstudio cannot open its window: this session has no display (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set, as over SSH or in a container).\n"
            "  - On a server, use the command line: `segstudio --help` (train, eval, predict, export).\n"
            "  - To run the app without a screen (tests, screenshots): QT_QPA_PLATFORM=offscreen segstudio\n"
            "  - Over SSH with a desktop at your end: ssh -X (or -Y) and run segstudio again.")
    if platform == "wayland" and not env.get("WAYLAND_DISPLAY"):
        return DisplayProblem(
            "segstudio was asked to use Wayland (QT_QPA_PLATFORM=wayland) but WAYLAND_DISPLAY is not "
            "set. Unset QT_QPA_PLATFORM to use X11, or start segstudio inside the Wayland session.")
    if platform == "xcb" and not env.get("DISPLAY"):
        return DisplayProblem(
            "segstudio would use X11 (xcb) but DISPLAY is not set. In a Wayland-only session run "
            "QT_QPA_PLATFORM=wayland segstudio, or enable XWayland in your desktop's settings.")
    qt_dir = qt_dir or _qt_dir()
    if qt_dir is None:
        return None  # no PySide6 to inspect: the import will say so itself
    plugin = qt_dir / "plugins" / "platforms" / f"libq{platform}.so"
    if not plugin.is_file():
        return None  # a plugin we do not know (or a different build): Qt will explain
    binaries = [plugin, *sorted((qt_dir / "lib").glob(f"libQt6{'Xcb' if platform == 'xcb' else 'Wayland'}*.so.6"))]
    missing = missing_libraries(binaries, run)
    if not missing:
        return None
    manager = package_manager(read_os_release() if os_release is None else os_release)
    packages = list(dict.fromkeys(package_for(name, manager) for name in missing))
    lines = [
        f"segstudio cannot open its window: Qt's {platform} display plugin needs system libraries "
        f"that are not installed: {', '.join(missing)}.",
        "Install them, then start segstudio again:",
    ]
    if manager is not None:
        command = INSTALL_COMMANDS[manager]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command = command.removeprefix("sudo ")
        lines.append(f"  {command} {' '.join(packages)}")
    else:
        lines.append(f"  install the packages of your distribution that provide: {', '.join(missing)}")
    lines.append("(Reinstalling segstudio or PySide6 does not help: these come from the system.)")
    return DisplayProblem("\n".join(lines))
