"""Model registry: every architecture builds, trains a step, saves and reloads; SegNet's pooling
indices and FCN's skips really work; names, errors and pretrained fallbacks."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.classes import ClassTable
from segstudio.core.errors import ModelError
from segstudio.engine.modelfile import ModelConfig, load_model, save_model
from segstudio.engine.models import (
    ARCHITECTURES,
    ModelSpec,
    available_architectures,
    create_model,
    is_smp_architecture,
    required_divisor,
)
from segstudio.engine.models.fcn import FCN, VggFeatures, learned_upsample
from segstudio.engine.models.segnet import SegNet, SegNetBasic, scatter_unpool

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_fixtures, any import mode
from model_fixtures import LIGHT_ENCODER

FOUR_CLASSES = ClassTable.from_names(["background", "road", "car", "person", "void"], ignore="void")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_architecture_trains_saves_and_reloads(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = ModelSpec(arch, encoder=LIGHT_ENCODER.get(arch, "resnet18"), num_classes=4)
    model = create_model(spec)
    divisor = required_divisor(spec)
    # PAN's pyramid attention pools its stride-16 map three times more: it needs >= 128 px.
    height, width = (128, 128) if arch == "pan" else (2 * divisor, 3 * divisor)
    x = torch.randn(2, 3, height, width)  # batch 2: batch norm after global pooling

    model.train()
    logits = model(x)
    assert logits.shape == (2, 4, height, width)
    F.cross_entropy(logits, torch.randint(0, 4, (2, height, width))).backward()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0

    model.eval()
    folder = tmp_path / arch
    save_model(folder, model, ModelConfig.from_spec(spec, FOUR_CLASSES, input_size=(64, 96)))
    loaded, config = load_model(folder)
    assert config.arch == spec.arch and config.encoder == spec.encoder and config.num_classes == 4
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-6)
        if is_smp_architecture(arch):  # the same folder is a valid smp model folder
            import segmentation_models_pytorch as smp

            torch.testing.assert_close(smp.from_pretrained(str(folder)).eval()(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "canonical"), [
    ("UNet", "unet"), ("unet++", "unetplusplus"), ("Unet_PlusPlus", "unetplusplus"),
    ("DeepLabV3+", "deeplabv3plus"), ("deeplab-v3-plus", "deeplabv3plus"), ("fcn8s", "fcn8s"),
    ("FCN-8s", "fcn8s"), ("fcn_16s", "fcn16s"), ("FCN32", "fcn32s"), ("SegNet-Basic", "segnet_basic"),
    ("MAnet", "manet"), ("UPerNet", "upernet"), ("SegFormer", "segformer"),
])
def test_names_are_case_insensitive_with_aliases(name: str, canonical: str) -> None:
    assert ModelSpec(name, num_classes=2).arch == canonical


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ModelError) as info:
        ModelSpec("unet3000", num_classes=2)
    message = str(info.value)
    assert "unet3000" in message
    assert all(arch in message for arch in available_architectures())


def test_unknown_encoder_lists_the_valid_ones() -> None:
    with pytest.raises(ModelError) as info:
        create_model(ModelSpec("fpn", encoder="resnet999", num_classes=2))
    message = str(info.value)
    assert "resnet999" in message and "resnet34" in message and "mit_b0" in message
    with pytest.raises(ModelError, match="vgg16"):
        create_model(ModelSpec("fcn8s", encoder="nope", num_classes=2))


def test_segnet_basic_needs_only_a_multiple_of_16() -> None:
    spec = ModelSpec("segnet_basic", num_classes=3)
    assert required_divisor(spec) == 16 and required_divisor(ModelSpec("unet", num_classes=3)) == 32
    model = create_model(spec).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 48, 80)).shape == (1, 3, 48, 80)


def _record_pool_and_unpool(model: nn.Module) -> tuple[list, list]:
    pools: list = []
    unpools: list = []
    model.encoder.pool.register_forward_hook(lambda m, i, o: pools.append((i[0], o[0], o[1])))
    for stage in model.decoder:
        stage.unpool.register_forward_hook(lambda m, i, o: unpools.append((i[0], i[1], o)))
    return pools, unpools


@pytest.mark.parametrize("cls", [SegNetBasic, SegNet])
def test_segnet_unpools_exactly_at_the_encoder_argmax(cls: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = cls(num_classes=3).eval()
    pools, unpools = _record_pool_and_unpool(model)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert len(pools) == len(unpools) == len(model.decoder)
    # Decoder stage k unpools with the indices of encoder pool -(k+1).
    for (pool_in, _, indices), (values, used_indices, unpooled) in zip(reversed(pools), unpools):
        assert torch.equal(used_indices, indices)
        n, c, h, w = unpooled.shape
        flat = unpooled.reshape(n, c, h * w)
        positions = indices.reshape(n, c, -1)
        # the decoder's values sit exactly at the argmax positions of the encoder's pooling ...
        torch.testing.assert_close(flat.gather(2, positions), values.reshape(n, c, -1))
        # ... and everything else is zero
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter(2, positions, True)
        assert not flat[~mask].any()
        # those positions are where the encoder's maxima were
        assert torch.equal(pool_in.reshape(n, c, -1).gather(2, positions),
                           F.max_pool2d(pool_in, 2, 2).reshape(n, c, -1))


def test_segnet_output_depends_on_the_pooling_indices() -> None:
    torch.manual_seed(0)
    model = SegNetBasic(num_classes=3).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        stage = model.decoder[-1]  # the last stage unpools with the first pool's indices
        original = stage.forward

        def shifted(values, indices, size):  # same values, indices moved to another cell
            return original(values, indices ^ 1, size)

        stage.forward = shifted
        changed = model(x)
    assert (reference - changed).abs().max() > 1e-3


def test_scatter_unpool_equals_max_unpool() -> None:
    x = torch.randn(2, 5, 12, 10)
    values, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    expected = F.max_unpool2d(values, indices, 2, 2, output_size=x.shape[-2:])
    assert torch.equal(scatter_unpool(values, indices, x.shape), expected)


def test_segnet_is_vgg16_mirrored() -> None:
    model = SegNet(num_classes=5)
    encoder_convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    decoder_convs = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d)] + [model.classifier]
    assert len(encoder_convs) == 13 and len(decoder_convs) == 13
    assert [c.out_channels for c in encoder_convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.MaxUnpool2d) for m in model.modules()) == 5
    basic = SegNetBasic(num_classes=5)
    convs = [m for m in basic.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (7, 7) and c.out_channels == 64 for c in convs)


def test_fcn8s_fuses_both_skips_and_fcn32s_none() -> None:
    torch.manual_seed(0)
    model = create_model(ModelSpec("fcn8s", encoder="resnet18", num_classes=4))
    model.eval()  # no dropout noise
    model(torch.randn(1, 3, 64, 64)).sum().backward()
    for name in ("score_pool3", "score_pool4", "score_fr"):
        grad = getattr(model, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name
    fcn16 = create_model(ModelSpec("fcn16s", encoder="resnet18", num_classes=4))
    assert hasattr(fcn16, "score_pool4") and not hasattr(fcn16, "score_pool3")
    fcn32 = create_model(ModelSpec("fcn32s", encoder="resnet18", num_classes=4))
    assert not hasattr(fcn32, "score_pool4") and not hasattr(fcn32, "score_pool3")


def test_fcn8s_output_changes_when_pool3_or_pool4_features_change() -> None:
    torch.manual_seed(0)
    model = create_model(ModelSpec("fcn8s", encoder="resnet18", num_classes=4)).eval()
    for layer in (model.score_pool3, model.score_pool4):  # the paper starts them at zero
        nn.init.normal_(layer.weight, std=0.1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        for index in (0, 1):  # pool3, pool4
            features = model.encoder(x)
            features[index] = features[index] + 1.0
            score = model.upscore2(model.score_fr(model.head(features[2]))) + model.score_pool4(features[1])
            score = model.upscore_pool4(score) + model.score_pool3(features[0])
            assert (model.upscore_final(score) - reference).abs().max() > 1e-3


def test_learned_upsampling_starts_as_bilinear() -> None:
    layer = learned_upsample(3, 2)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        up = layer(x)
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == (1, 3, 16, 16)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1])
    assert layer.weight.requires_grad


def test_fcn_on_torchvision_vgg16_as_in_the_paper() -> None:
    model = create_model(ModelSpec("fcn8s", encoder="vgg16", num_classes=3)).eval()
    assert isinstance(model, FCN) and isinstance(model.encoder, VggFeatures)
    assert model.encoder.out_channels == (256, 512, 512)
    assert model.head[0].kernel_size == (7, 7) and model.head[0].out_channels == 4096
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 3, 64, 96)


def test_imagenet_weights_offline_fall_back_to_random_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    import huggingface_hub.constants as hf_constants

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    warnings: list[str] = []
    model = create_model(ModelSpec("unet", encoder="resnet18", num_classes=3, pretrained="imagenet"), warnings)
    assert len(warnings) == 1 and "random weights" in warnings[0] and "resnet18" in warnings[0]
    assert model.segstudio_warnings == tuple(warnings)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    notes: list[str] = []
    create_model(ModelSpec("segnet", num_classes=3, pretrained="imagenet"), notes)
    assert len(notes) == 1 and "vgg16_bn" in notes[0]


def test_an_unreachable_hub_fails_at_once_without_retries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user's offline machine: no HF_HUB_OFFLINE set, the host does not answer. The build
    must not go through huggingface_hub's retry loop (about a minute of 'Retrying in 8s')."""
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.utils._http as hf_http

    from segstudio.engine.models import registry

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the test")

    slept: list[float] = []
    monkeypatch.setattr(hf_http.time, "sleep", slept.append)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(registry, "_reachable_hosts", {})
    notes: list[str] = []
    create_model(ModelSpec("unet", encoder="resnet18", num_classes=3, pretrained="imagenet"), notes)
    assert len(notes) == 1 and "random weights" in notes[0]
    assert slept == [], "no retry back-off"
    assert hf_constants.HF_HUB_OFFLINE is False, "the offline mode is only for the build"
    assert registry.hub_reachable() is False  # asked once, remembered


