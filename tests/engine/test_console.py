"""Human output of `segstudio train`: a bar on a terminal, plain lines in a log, warnings once."""

from __future__ import annotations

import io

from segstudio.engine.console import ConsoleWriter
from segstudio.engine.events import make_event


def _run_events(epochs: int = 2, steps: int = 50) -> list[dict]:
    events = [make_event("run_started", run_id="r1", run_dir="/p/runs/r1", device="cpu", amp="off",
                         train_images=20, val_images=5, epochs=epochs, steps_per_epoch=steps)]
    for epoch in range(1, epochs + 1):
        events.append(make_event("warning", message="pretrained weights could not be loaded"))
        for step in range(1, steps + 1):
            events.append(make_event("progress", epoch=epoch, epochs=epochs, step=step, steps=steps,
                                     loss=1.0 / step, lr=1e-3, images_per_s=4.2))
        events.append(make_event("epoch_end", epoch=epoch, epochs=epochs, train_loss=0.5, val_loss=0.6,
                                 miou=0.3, pixel_accuracy=0.8, seconds=12.0, is_best=True))
    per_class = {"road": {"iou": 0.9, "dice": 0.95}, "car": {"iou": None, "dice": None}}
    events.append(make_event("run_finished", epochs=epochs, best_epoch=epochs, reason="completed", minutes=0.4,
                             model="/p/models/r1", best={"miou": 0.3, "mean_dice": 0.4, "pixel_accuracy": 0.8,
                                                         "mean_class_accuracy": 0.5, "per_class": per_class}))
    return events


def test_a_log_file_gets_plain_lines_without_carriage_returns() -> None:
    stream = io.StringIO()
    writer = ConsoleWriter(stream, plain_interval_s=3600)
    for event in _run_events():
        writer(event)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # one progress line when the epoch starts and one at its last step, not fifty
    assert sum(line.startswith("epoch 1/2 step") for line in lines) == 2
    assert "epoch 1/2 step 50/50" in text
    assert sum("warning: pretrained weights" in line for line in lines) == 1  # said once
    assert any(line.startswith("epoch 2/2: train loss") for line in lines)
    assert "model: /p/models/r1" in text and "car" in text and "n/a" in text


def test_verbose_prints_every_step_and_quiet_only_the_essentials() -> None:
    loud, hushed = io.StringIO(), io.StringIO()
    verbose, quiet = ConsoleWriter(loud, verbose=True), ConsoleWriter(hushed, quiet=True)
    for event in _run_events():
        verbose(event)
        quiet(event)
    assert sum(" step " in line for line in loud.getvalue().splitlines()) == 100
    quiet_lines = hushed.getvalue().splitlines()
    assert not any(" step " in line or line.startswith("run r1") for line in quiet_lines)
    assert quiet_lines[0].startswith("warning:") and len([x for x in quiet_lines if x.startswith("warning")]) == 1
    assert quiet_lines[-1] == "model: /p/models/r1"
    assert any(line.startswith("mIoU 0.300") for line in quiet_lines)


def test_a_terminal_gets_a_live_bar_that_leaves_the_epoch_lines() -> None:
    stream = io.StringIO()
    writer = ConsoleWriter(stream, live=True)
    for event in _run_events(epochs=1, steps=5):
        writer(event)
    text = stream.getvalue()
    assert "\r" in text  # the bar redraws in place
    assert "epoch 1/1: train loss 0.5000" in text
    assert "finished (completed)" in text
