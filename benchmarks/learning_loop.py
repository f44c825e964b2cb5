"""The annotate-train-prelabel loop on CamVid, with a simulated annotator: how much of each new
batch of frames the model gets right before a person touches it, and how val mIoU grows.

    python benchmarks/learning_loop.py                    # 4 rounds x 10 min on the CPU
    python benchmarks/learning_loop.py --device cuda --minutes-per-round 3
    python benchmarks/learning_loop.py --minutes-per-round 0.3 --rounds 2 --frames-per-round 4 \\
        --crop 128 --val-limit 5                          # a smoke test of a few minutes

Rounds count from 1, as the issue's targets do: round N trains on N x `--frames-per-round`
labelled frames (round 1: the first frames of a seeded order). Each round trains for
`--minutes-per-round` (round 2 on fine-tunes the previous round's model when
`segstudio train` has --init-from), scores the model on CamVid's val frames, pre-labels the
next frames and counts the pixels an annotator must correct (core.loop.corrected_pixels:
pre-label differs from the truth, void left out, the app's effort-meter rule), then writes
their true masks as the annotator's result. Every step is the product's own: `segstudio
import`, the Project API for statuses and masks, and `segstudio train / predict / eval` as
child processes, exactly as the app runs them.

Prints key=value lines: per round N correct_share_rN (pixels to correct / labelled pixels of
the new frames), val_miou_rN, train_s_rN (wall time of the train command), epochs_rN; at the
end correct_share_mean. CamVid val is imported as the project's test split, so the trainer
validates on its own holdout of the labelled frames (as for an annotator with no val split);
--trainer-val val imports it as the val split instead, which the trainer then scores every
epoch (slow on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segstudio.core import imageio  # noqa: E402
from segstudio.core.loop import corrected_pixels  # noqa: E402
from segstudio.core.project import Project  # noqa: E402


@dataclass(frozen=True)
class TrainOutcome:
    model: Path
    seconds: float
    epochs: int | None


def segstudio(args: list[str], capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `python -m segstudio ARGS` as the app does: a child process; stderr passes through."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "segstudio", *args]
    done = subprocess.run(command, cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        tail = (done.stdout or "")[-2000:] if capture else ""
        raise RuntimeError(f"segstudio {args[0]} failed with exit code {done.returncode}\n{tail}")
    return done


def supports_init_from() -> bool:
    return "--init-from" in segstudio(["train", "--help"]).stdout


def build_project(data: Path, root: Path, trainer_val: str, val_limit: int | None,
                  truth_dir: Path) -> tuple[Project, str]:
    """Import CamVid, move the train masks aside as the annotator's truth and mark every train
    frame unlabelled; returns the project and the split that holds CamVid's val frames."""
    if trainer_val == "val":
        segstudio(["import", str(root), "--format", "folders", str(data)])
        measure = "val"
    else:
        segstudio(["import", str(root), "--format", "folders", "--classes", str(data / "classes.json"),
                   "--images", str(data / "train"), "--masks", str(data / "trainannot"), "--split", "train",
                   "--images", str(data / "val"), "--masks", str(data / "valannot"), "--split", "test"])
        measure = "test"
    project = Project.open(root)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for record in project.images_where(split="train"):
        os.replace(project.mask_path(record), truth_dir / f"{record.id}.png")
        project.update_image(record.id, status="unlabeled")
    scored = sorted(project.images_where(split=measure), key=lambda r: r.id)
    for record in scored[val_limit:] if val_limit is not None else []:
        project.delete_mask(record)
        project.update_image(record.id, status="unlabeled")
    project.save()
    return project, measure


def label(project: Project, ids: list[str], truth_dir: Path) -> None:
    """The annotator's finished work: the true mask, saved through the project like the app."""
    for image_id in ids:
        truth = imageio.read_mask(truth_dir / f"{image_id}.png", project.classes)
        project.write_mask(image_id, truth, status="labeled", save_manifest=False)
    project.save()


def train(root: Path, round_index: int, args: argparse.Namespace, init_from: Path | None,
          can_init: bool) -> TrainOutcome:
    """One `segstudio train` run; from `init_from`'s weights when given, else fresh (also
    `--init-from none`, so a project's active model never sneaks into round 0)."""
    command = ["train", str(root), "--max-minutes", str(args.minutes_per_round), "--events", "jsonl",
               "--run-name", f"loop-r{round_index}", "--device", args.device, "--seed", str(args.seed),
               "--pretrained", args.pretrained]
    for flag, value in (("--crop-size", args.crop), ("--batch-size", args.batch_size),
                        ("--encoder", args.encoder), ("--arch", args.arch), ("--lr", args.lr),
                        ("--rare-crops", args.rare_crops)):
        if value is not None:
            command += [flag, str(value)]
    if can_init:
        command += ["--init-from", str(init_from) if init_from is not None else "none"]
    started = time.monotonic()
    done = segstudio(command)
    seconds = time.monotonic() - started
    finished: dict[str, Any] | None = None
    for line in done.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "error":
            raise RuntimeError(f"training failed: {event.get('message')}")
        if event.get("event") == "epoch_end":
            print(f"  r{round_index} epoch {event.get('epoch')}: loss {event.get('train_loss')} "
                  f"trainer's val mIoU {event.get('miou')}", file=sys.stderr)
        if event.get("event") in ("run_finished", "stopped"):
            finished = event
    if not finished or not finished.get("model"):
        raise RuntimeError(f"round {round_index}: the training run ended without a model")
    return TrainOutcome(Path(finished["model"]), seconds, finished.get("epochs"))


