"""Training on gigapixel images by crops (issue 12, point 4): a 13,000 x 12,000 pyramid with a
few labelled chunks trains and validates beside ordinary images, every sample a window read
from the file and the mask's chunks (pixels checked against the builder and the painted
mask), mostly over the labelled chunks, with memory that follows the window; a tiny run
trains on it, photo and 4-band 16-bit alike, and `eval` scores the same crops."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segstudio.core import channels, gigapixel_project, imagery, tiled_mask
from segstudio.core.classes import ClassTable
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.engine import gigapixel_data
from segstudio.engine.augment import train_transform
from segstudio.engine.config import TrainConfig
from segstudio.engine.data import (
    EvalDataset,
    ImageStore,
    SizeGroupedBatches,
    TrainDataset,
    eval_records,
    prepare_data,
)
from segstudio.engine.metrics import IGNORE_INDEX

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from gigapixel_builders import expected, write_pyramid  # noqa: E402

H, W, TILE = 13_000, 12_000, 256
CHUNK = tiled_mask.CHUNK
# Labelled chunks of the slide: one inside, one on the bottom-right edge (a 200 x 224 chunk).
SLIDE_KEYS = ((3, 4), (11, 17), (25, 23))
OTHER_KEYS = ((6, 6), (20, 2))


def paint(project: Project, image_id: str, keys: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Labels in the given chunks only (class 1 block, class 0 stripe, the rest unlabelled),
    saved as the image's tiled mask; returns the painted mask (lazily allocated)."""
    mask = gigapixel_project.read_mask(project, image_id)
    for ky, kx in keys:
        box = Region(ky * CHUNK, kx * CHUNK, (ky + 1) * CHUNK, (kx + 1) * CHUNK).clip(H, W)
        mask[box.y0 + 20:box.y0 + 120, box.x0 + 30:box.x0 + 90] = 1
        mask[box.y1 - 10:box.y1, box.x0:box.x1] = 0
    gigapixel_project.save_chunks(project, image_id, mask, set(keys))
    return mask


def small_image(path: Path, bands: int) -> Path:
    rng = np.random.default_rng(len(path.name))
    if bands == 3:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    else:
        tifffile.imwrite(path, rng.integers(0, 4000, (32, 32, bands), dtype=np.uint16),
                         photometric="minisblack", planarconfig="contig")
    return path


def make_project(root: Path, bands: int = 3, slide_split: str = "train") -> tuple[Project, np.ndarray]:
    """Two 32 x 32 images (train, val) and the labelled slide; with `bands` 4, all 16-bit."""
    root.mkdir(parents=True)
    project = Project.create(root / "proj", ClassTable.from_names(["a", "b"]))
    suffix = ".png" if bands == 3 else ".tif"
    for name, split in (("one", "train"), ("two", "val")):
        project.add_image(small_image(root / f"{name}{suffix}", bands), split=split, status="labeled")
        mask = np.zeros((32, 32), np.uint8)
        mask[:, 20:] = 1
        project.write_mask(name, mask)
    dtype = "uint8" if bands == 3 else "uint16"
    project.add_image(write_pyramid(root / "slide.tif", H, W, channels=bands, dtype=dtype), split=slide_split,
                      status="labeled")
    if bands != 3:
        imagery.prepare(project)
    project.save()
    return project, paint(project, "slide", SLIDE_KEYS)


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Project, np.ndarray]:
    return make_project(tmp_path / "photo")


