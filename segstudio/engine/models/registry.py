"""One factory for every model: smp architectures, the project's SegNet and its FCNs.

`create_model(ModelSpec(...))` builds a randomly initialised or pretrained network whose
output is (N, num_classes, H, W) logits for an (N, in_channels, H, W) input with H and W a
multiple of `required_divisor(spec)`. Names are case-insensitive and accept common
spellings ("unet++", "DeepLabV3+", "fcn-8s"); an unknown name raises ModelError listing the
valid ones. Pretrained weights never hang or crash a run: when they cannot be had, the model
starts from random weights and a warning says so (logged, appended to `warnings`, and kept on
the model as `segstudio_warnings` for the trainer to report).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import KW_ONLY, asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segstudio.core.errors import ModelError
from segstudio.engine.models.fcn import FCN, SmpFeatures, VggFeatures, vgg16_features
from segstudio.engine.models.segnet import SegNet, SegNetBasic, load_vgg16_bn_weights

log = logging.getLogger(__name__)

# Canonical name -> the name smp.create_model knows.
SMP_ARCHITECTURES: dict[str, str] = {
    "unet": "unet",
    "unetplusplus": "unetplusplus",
    "fpn": "fpn",
    "deeplabv3": "deeplabv3",
    "deeplabv3plus": "deeplabv3plus",
    "linknet": "linknet",
    "pspnet": "pspnet",
    "pan": "pan",
    "manet": "manet",
    "upernet": "upernet",
    "segformer": "segformer",
}
OWN_ARCHITECTURES = ("segnet", "segnet_basic", "fcn8s", "fcn16s", "fcn32s")
ARCHITECTURES: tuple[str, ...] = (*SMP_ARCHITECTURES, *OWN_ARCHITECTURES)

# Spellings people use, after lower-casing and dropping '-', '_' and spaces.
_ALIASES: dict[str, str] = {
    "unet++": "unetplusplus",
    "nestedunet": "unetplusplus",
    "deeplab": "deeplabv3",
    "deeplabv3+": "deeplabv3plus",
    "deeplab3+": "deeplabv3plus",
    "manet": "manet",
    "psp": "pspnet",
    "uper": "upernet",
    "segnetbasic": "segnet_basic",
    "fcn": "fcn8s",
    "fcn8": "fcn8s",
    "fcn16": "fcn16s",
    "fcn32": "fcn32s",
}
# Encoders of the FCN that come from torchvision, as in the paper (no smp wrapper).
VGG_ENCODERS = ("vgg16", "vgg16_bn")
SEGNET_ENCODER = {"segnet": "vgg16_bn", "segnet_basic": "basic"}
DOWNLOAD_TIMEOUT_S = 15.0


def canonical_arch(name: str) -> str:
    """The registry's name for `name`; raises ModelError listing the valid names."""
    key = "".join(ch for ch in str(name).strip().lower() if ch not in "-_ ")
    by_key = {a.replace("_", ""): a for a in ARCHITECTURES}
    if key in by_key:
        return by_key[key]
    if key in _ALIASES:
        return _ALIASES[key]
    raise ModelError(
        f"unknown architecture '{name}'; choose one of: {', '.join(ARCHITECTURES)} "
        "(aliases such as 'unet++', 'deeplabv3+', 'fcn-8s' work too)"
    )


