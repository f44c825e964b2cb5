"""Model in the loop, Qt-free: prediction layers as RGBA, accepting predictions, review order.

A prediction stays separate from the mask until the user accepts it; every accept is one
undoable MaskDocument edit. The layers are plain HxWx4 uint8 arrays so the canvas can show
them through `set_extra_layer` and tests can check them pixel by pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.core.classes import ClassTable
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import EMPTY, Region

PREDICTION_STYLES = ("fill", "outline", "hatch")
CONFIDENCE_KINDS = ("max_prob", "entropy")
REVIEW_KEYS = ("mean_entropy", "low_margin_share")
DISAGREE_COLOR = (255, 0, 200)  # magenta: absent from every common class palette
HATCH_PERIOD = 8
DISAGREE_ALPHA = 150
LOW_MARGIN = 0.1  # the same threshold as engine.uncertainty, so scores agree


@dataclass(frozen=True)
class Prediction:
    """One image's prediction: class ids (project ids) and per-pixel certainty maps.

    `max_prob` is the top class probability, `entropy` the entropy divided by log(C) so
    both lie in [0, 1]; `margin` is top-1 minus top-2 probability. Maps are float in
    [0, 1] or uint8 0-255 (`compact()`, what the cache keeps).
    """

    labels: np.ndarray
    max_prob: np.ndarray
    entropy: np.ndarray
    margin: np.ndarray
    num_classes: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    def score(self, low_margin: float = LOW_MARGIN) -> ImageScore:
        return ImageScore(
            mean_entropy=float(np.mean(from_bytes(self.entropy), dtype=np.float64)),
            low_margin_share=float(np.mean(from_bytes(self.margin) < low_margin)),
        )

    def compact(self) -> Prediction:
        """The maps as uint8 (0-255 for 0-1): a quarter of float32's memory, plenty for
        views and for ordering the review queue."""
        return Prediction(np.ascontiguousarray(self.labels, dtype=np.uint8), to_bytes(self.max_prob),
                          to_bytes(self.entropy), to_bytes(self.margin), self.num_classes)


@dataclass(frozen=True)
class ImageScore:
    """How unsure the model is about one image (higher: look at it sooner)."""

    mean_entropy: float
    low_margin_share: float

    def get(self, key: str) -> float:
        if key not in REVIEW_KEYS:
            raise ValueError(f"unknown review order '{key}'; use one of {', '.join(REVIEW_KEYS)}")
        return float(getattr(self, key))


# -- layers ---------------------------------------------------------------------------------
def class_color_lut(classes: ClassTable) -> np.ndarray:
    """256 x 3 colours by class id; ids without a class are drawn white."""
    lut = np.full((256, 3), 255, dtype=np.uint8)
    for cls in classes:
        lut[cls.id] = cls.color
    return lut


def _boundary(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels on a class border (4-neighbourhood), grown to `width` pixels so they read."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[1:, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    if width > 1:
        kernel = np.ones((width, width), np.uint8)
        edge = cv2.dilate(edge.view(np.uint8), kernel).astype(bool)
    return edge


def _rgba32(table: np.ndarray) -> np.ndarray:
    """A 256 x 4 uint8 RGBA table as 256 uint32, so a layer is one gather, not four."""
    return np.ascontiguousarray(table, dtype=np.uint8).view(np.uint32).ravel()


def _gather(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    height, width = index.shape
    return _rgba32(table)[index].view(np.uint8).reshape(height, width, 4)


def prediction_rgba(labels: np.ndarray, classes: ClassTable, style: str = "fill",
                    opacity: float = 0.5) -> np.ndarray:
    """The predicted classes in their colours: filled, as outlines, or hatched.

    Outlines and hatching keep the mask underneath visible, so prediction and mask can be
    compared in one view. Pixels predicted as the ignore class stay transparent.
    """
    if style not in PREDICTION_STYLES:
        raise ValueError(f"unknown prediction style '{style}'; use one of {', '.join(PREDICTION_STYLES)}")
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    height, width = labels.shape
    alpha = int(round(255 * min(max(opacity, 0.0), 1.0)))
    table = np.zeros((256, 4), dtype=np.uint8)
    table[:, :3] = class_color_lut(classes)
    table[:, 3] = alpha if style == "fill" else 0
    ignore = classes.ignore_index
    if ignore is not None:
        table[ignore, 3] = 0
    rgba = _gather(table, labels)
    if style == "outline":
        edge = _boundary(labels)
        # a dark halo keeps a class-coloured line readable over the same-coloured mask
        halo = cv2.dilate(edge.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~edge
        rgba[halo, :3] = 0
        rgba[..., 3] = np.where(edge, np.uint8(255), np.where(halo, np.uint8(160), np.uint8(0)))
    elif style == "hatch":
        yy, xx = np.indices((height, width), sparse=True, dtype=np.int32)
        stripes = ((yy + xx) % HATCH_PERIOD) < 2
        # faint fill so that the hatch reads as an area, stripes and borders at full strength
        rgba[..., 3] = np.where(stripes | _boundary(labels, 1), np.uint8(255), np.uint8(alpha // 3))
    if ignore is not None and style != "fill":
        rgba[labels == ignore, 3] = 0
    return rgba


def _heat_lut() -> np.ndarray:
    """256 x 3 colours from dark blue (sure) over yellow to red (unsure)."""
    anchors = np.array([[0.0, 40, 60, 160], [0.35, 60, 190, 220], [0.6, 250, 230, 60],
                        [0.8, 250, 130, 20], [1.0, 230, 20, 20]])
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(grid, anchors[:, 0], anchors[:, c]) for c in (1, 2, 3)],
                    axis=1).round().astype(np.uint8)


_HEAT = _heat_lut()


def to_bytes(values: np.ndarray) -> np.ndarray:
    """A [0, 1] map as uint8 0-255 (uint8 maps are taken as already scaled)."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    return (np.clip(values.astype(np.float32, copy=False), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def from_bytes(values: np.ndarray) -> np.ndarray:
    """The inverse of to_bytes for uint8 maps; float maps pass through as float32."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / 255.0
    return values.astype(np.float32, copy=False)


def uncertainty_map(prediction: Prediction, kind: str = "max_prob") -> np.ndarray:
    """Per-pixel uncertainty in [0, 1]: 1 - max probability (rescaled so a uniform guess is
    1) or the normalised entropy."""
    if kind not in CONFIDENCE_KINDS:
        raise ValueError(f"unknown confidence map '{kind}'; use one of {', '.join(CONFIDENCE_KINDS)}")
    if kind == "entropy":
        return np.clip(from_bytes(prediction.entropy), 0.0, 1.0)
    classes = max(prediction.num_classes, 2)
    lowest = 1.0 / classes  # max prob of a uniform distribution
    unsure = (1.0 - from_bytes(prediction.max_prob)) / (1.0 - lowest)
    return np.clip(unsure, 0.0, 1.0)


def uncertainty_bytes(prediction: Prediction, kind: str = "max_prob") -> np.ndarray:
    """uncertainty_map as uint8, through a 256-entry table when the maps are uint8 (fast)."""
    if kind not in CONFIDENCE_KINDS:
        raise ValueError(f"unknown confidence map '{kind}'; use one of {', '.join(CONFIDENCE_KINDS)}")
    source = prediction.entropy if kind == "entropy" else prediction.max_prob
    if np.asarray(source).dtype != np.uint8:
        return to_bytes(uncertainty_map(prediction, kind))
    if kind == "entropy":
        return source
    table = Prediction(np.zeros((1, 256), np.uint8), np.arange(256, dtype=np.uint8)[None],
                       np.zeros((1, 256), np.uint8), np.zeros((1, 256), np.uint8), prediction.num_classes)
    lut = to_bytes(uncertainty_map(table, kind))[0]
    return cv2.LUT(np.ascontiguousarray(source), lut)


def _heat_table(opacity: float) -> np.ndarray:
    strength = min(max(opacity, 0.0), 1.0)
    u = np.linspace(0.0, 1.0, 256)
    table = np.empty((256, 4), dtype=np.uint8)
    table[:, :3] = _HEAT
    # a floor keeps the map readable as a map; the rise makes unsure areas stand out
    table[:, 3] = ((0.15 + 0.85 * np.sqrt(u)) * strength * 255).round().astype(np.uint8)
    return table


def confidence_rgba(uncertainty: np.ndarray, opacity: float = 0.7) -> np.ndarray:
    """A heat map of uncertainty (float in [0, 1] or uint8): sure pixels almost transparent,
    unsure ones hot and opaque."""
    return _gather(_heat_table(opacity), np.ascontiguousarray(to_bytes(uncertainty)))


def disagreement(mask: np.ndarray, labels: np.ndarray, unlabeled_id: int) -> np.ndarray:
    """True where the mask is labelled and says something other than the prediction."""
    mask = np.asarray(mask)
    return (mask != unlabeled_id) & (mask != np.asarray(labels))


def corrected_mask(prelabel: np.ndarray, final: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Pixels a person had to correct: the final mask differs from the model's pre-label.

    Pixels the final mask leaves as `ignore_index` (void, unlabelled) are left out: nobody
    must fix what is never scored. The one definition behind the app's effort meter and the
    learning-loop benchmark, so their figures compare.
    """
    prelabel, final = np.asarray(prelabel), np.asarray(final)
    _check_shape(final, prelabel)
    differ = prelabel != final
    if ignore_index is not None:
        differ &= final != ignore_index
    return differ


