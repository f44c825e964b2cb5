"""Training previews of a project with a channel table show the image through the project's
display mapping (issue 12), as the canvas does, not its first three bands stretched per image.
Expected pixels come from the raw bands and the documented rule, not from core.display."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from imagery_builders import dataset  # noqa: E402

from segstudio.core import channels, display  # noqa: E402
from segstudio.core.classes import ClassDef, ClassTable  # noqa: E402
from segstudio.core.importers import ImportOptions, import_dataset  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.engine.config import TrainConfig  # noqa: E402
from segstudio.engine.data import prepare_data  # noqa: E402
from segstudio.engine.evaluate import preview_display  # noqa: E402

CLASSES = ClassTable((ClassDef(0, "background", (0, 0, 0)), ClassDef(1, "field", (0, 200, 0)),
                      ClassDef(255, "void", (128, 128, 128), ignore=True)))
LIMITS = ((1000.0, 4000.0), (2000.0, 5000.0), (3000.0, 6000.0), (4500.0, 6500.0))


def stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.rint(np.clip((values.astype(np.float64) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def settings(model_bands: tuple[int, ...], mapping: display.DisplayMapping) -> dict[str, object]:
    table = channels.ChannelTable(tuple(channels.Channel(n) for n in ("red", "green", "blue", "nir")))
    return {"channels": table.with_model(model_bands).to_dict(), "display": mapping.to_dict()}


def test_preview_display_reindexes_onto_the_model_bands() -> None:
    nir_red = display.DisplayMapping("rgb", (3, 1, 0), 0, LIMITS)
    # the model sees red, green, nir: sample bands 0, 1, 2 hold source bands 0, 1, 3
    assert preview_display(settings((0, 1, 3), nir_red)) == display.DisplayMapping(
        "rgb", (2, 1, 0), 0, (LIMITS[0], LIMITS[1], LIMITS[3]))
    grey_nir = display.DisplayMapping("grey", (0, 1, 2), 3, LIMITS)
    shown = preview_display(settings((1, 3), grey_nir))
    assert shown is not None and (shown.mode, shown.shown, shown.limits) == ("grey", (1, 1, 1), (LIMITS[1], LIMITS[3]))
    # a shown band the model does not see: its first bands, still with the project's limits
    blue = display.DisplayMapping("rgb", (2, 1, 0), 0, LIMITS)
    assert preview_display(settings((0, 1, 3), blue)) == display.DisplayMapping(
        "rgb", (0, 1, 2), 0, (LIMITS[0], LIMITS[1], LIMITS[3]))
    assert preview_display({}) is None  # photo projects: unchanged
    assert preview_display({"display": {"rgb": [0]}, "channels": {}}) is None  # malformed: plain stretch


def test_training_previews_follow_the_display_mapping(tmp_path: Path) -> None:
    from segstudio.engine.trainer import fit

    src = dataset(tmp_path / "src", "geo4", count=4, h=40, w=56)
    (tmp_path / "c.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=tmp_path / "c.json", splits=("train",)))
    project = Project.open(tmp_path / "p")
    project.settings["display"] = display.DisplayMapping("rgb", (3, 1, 2), 0, LIMITS).to_dict()
    project.save()
    data = prepare_data(project)
    config = TrainConfig(arch="unet", encoder="resnet18", pretrained=None, epochs=1, batch_size=2,
                         crop_size=32, lr=1e-3, augment="standard", loss="ce", workers=0, device="cpu",
                         seed=1, patience=0, preview_images=1, min_epoch_steps=1, run_name="tiny")
    result = fit(config, data)
    strip = np.asarray(Image.open(Path(result.run_dir) / "previews" / "epoch001_0.png").convert("RGB"))
    raw = project.read_raw(data.val[0])
    h, w = raw.shape[:2]
    want = np.stack([stretch(raw[:, :, b], *LIMITS[b]) for b in (3, 1, 2)], axis=2)
    np.testing.assert_array_equal(strip[:h, :w], want)
