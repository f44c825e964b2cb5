"""Make the user guide's screenshots by driving the real app offscreen on the sample project.

    .venv/bin/python docs/make_screenshots.py            # every picture into docs/images/
    .venv/bin/python docs/make_screenshots.py --theme dark --out /tmp/shots

The app runs with QT_QPA_PLATFORM=offscreen, a temporary user data folder and temporary
settings, so nothing of the user's own segstudio is read or changed. Each theme runs in its
own child process (the theme is chosen when the QApplication starts: SEGSTUDIO_THEME). The
light run also trains a tiny CPU model from the window's Training dock, grabs the dashboard
once the first epoch has ended, makes the finished model active and grabs a prediction.
Takes a few minutes on two cores, most of it the training run.

A three-epoch model predicts little, so the Model dock's picture can use a real one instead:

    .venv/bin/python benchmarks/camvid.py --device cpu --minutes 20 --pretrained none --project /tmp/cv
    .venv/bin/python docs/make_screenshots.py --model /tmp/cv/models/camvid-bench

The model is copied into the sample project's models/ (its classes must be the sample's,
CamVid's) and made active there, as a user would with Model > Open model...

The light run also makes the pictures of docs/scientific-imagery.md from generated images
(it needs ../shared/data/camvid, else it says so and skips them): a 4-band 16-bit GeoTIFF
project (red, green, blue and a near-infrared band in which trees are bright) shown as a
false-colour composite, and a 20,000 x 20,000 slide mosaic of road scenes (tiled JPEG without
a pyramid, so the app builds one) at fit and at 100 %.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZES = ((1280, 800), (1920, 1080))
MAX_BYTES = 400_000  # a picture above this is quantised (then scaled) to keep the repo lean
CHILD_TIMEOUT_S = {"light": 1800, "dark": 300}
CAMVID = HERE.parents[1] / "shared" / "data" / "camvid"
SLIDE_SIDE = 20_000


class ScreenshotError(RuntimeError):
    """A step of the screenshot run failed; the message says which and why."""


# -- the parent: one child per theme -----------------------------------------------------------------
def run_children(out: Path, themes: list[str], model: Path | None = None) -> int:
    for theme in themes:
        started = time.monotonic()
        print(f"[{theme}] starting", flush=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--theme", theme, "--out", str(out)]
        if model is not None:
            command += ["--model", str(model)]
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SEGSTUDIO_THEME": theme}
        try:
            code = subprocess.call(command, env=env, timeout=CHILD_TIMEOUT_S[theme])
        except subprocess.TimeoutExpired:
            print(f"[{theme}] error: gave up after {CHILD_TIMEOUT_S[theme]} s", file=sys.stderr)
            return 1
        if code != 0:
            print(f"[{theme}] error: the screenshot run failed (exit code {code})", file=sys.stderr)
            return code
        print(f"[{theme}] done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


# -- the child: drive the window -------------------------------------------------------------------
class Shooter:
    """Owns the app, the window and the output folder of one theme's run."""

    def __init__(self, theme: str, out: Path, scratch: Path) -> None:
        from PySide6.QtCore import QSettings

        from segstudio.ui import dialogs, resources
        from segstudio.ui.app import create_app

        self.theme, self.out = theme, out
        settings = scratch / "settings"
        settings.mkdir()
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(settings))
        resources.user_data_dir = lambda: scratch / "appdata"  # the sample is copied here

        def show_error(_parent: object, title: str, text: str) -> None:
            raise ScreenshotError(f"the app showed an error: {title}: {text}")

        dialogs.show_error = show_error  # a modal box would wait forever offscreen
        self.app = create_app(["segstudio-screenshots"])
        from segstudio.ui.main_window import MainWindow

        self.window = MainWindow()
        self.window.resize(*SIZES[0])
        self.window.show()
        self.settle(1.0)

    # -- waiting ---------------------------------------------------------------------------------
    def settle(self, seconds: float) -> None:
        """Let the event loop run (thumbnails, plots, layout) for `seconds`."""
        from PySide6.QtCore import QEventLoop

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    def wait_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        from PySide6.QtCore import QEventLoop

        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise ScreenshotError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.02)

    # -- pictures --------------------------------------------------------------------------------
    def shoot(self, name: str, sizes: tuple[tuple[int, int], ...] = SIZES) -> None:
        for width, height in sizes:
            self.window.resize(width, height)
            self.settle(0.8)
            self.window.canvas.zoom_fit()
            self.settle(0.4)
            path = self.out / f"{name}-{width}x{height}.png"
            got = self.window.size()
            if (got.width(), got.height()) != (width, height):
                print(f"  warning: the window would not take {width}x{height}; it is "
                      f"{got.width()}x{got.height()} (its minimum size is larger)", flush=True)
            if not self.window.grab().save(str(path)):
                raise ScreenshotError(f"could not write {path}")
            shrink(path)
            print(f"  {path.name}: {path.stat().st_size // 1024} KB", flush=True)

    def grab_as(self, filename: str, fit: bool = True) -> None:
        """One picture at the first size, named `filename`, the view as it is or fitted."""
        self.window.resize(*SIZES[0])
        self.settle(0.8)
        if fit:
            self.window.canvas.zoom_fit()
            self.settle(0.6)
        path = self.out / filename
        if not self.window.grab().save(str(path)):
            raise ScreenshotError(f"could not write {path}")
        shrink(path)
        print(f"  {path.name}: {path.stat().st_size // 1024} KB", flush=True)

    # -- scenes ----------------------------------------------------------------------------------
    def open_sample(self) -> None:
        if not self.window.workspace.open_sample():
            raise ScreenshotError("the sample project did not open")
        self.settle(2.0)  # thumbnails load in the background

    def open_first(self, statuses: tuple[str, ...]) -> str:
        project = self.window.workspace.project
        assert project is not None
        records = project.images_where(statuses=statuses)
        if not records:
            raise ScreenshotError(f"the sample project has no image with status {'/'.join(statuses)}")
        image_id = records[len(records) // 2].id
        if not self.window.workspace.open_image(image_id):
            raise ScreenshotError(f"could not open image {image_id}")
        self.settle(0.5)
        return image_id

    def main_window(self) -> None:
        self.open_first(("labeled", "reviewed"))
        self.shoot(f"main-{self.theme}")

    def welcome(self) -> None:
        if not self.window.workspace.close_project():
            raise ScreenshotError("the project did not close")
        self.settle(0.5)
        self.shoot("welcome", SIZES[:1])

    def training(self) -> Path:
        """Train 3 tiny epochs from the dock; grab after the first; return the model folder."""
        from segstudio.engine.config import TrainConfig

        hook = self.window.training
        controller = hook.show()
        # Training and Model share one tab stack, as the app arranges them when both are open.
        self.window.tabifyDockWidget(self.window.model.dock, hook.dock)
        hook.dock.raise_()
        controller.process.nice = 0  # the app yields the CPU to the UI; here the run should finish
        controller.ask = lambda *_: True
        self.wait_until(lambda: controller.probe.report is not None, 180, "the device probe")
        events: list[dict[str, Any]] = []
        controller.process.event_received.connect(events.append)
        panel = hook.dock.panel
        panel.advanced.setChecked(True)
        panel.advanced.load(TrainConfig(arch="unet", encoder="resnet18", pretrained=None, epochs=3,
                                        lr=3e-3, batch_size=4, crop_size=128, augment="light",
                                        amp="off", device="cpu", workers=0, patience=0, seed=1,
                                        run_name="screenshots"))
        panel.train_button.click()
        if not controller.is_running():
            raise ScreenshotError("Train did not start a run (are the sample's labelled images there?)")

        def seen(kind: str) -> bool:
            errors = [e for e in events if e.get("event") == "error"]
            if errors:
                raise ScreenshotError(f"training failed: {errors[0].get('message')}")
            return any(e.get("event") == kind for e in events)

        self.wait_until(lambda: seen("epoch_end"), 900, "the first epoch to end")
        self.settle(2.0)  # the curves and the first previews
        hook.dock.raise_()
        self.shoot("training")
        self.wait_until(lambda: not controller.is_running(), 900, "the training run to finish")
        finished = next((e for e in events if e.get("event") == "run_finished"), None)
        if finished is None or not finished.get("model"):
            raise ScreenshotError(f"the run ended without a model: {events[-1] if events else 'no events'}")
        model = Path(str(finished["model"]))
        return model if model.is_absolute() else self.window.workspace.project.root / model

    def model_dock(self, model: Path) -> None:
        self.window.workspace.set_active_model(model)
        loop = self.window.model
        if loop.controller.model_path is None:
            raise ScreenshotError(f"the Model dock did not pick up the active model {model}")
        self.open_first(("unlabeled",))
        if not loop.controller.predict_current():
            raise ScreenshotError("Predict image did not start")
        self.wait_until(lambda: not loop.controller.busy, 300, "the prediction")
        if loop.controller.prediction() is None:
            raise ScreenshotError("the prediction finished but none is shown")
        loop.dock.show_prediction.setChecked(True)
        loop.dock.style_combo.setCurrentIndex(loop.dock.style_combo.findData("fill"))
        loop.dock.show()
        loop.dock.raise_()
        self.settle(0.5)
        self.shoot("model")

    def close(self) -> None:
        self.window.close()
        self.settle(0.5)


# -- scientific imagery ------------------------------------------------------------------------------
GEO_TAGS = [  # GeoTIFF: 10 m pixels in UTM zone 33N (EPSG 32633)
    (33550, "d", 3, (10.0, 10.0, 0.0), True),
    (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 4600000.0, 0.0), True),
    (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), True),
]


