"""Gigapixel images on the real canvas, offscreen (issue 12, point 4). Prints key=value:

  open_gigapixel_s         open a 50,000 x 50,000 RGB pyramidal JPEG-tiled TIFF to the first
                           full view (header, mask, set_document, every visible tile, a paint) <= 2
  open_gigapixel_rss_mb    resident memory that open added                                      <= 800
  dab_p95_ms_gigapixel     one brush dab (radius 20) at 100 %: press -> overlay re-rendered       <= 8
  save_gigapixel_s         save after 50 strokes spread over the image (dirty chunks only)       <= 1
  predict_gigapixel_rss_mb peak resident memory of `segstudio predict` on a 20,000 x 20,000
                           slide (a fresh process: torch, the model, one block at a time)   <= 2,500
  predict_gigapixel_s      how long that took (U-Net ResNet-34, random weights, on the CPU)

The fixture is written by tests/core/gigapixel_builders.py from a bank of repeated tiles (a
second or so, ~200 MB with JPEG tiles at 50k). Usage:
  QT_QPA_PLATFORM=offscreen python benchmarks/deep_imagery.py [--size 50000] [--view 1600x1000]
      [--predict-size 20000 | --predict-size 0 to skip] [--predict-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

import numpy as np  # noqa: E402
from canvas import Mouse  # noqa: E402  (benchmarks/canvas.py: real mouse events at image coordinates)
from gigapixel_builders import write_pyramid  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from segstudio.core.classes import ClassTable  # noqa: E402
from segstudio.core.gigapixel import GigapixelImage  # noqa: E402
from segstudio.core.mask_document import MaskDocument  # noqa: E402
from segstudio.core.tiled_mask import DirtyChunks, TiledMaskStore, allocate  # noqa: E402
from segstudio.ui.annotate.canvas import Canvas  # noqa: E402

CLASSES = ClassTable.from_names(["background", "tissue", "tumour", "stroma", "necrosis"])
def rss_mb(key: str = "VmRSS") -> float:
    """Resident set size now (Linux /proc; elsewhere NaN, and the rss keys say not_measured).

    RssAnon is the private part: VmRSS also counts every mapping of the mask's shared
    unlabelled-fill block (core/tiled_mask.py), which is one 2 MB block in memory."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def fmt(value: float, digits: int = 3) -> str:
    return "not_measured" if value != value else f"{value:.{digits}f}"


