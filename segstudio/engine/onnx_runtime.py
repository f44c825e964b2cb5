"""ONNX Runtime and TorchScript backends for the one inference path (engine.inference.infer).

Session options chosen by measurement on a 2-core CPU (benchmarks/inference.py): full graph
optimisation, one intra-op thread per physical core, sequential execution, memory arena and
pattern planning on. Inputs are normalised into a preallocated float32 NCHW buffer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import ModelError
from segstudio.engine.inference import PredictorBase, settings_for
from segstudio.engine.inference_settings import InferenceSettings
from segstudio.engine.modelfile import ModelConfig

ONNX_CONFIG_KEY = "segstudio_config"


def physical_cores() -> int:
    """Physical cores this process may use (SMT siblings counted once); os.cpu_count() else."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return len(allowed) or 1
    return len(cores) or 1


def onnx_session_options(threads: int | None = None, spinning: bool = False) -> Any:
    """CPU session options: ALL graph optimisations, a thread per physical core, sequential
    execution, arena + memory pattern; idle threads sleep (spinning steals shared cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or physical_cores())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    flag = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    return options


def read_onnx_config(path: Path, metadata: dict[str, str]) -> ModelConfig:
    """The ModelConfig an exported file carries in its metadata (or a config.json beside it)."""
    if ONNX_CONFIG_KEY in metadata:
        try:
            data = json.loads(metadata[ONNX_CONFIG_KEY])
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: metadata '{ONNX_CONFIG_KEY}' is not valid JSON ({exc})") from exc
        return ModelConfig.from_dict(data, source=f"{path} metadata")
    from segstudio.engine.modelfile import read_config

    beside = path.parent / "config.json"
    if beside.is_file():
        return read_config(beside)
    raise ModelError(
        f"{path} carries no segstudio metadata and has no config.json beside it; "
        "export it with `segstudio export-model`"
    )


def onnx_session(path: Path, device: str = "cpu", threads: int | None = None) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"{path} not found; give an exported .onnx model file")
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") or device == "auto":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device != "auto":
            raise ModelError("ONNX Runtime here has no CUDA support; use --device cpu")
    try:
        return ort.InferenceSession(str(path), sess_options=onnx_session_options(threads), providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{path} cannot be loaded by ONNX Runtime ({exc})") from exc


class OnnxBackend:
    """An ONNX Runtime session; pixels are normalised into a reused float32 buffer in one
    multiply-add pass (x * 1/(255 std) - mean/std)."""

    def __init__(self, session: Any, config: ModelConfig) -> None:
        self.session = session
        self.config = config
        self.input_name = session.get_inputs()[0].name
        std = np.asarray(config.std, dtype=np.float64)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(1, -1, 1, 1)
        self._shift = (-np.asarray(config.mean, dtype=np.float64) / std).astype(np.float32).reshape(1, -1, 1, 1)
        self._buffer = np.empty(0, dtype=np.float32)

    def normalized(self, batch: np.ndarray) -> np.ndarray:
        if self._buffer.shape != batch.shape:
            self._buffer = np.empty(batch.shape, dtype=np.float32)
        np.multiply(batch, self._scale, out=self._buffer)
        self._buffer += self._shift
        return self._buffer

    def run_normalized(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.run_normalized(self.normalized(batch))


class OnnxPredictor(PredictorBase):
    """ONNX Runtime backend with the same interface as Predictor."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None,
                 config: ModelConfig | None = None, settings: InferenceSettings | None = None,
                 **options: Any) -> None:
        self.path = Path(path)
        self.session = onnx_session(self.path, device, threads)
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.config = config or read_onnx_config(self.path, metadata)
        self.settings = settings_for(self.config, settings=settings, **options)
        self.backend = OnnxBackend(self.session, self.config)
        self.input_name = self.backend.input_name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The network alone on a normalised float32 NCHW batch (for timing)."""
        return self.backend.run_normalized(batch)


def load_torchscript(path: str | os.PathLike[str]) -> tuple[Any, ModelConfig]:
    """A TorchScript export and the config it carries (extra file config.json)."""
    import warnings

    import torch

    extra = {"config.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(f"{path} cannot be loaded as TorchScript ({exc})") from exc
    if not extra["config.json"]:
        raise ModelError(f"{path} carries no segstudio config; export it with `segstudio export-model`")
    data = json.loads(extra["config.json"])
    return module, ModelConfig.from_dict(data, source=f"{path} config")
