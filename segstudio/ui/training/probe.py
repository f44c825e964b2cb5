"""What this machine can train on, found in a child process and explained in words.

`python -m segstudio.ui.training.probe` imports torch (seconds), looks for CUDA and Apple
MPS, notices a GPU that torch cannot use (a CPU-only build, a missing or too old driver,
CUDA_VISIBLE_DEVICES hiding it) and prints one JSON object. It imports no Qt, so the app
runs it as a child and never pays the torch import on its UI thread. `explain` turns the
facts into the sentence the training panel shows.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fallback choices shown before the probe answers (the probe reports the engine's own).
ARCHITECTURES = ("unet", "unetplusplus", "fpn", "deeplabv3", "deeplabv3plus", "linknet", "pspnet", "pan",
                 "manet", "upernet", "segformer", "segnet", "segnet_basic", "fcn8s", "fcn16s", "fcn32s")
LOSSES = ("ce", "dice", "ce_dice", "focal", "lovasz")
AUGMENT_PRESETS = ("none", "light", "standard", "strong")
CLASS_WEIGHTS = ("none", "median_frequency")
ENCODERS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0", "efficientnet-b3",
            "vgg16", "vgg16_bn")


@dataclass(frozen=True)
class DeviceReport:
    """The device a default run uses, and why not a GPU when the machine seems to have one."""

    device_type: str  # cuda / mps / cpu
    name: str
    memory_mb: float | None = None
    reason: str = ""  # why no GPU is used ("" when a GPU is used or none exists)
    advice: str = ""  # what to do about it
    torch_version: str = ""
    ok: bool = True  # False: torch itself could not be imported

    @property
    def gpu(self) -> bool:
        return self.device_type in ("cuda", "mps")


def _nvidia_present() -> bool:
    """An NVIDIA GPU seems installed (driver tools or device nodes), whatever torch says."""
    if Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists():
        return True
    return shutil.which("nvidia-smi") is not None


def _apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def probe() -> dict[str, Any]:
    """Facts about torch and the GPUs of this machine, as plain JSON values."""
    facts: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "nvidia_present": _nvidia_present(),
        "apple_silicon": _apple_silicon(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpu_count": os.cpu_count() or 1,
    }
    try:
        import torch
    except Exception as exc:  # a broken or missing install: the panel says so
        facts["torch_error"] = f"{type(exc).__name__}: {exc}"
        return facts
    facts["torch_version"] = torch.__version__
    facts["torch_cuda"] = torch.version.cuda
    facts["cuda_available"] = False
    facts["cuda_devices"] = []
    if torch.version.cuda:
        try:
            torch.cuda.init()
            facts["cuda_available"] = torch.cuda.is_available()
        except Exception as exc:  # why CUDA is unusable: driver too old, no device...
            facts["cuda_error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if facts["cuda_available"]:
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                facts["cuda_devices"].append({
                    "name": props.name, "memory_mb": round(props.total_memory / 2**20),
                    "capability": f"{props.major}.{props.minor}"})
    mps = getattr(torch.backends, "mps", None)
    facts["mps_built"] = bool(mps is not None and mps.is_built())
    facts["mps_available"] = bool(mps is not None and mps.is_available())
    facts["mac_version"] = platform.mac_ver()[0] if sys.platform == "darwin" else ""
    facts["choices"] = _engine_choices()
    return facts


def _engine_choices() -> dict[str, list[str]]:
    """The option lists of the engine itself, so the panel never offers a stale name."""
    try:
        from segstudio.engine.augment import PRESETS
        from segstudio.engine.config import CLASS_WEIGHTS as WEIGHTS
        from segstudio.engine.losses import LOSSES as ENGINE_LOSSES
        from segstudio.engine.models.registry import available_architectures, available_encoders
    except Exception:  # an engine that does not import is reported when training starts
        return {}
    return {"architectures": list(available_architectures()), "encoders": list(available_encoders()),
            "losses": list(ENGINE_LOSSES), "augment": list(PRESETS), "class_weights": list(WEIGHTS)}


def explain(facts: dict[str, Any]) -> DeviceReport:
    """The device a default run will use, and in plain words why not a GPU if there is one."""
    cpu = f"CPU ({facts.get('cpu_count', 1)} cores)"
    version = str(facts.get("torch_version", ""))
    if "torch_error" in facts:
        return DeviceReport("cpu", cpu, reason=f"PyTorch cannot be imported ({facts['torch_error']}).",
                            advice="Reinstall segstudio's dependencies (pip install segstudio) and restart.",
                            ok=False)
    devices = facts.get("cuda_devices") or []
    if facts.get("cuda_available") and devices:
        first = devices[0]
        return DeviceReport("cuda", str(first["name"]), float(first["memory_mb"]), torch_version=version)
    if facts.get("mps_available"):
        return DeviceReport("mps", "Apple GPU (MPS)", torch_version=version)
    if facts.get("nvidia_present"):
        hidden = facts.get("cuda_visible_devices")
        if hidden is not None and hidden.strip() in ("", "-1"):
            return DeviceReport(
                "cpu", cpu, torch_version=version,
                reason="The NVIDIA GPU is hidden: CUDA_VISIBLE_DEVICES is set to "
                       f"'{hidden}' in the environment segstudio was started from.",
                advice="Unset CUDA_VISIBLE_DEVICES (or set it to 0) and restart segstudio.")
        if not facts.get("torch_cuda"):
            return DeviceReport(
                "cpu", cpu, torch_version=version,
                reason=f"This machine has an NVIDIA GPU, but the installed PyTorch ({version}) was built "
                       "without CUDA, so it can only use the CPU.",
                advice="Install a CUDA build of PyTorch (see pytorch.org, e.g. "
                       "pip install torch --index-url https://download.pytorch.org/whl/cu124) and restart.")
        error = str(facts.get("cuda_error") or "")
        if "driver" in error.lower() or "too old" in error.lower():
            return DeviceReport(
                "cpu", cpu, torch_version=version,
                reason=f"PyTorch needs CUDA {facts.get('torch_cuda')}, but the NVIDIA driver is missing "
                       f"or too old ({error}).",
                advice="Update the NVIDIA driver to a version that supports CUDA "
                       f"{facts.get('torch_cuda')} or newer, then restart.")
        return DeviceReport(
            "cpu", cpu, torch_version=version,
            reason="This machine has an NVIDIA GPU, but CUDA cannot use it"
                   + (f" ({error})." if error else "."),
            advice="Check that the NVIDIA driver works (run nvidia-smi) and that no other program holds the GPU.")
    if facts.get("apple_silicon"):
        if not facts.get("mps_built"):
            return DeviceReport(
                "cpu", cpu, torch_version=version,
                reason="This Mac has an Apple GPU, but the installed PyTorch was built without MPS support.",
                advice="Install the standard macOS PyTorch wheel (pip install --upgrade torch) and restart.")
        return DeviceReport(
            "cpu", cpu, torch_version=version,
            reason="This Mac has an Apple GPU, but MPS is not available "
                   f"(macOS {facts.get('mac_version') or 'unknown'}; MPS needs macOS 12.3 or newer).",
            advice="Update macOS to 12.3 or newer, then restart.")
    return DeviceReport("cpu", cpu, torch_version=version,
                        reason="No GPU found: training runs on the CPU with a light model and small crops.",
                        advice="A CUDA GPU trains many times faster (segstudio train PROJECT runs there too).")


def main() -> int:
    print(json.dumps(probe()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
