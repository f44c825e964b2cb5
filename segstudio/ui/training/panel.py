"""The Train panel: which device, what one click will do, Train / Stop, and an Advanced
section exposing every `segstudio train` option."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segstudio.engine.config import TrainConfig
from segstudio.ui.training import probe
from segstudio.ui.training.probe import DeviceReport
from segstudio.ui.training.recipe import default_options, summary

AUTO = "auto"
THIS_COMPUTER = "This computer"


def _combo(items: list[str] | tuple[str, ...], editable: bool = False) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(editable)
    combo.addItems(list(items))
    return combo


def _set_combo(combo: QComboBox, value: str | None) -> None:
    value = value or ""
    index = combo.findText(value)
    if index >= 0:
        combo.setCurrentIndex(index)
    elif combo.isEditable():
        combo.setEditText(value)


def _spin(low: int, high: int, special: str | None = None) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    if special:
        spin.setSpecialValueText(special)  # shown at the minimum: "leave it to segstudio"
    return spin


class AdvancedOptions(QWidget):
    """Every training option behind a check box; unchecked, the one-click recipe is used."""

    toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.check = QCheckBox("Advanced settings")
        self.check.setToolTip("Choose every training option yourself")
        self.arch = _combo(probe.ARCHITECTURES)
        self.encoder = _combo(probe.ENCODERS, editable=True)
        self.pretrained = _combo(("imagenet", "none"), editable=True)
        self.pretrained.setToolTip("imagenet, none, or the path of a weights file")
        self.loss = _combo(probe.LOSSES)
        self.augment = _combo(probe.AUGMENT_PRESETS)
        self.class_weights = _combo(probe.CLASS_WEIGHTS)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1.0)
        self.lr.setSingleStep(1e-4)
        self.epochs = _spin(1, 1000)
        self.batch_size = _spin(1, 512)
        self.crop_size = _spin(32, 4096)
        self.crop_size.setSingleStep(32)
        self.amp = _combo(("auto", "bf16", "fp16", "off"))
        self.device = _combo(("auto", "cuda", "mps", "cpu"), editable=True)
        self.max_minutes = _spin(0, 100_000, "no limit")
        self.patience = _spin(-1, 1000, "auto")
        self.patience.setToolTip("epochs without val mIoU gain before stopping early (0 = never)")
        self.workers = _spin(-1, 64, "auto")
        self.run_name = QLineEdit()
        self.run_name.setPlaceholderText("time and model")
        self._base = TrainConfig()  # the settings this form does not show (kept from the recipe)
        self.body = QFrame()
        self.body.setFrameShape(QFrame.Shape.StyledPanel)
        form = QFormLayout(self.body)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, widget in (
            ("Architecture", self.arch), ("Encoder", self.encoder), ("Pretrained weights", self.pretrained),
            ("Loss", self.loss), ("Augmentation", self.augment), ("Class weights", self.class_weights),
            ("Learning rate", self.lr), ("Epochs", self.epochs), ("Batch size", self.batch_size),
            ("Crop size (px)", self.crop_size), ("Mixed precision (AMP)", self.amp), ("Device", self.device),
            ("Time limit (min)", self.max_minutes), ("Early-stop patience", self.patience),
            ("Loader workers", self.workers), ("Run name", self.run_name),
        ):
            form.addRow(label, widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)
        layout.addWidget(self.body)
        self.body.setVisible(False)
        self.check.toggled.connect(self._on_check_toggled)

    def _on_check_toggled(self, on: bool) -> None:
        self.body.setVisible(on)
        self.toggled.emit(on)

    def isChecked(self) -> bool:  # noqa: N802  (reads like the check box it stands for)
        return self.check.isChecked()

    def setChecked(self, on: bool) -> None:  # noqa: N802
        self.check.setChecked(on)

    def set_choices(self, choices: dict[str, list[str]]) -> None:
        """Replace the fallback lists with the engine's own (from the device probe)."""
        for key, combo in (("architectures", self.arch), ("encoders", self.encoder), ("losses", self.loss),
                           ("augment", self.augment), ("class_weights", self.class_weights)):
            values = choices.get(key)
            if values:
                current = combo.currentText()
                combo.blockSignals(True)
                combo.clear()
                combo.addItems(values)
                _set_combo(combo, current)
                combo.blockSignals(False)

    def load(self, options: TrainConfig) -> None:
        self._base = options
        _set_combo(self.arch, options.arch)
        _set_combo(self.encoder, options.encoder)
        _set_combo(self.pretrained, options.pretrained or "none")
        _set_combo(self.loss, options.loss)
        _set_combo(self.augment, options.augment)
        _set_combo(self.class_weights, options.class_weights)
        self.lr.setValue(options.lr)
        self.epochs.setValue(options.epochs or 10)
        self.batch_size.setValue(options.batch_size or 8)
        self.crop_size.setValue(options.crop_size or 256)
        _set_combo(self.amp, options.amp)
        _set_combo(self.device, options.device)
        self.max_minutes.setValue(int(options.max_minutes or 0))
        self.patience.setValue(-1 if options.patience is None else options.patience)
        self.workers.setValue(-1 if options.workers is None else options.workers)
        self.run_name.setText(options.run_name or "")

    def options(self) -> TrainConfig:
        pretrained = self.pretrained.currentText().strip()
        return replace(
            self._base,
            arch=self.arch.currentText().strip() or "unet",
            encoder=self.encoder.currentText().strip() or None,
            pretrained=None if pretrained.lower() in ("", "none") else pretrained,
            loss=self.loss.currentText(),
            augment=self.augment.currentText(),
            class_weights=self.class_weights.currentText(),
            lr=float(self.lr.value()),
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value(),
            crop_size=self.crop_size.value(),
            amp=self.amp.currentText(),
            device=self.device.currentText().strip() or AUTO,
            max_minutes=float(self.max_minutes.value()) or None,
            patience=None if self.patience.value() < 0 else self.patience.value(),
            workers=None if self.workers.value() < 0 else self.workers.value(),
            run_name=self.run_name.text().strip() or None,
        )