class Reads:
    """Every box read from a gigapixel file or mask, and no whole read of either."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.image_boxes: list[tuple[int, int]] = []
        self.mask_boxes: list[tuple[int, int]] = []
        raw, region = GigapixelImage.read_raw, tiled_mask.TiledMaskStore.read_region

        def read_raw(image: GigapixelImage, level: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            assert level == 0
            self.image_boxes.append((y1 - y0, x1 - x0))
            return raw(image, level, y0, y1, x0, x1)

        def read_region(store: tiled_mask.TiledMaskStore, box: Region) -> np.ndarray:
            self.mask_boxes.append(box.shape)
            return region(store, box)

        def whole(*args: object, **kwargs: object) -> None:
            raise AssertionError("a gigapixel mask or image was read whole")

        monkeypatch.setattr(GigapixelImage, "read_raw", read_raw)
        monkeypatch.setattr(tiled_mask.TiledMaskStore, "read_region", read_region)
        monkeypatch.setattr(tiled_mask.TiledMaskStore, "read", whole)
        monkeypatch.setattr(gigapixel_project, "read_mask", whole)
        for name in ("read_model_input", "read_image", "read_raw", "read_mask"):
            original = getattr(Project, name)

            def guarded(project: Project, record: object, *a: object, _orig=original, **k: object) -> object:
                rec_id = record if isinstance(record, str) else record.id  # type: ignore[attr-defined]
                assert not rec_id.startswith("slide"), f"Project.{_orig.__name__} read {rec_id} whole"
                return _orig(project, record, *a, **k)

            monkeypatch.setattr(Project, name, guarded)

    def largest(self) -> int:
        return max(h * w for h, w in self.image_boxes + self.mask_boxes)


def labelled_in(mask: np.ndarray, box: Region) -> int:
    return int(np.count_nonzero(mask[box.slices] != 255))


def test_prepare_data_includes_labelled_slides_and_notes_unlabelled_ones(photo: tuple[Project, np.ndarray],
                                                                        tmp_path: Path) -> None:
    project, _ = photo
    project.add_image(write_pyramid(tmp_path / "empty.tif", H, W), split="train", status="labeled")
    gigapixel_project.save_chunks(project, "empty", gigapixel_project.read_mask(project, "empty"), {(0, 0)})
    assert gigapixel_project.has_tiled_mask(project, "empty")  # a header, no chunk
    data = prepare_data(project)
    assert [r.id for r in data.train] == ["one", "slide"] and [r.id for r in data.val] == ["two"]
    assert any("empty" in note and "no labelled pixels" in note for note in data.warnings)
    assert gigapixel_data.labelled_keys(project, project.image("slide")) == sorted(SLIDE_KEYS)
    project.update_image("slide", split="val")
    assert [r.id for r in eval_records(project, "val")] == ["slide", "two"]


def test_training_samples_are_windows_of_the_file_and_the_stored_mask(photo: tuple[Project, np.ndarray],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project, painted = photo
    data = prepare_data(project)
    reads = Reads(monkeypatch)
    store = ImageStore(project, data.train, data.mapping, crops="random", window=(256, 320))
    # "one" is one sample; the slide one per labelled chunk
    assert len(store) == 1 + len(SLIDE_KEYS) and store.cached
    assert store.sizes == [(32, 32)] + [(256, 320)] * len(SLIDE_KEYS)
    assert store.extents == [(32, 32), (H, W)]
    boxes: list[Region] = []
    source_read = gigapixel_data.GigapixelSource.read

    def spy(source: gigapixel_data.GigapixelSource, image: GigapixelImage, box: Region):  # noqa: ANN202
        boxes.append(box)
        return source_read(source, image, box)

    monkeypatch.setattr(gigapixel_data.GigapixelSource, "read", spy)
    np.random.seed(3)
    stored = gigapixel_project.mask_store(project, "slide")
    lut = data.mapping.to_model_lut()
    for index in [1, 2, 3] * 8:
        image, mask = store[index]
        box = boxes[-1]
        assert image.shape == (256, 320, 3) and image.dtype == np.uint8 and mask.shape == (256, 320)
        np.testing.assert_array_equal(image, expected(0, TILE, box.y0, box.y1, box.x0, box.x1))
        np.testing.assert_array_equal(mask, lut[stored.read_region(box)])
        np.testing.assert_array_equal(mask, lut[painted[box.slices]])
    assert len({(b.y0, b.x0) for b in boxes}) > 20  # drawn anew on every read
    assert store[0][0].shape == (32, 32, 3)
    # augmented samples through the training dataset keep the crop size
    x, y = TrainDataset(store, train_transform("standard", (256, 320)))[2]
    assert tuple(x.shape) == (3, 256, 320) and tuple(y.shape) == (256, 320)
    assert reads.largest() <= CHUNK * CHUNK


def test_crops_come_mostly_from_the_labelled_chunks(photo: tuple[Project, np.ndarray]) -> None:
    project, painted = photo
    data = prepare_data(project)
    source = gigapixel_data.GigapixelSource(project, project.image("slide"), data.mapping.to_model_lut())
    rng = np.random.RandomState(7)
    boxes = [source.random_box((256, 256), rng) for _ in range(400)]
    assert all(b.shape == (256, 256) and b.clip(H, W) == b for b in boxes)
    holding = [labelled_in(painted, b) > 0 for b in boxes]
    share = sum(holding) / len(boxes)
    # 1 - RANDOM_SHARE hold a labelled pixel by construction; a random box almost never does
    assert 0.85 <= share <= 0.95, share
    keys = set(SLIDE_KEYS)
    assert sum(not (tiled_mask.chunk_keys(b) & keys) for b in boxes) >= 20  # the fully random ones
    # every labelled chunk is visited, the bottom-right edge one included
    assert all(any(tiled_mask.chunk_keys(b) & {key} for b in boxes) for key in SLIDE_KEYS)


def test_validation_crops_are_the_labelled_chunks_every_time(photo: tuple[Project, np.ndarray],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    project, painted = photo
    project.update_image("slide", split="val")
    records = eval_records(project, "val")
    data = prepare_data(project)
    assert [r.id for r in data.val] == ["slide", "two"]
    reads = Reads(monkeypatch)
    store = ImageStore(project, records, data.mapping)
    chunk_boxes = [Region(ky * CHUNK, kx * CHUNK, (ky + 1) * CHUNK, (kx + 1) * CHUNK).clip(H, W)
                   for ky, kx in sorted(SLIDE_KEYS)]
    assert [box for _, box in store.items[:3]] == chunk_boxes
    assert store.sizes == [(512, 512), (512, 512), (H - 25 * CHUNK, W - 23 * CHUNK), (32, 32)]
    again = ImageStore(project, records, data.mapping)
    labelled = 0
    for index in range(3):
        image, mask = store[index]
        np.testing.assert_array_equal(image, again[index][0])
        np.testing.assert_array_equal(mask, again[index][1])
        box = chunk_boxes[index]
        np.testing.assert_array_equal(image, expected(0, TILE, box.y0, box.y1, box.x0, box.x1))
        labelled += int(np.count_nonzero(mask != IGNORE_INDEX))
    assert labelled == sum(labelled_in(painted, b) for b in chunk_boxes)  # each labelled pixel once
    dataset = EvalDataset(store, 32)
    batches = list(SizeGroupedBatches(dataset, 4))
    assert sorted(len(b) for b in batches) == [1, 1, 2]  # 512s together, the edge chunk alone
    assert tuple(dataset[2][0].shape) == (3, 224, 224)
    assert reads.largest() <= CHUNK * CHUNK


def test_statistics_and_class_counts_come_from_chunks(photo: tuple[Project, np.ndarray],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project, painted = photo
    data = prepare_data(project)
    reads = Reads(monkeypatch)
    store = ImageStore(project, data.train, data.mapping, crops="random")
    counts, present = store.pixel_counts(2)
    one = data.mapping.to_model_lut()[np.asarray(Image.open(project.mask_path("one")))]
    slide = [int(np.count_nonzero(painted[Region(ky * CHUNK, kx * CHUNK, (ky + 1) * CHUNK,
                                                 (kx + 1) * CHUNK).clip(H, W).slices] == c))
             for ky, kx in SLIDE_KEYS for c in (0, 1)]
    want = np.array([(one == 0).sum() + sum(slide[0::2]), (one == 1).sum() + sum(slide[1::2])])
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_array_equal(present, [1024 + sum(slide), 1024 + sum(slide)])
    assert reads.largest() <= CHUNK * CHUNK


def test_drawing_samples_keeps_memory_small(photo: tuple[Project, np.ndarray],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The slide is 468 MB of pixels and a 156 MB mask: 300 augmented 512 px samples, the
    class counts and the validation crops stay far below either (the tile cache included)."""
    project, _ = photo
    data = prepare_data(project)
    reads = Reads(monkeypatch)
    np.random.seed(0)
    tracemalloc.start()
    try:
        store = ImageStore(project, data.train, data.mapping, crops="random", window=(512, 512))
        dataset = TrainDataset(store, train_transform("standard", (512, 512)))
        for step in range(300):
            dataset[1 + step % len(SLIDE_KEYS)]
        store.pixel_counts(2)
        ImageStore(project, data.train, data.mapping).channel_statistics()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MB"
    assert reads.largest() <= 512 * 512


