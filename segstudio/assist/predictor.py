"""The click assist: encode an image once, answer each click with the decoder only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segstudio.assist.adapters import Adapter
from segstudio.assist.cache import DiskEmbeddingCache, EmbeddingCache, file_key, image_key
from segstudio.assist.embedding import Candidate, Embedding
from segstudio.assist.errors import AssistError
from segstudio.assist.families import detect_adapter
from segstudio.assist.prompts import Prompt
from segstudio.assist.runtime import (
    CancelToken,
    choose_providers,
    open_session,
    provider_label,
    run_session,
    specs,
    typed_feed,
)


@dataclass(frozen=True)
class AssistResult:
    """The decoder's answer: candidates with the one to show first at index 0, the others
    by predicted IoU (Tab cycles them); masks are made on demand at the image's size."""

    candidates: tuple[Candidate, ...]
    embedding: Embedding = field(repr=False, compare=False)
    adapter: Adapter = field(repr=False, compare=False)
    decode_ms: float = 0.0

    def mask(self, rank: int = 0) -> np.ndarray:
        """Bool HxW mask of the candidate at `rank` (0 = the one to show first)."""
        return self.adapter.mask(self.candidates[rank].logits, self.embedding.geometry)

    def by_output(self, output_index: int) -> int:
        """The rank of the decoder's output `output_index` (as the decoder numbers them)."""
        for rank, candidate in enumerate(self.candidates):
            if candidate.output_index == output_index:
                return rank
        raise AssistError(
            f"the decoder answered {len(self.candidates)} masks (0-{len(self.candidates) - 1}); "
            f"there is no mask {output_index}"
        )

    def feedback(self, rank: int = 0) -> np.ndarray | None:
        """The low-res logits to feed back when refining from the candidate at `rank`."""
        return self.candidates[rank].low_res if self.adapter.takes_mask_input else None


def order_candidates(adapter: Adapter, prompt: Prompt, logits: np.ndarray, ious: np.ndarray,
                     low_res: np.ndarray | None) -> tuple[Candidate, ...]:
    chosen = adapter.choose(prompt, ious)
    others = sorted((i for i in range(len(ious)) if i != chosen), key=lambda i: -float(ious[i]))
    return tuple(
        Candidate(i, float(ious[i]), logits[i], None if low_res is None else low_res[i])
        for i in (chosen, *others)
    )


class ClickAssistant:
    """One encoder/decoder pair: family detected from tensor names, embeddings cached in
    memory (and on disk when given a folder), providers chosen from what is offered."""

    def __init__(self, encoder: str | Path, decoder: str | Path, device: str = "auto",
                 memory_cache: EmbeddingCache | None = None,
                 disk_cache: DiskEmbeddingCache | None = None) -> None:
        providers = choose_providers(device)
        self.encoder_path = Path(encoder)
        self.decoder_path = Path(decoder)
        self._encoder = open_session(encoder, "encoder", providers)
        self._decoder = open_session(decoder, "decoder", providers)
        self._encoder_inputs = specs(self._encoder.get_inputs())
        self._decoder_inputs = specs(self._decoder.get_inputs())
        self.adapter = detect_adapter(
            self._encoder_inputs, specs(self._encoder.get_outputs()),
            self._decoder_inputs, specs(self._decoder.get_outputs()),
        )
        self.model_key = file_key(encoder)
        self.memory_cache = memory_cache if memory_cache is not None else EmbeddingCache()
        self.disk_cache = disk_cache
        self.last_encode_s = 0.0
        self.last_cache_hit = False

    @property
    def family(self) -> str:
        return self.adapter.family

    @property
    def provider(self) -> str:
        """Where the encoder runs ('CUDA', 'CPU', ...), to be shown to the user."""
        return provider_label(self._encoder)

    def cached(self, key: str) -> Embedding | None:
        """The embedding of the image with this key, if either cache holds it."""
        cache_key = (self.model_key, key)
        found = self.memory_cache.get(cache_key)
        if found is None and self.disk_cache is not None:
            found = self.disk_cache.get(cache_key, self.family)
            if found is not None:
                self.memory_cache.put(cache_key, found)
        return found

    def embed(self, image: np.ndarray, key: str | None = None,
              cancel: CancelToken | None = None) -> Embedding:
        """The image's embedding (HxWx3 uint8 RGB), from a cache or by running the encoder;
        `cancel` stops a stale encode (AssistCancelled)."""
        image = _as_rgb(image)
        key = key or image_key(image)
        started = time.perf_counter()
        found = self.cached(key)
        self.last_cache_hit = found is not None
        if found is None:
            feed, geometry = self.adapter.encoder_feed(image)
            outputs = run_session(self._encoder, typed_feed(self._encoder_inputs, feed), cancel)
            found = self.adapter.embedding(
                {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}, geometry)
            self.memory_cache.put((self.model_key, key), found)
            if self.disk_cache is not None:
                self.disk_cache.put((self.model_key, key), found)
        self.last_encode_s = time.perf_counter() - started
        return found

    def predict(self, embedding: Embedding, prompt: Prompt,
                mask_input: np.ndarray | None = None) -> AssistResult:
        """Run the decoder for `prompt` (image pixels); `mask_input` is the previous answer's
        `feedback()` when refining with more clicks."""
        if embedding.family != self.family:
            raise AssistError(f"this embedding was made by a {embedding.family} encoder, not {self.family}")
        g = embedding.geometry
        prompt.check(g.height, g.width)
        started = time.perf_counter()
        feed = self.adapter.decoder_feed(embedding, prompt, mask_input if self.adapter.takes_mask_input else None)
        outputs = run_session(self._decoder, typed_feed(self._decoder_inputs, feed),
                              outputs=self.adapter.decoder_output_names)
        logits, ious, low_res = self.adapter.read(outputs)
        candidates = order_candidates(self.adapter, prompt, logits, ious, low_res)
        return AssistResult(candidates, embedding, self.adapter, (time.perf_counter() - started) * 1000.0)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB from grey, RGBA or RGB uint8 arrays."""
    if image.dtype != np.uint8:
        raise AssistError(f"the assist takes 8-bit images, got {image.dtype}; convert the image to 8-bit RGB")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise AssistError(f"the assist takes RGB images, got an array of shape {image.shape}")
