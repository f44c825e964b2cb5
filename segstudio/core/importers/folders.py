"""`folders`: an image folder and a mask folder matched by file stem, one pair per split.

Masks may be grayscale class ids, palette PNGs (index = class id) or RGB colour masks mapped
through the class colours. A root folder can be given instead of --images/--masks: the
CamVid/SegNet layout (train/ + trainannot/, val/ + valannot/) and segstudio's own `masks`
export (images/ + masks/ + train.txt ...) are recognised, with classes.json beside them.
A gigapixel image's single-band TIFF mask (what the `masks` export writes for one) is read
band by band into the image's chunk store, never decoded whole (tiled_masks.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from segstudio.core import imageio
from segstudio.core.classes import ClassTable
from segstudio.core.errors import DatasetImportError
from segstudio.core.importers import tiled_masks
from segstudio.core.importers.base import (
    DatasetSource,
    ImportItem,
    ImportOptions,
    MaskLoader,
    Skip,
    SourceMask,
)
from segstudio.core.importers.common import class_file, list_folder, read_ids_mask
from segstudio.core.project import SPLITS

# Mask names that carry a tag after the image stem (CamVid's original "_L", common "_mask").
MASK_STEM_TAGS = ("", "_mask", "_L", "_label", "_labels", "_annot")
ANNOT_SUFFIXES = ("annot", "_annot", "_labels", "_masks")


@dataclass(frozen=True)
class FolderPair:
    images: Path
    masks: Path | None
    split: str
    split_lists: dict[str, str] | None = None  # stem -> split, from train.txt etc.


def scan(options: ImportOptions, project_classes: ClassTable | None) -> DatasetSource:
    pairs, root = _pairs(options)
    candidates = () if root is None else (root / "classes.json", root / "labels.txt")
    classes = class_file(options.classes_file, *candidates)
    # No class file: an existing project's own ids; a new project infers them from the masks.
    table = classes if classes is not None else project_classes
    infer = table is None
    return DatasetSource("folders", classes, _items(pairs, table, infer))


def _pairs(options: ImportOptions) -> tuple[list[FolderPair], Path | None]:
    if options.images and options.sources:
        raise DatasetImportError(
            "give either a dataset folder (SRC) or --images/--masks folders for the folders format, not both"
        )
    if options.images:
        if options.masks and len(options.masks) != len(options.images):
            raise DatasetImportError(
                f"{len(options.images)} --images folders but {len(options.masks)} --masks folders; "
                "give one --masks per --images (in the same order)"
            )
        pairs = [
            FolderPair(folder, options.masks[i] if options.masks else None, options.split_for(i))
            for i, folder in enumerate(options.images)
        ]
        return pairs, options.images[0].parent
    if len(options.sources) != 1:
        raise DatasetImportError(
            "the folders format needs --images DIR [--masks DIR] (repeatable, with --split), "
            "or one dataset folder (CamVid layout train/ + trainannot/, or images/ + masks/)"
        )
    root = options.sources[0]
    if not root.is_dir():
        raise DatasetImportError(f"{root} is not a folder; check the path")
    pairs = _detect_layout(root, options)
    if not pairs:
        raise DatasetImportError(
            f"{root}: found neither split folders with annotations (train/ + trainannot/) nor "
            "images/ + masks/; use --images DIR --masks DIR"
        )
    return pairs, root


def _detect_layout(root: Path, options: ImportOptions) -> list[FolderPair]:
    pairs = []
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        masks = next((root / f"{split}{tag}" for tag in ANNOT_SUFFIXES if (root / f"{split}{tag}").is_dir()), None)
        pairs.append(FolderPair(root / split, masks, split))
    if pairs:
        return pairs
    if (root / "images").is_dir():
        lists = _split_lists(root)
        masks = root / "masks" if (root / "masks").is_dir() else None
        return [FolderPair(root / "images", masks, options.split or "unassigned", lists or None)]
    return []


def _split_lists(root: Path) -> dict[str, str]:
    """stem -> split from train.txt / val.txt / test.txt (one stem per line)."""
    result: dict[str, str] = {}
    for split in SPLITS:
        path = root / f"{split}.txt"
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetImportError(f"{path}: cannot be read ({exc})") from exc
        for line in lines:
            if line.strip():
                result[line.strip()] = split
    return result


def _items(pairs: list[FolderPair], classes: ClassTable | None, infer: bool) -> Iterator[ImportItem | Skip]:
    for pair in pairs:
        yield from _pair_items(pair, classes, infer)


def _pair_items(pair: FolderPair, classes: ClassTable | None, infer: bool) -> Iterator[ImportItem | Skip]:
    images, problem = list_folder(pair.images)
    if problem is not None:
        yield problem
        return
    masks: dict[str, Path] = {}
    if pair.masks is not None:
        mask_files, problem = list_folder(pair.masks)
        if problem is not None:
            yield problem
        for path in mask_files:
            if path.is_file() and imageio.is_image_file(path):
                masks.setdefault(path.stem, path)
    used: set[Path] = set()
    seen_stems: set[str] = set()
    for path in images:
        if path.is_dir():
            continue
        if not imageio.is_image_file(path):
            yield Skip(path, f"not an image (suffix '{path.suffix}'); images are {_suffixes()}")
            continue
        if path.stem in seen_stems:
            yield Skip(path, f"another image is also named '{path.stem}'; its mask would be ambiguous")
            continue
        seen_stems.add(path.stem)
        mask = next((masks[path.stem + tag] for tag in MASK_STEM_TAGS if path.stem + tag in masks), None)
        if mask is not None:
            used.add(mask)
        split = pair.split_lists.get(path.stem, pair.split) if pair.split_lists else pair.split
        loader = None if mask is None else _loader(mask, classes, infer)
        yield ImportItem(source=path if mask is None else mask, name=path.stem, image=path,
                         split=split, load_mask=loader)
    for path in sorted(set(masks.values()) - used):
        yield Skip(path, f"mask has no image with the same name in {pair.images}")


def _loader(path: Path, classes: ClassTable | None, infer: bool) -> MaskLoader:
    def load(info: imageio.ImageInfo) -> SourceMask:
        if tiled_masks.wants_tiles(path, info.height, info.width):  # a gigapixel TIFF mask: by bands
            return tiled_masks.read_tiled_ids_mask(path, classes, infer)
        return read_ids_mask(path, classes, infer)

    return load


def _suffixes() -> str:
    return ", ".join(sorted(imageio.IMAGE_SUFFIXES))
