"""Inference speed on CPU: U-Net (resnet34, 11 classes) on one 480x360 image, PyTorch vs ONNX
Runtime, both with the same number of threads (default 2).

Prints key=value lines: `torch_ms` and `onnx_ms` are the median end-to-end Predictor time
per image (normalise, pad to 480x384, forward, softmax, class-id mask); the `*_forward_ms`
lines time the network alone; `*_cpu_ms` are median CPU times, which stay meaningful on a
shared, loaded machine (the load average is printed first). The model is randomly
initialised (speed does not depend on the weights); `--model` runs a trained one instead, whose
INT8 agreement (measured on CamVid val frames never used for calibration) is the one that
counts: the near-tied logits of random weights flip under quantisation.

    python benchmarks/inference.py [--runs 10] [--threads 2] [--image PATH] [--device cuda]

With --device cuda both run on the GPU (ONNX Runtime through its CUDA provider); where
onnxruntime has no CUDA provider it prints `onnx_cuda=unavailable` and times PyTorch only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import numpy as np

CAMVID_FRAME = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid" / "val"


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `runs` calls (after two warm-up calls)."""
    for _ in range(2):
        fn()
    walls, cpus = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - w0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return median(walls), median(cpus)


def load_image(path: str | None) -> tuple[np.ndarray, str]:
    from segstudio.core.imageio import read_image_rgb

    if path:
        return read_image_rgb(path), path
    frames = sorted(CAMVID_FRAME.glob("*.png")) if CAMVID_FRAME.is_dir() else []
    if frames:
        return read_image_rgb(frames[0]), str(frames[0])
    return np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8), "random 480x360"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default=None, help="image to run (default: a CamVid val frame)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: where both run")
    parser.add_argument("--model", default=None,
                        help="a trained model folder instead of the random U-Net: its INT8 agreement is the "
                             "one that matters (near-tied logits of random weights flip easily)")
    parser.add_argument("--agreement-frames", type=int, default=8,
                        help="CamVid val frames (never used for calibration) the INT8 agreement is measured on")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")

    import torch

    from segstudio.core.classes import ClassTable
    from segstudio.engine.export import export_model
    from segstudio.engine.inference import Predictor
    from segstudio.engine.modelfile import ModelConfig, save_model
    from segstudio.engine.models import ModelSpec, create_model
    from segstudio.engine.onnx_runtime import OnnxPredictor

    print(f"load_average_1min={os.getloadavg()[0]:.2f}")
    print(f"threads={args.threads}")
    print(f"device={args.device}")
    onnx_ok = True
    if gpu:
        import onnxruntime as ort

        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda but torch sees no CUDA GPU")
        onnx_ok = "CUDAExecutionProvider" in ort.get_available_providers()
        if not onnx_ok:
            print("onnx_cuda=unavailable")

        def synced(fn: Callable[[], object]) -> Callable[[], object]:
            def run() -> object:
                out = fn()
                torch.cuda.synchronize()
                return out
            return run
    else:
        def synced(fn: Callable[[], object]) -> Callable[[], object]:
            return fn
    torch.set_num_threads(args.threads)
    image, source = load_image(args.image)
    print(f"image={source} size={image.shape[1]}x{image.shape[0]}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "unet"
        if args.model:
            from segstudio.engine.modelfile import load_model

            model, config = load_model(args.model)
            model = model.float().eval()
            save_model(folder, model, config)
            print(f"model={args.model} arch={config.arch} encoder={config.encoder}")
        else:
            classes = ClassTable.from_names([f"class_{i}" for i in range(11)] + ["void"], ignore="void")
            torch.manual_seed(0)
            spec = ModelSpec("unet", encoder="resnet34", num_classes=11)
            model = create_model(spec).eval()
            config = ModelConfig.from_spec(spec, classes, input_size=(352, 480))
            save_model(folder, model, config)
        start = time.perf_counter()
        report = export_model(folder, "onnx", Path(tmp) / "unet.onnx", sizes=[(352, 480)])
        print(f"onnx_export_s={time.perf_counter() - start:.1f}")
        print(f"onnx_max_abs_diff={report.max_abs_diff:.2e}")

        torch_predictor = Predictor(model, config, device=args.device)
        torch_wall, torch_cpu = timed(synced(lambda: torch_predictor.predict(image)), args.runs)
        channels = getattr(config, "in_channels", 3)
        batch = np.random.default_rng(0).normal(size=(1, channels, 384, 480)).astype(np.float32)
        tensor = torch.from_numpy(batch).to(args.device)

        def torch_forward() -> None:
            with torch.inference_mode():
                model(tensor)

        torch_fwd, _ = timed(synced(torch_forward), args.runs)
        if not onnx_ok:
            print(f"torch_ms={torch_wall:.1f}")
            print(f"torch_forward_ms={torch_fwd:.1f}")
            return
        onnx_predictor = OnnxPredictor(report.model_path, device=args.device, threads=args.threads)
        onnx_wall, onnx_cpu = timed(lambda: onnx_predictor.predict(image), args.runs)
        onnx_fwd, _ = timed(lambda: onnx_predictor._run(batch), args.runs)
        onnx_mask = onnx_predictor.predict(image).mask
        same = (torch_predictor.predict(image).mask == onnx_mask).mean()
        if gpu:  # INT8 is a CPU deployment format: on the GPU only the float model is timed
            for key, figure in (("runs", args.runs), ("torch_ms", torch_wall), ("onnx_ms", onnx_wall),
                                ("torch_forward_ms", torch_fwd), ("onnx_forward_ms", onnx_fwd)):
                print(f"{key}={figure:.1f}" if isinstance(figure, float) else f"{key}={figure}")
            print(f"mask_agreement={same:.5f}")
            return
        # INT8 (static QDQ, calibrated on CamVid train frames) against the float ONNX masks.
        train = CAMVID_FRAME.parent / "train"
        frames = sorted(train.glob("*.png"))[::40][:8] if train.is_dir() else []
        calibration = [load_image(str(p))[0] for p in frames] or [image]
        start = time.perf_counter()
        int8 = export_model(folder, "onnx", Path(tmp) / "unet_int8.onnx", quantize="int8", calibration=calibration)
        print(f"int8_export_s={time.perf_counter() - start:.1f}")
        print(f"int8_calibration_agreement={int8.argmax_agreement:.5f}")
        int8_predictor = OnnxPredictor(int8.model_path, threads=args.threads)
        int8_wall, int8_cpu = timed(lambda: int8_predictor.predict(image), args.runs)
        held_out = sorted(CAMVID_FRAME.glob("*.png"))[:: max(1, 101 // max(1, args.agreement_frames))]
        held_out = held_out[:args.agreement_frames] if held_out else []
        agreements = [float((int8_predictor.predict(frame).mask == onnx_predictor.predict(frame).mask).mean())
                      for frame in ([load_image(str(p))[0] for p in held_out] or [image])]
        int8_agreement = float(np.mean(agreements))

    print(f"runs={args.runs}")
    print(f"torch_ms={torch_wall:.1f}")
    print(f"onnx_ms={onnx_wall:.1f}")
    print(f"torch_cpu_ms={torch_cpu:.1f}")
    print(f"onnx_cpu_ms={onnx_cpu:.1f}")
    print(f"torch_forward_ms={torch_fwd:.1f}")
    print(f"onnx_forward_ms={onnx_fwd:.1f}")
    print(f"mask_agreement={same:.5f}")
    print(f"onnx_int8_ms={int8_wall:.1f}")
    print(f"onnx_int8_cpu_ms={int8_cpu:.1f}")
    print(f"int8_agreement={int8_agreement:.5f}")
    print(f"int8_agreement_min={min(agreements):.5f}")
    print(f"int8_agreement_frames={len(agreements)}")
    print(f"load_average_1min_end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