def make_band_project(root: Path) -> Path:
    """Six CamVid frames as 4-band 16-bit GeoTIFFs (R, G, B, NIR: trees bright, sky dark), with masks."""
    import cv2
    import numpy as np
    import tifffile

    from segstudio.core import imageio, imagery
    from segstudio.core.classes import load_class_file
    from segstudio.core.project import Project

    classes = load_class_file(CAMVID / "classes.json")
    project = Project.create(root / "fields", classes)
    for number, frame in enumerate(sorted((CAMVID / "train").glob("*.png"))[:6]):
        rgb = imageio.read_image_rgb(frame).astype(np.float32)
        mask = cv2.imread(str(CAMVID / "trainannot" / frame.name), cv2.IMREAD_UNCHANGED)
        tree, sky = classes.by_name("Tree").id, classes.by_name("Sky").id
        nir = rgb[..., 1] * 0.6
        nir[mask == tree] = 200 + rgb[..., 1][mask == tree] * 0.2
        nir[mask == sky] = 30
        bands = (np.dstack([rgb, nir]) * 180 + 1000).astype(np.uint16)
        path = root / f"field_{number}.tif"
        tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="contig", extratags=GEO_TAGS,
                         metadata=None)
        project.add_image(path)
        project.write_mask(f"field_{number}", mask, status="labeled")
    imagery.prepare(project, names=("red", "green", "blue", "nir"))
    project.save()
    return project.root