@dataclass(frozen=True)
class ModelSpec:
    """What to build. `pretrained`: None, "imagenet", or a local encoder weights file."""

    arch: str
    _: KW_ONLY
    encoder: str = "resnet34"
    num_classes: int
    in_channels: int = 3
    pretrained: str | None = None

    def __post_init__(self) -> None:
        arch = canonical_arch(self.arch)
        object.__setattr__(self, "arch", arch)
        # SegNet's encoder is fixed by the paper; record it truthfully.
        if arch in SEGNET_ENCODER:
            object.__setattr__(self, "encoder", SEGNET_ENCODER[arch])
        else:
            object.__setattr__(self, "encoder", str(self.encoder).strip())
        if int(self.num_classes) < 1:
            raise ModelError(f"a model needs at least one class, got num_classes={self.num_classes}")
        if int(self.in_channels) < 1:
            raise ModelError(f"in_channels must be 1 or more, got {self.in_channels}")
        if self.pretrained is not None and str(self.pretrained).strip().lower() in ("", "none"):
            object.__setattr__(self, "pretrained", None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        try:
            return cls(
                str(data["arch"]),
                encoder=str(data.get("encoder", "resnet34")),
                num_classes=int(data["num_classes"]),
                in_channels=int(data.get("in_channels", 3)),
                pretrained=data.get("pretrained"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model description {data!r} needs 'arch' and 'num_classes' ({exc})") from exc


def available_architectures() -> tuple[str, ...]:
    return ARCHITECTURES


def available_encoders() -> tuple[str, ...]:
    """smp encoder names (any architecture but SegNet; 'tu-<timm name>' works too)."""
    import segmentation_models_pytorch as smp

    return tuple(sorted(smp.encoders.get_encoder_names()))


def required_divisor(spec: ModelSpec) -> int:
    """Input height and width must be multiples of this (callers pad)."""
    return 16 if spec.arch == "segnet_basic" else 32


def is_smp_architecture(arch: str) -> bool:
    return canonical_arch(arch) in SMP_ARCHITECTURES


def check_encoder(spec: ModelSpec) -> None:
    if spec.arch in SEGNET_ENCODER:
        return
    if spec.arch.startswith("fcn") and spec.encoder in VGG_ENCODERS:
        return
    if spec.encoder.startswith("tu-"):
        return
    names = available_encoders()
    if spec.encoder not in names:
        extra = f"{', '.join(VGG_ENCODERS)} (FCN only), " if spec.arch.startswith("fcn") else ""
        raise ModelError(
            f"unknown encoder '{spec.encoder}' for {spec.arch}; choose one of: {extra}"
            f"{', '.join(names)}, or 'tu-<timm model name>'"
        )


def create_model(spec: ModelSpec, warnings: list[str] | None = None) -> nn.Module:
    """Build the network `spec` describes; weight problems become warnings, not failures."""
    check_encoder(spec)
    notes: list[str] = []
    if spec.arch in SMP_ARCHITECTURES:
        model = _build_smp(spec, notes)
    elif spec.arch in SEGNET_ENCODER:
        model = _build_segnet(spec, notes)
    else:
        model = _build_fcn(spec, notes)
    if spec.pretrained not in (None, "imagenet"):
        load_encoder_weights(model, Path(str(spec.pretrained)), notes)
    if warnings is not None:
        warnings.extend(notes)  # the caller reports them (the trainer as warning events)
    else:
        for note in notes:
            log.warning("%s", note)
    model.segstudio_warnings = tuple(notes)  # type: ignore[assignment]
    return model


@contextlib.contextmanager
def _short_network_timeout(seconds: float = DOWNLOAD_TIMEOUT_S) -> Iterator[None]:
    """A stalled download fails in `seconds` instead of hanging (urllib/torch.hub honour it).
    Where the weights' host cannot be reached at all, Hugging Face Hub runs in its offline
    mode for the build: cached weights still load, missing ones fail at once, instead of
    about a minute of retries and 'Retrying in 8s' lines on every offline training run."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        with _hub_offline_unless_reachable():
            yield
    finally:
        socket.setdefaulttimeout(old)


_reachable_hosts: dict[tuple[str, int], bool] = {}


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (or the mirror in HF_ENDPOINT) answers a TCP connection;
    asked once per process."""
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    if (host, port) not in _reachable_hosts:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            _reachable_hosts[(host, port)] = True
        except OSError:
            _reachable_hosts[(host, port)] = False
    return _reachable_hosts[(host, port)]


@contextlib.contextmanager
def _hub_offline_unless_reachable() -> Iterator[None]:
    try:
        from huggingface_hub import constants
    except ImportError:  # an encoder without the Hub (torchvision weights): nothing to do
        yield
        return
    if constants.HF_HUB_OFFLINE or hub_reachable():
        yield
        return
    constants.HF_HUB_OFFLINE = True  # the documented HF_HUB_OFFLINE setting, for this build only
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False


def _offline_note(what: str, exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"pretrained {what} weights could not be loaded ({type(exc).__name__}: {reason[:200]}); "
        "the model starts from random weights. Connect to the internet once to cache them, "
        "or pass a local weights file."
    )


def _wrap_build_error(spec: ModelSpec, exc: Exception) -> ModelError:
    return ModelError(
        f"cannot build {spec.arch} with encoder '{spec.encoder}': {exc}. "
        "Try another encoder (e.g. resnet34) for this architecture"
    )


def _build_smp(spec: ModelSpec, notes: list[str]) -> nn.Module:
    import segmentation_models_pytorch as smp

    def build(weights: str | None) -> nn.Module:
        return smp.create_model(
            SMP_ARCHITECTURES[spec.arch],
            encoder_name=spec.encoder,
            encoder_weights=weights,
            in_channels=spec.in_channels,
            classes=spec.num_classes,
        )

    if spec.pretrained == "imagenet":
        try:
            with _short_network_timeout():
                return build("imagenet")
        except Exception as exc:  # offline, no such weights, corrupt cache: fall back
            notes.append(_offline_note(f"ImageNet '{spec.encoder}'", exc))
    try:
        return build(None)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
        raise _wrap_build_error(spec, exc) from exc


def _torchvision_vgg(name: str, notes: list[str]) -> nn.Module | None:
    """torchvision's ImageNet VGG (downloaded once, then cached), or None with a note."""
    import torchvision

    try:
        with _short_network_timeout():
            return getattr(torchvision.models, name)(weights="IMAGENET1K_V1")
    except Exception as exc:  # offline or blocked: random init
        notes.append(_offline_note(f"ImageNet '{name}'", exc))
        return None


def _build_segnet(spec: ModelSpec, notes: list[str]) -> nn.Module:
    if spec.arch == "segnet_basic":
        if spec.pretrained == "imagenet":
            notes.append("SegNet-Basic has no ImageNet weights; it starts from random weights")
        return SegNetBasic(spec.num_classes, spec.in_channels)
    model = SegNet(spec.num_classes, spec.in_channels)
    if spec.pretrained == "imagenet":
        vgg = _torchvision_vgg("vgg16_bn", notes)
        if vgg is not None:
            load_vgg16_bn_weights(model.encoder, vgg.features)
    return model


def _build_fcn(spec: ModelSpec, notes: list[str]) -> nn.Module:
    variant = int(spec.arch[3:-1])
    if spec.encoder in VGG_ENCODERS:
        vgg = _torchvision_vgg(spec.encoder, notes) if spec.pretrained == "imagenet" else None
        features = vgg.features if vgg is not None else vgg16_features(spec.encoder == "vgg16_bn")
        encoder = VggFeatures(features, spec.in_channels)
        model = FCN(encoder, spec.num_classes, variant, head_channels=4096, head_kernel=7)
        if vgg is not None:
            model.load_vgg_classifier(vgg.classifier)
        return model
    from segmentation_models_pytorch.encoders import get_encoder

    def build(weights: str | None) -> nn.Module:
        return get_encoder(spec.encoder, in_channels=spec.in_channels, depth=5, weights=weights)

    smp_encoder: nn.Module | None = None
    if spec.pretrained == "imagenet":
        try:
            with _short_network_timeout():
                smp_encoder = build("imagenet")
        except Exception as exc:  # offline, no such weights: fall back to random init
            notes.append(_offline_note(f"ImageNet '{spec.encoder}'", exc))
    if smp_encoder is None:
        try:
            smp_encoder = build(None)
        except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
            raise _wrap_build_error(spec, exc) from exc
    return FCN(SmpFeatures(smp_encoder), spec.num_classes, variant)


def encoder_module(model: nn.Module) -> nn.Module:
    """The part of `model` that pretrained encoder weights belong to."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ModelError(f"{type(model).__name__} has no encoder to load weights into")
    if isinstance(encoder, SmpFeatures):
        return encoder.encoder
    return encoder


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a torch checkpoint, never unpickling objects."""
    if not path.is_file():
        raise ModelError(f"weights file {path} not found; give an existing .safetensors or .pt file")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle with objects weights_only refuses
        raise ModelError(
            f"cannot read weights from {path} ({type(exc).__name__}: {exc}); use a .safetensors "
            "file or a plain tensor state dict saved with torch.save"
        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds no state dict of tensors")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_encoder_weights(model: nn.Module, path: Path, notes: list[str]) -> int:
    """Load the tensors of `path` that fit the encoder (matching names and shapes)."""
    state = read_state_dict(path)
    target = encoder_module(model)
    own = target.state_dict()
    best: dict[str, torch.Tensor] = {}
    # Accept bare encoder dicts and whole-model dicts (keys prefixed 'encoder.' etc.).
    for prefix in ("", "encoder.", "encoder.encoder.", "module.encoder.", "module."):
        candidate = {
            k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix) and own.get(k[len(prefix):]) is not None
            and own[k[len(prefix):]].shape == v.shape
        }
        if len(candidate) > len(best):
            best = candidate
    if not best:
        raise ModelError(
            f"no tensor in {path} fits the {type(target).__name__} encoder; "
            "was it saved from a different encoder?"
        )
    target.load_state_dict(best, strict=False)
    if len(best) < len(own):
        notes.append(
            f"{path.name}: loaded {len(best)} of {len(own)} encoder tensors; the rest keep random weights"
        )
    log.info("loaded %d encoder tensors from %s", len(best), os.fspath(path))
    return len(best)
