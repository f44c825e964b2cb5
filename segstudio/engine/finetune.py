"""Where a run's weights start: `--init-from auto` (the project's active model, when it fits
this run), `none` (fresh: ImageNet encoder or whatever --pretrained says), or a model folder /
id under PROJECT/models. Model files are read as safetensors + config.json (modelfile.py),
never unpickled.

auto is forgiving: an active model with other classes, architecture or encoder is passed
over with a warning and the run starts fresh. An explicit model is a promise: a mismatch is
a TrainingError that says what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from segstudio.core.errors import ModelError, SegstudioError, TrainingError
from segstudio.core.project import Project
from segstudio.core.runs import active_model
from segstudio.engine.checkpoint import unwrap
from segstudio.engine.data import ClassMapping
from segstudio.engine.models.registry import ModelSpec, canonical_arch

INIT_AUTO = "auto"
INIT_NONE = "none"


@dataclass(frozen=True)
class InitSource:
    """A model file whose weights a run starts from."""

    path: Path
    label: str  # how events and configs name it: the id under PROJECT/models, or the path


def _label(project: Project, path: Path) -> str:
    models = (project.root / "models").resolve()
    resolved = path.resolve()
    return resolved.name if resolved.parent == models else str(path)


def _mismatch(path: Path, spec: ModelSpec, mapping: ClassMapping) -> str | None:
    """What keeps the model file at `path` from initialising `spec` on `mapping`, or None."""
    from segstudio.engine.modelfile import read_config

    config = read_config(path)
    theirs = ClassMapping.from_classes(config.classes)
    if theirs != mapping:
        return f"its classes ({', '.join(theirs.names)}) are not the project's ({', '.join(mapping.names)})"
    if canonical_arch(config.arch) != canonical_arch(spec.arch):
        return f"its architecture is {config.arch}, this run trains {spec.arch}"
    if config.encoder != spec.encoder:
        return f"its encoder is {config.encoder}, this run trains {spec.encoder}"
    if config.in_channels != spec.in_channels:
        return f"it reads {config.in_channels} channels, this run {spec.in_channels}"
    return None


def find_init_source(init_from: str, project: Project, spec: ModelSpec, mapping: ClassMapping,
                     notes: list[str]) -> InitSource | None:
    """The model to start from, or None (fresh). auto passes over a misfit with a note."""
    value = (init_from or INIT_AUTO).strip()
    if value.lower() == INIT_NONE:
        return None
    if value.lower() == INIT_AUTO:
        path = active_model(project)
        if path is None:
            return None
        if not path.exists():
            notes.append(f"the active model {path} no longer exists; training starts fresh")
            return None
        try:
            problem = _mismatch(path, spec, mapping)
        except SegstudioError as exc:
            notes.append(f"the active model {path} cannot be read ({exc}); training starts fresh")
            return None
        if problem:
            notes.append(f"not starting from the active model {_label(project, path)}: {problem}; "
                         "training starts fresh")
            return None
        return InitSource(path, _label(project, path))
    for candidate in (Path(value), project.root / "models" / value):
        if candidate.exists():
            try:
                problem = _mismatch(candidate, spec, mapping)
            except ModelError as exc:
                raise TrainingError(f"cannot start from {candidate}: {exc}") from exc
            if problem:
                raise TrainingError(f"cannot start from {candidate}: {problem}; pick a model trained with the "
                                    "same classes, architecture and encoder, or use --init-from none")
            return InitSource(candidate, _label(project, candidate))
    raise TrainingError(f"no model '{value}' to start from (looked in {value} and "
                        f"{project.root / 'models' / value}); give a model folder, an id under "
                        "PROJECT/models, auto or none")


def load_init_weights(source: InitSource, model: nn.Module) -> None:
    """Copy the model file's weights into `model` (same architecture, checked before)."""
    from segstudio.engine.modelfile import load_model

    try:
        loaded, _ = load_model(source.path, "cpu")
    except ModelError as exc:
        raise TrainingError(f"cannot start from {source.path}: {exc}") from exc
    unwrap(model).load_state_dict(loaded.state_dict())
