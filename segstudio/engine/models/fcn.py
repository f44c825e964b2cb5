"""Fully convolutional networks (Long, Shelhamer and Darrell): FCN-32s, FCN-16s and FCN-8s.

Class scores computed at stride 32 are upsampled by learned transposed convolutions that start
as bilinear interpolation; FCN-16s adds scores from the stride-16 (pool4) features, FCN-8s
also from the stride-8 (pool3) features, which is what sharpens the boundaries. As in the
paper the skip score layers start at zero, so training begins from the coarser net's output.

The encoder is VGG16 (torchvision layout, as in the paper, with fc6/fc7 as convolutions) or
any smp encoder, whose stride 8/16/32 features feed the same head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

FCN_VARIANTS = (8, 16, 32)


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """A (C, C, k, k) transposed-conv weight that performs bilinear upsampling per channel."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    grid = torch.arange(kernel_size, dtype=torch.float32)
    profile = 1 - (grid - center).abs() / factor
    filt = profile[:, None] * profile[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for c in range(channels):
        weight[c, c] = filt
    return weight


def learned_upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Exact x`factor` upsampling (kernel 2f, padding f/2), initialised bilinear, learnable."""
    layer = nn.ConvTranspose2d(
        channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return layer


VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def vgg16_features(batch_norm: bool = False) -> nn.Sequential:
    """VGG16's convolutional part, laid out exactly as torchvision's `features` (same keys),
    built without its 120M-parameter classifier when no pretrained weights are wanted."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        width = int(item)
        layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        channels = width
    for module in layers:  # torchvision's VGG initialisation
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return nn.Sequential(*layers)


class VggFeatures(nn.Module):
    """torchvision VGG16(-BN) `features` cut at its pools; returns pool3, pool4, pool5 maps."""

    def __init__(self, features: nn.Sequential, in_channels: int = 3) -> None:
        super().__init__()
        stages: list[nn.Sequential] = []
        current: list[nn.Module] = []
        for layer in features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                stages.append(nn.Sequential(*current))
                current = []
        if len(stages) != 5:
            raise ValueError(f"expected 5 pooling stages in VGG features, found {len(stages)}")
        first = stages[0][0]
        if in_channels != 3 and isinstance(first, nn.Conv2d):
            stages[0][0] = _adapt_first_conv(first, in_channels)
        self.stages = nn.ModuleList(stages)
        widths = [_last_conv_width(stage) for stage in stages]
        self.out_channels = (widths[2], widths[3], widths[4])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs[2:]


class SmpFeatures(nn.Module):
    """An smp encoder (depth 5) reduced to its stride 8, 16 and 32 feature maps."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        channels = tuple(encoder.out_channels)  # type: ignore[arg-type]
        self.out_channels = (channels[3], channels[4], channels[5])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.encoder(x)
        return [features[3], features[4], features[5]]


def _last_conv_width(stage: nn.Sequential) -> int:
    convs = [m for m in stage if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """The same convolution over `in_channels` inputs, RGB filters averaged and spread."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * (3.0 / in_channels))
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    return new


class FCN(nn.Module):
    """FCN-{32,16,8}s head over an encoder yielding (stride 8, stride 16, stride 32) features."""

    divisor = 32

    def __init__(self, encoder: nn.Module, num_classes: int, variant: int = 8,
                 head_channels: int = 512, head_kernel: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        if variant not in FCN_VARIANTS:
            raise ValueError(f"FCN variant must be one of {FCN_VARIANTS}, got {variant}")
        self.variant = variant
        self.encoder = encoder
        c8, c16, c32 = encoder.out_channels  # type: ignore[misc]
        # fc6/fc7 of the paper, as convolutions (7x7 then 1x1 for VGG16).
        self.head = nn.Sequential(
            nn.Conv2d(c32, head_channels, head_kernel, padding=head_kernel // 2),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_channels, head_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.score_fr = nn.Conv2d(head_channels, num_classes, 1)
        if variant == 32:
            self.upscore_final = learned_upsample(num_classes, 32)
        else:
            self.score_pool4 = _zero_conv(c16, num_classes)
            self.upscore2 = learned_upsample(num_classes, 2)
            if variant == 16:
                self.upscore_final = learned_upsample(num_classes, 16)
            else:
                self.score_pool3 = _zero_conv(c8, num_classes)
                self.upscore_pool4 = learned_upsample(num_classes, 2)
                self.upscore_final = learned_upsample(num_classes, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, pool5 = self.encoder(x)
        score = self.score_fr(self.head(pool5))
        if self.variant == 32:
            return self.upscore_final(score)
        score = self.upscore2(score) + self.score_pool4(pool4)
        if self.variant == 16:
            return self.upscore_final(score)
        score = self.upscore_pool4(score) + self.score_pool3(pool3)
        return self.upscore_final(score)

    def load_vgg_classifier(self, classifier: Sequence[nn.Module]) -> bool:
        """Load torchvision VGG fc6/fc7 (Linear 25088->4096, 4096->4096) as head convolutions.

        Only possible when the head is the paper's (4096 channels, 7x7); returns whether it was.
        """
        linears = [m for m in classifier if isinstance(m, nn.Linear)]
        fc6, fc7 = self.head[0], self.head[3]
        if len(linears) < 2 or fc6.weight.numel() != linears[0].weight.numel():
            return False
        if fc7.weight.numel() != linears[1].weight.numel():
            return False
        with torch.no_grad():
            fc6.weight.copy_(linears[0].weight.view_as(fc6.weight))
            fc6.bias.copy_(linears[0].bias)
            fc7.weight.copy_(linears[1].weight.view_as(fc7.weight))
            fc7.bias.copy_(linears[1].bias)
        return True


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv
