"""What a user reads when a training run meets a fault it cannot train through: a full or
failing disk, a damaged checkpoint on resume, a loss that stays NaN. Each message says what
happened, what is still safe on disk, and what to do next (the run ends with it as an error).
"""

from __future__ import annotations

from pathlib import Path


def _best_model_hint(run_dir: Path, models_dir: Path) -> str:
    model = models_dir / run_dir.name
    if (model / "config.json").is_file():
        return f"the run's best model is {model}"
    best = run_dir / "checkpoints" / "best.safetensors"
    if best.is_file():
        return f"the best weights so far are {best}"
    return "the run has no best model yet"


def resume_failure(run_dir: Path, models_dir: Path, detail: str) -> str:
    """A run that cannot be resumed (a damaged or torn checkpoint): why, and the ways on."""
    return (f"cannot resume run '{run_dir.name}': {detail}. Start a fresh run instead (the same "
            f"command without --resume); {_best_model_hint(run_dir, models_dir)}, and "
            f"--init-from {run_dir.name} starts the fresh run from it when it is a model")


def storage_failure(what: str, detail: str, run_dir: Path, saved_epoch: int | None) -> str:
    """A write of the run failed (disk full, read-only, I/O error): the run stops, because
    nothing it learned from then on could be kept; the previous files are intact."""
    if saved_epoch:
        kept = (f"The last checkpoint (epoch {saved_epoch}) is intact: free some space (or make "
                f"{run_dir} writable) and continue with --resume {run_dir.name}")
    else:
        kept = "No checkpoint was written yet: free some space and start the run again"
    return f"training stopped: could not write {what} ({detail}). {kept}."


def nonfinite_failure(epoch: int, streak: int, lr: float, run_dir: Path, models_dir: Path,
                      saved_epoch: int | None, weights: bool) -> str:
    """The loss (or the model itself) went NaN/inf and stayed so: the likely causes and what
    is still good."""
    what = ("the model's weights became NaN/inf" if weights else
            f"the loss was NaN/inf for {streak} steps in a row (those steps changed no weight; "
            f"the learning rate was lowered to {lr:.3g})")
    kept = (f"the last good checkpoint (epoch {saved_epoch}) is in {run_dir / 'checkpoints'}"
            if saved_epoch else "no checkpoint was written before it")
    return (f"training stopped in epoch {epoch}: {what}. Likely causes: a learning rate too high "
            "for this model and batch size (try --lr ten times smaller), fp16 overflow (try --amp "
            "bf16 or --amp off), or a broken image or mask in the training set. Nothing bad was "
            f"saved: {kept}; {_best_model_hint(run_dir, models_dir)}")
