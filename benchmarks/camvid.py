"""Train on CamVid (367 train frames) from scratch, select on val (101 frames), print figures.

    python benchmarks/camvid.py --device cuda --minutes 20
    python benchmarks/camvid.py --device cpu --minutes 10 --crop-size 256

Prints key=value lines: val_miou, val_mean_dice, val_pixel_accuracy, iou_<class> for each
class, minutes, epochs, best_epoch, images_per_s, data_wait_share, device. Runs headless
with only the repository and ../shared/data/camvid (no Qt). Published reference on the
CamVid test split: SegNet-Basic from scratch 46-48% mIoU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segstudio.core.classes import load_class_file  # noqa: E402
from segstudio.core.project import Project  # noqa: E402


def build_project(camvid: Path, root: Path) -> Project:
    """A project over CamVid's train and val frames, images left in place, masks copied."""
    project = Project.create(root, load_class_file(camvid / "classes.json"), name="camvid")
    for split in ("train", "val"):
        for image_path in sorted((camvid / split).glob("*.png")):
            mask = cv2.imread(str(camvid / f"{split}annot" / image_path.name), cv2.IMREAD_GRAYSCALE)
            record = project.add_image(image_path, split=split)
            project.write_mask(record, mask.astype(np.uint8), status="labeled", save_manifest=False)
    project.save()
    return project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--minutes", type=float, default=None, help="time budget (the LR decays to end on time)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--pretrained", default="none", help="none (from scratch, default) or imagenet")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--crop-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="default: the trainer's")
    parser.add_argument("--loss", default="ce_dice")
    parser.add_argument("--augment", default="standard")
    parser.add_argument("--class-weights", default="none")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--patience", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--rare-crops", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--val-share", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", type=Path, default=None, help="where to build the project (default: temp)")
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir():
        print(f"error: CamVid not found at {args.data}", file=sys.stderr)
        return 2

    from segstudio.engine.config import TrainConfig
    from segstudio.engine.console import ConsoleWriter
    from segstudio.engine.data import prepare_data
    from segstudio.engine.trainer import fit

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="camvid-bench-") as tmp:
        root = args.project or Path(tmp) / "camvid"
        project = Project.open(root) if (root / "project.json").is_file() else build_project(args.data, root)
        print(f"project ready in {time.monotonic() - started:.1f} s: {root}", file=sys.stderr)
        config = TrainConfig(
            arch=args.arch, encoder=args.encoder, pretrained=None if args.pretrained == "none" else args.pretrained,
            epochs=args.epochs, batch_size=args.batch_size, crop_size=args.crop_size, loss=args.loss,
            augment=args.augment, class_weights=args.class_weights, amp=args.amp, device=args.device,
            workers=args.workers, max_minutes=args.minutes, patience=args.patience, seed=args.seed,
            rare_crops=args.rare_crops, val_share=args.val_share, run_name="camvid-bench",
        )
        if args.lr is not None:
            config = replace(config, lr=args.lr)
        events: list[dict[str, Any]] = []
        console = ConsoleWriter(sys.stderr)

        def on_event(event: dict[str, Any]) -> None:
            events.append(event)
            console(event)

        result = fit(config, prepare_data(project), on_event)
        ends = [e for e in events if e["event"] == "epoch_end"]
        started_event = next(e for e in events if e["event"] == "run_started")
        best = result.best or {}
        last = ends[-1] if ends else {}
        print(f"device={started_event['device'].replace(' ', '_')}")
        print(f"amp={started_event['amp']}")
        print(f"val_miou={best.get('miou')}")
        print(f"val_mean_dice={best.get('mean_dice')}")
        print(f"val_pixel_accuracy={best.get('pixel_accuracy')}")
        print(f"val_mean_class_accuracy={best.get('mean_class_accuracy')}")
        for name, values in (best.get("per_class") or {}).items():
            print(f"iou_{name}={values['iou']}")
        print(f"rare_crops={started_event.get('config', {}).get('rare_crops')}")
        print(f"epochs={result.epochs}")
        print(f"best_epoch={result.best_epoch}")
        print(f"images_per_s={last.get('images_per_s')}")
        print(f"data_wait_share={last.get('data_wait_share')}")
        print(f"peak_gpu_memory_mb={last.get('peak_gpu_memory_mb')}")
        print(f"minutes={(time.monotonic() - started) / 60:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
