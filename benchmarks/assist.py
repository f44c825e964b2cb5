"""Click-assist latency with real-architecture, random-weight models, on this machine's CPU.

    python benchmarks/assist.py [--clicks 40] [--models-dir /tmp/segstudio-assist-bench]

Prints key=value lines: click_p95_ms (SAM 1 decoder, embedding cached: decode plus our
post-processing to the image's size), click_sam2_p95_ms (a decoder with samexporter's
SAM 2 interface), encode_mobilesam_s (MobileSAM's TinyViT encoder, one 480x360 CamVid
frame), ui_late_p99_ms_encoding (a 10 ms QTimer's lateness on the UI thread while the
app's AssistSession encodes in the background), with p50 companions, the provider and the
load average. Needs torch and the
`assist-bench` extra (segment-anything, mobilesam-mirror) to export the models once;
the exports are kept in --models-dir for the next run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segstudio.assist import ClickAssistant, Point, Prompt  # noqa: E402
from segstudio.core.imageio import read_image_rgb  # noqa: E402

CAMVID = REPO.parent / "shared" / "data" / "camvid"


def _models(folder: Path) -> dict[str, Path]:
    """Export (once) the real-architecture models the benchmark runs."""
    from tests.assist import real_models

    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.onnx" for name in
             ("sam1.decoder", "sam2.decoder", "sam2.encoder", "mobilesam.encoder")}
    if not (paths["sam1.decoder"].is_file() and paths["sam2.decoder"].is_file()):
        sam = real_models.build_sam_vit_b()
        real_models.export_sam1_decoder(sam, paths["sam1.decoder"])
        real_models.export_sam2_layout_decoder(sam, paths["sam2.decoder"])
    if not paths["mobilesam.encoder"].is_file():
        real_models.export_image_encoder(real_models.build_mobilesam(), paths["mobilesam.encoder"])
    if not paths["sam2.encoder"].is_file():
        real_models.export_sam2_layout_encoder_stand_in(paths["sam2.encoder"])
    return paths


def _frame() -> np.ndarray:
    frames = sorted((CAMVID / "val").glob("*.png")) if (CAMVID / "val").is_dir() else []
    if frames:
        return read_image_rgb(frames[0])
    return np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)


def _prompts(count: int, height: int, width: int) -> list[Prompt]:
    rng = np.random.default_rng(1)
    prompts = []
    for i in range(count):
        clicks = tuple(Point(float(rng.uniform(0, width)), float(rng.uniform(0, height)), bool(j == 0 or rng.random() < 0.7))
                       for j in range(1 + i % 3))
        prompts.append(Prompt(clicks))
    return prompts


def _click_times(assistant: ClickAssistant, image: np.ndarray, prompts: list[Prompt]) -> list[float]:
    """Milliseconds from a click to the proposal mask at the image's size (embedding cached)."""
    embedding = assistant.embed(image)
    assistant.predict(embedding, prompts[0]).mask()  # warm-up
    times = []
    previous = None
    for prompt in prompts:
        started = time.perf_counter()
        result = assistant.predict(embedding, prompt, previous)
        result.mask()
        times.append((time.perf_counter() - started) * 1000.0)
        previous = result.feedback() if len(prompt.points) > 1 else None
    return times


def _ui_lateness(encoder: Path, decoder: Path, image: np.ndarray) -> list[float]:
    """Lateness (ms) of a 10 ms QTimer on the UI thread while the app's AssistSession
    encodes the image in the background (offscreen Qt)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from segstudio.ui.annotate.assist_session import AssistSession

    app = QApplication.instance() or QApplication([])
    session = AssistSession.from_files(encoder, decoder)
    clock, timer, late = QElapsedTimer(), QTimer(), []
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    last = [0]

    def tick() -> None:
        now = clock.elapsed()
        late.append(max(0.0, float(now - last[0] - 10)))
        last[0] = now

    timer.timeout.connect(tick)
    session.ready.connect(app.quit)
    clock.start()
    timer.start(10)
    session.set_image(image)
    app.exec()
    timer.stop()
    return late


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=40)
    parser.add_argument("--encodes", type=int, default=3)
    parser.add_argument("--models-dir", default="/tmp/segstudio-assist-bench")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"load_average_start={os.getloadavg()[0]:.2f}")
    paths = _models(Path(args.models_dir))
    image = _frame()
    height, width = image.shape[:2]
    prompts = _prompts(args.clicks, height, width)

    sam1 = ClickAssistant(paths["mobilesam.encoder"], paths["sam1.decoder"], device=args.device)
    encode_s = []
    sam1.embed(image, key="warm-up")
    for i in range(args.encodes):
        started = time.perf_counter()
        sam1.embed(image, key=f"encode-{i}")  # a new key: a real encode each time
        encode_s.append(time.perf_counter() - started)
    clicks = _click_times(sam1, image, prompts)

    sam2 = ClickAssistant(paths["sam2.encoder"], paths["sam2.decoder"], device=args.device)
    clicks_sam2 = _click_times(sam2, image, prompts)

    late = _ui_lateness(paths["mobilesam.encoder"], paths["sam1.decoder"], image[:, ::-1].copy())

    print(f"image={width}x{height}")
    print(f"provider={sam1.provider}")
    print(f"click_p50_ms={_p(clicks, 50):.1f}")
    print(f"click_p95_ms={_p(clicks, 95):.1f}")
    print(f"click_sam2_p50_ms={_p(clicks_sam2, 50):.1f}")
    print(f"click_sam2_p95_ms={_p(clicks_sam2, 95):.1f}")
    print(f"encode_mobilesam_s={statistics.median(encode_s):.2f}")
    print(f"encode_mobilesam_min_s={min(encode_s):.2f}")
    print(f"ui_late_p99_ms_encoding={_p(late, 99):.1f}")
    print(f"ui_ticks_during_encode={len(late)}")
    print(f"load_average_end={os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