def test_local_weights_file_loads_into_the_encoder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    donor = create_model(ModelSpec("unet", encoder="resnet18", num_classes=3))
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in donor.encoder.state_dict().items()}, str(path))
    torch.manual_seed(2)
    model = create_model(ModelSpec("fpn", encoder="resnet18", num_classes=5, pretrained=str(path)))
    for key, value in donor.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    # a whole-model checkpoint (keys prefixed 'encoder.') saved with torch.save works too
    whole = tmp_path / "whole.pt"
    torch.save(donor.state_dict(), whole)
    fcn = create_model(ModelSpec("fcn8s", encoder="resnet18", num_classes=2, pretrained=str(whole)))
    assert torch.equal(fcn.encoder.encoder.conv1.weight, donor.encoder.conv1.weight)


class _Payload:
    """An arbitrary object: loading a pickle of it would run code; it must be refused."""


def test_weights_files_are_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(ModelError, match="cannot read weights"):
        create_model(ModelSpec("unet", encoder="resnet18", num_classes=2, pretrained=str(path)))
    with pytest.raises(ModelError, match="not found"):
        create_model(ModelSpec("unet", encoder="resnet18", num_classes=2, pretrained=str(tmp_path / "x.pt")))
    mismatched = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"something.else": torch.zeros(3)}, str(mismatched))
    with pytest.raises(ModelError, match="fits"):
        create_model(ModelSpec("unet", encoder="resnet18", num_classes=2, pretrained=str(mismatched)))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_own_vgg16_features_have_torchvisions_layout(batch_norm: bool) -> None:
    import torchvision

    from segstudio.engine.models.fcn import vgg16_features

    with torch.device("meta"):  # structure only, no 138M-parameter allocation
        reference = (torchvision.models.vgg16_bn() if batch_norm else torchvision.models.vgg16()).features
    ours = vgg16_features(batch_norm)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_vgg16_bn_weights_load_into_the_segnet_encoder_exactly() -> None:
    from segstudio.engine.models.fcn import vgg16_features
    from segstudio.engine.models.segnet import load_vgg16_bn_weights

    torch.manual_seed(0)
    features = vgg16_features(batch_norm=True)  # torchvision's layout, standing in for ImageNet
    for module in features.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial statistics and affine terms
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(module.weight, 1.0, 0.1)
            nn.init.normal_(module.bias, 0.0, 0.1)
        elif isinstance(module, nn.Conv2d):
            nn.init.normal_(module.bias, 0.0, 0.1)
    model = SegNet(num_classes=3).eval()
    assert load_vgg16_bn_weights(model.encoder, features) == 26
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        encoded, _, _ = model.encoder(x)
        torch.testing.assert_close(encoded, features.eval()(x), atol=1e-4, rtol=1e-4)
