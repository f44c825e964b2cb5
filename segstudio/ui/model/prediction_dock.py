"""The Model dock: model choice, predict/pre-label with progress, layers, accept, review queue,
effort meter. It only calls the LoopController and shows what it reports."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.loop import CONFIDENCE_KINDS, PREDICTION_STYLES, REVIEW_KEYS
from segstudio.ui.model.controller import LoopController

CONFIDENCE_TEXT = {"max_prob": "1 - max probability", "entropy": "entropy"}
REVIEW_TEXT = {"mean_entropy": "mean entropy", "low_margin_share": "low-margin share"}
QUEUE_ROWS = 200


def _button(text: str, name: str, tip: str, parent: QWidget) -> QPushButton:
    button = QPushButton(text, parent)
    button.setObjectName(name)
    button.setToolTip(tip)
    return button


def _pixels(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1_000_000 else f"{n / 1e3:.1f} k" if n >= 1000 else str(n)


class PredictionDock(QDockWidget):
    """Everything about the model in the loop, in one dock."""

    def __init__(self, controller: LoopController, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.setObjectName("prediction_dock")
        self.controller = controller
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)

        self.model_label = QLabel("No model", body)
        self.model_label.setObjectName("model_label")
        self.model_label.setWordWrap(True)
        layout.addWidget(self.model_label)

        predict = QHBoxLayout()
        self.predict_button = _button("Predict image", "predict_image", "Predict the open image (Ctrl+P)", body)
        self.predict_listed = _button("Listed", "predict_listed", "Predict every image the list shows", body)
        self.prelabel_button = _button("Pre-label all", "prelabel_all",
                                       "Predict all unlabelled images and write the predictions as "
                                       "their masks (status: predicted)", body)
        for button in (self.predict_button, self.predict_listed, self.prelabel_button):
            predict.addWidget(button)
        layout.addLayout(predict)
        progress_row = QHBoxLayout()
        self.progress_bar = QProgressBar(body)
        self.progress_bar.setObjectName("predict_progress")
        self.progress_bar.setTextVisible(True)
        self.cancel_button = _button("Cancel", "predict_cancel", "Stop after the current image", body)
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)

        layout.addWidget(self._build_view_box(body))
        layout.addWidget(self._build_accept_box(body))
        self.effort_label = QLabel(body)
        self.effort_label.setObjectName("effort_meter")
        self.effort_label.setWordWrap(True)
        self.effort_label.setTextFormat(Qt.TextFormat.RichText)
        self.effort_label.setFrameShape(QLabel.Shape.StyledPanel)
        layout.addWidget(self.effort_label)
        layout.addWidget(self._build_queue_box(body), 1)
        # scrolls rather than forcing a minimum window height on small screens
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # it narrows instead
        scroll.setWidget(body)
        self.setWidget(scroll)

        c = controller
        c.model_changed.connect(self._on_controller_model_changed)
        c.busy_changed.connect(self._on_controller_busy_changed)
        c.progress.connect(self._on_controller_progress)
        c.queue_changed.connect(self._refresh_queue)
        c.effort_changed.connect(self._refresh_effort)
        c.prediction_ready.connect(self._on_controller_prediction_ready)
        self.predict_button.clicked.connect(c.predict_current)
        self.prelabel_button.clicked.connect(c.prelabel_all)
        self.cancel_button.clicked.connect(c.cancel)
        self._on_controller_busy_changed(False)
        self._on_controller_model_changed("")

    # -- building -----------------------------------------------------------------------------
    def _build_view_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Show", parent)
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.show_prediction = QCheckBox("Prediction", box)
        self.show_prediction.setObjectName("show_prediction")
        self.show_prediction.setChecked(self.controller.show_prediction)
        self.style_combo = QComboBox(box)
        self.style_combo.setObjectName("prediction_style")
        for style in PREDICTION_STYLES:
            self.style_combo.addItem(style, style)
        self.style_combo.setCurrentIndex(PREDICTION_STYLES.index(self.controller.style))
        row.addWidget(self.show_prediction)
        row.addWidget(self.style_combo)
        form.addRow(row)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, box)
        self.opacity_slider.setObjectName("prediction_opacity")
        self.opacity_slider.setRange(5, 100)
        self.opacity_slider.setValue(round(self.controller.opacity * 100))
        form.addRow("Opacity", self.opacity_slider)
        self.confidence_combo = QComboBox(box)
        self.confidence_combo.setObjectName("confidence_kind")
        self.confidence_combo.addItem("off", None)
        for kind in CONFIDENCE_KINDS:
            self.confidence_combo.addItem(CONFIDENCE_TEXT[kind], kind)
        form.addRow("Uncertainty", self.confidence_combo)
        self.show_disagreement = QCheckBox("Where mask and prediction differ", box)
        self.show_disagreement.setObjectName("show_disagreement")
        form.addRow(self.show_disagreement)
        self.show_prediction.toggled.connect(lambda on: self.controller.set_view(show_prediction=on))
        self.style_combo.currentIndexChanged.connect(
            lambda _: self.controller.set_view(style=self.style_combo.currentData()))
        self.opacity_slider.valueChanged.connect(lambda v: self.controller.set_view(opacity=v / 100))
        self.confidence_combo.currentIndexChanged.connect(
            lambda _: self.controller.set_view(confidence=self.confidence_combo.currentData()))
        self.show_disagreement.toggled.connect(lambda on: self.controller.set_view(disagreement=on))
        return box

    def _build_accept_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Accept into the mask (one undo step each)", parent)
        grid = QVBoxLayout(box)
        row = QHBoxLayout()
        self.accept_all_button = _button("All", "accept_all", "Take the whole prediction (Alt+A)", box)
        self.accept_unlabeled_button = _button("Unlabelled", "accept_unlabeled",
                                               "Take the prediction where nothing is labelled yet (Alt+U)", box)
        self.accept_region_button = _button("Region...", "accept_region",
                                            "Then click the canvas: takes the predicted area under the "
                                            "click (Shift+A: the area under the cursor)", box)
        self.accept_region_button.setCheckable(True)
        for button in (self.accept_all_button, self.accept_unlabeled_button, self.accept_region_button):
            row.addWidget(button)
        grid.addLayout(row)
        self.reviewed_button = _button("Confirm reviewed", "confirm_reviewed",
                                       "Save and mark this image reviewed (Ctrl+Shift+Return)", box)
        grid.addWidget(self.reviewed_button)
        self.accept_all_button.clicked.connect(self.controller.accept_all)
        self.accept_unlabeled_button.clicked.connect(self.controller.accept_unlabeled)
        self.reviewed_button.clicked.connect(self.controller.confirm_reviewed)
        return box

    def _build_queue_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Review queue (most uncertain first)", parent)
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.review_key_combo = QComboBox(box)
        self.review_key_combo.setObjectName("review_key")
        for key in REVIEW_KEYS:
            self.review_key_combo.addItem(REVIEW_TEXT[key], key)
        self.next_button = _button("Next most uncertain", "next_uncertain",
                                   "Open the image the model is least sure about (Shift+N)", box)
        row.addWidget(self.review_key_combo, 1)
        row.addWidget(self.next_button)
        layout.addLayout(row)
        self.queue_list = QListWidget(box)
        self.queue_list.setObjectName("review_queue")
        self.queue_list.setMinimumHeight(90)
        layout.addWidget(self.queue_list, 1)
        self.review_key_combo.currentIndexChanged.connect(
            lambda _: self.controller.set_review_key(self.review_key_combo.currentData()))
        self.next_button.clicked.connect(self.controller.next_uncertain)
        self.queue_list.itemActivated.connect(self._on_queue_item_activated)
        self.queue_list.itemClicked.connect(self._on_queue_item_activated)
        return box

    # -- controller signals ---------------------------------------------------------------------
    def _on_controller_model_changed(self, path: str) -> None:
        has_project = self.controller.session is not None
        if path:
            self.model_label.setText(f"Model: <b>{Path(path).name}</b>")
            self.model_label.setToolTip(path)
        else:
            self.model_label.setText("No model: open one (Model > Open model...) or train one")
            self.model_label.setToolTip("")
        ready = bool(path) and has_project
        for button in (self.predict_button, self.predict_listed, self.prelabel_button):
            button.setEnabled(ready and not self.controller.busy)
        self._refresh_queue()
        self._refresh_effort()

    def _on_controller_busy_changed(self, busy: bool) -> None:
        ready = self.controller.model_path is not None and self.controller.session is not None
        for button in (self.predict_button, self.predict_listed, self.prelabel_button):
            button.setEnabled(ready and not busy)
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        if busy:
            self.progress_bar.setRange(0, 0)  # busy until the first image is done

    def _on_controller_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{done} / {total}")

    def _on_controller_prediction_ready(self, _image_id: str) -> None:
        pass  # the queue refreshes through queue_changed

    def _on_queue_item_activated(self, item: QListWidgetItem) -> None:
        session = self.controller.session
        if session is not None:
            session.open_image(str(item.data(Qt.ItemDataRole.UserRole)))

    def _refresh_queue(self) -> None:
        self.queue_list.clear()
        scores = self.controller.scores()
        key = self.controller.review_key
        for image_id in self.controller.review_queue()[:QUEUE_ROWS]:
            item = QListWidgetItem(f"{scores[image_id].get(key):.3f}   {image_id}")
            item.setData(Qt.ItemDataRole.UserRole, image_id)
            self.queue_list.addItem(item)
        self.next_button.setEnabled(self.queue_list.count() > 0)

    def _refresh_effort(self) -> None:
        summary = self.controller.effort_summary()
        if summary is None or not (summary.model_images or summary.scratch_images):
            self.effort_label.setText("<b>Effort</b>: counted when you save or confirm a mask")
            return
        share = summary.saved_share
        self.effort_label.setText(
            f"<b>Effort</b>: you labelled {_pixels(summary.hand_pixels)} px by hand; "
            f"the model gave {_pixels(summary.saved_pixels)} px you kept "
            f"(<b>{share:.0%}</b> of {_pixels(summary.labelled)} labelled px).<br>"
            f"{summary.model_images} pre-labelled image(s), {summary.scratch_images} from scratch."
        )
        current = self.controller.session.current_id if self.controller.session else None
        entry = self.controller.effort.entries.get(current or "") if self.controller.effort else None
        if entry is not None:
            what = "changed after the model" if entry.source == "model" else "labelled from scratch"
            self.effort_label.setText(self.effort_label.text() +
                                      f"<br>This image: {_pixels(entry.hand_pixels)} px {what}.")
