"""Run folders and checkpoints: safetensors weights plus a tensors-and-dicts state file.

    PROJECT/runs/<run-id>/
      config.json              the resolved training settings
      metrics.jsonl            one `epoch_end` event per line
      checkpoints/last.safetensors, last.pt   weights; optimizer, scheduler, scaler,
                                              epoch, best figures and RNG states
      checkpoints/best.safetensors            weights of the best epoch (val mIoU)
      previews/                                image | truth | prediction PNGs

The state file holds only tensors, numbers, strings, lists and dicts, so it is read with
`torch.load(weights_only=True)`: no pickled objects are ever loaded. Every file is written
atomically (temp + fsync + replace), the "last" pair both in full before either replaces its
predecessor, so a full disk or a kill leaves the previous checkpoint whole; the weights carry
their epoch, so a pair torn between the two renames is recognised on resume.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from segstudio.core.atomic import atomic_open, atomic_write_bytes, atomic_write_json
from segstudio.core.errors import TrainingError


def new_run_id(runs_dir: Path, name: str | None, arch: str, encoder: str) -> str:
    """A readable, unique folder name: the given name, or time + model."""
    base = name or f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}-{encoder}"
    base = re.sub(r"[^A-Za-z0-9._+-]+", "-", base).strip("-.") or "run"
    candidate, n = base, 2
    while (runs_dir / candidate).exists():
        candidate = f"{base}-{n}"
        n += 1
    return candidate


def resolve_run_dir(project_root: Path, run: str) -> Path:
    """`--resume RUN`: a run id under PROJECT/runs or a path to a run folder."""
    for candidate in (Path(run), project_root / "runs" / run):
        if (candidate / "checkpoints" / "last.pt").is_file():
            return candidate
    raise TrainingError(
        f"no resumable run '{run}' (looked for checkpoints/last.pt in {run} and "
        f"{project_root / 'runs' / run}); give a run id from {project_root / 'runs'}"
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel (or torch.compile)."""
    inner = getattr(model, "module", None)
    model = inner if isinstance(inner, nn.Module) else model
    return getattr(model, "_orig_mod", model)


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies (channels_last weights are not contiguous, safetensors wants that)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in unwrap(model).state_dict().items()}


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save_safetensors_bytes(cpu_state_dict(model), metadata=metadata))


def load_weights(path: Path, model: nn.Module) -> dict[str, str]:
    """Load a weights file into `model`; returns the file's metadata."""
    try:
        data = path.read_bytes()
        state = load_safetensors_bytes(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        unwrap(model).load_state_dict(state)
    except Exception as exc:  # missing, corrupt, truncated, or weights of another model
        raise TrainingError(f"cannot read weights {path} ({type(exc).__name__}: {exc}); "
                            "the file is damaged or belongs to another model") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(metadata) if isinstance(metadata, dict) else {}


def finite_state(model: nn.Module) -> bool:
    """Whether every floating-point weight and buffer (batch-norm statistics too) is finite;
    a model that went NaN is never written over a good checkpoint."""
    flags = [torch.isfinite(t).all() for t in unwrap(model).state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True  # one sync, not one per tensor


def save_last(folder: Path, model: nn.Module, state: dict[str, Any]) -> Path:
    """Write last.safetensors and last.pt as one pair; returns the weights' path. Both are
    written in full (temp + fsync) before either replaces the old one, so a full disk leaves
    the previous pair as it was; the weights name their epoch for the check on resume."""
    weights = save_safetensors_bytes(cpu_state_dict(model), metadata={"epoch": str(int(state["epoch"]))})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:  # replaced in reverse order, only if both were written
        for path, data in ((folder / "last.pt", buffer.getvalue()), (folder / "last.safetensors", weights)):
            stack.enter_context(atomic_open(path)).write(data)
    return folder / "last.safetensors"


# -- RNG states, as plain tensors ------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": torch.tensor(py_state[1], dtype=torch.int64)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(int(v) for v in python_state["state"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except RuntimeError:  # fewer GPUs than when saved: keep the fresh states
            pass


def save_state(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"cannot read training state {path} ({type(exc).__name__}: {exc}); "
                            "the file is damaged; start a new run instead") from exc
    if not isinstance(state, dict):
        raise TrainingError(f"{path} is not a training state of segstudio; start a new run instead")
    return state


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_json(run_dir / "config.json", config)


def read_config(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingError(f"cannot read {run_dir / 'config.json'} ({exc}); the run cannot be resumed") from exc


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line; a failed append (disk full) is cut back off, never left half-written."""
    line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
    with path.open("ab") as handle:
        size = handle.tell()
        try:
            handle.write(line)
            handle.flush()
        except OSError:
            with contextlib.suppress(OSError):
                os.truncate(path, size)
            raise


# -- the best epoch --------------------------------------------------------------------------
@dataclass
class BestTracker:
    """The best validation so far (by mIoU) and the epochs since it improved; it owns its
    part of the state file (`to_state`/`from_state`: keys "best" and "epochs_without_gain")."""

    miou: float = -math.inf
    epoch: int | None = None
    metrics: dict[str, Any] | None = None
    epochs_without_gain: int = 0  # validations, since validations may skip epochs
    subset: bool = False  # the best figures are of the val subset (to be re-scored on all)

    def update(self, epoch: int, miou: float | None, metrics: dict[str, Any], subset: bool = False) -> bool:
        """Record the validation of `epoch` (1-based); True when it is the new best."""
        score = -math.inf if miou is None else miou
        if score > self.miou + 1e-6:
            self.miou, self.epoch, self.metrics, self.subset = score, epoch, metrics, subset
            self.epochs_without_gain = 0
            return True
        self.epochs_without_gain += 1
        return False

    def rescored(self, miou: float | None, metrics: dict[str, Any]) -> None:
        """The best epoch's figures on the whole val split."""
        self.miou, self.metrics, self.subset = -math.inf if miou is None else miou, metrics, False

    def patience_spent(self, patience: int | None) -> bool:
        return bool(patience) and self.epochs_without_gain >= int(patience or 0)

    @property
    def best_miou(self) -> float | None:
        return self.miou if self.epoch else None

    def to_state(self) -> dict[str, Any]:
        return {"best": {"miou": self.miou, "epoch": self.epoch, "metrics": self.metrics, "subset": self.subset},
                "epochs_without_gain": self.epochs_without_gain}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BestTracker:
        best = state.get("best") or {}
        return cls(float(best.get("miou", -math.inf)), best.get("epoch"), best.get("metrics"),
                   int(state.get("epochs_without_gain", 0)), bool(best.get("subset", False)))
