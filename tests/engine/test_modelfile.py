"""Model files: config round trip, folder / file-pair / config.json paths, smp compatibility,
and clear errors (never a pickle load) for broken or mismatched files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import ModelError
from segstudio.engine.modelfile import ModelConfig, load_model, read_config, save_model
from segstudio.engine.models import ModelSpec, create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_fixtures, any import mode
from model_fixtures import camvid_classes, make_model_file


def test_config_round_trip_keeps_classes_colours_and_normalisation() -> None:
    classes = camvid_classes()
    config = ModelConfig("unet", "resnet18", classes, input_size=(352, 480), mean=(0.5, 0.4, 0.3),
                         std=(0.2, 0.2, 0.25), metrics={"miou": 0.61}, training={"epochs": 3})
    data = json.loads(json.dumps(config.to_dict()))
    assert data["ignore_index"] == 11
    assert data["output_class_ids"] == list(range(11))  # 'Unlabelled' (11) is not an output
    assert data["classes"][3] == {"id": 3, "name": "Road", "color": [128, 64, 128], "ignore": False}
    again = ModelConfig.from_dict(data)
    assert again == config
    assert again.num_classes == 11 and again.divisor == 32


def test_output_ids_follow_trainable_classes_not_positions() -> None:
    classes = ClassTable((ClassDef(255, "void", (0, 0, 0), ignore=True), ClassDef(7, "car", (1, 2, 3)),
                          ClassDef(3, "road", (4, 5, 6))))
    config = ModelConfig("segnet", "vgg16_bn", classes)
    assert config.output_class_ids == (7, 3) and config.num_classes == 2


@pytest.mark.parametrize("target", ["folder", "config", "weights"])
def test_saved_folder_loads_from_folder_config_or_weights_path(tmp_path: Path, target: str) -> None:
    folder = make_model_file(tmp_path / "m", arch="fpn")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    path = {"folder": folder, "config": folder / "config.json", "weights": folder / "model.safetensors"}[target]
    model, config = load_model(path)
    assert config.arch == "fpn" and config.classes == camvid_classes() and config.input_size == (64, 96)
    assert not model.training
    document = json.loads((folder / "config.json").read_text())
    assert document["_model_class"] == "FPN" and document["encoder_weights"] is None
    assert document["segstudio"]["segstudio_version"]


def test_file_pair_and_equal_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = ModelSpec("segnet_basic", num_classes=11)
    model = create_model(spec).eval()
    save_model(tmp_path / "net.safetensors", model, ModelConfig.from_spec(spec, camvid_classes()))
    assert (tmp_path / "net.json").is_file()
    loaded, config = load_model(tmp_path / "net.json")
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert read_config(tmp_path / "net.safetensors") == config


def test_class_count_must_match_the_model() -> None:
    with pytest.raises(ModelError, match="trainable"):
        ModelConfig.from_spec(ModelSpec("unet", num_classes=5), camvid_classes())


def test_mismatched_weights_are_a_clear_error(tmp_path: Path) -> None:
    folder = make_model_file(tmp_path / "m", arch="unet", encoder="resnet18")
    document = json.loads((folder / "config.json").read_text())
    document["segstudio"]["encoder"] = "resnet34"
    (folder / "config.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match="different models"):
        load_model(folder)


def test_broken_files_are_clear_errors(tmp_path: Path) -> None:
    folder = make_model_file(tmp_path / "m", arch="segnet_basic")
    with pytest.raises(ModelError, match="pickled"):
        load_model(tmp_path / "checkpoint.pt")
    (folder / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ModelError, match="safetensors"):
        load_model(folder)
    (folder / "config.json").write_text("{ nope")
    with pytest.raises(ModelError, match="JSON"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({"segstudio": {"arch": "unet"}}))
    with pytest.raises(ModelError, match="incomplete"):
        load_model(folder)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing")


def test_a_plain_smp_folder_loads_with_default_class_names(tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    net = smp.Linknet(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    net.save_pretrained(str(tmp_path / "smp"))
    model, config = load_model(tmp_path / "smp")
    assert config.arch == "linknet" and [c.name for c in config.classes] == ["class_0", "class_1", "class_2"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
