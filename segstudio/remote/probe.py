"""What a host offers: Python, segstudio and its version, torch and the GPUs it sees, free disk.

One ssh round trip runs a stdlib-only script with the host's interpreter (or python3 when
that is missing, so a host without segstudio still reports what it lacks). The checks a run
needs (same segstudio version, a GPU unless the run asks for the CPU, free disk) raise
RemoteError naming the host and the fix.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from segstudio import __version__
from segstudio.remote.hosts import HostConfig
from segstudio.remote.ssh import RemoteError, Ssh, shell_path

MARKER = "SEGSTUDIO-PROBE "

_SCRIPT = r"""
import json, os, platform, shutil, subprocess, sys
out = {"python": platform.python_version(), "executable": sys.executable, "home": os.path.expanduser("~")}
path = os.path.expanduser(sys.argv[1])
while not os.path.exists(path):
    path = os.path.dirname(path)
out["disk_path"], out["disk_free"] = path, shutil.disk_usage(path).free
try:
    import segstudio
    out["segstudio"] = segstudio.__version__
except Exception as exc:
    out["segstudio"], out["segstudio_error"] = None, f"{type(exc).__name__}: {exc}"
out["gpus"], out["cuda"], out["torch"] = [], False, None
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = bool(torch.cuda.is_available())
    for i in range(torch.cuda.device_count() if out["cuda"] else 0):
        p = torch.cuda.get_device_properties(i)
        out["gpus"].append({"name": p.name, "memory_mb": p.total_memory // 2**20})
except Exception as exc:
    out["torch_error"] = f"{type(exc).__name__}: {exc}"
if not out["gpus"] and shutil.which("nvidia-smi"):
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout
        out["driver_gpus"] = [line.strip() for line in text.splitlines() if line.strip()]
    except Exception:
        pass
print("SEGSTUDIO-PROBE " + json.dumps(out), flush=True)
"""


@dataclass(frozen=True)
class HostReport:
    """A host as `remote check` found it."""

    host: str
    seconds: float
    python: str
    executable: str
    configured_python: bool  # False: the host's interpreter is missing; python3 answered
    segstudio: str | None
    torch: str | None
    cuda: bool
    gpus: tuple[tuple[str, int], ...]
    disk_free: int
    disk_path: str
    home: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def same_version(self) -> bool:
        return self.configured_python and self.segstudio == __version__

    def lines(self) -> list[str]:
        """The report in plain words, one fact a line."""
        lines = [f"host {self.host}: reachable ({self.seconds:.1f} s)",
                 f"  Python {self.python} ({self.executable})"]
        if not self.configured_python or self.segstudio is None:
            lines.append(f"  segstudio: not installed there; run 'segstudio remote setup {self.host}'")
        elif self.segstudio != __version__:
            lines.append(f"  segstudio {self.segstudio} installed, but this computer has {__version__}; "
                         f"run 'segstudio remote setup {self.host}'")
        else:
            lines.append(f"  segstudio {self.segstudio} installed, the same as here")
        if self.torch is None:
            lines.append("  torch: not installed")
        else:
            lines.append(f"  torch {self.torch}, CUDA available to torch: {'yes' if self.cuda else 'no'}")
        for index, (name, memory_mb) in enumerate(self.gpus):
            lines.append(f"  GPU {index}: {name}, {memory_mb / 1024:.1f} GB")
        if not self.gpus:
            lines.append("  GPUs: none that torch can use (training there runs on its CPU)")
        lines.append(f"  free disk: {self.disk_free / 1e9:.1f} GB in {self.disk_path}")
        lines += [f"  note: {note}" for note in self.notes]
        return lines


def probe(host: HostConfig, ssh: Ssh | None = None) -> HostReport:
    """Ask the host (one ssh round trip, a few seconds when torch is imported)."""
    ssh = ssh or Ssh(host.name)
    python = shell_path(host.interpreter)
    script = shlex.quote(_SCRIPT)
    command = (f"if command -v {python} >/dev/null 2>&1; then {python} -c {script} {shell_path(host.root)}; "
               f"else echo SEGSTUDIO-NOPY; python3 -c {script} {shell_path(host.root)}; fi")
    start = time.monotonic()
    result = ssh.run(command, timeout_s=180, check=False)
    seconds = time.monotonic() - start
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RemoteError(f"host {host.name} answered, but has no working Python 3 "
                          f"({result.stderr.strip()[-300:] or 'no output'}); install python3 there")
    data: dict[str, Any] = json.loads(line[len(MARKER):])
    notes = [str(data[k]) for k in ("segstudio_error", "torch_error") if data.get(k) and "No module" not in data[k]]
    if data.get("driver_gpus") and not data.get("gpus"):
        notes.append(f"the driver sees {', '.join(data['driver_gpus'])} but torch cannot use it; "
                     "install a CUDA build of torch in the host's venv")
    return HostReport(
        host=host.name, seconds=seconds, python=str(data["python"]), executable=str(data["executable"]),
        configured_python="SEGSTUDIO-NOPY" not in result.stdout, segstudio=data.get("segstudio"),
        torch=data.get("torch"), cuda=bool(data.get("cuda")),
        gpus=tuple((str(g["name"]), int(g["memory_mb"])) for g in data.get("gpus") or ()),
        disk_free=int(data["disk_free"]), disk_path=str(data["disk_path"]), home=str(data["home"]),
        notes=tuple(notes),
    )


# -- what a run needs ---------------------------------------------------------------------------
def require_segstudio(report: HostReport) -> None:
    if not report.configured_python or report.segstudio is None:
        raise RemoteError(f"segstudio is not installed on host {report.host}; run "
                          f"'segstudio remote setup {report.host}' first")
    if report.segstudio != __version__:
        raise RemoteError(f"host {report.host} has segstudio {report.segstudio}, this computer {__version__}; "
                          f"run 'segstudio remote setup {report.host}' to install the same version there")


def require_device(report: HostReport, device: str, gpus: int) -> None:
    """A run on 'auto' or 'cuda' needs CUDA there; --gpus N needs N of them. With --device cpu,
    --gpus N runs N processes on the host's CPU (gloo), as torchrun does here."""
    wants_gpu = not device.startswith(("cpu", "mps"))
    if wants_gpu and not report.cuda:
        raise RemoteError(f"host {report.host} has no GPU that torch can use; train on this computer, "
                          f"install a CUDA build of torch there, or pass --device cpu to use its CPU")
    if gpus > 1 and wants_gpu and len(report.gpus) < gpus:
        raise RemoteError(f"--gpus {gpus}, but host {report.host} has {len(report.gpus)} GPU(s); "
                          f"ask for at most {len(report.gpus)}")


def require_disk(report: HostReport, host: HostConfig, need_bytes: int) -> None:
    reserve = int(host.min_free_gb * 1e9)
    if report.disk_free < need_bytes + reserve:
        raise RemoteError(
            f"the disk of host {report.host} is (nearly) full: {report.disk_free / 1e9:.1f} GB free in "
            f"{report.disk_path}, the run needs {need_bytes / 1e9:.2f} GB plus {host.min_free_gb:g} GB to "
            f"work in; free space there, or move the host's folder (segstudio remote add {report.host} --root DIR)")
