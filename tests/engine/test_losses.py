"""Every loss: finite, trainable, lower for right answers, blind to ignored pixels."""

from __future__ import annotations

import pytest
import torch

from segstudio.core.errors import TrainingError
from segstudio.engine.losses import LOSSES, build_loss
from segstudio.engine.metrics import IGNORE_INDEX


def batch(seed: int = 0, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (2, 12, 12), generator=gen)
    target[:, :3] = IGNORE_INDEX
    logits = torch.randn(2, k, 12, 12, generator=gen)
    return logits, target


@pytest.mark.parametrize("name", LOSSES)
def test_loss_is_finite_and_has_gradient(name: str) -> None:
    logits, target = batch()
    logits.requires_grad_(True)
    loss = build_loss(name)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_change_nothing(name: str) -> None:
    logits, target = batch(1)
    fn = build_loss(name)
    changed = logits.clone()
    changed[:, :, :3] = torch.randn_like(changed[:, :, :3]) * 10  # only ignored rows
    a = logits.clone().requires_grad_(True)
    b = changed.clone().requires_grad_(True)
    la, lb = fn(a, target), fn(b, target)
    assert la.item() == pytest.approx(lb.item(), rel=1e-5, abs=1e-6)
    lb.backward()
    assert b.grad is not None and b.grad[:, :, :3].abs().max().item() == 0.0


@pytest.mark.parametrize("name", LOSSES)
def test_right_answers_cost_less_than_wrong_ones(name: str) -> None:
    _, target = batch(2)
    right = torch.nn.functional.one_hot(target.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 8
    wrong = torch.roll(right, shifts=1, dims=1)
    fn = build_loss(name)
    assert fn(right, target).item() < fn(wrong, target).item()


def test_all_ignored_batch_gives_zero_not_nan() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE_INDEX)
    for name in ("ce", "ce_dice"):
        loss = build_loss(name)(logits, target)
        assert torch.isfinite(loss)
        loss.backward()


def test_class_weights_weight_cross_entropy() -> None:
    logits, target = batch(3)
    plain = build_loss("ce")(logits, target).item()
    heavy = build_loss("ce", class_weights=[10.0, 1.0, 1.0, 1.0])(logits, target).item()
    # A hand-computed weighted mean: sum w_t * nll / sum w_t over non-ignored pixels.
    logp = torch.log_softmax(logits, 1)
    valid = target != IGNORE_INDEX
    t = target.clamp(max=3)
    nll = -logp.gather(1, t[:, None])[:, 0]
    w = torch.tensor([10.0, 1.0, 1.0, 1.0])[t]
    expected = (nll * w)[valid].sum() / w[valid].sum()
    assert heavy == pytest.approx(expected.item(), rel=1e-5)
    assert heavy != pytest.approx(plain, rel=1e-3)


def test_half_precision_logits_are_scored_in_float32() -> None:
    logits, target = batch(4)
    assert build_loss("ce_dice")(logits.half(), target).dtype == torch.float32


def test_unknown_loss_names_the_choices() -> None:
    with pytest.raises(TrainingError, match="ce_dice"):
        build_loss("hinge")
