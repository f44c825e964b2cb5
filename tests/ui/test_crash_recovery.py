"""Crash recovery for real: a child process running the window paints, the journal is
written, the child is killed with SIGKILL, and the next start offers the work back."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import segstudio.ui.resources as resources
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.ui.main_window import MainWindow
from tests.ui.processes import WINDOW_DRIVER, run_until_then_kill

DRIVER = WINDOW_DRIVER + textwrap.dedent(
    """
    # No saving to the masks: only the journal may hold this work when the kill comes.
    workspace.autosaver.set_intervals(save_delay_ms=0, journal_interval_ms=100)
    workspace.open_image("img02")
    document = workspace.session.document
    document.apply_edit("paint car", Region(5, 5, 30, 40), 1)
    document.begin_stroke("second stroke")
    document.write(Region(35, 50, 45, 60), 2)  # left open: the kill comes mid-stroke
    np.save(sys.argv[2], np.array(document.mask))

    def poll():
        journal = RecoveryJournal(Path(sys.argv[1]))
        if journal.revision_of("img02") == document.revision:
            print("JOURNALED", flush=True)

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    app.exec()
    """
)


def run_and_kill(project: Project, tmp_path: Path) -> np.ndarray:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    painted_file = tmp_path / "painted.npy"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run_until_then_kill([sys.executable, str(script), str(project.root), str(painted_file), str(tmp_path / "qs")],
                        "JOURNALED", timeout_s=60, env=env)
    return np.load(painted_file)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_killed_mid_edit_then_offered_back_and_restored(qtbot, make_project, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    project = make_project(count=4, labeled=1)
    painted = run_and_kill(project, tmp_path)
    assert project.read_mask("img02") is None  # nothing reached the mask itself
    assert (painted == 1).sum() == 25 * 35 and (painted == 2).sum() == 100

    offered: list[list[str]] = []
    window = MainWindow()
    qtbot.addWidget(window)
    window.workspace.ask_restore = lambda found: offered.append([f.entry.image_id for f in found]) or True
    assert window.open_project(project.root)
    assert offered == [["img02"]]
    reopened = Project.open(project.root)
    assert np.array_equal(reopened.read_mask("img02"), painted)
    assert reopened.image("img02").status == "in_progress"
    assert not (project.root / ".recovery").exists()
    window.workspace.open_image("img02")
    assert np.array_equal(window.workspace.session.document.mask, painted)


def test_declined_offer_keeps_the_saved_mask(qtbot, make_project, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    project = make_project(count=3, labeled=1)
    saved = project.read_mask("img00")
    unsaved = saved.copy()
    unsaved[0:10, 0:10] = 1
    RecoveryJournal(project.root).record("img00", unsaved, 7, "labeled", project)
    window = MainWindow()
    qtbot.addWidget(window)
    window.workspace.ask_restore = lambda found: False
    assert window.open_project(project.root)
    assert np.array_equal(Project.open(project.root).read_mask("img00"), saved)
    assert RecoveryJournal(project.root).entries == {}
    # and painting afterwards journals again, under the same folder
    assert window.workspace.session.document.apply_edit("p", Region(18, 0, 22, 5), 1)
    assert window.workspace.session.write_journal() == 1
    assert RecoveryJournal(project.root).revision_of("img00") is not None
