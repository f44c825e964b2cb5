"""Model registry: smp architectures plus the project's own SegNet and FCN."""

from __future__ import annotations

from segstudio.engine.models.registry import (
    ARCHITECTURES,
    ModelSpec,
    available_architectures,
    available_encoders,
    canonical_arch,
    create_model,
    is_smp_architecture,
    required_divisor,
)

__all__ = [
    "ARCHITECTURES",
    "ModelSpec",
    "available_architectures",
    "available_encoders",
    "canonical_arch",
    "create_model",
    "is_smp_architecture",
    "required_divisor",
]