def corrected_pixels(prelabel: np.ndarray, final: np.ndarray, ignore_index: int | None) -> int:
    """How many pixels `corrected_mask` marks."""
    return int(np.count_nonzero(corrected_mask(prelabel, final, ignore_index)))


def disagreement_rgba(mask: np.ndarray, labels: np.ndarray, unlabeled_id: int,
                      color: tuple[int, int, int] = DISAGREE_COLOR) -> np.ndarray:
    """Differences between mask and prediction in one loud colour, with a dark rim so small
    spots stay visible; unlabelled pixels and agreement stay transparent."""
    differ = disagreement(mask, labels, unlabeled_id)
    rim = cv2.dilate(differ.view(np.uint8), np.ones((3, 3), np.uint8))
    # 0: nothing, 1: rim (black), 2: differs (the image stays visible underneath)
    index = rim + differ.view(np.uint8)
    table = np.zeros((256, 4), dtype=np.uint8)
    table[1] = (0, 0, 0, 220)
    table[2] = (*color, DISAGREE_ALPHA)
    return _gather(table, index)


# -- accepting ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AcceptEdit:
    """What one accept writes: `values` inside `region` where `where` is True."""

    label: str
    region: Region
    values: np.ndarray
    where: np.ndarray

    @property
    def pixels(self) -> int:
        return int(np.count_nonzero(self.where))

    def apply(self, doc: MaskDocument) -> bool:
        """Write it as one undoable step; False when it changes nothing."""
        if self.region.empty or not self.where.any():
            return False
        return doc.apply_edit(self.label, self.region, self.values, self.where)


