"""Model files: a folder with `model.safetensors` and `config.json`, nothing pickled.

config.json holds everything needed to use the weights without the project: architecture,
encoder, classes with colours, ignore index, the model-channel -> class-id mapping,
normalisation, training input size, metrics and the segstudio version, under the key
"segstudio". For smp architectures the same file also carries smp's own keys
("_model_class", init arguments), so `segmentation_models_pytorch.from_pretrained(folder)`
loads the folder as well. A pair of files (`name.safetensors` + `name.json`) works too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segstudio import __version__
from segstudio.core.atomic import atomic_write_bytes, atomic_write_json
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ClassTableError, ModelError
from segstudio.engine.inference_settings import InferenceSettings
from segstudio.engine.models.registry import (
    SMP_ARCHITECTURES,
    ModelSpec,
    canonical_arch,
    create_model,
    required_divisor,
)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1
SMP_FOLDER = "smp"  # segstudio_version of a config read from a plain smp folder
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Everything a model file says about its network and how to feed it.

    Model output channel k is the k-th trainable (non-ignore) class of `classes`; inputs are
    `(pixel / 255 - mean) / std` per channel, RGB order, padded to a multiple of `divisor`.
    """

    arch: str
    encoder: str
    classes: ClassTable
    in_channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: tuple[int, int] | None = None  # (height, width) the model was trained at
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    segstudio_version: str = __version__
    inference: InferenceSettings = field(default_factory=InferenceSettings)  # how eval/predict run it
    # Non-photo projects: the source bands fed (indices into the image's bands) and their names;
    # empty for 8-bit RGB photos. With bands, `pixel` above is the raw band value as float32
    # and mean/std are the training images' per-band statistics divided by 255.
    channels: tuple[int, ...] = ()
    channel_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        size: Any = self.input_size
        if size is not None:  # accept a side length or any (H, W) sequence
            size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(v) for v in size)
            if len(size) != 2 or min(size) < 1:
                raise ModelError(f"input_size must be (height, width) in pixels, got {self.input_size}")
            object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "channels", tuple(int(v) for v in self.channels))
        object.__setattr__(self, "channel_names", tuple(str(v) for v in self.channel_names))
        if self.channels and len(self.channels) != self.in_channels:
            raise ModelError(f"the model reads {len(self.channels)} bands but takes {self.in_channels} channels")
        if not self.classes.trainable:
            raise ModelError("a model needs at least one class that is not the ignore class")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ModelError(
                f"normalisation mean/std need {self.in_channels} values each (one per input channel)"
            )
        if any(float(s) <= 0 for s in self.std):
            raise ModelError(f"normalisation std must be positive, got {list(self.std)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes.trainable)

    @property
    def output_class_ids(self) -> tuple[int, ...]:
        """Class id of each model output channel, in channel order."""
        return tuple(cls.id for cls in self.classes.trainable)

    @property
    def ignore_index(self) -> int | None:
        return self.classes.ignore_index

    @property
    def divisor(self) -> int:
        return required_divisor(self.spec())

    def spec(self) -> ModelSpec:
        """The network to build for these weights (never re-downloads pretrained weights)."""
        return ModelSpec(self.arch, encoder=self.encoder, num_classes=self.num_classes,
                         in_channels=self.in_channels)

    @classmethod
    def from_spec(cls, spec: ModelSpec, classes: ClassTable, **kwargs: Any) -> ModelConfig:
        config = cls(spec.arch, spec.encoder, classes, in_channels=spec.in_channels, **kwargs)
        if config.num_classes != spec.num_classes:
            raise ModelError(
                f"the model has {spec.num_classes} outputs but the class table has "
                f"{config.num_classes} trainable classes; they must match"
            )
        return config

    def with_metrics(self, metrics: dict[str, Any]) -> ModelConfig:
        return replace(self, metrics=dict(metrics))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "arch": self.arch,
            "encoder": self.encoder,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "classes": self.classes.to_list(),
            "ignore_index": self.ignore_index,
            "output_class_ids": list(self.output_class_ids),
            "normalization": {
                "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std],
                "max_pixel_value": 255.0,
            },
            "input_size": list(self.input_size) if self.input_size else None,
            "divisor": self.divisor,
            "metrics": dict(self.metrics),
            "training": dict(self.training),
            "segstudio_version": self.segstudio_version,
            "inference": self.inference.to_dict(),
            **({"bands": {"indices": list(self.channels), "names": list(self.channel_names)}}
               if self.channels else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> ModelConfig:
        try:
            classes = ClassTable.from_list(data["classes"], ignore_index=data.get("ignore_index"))
            norm = data.get("normalization") or {}
            size = data.get("input_size")
            config = cls(
                arch=str(data["arch"]),
                encoder=str(data.get("encoder", "resnet34")),
                classes=classes,
                in_channels=int(data.get("in_channels", 3)),
                mean=tuple(float(v) for v in norm.get("mean", IMAGENET_MEAN)),
                std=tuple(float(v) for v in norm.get("std", IMAGENET_STD)),
                input_size=(int(size[0]), int(size[1])) if size else None,
                metrics=dict(data.get("metrics") or {}),
                training=dict(data.get("training") or {}),
                segstudio_version=str(data.get("segstudio_version", "unknown")),
                inference=InferenceSettings.from_dict(data.get("inference"), f"{source} inference settings"),
                channels=tuple(int(v) for v in (data.get("bands") or {}).get("indices", ())),
                channel_names=tuple(str(v) for v in (data.get("bands") or {}).get("names", ())),
            )
        except (KeyError, TypeError, ValueError, IndexError, ClassTableError) as exc:
            raise ModelError(
                f"{source} is incomplete or invalid ({type(exc).__name__}: {exc}); "
                "it needs 'arch', 'classes' and valid normalisation values"
            ) from exc
        declared = data.get("num_classes")
        if declared is not None and int(declared) != config.num_classes:
            raise ModelError(
                f"{source} declares {declared} outputs but lists {config.num_classes} trainable "
                "classes; the file was edited inconsistently"
            )
        # Validate the architecture name early, with the registry's message.
        config.spec()
        return config


def _smp_section(model: nn.Module, config: ModelConfig) -> dict[str, Any]:
    """smp's own config keys, so smp.from_pretrained can rebuild the network."""
    init_args = dict(getattr(model, "config", None) or {})
    init_args.update(
        encoder_name=config.encoder,
        encoder_weights=None,  # the weights are in the file; never download on load
        in_channels=config.in_channels,
        classes=config.num_classes,
    )
    return {"_model_class": type(model).__name__, **init_args}


def _file_pair(path: Path) -> tuple[Path, Path]:
    """(weights, config) for a folder, its config.json / model.safetensors, or a file pair."""
    if path.is_dir() or path.suffix == "":
        return path / WEIGHTS_NAME, path / CONFIG_NAME
    if path.name == CONFIG_NAME:
        return path.parent / WEIGHTS_NAME, path
    if path.name == WEIGHTS_NAME:
        return path, path.parent / CONFIG_NAME
    if path.suffix.lower() == ".json":
        return path.with_suffix(".safetensors"), path
    if path.suffix.lower() == ".safetensors":
        return path, path.with_suffix(".json")
    raise ModelError(
        f"{path} is not a model file; give a model folder, its config.json or model.safetensors "
        "(pickled .pt/.pth checkpoints are not loaded, for safety)"
    )


def save_model(path: str | os.PathLike[str], model: nn.Module, config: ModelConfig) -> Path:
    """Write weights and config (each atomically); returns the config path."""
    from safetensors.torch import save

    weights_path, config_path = _file_pair(Path(path))
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    # Clone so shared or non-contiguous tensors serialise as plain independent tensors.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(weights_path, save(state, metadata={"format": "pt"}))
    document: dict[str, Any] = {}
    if config.arch in SMP_ARCHITECTURES:
        document.update(_smp_section(model, config))
    document["segstudio"] = config.to_dict()
    atomic_write_json(config_path, document)
    return config_path


def read_config(path: str | os.PathLike[str]) -> ModelConfig:
    """The ModelConfig of a model file, without loading any weights."""
    _, config_path = _file_pair(Path(path))
    return _read_config_file(config_path)


def _read_config_file(config_path: Path) -> ModelConfig:
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{config_path} not found; a model folder needs config.json") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_path} cannot be read as JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ModelError(f"{config_path} must hold a JSON object")
    section = document.get("segstudio")
    if isinstance(section, dict):
        return ModelConfig.from_dict(section, source=str(config_path))
    if "_model_class" in document:  # a plain smp folder: default class names
        classes = ClassTable.from_names([f"class_{i}" for i in range(int(document.get("classes", 1)))])
        return ModelConfig(
            arch=str(document["_model_class"]),
            encoder=str(document.get("encoder_name", "resnet34")),
            classes=classes,
            in_channels=int(document.get("in_channels", 3)),
            segstudio_version=SMP_FOLDER,
        )
    raise ModelError(f"{config_path} is not a segstudio or smp model config (no 'segstudio' key)")


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Rebuild the network of a model file and load its weights; eval mode, on `device`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, config_path = _file_pair(Path(path))
    check_inside_model_folder(weights_path, config_path)  # issue 15: hostile model folders
    config = _read_config_file(config_path)
    if not weights_path.is_file():
        raise ModelError(f"{weights_path} not found; the model folder is incomplete")
    if config.segstudio_version == SMP_FOLDER:  # smp's own folder: smp knows its init arguments
        import segmentation_models_pytorch as smp

        try:
            model = smp.from_pretrained(str(config_path.parent))
        except Exception as exc:  # smp/huggingface_hub raise many kinds
            raise ModelError(f"{config_path.parent} cannot be loaded as an smp model ({exc})") from exc
        return model.to(device).eval(), config
    model = create_model(config.spec())
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path} is not a readable safetensors file ({exc})") from exc
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes differ
        raise ModelError(
            f"{weights_path} does not fit {config.arch}/{config.encoder} ({str(exc)[:300]}); "
            "the config and weights come from different models"
        ) from exc
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5])
        unexpected = ", ".join(result.unexpected_keys[:5])
        raise ModelError(
            f"{weights_path} does not fit {config.arch}/{config.encoder} "
            f"(missing: {missing or '-'}; unexpected: {unexpected or '-'}); "
            "the config and weights come from different models"
        )
    model.to(device)
    model.eval()
    return model, config


def check_inside_model_folder(*paths: Path) -> None:
    """A model's files must be in its folder: a config or weights file that is a link to
    somewhere else (or names a path outside) is refused, so a shared model folder cannot
    make the app read files elsewhere on the machine."""
    folder = paths[-1].parent.resolve()
    for path in paths:
        if path.exists() and not path.resolve().is_relative_to(folder):
            raise ModelError(f"{path} leads outside its model folder {folder} (a link to "
                             f"{path.resolve()}); copy the real file into the folder")
