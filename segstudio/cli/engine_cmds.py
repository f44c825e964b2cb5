"""`segstudio train` and `segstudio eval`.

`train --events jsonl` keeps stdout for events alone: the real stdout is kept for the
event writer and file descriptor 1 is pointed at stderr, so a stray print from any
library (a download progress bar, a warning) cannot break the app's JSON stream.
SIGINT and SIGTERM ask the trainer to finish its step, save and stop (exit 0); a second
SIGINT interrupts at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from segstudio.core.errors import SegstudioError, TrainingError


def register(subparsers: argparse._SubParsersAction) -> None:
    from segstudio.engine.config import AMP_MODES, add_train_arguments

    train = subparsers.add_parser(
        "train", help="train a segmentation model on the project's labelled images",
        description="Train (fine-tune) a model. Every option has a default chosen for the machine, "
                    "so 'segstudio train PROJECT' alone is a sound recipe.")
    train.add_argument("project", type=Path, help="project folder")
    add_train_arguments(train)  # one option per TrainConfig field (engine/config.py)
    train.add_argument("--events", choices=("jsonl",), help="write JSON-lines events to stdout (for the app)")
    train.add_argument("-q", "--quiet", action="store_true",
                       help="print only warnings, errors and the final summary")
    train.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="print every progress step as a line (also: segstudio -v train ...)")
    train.add_argument("--host", help="train on this SSH host (see 'segstudio remote add'); the run goes on "
                                      "there if this computer disconnects")
    train.add_argument("--gpus", type=int, help="with --host: GPUs to use there (torchrun with N processes; "
                                                "with --device cpu, N processes on its CPU)")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval", help="score a trained model on the project's val or test images",
        description="Evaluate a model file on whole images (as the trainer validates).")
    evaluate.add_argument("project", type=Path, help="project folder")
    evaluate.add_argument("--model", required=True, help="model folder/file, or a model id under PROJECT/models")
    evaluate.add_argument("--split", choices=("val", "test", "train"), default="val")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--amp", choices=AMP_MODES, default="auto")
    evaluate.add_argument("--batch-size", type=int, help="images per batch (default: the trainer's)")
    evaluate.set_defaults(func=run_eval)


# -- train ------------------------------------------------------------------------------------
class _StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(f"signal {signum}: finishing the step, saving and stopping", file=sys.stderr, flush=True)


def _claim_stdout_for_events() -> TextIO:
    """A text stream on the real stdout for events; fd 1 (and sys.stdout) now go to stderr."""
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _train_config(args: argparse.Namespace) -> Any:
    from segstudio.engine.checkpoint import read_config, resolve_run_dir
    from segstudio.engine.config import RESUME_OVERRIDES, TrainConfig, given_options

    given = given_options(args)
    given.pop("resume", None)
    if args.resume:
        run_dir = resolve_run_dir(args.project, args.resume)
        saved = read_config(run_dir)
        ignored = sorted(set(given) - set(RESUME_OVERRIDES))
        if ignored:
            print(f"resuming: the run's own settings are kept for {', '.join(ignored)}", file=sys.stderr)
        saved.update({k: v for k, v in given.items() if k in RESUME_OVERRIDES})
        saved["resume"] = str(run_dir)
        return TrainConfig.from_dict(saved)
    return TrainConfig(**given)


def run_train(args: argparse.Namespace) -> int:
    if getattr(args, "host", None):
        from segstudio.cli.remote_cmds import train_on_host

        return train_on_host(args)
    if getattr(args, "gpus", None):
        raise TrainingError("--gpus goes with --host; on this computer start torchrun --nproc-per-node=N")
    from segstudio.engine.console import ConsoleWriter
    from segstudio.engine.device import dist_context_from_env
    from segstudio.engine.events import JsonlWriter, make_event

    main_rank = dist_context_from_env().is_main
    writer = JsonlWriter(_claim_stdout_for_events()) if args.events == "jsonl" else ConsoleWriter(
        sys.stderr, quiet=args.quiet, verbose=bool(getattr(args, "verbose", False)))
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop.handle)
    signal.signal(signal.SIGINT, stop.handle)
    try:
        from segstudio.core.project import Project
        from segstudio.engine.data import prepare_data
        from segstudio.engine.trainer import fit

        config = _train_config(args)
        project = Project.open(args.project)
        fit(config, prepare_data(project), writer, stop)
        return 0
    except SegstudioError as exc:
        if main_rank and args.events == "jsonl":
            writer(make_event("error", message=str(exc)))
        raise
    except Exception as exc:
        if main_rank and args.events == "jsonl":
            writer(make_event("error", message=f"training failed: {type(exc).__name__}: {exc}"))
        raise
    finally:
        from segstudio.engine.device import shutdown_distributed

        shutdown_distributed()


# -- eval -------------------------------------------------------------------------------------
def resolve_model_path(project_root: Path, model: str) -> Path:
    for candidate in (Path(model), project_root / "models" / model):
        if candidate.exists():
            return candidate
    raise TrainingError(f"no model '{model}' (looked in {model} and {project_root / 'models' / model}); "
                        "give a model folder or an id under PROJECT/models")


def run_eval(args: argparse.Namespace) -> int:
    from segstudio.core.project import Project
    from segstudio.engine.device import resolve_amp, resolve_device
    from segstudio.engine.scoring import evaluate_model_file

    project = Project.open(args.project)
    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device)
    path = resolve_model_path(project.root, args.model)
    report = evaluate_model_file(project, path, args.split, device, amp, args.batch_size)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
        return 0
    _print_table(report)
    return 0


def _print_table(report: dict[str, Any]) -> None:
    def fmt(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:.3f}"

    print(f"{report['model']} on {report['split']} ({report['images']} images)")
    per_class = report["per_class"]
    width = max([len("class"), *(len(n) for n in per_class)])
    print(f"{'class':<{width}}    IoU   Dice")
    for name, values in per_class.items():
        print(f"{name:<{width}}  {fmt(values['iou'])}  {fmt(values['dice'])}")
    print(f"mIoU {fmt(report['miou'])}  mean Dice {fmt(report['mean_dice'])}  "
          f"pixel acc {fmt(report['pixel_accuracy'])}  mean class acc {fmt(report['mean_class_accuracy'])}")
    run = report.get("inference") or {}
    if run:  # the settings predict uses too, so its masks score the same
        how = "whole image" if run["mode"] == "whole" else f"tiles of {run['tile']} px, overlap {run['overlap']}"
        if run["mode"] == "auto":
            how = f"whole image up to {run['max_whole_pixels']} px, else {how}"
        print(f"inference: {how}{', flip TTA' if run['tta'] else ''}")
