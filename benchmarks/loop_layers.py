"""Cost of the model-in-the-loop layers and accepts on a large image (no Qt, no model).

    python benchmarks/loop_layers.py --size 4000x3000

Prints key=value lines (milliseconds, best of --repeat): prediction_fill_ms,
prediction_outline_ms, prediction_hatch_ms, confidence_ms, disagreement_ms,
accept_all_ms, accept_region_ms, cache_put_ms, cache_get_disk_ms. The prediction is the
CamVid ground truth scaled up and shifted, so borders and components are realistic.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segstudio.core import loop  # noqa: E402
from segstudio.core.classes import load_class_file  # noqa: E402
from segstudio.core.imageio import read_mask_array  # noqa: E402
from segstudio.core.loop_store import PredictionCache  # noqa: E402
from segstudio.core.mask_document import MaskDocument  # noqa: E402

CAMVID = REPO.parent / "shared" / "data" / "camvid"


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    classes = load_class_file(CAMVID / "classes.json")
    truth, _ = read_mask_array(sorted((CAMVID / "trainannot").glob("*.png"))[0])
    mask = cv2.resize(truth, (width, height), interpolation=cv2.INTER_NEAREST)
    labels = np.roll(mask, width // 60, axis=1)
    labels[labels == classes.unlabeled_id] = 0
    rng = np.random.default_rng(0)
    maps = rng.random((3, height, width), dtype=np.float32)
    prediction = loop.Prediction(labels, maps[0], maps[1], maps[2], 11).compact()  # as cached
    unlabeled = classes.unlabeled_id
    print(f"size={width}x{height}")
    for style in loop.PREDICTION_STYLES:
        ms = best(lambda s=style: loop.prediction_rgba(labels, classes, s, 0.5), args.repeat)
        print(f"prediction_{style}_ms={ms:.1f}")
    print(f"confidence_ms={best(lambda: loop.confidence_rgba(loop.uncertainty_bytes(prediction)), args.repeat):.1f}")
    print(f"disagreement_ms={best(lambda: loop.disagreement_rgba(mask, labels, unlabeled), args.repeat):.1f}")

    def accept_all() -> None:
        doc = MaskDocument(mask.copy(), classes)
        loop.accept_all(doc.mask, labels, unlabeled).apply(doc)

    print(f"accept_all_ms={best(accept_all, args.repeat):.1f}")
    ys, xs = np.nonzero(labels == labels[height // 2, width // 2])
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])

    def accept_region() -> None:
        doc = MaskDocument(mask.copy(), classes)
        loop.accept_region(doc.mask, labels, x, y, unlabeled).apply(doc)

    print(f"accept_region_ms={best(accept_region, args.repeat):.1f}")
    with tempfile.TemporaryDirectory() as folder:
        cache = PredictionCache(folder, "bench", memory_items=1)
        print(f"cache_put_ms={best(lambda: cache.put('a', prediction), 1):.1f}")
        cache.put("b", prediction)  # pushes "a" out of memory
        print(f"cache_get_disk_ms={best(lambda: (cache._memory.clear(), cache.get('a')), 1):.1f}")


if __name__ == "__main__":
    main()
