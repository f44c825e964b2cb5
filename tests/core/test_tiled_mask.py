"""Masks of gigapixel images: lazily allocated in memory, saved as compressed chunks, only
the chunks edited since the last save written, reloaded exactly, undone by tile."""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.classes import ClassTable
from segstudio.core.errors import MaskError
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import Region
from segstudio.core.tiled_mask import CHUNK, DirtyChunks, TiledMaskStore, allocate, uses_tiles

CLASSES = ClassTable.from_names(["background", "tissue", "tumour"])


def dab(doc: MaskDocument, y: int, x: int, r: int, value: int) -> None:
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    doc.write(Region(y - r, x - r, y + r + 1, x + r + 1), value, where=yy * yy + xx * xx <= r * r)


def strokes(doc: MaskDocument, rng: np.random.Generator, count: int) -> None:
    h, w = doc.shape
    for i in range(count):
        doc.begin_stroke("brush")
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        for step in range(10):
            dab(doc, y + 3 * step, x + 5 * step, 12, 1 + i % 2)
        doc.end_stroke()


def test_size_rule() -> None:
    assert not uses_tiles(8192, 8192)
    assert uses_tiles(20_000, 20_000)


@pytest.mark.parametrize("fill", [0, 255])
def test_painted_mask_survives_save_and_reload_exactly(tmp_path: Path, fill: int) -> None:
    shape = (6000, 5100)  # edge chunks are partial on both axes
    doc = MaskDocument(allocate(*shape, fill=fill), CLASSES)
    assert doc.mask[0, 0] == fill and doc.mask[-1, -1] == fill
    dirty = DirtyChunks()
    doc.add_listener(dirty)
    strokes(doc, np.random.default_rng(1), 30)
    dab_edge = (shape[0] - 3, shape[1] - 2)
    doc.begin_stroke("edge")
    dab(doc, *dab_edge, 6, 2)
    doc.end_stroke()
    store = TiledMaskStore(tmp_path / "m.zarr", shape, fill=fill)
    keys = dirty.take()
    assert store.write(doc.mask, keys) == len(keys)
    assert set(store.stored_keys()) == keys  # every dirty chunk holds paint here
    again = TiledMaskStore.open(tmp_path / "m.zarr").read()
    assert again.shape == shape and np.array_equal(again, doc.mask)

    # An undo is an edit like any other: its chunks are dirty, and the file follows it.
    doc.undo()
    keys = dirty.take()
    assert keys and all(k[0] == (shape[0] - 1) // CHUNK for k in keys)
    store.write(doc.mask, keys)
    assert np.array_equal(TiledMaskStore.open(tmp_path / "m.zarr").read(), doc.mask)


def test_a_save_writes_only_the_dirty_chunks(tmp_path: Path) -> None:
    shape = (4096, 4096)
    doc = MaskDocument(allocate(*shape), CLASSES)
    dirty = DirtyChunks()
    doc.add_listener(dirty)
    store = TiledMaskStore(tmp_path / "m.zarr", shape)
    strokes(doc, np.random.default_rng(2), 10)
    store.write(doc.mask, dirty.take())
    before = {p.name: p.stat().st_mtime_ns for p in store.path.iterdir() if not p.name.startswith(".")}
    doc.begin_stroke("one dab")
    dab(doc, 100, 100, 5, 2)  # chunk 0.0 only
    doc.end_stroke()
    assert dirty.take() == {(0, 0)}
    assert store.write(doc.mask, {(0, 0)}) == 1
    after = {p.name: p.stat().st_mtime_ns for p in store.path.iterdir() if not p.name.startswith(".")}
    assert {n for n in after if after[n] != before.get(n)} == {"0.0"}


def test_erased_chunk_loses_its_file(tmp_path: Path) -> None:
    doc = MaskDocument(allocate(2000, 2000, fill=255), CLASSES)
    store = TiledMaskStore(tmp_path / "m.zarr", doc.shape, fill=255)
    doc.apply_edit("box", Region(600, 600, 700, 700), 1)
    store.write(doc.mask, {(1, 1)})
    assert store.stored_keys() == [(1, 1)]
    doc.undo()
    store.write(doc.mask, {(1, 1)})
    assert store.stored_keys() == []
    assert (store.read() == 255).all()


def test_store_is_zarr_v2_layout(tmp_path: Path) -> None:
    mask = allocate(1000, 700, fill=255)
    mask[510:520, 600:700] = 2
    store = TiledMaskStore(tmp_path / "m.zarr", mask.shape, fill=255)
    store.write(mask)
    assert store.stored_keys() == [(0, 1), (1, 1)]
    header = json.loads((store.path / ".zarray").read_text())
    assert header["fill_value"] == 255
    assert header["shape"] == [1000, 700] and header["chunks"] == [CHUNK, CHUNK]
    assert header["dtype"] == "|u1" and header["compressor"]["id"] == "zlib"
    block = np.frombuffer(zlib.decompress((store.path / "1.1").read_bytes()), np.uint8).reshape(CHUNK, CHUNK)
    assert np.array_equal(block[:488, :188], mask[512:, 512:])  # padded edge chunk, as zarr writes it


def test_damaged_chunk_names_the_file(tmp_path: Path) -> None:
    mask = allocate(600, 600)
    mask[:10, :10] = 1
    store = TiledMaskStore(tmp_path / "m.zarr", mask.shape)
    store.write(mask)
    (store.path / "0.0").write_bytes(b"not zlib")
    with pytest.raises(MaskError, match="chunk 0.0 is damaged"):
        store.read()
    with pytest.raises(MaskError, match="not a tiled mask"):
        TiledMaskStore.open(tmp_path / "missing.zarr")


def _rss_kb(key: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("fill", [0, 255])
def test_a_50k_mask_costs_memory_only_where_painted(fill: int) -> None:
    before = _rss_kb("RssAnon")
    doc = MaskDocument(allocate(50_000, 50_000, fill=fill), CLASSES)  # 2.5 GB if committed
    assert doc.mask[49_999, 12_345] == fill
    strokes(doc, np.random.default_rng(3), 20)
    # Private memory: what the strokes copied (a shared fill block counts once, not here).
    grown_mb = (_rss_kb("RssAnon") - before) / 1024
    assert doc.history.undo_depth == 20
    assert grown_mb < 200, grown_mb


def test_writes_to_a_filled_mask_stay_where_they_land() -> None:
    """The fill block is mapped many times over: a write must copy its page, never show
    up in the other mappings of the same block."""
    mask = allocate(4000, 3000, fill=7)
    block = 2 * 1024 * 1024
    flat = mask.reshape(-1)
    flat[10] = 1
    assert flat[block + 10] == 7 and flat[3 * block + 10] == 7 and flat[10] == 1
    assert int(np.count_nonzero(mask != 7)) == 1


def test_region_writes_and_reads_go_by_whole_chunks(tmp_path: Path) -> None:
    """Tiled prediction writes band by band, training crops read boxes: both equal the
    whole-mask path, and a box off the chunk grid is refused rather than half-written."""
    h, w = 2 * CHUNK + 300, 2 * CHUNK + 77
    store = TiledMaskStore(tmp_path / "m.zarr", (h, w), fill=255)
    rng = np.random.default_rng(3)
    expected = np.full((h, w), 255, dtype=np.uint8)
    lower = rng.integers(0, 3, (h - CHUNK, w)).astype(np.uint8)
    lower[:, :CHUNK] = 255  # an all-fill chunk row part: no file for those chunks
    assert store.write_region(CHUNK, 0, lower) == 4  # the chunks of column 0 hold only fill
    expected[CHUNK:] = lower
    assert np.array_equal(store.read(), expected)
    box = Region(CHUNK - 40, 300, h - 5, w - 1)
    assert np.array_equal(store.read_region(box), expected[box.slices])
    assert store.stored_keys() == [(1, 1), (1, 2), (2, 1), (2, 2)]
    with pytest.raises(MaskError, match="whole 512 x 512 chunks"):
        store.write_region(10, 0, lower[:CHUNK])
    with pytest.raises(MaskError, match="outside"):
        store.read_region(Region(0, 0, h + 1, 10))


def test_counts_and_remap_chunk_by_chunk(tmp_path: Path) -> None:
    mask = allocate(1500, 1300, fill=255)
    mask[:10, :20] = 1  # chunk 0.0
    mask[1400:, 1290:] = 2  # the corner chunk, partial
    store = TiledMaskStore(tmp_path / "m.zarr", mask.shape, fill=255)
    store.write(mask)
    counts = store.counts()
    assert (counts[1], counts[2], counts[255]) == (200, 1000, 1500 * 1300 - 1200)
    lut = np.arange(256, dtype=np.uint8)
    lut[1] = 3
    assert store.remap(lut)
    assert not store.remap(lut)  # nothing of class 1 is left
    again = TiledMaskStore.open(store.path).read()
    assert (again[:10, :20] == 3).all() and (again[1400:, 1290:] == 2).all()
    lut[255] = 0  # the fill itself changes: chunks without a file follow through the header
    assert store.remap(lut)
    again = TiledMaskStore.open(store.path)
    assert again.fill == 0 and again.read()[700, 700] == 0 and again.counts()[255] == 0


def test_project_masks_of_gigapixel_images(tmp_path: Path) -> None:
    """has_mask, pixel counts, class remap and delete see a project's chunk stores."""
    sys.path.insert(0, str(Path(__file__).parent))
    from gigapixel_builders import write_pyramid

    from segstudio.core import gigapixel_project
    from segstudio.core.project import Project

    project = Project.create(tmp_path / "proj", CLASSES)
    project.add_image(write_pyramid(tmp_path / "slide.tif", 13_000, 12_500))
    assert gigapixel_project.is_gigapixel_record(project, "slide") and not project.has_mask("slide")
    mask = gigapixel_project.read_mask(project, "slide")
    mask[100:110, 100:120] = 1
    gigapixel_project.save_chunks(project, "slide", mask, {(0, 0)})
    assert project.has_mask("slide")
    assert project.pixel_counts()[1] == 200
    assert project.remap_class(1, 2) == ["slide"]
    assert gigapixel_project.read_mask(project, "slide")[105, 105] == 2
    project.delete_mask("slide")
    assert not project.has_mask("slide") and not project.tiled_mask_path("slide").exists()