def make_slide_project(root: Path) -> Path:
    """A SLIDE_SIDE square mosaic of enlarged CamVid frames, JPEG tiles, no pyramid."""
    import cv2
    import numpy as np
    import tifffile

    from segstudio.core import imageio
    from segstudio.core.classes import load_class_file
    from segstudio.core.project import Project

    frames = [cv2.resize(imageio.read_image_rgb(f), (1536, 1024), interpolation=cv2.INTER_CUBIC)
              for f in sorted((CAMVID / "train").glob("*.png"))[:24]]
    tile = 512

    def tiles():  # type: ignore[no-untyped-def]
        for ty in range(-(-SLIDE_SIDE // tile)):
            for tx in range(-(-SLIDE_SIDE // tile)):
                big = frames[(ty // 2 * 7 + tx // 3 * 3) % len(frames)]
                oy, ox = (ty % 2) * tile, (tx % 3) * tile  # each frame fills 2 x 3 tiles
                block = np.zeros((tile, tile, 3), np.uint8)
                part = big[oy:oy + tile, ox:ox + tile]
                block[:part.shape[0], :part.shape[1]] = part
                yield block

    path = root / "mosaic.tif"
    tifffile.imwrite(path, tiles(), shape=(SLIDE_SIDE, SLIDE_SIDE, 3), dtype=np.uint8, tile=(tile, tile),
                     compression="jpeg", photometric="rgb", bigtiff=True, metadata=None)
    project = Project.create(root / "slides", load_class_file(CAMVID / "classes.json"))
    project.add_image(path)
    project.save()
    return project.root


def imagery_pictures(shooter: Shooter, scratch: Path) -> None:
    """The pictures of docs/scientific-imagery.md (skipped without CamVid)."""
    from segstudio.core import display

    if not (CAMVID / "classes.json").is_file():
        print(f"  skipping the imagery pictures: no CamVid at {CAMVID}", flush=True)
        return
    window = shooter.window
    if not window.workspace.open_project(make_band_project(scratch)):
        raise ScreenshotError("the 4-band project did not open")
    shooter.settle(2.0)
    dock = window.display_dock
    mapping = display.mapping_of(window.workspace.project.settings)
    if mapping is None or not dock.isVisible():
        raise ScreenshotError("the 4-band project has no display mapping, or the Display dock is hidden")
    for colour, band in enumerate((3, 0, 1)):  # NIR as red, red as green, green as blue
        dock.pick(colour, band)
    dock.flush()
    overlay = window.commands["toggle_overlay"]
    if overlay.isChecked():
        overlay.trigger()  # the bands themselves, without the mask over them
    shooter.settle(1.0)
    shooter.grab_as("bands-false-colour.png")
    overlay.trigger()

    started = time.monotonic()
    if not window.workspace.open_project(make_slide_project(scratch)):
        raise ScreenshotError("the slide project did not open")
    session = window.workspace.session
    shooter.wait_until(lambda: session.document is not None and session.loading_id is None, 600,
                       "the slide's pyramid")
    print(f"  slide opened (pyramid built) in {time.monotonic() - started:.0f} s", flush=True)
    shooter.grab_as("gigapixel-fit.png")
    window.canvas.zoom_100()
    window.canvas.centerOn(SLIDE_SIDE * 0.52, SLIDE_SIDE * 0.47)
    shooter.settle(1.5)
    shooter.grab_as("gigapixel-100.png", fit=False)


def shrink(path: Path) -> None:
    """Quantise a picture above MAX_BYTES to 256 colours, then scale it down if still too big."""
    if path.stat().st_size <= MAX_BYTES:
        return
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    scale = 1.0
    while True:
        size = (round(image.width * scale), round(image.height * scale))
        shown = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        shown.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES or scale < 0.5:
            return
        scale *= 0.85


def adopt_model(shooter: Shooter, model: Path) -> Path:
    """Copy a trained model folder into the open project's models/ and return the copy."""
    import shutil

    project = shooter.window.workspace.project
    if project is None or not (model / "config.json").is_file():
        raise ScreenshotError(f"{model} is not a model folder (no config.json)")
    target = project.root / "models" / model.name
    shutil.copytree(model, target, dirs_exist_ok=True)
    return target


def run_theme(theme: str, out: Path, model: Path | None = None, imagery_only: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="segstudio-shots-") as scratch:
        os.environ["SEGSTUDIO_DEVICE"] = "cpu"
        os.environ["SEGSTUDIO_DATA_DIR"] = str(Path(scratch) / "appdata")
        shooter = Shooter(theme, out, Path(scratch))
        try:
            if imagery_only:
                imagery_pictures(shooter, Path(scratch))
                return 0
            shooter.open_sample()
            shooter.main_window()
            if theme == "light":
                shooter.welcome()
                shooter.open_sample()
                trained = shooter.training()
                shooter.model_dock(adopt_model(shooter, model) if model is not None else trained)
                imagery_pictures(shooter, Path(scratch))
        except ScreenshotError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            shooter.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "images", help="folder for the PNGs")
    parser.add_argument("--theme", choices=("light", "dark"), help="one theme, in this process")
    parser.add_argument("--imagery-only", action="store_true",
                        help="only the scientific-imagery pictures (light theme, no training)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained CamVid model folder for the Model dock's picture (default: the "
                             "three-epoch model the run trains)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve() if args.model else None
    if args.imagery_only:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        os.environ["SEGSTUDIO_THEME"] = "light"
        return run_theme("light", args.out, imagery_only=True)
    if args.theme is None:
        return run_children(args.out, ["light", "dark"], model)
    if os.environ.get("QT_QPA_PLATFORM") != "offscreen" or os.environ.get("SEGSTUDIO_THEME") != args.theme:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt starts: no window ever shows
        os.environ["SEGSTUDIO_THEME"] = args.theme
    return run_theme(args.theme, args.out, model)


if __name__ == "__main__":
    sys.exit(main())
