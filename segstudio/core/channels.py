"""The project's channel table: the bands its images have and which ones a model sees.

A project whose images are plain 8-bit RGB (or grey) photos has no table and keeps the
photo path everywhere (bit-identical to before). A project with other images (16-bit, float,
more or fewer than three bands) gets one on import, stored in the manifest's settings under
"channels", next to the display mapping under "display" (core/display.py); both merge per
key like every setting. Model inputs are the chosen bands as float32 in their raw units,
normalised later by fixed per-channel statistics of the training images (engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segstudio.core.errors import ProjectError

SETTINGS_KEY = "channels"
# Photo images need no table: 8-bit grey or colour.
PLAIN_BANDS = (1, 3)


@dataclass(frozen=True)
class Channel:
    """One band of the project's images: its name and whether the model sees it."""

    name: str
    model: bool = True


@dataclass(frozen=True)
class ChannelTable:
    """Bands of the project's images (all images share the count) and their dtype."""

    channels: tuple[Channel, ...]
    dtype: str = "uint16"

    def __post_init__(self) -> None:
        if not self.channels:
            raise ProjectError("a channel table needs at least one channel")
        if not any(c.model for c in self.channels):
            raise ProjectError("no channel is fed to the model; tick at least one channel")

    @property
    def count(self) -> int:
        return len(self.channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def model_indices(self) -> tuple[int, ...]:
        """Source band indices the model sees, in band order."""
        return tuple(i for i, c in enumerate(self.channels) if c.model)

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "bands": [{"name": c.name, "model": c.model} for c in self.channels]}

    @classmethod
    def from_dict(cls, data: Any) -> ChannelTable:
        try:
            bands = tuple(Channel(str(b["name"]), bool(b.get("model", True))) for b in data["bands"])
            return cls(bands, str(data.get("dtype", "uint16")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProjectError(f"the project's channel table is malformed ({exc}); fix 'channels' "
                               "in project.json settings or delete it to rebuild it") from exc

    def with_model(self, indices: Sequence[int]) -> ChannelTable:
        wanted = set(int(i) for i in indices)
        return ChannelTable(tuple(Channel(c.name, i in wanted) for i, c in enumerate(self.channels)), self.dtype)


def default_names(count: int, given: Sequence[str] = ()) -> tuple[str, ...]:
    """The file's own band names (OME) when it has them, else RGB(N) for 3-4 bands, else c1..cN."""
    if len(given) == count and all(given):
        return tuple(given)
    if count == 3:
        return ("red", "green", "blue")
    if count == 4:
        return ("red", "green", "blue", "nir")
    return tuple(f"c{i + 1}" for i in range(count))


def is_plain(channels: int, dtype: str) -> bool:
    """An 8-bit grey or colour photo, which the photo path shows and feeds as today."""
    return channels in (0, *PLAIN_BANDS) and dtype in ("", "uint8")


def table_of(settings: dict[str, Any]) -> ChannelTable | None:
    data = settings.get(SETTINGS_KEY)
    return None if data is None else ChannelTable.from_dict(data)


def as_bands(raw: np.ndarray) -> np.ndarray:
    """(H, W, C) view of a decoded image (a grey one gets a band axis)."""
    return raw[:, :, None] if raw.ndim == 2 else raw


def model_input(raw: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """The bands a model sees, as (H, W, C) float32 in their raw units."""
    bands = as_bands(raw)
    if max(indices) >= bands.shape[2]:
        raise ProjectError(f"the image has {bands.shape[2]} bands but the model reads band "
                           f"{max(indices) + 1}; every image of the project needs the same bands")
    return np.ascontiguousarray(bands[:, :, list(indices)], dtype=np.float32)


def sample_pixels(raw: np.ndarray, limit: int = 65536) -> np.ndarray:
    """About `limit` pixels of an image as (N, C) float64, on a regular grid."""
    bands = as_bands(raw)
    step = max(1, int(np.sqrt(bands.shape[0] * bands.shape[1] / limit)))
    return bands[::step, ::step].reshape(-1, bands.shape[2]).astype(np.float64)


def percentile_limits(samples: Sequence[np.ndarray], low: float = 0.5, high: float = 99.5
                      ) -> tuple[tuple[float, float], ...]:
    """Per band (low, high) percentiles over the pixels of all samples: contrast limits shared
    by every image, so one tissue or field looks the same in all of them."""
    data = np.concatenate([s for s in samples if s.size], axis=0)
    finite = np.where(np.isfinite(data), data, np.nan)
    lows = np.nanpercentile(finite, low, axis=0)
    highs = np.nanpercentile(finite, high, axis=0)
    limits = []
    for lo, hi in zip(lows, highs):
        lo = 0.0 if not np.isfinite(lo) else float(lo)
        hi = lo + 1.0 if not np.isfinite(hi) or hi <= lo else float(hi)
        limits.append((lo, hi))
    return tuple(limits)
