"""A release you can install: the wheel carries the sample project, icons and launcher and runs
from site-packages; `segstudio install-desktop` puts the launcher in the desktop's menu."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from segstudio.cli import desktop_cmd

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "segstudio" / "resources"


def test_install_desktop_writes_an_entry_that_starts_this_installation(tmp_path: Path) -> None:
    entry, icon = desktop_cmd.install(RESOURCES, tmp_path)
    assert entry == tmp_path / "applications" / "segstudio.desktop"
    assert icon.read_bytes() == (RESOURCES / "icons" / "segstudio.svg").read_bytes()
    lines = entry.read_text().splitlines()
    exec_line = next(line for line in lines if line.startswith("Exec="))
    program = exec_line.removeprefix("Exec=").split()[0]
    assert Path(program).is_absolute() and Path(program).exists()
    assert exec_line.endswith(" gui %f")
    assert "Icon=segstudio" in lines and "Type=Application" in lines
    validator = subprocess.run(["which", "desktop-file-validate"], capture_output=True, text=True).stdout.strip()
    if validator:
        result = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(desktop_cmd.uninstall(tmp_path)) == sorted([entry, icon])
    assert not entry.exists() and not icon.exists()


def test_install_desktop_command_honours_xdg_data_home(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    result = subprocess.run([sys.executable, "-m", "segstudio", "install-desktop"], capture_output=True,
                            text=True, env=env, timeout=120)
    if not sys.platform.startswith("linux"):
        assert result.returncode == 2
        return
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "share" / "applications" / "segstudio.desktop").is_file()


@pytest.mark.slow
def test_the_wheel_installs_and_runs_from_site_packages(tmp_path: Path) -> None:
    """Build the wheel, install it (without dependencies, which this venv has) into a folder of
    its own, and run it from there: version, the packaged sample project, a window offscreen."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("segstudio-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "segstudio/resources/sample/project.json" in names
    assert "segstudio/resources/icons/segstudio.svg" in names
    assert sum(name.startswith("segstudio/resources/sample/masks/") for name in names) == 20
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    code = (
        "import sys, segstudio; from pathlib import Path\n"
        f"assert Path(segstudio.__file__).is_relative_to({str(site)!r}), segstudio.__file__\n"
        "from segstudio.ui.app import create_app; from segstudio.ui.main_window import MainWindow\n"
        "import segstudio.ui.resources as r\n"
        f"r.user_data_dir = lambda: Path({str(tmp_path / 'data')!r})\n"
        "app = create_app(); w = MainWindow(); w.show()\n"
        "assert w.workspace.open_sample()\n"
        "print('images', len(w.workspace.project.images), 'from', r.resources_dir())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}
    version = subprocess.run([sys.executable, "-m", "segstudio", "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("segstudio ")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"images 24 from {site}" in run.stdout
