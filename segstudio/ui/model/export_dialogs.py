"""Export dialogs: a model file to ONNX/TorchScript/safetensors (with the verification
report), and the project's masks as a dataset (masks, colour, overlays, VOC, COCO, ...).

Both run on the thread pool; the engine is imported inside the job, never at startup.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.exporters import FORMATS
from segstudio.core.progress import ProgressCallback
from segstudio.core.project import SPLITS, STATUSES, Project
from segstudio.core.vocabulary import TRAINING_STATUSES
from segstudio.ui.jobs import Job, error_text, run_in_background

MODEL_FORMATS = ("onnx", "torchscript", "safetensors")
DATASET_FORMATS = FORMATS  # every format `segstudio export` writes, geotiff included


def _path_row(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class _JobDialog(QDialog):
    """Common part: a form, a Run button, progress, and a report area."""

    def __init__(self, title: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(560, 380)
        self.form = QFormLayout()
        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        self.report = QPlainTextEdit(self)
        self.report.setObjectName("export_report")
        self.report.setReadOnly(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.run_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.run_button.setObjectName("export_run")
        self.buttons.rejected.connect(self.reject)
        self.run_button.clicked.connect(self._on_run_clicked)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.progress)
        layout.addWidget(self.report, 1)
        layout.addWidget(self.buttons)
        self.job: Job[Any] | None = None
        self.result: Any = None

    def _on_run_clicked(self) -> None:
        fn = self.make_job()
        if fn is None:
            return
        self.run_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.report.setPlainText("working...")
        self.job = run_in_background(lambda job: fn(job.progress), self._on_job_done, self._on_job_failed,
                                     on_progress=self._on_job_progress)

    def _on_job_progress(self, done: int, total: int, _item: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_job_done(self, result: Any) -> None:
        self.result = result
        self._finish(self.describe(result))

    def _on_job_failed(self, exc: BaseException) -> None:
        self.result = None
        self._finish(f"Export failed: {error_text(exc)}")

    def _finish(self, text: str) -> None:
        self.progress.setVisible(False)
        self.run_button.setEnabled(True)
        self.report.setPlainText(text)
        self.job = None

    def wait(self, msecs: int = 60000) -> bool:
        return QThreadPool.globalInstance().waitForDone(msecs)

    def make_job(self) -> Callable[[ProgressCallback], Any] | None:
        raise NotImplementedError

    def describe(self, result: Any) -> str:
        raise NotImplementedError


class ExportModelDialog(_JobDialog):
    """Model file -> ONNX / TorchScript / safetensors, verified against PyTorch."""

    def __init__(self, model_path: Path | None, parent: QWidget | None = None) -> None:
        super().__init__("Export model", parent)
        self.setObjectName("export_model_dialog")
        self.model_edit = QLineEdit(str(model_path or ""), self)
        self.model_edit.setObjectName("export_model_source")
        browse = QPushButton("Browse...", self)
        browse.clicked.connect(self._on_browse_model_clicked)
        self.form.addRow("Model", _path_row(self.model_edit, browse))
        self.format_combo = QComboBox(self)
        self.format_combo.setObjectName("export_model_format")
        for fmt in MODEL_FORMATS:
            self.format_combo.addItem(fmt, fmt)
        self.form.addRow("Format", self.format_combo)
        default_out = (Path(model_path).parent / "export") if model_path else Path.home()
        self.out_edit = QLineEdit(str(default_out), self)
        self.out_edit.setObjectName("export_model_out")
        out_browse = QPushButton("Browse...", self)
        out_browse.clicked.connect(self._on_browse_out_clicked)
        self.form.addRow("Into folder", _path_row(self.out_edit, out_browse))
        self.bundle_check = QCheckBox("Bundle with config.json and a README on pre-/post-processing", self)
        self.bundle_check.setChecked(True)
        self.form.addRow(self.bundle_check)

    def _on_browse_model_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.model_edit.text())
        if folder:
            self.model_edit.setText(folder)

    def _on_browse_out_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    def make_job(self) -> Callable[[ProgressCallback], Any] | None:
        source, out = self.model_edit.text().strip(), self.out_edit.text().strip()
        if not source or not out:
            self.report.setPlainText("Choose a model and a folder to export into.")
            return None
        fmt, bundle = str(self.format_combo.currentData()), self.bundle_check.isChecked()

        def work(_progress: ProgressCallback) -> Any:
            from segstudio.engine.export import export_model

            return export_model(Path(source), fmt, Path(out), bundle=bundle)

        return work

    def describe(self, result: Any) -> str:
        lines = [result.summary(), ""]
        for check in result.checks:
            verdict = "ok" if check.passed else "FAILED"
            lines.append(f"  input {check.height}x{check.width}: max |diff| {check.max_abs_diff:.2e}, "
                         f"argmax agreement {check.argmax_agreement * 100:.3f}%  {verdict}")
        lines.append("  (limits: max |diff| <= 1e-3, agreement >= 99.9%)")
        lines.append("")
        lines.append("Files:")
        lines += [f"  {path}" for path in result.files]
        return "\n".join(lines)


class ExportDatasetDialog(_JobDialog):
    """The project's masks as a dataset, labelled and reviewed images by default."""

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__("Export dataset", parent)
        self.setObjectName("export_dataset_dialog")
        self.project = project
        self.format_combo = QComboBox(self)
        self.format_combo.setObjectName("export_dataset_format")
        for fmt in DATASET_FORMATS:
            self.format_combo.addItem(fmt, fmt)
        self.form.addRow("Format", self.format_combo)
        self.split_combo = QComboBox(self)
        self.split_combo.setObjectName("export_dataset_split")
        self.split_combo.addItem("all splits", None)
        for split in SPLITS:
            self.split_combo.addItem(split, split)
        self.form.addRow("Split", self.split_combo)
        statuses = QHBoxLayout()
        self.status_checks: dict[str, QCheckBox] = {}
        for status in STATUSES:
            if status == "unlabeled":
                continue
            box = QCheckBox(status.replace("_", " "), self)
            box.setObjectName(f"export_status_{status}")
            box.setChecked(status in TRAINING_STATUSES)  # the exporters' default selection
            self.status_checks[status] = box
            statuses.addWidget(box)
        self.form.addRow("Images", statuses)
        self.out_edit = QLineEdit(str(project.root / "export"), self)
        self.out_edit.setObjectName("export_dataset_out")
        browse = QPushButton("Browse...", self)
        browse.clicked.connect(self._on_browse_out_clicked)
        self.form.addRow("Into folder", _path_row(self.out_edit, browse))

    def _on_browse_out_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    def statuses(self) -> tuple[str, ...]:
        return tuple(s for s, box in self.status_checks.items() if box.isChecked())

    def make_job(self) -> Callable[[ProgressCallback], Any] | None:
        statuses, out = self.statuses(), self.out_edit.text().strip()
        if not statuses or not out:
            self.report.setPlainText("Tick at least one status and choose a folder.")
            return None
        fmt, split, project = str(self.format_combo.currentData()), self.split_combo.currentData(), self.project

        def work(progress: ProgressCallback) -> Any:
            from segstudio.core.exporters import export_project

            return export_project(project, fmt, Path(out), split=split, statuses=statuses, progress=progress)

        return work

    def describe(self, result: Any) -> str:
        return "\n".join(result.lines())