class HostCombo(QComboBox):
    """The "Run on" list; asks for a fresh hosts list each time it opens (hosts added with
    `segstudio remote add` while the app runs show up)."""

    about_to_open = Signal()

    def showPopup(self) -> None:  # noqa: N802
        self.about_to_open.emit()
        super().showPopup()


class TrainingPanel(QWidget):
    """Train / Stop and the recipe. Emits requests; the controller does the work."""

    train_requested = Signal(object)  # TrainConfig
    stop_requested = Signal()
    run_on_changed = Signal(str)  # a host's name, "" for this computer
    hosts_wanted = Signal()
    reattach_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device: DeviceReport | None = None
        self.counts: dict[str, int] = {"train": 0, "val": 0}
        self.run_on = HostCombo()
        self.run_on.addItem(THIS_COMPUTER, "")
        self.run_on.setToolTip("Train here, or on a host added with 'segstudio remote add HOST' (over SSH); "
                               "a run on a host goes on when this app closes")
        self.run_on.currentIndexChanged.connect(self._on_run_on_current_index_changed)
        self.run_on.about_to_open.connect(self.hosts_wanted)
        self.detached_label = QLabel("")
        self.detached_label.setWordWrap(True)
        self.detached_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reattach_button = QPushButton("Re-attach")
        self.reattach_button.setToolTip("Follow the run on its host again: every epoch so far, then the new ones")
        self.reattach_button.clicked.connect(self.reattach_requested)
        self.detached = QFrame()
        self.detached.setFrameShape(QFrame.Shape.StyledPanel)
        detached = QHBoxLayout(self.detached)
        detached.setContentsMargins(4, 4, 4, 4)
        detached.addWidget(self.detached_label, 1)
        detached.addWidget(self.reattach_button)
        self.detached.setVisible(False)
        self.device_label = QLabel("Device: checking what this machine can train on...")
        self.device_label.setWordWrap(True)
        self.device_note = QLabel("")
        self.device_note.setWordWrap(True)
        self.device_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.device_note.setVisible(False)
        self.data_label = QLabel("No project open.")
        self.data_label.setWordWrap(True)
        self.recipe_label = QLabel("")
        self.recipe_label.setWordWrap(True)
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Save all masks and train a model on the labelled images")
        self.train_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Finish the current step, keep a checkpoint and stop; press again to kill")
        self.stop_button.setEnabled(False)
        self.train_button.clicked.connect(self._on_train_clicked)
        self.stop_button.clicked.connect(self.stop_requested)
        self.advanced = AdvancedOptions()
        self.advanced.toggled.connect(self._on_advanced_toggled)
        self.live_data = QCheckBox("Use masks saved during the run from its next epoch")
        self.live_data.setToolTip("Off: a run trains on the labelled images it started with, and "
                                  "later labels are used by the next run")
        self.from_active = QCheckBox("Start from the active model")
        self.from_active.setChecked(True)
        self.from_active.setToolTip("Fine-tune the project's active model when it has the same classes, "
                                    "architecture and encoder; off: start fresh")
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button, 2)
        buttons.addWidget(self.stop_button, 1)
        run_on = QHBoxLayout()
        run_on.addWidget(QLabel("Run on:"))
        run_on.addWidget(self.run_on, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(run_on)
        layout.addWidget(self.detached)
        layout.addWidget(self.device_label)
        layout.addWidget(self.device_note)
        layout.addWidget(self.data_label)
        layout.addWidget(self.recipe_label)
        layout.addLayout(buttons)
        layout.addWidget(self.live_data)
        layout.addWidget(self.from_active)
        layout.addWidget(self.advanced)
        self._running = False
        self._has_project = False
        self._refresh()

    # -- where ------------------------------------------------------------------------------
    def set_hosts(self, names: list[str]) -> None:
        """The registered hosts; the current choice stays when it is still one of them."""
        current = self.host()
        self.run_on.blockSignals(True)
        while self.run_on.count() > 1:
            self.run_on.removeItem(1)
        for name in names:
            self.run_on.addItem(f"{name} (SSH host)", name)
        index = self.run_on.findData(current) if current else 0
        self.run_on.setCurrentIndex(max(0, index))
        self.run_on.blockSignals(False)
        if current and index < 0:
            self._on_run_on_current_index_changed(0)

    def host(self) -> str | None:
        """The chosen host, or None for this computer."""
        return str(self.run_on.currentData() or "") or None

    def set_host(self, name: str | None) -> None:
        index = self.run_on.findData(name or "")
        if index >= 0:
            self.run_on.setCurrentIndex(index)

    def _on_run_on_current_index_changed(self, _index: int) -> None:
        self.device = None
        host = self.host()
        self.device_label.setText(f"Device: asking host {host} what it has..." if host
                                  else "Device: checking what this machine can train on...")
        self.device_note.setVisible(False)
        self._refresh()
        self.run_on_changed.emit(host or "")

    def show_detached(self, text: str | None) -> None:
        """A run going on on a host that this app does not follow (None: hide the offer)."""
        self.detached_label.setText(text or "")
        self.detached.setVisible(bool(text))

    # -- inputs -----------------------------------------------------------------------------
    def set_device(self, report: DeviceReport, choices: dict[str, Any] | None = None) -> None:
        self.device = report
        memory = f", {report.memory_mb / 1024:.0f} GB" if report.memory_mb else ""
        self.device_label.setText(f"<b>Device:</b> {report.name}{memory}")
        if report.reason:
            color = "#8a5a00" if report.ok else "#B00020"
            self.device_note.setText(f"<span style='color:{color}'>{report.reason}</span> {report.advice}")
            self.device_note.setVisible(True)
        else:
            self.device_note.setVisible(False)
        if choices:
            self.advanced.set_choices(choices)
        self._refresh()

    def set_data(self, counts: dict[str, int] | None) -> None:
        """Labelled images per split (None: no project)."""
        self._has_project = counts is not None
        self.counts = dict(counts or {"train": 0, "val": 0})
        self._refresh()

    def set_running(self, state: str) -> None:
        """idle / running / stopping / killing."""
        self._running = state != "idle"
        self.stop_button.setEnabled(state in ("running", "stopping"))
        self.stop_button.setText({"stopping": "Kill now", "killing": "Killing..."}.get(state, "Stop"))
        self._refresh()

    # -- the recipe -------------------------------------------------------------------------
    def default_options(self) -> TrainConfig:
        report = self.device or DeviceReport("cpu", "CPU")
        return default_options(report, self.counts.get("train", 0))

    def options(self) -> TrainConfig:
        options = self.advanced.options() if self.advanced.isChecked() else self.default_options()
        if self.host() and not self.advanced.isChecked() and self.device is not None and not self.device.gpu:
            options = replace(options, device="cpu")  # the host has no GPU: its CPU, as the note says
        return replace(options, refresh_data=self.live_data.isChecked(),
                       init_from="auto" if self.from_active.isChecked() else "none")

    def _on_advanced_toggled(self, checked: bool) -> None:
        if checked:
            self.advanced.load(self.default_options())
        self._refresh()

    def _on_train_clicked(self) -> None:
        self.train_requested.emit(self.options())

    def _refresh(self) -> None:
        train, val = self.counts.get("train", 0), self.counts.get("val", 0)
        if not self._has_project:
            self.data_label.setText("Open a project to train.")
        elif train == 0:
            self.data_label.setText("No labelled images yet: mark some images done (labelled) to train.")
        else:
            where = f"{val} validation" if val else "a 15% holdout for validation (no val split)"
            self.data_label.setText(f"<b>Data:</b> {train} labelled training images, {where}.")
        if not self.advanced.isChecked():
            self.advanced.load(self.default_options())
        if self.device is None:
            self.recipe_label.setText("One click trains with defaults for this machine (checking device...).")
        else:
            prefix = "Custom settings" if self.advanced.isChecked() else "One click trains"
            self.recipe_label.setText(f"<b>{prefix}:</b> {summary(self.options())}.")
        self.train_button.setEnabled(self._has_project and train > 0 and not self._running)
        self.run_on.setEnabled(not self._running)
