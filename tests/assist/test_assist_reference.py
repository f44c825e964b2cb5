"""Our pre/post-processing against the reference PyTorch predictor (slow: exports a
random-weight MobileSAM: TinyViT encoder + SAM 1's prompt encoder and mask decoder)."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.assist import Box, ClickAssistant, Point, Prompt

pytestmark = pytest.mark.slow

PROMPTS = [
    Prompt((Point(140, 90),)),
    Prompt((Point(140, 90), Point(60, 150, positive=False))),
    Prompt(box=Box(30, 40, 200, 170)),
    Prompt((Point(100, 100),), Box(30, 40, 200, 170)),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("torch")
    pytest.importorskip("mobile_sam", reason="pip install --no-deps mobilesam-mirror (the assist-bench extra)")
    from tests.assist import real_models

    folder = tmp_path_factory.mktemp("real_assist")
    sam = real_models.build_mobilesam()
    encoder = real_models.export_image_encoder(sam, folder / "encoder.onnx")
    decoder = real_models.export_sam1_decoder(sam, folder / "decoder.onnx")
    return sam, encoder, decoder


def _image(height: int, width: int) -> np.ndarray:
    from tests.conftest import CAMVID

    frames = sorted((CAMVID / "val").glob("*.png")) if (CAMVID / "val").is_dir() else []
    if frames:
        from segstudio.core.imageio import read_image_rgb

        return np.ascontiguousarray(read_image_rgb(frames[0])[:height, :width])
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _reference_arrays(prompt: Prompt) -> dict[str, np.ndarray | None]:
    coords = np.array([(p.x, p.y) for p in prompt.points], np.float32) if prompt.points else None
    labels = np.array([1 if p.positive else 0 for p in prompt.points], np.int32) if prompt.points else None
    box = np.array([prompt.box.x0, prompt.box.y0, prompt.box.x1, prompt.box.y1], np.float32) if prompt.box else None
    return {"point_coords": coords, "point_labels": labels, "box": box}


@pytest.mark.parametrize("shape", [(240, 320), (300, 200)])
def test_masks_match_the_reference_predictor(models, shape: tuple[int, int]) -> None:
    import torch
    from mobile_sam import SamPredictor

    sam, encoder, decoder = models
    image = _image(*shape)
    predictor = SamPredictor(sam)
    with torch.no_grad():
        predictor.set_image(image)
    assistant = ClickAssistant(encoder, decoder, device="cpu")
    embedding = assistant.embed(image)
    reference_embedding = predictor.get_image_embedding().numpy()
    assert np.abs(embedding.arrays["image_embeddings"] - reference_embedding).max() < 1e-2 * (
        np.abs(reference_embedding).max() + 1e-6)
    for prompt in PROMPTS:
        ours = assistant.predict(embedding, prompt)
        with torch.no_grad():
            multi, multi_scores, _ = predictor.predict(**_reference_arrays(prompt), multimask_output=True)
            single, single_scores, _ = predictor.predict(**_reference_arrays(prompt), multimask_output=False)
        references = {0: single[0], 1: multi[0], 2: multi[1], 3: multi[2]}
        scores = {0: single_scores[0], 1: multi_scores[0], 2: multi_scores[1], 3: multi_scores[2]}
        for output, reference in references.items():
            rank = ours.by_output(output)
            agreement = float((ours.mask(rank) == reference).mean())
            assert agreement >= 0.995, (prompt, output, agreement)
            assert ours.candidates[rank].iou == pytest.approx(float(scores[output]), abs=1e-3)
        # the one shown first follows the predictor's rule
        if prompt.is_ambiguous:
            assert ours.candidates[0].output_index == 1 + int(np.argmax(multi_scores))
        else:
            assert ours.candidates[0].output_index == 0
