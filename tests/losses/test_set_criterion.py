"""Set criterion and per-mask losses: parity with reference formulas (torchvision's focal loss),
deep supervision, empty targets, fp32 under autocast, gradients, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss as tv_focal

from segblocks.losses import (
    SetCriterion,
    binary_mask_ious,
    dice_loss,
    matched_iou_loss,
    sigmoid_ce_loss,
    sigmoid_focal_loss,
)
from segblocks.matchers import HungarianMatcher
from segblocks.structures import MaskPredictions, Targets


def test_mask_losses_match_their_formulas() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 40), (torch.rand(3, 40) > 0.5).float()
    p = logits.sigmoid()
    dice = (1 - (2 * (p * targets).sum(-1) + 1) / (p.sum(-1) + targets.sum(-1) + 1)).sum() / 2.0
    torch.testing.assert_close(dice_loss(logits, targets, 2.0), dice)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1).sum() / 2.0
    torch.testing.assert_close(sigmoid_ce_loss(logits, targets, 2.0), ce)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, 2.0), tv_focal(logits, targets, reduction="sum") / 2.0
    )
    per_mask = 1 - (2 * (p * targets).sum(-1) + 1) / (p.sum(-1) + targets.sum(-1) + 1)
    torch.testing.assert_close(dice_loss(logits, targets, reduction="none"), per_mask)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, alpha=-1.0, gamma=0.5, reduction="none"),
        tv_focal(logits, targets, alpha=-1.0, gamma=0.5, reduction="none"),
    )
    with pytest.raises(ValueError, match="reduction: expected one of"):
        dice_loss(logits, targets, reduction="mean")
    with pytest.raises(ValueError, match="reduction: expected one of"):
        sigmoid_focal_loss(logits, targets, reduction="max")


def targets_for(n: int, size: int = 32) -> Targets:
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for k in range(n):
        masks[k, 4 * k : 4 * k + 10, 3 : 3 + 8 + k] = True
    return Targets(masks=masks, labels=torch.arange(n) % 4)


def predictions(b: int = 2, q: int = 6, aux: int = 2, requires_grad: bool = True) -> MaskPredictions:
    def one() -> MaskPredictions:
        return MaskPredictions(
            mask_logits=torch.randn(b, q, 16, 16, requires_grad=requires_grad),
            class_logits=torch.randn(b, q, 5, requires_grad=requires_grad),
            iou_scores=torch.randn(b, q, requires_grad=requires_grad),
        )

    final = one()
    final.aux = [one() for _ in range(aux)]
    return final


def criterion(**kw: float) -> SetCriterion:
    return SetCriterion(matcher=HungarianMatcher(num_points=128), num_points=128, **kw)  # type: ignore[arg-type]


def test_deep_supervision_keys_and_gradients() -> None:
    preds = predictions(aux=2)
    losses = criterion(objectness_weight=2.0)(
        preds, [targets_for(2), targets_for(3)], torch.Generator().manual_seed(0)
    )
    base = ["loss_class", "loss_mask", "loss_dice", "loss_objectness"]
    assert sorted(losses) == sorted(base + [f"{k}_{i}" for k in base for i in range(2)])
    assert all(v.dtype == torch.float32 and v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for p in [preds, *preds.aux]:
        assert (
            p.mask_logits.grad is not None
            and p.class_logits.grad is not None
            and p.iou_scores.grad is not None
        )
    no_aux = SetCriterion(matcher=HungarianMatcher(num_points=64), num_points=64, deep_supervision=False)
    assert sorted(no_aux(predictions(), [targets_for(1), targets_for(1)])) == [
        "loss_class",
        "loss_dice",
        "loss_mask",
    ]


def test_class_loss_is_weighted_cross_entropy_with_void() -> None:
    crit = criterion()
    logits = torch.randn(1, 4, 3)
    matching = [(torch.tensor([2]), torch.tensor([0]))]
    t = Targets(masks=torch.ones(1, 4, 4, dtype=torch.bool), labels=torch.tensor([1]))
    expected = F.cross_entropy(logits[0], torch.tensor([2, 2, 1, 2]), weight=torch.tensor([1.0, 1.0, 0.1]))
    torch.testing.assert_close(crit.class_loss(logits, [t], matching), expected)


def test_good_predictions_cost_less_than_bad_ones() -> None:
    t = targets_for(2, size=16)
    good = torch.where(t.masks, 6.0, -6.0).float()[None]
    bad = -good
    cls = torch.full((1, 2, 5), -4.0)
    cls[0, 0, 0] = cls[0, 1, 1] = 4.0
    crit = criterion()
    g = crit(MaskPredictions(mask_logits=good, class_logits=cls), [t])
    b = crit(MaskPredictions(mask_logits=bad, class_logits=cls), [t])
    # most points sit on the (soft) boundaries, so even a perfect mask keeps some loss
    assert 5 * g["loss_mask"] < b["loss_mask"] and 2 * g["loss_dice"] < b["loss_dice"]


def test_empty_targets_train_towards_void() -> None:
    empty = Targets(masks=torch.zeros(0, 32, 32, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64))
    preds = predictions(b=2, aux=1)
    losses = criterion()(preds, [empty, empty])
    assert float(losses["loss_mask"].detach()) == 0.0 and float(losses["loss_dice"].detach()) == 0.0
    total = sum(losses.values())
    total.backward()
    assert preds.mask_logits.grad is not None, "graph stays connected"
    assert preds.class_logits.grad is not None
    assert bool((preds.class_logits.grad[..., -1] < 0).all()), "every query is pushed towards void"


def test_losses_are_fp32_under_bf16_autocast() -> None:
    preds = MaskPredictions(
        mask_logits=torch.randn(1, 4, 16, 16, dtype=torch.bfloat16),
        class_logits=torch.randn(1, 4, 5).bfloat16(),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = criterion()(preds, [targets_for(2)])
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_errors() -> None:
    crit = criterion()
    with pytest.raises(ValueError, match=r"targets\[0\].labels: expected class ids in \[0, 4\)"):
        crit(
            predictions(b=1), [Targets(masks=torch.ones(1, 8, 8, dtype=torch.bool), labels=torch.tensor([7]))]
        )
    with pytest.raises(ValueError, match="expected 2 Targets"):
        crit(predictions(b=2), [targets_for(1)])
    with pytest.raises(TypeError, match=r"targets\[1\]"):
        crit(predictions(b=2), [targets_for(1), "x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="MaskPredictions"):
        crit(torch.zeros(1), [targets_for(1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_masks"):
        dice_loss(torch.zeros(1, 2), torch.zeros(1, 2), 0)
    with pytest.raises(ValueError, match="targets"):
        sigmoid_ce_loss(torch.zeros(1, 2), torch.zeros(1, 3), 1)
    with pytest.raises(ValueError, match="weights"):
        SetCriterion(matcher=HungarianMatcher(), mask_weight=-1.0)


def test_iou_loss_regresses_the_true_iou_of_matched_masks() -> None:
    tgt = targets_for(2, size=32)
    # predictions at stride 2: query 0 exactly target 0, query 1 half of target 1, query 2 unmatched
    small = F.interpolate(tgt.masks[None].float(), size=(16, 16), mode="area")[0] >= 0.5
    logits = torch.full((1, 3, 16, 16), -10.0)
    logits[0, 0][small[0]] = 10.0
    half = small[1].clone()
    rows = half.any(-1).nonzero().flatten()
    half[rows[: len(rows) // 2]] = False
    logits[0, 1][half] = 10.0
    iou_scores = torch.zeros(1, 3, requires_grad=True)
    preds = MaskPredictions(mask_logits=logits, class_logits=torch.zeros(1, 3, 5), iou_scores=iou_scores)
    crit = criterion(iou_weight=1.0)
    matching = crit.matcher(preds.mask_logits, None, [tgt])
    assert matching[0][0].tolist() == [0, 1] and matching[0][1].tolist() == [0, 1]
    true_iou = torch.tensor([1.0, half.sum().item() / small[1].sum().item()])
    expected = ((0.5 - true_iou) ** 2).sum() / 2.0  # sigmoid(0) = 0.5, normalised by 2 target masks
    loss = matched_iou_loss(iou_scores, logits, [tgt], matching, 2.0)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert iou_scores.grad is not None and iou_scores.grad[0, 2] == 0, "unmatched queries are not supervised"
    losses = crit(preds, [tgt])
    assert "loss_iou" in losses and "loss_objectness" not in losses


def test_iou_loss_can_pull_unmatched_queries_towards_zero() -> None:
    tgt = targets_for(1, size=32)
    small = F.interpolate(tgt.masks[None].float(), size=(16, 16), mode="area")[0] >= 0.5
    logits = torch.full((1, 3, 16, 16), -10.0)
    logits[0, 0][small[0]] = 10.0  # query 0 is target 0 exactly; queries 1 and 2 are unmatched
    iou_scores = torch.tensor([[0.0, 1.0, -2.0]], requires_grad=True)
    matching = [(torch.tensor([0]), torch.tensor([0]))]
    loss = matched_iou_loss(iou_scores, logits, [tgt], matching, 1.0, unmatched_weight=0.5)
    unmatched = torch.tensor([1.0, -2.0]).sigmoid().square().sum()
    torch.testing.assert_close(loss, (0.5 - 1.0) ** 2 + 0.5 * unmatched)
    loss.backward()
    assert iou_scores.grad is not None and bool((iou_scores.grad[0, 1:] > 0).all()), "pushed down"
    nothing = matched_iou_loss(
        iou_scores, logits, [tgt], [(torch.tensor([], dtype=torch.int64),) * 2], 1.0, unmatched_weight=0.5
    )
    torch.testing.assert_close(nothing, 0.5 * torch.tensor([0.0, 1.0, -2.0]).sigmoid().square().sum())
    preds = MaskPredictions(mask_logits=logits, class_logits=torch.zeros(1, 3, 5), iou_scores=iou_scores)
    with_unmatched = criterion(iou_weight=1.0, iou_unmatched_weight=0.5)(preds, [tgt])["loss_iou"]
    assert float(with_unmatched) > float(criterion(iou_weight=1.0)(preds, [tgt])["loss_iou"])
    with pytest.raises(ValueError, match=r"iou_unmatched_weight: 1\.0 needs a non-zero iou_weight"):
        criterion(iou_unmatched_weight=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        criterion(iou_weight=1.0, iou_unmatched_weight=-1.0)


def test_iou_loss_can_pull_unmatched_queries_towards_their_best_segment() -> None:
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, :8, :8] = True
    masks[1, 16:, 16:] = True  # apart, so each query's best segment is known
    tgt = Targets(masks=masks, labels=torch.tensor([0, 1]))
    small = masks[:, ::2, ::2]
    logits = torch.full((1, 4, 16, 16), -10.0)
    logits[0, 0][small[0]] = 10.0  # matched to target 0
    logits[0, 1][small[0]] = 10.0  # a duplicate of target 0: its best segment is target 0, IoU 1
    half = small[1].clone()
    rows = half.any(-1).nonzero().flatten()
    half[rows[: len(rows) // 2]] = False
    logits[0, 2][half] = 10.0  # half of target 1; query 3 is empty (best IoU 0)
    iou_scores = torch.zeros(1, 4, requires_grad=True)
    matching = [(torch.tensor([0]), torch.tensor([0]))]
    loss = matched_iou_loss(
        iou_scores, logits, [tgt], matching, 1.0, unmatched_weight=0.5, unmatched_target="best_segment"
    )
    best = torch.tensor([1.0, half.sum().item() / small[1].sum().item(), 0.0])
    torch.testing.assert_close(loss, (0.5 - 1.0) ** 2 + 0.5 * ((0.5 - best) ** 2).sum())
    loss.backward()
    grad = iou_scores.grad[0]
    assert grad[1] < 0 and grad[3] > 0, "the duplicate is pulled up, the empty mask down"
    assert torch.equal(binary_mask_ious(logits[0], tgt.masks)[:, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert binary_mask_ious(logits[0], tgt.masks[:0]).shape == (4, 0)
    with pytest.raises(ValueError, match=r"mask_logits, masks: expected \[Q, \*lead, h, w\]"):
        binary_mask_ious(logits[0], tgt.masks[None])
    with pytest.raises(TypeError, match="mask_logits"):
        binary_mask_ious(logits[0] > 0, tgt.masks)
    no_targets = Targets(masks=masks[:0], labels=torch.tensor([], dtype=torch.int64))
    none = [(torch.tensor([], dtype=torch.int64),) * 2]
    torch.testing.assert_close(
        matched_iou_loss(
            iou_scores, logits, [no_targets], none, 1.0, unmatched_weight=1.0, unmatched_target="best_segment"
        ),
        torch.tensor(4 * 0.25),
    )
    preds = MaskPredictions(mask_logits=logits, class_logits=torch.zeros(1, 4, 5), iou_scores=iou_scores)
    crit = criterion(iou_weight=1.0, iou_unmatched_weight=1.0, iou_unmatched_target="best_segment")
    assert crit.iou_unmatched_target == "best_segment" and "loss_iou" in crit(preds, [tgt])
    with pytest.raises(ValueError, match="unmatched_target: expected one of"):
        matched_iou_loss(
            iou_scores, logits, [tgt], matching, 1.0, unmatched_weight=1.0, unmatched_target="one"
        )
    with pytest.raises(ValueError, match="iou_unmatched_target: expected one of"):
        criterion(iou_weight=1.0, iou_unmatched_target="best")


def test_iou_loss_with_deep_supervision_and_empty_targets() -> None:
    preds = predictions(aux=1)
    empty = Targets(masks=torch.zeros(0, 32, 32, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64))
    losses = criterion(iou_weight=1.0)(preds, [targets_for(2), empty])
    assert {"loss_iou", "loss_iou_0"} <= set(losses)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    nothing = criterion(iou_weight=1.0)(predictions(aux=0), [empty, empty])
    assert float(nothing["loss_iou"].detach()) == 0.0 and nothing["loss_iou"].requires_grad
    with pytest.raises(ValueError, match="objectness_weight, iou_weight: both read iou_scores"):
        criterion(iou_weight=1.0, objectness_weight=2.0)
