"""`segstudio PROJECT` opens the project, and a window that cannot open says why and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio.cli import display_check as dc
from segstudio.cli.main import _subcommands, _with_gui_command, build_parser

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = {"ID": "debian", "VERSION_ID": "12"}


def _fake_qt(tmp_path: Path) -> Path:
    qt = tmp_path / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True, exist_ok=True)
    (qt / "lib").mkdir(exist_ok=True)
    for name in ("plugins/platforms/libqxcb.so", "plugins/platforms/libqwayland.so",
                 "lib/libQt6XcbQpa.so.6", "lib/libQt6WaylandClient.so.6"):
        (qt / name).write_bytes(b"")
    return qt


def _ldd_missing(*names: str):
    def run(command: list[str]) -> str:
        lines = ["\tlinux-vdso.so.1 (0x00007ffd)", "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)"]
        lines += [f"\t{name} => not found" for name in names]
        return "\n".join(lines) + "\n"
    return run


@pytest.mark.parametrize("argv, expected, command", [
    (["path/to/project"], ["gui", "path/to/project"], "gui"),
    (["-v", "my project"], ["-v", "gui", "my project"], "gui"),
    (["info", "P", "--json"], ["info", "P", "--json"], "info"),
    (["gui", "P"], ["gui", "P"], "gui"),
    ([], [], None),
])
def test_a_project_folder_alone_means_the_gui_command(argv: list[str], expected: list[str],
                                                      command: str | None) -> None:
    parser = build_parser()
    assert _with_gui_command(argv, _subcommands(parser)) == expected
    args = parser.parse_args(expected)
    assert args.command == command
    if command == "gui":
        assert str(args.project) == argv[-1]


def test_readme_command_with_a_project_reaches_the_app_not_the_parser(tmp_path: Path) -> None:
    """`python3 studio.py path/to/project` as the README prints it (a folder that is not there,
    so the run ends at once): the message is about the folder, not an unknown subcommand."""
    missing = tmp_path / "path" / "to" / "project"
    result = subprocess.run([sys.executable, str(ROOT / "studio.py"), str(missing)], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "invalid choice" not in result.stderr
    assert f"no project folder at {missing}" in result.stderr


def test_missing_xcb_libraries_name_the_apt_packages(tmp_path: Path) -> None:
    qt = _fake_qt(tmp_path)
    problem = dc.check_display({"DISPLAY": ":0"}, qt, DEBIAN,
                               _ldd_missing("libxcb-icccm.so.4", "libxcb-keysyms.so.1"), system="linux")
    assert problem is not None
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in problem.message
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1" in problem.message
    assert "Reinstalling" in problem.message


@pytest.mark.parametrize("release, command, packages", [
    ({"ID": "fedora"}, "dnf install -y", "xcb-util-wm xcb-util-keysyms libxcb"),
    ({"ID": "manjaro", "ID_LIKE": "arch"}, "pacman -S --needed", "xcb-util-wm xcb-util-keysyms libxcb"),
    ({"ID": "opensuse-tumbleweed", "ID_LIKE": "opensuse suse"}, "zypper install -y",
     "libxcb-icccm4 libxcb-keysyms1 libxcb-xinput0"),
    ({"ID": "ubuntu", "ID_LIKE": "debian"}, "apt-get install -y", "libxcb-icccm4 libxcb-keysyms1 libxcb-xinput0"),
])
def test_each_distribution_gets_its_own_install_line(tmp_path: Path, release: dict[str, str], command: str,
                                                     packages: str) -> None:
    qt = _fake_qt(tmp_path)
    problem = dc.check_display({"DISPLAY": ":0"}, qt, release,
                               _ldd_missing("libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-xinput.so.0"),
                               system="linux")
    assert problem is not None
    assert f"{command} {packages}" in problem.message


def test_unknown_distribution_names_the_libraries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dc.shutil, "which", lambda _tool: None)
    assert dc.package_manager({"ID": "plan9"}) is None
    problem = dc.check_display({"DISPLAY": ":0"}, _fake_qt(tmp_path), {"ID": "plan9"},
                               _ldd_missing("libxcb-icccm.so.4"), system="linux")
    assert problem is not None and "provide: libxcb-icccm.so.4" in problem.message


def test_no_display_suggests_the_command_line_and_offscreen(tmp_path: Path) -> None:
    problem = dc.check_display({}, _fake_qt(tmp_path), DEBIAN, _ldd_missing(), system="linux")
    assert problem is not None
    assert "QT_QPA_PLATFORM=offscreen" in problem.message and "segstudio --help" in problem.message


def test_wayland_session_checks_the_wayland_plugin(tmp_path: Path) -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    seen: list[str] = []

    def run(command: list[str]) -> str:
        seen.append(Path(command[-1]).name)
        return "\tlibwayland-cursor.so.0 => not found\n"

    problem = dc.check_display(env, _fake_qt(tmp_path), DEBIAN, run, system="linux")
    assert seen == ["libqwayland.so", "libQt6WaylandClient.so.6"]
    assert problem is not None and "libwayland-cursor0" in problem.message
    only_x = dc.check_display({"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, _fake_qt(tmp_path),
                              DEBIAN, _ldd_missing(), system="linux")
    assert only_x is not None and "QT_QPA_PLATFORM=wayland" in only_x.message


def test_a_complete_system_and_offscreen_pass(tmp_path: Path) -> None:
    qt = _fake_qt(tmp_path)
    assert dc.check_display({"DISPLAY": ":0"}, qt, DEBIAN, _ldd_missing(), system="linux") is None
    assert dc.check_display({"QT_QPA_PLATFORM": "offscreen"}, qt, DEBIAN, _ldd_missing("x.so"),
                            system="linux") is None
    assert dc.check_display({}, qt, DEBIAN, _ldd_missing("x.so"), system="darwin") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check runs on Linux only")
def test_real_plugin_check_agrees_with_the_dynamic_linker() -> None:
    """On this machine: the check reports exactly the libraries ldd reports missing for the real plugin."""
    qt = dc._qt_dir()
    assert qt is not None
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    missing = dc.missing_libraries([plugin])
    problem = dc.check_display({"DISPLAY": ":99"}, system="linux")
    if missing:
        assert problem is not None and all(name in problem.message for name in missing)
    else:
        assert problem is None


def test_gui_command_stops_with_the_message_before_importing_qt(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM",
                                                            "SEGSTUDIO_SKIP_DISPLAY_CHECK")}
    code = ("import sys; from segstudio.cli.main import main; rc = main([sys.argv[1]]); "
            "print('qt-loaded' if 'PySide6.QtWidgets' in sys.modules else 'qt-not-loaded'); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=120)
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check runs on Linux only")
    assert result.returncode == 3
    assert "no display" in result.stderr
    assert "qt-not-loaded" in result.stdout