def test_loader_workers_open_their_own_files_and_draw_their_own_crops(photo: tuple[Project, np.ndarray]) -> None:
    """Forked workers reopen the slide (the parent's handle shares its file offset) and are
    seeded apart."""
    from segstudio.engine.data import make_loader

    project, _ = photo
    data = prepare_data(project)
    store = ImageStore(project, data.train, data.mapping, crops="random", window=(64, 64))
    parent = store[1]  # the parent process opens the slide first
    assert parent[0].shape == (64, 64, 3)
    loader = make_loader(TrainDataset(store, train_transform("none", (64, 64))), batch_size=1, workers=2)
    seen = [tuple(x.shape) for _ in range(2) for x, _y in loader]
    assert seen == [(1, 3, 64, 64)] * (2 * len(store))
    # in order: "one", then the slide's samples, each drawn by the worker that loads it
    drawn = [(x.numpy().tobytes(), y.numpy().tobytes()) for _ in range(2) for i, (x, y) in enumerate(loader)
             if i > 0]
    assert len(drawn) == 2 * len(SLIDE_KEYS) and len(set(drawn)) == len(drawn)  # no worker repeats a draw
    handles = gigapixel_data.OpenImages(project)
    opened = handles.get(project.image("slide"))
    assert handles.get(project.image("slide")) is opened
    handles._pid = -1  # what a forked child sees: its own handle, the parent's left open
    assert handles.get(project.image("slide")) is not opened and not opened.closed
    handles.close()
    store.close()
    assert store[1][0].shape == (64, 64, 3)  # reopened on the next read


