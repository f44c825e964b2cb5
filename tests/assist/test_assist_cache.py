"""Embedding caches and cancellation: an image is encoded once per model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from segstudio.assist import (
    AssistCancelled,
    CancelToken,
    ClickAssistant,
    DiskEmbeddingCache,
    EmbeddingCache,
    Point,
    Prompt,
)
from tests.assist.stand_ins import write_pair


def _image(seed: int, height: int = 120, width: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_second_embed_of_the_same_image_is_a_memory_hit(pair) -> None:
    assistant = ClickAssistant(*pair("sam1"))
    first = assistant.embed(_image(1))
    assert not assistant.last_cache_hit
    again = assistant.embed(_image(1).copy())  # same pixels, another array
    assert assistant.last_cache_hit and again is first
    other = assistant.embed(_image(2))
    assert not assistant.last_cache_hit
    assert not np.array_equal(other.arrays["image_embeddings"], first.arrays["image_embeddings"])
    assert assistant.memory_cache.hits == 1


def test_memory_cache_evicts_least_recently_used_by_bytes(pair) -> None:
    one_embedding = 256 * 64 * 64 * 4
    cache = EmbeddingCache(max_bytes=2 * one_embedding)
    assistant = ClickAssistant(*pair("sam1"), memory_cache=cache)
    for seed in (1, 2):
        assistant.embed(_image(seed), key=f"img{seed}")
    assistant.embed(_image(1), key="img1")  # img1 now most recent
    assistant.embed(_image(3), key="img3")
    assert len(cache) == 2
    assert (assistant.model_key, "img2") not in cache
    assert (assistant.model_key, "img1") in cache


def test_models_do_not_share_embeddings(pair) -> None:
    cache = EmbeddingCache()
    sam1 = ClickAssistant(*pair("sam1"), memory_cache=cache)
    sam2 = ClickAssistant(*pair("sam2"), memory_cache=cache)
    sam1.embed(_image(1), key="a")
    sam2.embed(_image(1), key="a")
    assert not sam2.last_cache_hit and len(cache) == 2


def test_disk_cache_survives_a_new_session_as_float16(pair, tmp_path: Path) -> None:
    folder = tmp_path / "project" / ".cache" / "assist"
    first = ClickAssistant(*pair("sam2"), disk_cache=DiskEmbeddingCache(folder))
    made = first.embed(_image(4, 90, 70))
    files = list(folder.glob("*.npz"))
    assert len(files) == 1
    second = ClickAssistant(*pair("sam2"), disk_cache=DiskEmbeddingCache(folder))
    loaded = second.embed(_image(4, 90, 70))
    assert second.last_cache_hit
    assert loaded.geometry == made.geometry
    for name, array in made.arrays.items():
        assert loaded.arrays[name].dtype == np.float32
        np.testing.assert_allclose(loaded.arrays[name], array, rtol=2e-3, atol=1e-3)
    result = second.predict(loaded, Prompt((Point(35, 45),)))
    assert result.mask()[45, 35]


def test_disk_cache_keeps_under_its_size_cap_dropping_the_oldest(pair, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    one_file = 256 * 64 * 64 * 2  # float16, before compression-free npz overhead
    disk = DiskEmbeddingCache(folder, max_bytes=int(2.5 * one_file))
    assistant = ClickAssistant(*pair("sam1"), disk_cache=disk)
    for seed in range(4):
        assistant.embed(_image(seed), key=f"k{seed}")
        time.sleep(0.02)  # distinct modification times
    assert disk.nbytes <= disk.max_bytes
    assert len(list(folder.glob("*.npz"))) == 2
    assert disk.get((assistant.model_key, "k3"), assistant.family) is not None
    assert disk.get((assistant.model_key, "k0"), assistant.family) is None


def test_a_corrupt_disk_cache_file_is_dropped_and_re_encoded(pair, tmp_path: Path) -> None:
    disk = DiskEmbeddingCache(tmp_path)
    assistant = ClickAssistant(*pair("sam1"), disk_cache=disk)
    assistant.embed(_image(1), key="k")
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not an npz")
    fresh = ClickAssistant(*pair("sam1"), disk_cache=disk)
    fresh.embed(_image(1), key="k")
    assert not fresh.last_cache_hit
    assert disk.get((fresh.model_key, "k"), fresh.family) is not None


def test_a_cancelled_token_stops_before_running(pair) -> None:
    assistant = ClickAssistant(*pair("sam1"))
    token = CancelToken()
    token.cancel()
    with pytest.raises(AssistCancelled):
        assistant.embed(_image(1), cancel=token)
    assert len(assistant.memory_cache) == 0


def test_a_running_encode_is_cancelled_within_a_fraction_of_a_second(tmp_path: Path) -> None:
    assistant = ClickAssistant(*write_pair(tmp_path, "sam1", slow_steps=60))
    token = CancelToken()
    timer = threading.Timer(0.3, token.cancel)
    started = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(AssistCancelled):
            assistant.embed(_image(1), cancel=token)
    finally:
        timer.cancel()
    assert time.perf_counter() - started < 3.0
    assert len(assistant.memory_cache) == 0
