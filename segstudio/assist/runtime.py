"""ONNX Runtime plumbing: execution providers, opening model files, typed feeds, cancellation.

Only onnxruntime and numpy: the assist core runs in the app, the CLI and on a server alike.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from segstudio.assist.errors import AssistCancelled, AssistError

# Accelerators in the order we prefer them; CPU is always the last resort.
PREFERRED_PROVIDERS = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_NAMES = {
    "CUDAExecutionProvider": "CUDA",
    "CoreMLExecutionProvider": "CoreML",
    "DmlExecutionProvider": "DirectML",
    "CPUExecutionProvider": "CPU",
}
_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
}


def choose_providers(device: str = "auto") -> list[str]:
    """Providers to ask for: the accelerators onnxruntime offers here, then CPU.

    device: 'auto', 'cpu', or an accelerator name ('cuda', 'coreml', 'directml')."""
    available = set(ort.get_available_providers())
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = [p for p in PREFERRED_PROVIDERS if p in available or p == "CPUExecutionProvider"]
    if device != "auto":
        match = [p for p in wanted if PROVIDER_NAMES.get(p, "").lower() == device.lower()]
        if not match:
            offered = ", ".join(PROVIDER_NAMES.get(p, p) for p in wanted)
            raise AssistError(f"device {device!r} is not offered by this onnxruntime; it offers {offered}")
        return [*match, "CPUExecutionProvider"]
    return wanted


def provider_label(session: ort.InferenceSession) -> str:
    """The provider a session really runs on ('CUDA', 'CPU', ...), for the status bar."""
    first = session.get_providers()[0]
    return PROVIDER_NAMES.get(first, first.replace("ExecutionProvider", ""))


def open_session(path: str | Path, role: str, providers: list[str]) -> ort.InferenceSession:
    """Open one model file; a missing or non-ONNX file is an AssistError naming it."""
    path = Path(path)
    if not path.is_file():
        raise AssistError(f"{role} file {path} does not exist; give the path of the {role} .onnx file")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # provider fall-back warnings would reach the user's terminal
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise AssistError(
            f"{path} is not a usable ONNX {role} ({detail}); pick the {role} .onnx file of a "
            "Segment-Anything-family model (files over 2 GB need their external-data file beside them)"
        ) from exc


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the session reports it."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: type


def specs(args: list) -> dict[str, TensorSpec]:
    return {a.name: TensorSpec(a.name, tuple(a.shape), _NUMPY_TYPES.get(a.type, np.float32)) for a in args}


def typed_feed(session_inputs: dict[str, TensorSpec], values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cast each value to the dtype the session reports (orig_im_size is float32 in some
    exports, int64 or int32 in others); values the session does not take are dropped."""
    return {
        name: np.ascontiguousarray(value, dtype=session_inputs[name].dtype)
        for name, value in values.items()
        if name in session_inputs
    }


class CancelToken:
    """Cancels a running encode from another thread: RunOptions.terminate stops onnxruntime
    within a fraction of a second, so a stale encode does not hold the CPU."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.run_options = ort.RunOptions()

    def cancel(self) -> None:
        self._event.set()
        self.run_options.terminate = True

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise AssistCancelled("the encode was cancelled")


def run_session(session: ort.InferenceSession, feed: dict[str, np.ndarray],
                cancel: CancelToken | None = None,
                outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Run and return outputs by name (all, or only `outputs`); a cancelled run raises
    AssistCancelled."""
    if cancel is not None:
        cancel.check()
    names = list(outputs) if outputs else [o.name for o in session.get_outputs()]
    try:
        values = session.run(names, feed, cancel.run_options if cancel is not None else None)
    except Exception as exc:
        if cancel is not None and cancel.cancelled:
            raise AssistCancelled("the encode was cancelled") from exc
        raise AssistError(f"the model failed to run: {str(exc).strip()[:300]}") from exc
    return dict(zip(names, values))
