"""Bad model files and providers: each a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from segstudio.assist import ClickAssistant, choose_providers
from segstudio.assist.errors import AssistError
from tests.assist.stand_ins import foreign_decoder


def test_a_file_that_is_not_onnx_is_named(pair, tmp_path: Path) -> None:
    encoder, _ = pair("sam1")
    bogus = tmp_path / "decoder.onnx"
    bogus.write_bytes(b"<html>Rate limit exceeded</html>")
    with pytest.raises(AssistError, match=r"decoder\.onnx is not a usable ONNX decoder"):
        ClickAssistant(encoder, bogus)


def test_a_missing_file_is_named(pair, tmp_path: Path) -> None:
    _, decoder = pair("sam1")
    with pytest.raises(AssistError, match="encoder file .*missing.onnx does not exist"):
        ClickAssistant(tmp_path / "missing.onnx", decoder)


def test_a_decoder_of_no_family_lists_its_tensors_and_the_families(pair, tmp_path: Path) -> None:
    encoder, _ = pair("sam1")
    with pytest.raises(AssistError) as caught:
        ClickAssistant(encoder, foreign_decoder(tmp_path / "other.onnx"))
    message = str(caught.value)
    assert "takes features" in message and "gives scores" in message
    for family in ("SAM 1", "SAM 2", "EfficientSAM", "EdgeSAM"):
        assert family in message


@pytest.mark.parametrize(("encoder_family", "decoder_family", "expected"), [
    ("sam2", "sam1", "SAM 1 / MobileSAM decoder but the encoder is a SAM 2 encoder"),
    ("sam1", "sam2", "SAM 2 decoder but the encoder is a SAM 1 / MobileSAM encoder"),
    ("efficientsam", "sam1", "SAM 1 / MobileSAM decoder but the encoder is a EfficientSAM encoder"),
])
def test_encoder_and_decoder_of_different_families(pair, encoder_family: str, decoder_family: str,
                                                   expected: str) -> None:
    with pytest.raises(AssistError, match=expected):
        ClickAssistant(pair(encoder_family)[0], pair(decoder_family)[1])


def test_a_decoder_given_as_the_encoder_is_explained(pair) -> None:
    _, decoder = pair("sam1")
    with pytest.raises(AssistError, match="no supported encoder"):
        ClickAssistant(decoder, decoder)


def test_providers_end_with_cpu_and_the_one_used_is_reported(pair) -> None:
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(AssistError, match="not offered"):
        choose_providers("tpu")
    assistant = ClickAssistant(*pair("sam1"), device="cpu")
    assert assistant.provider == "CPU"
