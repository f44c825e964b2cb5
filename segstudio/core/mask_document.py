"""The editable mask of one image: strokes, undo/redo, change notification. No Qt.

Every mutation goes through a stroke (begin_stroke / write / end_stroke). On the first
write to a tile within a stroke the tile is copied; on commit only the changed part of
each copied tile is kept, as a compressed diff, so a stroke costs what it touched and
never a copy of the whole mask. Views read `mask` (a read-only view) and redraw the
regions listeners are told about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

from segstudio.core.classes import ClassTable
from segstudio.core.errors import MaskError
from segstudio.core.history import EditEntry, EditHistory, TilePatch, make_patch, new_state_id
from segstudio.core.region import EMPTY, Region

Listener = Callable[[Region], None]
Values = np.ndarray | int

# Above this many separate patches a listener gets their bounding box once instead of one
# call per patch (a view redraws a big box faster than a thousand small ones).
MAX_SEPARATE_NOTIFY = 256


class StrokeError(RuntimeError):
    """A programming error: a mask write outside begin_stroke/end_stroke."""


def _check_values(values: Values) -> Values:
    """Class ids must fit a uint8 mask; anything else would silently wrap around."""
    if isinstance(values, np.ndarray):
        if values.dtype == np.uint8:
            return values
        if values.size and (values.min() < 0 or values.max() > 255):
            raise MaskError("mask values must be class ids 0-255")
        return values.astype(np.uint8)
    value = int(values)
    if not 0 <= value <= 255:
        raise MaskError(f"class id {value} does not fit a mask; class ids are 0-255")
    return value


class MaskDocument:
    """An HxW uint8 class-id mask with stroke-based edits and a tile-diff history.

    The document takes the given array over without copying it (an 8k mask is 64 MB):
    do not write to it afterwards. Not thread-safe: mutate it from one thread (the UI's)
    and compute selections elsewhere.
    """

    def __init__(
        self,
        mask: np.ndarray,
        classes: ClassTable,
        *,
        tile: int = 256,
        history_budget_mb: float = 200,
        max_steps: int = 1000,
    ) -> None:
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise MaskError(
                f"a mask must be a single-channel HxW array of class ids, got shape {mask.shape}"
            )
        if mask.dtype != np.uint8:
            if mask.size and (mask.min() < 0 or mask.max() > 255):
                raise MaskError(
                    "mask values must be class ids 0-255; convert the mask to 8-bit ids"
                )
            mask = mask.astype(np.uint8)
        if not (mask.flags.c_contiguous and mask.flags.writeable):
            mask = np.array(mask, dtype=np.uint8, order="C")
        if tile < 1:
            raise ValueError("tile must be a positive number of pixels")
        self._data = mask  # the only writable reference; see writable_mask()
        self._view = mask.view()
        self._view.flags.writeable = False
        self.classes = classes
        self.tile = int(tile)
        self._history = EditHistory(int(history_budget_mb * 1024 * 1024), max_steps)
        self._listeners: list[Listener] = []
        self._state = 0
        self._saved_state = 0
        self.revision = 0
        # open stroke
        self._stroke_label: str | None = None
        self._copies: dict[tuple[int, int], np.ndarray] = {}
        self._stroke_changed = False

    # -- state ------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:
        """The current mask, read-only: edits go through strokes so undo stays truthful."""
        return self._view

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._data.shape[0]), int(self._data.shape[1]))

    @property
    def dirty(self) -> bool:
        """True when the mask differs from the state last marked saved."""
        return self._stroke_changed or self._state != self._saved_state

    @property
    def in_stroke(self) -> bool:
        return self._stroke_label is not None

    def mark_saved(self) -> None:
        """Call after the mask was written to disk; undoing back here clears `dirty` again.

        Saved in the middle of a stroke (an autosave while the button is held), the file
        holds a state no history step will reproduce, so the document stays dirty until
        the next save; the stroke itself goes on undisturbed.
        """
        self._saved_state = new_state_id() if self._stroke_changed else self._state

    def set_classes(self, classes: ClassTable) -> None:
        """Replace the class table (the mask is unchanged; views recolour themselves)."""
        self.classes = classes

    def writable_mask(self) -> np.ndarray:
        """The writable array, for OpenCV calls that demand one but only read it.

        Only core tools may use it, and never to write: a write here bypasses the history.
        """
        return self._data

    # -- listeners ----------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        """`fn(region)` runs after every change with a region covering the changed pixels."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    def _notify(self, regions: Iterable[Region]) -> None:
        regions = [r for r in regions if not r.empty]
        if not regions:
            return
        self.revision += 1
        if len(regions) > MAX_SEPARATE_NOTIFY:
            regions = [Region.bounding(regions)]
        for fn in list(self._listeners):
            for region in regions:
                fn(region)

    # -- strokes ------------------------------------------------------------------------------
    def begin_stroke(self, label: str) -> None:
        """Open a stroke (one history entry); an unfinished previous stroke is committed."""
        if self.in_stroke:
            self.end_stroke()
        self._stroke_label = label
        self._copies = {}
        self._stroke_changed = False

    def write(self, region: Region, values: Values, where: np.ndarray | None = None) -> Region:
        """Assign `values` inside `region` (only where `where` is True); returns what changed.

        `values` is a scalar or an array of the region's shape, `where` a bool array of the
        region's shape; both are cropped along with a region reaching past the image.
        """
        if not self.in_stroke:
            raise StrokeError("MaskDocument.write outside a stroke; call begin_stroke first")
        values = _check_values(values)
        height, width = self.shape
        clipped = region.clip(height, width)
        if clipped.empty:
            return EMPTY
        if clipped != region:
            crop = clipped.shifted(-region.y0, -region.x0).slices
            if isinstance(values, np.ndarray) and values.ndim == 2:
                values = values[crop]
            if where is not None:
                where = where[crop]
        if where is not None and where.dtype != np.bool_:
            where = where.astype(bool)
        target = self._data[clipped.slices]
        changed = target != values
        if where is not None:
            changed &= where
        rows = np.flatnonzero(changed.any(axis=1))
        if rows.size == 0:
            return EMPTY
        cols = np.flatnonzero(changed.any(axis=0))
        result = Region(
            clipped.y0 + int(rows[0]),
            clipped.x0 + int(cols[0]),
            clipped.y0 + int(rows[-1]) + 1,
            clipped.x0 + int(cols[-1]) + 1,
        )
        self._snapshot(result)
        np.copyto(target, values, where=changed)
        self._stroke_changed = True
        self._notify([result])
        return result

    def _tile_region(self, ty: int, tx: int) -> Region:
        t = self.tile
        return Region(ty * t, tx * t, (ty + 1) * t, (tx + 1) * t).clip(*self.shape)

    def _snapshot(self, region: Region) -> None:
        for key in region.tiles(self.tile):
            if key not in self._copies:
                self._copies[key] = self._data[self._tile_region(*key).slices].copy()

    def end_stroke(self) -> bool:
        """Commit the open stroke as one history entry; False (no entry) if nothing changed."""
        if not self.in_stroke:
            return False
        label = self._stroke_label or ""
        patches: list[TilePatch] = []
        for key, old in self._copies.items():
            region = self._tile_region(*key)
            patch = make_patch(region.y0, region.x0, old, self._data[region.slices])
            if patch is not None:
                patches.append(patch)
        self._stroke_label = None
        self._copies = {}
        self._stroke_changed = False
        if not patches:
            return False
        state = new_state_id()
        self._history.push(EditEntry(label, tuple(patches), self._state, state))
        self._state = state
        return True

    def abort_stroke(self) -> None:
        """Throw the open stroke away, restoring every tile it touched."""
        if not self.in_stroke:
            return
        restored = []
        for key, old in self._copies.items():
            region = self._tile_region(*key)
            target = self._data[region.slices]
            if not np.array_equal(target, old):
                target[...] = old
                restored.append(region)
        self._stroke_label = None
        self._copies = {}
        self._stroke_changed = False
        self._notify(restored)

    # -- one-shot edits -------------------------------------------------------------------------
    def apply_edit(
        self, label: str, region: Region, values: Values, where: np.ndarray | None = None
    ) -> bool:
        """One write as its own undoable step (fill, accept prediction, clear)."""
        self.begin_stroke(label)
        self.write(region, values, where)
        return self.end_stroke()

    def replace_all(self, label: str, new_mask: np.ndarray) -> bool:
        """Make the mask equal to `new_mask` as one undoable step; False if already equal."""
        new_mask = np.asarray(new_mask)
        if new_mask.shape != self._data.shape:
            raise MaskError(
                f"the new mask is {new_mask.shape[:2]} but the image is {self.shape}; "
                "resize it to the image first"
            )
        new_mask = _check_values(new_mask)
        return self._replace_tiles(label, lambda region, _old: new_mask[region.slices])

    def remap(self, label: str, lut: np.ndarray) -> bool:
        """Map every pixel through a 256-entry table (deleting or merging classes), one step."""
        lut = np.asarray(lut)
        if lut.shape != (256,):
            raise ValueError("remap needs a table of 256 class ids")
        if lut.min() < 0 or lut.max() > 255:
            raise MaskError("remap table values must be class ids 0-255")
        table = np.ascontiguousarray(lut, dtype=np.uint8)
        if np.array_equal(table, np.arange(256)):
            return False
        return self._replace_tiles(label, lambda _region, old: cv2.LUT(old, table))

    def _replace_tiles(
        self, label: str, new_block: Callable[[Region, np.ndarray], np.ndarray]
    ) -> bool:
        """One step setting each tile to new_block(tile, old): old and new are both at hand,
        so the diff is taken directly, with no tile copies and one pass over the mask."""
        self.end_stroke()
        patches: list[TilePatch] = []
        height, width = self.shape
        for ty in range((height + self.tile - 1) // self.tile):
            for tx in range((width + self.tile - 1) // self.tile):
                region = self._tile_region(ty, tx)
                old = self._data[region.slices]
                new = new_block(region, old)
                patch = make_patch(region.y0, region.x0, old, new)
                if patch is not None:
                    old[...] = new
                    patches.append(patch)
        if not patches:
            return False
        state = new_state_id()
        self._history.push(EditEntry(label, tuple(patches), self._state, state))
        self._state = state
        self._notify(p.region for p in patches)
        return True

    # -- history -------------------------------------------------------------------------------
    def _step(self, entry: EditEntry | None, target_state: int) -> Region | None:
        if entry is None:
            return None
        entry.apply(self._data)
        self._state = target_state
        self._notify(entry.regions)
        return entry.region

    def undo(self) -> Region | None:
        """Undo the last step (an open stroke is committed first); returns what changed."""
        self.end_stroke()
        entry = self._history.pop_undo()
        return self._step(entry, entry.state_before if entry else self._state)

    def redo(self) -> Region | None:
        self.end_stroke()
        entry = self._history.pop_redo()
        return self._step(entry, entry.state_after if entry else self._state)

    @property
    def can_undo(self) -> bool:
        return self._history.can_undo or self._stroke_changed

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo and not self._stroke_changed

    @property
    def undo_label(self) -> str | None:
        if self._stroke_changed:
            return self._stroke_label
        return self._history.undo_label

    @property
    def redo_label(self) -> str | None:
        return None if self._stroke_changed else self._history.redo_label

    @property
    def history(self) -> EditHistory:
        return self._history

    def history_bytes(self) -> int:
        """Bytes the undo/redo history holds (compressed diffs plus bookkeeping)."""
        return self._history.nbytes

    def clear_history(self) -> None:
        self.end_stroke()
        self._history.clear()
