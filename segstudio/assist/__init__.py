"""Click assist: Segment-Anything-family ONNX models turn clicks or a box into a mask.

Qt-free and torch-free (onnxruntime + numpy), so the app, the CLI and tests share it.
"""

from __future__ import annotations

from segstudio.assist.cache import DiskEmbeddingCache, EmbeddingCache, image_key
from segstudio.assist.embedding import Candidate, Embedding, Geometry
from segstudio.assist.errors import AssistCancelled, AssistError, DownloadError
from segstudio.assist.predictor import AssistResult, ClickAssistant
from segstudio.assist.prompts import Box, Point, Prompt
from segstudio.assist.runtime import CancelToken, choose_providers

__all__ = [
    "AssistCancelled", "AssistError", "AssistResult", "Box", "CancelToken", "Candidate",
    "ClickAssistant", "DiskEmbeddingCache", "DownloadError", "Embedding", "EmbeddingCache",
    "Geometry", "Point", "Prompt", "choose_providers", "image_key",
]
