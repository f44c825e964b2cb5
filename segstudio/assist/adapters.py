"""One adapter per model family: how to feed its encoder and decoder and read the answer.

Chosen by families.detect_adapter from the tensor names the sessions report, never from
file names. Every coordinate the caller gives is in image pixels.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from segstudio.assist import postprocess as pp
from segstudio.assist.embedding import Embedding, Geometry
from segstudio.assist.errors import AssistError
from segstudio.assist.prompts import Prompt
from segstudio.assist.runtime import TensorSpec


class Adapter:
    """Base: a family's pre-processing, decoder feed, output reading and post-processing."""

    family: ClassVar[str] = ""
    takes_mask_input: ClassVar[bool] = False
    # decoder outputs to compute (None: all); onnxruntime skips the nodes of the others
    decoder_output_names: ClassVar[tuple[str, ...] | None] = None
    max_points: ClassVar[int | None] = None

    def __init__(self, encoder_inputs: dict[str, TensorSpec], encoder_outputs: dict[str, TensorSpec],
                 decoder_inputs: dict[str, TensorSpec], decoder_outputs: dict[str, TensorSpec]) -> None:
        self.encoder_inputs = encoder_inputs
        self.encoder_outputs = encoder_outputs
        self.decoder_inputs = decoder_inputs
        self.decoder_outputs = decoder_outputs

    def encoder_feed(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        raise NotImplementedError

    def embedding(self, outputs: dict[str, np.ndarray], geometry: Geometry) -> Embedding:
        """Keep the encoder outputs under the decoder's input names."""
        return Embedding(self.family, geometry, {name: outputs[name] for name in self.embedding_names()})

    def embedding_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def decoder_feed(self, embedding: Embedding, prompt: Prompt,
                     mask_input: np.ndarray | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def read(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(logits [K,h,w], predicted IoUs [K], low-res logits to feed back [K,256,256] or None)."""
        raise NotImplementedError

    def mask(self, logits: np.ndarray, geometry: Geometry) -> np.ndarray:
        raise NotImplementedError

    def choose(self, prompt: Prompt, ious: np.ndarray) -> int:
        """Output index to show first: the best predicted IoU unless a family says otherwise."""
        return int(np.argmax(ious))


class Sam1Adapter(Adapter):
    """SAM 1, SAM-HQ-style and MobileSAM exports (facebookresearch's ONNX decoder layout),
    with either the plain encoder (`image`/`x` [1,3,1024,1024]) or one with pre-processing
    inside (`input_image` [H,W,3], RGB 0-255, already resized)."""

    family = "SAM 1 / MobileSAM"
    takes_mask_input = True
    decoder_output_names = ("iou_predictions", "low_res_masks")  # not the full-size `masks`

    def __init__(self, *args: dict[str, TensorSpec]) -> None:
        super().__init__(*args)
        self.input_name = next(iter(self.encoder_inputs))
        self.preprocessing_inside = len(self.encoder_inputs[self.input_name].shape) == 3
        self.output_name = ("image_embeddings" if "image_embeddings" in self.encoder_outputs
                            else next(iter(self.encoder_outputs)))

    def encoder_feed(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        geometry = pp.longest_side_geometry(*image.shape[:2])
        if self.preprocessing_inside:
            value = pp.resize_rgb(image, geometry.frame_height, geometry.frame_width).astype(np.float32)
        else:
            value = pp.sam1_input(image, geometry)
        return {self.input_name: value}, geometry

    def embedding(self, outputs: dict[str, np.ndarray], geometry: Geometry) -> Embedding:
        return Embedding(self.family, geometry, {"image_embeddings": outputs[self.output_name]})

    def embedding_names(self) -> tuple[str, ...]:
        return ("image_embeddings",)

    def _frame_points(self, prompt: Prompt, geometry: Geometry, pad: bool) -> tuple[np.ndarray, np.ndarray]:
        coords, labels = prompt.arrays(pad=pad)
        scale = np.array([geometry.frame_width / geometry.width,
                          geometry.frame_height / geometry.height], dtype=np.float32)
        padding = labels == -1
        coords = coords * scale
        coords[padding] = 0.0
        return coords, labels

    def decoder_feed(self, embedding: Embedding, prompt: Prompt,
                     mask_input: np.ndarray | None) -> dict[str, np.ndarray]:
        g = embedding.geometry
        coords, labels = self._frame_points(prompt, g, pad=True)
        has_mask = mask_input is not None
        return {
            "image_embeddings": embedding.arrays["image_embeddings"],
            "point_coords": coords[None],
            "point_labels": labels[None],
            "mask_input": (mask_input if has_mask else np.zeros((256, 256), np.float32))[None, None],
            "has_mask_input": np.array([1.0 if has_mask else 0.0], dtype=np.float32),
            "orig_im_size": np.array([g.height, g.width], dtype=np.float32),
        }

    def read(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        low_res = outputs["low_res_masks"][0]
        return low_res, outputs["iou_predictions"][0].astype(np.float32), low_res

    def mask(self, logits: np.ndarray, geometry: Geometry) -> np.ndarray:
        return pp.sam1_mask(logits, geometry)

    def choose(self, prompt: Prompt, ious: np.ndarray) -> int:
        # SAM's predictor: one click is ambiguous, so the best alternative (outputs 1-3);
        # more clicks or a box: output 0, the single-mask answer.
        if len(ious) == 4 and prompt.is_ambiguous:
            return 1 + int(np.argmax(ious[1:]))
        return 0


class EdgeSamAdapter(Sam1Adapter):
    """EdgeSAM: SAM 1's encoder interface; its decoder takes only embeddings, points and
    labels (no padding point, no mask input) and returns `scores` and low-res `masks`."""

    family = "EdgeSAM"
    takes_mask_input = False
    decoder_output_names = None

    def decoder_feed(self, embedding: Embedding, prompt: Prompt,
                     mask_input: np.ndarray | None) -> dict[str, np.ndarray]:
        coords, labels = self._frame_points(prompt, embedding.geometry, pad=False)
        return {"image_embeddings": embedding.arrays["image_embeddings"],
                "point_coords": coords[None], "point_labels": labels[None]}

    def read(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return outputs["masks"][0], outputs["scores"][0].astype(np.float32), None


class Sam2Adapter(Adapter):
    """SAM 2 / 2.1 as samexporter writes them: the image stretched to 1024x1024, three
    encoder outputs, a decoder answering three low-res masks over the stretched image."""

    family = "SAM 2"
    takes_mask_input = True

    def encoder_feed(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        h, w = image.shape[:2]
        return {next(iter(self.encoder_inputs)): pp.sam2_input(image)}, Geometry(h, w, pp.SAM_SIDE, pp.SAM_SIDE)

    def embedding_names(self) -> tuple[str, ...]:
        return ("image_embed", "high_res_feats_0", "high_res_feats_1")

    def decoder_feed(self, embedding: Embedding, prompt: Prompt,
                     mask_input: np.ndarray | None) -> dict[str, np.ndarray]:
        g = embedding.geometry
        coords, labels = prompt.arrays(pad=True)
        coords = coords * np.array([pp.SAM_SIDE / g.width, pp.SAM_SIDE / g.height], dtype=np.float32)
        coords[labels == -1] = 0.0
        has_mask = mask_input is not None
        feed = dict(embedding.arrays)
        feed.update({
            "point_coords": coords[None],
            "point_labels": labels[None],
            "mask_input": (mask_input if has_mask else np.zeros((256, 256), np.float32))[None, None],
            "has_mask_input": np.array([1.0 if has_mask else 0.0], dtype=np.float32),
        })
        return feed

    def read(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        masks = outputs["masks"][0]
        return masks, outputs["iou_predictions"][0].astype(np.float32), masks

    def mask(self, logits: np.ndarray, geometry: Geometry) -> np.ndarray:
        return pp.stretched_mask(logits, geometry)


class EfficientSamAdapter(Adapter):
    """EfficientSAM: the encoder takes the image as it is (/255), the decoder takes points
    in image pixels (at most 6 used) and answers masks at the image's size."""

    family = "EfficientSAM"
    max_points = 6

    def encoder_feed(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        h, w = image.shape[:2]
        value = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        return {"batched_images": value}, Geometry(h, w, h, w)

    def embedding(self, outputs: dict[str, np.ndarray], geometry: Geometry) -> Embedding:
        return Embedding(self.family, geometry, {"image_embeddings": next(iter(outputs.values()))})

    def embedding_names(self) -> tuple[str, ...]:
        return ("image_embeddings",)

    def decoder_feed(self, embedding: Embedding, prompt: Prompt,
                     mask_input: np.ndarray | None) -> dict[str, np.ndarray]:
        if len(prompt.points) + (2 if prompt.box else 0) > self.max_points:
            # EfficientSAM uses at most 6 points: keep the box and the latest clicks.
            keep = self.max_points - (2 if prompt.box else 0)
            prompt = Prompt(prompt.points[-keep:] if keep > 0 else (), prompt.box)
        coords, labels = prompt.arrays(pad=False)
        g = embedding.geometry
        return {
            "image_embeddings": embedding.arrays["image_embeddings"],
            "batched_point_coords": coords[None, None],
            "batched_point_labels": labels[None, None],
            "orig_im_size": np.array([g.height, g.width], dtype=np.int64),
        }

    def read(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        masks = next(v for v in outputs.values() if v.ndim == 5)[0, 0]
        ious = next(v for k, v in outputs.items() if "iou" in k)[0, 0].astype(np.float32)
        return masks, ious, None

    def mask(self, logits: np.ndarray, geometry: Geometry) -> np.ndarray:
        if logits.shape != (geometry.height, geometry.width):
            raise AssistError(
                f"the EfficientSAM decoder answered a {logits.shape[1]}x{logits.shape[0]} mask for a "
                f"{geometry.width}x{geometry.height} image; use the decoder exported with this encoder"
            )
        return logits > 0.0
