"""The Train panel's options are TrainConfig values: the 'start from the active model' check
box and the settings the Advanced form does not show travel to the child's argv."""

from __future__ import annotations

from typing import Any

from segstudio.engine.config import config_to_argv
from segstudio.ui.training.panel import TrainingPanel
from segstudio.ui.training.probe import DeviceReport


def test_start_from_the_active_model_is_a_check_box(qtbot) -> None:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_data({"train": 20, "val": 5})
    panel.set_device(DeviceReport("cpu", "CPU"))
    requested: list[Any] = []
    panel.train_requested.connect(requested.append)
    panel.train_button.click()
    assert requested[0].init_from == "auto" and "--init-from" not in config_to_argv(requested[0])
    panel.from_active.setChecked(False)
    panel.train_button.click()
    argv = config_to_argv(requested[1])
    assert argv[argv.index("--init-from") + 1] == "none"
    # the recipe's small-data settings survive the Advanced form, which does not show them
    panel.advanced.setChecked(True)
    panel.train_button.click()
    assert requested[2].min_epoch_steps == 50 and requested[2].val_share == 0.15
