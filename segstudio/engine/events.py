"""Training events: what `fit` reports, and the JSON-lines writer (engine/console.py writes them for people).

With `segstudio train --events jsonl` every event is one JSON object on one line of stdout,
flushed at once; nothing else goes to stdout (logs go to stderr). The app's training
dashboard reads exactly this stream. Values that are undefined (the IoU of a class absent
from truth and prediction, GPU memory on a CPU) are JSON null, never NaN. Every event has
`event` (its kind) and `time` (Unix seconds). A run starts with `run_started` (unless it
fails before, with `error`) and ends with exactly one of `run_finished`, `stopped` or `error`.
Their fields, as types both the engine and the app import, are in core/events_schema.py.

run_started   run_id, run_dir, config (every training setting, resolved), device (name),
              device_type (cuda/mps/cpu), amp ("bf16"/"fp16"/"off"), world_size,
              train_images, val_images, classes [names, in model output order],
              epochs, steps_per_epoch, start_epoch (0, or the epochs a resumed run had done),
              val_source ("val" split or "holdout"), crop [h, w], cached (images held in
              memory), class_weights (list, or null), val_subset (images scored by
              intermediate validations, or null when they score the whole split),
              started_from (the model id or path whose weights the run started from, or null)
progress      epoch (1-based), epochs, step (1-based, within the epoch), steps, loss
              (running mean over the epoch), lr, images_per_s; at most ~2 per second
epoch_end     epoch, epochs, train_loss, val_loss, miou, mean_dice, pixel_accuracy,
              mean_class_accuracy, per_class {name: {iou, dice, accuracy}}, lr, seconds
              (train + validation), train_seconds, images_per_s, data_wait_share (share of train step time spent waiting for
              data), peak_gpu_memory_mb (null off CUDA), val_images (images scored),
              best_miou, is_best, val_s (seconds the validation took), val_subset (true:
              scored on the run's fixed val subset, false: on the whole split).
              Sent after each validated epoch: intermediate validations keep within the
              config's val_share of the time, so some epochs report only progress; the
              last epoch is always validated on the whole split
preview       epoch, images [paths of PNGs: image | truth | prediction, for up to 4 fixed
              validation images, under RUN_DIR/previews/]
checkpoint    epoch, kind ("best"/"last"), path (the checkpoint's weights file)
warning       message
error         message (what went wrong and what to do)
stopped       epoch (completed epochs), reason ("signal": SIGINT/SIGTERM or should_stop),
              checkpoint (path of the last checkpoint), model (path of the best model
              written so far, or null)
run_finished  epochs (completed), best_epoch, best {miou, mean_dice, pixel_accuracy,
              mean_class_accuracy, per_class}, model (PROJECT/models/<run-id>), run_dir,
              minutes, reason ("completed"/"early_stopping"/"max_minutes"), val_seconds
              (all validation, including re-scoring a subset best on the whole split)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, TextIO

from segstudio.core.events_schema import EVENT_KINDS, event_time

EventHandler = Callable[[dict[str, Any]], None]


def jsonable(value: Any) -> Any:
    """`value` with NaN/inf turned into None and tuples into lists, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def make_event(kind: str, /, **fields: Any) -> dict[str, Any]:
    """An event of `kind` stamped now; its fields per core/events_schema.py, JSON-safe."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return {"event": kind, "time": event_time(), **jsonable(fields)}


class JsonlWriter:
    """Writes each event as one JSON line and flushes, so a reader sees it at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(jsonable(event), allow_nan=False, separators=(",", ":"))
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:  # the reader (the app) went away; training carries on
            pass


class Throttle:
    """True at most every `interval` seconds (and always when forced)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._last = -math.inf

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False
