"""Real-architecture, random-weight assist models exported to ONNX (torch needed; for the
slow test and benchmarks/assist.py only).

Uses the PyPI packages `segment-anything` (SAM ViT-B, its ONNX decoder wrapper) and
`mobilesam-mirror` (MobileSAM's TinyViT encoder); both build without a checkpoint, so
nothing is downloaded. Install them with `pip install --no-deps segment-anything
mobilesam-mirror` (the `assist-bench` extra).
"""

from __future__ import annotations

import warnings
from pathlib import Path

OPSET = 17


def _torch():
    import torch

    torch.manual_seed(0)
    return torch


def build_sam_vit_b():
    """SAM ViT-B with random weights (segment-anything builds it without a checkpoint)."""
    _torch()
    from segment_anything import sam_model_registry

    return sam_model_registry["vit_b"](checkpoint=None).eval()


def build_mobilesam():
    """MobileSAM (TinyViT encoder + SAM's prompt encoder and decoder), random weights."""
    _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry

        return sam_model_registry["vit_t"](checkpoint=None).eval()


def _export(module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict | None = None) -> Path:
    torch = _torch()
    # a new wrapper module is in training mode, and export restores that mode afterwards,
    # which would put the shared SAM model (BatchNorm, TinyViT's attention biases) in training
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
    return path


def _decoder_dummies(torch, count: int = 3) -> tuple:
    return (
        torch.randn(1, 256, 64, 64),
        torch.randint(0, 1024, (1, count, 2)).float(),
        torch.randint(0, 4, (1, count)).float(),
    )


def export_sam1_decoder(sam, path: Path) -> Path:
    """The decoder through segment-anything's own SamOnnxModel, all four masks."""
    torch = _torch()
    try:
        from segment_anything.utils.onnx import SamOnnxModel
    except ImportError:  # mobile_sam carries the same wrapper
        from mobile_sam.utils.onnx import SamOnnxModel
    wrapper = SamOnnxModel(sam, return_single_mask=False)
    embeddings, coords, labels = _decoder_dummies(torch)
    args = (embeddings, coords, labels, torch.randn(1, 1, 256, 256), torch.tensor([1.0]),
            torch.tensor([1500.0, 2250.0]))
    points = {1: "num_points"}
    return _export(wrapper, args, path,
                   ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"],
                   ["masks", "iou_predictions", "low_res_masks"],
                   {"point_coords": points, "point_labels": points})


class _ImageEncoder:
    """`image` [1,3,1024,1024] (normalised, padded) -> `image_embeddings` [1,256,64,64]."""

    def __new__(cls, sam):
        torch = _torch()

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = sam.image_encoder

            def forward(self, image):
                return self.encoder(image)

        return Encoder().eval()


def export_image_encoder(sam, path: Path) -> Path:
    torch = _torch()
    return _export(_ImageEncoder(sam), (torch.randn(1, 3, 1024, 1024),), path, ["image"], ["image_embeddings"])


def export_sam2_layout_decoder(sam, path: Path) -> Path:
    """A decoder with samexporter's SAM 2 interface, built from SAM's prompt encoder and
    two-way transformer plus SAM 2's high-resolution skip features added while upscaling
    (random weights: for latency, not for answers)."""
    torch = _torch()
    try:
        from segment_anything.utils.onnx import SamOnnxModel
    except ImportError:
        from mobile_sam.utils.onnx import SamOnnxModel
    base = SamOnnxModel(sam, return_single_mask=False)
    decoder = sam.mask_decoder

    class Sam2Layout(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base

        def forward(self, image_embed, feats_0, feats_1, point_coords, point_labels, mask_input, has_mask_input):
            sparse = self.base._embed_points(point_coords, point_labels)
            dense = self.base._embed_masks(mask_input, has_mask_input)
            tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)[None]
            tokens = torch.cat((tokens, sparse), dim=1)
            src = image_embed + dense
            hs, src = decoder.transformer(src, sam.prompt_encoder.get_dense_pe(), tokens)
            src = src.transpose(1, 2).reshape(1, 256, 64, 64)
            up = decoder.output_upscaling
            upscaled = up[2](up[1](up[0](src) + feats_1))
            upscaled = up[4](up[3](upscaled) + feats_0)
            hyper = torch.stack([decoder.output_hypernetworks_mlps[i](hs[:, 1 + i, :]) for i in range(4)], dim=1)
            masks = (hyper @ upscaled.reshape(1, 32, 256 * 256)).reshape(1, 4, 256, 256)
            ious = decoder.iou_prediction_head(hs[:, 0, :])
            return masks[:, 1:], ious[:, 1:]

    embeddings, coords, labels = _decoder_dummies(torch)
    args = (embeddings, torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128), coords, labels,
            torch.randn(1, 1, 256, 256), torch.tensor([1.0]))
    points = {1: "num_points"}
    return _export(Sam2Layout().eval(), args, path,
                   ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels",
                    "mask_input", "has_mask_input"],
                   ["masks", "iou_predictions"], {"point_coords": points, "point_labels": points})


def export_sam2_layout_encoder_stand_in(path: Path) -> Path:
    """The matching encoder interface (not the Hiera architecture): the decoder benchmark
    needs only embeddings of the right shapes."""
    from tests.assist.stand_ins import sam2_encoder

    return sam2_encoder(path)
