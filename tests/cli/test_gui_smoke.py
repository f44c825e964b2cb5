"""`segstudio gui --smoke` opens a project and ends by itself, and a bundled program runs
`-m MODULE` as an interpreter would: what packaging/check_pyinstaller.sh relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import segstudio.__main__ as entry

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}


def test_smoke_opens_the_sample_project_and_quits(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "segstudio", "gui", "--smoke"], capture_output=True,
                            text=True, env=_env(tmp_path), timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "segstudio smoke: sample-project open, 24 images" in result.stdout


def test_smoke_fails_when_the_project_does_not_open(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "project.json").write_text("{ not json")
    env = {**_env(tmp_path), "SEGSTUDIO_SKIP_DISPLAY_CHECK": "1"}
    # the error dialog would wait for a click offscreen; the smoke run must still end
    code = ("import sys; from segstudio.ui import dialogs; dialogs.show_error = lambda *a: None\n"
            "from segstudio.cli.main import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "gui", str(broken), "--smoke"], capture_output=True,
                            text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "no project open" in result.stdout


def test_a_frozen_program_runs_dash_m_modules(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "argv", ["segstudio", "-m", "segstudio", "--version"])
    with pytest.raises(SystemExit) as ended:
        entry._run_frozen_module()
    assert ended.value.code == 0 and capsys.readouterr().out.startswith("segstudio ")
    monkeypatch.setattr(sys, "argv", ["segstudio", "-m", "json.tool", "--help"])
    with pytest.raises(SystemExit):  # json.tool's own parser answered: the module ran as __main__
        entry._run_frozen_module()
    assert "json.tool" in capsys.readouterr().out
    monkeypatch.setattr(sys, "frozen", False)
    monkeypatch.setattr(sys, "argv", ["segstudio", "-m", "segstudio"])
    assert entry._run_frozen_module() is None  # an interpreter handled -m already