def prelabel(project: Project, ids: list[str], model: Path, out: Path, device: str) -> dict[str, Path]:
    """Pre-label frames with `segstudio predict` (the app's predict path); id -> mask file."""
    paths = [project.image_path(image_id) for image_id in ids]
    segstudio(["predict", *map(str, paths), "--model", str(model), "--out", str(out), "--format", "masks",
               "--device", device])
    return {image_id: out / f"{path.stem}.png" for image_id, path in zip(ids, paths)}


def correction_counts(project: Project, predicted: dict[str, Path], truth_dir: Path) -> tuple[int, int]:
    """(pixels to correct, labelled pixels) over the frames, void left out of both."""
    ignore = project.classes.unlabeled_id
    corrected = labelled = 0
    for image_id, path in predicted.items():
        truth = imageio.read_mask(truth_dir / f"{image_id}.png", project.classes)
        guess = imageio.read_mask(path, project.classes)
        corrected += corrected_pixels(guess, truth, ignore)
        labelled += int(np.count_nonzero(truth != ignore))
    return corrected, labelled


def val_miou(root: Path, model: Path, split: str, device: str) -> float | None:
    report = json.loads(segstudio(["eval", str(root), "--model", str(model), "--split", split, "--json",
                                   "--device", device]).stdout)
    return report.get("miou")


def emit(key: str, value: object) -> None:
    print(f"{key}={value}", flush=True)


def run(args: argparse.Namespace, work: Path) -> int:
    started = time.monotonic()
    root, truth_dir = work / "project", work / "truth"
    project, measure = build_project(args.data, root, args.trainer_val, args.val_limit, truth_dir)
    train_ids = sorted(record.id for record in project.images_where(split="train"))
    order = [train_ids[i] for i in np.random.default_rng(args.seed).permutation(len(train_ids))]
    k = args.frames_per_round
    if k * (args.rounds + 1) > len(order):
        print(f"error: {args.rounds} rounds of {k} frames need {k * (args.rounds + 1)} train frames; "
              f"CamVid has {len(order)}", file=sys.stderr)
        return 2
    print(f"project ready in {time.monotonic() - started:.1f} s: {root}", file=sys.stderr)
    fine_tune = supports_init_from()
    emit("init_from", "previous_round" if fine_tune else "unsupported")
    emit("frames_per_round", k)
    emit("minutes_per_round", args.minutes_per_round)
    emit("val_images", len([r for r in project.images_where(split=measure) if r.status == "labeled"]))
    label(project, order[:k], truth_dir)
    shares: list[float] = []
    previous: Path | None = None
    for r in range(args.rounds):
        outcome = train(root, r, args, previous, fine_tune)
        emit(f"train_s_r{r + 1}", f"{outcome.seconds:.1f}")
        emit(f"epochs_r{r + 1}", outcome.epochs)
        miou = val_miou(root, outcome.model, measure, args.device)
        emit(f"val_miou_r{r + 1}", f"{miou:.4f}" if miou is not None else None)
        batch = order[(r + 1) * k:(r + 2) * k]
        predicted = prelabel(project, batch, outcome.model, work / "prelabels" / f"r{r}", args.device)
        corrected, labelled = correction_counts(project, predicted, truth_dir)
        share = corrected / labelled if labelled else 0.0
        shares.append(share)
        emit(f"correct_share_r{r + 1}", f"{share:.4f}")
        label(project, batch, truth_dir)
        previous = outcome.model
    emit("correct_share_mean", f"{float(np.mean(shares)):.4f}")
    emit("minutes", f"{(time.monotonic() - started) / 60:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--frames-per-round", type=int, default=20)
    parser.add_argument("--minutes-per-round", type=float, default=10.0)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--crop", type=int, default=None, help="training crop (default: the trainer's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--arch", default=None)
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--rare-crops", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--pretrained", default="none", help="encoder weights: none (default) or imagenet")
    parser.add_argument("--val-limit", type=int, default=None, help="score on the first N val frames only")
    parser.add_argument("--trainer-val", choices=("holdout", "val"), default="holdout",
                        help="what the trainer validates on (default: a holdout of the labelled frames)")
    parser.add_argument("--seed", type=int, default=0, help="frame order and training seed")
    parser.add_argument("--work", type=Path, default=None, help="keep the project here (default: a temp folder)")
    args = parser.parse_args(argv)
    if not (args.data / "trainannot").is_dir():
        print(f"error: CamVid not found at {args.data}; pass --data", file=sys.stderr)
        return 2
    if args.rounds < 1 or args.frames_per_round < 2:
        print("error: --rounds must be 1 or more and --frames-per-round 2 or more", file=sys.stderr)
        return 2
    if args.work is not None:
        if (args.work / "project").exists():
            print(f"error: {args.work / 'project'} exists; choose an empty --work folder", file=sys.stderr)
            return 2
        args.work.mkdir(parents=True, exist_ok=True)
        return run(args, args.work)
    with tempfile.TemporaryDirectory(prefix="learning-loop-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