def test_a_saved_chunk_changes_the_training_signature(photo: tuple[Project, np.ndarray]) -> None:
    """A run refreshing its data between epochs sees labels saved on a slide."""
    import time

    from segstudio.engine.run_setup import mask_signature

    project, painted = photo
    records = prepare_data(project).train
    before = mask_signature(project, records)
    time.sleep(0.05)
    painted[200:210, 200:210] = 0
    gigapixel_project.save_chunks(project, "slide", painted, {(0, 0)})
    after = mask_signature(project, records)
    assert before[0] == after[0] and before[1] != after[1] and after[1][0] == "slide"


def tiny_config() -> TrainConfig:
    return TrainConfig(arch="unet", encoder="resnet18", pretrained=None, epochs=1, batch_size=2, crop_size=64,
                       lr=1e-3, augment="standard", loss="ce", workers=0, device="cpu", seed=1,
                       patience=0, preview_images=1, min_epoch_steps=1, run_name="tiny",
                       class_weights="median_frequency")


def test_tiny_training_run_on_a_photo_project_with_slides(photo: tuple[Project, np.ndarray],
                                                          tmp_path: Path) -> None:
    from segstudio.engine.inference import load_predictor
    from segstudio.engine.modelfile import load_model
    from segstudio.engine.scoring import split_confusion
    from segstudio.engine.trainer import fit

    project, _ = photo
    project.add_image(write_pyramid(tmp_path / "slide2.tif", H, W), split="val", status="labeled")
    other = paint(project, "slide2", OTHER_KEYS)
    project.save()
    events: list[dict] = []
    result = fit(tiny_config(), prepare_data(project), events.append)
    assert result.model_dir is not None and result.epochs == 1
    _, config = load_model(result.model_dir)
    assert config.in_channels == 3 and tuple(config.input_size) == (64, 64)
    started = next(e for e in events if e["event"] == "run_started")
    assert started["train_images"] == 2 and started["val_images"] == 2 and started["crop"] == [64, 64]
    # one ordinary sample and one per labelled chunk, in batches of 2
    assert started["steps_per_epoch"] == (1 + len(SLIDE_KEYS)) // 2
    epoch = next(e for e in events if e["event"] == "epoch_end")
    assert epoch["val_images"] == 1 + len(OTHER_KEYS)  # "two" whole, slide2 by its labelled chunks
    # eval scores the same crops: every labelled pixel of the val split once
    val_pixels = 32 * 32 + sum(labelled_in(other, Region(ky * CHUNK, kx * CHUNK, (ky + 1) * CHUNK,
                                                         (kx + 1) * CHUNK)) for ky, kx in OTHER_KEYS)
    matrix, _, scored = split_confusion(load_predictor(result.model_dir), project, "val")
    assert scored == 1 + len(OTHER_KEYS) and matrix.compute().pixels == val_pixels


def test_four_band_slide_trains_with_band_statistics_from_crops(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.engine.modelfile import load_model
    from segstudio.engine.trainer import fit

    project, painted = make_project(tmp_path / "bands", bands=4)
    table = channels.table_of(project.settings)
    assert table is not None and table.count == 4 and table.dtype == "uint16"
    data = prepare_data(project)
    reads = Reads(monkeypatch)
    store = ImageStore(project, data.train, data.mapping, crops="random", window=(128, 128))
    np.random.seed(1)
    image, mask = store[1]
    assert image.shape == (128, 128, 4) and image.dtype == np.float32 and mask.shape == (128, 128)
    # statistics over "one" whole and the slide's labelled chunks, read box by box
    pixels = [tifffile.imread(project.image_path("one")).reshape(-1, 4).astype(np.float64)]
    for ky, kx in sorted(SLIDE_KEYS):
        box = Region(ky * CHUNK, kx * CHUNK, (ky + 1) * CHUNK, (kx + 1) * CHUNK).clip(H, W)
        pixels.append(expected(0, TILE, box.y0, box.y1, box.x0, box.x1, channels=4, dtype="uint16")
                      .reshape(-1, 4).astype(np.float64))
    every = np.concatenate(pixels)
    mean, std = store.channel_statistics()
    np.testing.assert_allclose(mean, every.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std, every.std(axis=0), rtol=1e-7)
    assert reads.largest() <= CHUNK * CHUNK
    monkeypatch.undo()
    result = fit(tiny_config(), data)
    model, config = load_model(result.model_dir)
    assert config.in_channels == 4 and config.channels == (0, 1, 2, 3)
    np.testing.assert_allclose(np.asarray(config.mean) * 255, every.mean(axis=0), rtol=1e-6)
    first = next(m for m in model.modules() if hasattr(m, "in_channels"))
    assert first.in_channels == 4
