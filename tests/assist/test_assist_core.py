"""The assist core driven by stand-in models of every family: geometry, prompts, choice."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from segstudio.assist import Box, ClickAssistant, Point, Prompt
from segstudio.assist.errors import AssistError
from segstudio.assist.prompts import parse_box, parse_point
from tests.assist.stand_ins import OFFSETS, RADIUS, expected_disc, iou

SHAPES = {"portrait": (300, 200), "landscape": (240, 360), "square": (256, 256)}
FAMILIES = ("sam1", "sam1_inside", "sam1_x", "sam2", "efficientsam", "edgesam")


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _base(family: str) -> str:
    return "sam1" if family.startswith("sam1") else family


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_one_click_gives_the_disc_of_the_best_alternative(pair, family: str, shape: str) -> None:
    height, width = SHAPES[shape]
    assistant = ClickAssistant(*pair(family))
    embedding = assistant.embed(_image(height, width))
    click = (width * 0.4, height * 0.55)
    result = assistant.predict(embedding, Prompt((Point(*click),)))
    chosen = result.candidates[0].output_index
    base = _base(family)
    expected = expected_disc(height, width, base, [click], OFFSETS[base][chosen])
    mask = result.mask()
    assert mask.shape == (height, width) and mask.dtype == bool
    assert iou(mask, expected) >= 0.97


def test_sam1_rule_one_click_best_alternative_else_single_mask_answer(pair) -> None:
    assistant = ClickAssistant(*pair("sam1"))
    embedding = assistant.embed(_image(240, 360))
    one = assistant.predict(embedding, Prompt((Point(100, 100),)))
    # IoUs (0.80, 0.70, 0.95, 0.60): output 2 is the best alternative, then by IoU
    assert [c.output_index for c in one.candidates] == [2, 0, 1, 3]
    two = assistant.predict(embedding, Prompt((Point(100, 100), Point(200, 120))))
    assert [c.output_index for c in two.candidates] == [0, 2, 1, 3]
    boxed = assistant.predict(embedding, Prompt(box=Box(50, 40, 150, 120)))
    assert boxed.candidates[0].output_index == 0
    assert boxed.by_output(3) == 3 and boxed.candidates[3].iou == pytest.approx(0.60)
    with pytest.raises(AssistError, match="no mask 7"):
        boxed.by_output(7)


@pytest.mark.parametrize("family", ["sam2", "efficientsam"])
def test_other_families_show_the_best_predicted_iou_first(pair, family: str) -> None:
    assistant = ClickAssistant(*pair(family))
    result = assistant.predict(assistant.embed(_image(200, 300)), Prompt((Point(50, 60), Point(90, 80))))
    ious = [c.iou for c in result.candidates]
    assert ious == sorted(ious, reverse=True)


@pytest.mark.parametrize("family", ["sam1", "sam2", "efficientsam", "edgesam"])
def test_box_gives_the_box(pair, family: str) -> None:
    height, width = 240, 360
    assistant = ClickAssistant(*pair(family))
    box = Box(200, 150, 80, 60)  # corners in any order
    result = assistant.predict(assistant.embed(_image(height, width)), Prompt(box=box))
    rank = result.by_output(0)  # output 0 is the box itself, not grown
    expected = np.zeros((height, width), bool)
    expected[60:150, 80:200] = True
    assert iou(result.mask(rank), expected) >= 0.96


@pytest.mark.parametrize("family", ["sam1", "sam2", "efficientsam", "edgesam"])
def test_negative_click_cuts_out(pair, family: str) -> None:
    height, width = 240, 360
    base = _base(family)
    assistant = ClickAssistant(*pair(family))
    positive, negative = (150.0, 120.0), (180.0, 120.0)
    result = assistant.predict(assistant.embed(_image(height, width)),
                               Prompt((Point(*positive), Point(*negative, positive=False))))
    rank = result.by_output(0)
    expected = expected_disc(height, width, base, [positive]) & ~expected_disc(height, width, base, [negative])
    mask = result.mask(rank)
    assert iou(mask, expected) >= 0.95
    assert not mask[120, 180] and mask[120, 120]


@pytest.mark.parametrize("family", ["sam1", "sam2"])
def test_refinement_feeds_the_previous_low_res_mask_back(pair, family: str) -> None:
    height, width = 300, 200
    assistant = ClickAssistant(*pair(family))
    embedding = assistant.embed(_image(height, width))
    first = assistant.predict(embedding, Prompt(box=Box(20, 20, 80, 80)))
    again = Prompt((Point(150, 240),))
    refined = assistant.predict(embedding, again, first.feedback(first.by_output(0)))
    fresh = assistant.predict(embedding, again)
    # the stand-in keeps what is fed back: the refined answer holds the first box as well
    assert refined.mask(refined.by_output(0))[50, 50]
    assert not fresh.mask(fresh.by_output(0))[50, 50]
    assert refined.mask(refined.by_output(0))[240, 150]


def test_our_post_processing_not_the_decoders_masks_output(pair) -> None:
    """The stand-in's `masks` output stretches the padded square like the PyPI 1.0 exports;
    on a landscape image it is wrong and ours is right."""
    height, width = 240, 480
    encoder, decoder = pair("sam1")
    assistant = ClickAssistant(encoder, decoder)
    embedding = assistant.embed(_image(height, width))
    prompt = Prompt((Point(300, 60), Point(300, 60)))  # two clicks: output 0
    ours = assistant.predict(embedding, prompt).mask()
    expected = expected_disc(height, width, "sam1", [(300, 60)])
    session = ort.InferenceSession(str(decoder), providers=["CPUExecutionProvider"])
    feed = assistant.adapter.decoder_feed(embedding, prompt, None)
    naive = session.run(["masks"], feed)[0][0, 0] > 0
    assert iou(ours, expected) >= 0.97
    assert iou(naive, expected) < 0.8


def test_variants_single_mask_and_integer_image_size(stand_in_dir) -> None:
    from onnx import TensorProto

    from tests.assist.stand_ins import sam1_decoder, sam1_encoder

    encoder = sam1_encoder(stand_in_dir / "v.encoder.onnx")
    decoder = sam1_decoder(stand_in_dir / "v.decoder.onnx", orig_size_type=TensorProto.INT64, multimask=False)
    assistant = ClickAssistant(encoder, decoder)
    result = assistant.predict(assistant.embed(_image(100, 150)), Prompt((Point(75, 50),)))
    assert len(result.candidates) == 1
    assert iou(result.mask(), expected_disc(100, 150, "sam1", [(75, 50)])) >= 0.95


def test_efficientsam_uses_at_most_six_points(pair) -> None:
    assistant = ClickAssistant(*pair("efficientsam"))
    embedding = assistant.embed(_image(200, 200))
    clicks = tuple(Point(20 + 25 * i, 100) for i in range(7))
    result = assistant.predict(embedding, Prompt(clicks))
    mask = result.mask(result.by_output(0))
    assert mask[100, 170] and not mask[100, 0]  # latest six kept, the first dropped
    radius = RADIUS["efficientsam"]
    assert mask[100, int(20 + radius + 26)]  # second click's disc


def test_prompts_outside_the_image_and_empty_prompts_are_refused(pair) -> None:
    assistant = ClickAssistant(*pair("sam1"))
    embedding = assistant.embed(_image(100, 100))
    with pytest.raises(AssistError, match="outside the 100x100 image"):
        assistant.predict(embedding, Prompt((Point(150, 10),)))
    with pytest.raises(AssistError, match="at least one click"):
        assistant.predict(embedding, Prompt())


def test_grey_and_rgba_images_are_taken(pair) -> None:
    assistant = ClickAssistant(*pair("sam1"))
    grey = assistant.embed(np.full((80, 90), 128, np.uint8))
    rgba = assistant.embed(np.full((80, 90, 4), 128, np.uint8))
    assert grey.geometry == rgba.geometry
    with pytest.raises(AssistError, match="8-bit"):
        assistant.embed(np.zeros((8, 8, 3), np.float32))


def test_cli_style_point_and_box_parsing() -> None:
    assert parse_point("10,20") == Point(10, 20, True)
    assert parse_point("10.5, 20,0") == Point(10.5, 20, False)
    assert parse_box("1,2,30,40") == Box(1, 2, 30, 40)
    for bad in ("10", "1,2,5", "a,b"):
        with pytest.raises(AssistError, match="--point"):
            parse_point(bad)
    with pytest.raises(AssistError, match="--box"):
        parse_box("1,2,1,40")
