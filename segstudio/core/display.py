"""The display mapping: which bands show as red, green and blue (or as one grey), and each
band's contrast limits; `render` turns raw pixels into the uint8 RGB the canvas, thumbnails
and previews show. Qt-free so that every view (and the tests) render the same pixels.

Pixel rule, per shown band with limits (lo, hi): round(clip((v - lo) / (hi - lo), 0, 1) * 255).
The limits are dataset-wide percentiles computed once on import (core/channels.py), stored in
the manifest's settings under "display", editable in the Display dock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from segstudio.core.channels import as_bands
from segstudio.core.errors import ProjectError

SETTINGS_KEY = "display"
Mode = Literal["rgb", "grey"]


@dataclass(frozen=True)
class DisplayMapping:
    """Bands shown as R, G, B (mode rgb) or band `grey` alone; limits per source band."""

    mode: Mode
    rgb: tuple[int, int, int]
    grey: int
    limits: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        count = len(self.limits)
        if self.mode not in ("rgb", "grey"):
            raise ProjectError(f"display mode '{self.mode}' is unknown; use rgb or grey")
        if any(not 0 <= b < count for b in (*self.rgb, self.grey)):
            raise ProjectError(f"the display mapping names a band outside 1..{count}")

    @property
    def shown(self) -> tuple[int, ...]:
        """Source band of each output colour (R, G, B)."""
        return self.rgb if self.mode == "rgb" else (self.grey,) * 3

    @classmethod
    def default(cls, limits: Sequence[tuple[float, float]]) -> DisplayMapping:
        count = len(limits)
        if count >= 3:
            return cls("rgb", (0, 1, 2), 0, tuple(limits))
        return cls("grey", (0, 0, 0), 0, tuple(limits))

    def with_limits(self, band: int, low: float, high: float) -> DisplayMapping:
        limits = list(self.limits)
        limits[band] = (float(low), float(max(high, low + 1e-6)))
        return replace(self, limits=tuple(limits))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rgb": list(self.rgb), "grey": self.grey,
                "limits": [[lo, hi] for lo, hi in self.limits]}

    @classmethod
    def from_dict(cls, data: Any) -> DisplayMapping:
        try:
            rgb = tuple(int(v) for v in data["rgb"])
            if len(rgb) != 3:
                raise ValueError("rgb needs 3 bands")
            return cls(data.get("mode", "rgb"), rgb, int(data.get("grey", 0)),  # type: ignore[arg-type]
                       tuple((float(lo), float(hi)) for lo, hi in data["limits"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectError(f"the project's display mapping is malformed ({exc}); fix 'display' "
                               "in project.json settings or delete it to rebuild it") from exc


def mapping_of(settings: dict[str, Any]) -> DisplayMapping | None:
    data = settings.get(SETTINGS_KEY)
    return None if data is None else DisplayMapping.from_dict(data)


def band_lut(dtype: np.dtype, low: float, high: float) -> np.ndarray | None:
    """A value -> uint8 table for 8/16-bit bands (one lookup per pixel); None for others."""
    if dtype not in (np.uint8, np.uint16, np.int8, np.int16):
        return None
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.float64)
    return scale(values, low, high)


def scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The pixel rule of the module docstring, as uint8."""
    span = max(float(high) - float(low), 1e-12)
    out = np.clip((np.asarray(values, dtype=np.float64) - float(low)) / span, 0.0, 1.0) * 255.0
    return np.nan_to_num(np.rint(out)).astype(np.uint8)


def render(raw: np.ndarray, mapping: DisplayMapping) -> np.ndarray:
    """Raw (H, W[, C]) pixels -> (H, W, 3) uint8 RGB through the mapping."""
    bands = as_bands(raw)
    if bands.shape[2] < len(mapping.limits):
        raise ProjectError(f"the image has {bands.shape[2]} bands but the project's display mapping "
                           f"has {len(mapping.limits)}; every image of the project needs the same bands")
    out = np.empty((*bands.shape[:2], 3), dtype=np.uint8)
    done: dict[int, int] = {}
    for colour, band in enumerate(mapping.shown):
        if band in done:
            out[:, :, colour] = out[:, :, done[band]]
            continue
        low, high = mapping.limits[band]
        plane = bands[:, :, band]
        lut = band_lut(plane.dtype, low, high)
        if lut is not None:
            offset = -int(np.iinfo(plane.dtype).min)
            index = plane.astype(np.int32) + offset if offset else plane
            out[:, :, colour] = lut[index]
        else:
            out[:, :, colour] = scale(plane, low, high)
        done[band] = colour
    return out


def histogram(raw: np.ndarray, band: int, low: float, high: float, bins: int = 128
              ) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of one band over [low, high] (what the Display dock draws)."""
    plane = as_bands(raw)[:, :, band]
    step = max(1, int(np.sqrt(plane.size / 262144)))
    data = plane[::step, ::step].astype(np.float64).ravel()
    data = data[np.isfinite(data)]
    return np.histogram(data, bins=bins, range=(float(low), float(high)))