# Runs in a fresh process, so its peak resident size is the prediction's alone.
PREDICT_CHILD = """
import resource, sys, time
import torch
from segstudio.core.classes import ClassTable
from segstudio.engine.modelfile import ModelConfig, save_model
from segstudio.engine.models import ModelSpec, create_model
from segstudio.cli.main import main
slide, model, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
classes = ClassTable.from_names(names)
torch.manual_seed(0)
spec = ModelSpec("unet", encoder="resnet34", num_classes=len(classes.trainable))
save_model(model, create_model(spec).eval(), ModelConfig.from_spec(spec, classes))
start = time.perf_counter()
code = main(["predict", "--model", model, slide, "--out", out, "--device", "cpu"])
print(f"predict_gigapixel_s={time.perf_counter() - start:.1f} predict_exit={code}")
print(f"predict_gigapixel_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""


def predict_peak(size: int, tmp: Path) -> None:
    """`segstudio predict` on a size x size slide in a child process: its time and peak RSS."""
    path = tmp / "predict_slide.tif"
    write_pyramid(path, size, size, compression="jpeg")
    out = tmp / "predicted"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", PREDICT_CHILD, str(path), str(tmp / "model"), str(out),
                             ",".join(c.name for c in CLASSES.trainable)], env=env, text=True,
                            capture_output=True, check=False)
    print(result.stdout.strip())
    if result.returncode != 0:
        print(f"predict_failed={result.returncode} {result.stderr.strip()[-600:]!r}")
        return
    import tifffile

    with tifffile.TiffFile(out / "predict_slide.tif") as tif:
        page = tif.pages[0]
        print(f"predict_mask={page.imagewidth}x{page.imagelength} tiled={int(page.is_tiled)} "
              f"overviews={len(tif.pages) - 1} predict_size={size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--predict-size", type=int, default=20_000)
    parser.add_argument("--predict-only", action="store_true")
    parser.add_argument("--view", default="1600x1000", help="viewport size WxH")
    parser.add_argument("--strokes", type=int, default=50)
    parser.add_argument("--dabs", type=int, default=300)
    args = parser.parse_args()
    size = args.size
    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(5)

    if args.predict_only:
        with tempfile.TemporaryDirectory(prefix="segstudio-deep-") as tmp:
            predict_peak(args.predict_size, Path(tmp))
        return
    with tempfile.TemporaryDirectory(prefix="segstudio-deep-") as tmp:
        path = Path(tmp) / "slide.tif"
        start = time.perf_counter()
        write_pyramid(path, size, size, compression="jpeg")
        print(f"fixture_s={time.perf_counter() - start:.2f} fixture_mb={path.stat().st_size / 2**20:.0f} "
              f"size={size}")
        # The fixture's writeback would otherwise land in the save's fsyncs (a real slide is
        # an old file): flush it first.
        os.sync()

        canvas = Canvas()
        width, height = (int(v) for v in args.view.split("x"))
        canvas.resize(width, height)
        canvas.show()
        app.processEvents()
        rss0, anon0 = rss_mb(), rss_mb("RssAnon")

        start = time.perf_counter()
        image = GigapixelImage(path)
        doc = MaskDocument(allocate(size, size, fill=CLASSES.unlabeled_id), CLASSES)
        dirty = DirtyChunks()
        doc.add_listener(dirty)
        canvas.set_document(image, doc)
        canvas.flush()
        canvas.viewport().repaint()
        open_s = time.perf_counter() - start
        print(f"open_gigapixel_s={open_s:.3f}")
        print(f"open_gigapixel_rss_mb={fmt(rss_mb() - rss0, 0)} "
              f"open_gigapixel_private_mb={fmt(rss_mb('RssAnon') - anon0, 0)}")
        layer = canvas.image_layer
        assert layer is not None
        print(f"fit_level={layer.pyramid.level_for(canvas.scale_factor)} levels={len(image.levels)} "
              f"open_decoded_tiles={image.decode_count}")

        # Dabs at 100 %, in views spread over the image (each view's tiles rendered first).
        mouse = Mouse(canvas)
        canvas.set_tool("brush")
        canvas.set_brush_size(20)
        canvas.zoom_100()
        presses = []
        views = 10
        for v in range(views):
            cx, cy = rng.uniform(1000, size - 1000, 2)
            canvas.centerOn(cx, cy)
            canvas.flush()
            rect = canvas.visible_scene_rect()
            for i in range(args.dabs // views):
                x = rng.uniform(rect.left() + 30, rect.right() - 30)
                y = rng.uniform(rect.top() + 30, rect.bottom() - 30)
                canvas.set_active_class(1 + (i + v) % 4)
                t0 = time.perf_counter()
                mouse.press(x, y)
                canvas.flush()
                presses.append(time.perf_counter() - t0)
                mouse.release(x, y)
            app.processEvents()
        print(f"dab_p50_ms_gigapixel={np.percentile(presses, 50) * 1000:.2f}")
        print(f"dab_p95_ms_gigapixel={np.percentile(presses, 95) * 1000:.2f}")

        # 50 strokes (20 pointer events, radius 30) spread over the image, then one save.
        store = TiledMaskStore(Path(tmp) / "slide.zarr", doc.shape, fill=CLASSES.unlabeled_id)
        store.write(doc.mask, dirty.take())  # the dabs above: saved before, not timed
        doc.mark_saved()
        os.sync()
        canvas.set_brush_size(30)
        for s in range(args.strokes):
            x, y = rng.uniform(1000, size - 1000, 2)
            canvas.centerOn(x, y)
            walk = np.cumsum(rng.normal(0, 25, size=(20, 2)), axis=0) + (x, y)
            canvas.set_active_class(1 + s % 4)
            mouse.press(*walk[0])
            for px, py in walk[1:-1]:
                mouse.move(px, py)
            mouse.release(*walk[-1])
        app.processEvents()
        start = time.perf_counter()
        keys = dirty.take()
        written = store.write(doc.mask, keys)
        doc.mark_saved()
        print(f"save_gigapixel_s={time.perf_counter() - start:.3f} save_chunks={written}")
        reread = TiledMaskStore.open(store.path).read()
        ok = all(np.array_equal(reread[k[0] * 512:(k[0] + 1) * 512, k[1] * 512:(k[1] + 1) * 512],
                                doc.mask[k[0] * 512:(k[0] + 1) * 512, k[1] * 512:(k[1] + 1) * 512])
                 for k in keys)
        print(f"save_roundtrip_exact={int(ok)} session_rss_mb={fmt(rss_mb() - rss0, 0)} "
              f"session_private_mb={fmt(rss_mb('RssAnon') - anon0, 0)}")
        canvas.set_document(None, None)
        image.close()
        if args.predict_size:
            path.unlink()
            predict_peak(args.predict_size, Path(tmp))


if __name__ == "__main__":
    main()
