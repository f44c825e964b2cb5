"""Through a real OpenSSH server on 127.0.0.1: `remote check`, the project mirror (first and
incremental sync, path mapping) and the faults a user meets, each named in plain words."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BAD_KEY_HOST, DOWN_HOST, HOST, host_python

from segstudio import __version__
from segstudio.cli.main import main
from segstudio.core.project import Project
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.probe import probe, require_device, require_segstudio
from segstudio.remote.runs import launch_run
from segstudio.remote.ssh import RemoteError
from segstudio.remote.sync import project_key, sync_project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remote_builders import make_project  # noqa: E402


def test_remote_check_reports_in_plain_words(host: HostConfig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remote", "check", HOST]) == 0
    out = capsys.readouterr().out
    assert f"host {HOST}: reachable" in out
    assert f"Python {sys.version.split()[0]}" in out
    assert f"segstudio {__version__} installed, the same as here" in out
    assert "CUDA available to torch: no" in out and "GPUs: none that torch can use" in out
    assert "free disk:" in out
    report = probe(host)
    require_segstudio(report)
    require_device(report, "cpu", 1)
    with pytest.raises(RemoteError, match=f"host {HOST} has no GPU.*--device cpu"):
        require_device(report, "auto", 1)


def test_remote_add_list_remove(remote_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remote", "add", "lab", "--root", "/scratch/me", "--map", "/data=/mnt/data"]) == 0
    assert main(["remote", "list"]) == 0
    assert "lab: python /scratch/me/venv/bin/python, folder /scratch/me, maps /data -> /mnt/data" in capsys.readouterr().out
    assert main(["remote", "remove", "lab"]) == 0
    assert HostRegistry().hosts() == []


def test_a_host_without_segstudio_or_with_another_version(remote_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    HostRegistry().put(HostConfig(HOST, root=str(remote_env)))  # its venv does not exist yet
    assert main(["remote", "check", HOST]) == 1
    assert f"segstudio: not installed there; run 'segstudio remote setup {HOST}'" in capsys.readouterr().out
    old = remote_env / "old"
    (old / "segstudio").mkdir(parents=True)
    (old / "segstudio" / "__init__.py").write_text('__version__ = "0.0.1"\n')
    wrapper = remote_env / "oldpython"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={old} exec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(0o755)
    HostRegistry().put(HostConfig(HOST, python=str(wrapper), root=str(remote_env)))
    with pytest.raises(RemoteError, match=f"host {HOST} has segstudio 0.0.1, this computer {__version__}; "
                                          f"run 'segstudio remote setup {HOST}'"):
        require_segstudio(probe(HostRegistry().get(HOST)))


def test_unreachable_host_and_rejected_key(remote_env: Path) -> None:
    for name, words in ((DOWN_HOST, f"cannot reach host {DOWN_HOST}"),
                        (BAD_KEY_HOST, f"host {BAD_KEY_HOST} rejected the SSH key")):
        HostRegistry().put(HostConfig(name, python=str(host_python(remote_env / "bin")), root=str(remote_env)))
        with pytest.raises(RemoteError, match=words):
            probe(HostRegistry().get(name))
        assert main(["remote", "check", name]) == 2


def _mirror(host: HostConfig, project: Project) -> Path:
    return Path(host.mirror(project_key(project)))


def test_first_sync_sends_everything_then_only_what_changed(host: HostConfig, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    record = project.images[0]
    project.add_image(project.image_path(record), split="train", image_id="unlabelled")  # never sent
    project.save()
    first = sync_project(project, host)
    files = sorted(p for p in (project.root / "images").iterdir()) + sorted((project.root / "masks").iterdir())
    payload = sum(p.stat().st_size for p in files)
    assert first.files_sent == first.files_total == 12 + 1  # 6 images + 6 masks + the manifest
    assert payload < first.bytes_sent < payload + 4000  # the manifest and the framing on top
    mirror = _mirror(host, project)
    for path in files:
        assert (mirror / path.parent.name / path.name).read_bytes() == path.read_bytes()
    manifest = json.loads((mirror / "project.json").read_text())
    assert len(manifest["images"]) == 6 and all(i["path"].startswith("images/") for i in manifest["images"])
    assert Project.open(mirror).read_mask(record.id) is not None
    second = sync_project(project, host)
    assert (second.files_sent, second.bytes_sent) == (0, 0)
    mask = project.read_mask(record).copy()
    mask[:5, :5] = 1 - mask[:5, :5]
    project.write_mask(record, mask)
    third = sync_project(Project.open(project.root), host)
    changed = project.mask_path(record).stat().st_size
    assert third.files_sent == 1 and changed < third.bytes_sent < changed + 500
    assert (mirror / "masks" / f"{record.id}.png").read_bytes() == project.mask_path(record).read_bytes()
    project.update_image(project.images[1].id, status="unlabeled")
    project.save()
    fourth = sync_project(project, host)
    assert fourth.deleted == 2 and fourth.files_sent == 1  # its image and mask go; a new manifest
    print(f"\nsync bytes: first {first.bytes_sent}, unchanged {second.bytes_sent}, one mask {third.bytes_sent}")


def test_images_the_host_has_are_used_in_place(host: HostConfig, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    shared = tmp_path / "host-share"
    shared.mkdir()
    for path in (project.root / "images").iterdir():
        shared.joinpath(path.name).write_bytes(path.read_bytes())
    mapped = HostConfig(host.name, python=host.python, root=host.root,
                        path_map=((str(project.root / "images"), str(shared)),))
    result = sync_project(project, mapped)
    assert result.mapped == 6 and result.files_sent == 6 + 1  # masks and manifest only
    mirror = _mirror(mapped, project)
    assert not (mirror / "images").exists()
    assert Project.open(mirror).read_image(project.images[0].id).shape == (64, 80, 3)
    next(shared.iterdir()).unlink()
    with pytest.raises(RemoteError, match=f"host {HOST}.*mapped image\\(s\\) are not on the host"):
        sync_project(project, mapped)


def test_a_full_disk_and_a_missing_gpu_are_refused_before_sending(host: HostConfig, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", n_train=2, n_val=1)
    full = HostRegistry().update(HOST, min_free_gb=1e9)
    with pytest.raises(RemoteError, match=f"the disk of host {HOST} is \\(nearly\\) full.*free space there"):
        launch_run(project, full, ["--device", "cpu"], device="cpu")
    with pytest.raises(RemoteError, match=f"host {HOST} has no GPU"):
        launch_run(project, HostRegistry().update(HOST, min_free_gb=0.0), [], device="auto")
    assert not Path(full.root, "mirrors").exists()  # nothing was sent


def test_the_mirror_reads_as_the_same_project(host: HostConfig, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", n_train=2, n_val=1)
    sync_project(project, host)
    mirror = Project.open(_mirror(host, project))
    assert [r.id for r in mirror.images] == [r.id for r in project.images]
    assert mirror.classes == project.classes
    for record in project.images:
        assert np.array_equal(mirror.read_mask(record.id), project.read_mask(record))
        assert np.array_equal(mirror.read_image(record.id), project.read_image(record))


@pytest.mark.slow
def test_remote_setup_installs_this_segstudio_into_a_venv_there(remote_env: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    base = host_python(remote_env / "bin")  # an interpreter that has torch & co: nothing downloaded
    HostRegistry().put(HostConfig(HOST, root=str(remote_env)))
    assert main(["remote", "setup", HOST, "--base-python", str(base)]) == 0
    out = capsys.readouterr().out
    venv_python = remote_env / "venv" / "bin" / "python"
    assert f"Python {sys.version.split()[0]} ({venv_python})" in out
    assert f"segstudio {__version__} installed, the same as here" in out
    assert HostRegistry().get(HOST).interpreter == str(remote_env / "venv" / "bin" / "python")
    import subprocess

    where = subprocess.run([str(venv_python), "-c", "import segstudio; print(segstudio.__file__)"],
                           capture_output=True, text=True, check=True, cwd=remote_env).stdout.strip()
    assert where.startswith(str(remote_env / "venv"))  # the wheel's copy, not this checkout
    assert (remote_env / "wheels" / f"segstudio-{__version__}-py3-none-any.whl").is_file()
