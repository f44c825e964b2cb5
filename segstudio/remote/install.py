"""`segstudio remote setup HOST`: the same segstudio as here, in a venv on the host.

A wheel is built here from this very source (`pip wheel --no-deps`), so both sides run the
same code, sent over ssh (landing under a temp name, then renamed) and installed into
ROOT/venv on the host; its dependencies come from the host's package registry. With a base
interpreter (a cluster's PyTorch module, or in tests an interpreter that already has
everything), the venv sees that interpreter's packages and nothing is downloaded.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import segstudio
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.ssh import RemoteError, Ssh, shell_path

PIP_QUIET = ["--disable-pip-version-check", "--no-input"]

_BASE_PATHS = "import json, sysconfig; p = sysconfig.get_paths(); print(json.dumps(sorted({p['purelib'], p['platlib']})))"
_WRITE_PTH = ("import pathlib, sys, sysconfig; "
              "pathlib.Path(sysconfig.get_paths()['purelib'], 'segstudio-base.pth').write_text(sys.argv[1])")


def source_tree() -> Path | None:
    """The folder holding segstudio's pyproject.toml, when running from a source checkout."""
    root = Path(segstudio.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def build_wheel(out_dir: Path) -> Path:
    """segstudio as a wheel, built from the running source (no dependencies bundled)."""
    source = source_tree()
    if source is None:
        raise RemoteError("this segstudio was not installed from source, so no wheel can be built here; "
                          "pass one with --wheel FILE (pip wheel --no-deps segstudio)")
    # Built from a clean copy: an in-tree build would reuse build/, where stale modules linger.
    copy = out_dir / "source"
    shutil.copytree(source / "segstudio", copy / "segstudio",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (source / name).is_file():
            shutil.copy2(source / name, copy / name)
    command = [sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "--no-build-isolation",
               "-q", "-w", str(out_dir), str(copy)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(out_dir.glob("segstudio-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RemoteError(f"building the segstudio wheel failed: {done.stderr.strip()[-500:]}")
    return wheels[-1]


def setup_host(host: HostConfig, *, python: str = "python3", base_python: str | None = None,
               wheel: Path | None = None, ssh: Ssh | None = None,
               log: Callable[[str], None] = print) -> HostConfig:
    """Install this segstudio into HOST's ROOT/venv; the registry then points at that venv."""
    ssh = ssh or Ssh(host.name)
    venv = host.venv
    venv_python = f"{venv}/bin/python"
    with tempfile.TemporaryDirectory(prefix="segstudio-wheel-") as tmp:
        if wheel is None:
            log("building the segstudio wheel here")
            wheel = build_wheel(Path(tmp))
        remote_wheel = f"{host.root.rstrip('/')}/wheels/{wheel.name}"
        part = f"{host.root.rstrip('/')}/wheels/.{wheel.name}.part"
        log(f"sending {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) to {host.name}")
        with open(wheel, "rb") as handle:
            ssh.run(f"mkdir -p {shell_path(host.root.rstrip('/') + '/wheels')} && cat > {shell_path(part)} "
                    f"&& mv {shell_path(part)} {shell_path(remote_wheel)}", stdin=handle, timeout_s=600)
    interpreter = base_python or python
    log(f"making the venv {venv} on {host.name} with {interpreter}")
    ssh.run(f"[ -x {shell_path(venv_python)} ] || {shell_path(interpreter)} -m venv {shell_path(venv)}",
            timeout_s=600)
    pip = f"{shell_path(venv_python)} -m pip install {' '.join(PIP_QUIET)} -q"
    if base_python:
        paths = json.loads(ssh.run(f"{shell_path(base_python)} -c {shlex.quote(_BASE_PATHS)}").stdout.strip())
        ssh.run(f"{shell_path(venv_python)} -c {shlex.quote(_WRITE_PTH)} {shlex.quote(chr(10).join(paths) + chr(10))}")
        log(f"installing segstudio (the packages of {base_python} are used as they are)")
        ssh.run(f"{pip} --force-reinstall --no-deps {shell_path(remote_wheel)}", timeout_s=900)
    else:
        log("installing segstudio and its dependencies from the package registry (may take minutes)")
        ssh.run(f"{pip} --force-reinstall --no-deps {shell_path(remote_wheel)} && {pip} {shell_path(remote_wheel)}",
                timeout_s=3600)
    updated = replace(host, python="")
    HostRegistry().put(updated)
    return updated
