"""SegNet (Badrinarayanan et al., 2017): an encoder whose max-pooling indices drive the decoder.

The encoder keeps the argmax position of every 2x2 max-pool; each decoder stage puts its
input back at exactly those positions (MaxUnpool2d, zeros elsewhere) and densifies the sparse
map with convolutions. No encoder features are copied across, only the indices, which is
what makes SegNet light in memory at inference.

`SegNet` mirrors VGG16-BN (13 convolutions, 5 pools, divisor 32); `SegNetBasic` is the
paper's small variant: 4 blocks of one 7x7 convolution with 64 channels (divisor 16).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# VGG16 convolution widths per encoder block; the decoder mirrors them.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)


class IndexUnpool(nn.MaxUnpool2d):
    """MaxUnpool2d(2, 2) that can also be traced for TorchScript and exported to ONNX.

    Eager runs use MaxUnpool2d itself. Under the TorchScript tracer (sizes become tensors and
    MaxUnpool2d's size check breaks, or the size is baked in) and the TorchScript-based ONNX
    exporter (no MaxUnpool translation), the values are scattered to the same flat indices
    instead: the same operation in public ops, identical results (checked in the tests).
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)

    def forward(  # type: ignore[override]
        self, input: torch.Tensor, indices: torch.Tensor, output_size: Sequence[int] | None = None
    ) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return scatter_unpool(input, indices, output_size)
        return super().forward(input, indices, output_size)


def scatter_unpool(
    values: torch.Tensor, indices: torch.Tensor, output_size: Sequence[int] | None = None
) -> torch.Tensor:
    """Put each value at its flat per-channel index of a zero plane: max-unpooling by scatter."""
    n, c, h, w = values.shape
    # No int(): under export these sizes stay symbolic, keeping H and W dynamic.
    out_h, out_w = (h * 2, w * 2) if output_size is None else (output_size[-2], output_size[-1])
    flat = values.new_zeros((n, c, out_h * out_w))
    flat = flat.scatter(2, indices.flatten(2), values.flatten(2))
    return flat.view(n, c, out_h, out_w)


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SegNetEncoder(nn.Module):
    """Conv stacks, each followed by a 2x2 max-pool that returns its argmax indices."""

    def __init__(self, in_channels: int, blocks: Sequence[Sequence[int]], kernel: int = 3) -> None:
        super().__init__()
        stages = []
        channels = in_channels
        for widths in blocks:
            layers = []
            for width in widths:
                layers.append(_conv_bn_relu(channels, width, kernel))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, return_indices=True)
        self.out_channels = channels

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Size]]:
        indices: list[torch.Tensor] = []
        sizes: list[torch.Size] = []
        for stage in self.stages:
            x = stage(x)
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        return x, indices, sizes


class SegNetDecoderStage(nn.Module):
    """Unpool with the matching encoder indices, then densify with convolutions."""

    def __init__(self, widths: Sequence[tuple[int, int]], kernel: int, relu: bool) -> None:
        super().__init__()
        self.unpool = IndexUnpool()
        self.convs = nn.Sequential(
            *[_conv_bn_relu(a, b, kernel, relu) for a, b in widths]
        )

    def forward(self, x: torch.Tensor, indices: torch.Tensor, size: torch.Size) -> torch.Tensor:
        x = self.unpool(x, indices, output_size=size[-2:])
        return self.convs(x)


class _UnpoolingNet(nn.Module):
    """Encoder with pooling indices, decoder stages that unpool with them, then a classifier."""

    encoder: SegNetEncoder
    decoder: nn.ModuleList
    classifier: nn.Conv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, indices, sizes = self.encoder(x)
        for stage, idx, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            x = stage(x, idx, size)
        return self.classifier(x)


class SegNet(_UnpoolingNet):
    """SegNet with a VGG16-BN encoder (13 conv layers) and the mirrored unpooling decoder."""

    divisor = 32

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = SegNetEncoder(in_channels, VGG16_BLOCKS)
        stages = []
        # Decoder stage i mirrors encoder block i: its last conv maps to the width of the block
        # before it, so the next unpool receives the right channels (13 convs in all).
        for block_index in range(len(VGG16_BLOCKS) - 1, -1, -1):
            widths = VGG16_BLOCKS[block_index]
            if block_index > 0:
                target = VGG16_BLOCKS[block_index - 1][-1]
                pairs = [(w, w) for w in widths[:-1]] + [(widths[-1], target)]
            else:  # the classifier is the block's last convolution, as in the paper
                pairs = [(w, w) for w in widths[:-1]]
            stages.append(SegNetDecoderStage(pairs, kernel=3, relu=True))
        self.decoder = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(VGG16_BLOCKS[0][0], num_classes, kernel_size=3, padding=1)
        he_init(self)


class SegNetBasic(_UnpoolingNet):
    """The paper's SegNet-Basic: 4 encoders and 4 decoders of 64 channels with 7x7 kernels.

    As in the paper, decoder convolutions have batch norm but no ReLU.
    """

    divisor = 16

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        blocks = ((width,),) * 4
        self.encoder = SegNetEncoder(in_channels, blocks, kernel=7)
        self.decoder = nn.ModuleList(
            [SegNetDecoderStage([(width, width)], kernel=7, relu=False) for _ in blocks]
        )
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=1)
        he_init(self)


def he_init(model: nn.Module) -> None:
    """He (Kaiming) initialisation of every convolution, as the SegNet paper trains from."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def load_vgg16_bn_weights(encoder: SegNetEncoder, features: nn.Sequential) -> int:
    """Copy torchvision vgg16_bn `features` conv/BN weights into the SegNet encoder, in order.

    Our convolutions have no bias (batch norm follows); each VGG conv bias is folded into the
    next BN's running mean, so the encoder computes exactly what VGG's layers do. A first
    convolution over other than 3 input channels gets the RGB filters averaged and spread over
    its channels (keeping the response scale). Returns the layers copied.
    """
    source_convs = [m for m in features if isinstance(m, nn.Conv2d)]
    source_bns = [m for m in features if isinstance(m, nn.BatchNorm2d)]
    target_convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    target_bns = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    copied = 0
    with torch.no_grad():
        for src, dst in zip(source_convs, target_convs):
            weight = src.weight
            if weight.shape[1] != dst.weight.shape[1]:
                mean = weight.mean(dim=1, keepdim=True)
                weight = mean.repeat(1, dst.weight.shape[1], 1, 1) * (3.0 / dst.weight.shape[1])
            dst.weight.copy_(weight)
            copied += 1
        for conv, src, dst in zip(source_convs, source_bns, target_bns):
            dst.load_state_dict(src.state_dict())
            if conv.bias is not None and dst.running_mean is not None:
                dst.running_mean.sub_(conv.bias)  # BN(Wx + b) with mean m == BN(Wx) with mean m - b
            copied += 1
    return copied
