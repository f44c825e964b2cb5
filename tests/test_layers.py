"""The architecture's layer rules, checked in fresh interpreters: core runs without Qt and
torch, engine without Qt, so the trainer runs on a headless GPU server."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after_import(module: str) -> set[str]:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "import pkgutil, segstudio; "
        # import every submodule of the package too, so a lazy import cannot hide a breach
        f"pkg = importlib.import_module({module!r}); "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')]; "
        "print('\\n'.join(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"importing {module} and its submodules failed:\n{result.stderr}"
    return {name.split(".")[0] for name in result.stdout.split()}


def test_core_loads_neither_qt_nor_torch() -> None:
    loaded = _loaded_after_import("segstudio.core")
    assert "PySide6" not in loaded
    assert "torch" not in loaded


def test_engine_loads_no_qt() -> None:
    pytest.importorskip("torch")
    loaded = _loaded_after_import("segstudio.engine")
    assert "PySide6" not in loaded
    assert "pyqtgraph" not in loaded
