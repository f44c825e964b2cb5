"""How a model is run on an image: whole or in tiles, overlap, blending, flip TTA, padding, batch.

One value shared by `eval`, the trainer's validation, `predict`, the app and exported-model
runs, and recorded in the model's config, so every figure a user sees comes from the same
computation. The whole-or-tiles decision depends on the image size alone (a pixel budget),
never on the machine, so the same model scores the same on every computer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from segstudio.core.errors import ModelError

MODES = ("auto", "whole", "tiled")
BLENDS = ("sine", "uniform")
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 0.25
# 2048 x 2048 padded pixels: a U-Net/resnet34 forward pass holds ~0.4 KB of float32
# activations per pixel, so ~1.7 GB; past this, tiles keep memory bounded.
DEFAULT_MAX_WHOLE_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class InferenceSettings:
    """`auto` runs the whole image (the context the model was validated on) when its padded size
    fits `max_whole_pixels`, else overlapping tiles of `tile` px blended with a `blend` window.
    `pad_divisor` None = the model's own divisor; `batch_size` = tiles (or images) per forward."""

    mode: str = "auto"
    tile: int = DEFAULT_TILE
    overlap: float = DEFAULT_OVERLAP
    blend: str = "sine"
    tta: bool = False
    pad_divisor: int | None = None
    batch_size: int = 4
    max_whole_pixels: int = DEFAULT_MAX_WHOLE_PIXELS

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ModelError(f"inference mode '{self.mode}' is unknown; use one of {', '.join(MODES)}")
        if self.blend not in BLENDS:
            raise ModelError(f"tile blending '{self.blend}' is unknown; use one of {', '.join(BLENDS)}")
        if int(self.tile) < 1:
            raise ModelError(f"tile size must be a positive number of pixels, got {self.tile}")
        if not 0.0 <= float(self.overlap) < 0.9:
            raise ModelError(f"tile overlap must be in [0, 0.9), got {self.overlap}")
        if self.pad_divisor is not None and int(self.pad_divisor) < 1:
            raise ModelError(f"pad divisor must be a positive integer, got {self.pad_divisor}")
        if int(self.batch_size) < 1 or int(self.max_whole_pixels) < 1:
            raise ModelError("inference batch size and max_whole_pixels must be positive")
        object.__setattr__(self, "tile", int(self.tile))
        object.__setattr__(self, "overlap", float(self.overlap))
        object.__setattr__(self, "tta", bool(self.tta))
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "max_whole_pixels", int(self.max_whole_pixels))
        if self.pad_divisor is not None:
            object.__setattr__(self, "pad_divisor", int(self.pad_divisor))

    def divisor(self, model_divisor: int) -> int:
        """The padding multiple: a multiple of the model's divisor (which the network needs)."""
        own = self.pad_divisor or model_divisor
        return own if own % model_divisor == 0 else model_divisor * -(-own // model_divisor)

    def tile_shape(self, padded_h: int, padded_w: int, divisor: int) -> tuple[int, int] | None:
        """None to run the (padded) image whole, else the tile (h, w) for this padded size."""
        if self.mode == "whole":
            return None
        if self.mode == "auto" and padded_h * padded_w <= self.max_whole_pixels:
            return None
        side = max(divisor, self.tile // divisor * divisor)
        if self.mode == "auto":  # past the budget, tiles of at least 1024 px (or the image side)
            side = max(side, DEFAULT_TILE // divisor * divisor)
        tile = (min(side, padded_h), min(side, padded_w))
        return None if tile == (padded_h, padded_w) else tile

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "inference settings") -> InferenceSettings:
        """Settings from JSON; missing keys take the defaults (old model files have none)."""
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)  # keys a newer segstudio added are skipped
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source} are invalid ({exc})") from exc

    def replace(self, **changes: Any) -> InferenceSettings:
        """A copy with `changes`, None values ignored (handy for optional CLI flags)."""
        values = self.to_dict()
        values.update({k: v for k, v in changes.items() if v is not None})
        return InferenceSettings(**values)
