"""Add from files: register an encoder/decoder pair the user already has (offline machines,
mirrors, a fine-tuned SAM). The family is detected from the files' tensors and shown before
anything is registered; a pair that matches no family says why."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from segstudio.assist.store import ModelStore, RegisteredModel
from segstudio.ui.jobs import Job, error_text, run_in_background

ONNX_FILTER = "ONNX models (*.onnx);;All files (*)"


def detect_family(encoder: Path, decoder: Path) -> str:
    """The family of a pair, by opening both files (AssistError when they match none)."""
    from segstudio.assist.predictor import ClickAssistant

    return ClickAssistant(encoder, decoder, device="cpu").family


class AddModelDialog(QDialog):
    """Name, encoder, decoder, licence; OK is enabled once the pair's family is known."""

    detected = Signal(str)  # the family, or '' when the pair is unusable

    def __init__(self, store: ModelStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assist_add_dialog")
        self.setWindowTitle("Add an assist model from files")
        self.store = store
        self.model: RegisteredModel | None = None
        self._family = ""
        self._job: Job[str] | None = None
        form = QFormLayout(self)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("e.g. my-sam")
        form.addRow("&Name", self.name)
        self.encoder = QLineEdit(self)
        self.decoder = QLineEdit(self)
        for label, field, role in (("&Encoder", self.encoder, "encoder"), ("&Decoder", self.decoder, "decoder")):
            row = QHBoxLayout()
            row.addWidget(field, 1)
            browse = QPushButton("Browse...", self)
            browse.clicked.connect(lambda _=False, f=field, r=role: self._browse(f, r))
            row.addWidget(browse)
            form.addRow(label, row)
            field.editingFinished.connect(self.check_pair)
        self.licence = QLineEdit("unknown", self)
        form.addRow("&Licence", self.licence)
        self.non_commercial = QCheckBox("The licence forbids commercial use", self)
        form.addRow("", self.non_commercial)
        self.family = QLabel("Family: pick both files", self)
        self.family.setObjectName("family")
        self.family.setWordWrap(True)
        form.addRow(self.family)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self._on_buttons_accepted)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.name.textChanged.connect(self._update_ok)
        self._update_ok()
        self.resize(620, 0)

    def _browse(self, field: QLineEdit, role: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Pick the {role} .onnx file", field.text(), ONNX_FILTER)
        if path:
            field.setText(path)
            if not self.name.text().strip():
                self.name.setText(Path(path).stem.replace(".encoder", "").replace(".decoder", ""))
            self.check_pair()

    def set_files(self, encoder: Path, decoder: Path, name: str = "") -> None:
        """Fill the fields (tests, drag and drop) and detect the family."""
        self.encoder.setText(str(encoder))
        self.decoder.setText(str(decoder))
        if name:
            self.name.setText(name)
        self.check_pair()

    def check_pair(self) -> None:
        """Detect the family in the background once both files exist."""
        encoder, decoder = Path(self.encoder.text().strip()), Path(self.decoder.text().strip())
        self._family = ""
        self._update_ok()
        if not (encoder.is_file() and decoder.is_file()):
            self.family.setText("Family: pick both files")
            return
        self.family.setText("Family: checking the files...")
        pair = (encoder, decoder)

        def done(family: str) -> None:
            if pair != self._pair():
                return
            self._family = family
            self.family.setText(f"Family: <b>{html.escape(family)}</b>")
            self._update_ok()
            self.detected.emit(family)

        def failed(exc: BaseException) -> None:
            if pair != self._pair():
                return
            self.family.setText(f"<span style='color:#c82828'>{html.escape(error_text(exc))}</span>")
            self.detected.emit("")

        self._job = run_in_background(lambda job: detect_family(*pair), done, failed, owner=self)

    def _pair(self) -> tuple[Path, Path]:
        return Path(self.encoder.text().strip()), Path(self.decoder.text().strip())

    def _update_ok(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self._family and self.name.text().strip()))

    def _on_buttons_accepted(self) -> None:
        encoder, decoder = self._pair()
        self.model = RegisteredModel(
            self.name.text().strip(), self._family, str(encoder.resolve()), str(decoder.resolve()),
            self.licence.text().strip() or "unknown", "added", not self.non_commercial.isChecked(),
        )
        self.accept()
