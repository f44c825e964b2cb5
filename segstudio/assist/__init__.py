"""Click assist: Segment-Anything-family ONNX models turn clicks or a box into a mask.

Qt-free and torch-free (onnxruntime + numpy), so the app, the CLI and tests share it.
Names are loaded on first use, so importing `segstudio.assist.errors` (the CLI's parser
does) does not import onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DiskEmbeddingCache": "cache", "EmbeddingCache": "cache", "image_key": "cache",
    "Candidate": "embedding", "Embedding": "embedding", "Geometry": "embedding",
    "AssistCancelled": "errors", "AssistError": "errors", "DownloadError": "errors",
    "AssistResult": "predictor", "ClickAssistant": "predictor",
    "Box": "prompts", "Point": "prompts", "Prompt": "prompts",
    "CancelToken": "runtime", "choose_providers": "runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segstudio.assist' has no attribute {name!r}")
    return getattr(importlib.import_module(f"segstudio.assist.{module}"), name)
