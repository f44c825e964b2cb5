"""Training losses, all honouring the model-side ignore index (255).

Cross-entropy comes from torch (it takes class weights); Dice, focal and Lovasz from
segmentation_models_pytorch. Losses are computed in float32 even under autocast: softmax
and log terms in bf16/fp16 lose the small-class signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from segstudio.core.errors import TrainingError
from segstudio.engine.config import LOSSES
from segstudio.engine.metrics import IGNORE_INDEX


class _Float32Loss(nn.Module):
    """Wrap a loss so logits are cast to float32 and targets to int64 first."""

    def __init__(self, inner: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.inner(logits.float(), target.long())


class _Sum(nn.Module):
    def __init__(self, parts: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum((part(logits, target) for part in self.parts), torch.zeros((), device=logits.device))


class _SafeCrossEntropy(nn.Module):
    """Cross-entropy averaged over labelled pixels (weighted like torch's mean), and 0 rather
    than NaN for a batch whose pixels are all ignored. No host sync: no `if` on a tensor."""

    def __init__(self, weight: torch.Tensor | None, ignore_index: int) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = nn.functional.cross_entropy(logits, target, weight=self.weight,
                                            ignore_index=self.ignore_index, reduction="sum")
        valid = target != self.ignore_index
        if self.weight is None:
            denominator = valid.sum()
        else:
            safe = torch.where(valid, target, torch.zeros_like(target))
            denominator = (self.weight[safe] * valid).sum()
        return total / denominator.clamp(min=1e-12).to(total.dtype)


def build_loss(name: str, class_weights: Sequence[float] | None = None,
               ignore_index: int = IGNORE_INDEX) -> nn.Module:
    """A loss module by name (one of LOSSES); class weights apply to the cross-entropy part."""
    from segmentation_models_pytorch import losses as smp_losses

    weight = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights else None

    def ce() -> nn.Module:
        return _SafeCrossEntropy(weight, ignore_index)

    def dice() -> nn.Module:
        return smp_losses.DiceLoss("multiclass", from_logits=True, ignore_index=ignore_index)

    if name == "ce":
        inner: nn.Module = ce()
    elif name == "dice":
        inner = dice()
    elif name == "ce_dice":
        inner = _Sum([ce(), dice()])
    elif name == "focal":
        inner = smp_losses.FocalLoss("multiclass", gamma=2.0, ignore_index=ignore_index)
    elif name == "lovasz":
        inner = smp_losses.LovaszLoss("multiclass", ignore_index=ignore_index, from_logits=True)
    else:
        raise TrainingError(f"unknown loss '{name}'; use one of {', '.join(LOSSES)}")
    return _Float32Loss(inner)
