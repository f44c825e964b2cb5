"""Training events for people: what `segstudio train` prints when no app reads its stream.

On a terminal a live progress bar (tqdm, which timm already brings) stands under one line per
epoch. When stderr is a file or a pipe (a batch job's log, `nohup`, CI), there are no carriage
returns: a plain progress line at most every `plain_interval_s` seconds and one per epoch, so a
log of a day-long run stays readable. Each distinct warning is printed once. `quiet` keeps only
warnings, errors and the final summary; `verbose` also prints every progress event as a line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PLAIN_INTERVAL_S = 30.0


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class ConsoleWriter:
    """An event handler for `fit` that writes human output to `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, verbose: bool = False,
                 live: bool | None = None, plain_interval_s: float = PLAIN_INTERVAL_S) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self.plain_interval_s = plain_interval_s
        self._bar: Any = None
        self._bar_epoch: int | None = None
        self._last_plain = -float("inf")
        self._warned: set[str] = set()

    # -- output -----------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._bar_epoch = None

    def _progress(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        status = f"loss {_fmt(event['loss'], 4)} {_fmt(event['images_per_s'], 1)} img/s"
        if self.live and not self.verbose:
            self._live_progress(event, status)
            return
        now = time.monotonic()
        last_step = event["step"] == event["steps"]
        if self.verbose or now - self._last_plain >= self.plain_interval_s or last_step:
            self._last_plain = now
            self._line(f"epoch {event['epoch']}/{event['epochs']} step {event['step']}/{event['steps']} {status}")

    def _live_progress(self, event: dict[str, Any], status: str) -> None:
        if self._bar is None or self._bar_epoch != event["epoch"]:
            from tqdm import tqdm

            self._close_bar()
            self._bar = tqdm(total=event["steps"], desc=f"epoch {event['epoch']}/{event['epochs']}",
                             file=self.stream, leave=False, dynamic_ncols=True, unit="step")
            self._bar_epoch = event["epoch"]
        self._bar.n = event["step"]
        self._bar.set_postfix_str(status, refresh=False)
        self._bar.refresh()

    # -- events -----------------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "progress":
            self._progress(event)
            return
        if kind == "epoch_end":
            self._close_bar()
        if kind == "run_started" and not self.quiet:
            self._line(
                f"run {event['run_id']} on {event['device']} (amp {event['amp']}): "
                f"{event['train_images']} train / {event['val_images']} val images, "
                f"{event['epochs']} epochs x {event['steps_per_epoch']} steps -> {event['run_dir']}"
            )
        elif kind == "epoch_end" and not self.quiet:
            self._line(
                f"epoch {event['epoch']}/{event['epochs']}: train loss {_fmt(event['train_loss'], 4)} "
                f"val loss {_fmt(event['val_loss'], 4)} mIoU {_fmt(event['miou'])} "
                f"acc {_fmt(event['pixel_accuracy'])} ({_fmt(event['seconds'], 1)} s)"
                + ("  *best*" if event.get("is_best") else "")
            )
        elif kind == "warning":
            if event["message"] not in self._warned:
                self._warned.add(event["message"])
                self._line(f"warning: {event['message']}")
        elif kind == "error":
            self._close_bar()
            self._line(f"error: {event['message']}")
        elif kind == "stopped":
            self._close_bar()
            self._line(f"stopped after epoch {event['epoch']}; checkpoint {event['checkpoint']}")
            if event.get("model"):
                self._line(f"best model so far: {event['model']}")
        elif kind == "run_finished":
            self._close_bar()
            self._summary(event)

    def _summary(self, event: dict[str, Any]) -> None:
        best = event.get("best") or {}
        self._line(
            f"finished ({event['reason']}) after {event['epochs']} epochs in {_fmt(event['minutes'], 1)} min; "
            f"best epoch {event['best_epoch']}"
        )
        per_class = best.get("per_class") or {}
        if per_class and not self.quiet:
            width = max(len(name) for name in per_class)
            self._line(f"{'class':<{width}}   IoU    Dice")
            for name, values in per_class.items():
                self._line(f"{name:<{width}}  {_fmt(values.get('iou')):>5}  {_fmt(values.get('dice')):>5}")
        self._line(
            f"mIoU {_fmt(best.get('miou'))}  mean Dice {_fmt(best.get('mean_dice'))}  "
            f"pixel acc {_fmt(best.get('pixel_accuracy'))}  mean class acc {_fmt(best.get('mean_class_accuracy'))}"
        )
        self._line(f"model: {event['model']}")
