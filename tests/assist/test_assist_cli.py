"""`segstudio assist` and `segstudio assist-models` with stand-in models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.cli.main import main
from tests.assist.stand_ins import OFFSETS, expected_disc, iou


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    path = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (180, 240, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(folder))
    return folder


def test_assist_writes_the_mask_and_reports_json(pair, image_path: Path, tmp_path: Path, capsys) -> None:
    encoder, decoder = pair("sam1")
    out = tmp_path / "mask.png"
    code = main(["assist", str(image_path), "--encoder", str(encoder), "--decoder", str(decoder),
                 "--point", "120,90", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "SAM 1 / MobileSAM" and report["output_index"] == 2
    assert report["iou"] == pytest.approx(0.95) and report["decode_ms"] > 0 and report["encode_s"] > 0
    mask = np.asarray(Image.open(out))
    assert mask.dtype == np.uint8 and mask.shape == (180, 240) and set(np.unique(mask)) <= {0, 255}
    assert iou(mask == 255, expected_disc(180, 240, "sam1", [(120, 90)], OFFSETS["sam1"][2])) >= 0.97


def test_assist_box_negative_point_and_chosen_index(pair, image_path: Path, tmp_path: Path, capsys) -> None:
    encoder, decoder = pair("sam2")
    out = tmp_path / "mask.png"
    code = main(["assist", str(image_path), "--encoder", str(encoder), "--decoder", str(decoder),
                 "--box", "40,30,200,150", "--point", "120,90,0", "--multimask-index", "0",
                 "--out", str(out), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["output_index"] == 0
    mask = np.asarray(Image.open(out)) == 255
    assert mask[40, 50] and not mask[90, 120] and not mask[10, 10]


def test_assist_errors_are_messages(pair, image_path: Path, tmp_path: Path, capsys) -> None:
    encoder, _ = pair("sam1")
    _, sam2_decoder = pair("sam2")
    base = ["assist", str(image_path), "--out", str(tmp_path / "m.png")]
    assert main([*base, "--encoder", str(encoder), "--decoder", str(sam2_decoder), "--point", "1,1"]) == 2
    assert "SAM 2 decoder but the encoder is a SAM 1" in capsys.readouterr().err
    assert main([*base, "--encoder", str(encoder), "--decoder", str(encoder)]) == 2
    assert "at least one --point" in capsys.readouterr().err
    assert main([*base, "--model", "nope", "--point", "1,1"]) == 2
    assert "no assist model named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_models_add_list_use_remove(pair, image_path: Path, tmp_path: Path, data_dir: Path, capsys) -> None:
    encoder, decoder = pair("efficientsam")
    assert main(["assist-models", "add", "mine", "--encoder", str(encoder), "--decoder", str(decoder)]) == 0
    assert "EfficientSAM" in capsys.readouterr().out
    assert main(["assist-models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["folder"] == str(data_dir / "assist-models")
    assert listing["registered"]["mine"]["family"] == "EfficientSAM"
    edgesam = next(e for e in listing["catalogue"] if e["name"] == "edgesam")
    assert not edgesam["commercial_use"] and edgesam["sha256"]["encoder"] == "not known"
    out = tmp_path / "m.png"
    assert main(["assist", str(image_path), "--model", "mine", "--point", "100,100", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["assist-models", "list"]) == 0
    assert "NOT FOR COMMERCIAL USE" in capsys.readouterr().out
    assert main(["assist-models", "remove", "mine"]) == 0
    assert encoder.is_file()  # added files stay where the user keeps them
    assert main(["assist-models", "add", "bad", "--encoder", str(decoder), "--decoder", str(decoder)]) == 2
    assert "bad" not in json.loads((data_dir / "assist-models" / "models.json").read_text())["models"]


def test_models_download_offline_is_a_message(capsys) -> None:
    code = main(["assist-models", "download", "efficientsam-ti"])
    err = capsys.readouterr().err
    if "HTTP" in err:
        pytest.skip("this machine is online")
    assert code == 2 and "offline" in err
    assert main(["assist-models", "download", "nothing"]) == 2
    assert "not in the catalogue" in capsys.readouterr().err
