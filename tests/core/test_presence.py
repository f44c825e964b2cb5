"""Presence markers: who else has a project open, with crashed apps' markers ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from segstudio.core.locking import host_name
from segstudio.core.presence import (
    REMOTE_STALE_S,
    Presence,
    PresenceMarker,
    others,
    presence_folder,
)


def write_marker(root: Path, info: Presence) -> Path:
    folder = presence_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / info.file_name
    path.write_text(json.dumps(info.to_dict()), encoding="utf-8")
    return path


def test_a_marker_is_seen_by_others_and_not_by_its_own_process(tmp_path: Path) -> None:
    marker = PresenceMarker(tmp_path)
    assert marker.announce()
    assert marker.path.is_file()
    assert others(tmp_path) == []  # our own marker is not "someone else"
    # The same file read as another live process on this host (our parent shell's pid):
    data = json.loads(marker.path.read_text(encoding="utf-8"))
    data["pid"] = os.getppid()
    write_marker(tmp_path, Presence.from_dict(data))
    found = others(tmp_path)
    assert [(p.host, p.pid) for p in found] == [(host_name(), os.getppid())]
    assert str(os.getppid()) in found[0].describe() and host_name() in found[0].describe()
    marker.withdraw()
    assert not marker.path.exists()


def test_a_dead_process_on_this_host_is_ignored(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid is now free (reuse within the test is practically impossible)
    now = time.time()
    write_marker(tmp_path, Presence(host_name(), child.pid, "ann", now, now))
    assert others(tmp_path) == []


def test_remote_markers_are_stale_after_their_heartbeat_stops(tmp_path: Path) -> None:
    now = time.time()
    fresh = Presence("lab-pc-7", 4242, "bob", now - 3 * REMOTE_STALE_S, now - 10)
    old = Presence("lab-pc-8", 4243, "eve", now - 3 * REMOTE_STALE_S, now - REMOTE_STALE_S - 1)
    write_marker(tmp_path, fresh)
    write_marker(tmp_path, old)
    (presence_folder(tmp_path) / "torn.json").write_text("{\"host\": ", encoding="utf-8")
    assert [p.host for p in others(tmp_path, now)] == ["lab-pc-7"]


def test_beat_and_read_only_rewrite_the_marker(tmp_path: Path) -> None:
    marker = PresenceMarker(tmp_path)
    marker.announce()
    first = marker.info.seen
    time.sleep(0.01)
    marker.beat()
    marker.set_read_only(True)
    stored = Presence.from_dict(json.loads(marker.path.read_text(encoding="utf-8")))
    assert stored is not None and stored.seen > first and stored.read_only
    assert stored.since == marker.info.since


def test_an_unwritable_folder_only_means_nobody_is_told(tmp_path: Path) -> None:
    (tmp_path / ".segstudio").write_text("a file where the folder should be")
    marker = PresenceMarker(tmp_path)
    assert marker.announce() is False
    marker.withdraw()  # no error either
