"""Which model family an encoder/decoder pair belongs to, from the tensor names alone."""

from __future__ import annotations

from dataclasses import dataclass

from segstudio.assist.adapters import (
    Adapter,
    EdgeSamAdapter,
    EfficientSamAdapter,
    Sam1Adapter,
    Sam2Adapter,
)
from segstudio.assist.errors import AssistError
from segstudio.assist.runtime import TensorSpec


@dataclass(frozen=True)
class FamilySignature:
    """The tensor names that identify a family's decoder and its matching encoder."""

    adapter: type[Adapter]
    decoder_inputs: frozenset[str]
    decoder_outputs: frozenset[str]
    encoder_inputs: tuple[frozenset[str], ...]  # any one of these sets
    encoder_outputs: frozenset[str]  # all of these, or one output when empty


_SAM1_ENCODER_INPUTS = (frozenset({"image"}), frozenset({"x"}), frozenset({"input_image"}))

SIGNATURES = (
    FamilySignature(
        Sam1Adapter,
        frozenset({"image_embeddings", "point_coords", "point_labels", "mask_input",
                   "has_mask_input", "orig_im_size"}),
        frozenset({"iou_predictions", "low_res_masks"}),
        _SAM1_ENCODER_INPUTS, frozenset(),
    ),
    FamilySignature(
        Sam2Adapter,
        frozenset({"image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords",
                   "point_labels", "mask_input", "has_mask_input"}),
        frozenset({"masks", "iou_predictions"}),
        (frozenset({"image"}),), frozenset({"image_embed", "high_res_feats_0", "high_res_feats_1"}),
    ),
    FamilySignature(
        EfficientSamAdapter,
        frozenset({"image_embeddings", "batched_point_coords", "batched_point_labels", "orig_im_size"}),
        frozenset(),
        (frozenset({"batched_images"}),), frozenset(),
    ),
    FamilySignature(
        EdgeSamAdapter,
        frozenset({"image_embeddings", "point_coords", "point_labels"}),
        frozenset({"scores", "masks"}),
        _SAM1_ENCODER_INPUTS, frozenset(),
    ),
)
SUPPORTED = ("SAM 1 / SAM-HQ-style / MobileSAM (facebookresearch decoder layout)",
             "SAM 2 / 2.1 (samexporter layout)", "EfficientSAM", "EdgeSAM")


def _names(tensors: dict[str, TensorSpec]) -> str:
    return ", ".join(tensors) or "none"


def _decoder_matches(sig: FamilySignature, inputs: dict[str, TensorSpec],
                     outputs: dict[str, TensorSpec]) -> bool:
    if sig.adapter is EdgeSamAdapter:  # exactly three inputs: SAM 1's are a superset
        return set(inputs) == sig.decoder_inputs and sig.decoder_outputs <= set(outputs)
    return sig.decoder_inputs <= set(inputs) and sig.decoder_outputs <= set(outputs)


def _encoder_family(inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec]) -> str | None:
    for sig in SIGNATURES:
        if set(inputs) in sig.encoder_inputs and sig.encoder_outputs <= set(outputs) and (
            sig.encoder_outputs or len(outputs) == 1 or "image_embeddings" in outputs
        ):
            return sig.adapter.family
    return None


def detect_adapter(encoder_inputs: dict[str, TensorSpec], encoder_outputs: dict[str, TensorSpec],
                   decoder_inputs: dict[str, TensorSpec], decoder_outputs: dict[str, TensorSpec]) -> Adapter:
    """The adapter for this pair, or AssistError naming the tensors found and the families
    supported (also when encoder and decoder come from different families)."""
    decoder_sig = next((s for s in SIGNATURES if _decoder_matches(s, decoder_inputs, decoder_outputs)), None)
    if decoder_sig is None:
        raise AssistError(
            f"the decoder matches no supported model family: it takes {_names(decoder_inputs)} "
            f"and gives {_names(decoder_outputs)}. Supported: {'; '.join(SUPPORTED)}. "
            "Check that you picked the decoder file (not the encoder) of a supported export."
        )
    encoder_ok = set(encoder_inputs) in decoder_sig.encoder_inputs and (
        decoder_sig.encoder_outputs <= set(encoder_outputs)
        if decoder_sig.encoder_outputs else len(encoder_outputs) == 1 or "image_embeddings" in encoder_outputs
    )
    if not encoder_ok:
        found = _encoder_family(encoder_inputs, encoder_outputs)
        what = f"a {found} encoder" if found else (
            f"a file that is no supported encoder (takes {_names(encoder_inputs)}, "
            f"gives {_names(encoder_outputs)})")
        raise AssistError(
            f"the decoder is a {decoder_sig.adapter.family} decoder but the encoder is {what}; "
            "pick the encoder and decoder of the same model (both files come from one export)"
        )
    return decoder_sig.adapter(encoder_inputs, encoder_outputs, decoder_inputs, decoder_outputs)