def _check_shape(mask: np.ndarray, labels: np.ndarray) -> None:
    if mask.shape != labels.shape:
        raise ValueError(f"prediction is {labels.shape} but the mask is {mask.shape}")


def _ignore_free(labels: np.ndarray, unlabeled_id: int) -> np.ndarray:
    # a model never teaches "unlabelled": pixels it leaves as ignore are not written
    return labels != unlabeled_id


def accept_all(mask: np.ndarray, labels: np.ndarray, unlabeled_id: int) -> AcceptEdit:
    """Take the whole prediction (labelled pixels are overwritten)."""
    mask, labels = np.asarray(mask), np.asarray(labels, dtype=np.uint8)
    _check_shape(mask, labels)
    where = (mask != labels) & _ignore_free(labels, unlabeled_id)
    return _crop("Accept prediction", labels, where)


def accept_unlabeled(mask: np.ndarray, labels: np.ndarray, unlabeled_id: int) -> AcceptEdit:
    """Take the prediction only where the mask is still unlabelled."""
    mask, labels = np.asarray(mask), np.asarray(labels, dtype=np.uint8)
    _check_shape(mask, labels)
    where = (mask == unlabeled_id) & _ignore_free(labels, unlabeled_id)
    return _crop("Accept prediction (unlabelled pixels)", labels, where)


def accept_region(mask: np.ndarray, labels: np.ndarray, x: int, y: int,
                  unlabeled_id: int) -> AcceptEdit:
    """Take the 4-connected component of the predicted class that contains pixel (x, y)."""
    mask, labels = np.asarray(mask), np.ascontiguousarray(labels, dtype=np.uint8)
    _check_shape(mask, labels)
    height, width = labels.shape
    label = "Accept predicted region"
    if not (0 <= x < width and 0 <= y < height) or labels[y, x] == unlabeled_id:
        return AcceptEdit(label, EMPTY, np.zeros((0, 0), np.uint8), np.zeros((0, 0), bool))
    buffer = np.zeros((height + 2, width + 2), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, _, rect = cv2.floodFill(labels.copy(), buffer, (int(x), int(y)), 0, 0, 0, flags)
    region = Region.from_xywh(*rect)
    component = buffer[1:-1, 1:-1][region.slices].astype(bool)
    return AcceptEdit(label, region, labels[region.slices].copy(), component)


def _crop(label: str, labels: np.ndarray, where: np.ndarray) -> AcceptEdit:
    rows = np.flatnonzero(where.any(axis=1))
    if rows.size == 0:
        return AcceptEdit(label, EMPTY, np.zeros((0, 0), np.uint8), np.zeros((0, 0), bool))
    cols = np.flatnonzero(where.any(axis=0))
    region = Region(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return AcceptEdit(label, region, labels[region.slices].copy(), where[region.slices].copy())


def prelabel_mask(labels: np.ndarray, unlabeled_id: int) -> np.ndarray:
    """The mask a pre-label writes for an image nobody has labelled: the prediction itself."""
    return np.asarray(labels, dtype=np.uint8).copy()


# -- review queue ---------------------------------------------------------------------------
def review_order(scores: Mapping[str, ImageScore], key: str = "mean_entropy",
                 only: Iterable[str] | None = None) -> list[str]:
    """Image ids, most uncertain first (ties: by id, so the order is stable)."""
    wanted = None if only is None else set(only)
    items = [(image_id, score.get(key)) for image_id, score in scores.items()
             if wanted is None or image_id in wanted]
    items.sort(key=lambda item: (-item[1], item[0]))
    return [image_id for image_id, _ in items]


def next_in_queue(order: list[str], current: str | None, done: Iterable[str] = ()) -> str | None:
    """The first image of `order` that is neither the current one nor done."""
    skip = set(done)
    for image_id in order:
        if image_id != current and image_id not in skip:
            return image_id
    return None
