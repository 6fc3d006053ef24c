"""IoU regression of every output of a multi-granularity prompt."""

from __future__ import annotations

import pytest
import torch

from segblocks.losses import eligible_iou_loss
from segblocks.structures import Targets


def test_every_output_regresses_its_best_iou_with_an_eligible_target() -> None:
    gt = torch.zeros(2, 8, 8, dtype=torch.bool)
    gt[0, :4] = True  # top half
    gt[1, :, :4] = True  # left half
    targets = [Targets(masks=gt, labels=torch.zeros(2, dtype=torch.int64))]
    outs = torch.stack([gt[0], gt[1], gt[0] & gt[1], torch.zeros(8, 8, dtype=torch.bool)]).float() * 20 - 10
    eligible = [torch.tensor([[True, False]])]  # only the top half may answer
    # the perfect IoU logits for that: 1 (equal), 1/3 (left half vs top half), 1/2 (quadrant), 0 (empty)
    truth = torch.tensor([1.0, 1 / 3, 0.5, 0.0])
    exact = torch.logit(truth.clamp(1e-4, 1 - 1e-4))[None]
    assert float(eligible_iou_loss(exact, outs[None], targets, eligible, outputs_per_prompt=4)) < 1e-6
    wrong = torch.zeros(1, 4, requires_grad=True)
    loss = eligible_iou_loss(wrong, outs[None], targets, eligible, outputs_per_prompt=4)
    assert torch.isclose(loss, ((0.5 - truth) ** 2).mean())
    loss.backward()
    assert wrong.grad is not None and (wrong.grad[0] != 0).tolist() == [
        True,
        True,
        False,
        True,
    ]  # 0.5 is right
    none = eligible_iou_loss(
        wrong, outs[None], targets, [torch.zeros(1, 2, dtype=torch.bool)], outputs_per_prompt=4
    )
    assert float(none.detach()) == 0.0


def test_errors() -> None:
    t = [Targets(masks=torch.zeros(1, 8, 8, dtype=torch.bool), labels=torch.zeros(1, dtype=torch.int64))]
    with pytest.raises(ValueError, match="k=3"):
        eligible_iou_loss(
            torch.zeros(1, 4),
            torch.zeros(1, 4, 8, 8),
            t,
            [torch.ones(1, 1, dtype=torch.bool)],
            outputs_per_prompt=3,
        )
    with pytest.raises(ValueError, match="eligible"):
        eligible_iou_loss(
            torch.zeros(1, 4),
            torch.zeros(1, 4, 8, 8),
            t,
            [torch.ones(2, 1, dtype=torch.bool)],
            outputs_per_prompt=4,
        )
