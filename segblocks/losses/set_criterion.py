"""Mask2Former's set criterion: matching, then class, point-sampled mask and Dice losses.

For every supervised prediction (the final one and, with deep supervision, every auxiliary one) the
predictions are matched to the targets (Hungarian by default; any :class:`~segblocks.matchers.Matcher`,
e.g. by construction for prompts or many-to-many for multi-granularity outputs), then:

* class loss: cross-entropy over ``C + 1`` classes, unmatched queries labelled void, the void class
  weighted by ``no_object_weight`` (Mask2Former: 0.1);
* mask losses: BCE and Dice on ``num_points`` points per matched mask, chosen by uncertainty
  importance sampling (oversample 3.0, importance 0.75), normalised by the number of target masks;
* optional objectness loss on ``iou_scores`` (:func:`~segblocks.losses.objectness_loss`), or the
  IoU loss (PosSAM, SAM; :func:`~segblocks.losses.matched_iou_loss`, with ``iou_unmatched_weight``
  also supervising unmatched queries' predicted IoU, towards 0 or their mask's best segment).

Everything is computed in float32 outside autocast. The number of classes is read from the class
logits, so the same criterion serves closed-set and open-vocabulary heads. Mask tubes of clips
(``[B, Q, T, H, W]`` against ``[N, T, H, W]`` targets) are supervised on points sampled in every
frame, the tube's points pooled into one BCE and one Dice per tube (Mask2Former-VIS).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks.losses.mask_losses import dice_loss, sigmoid_ce_loss
from segblocks.losses.query_scores import UNMATCHED_IOU_TARGETS, matched_iou_loss, objectness_loss
from segblocks.matchers.hungarian import HungarianMatcher, Matcher, Matching, check_mask_logits
from segblocks.ops import point_sample, sample_points_by_uncertainty
from segblocks.structures import MaskPredictions, Targets

__all__ = ["SetCriterion"]


class SetCriterion(nn.Module):
    """Losses of a set of mask predictions against ground-truth segments, with deep supervision.

    Args:
        matcher: assigns predictions to targets (a :class:`~segblocks.matchers.Matcher`).
        class_weight: weight of the class loss (Mask2Former: 2.0).
        mask_weight: weight of the point-sampled BCE (5.0).
        dice_weight: weight of the point-sampled Dice (5.0).
        objectness_weight: weight of the objectness focal loss on ``iou_scores`` (0 = off).
        iou_weight: weight of the IoU regression loss on ``iou_scores`` (0 = off; PosSAM: 1.0). At
            most one of ``objectness_weight`` and ``iou_weight`` may be non-zero.
        iou_unmatched_weight: weight, relative to a matched query's, with which the IoU loss also
            pulls every unmatched query's ``sigmoid(iou_scores)`` towards ``iou_unmatched_target``;
            0 = the paper's, unmatched queries unsupervised. Needs ``iou_weight``.
        iou_unmatched_target: ``"zero"`` (its mask matches no segment) or ``"best_segment"`` (its
            mask's best IoU with any segment of the image, as SAM scores every output).
        no_object_weight: cross-entropy weight of the void class (0.1).
        num_points: points per mask (12,544 at paper scale).
        oversample_ratio: candidate points per kept point (3.0).
        importance_sample_ratio: fraction of points chosen by uncertainty (0.75).
        deep_supervision: also supervise ``predictions.aux``.
    """

    def __init__(
        self,
        *,
        matcher: HungarianMatcher | Matcher,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        objectness_weight: float = 0.0,
        iou_weight: float = 0.0,
        iou_unmatched_weight: float = 0.0,
        iou_unmatched_target: str = "zero",
        no_object_weight: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        weights = (
            class_weight,
            mask_weight,
            dice_weight,
            objectness_weight,
            iou_weight,
            iou_unmatched_weight,
            no_object_weight,
        )
        if min(weights) < 0:
            raise ValueError(f"loss weights: expected non-negative values, got {weights}")
        if objectness_weight and iou_weight:
            raise ValueError(
                "objectness_weight, iou_weight: both read iou_scores; give at most one non-zero, got "
                f"{objectness_weight} and {iou_weight}"
            )
        if iou_unmatched_weight and not iou_weight:
            raise ValueError(f"iou_unmatched_weight: {iou_unmatched_weight} needs a non-zero iou_weight")
        if iou_unmatched_target not in UNMATCHED_IOU_TARGETS:
            raise ValueError(
                f"iou_unmatched_target: expected one of {UNMATCHED_IOU_TARGETS}, got {iou_unmatched_target!r}"
            )
        if num_points <= 0:
            raise ValueError(f"num_points: expected a positive int, got {num_points}")
        self.matcher = matcher
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.objectness_weight = objectness_weight
        self.iou_weight = iou_weight
        self.iou_unmatched_weight = iou_unmatched_weight
        self.iou_unmatched_target = iou_unmatched_target
        self.no_object_weight = no_object_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.deep_supervision = deep_supervision

    @staticmethod
    def check_targets(targets: Sequence[Targets], batch: int, num_classes: int | None) -> None:
        """Validate the targets of a batch.

        Label ranges are checked only for targets on the CPU (reading them from an accelerator would
        synchronise the host).

        Raises:
            TypeError: on an element that is not :class:`Targets`.
            ValueError: on a wrong count or labels outside ``[0, num_classes)``.
        """
        if len(targets) != batch:
            raise ValueError(f"targets: expected {batch} Targets (one per image), got {len(targets)}")
        for i, t in enumerate(targets):
            if not isinstance(t, Targets):
                raise TypeError(
                    f"targets[{i}]: expected a segblocks.structures.Targets, got {type(t).__name__}"
                )
            if num_classes is not None and len(t) and t.labels.device.type == "cpu":
                lo, hi = int(t.labels.min()), int(t.labels.max())
                if lo < 0 or hi >= num_classes:
                    raise ValueError(
                        f"targets[{i}].labels: expected class ids in [0, {num_classes}), got values in [{lo}, {hi}]"
                    )

    def num_masks(self, targets: Sequence[Targets], device: torch.device) -> float:
        """Number of target masks in the batch (averaged over processes under DDP), at least 1.

        Args:
            targets: the batch's targets.
            device: device of the all-reduce buffer under DDP.
        """
        count = float(sum(len(t) for t in targets))
        if dist.is_available() and dist.is_initialized():
            total = torch.tensor([count], device=device)
            dist.all_reduce(total)
            count = float(total.item()) / dist.get_world_size()
        return max(count, 1.0)

    def class_loss(self, class_logits: Tensor, targets: Sequence[Targets], matching: Matching) -> Tensor:
        """Cross-entropy over ``C + 1`` classes; unmatched queries are void (the last class).

        Args:
            class_logits: ``[B, Q, C + 1]``.
            targets: the batch's targets.
            matching: the matcher's index pairs per image.

        Returns:
            Unweighted scalar float32 loss.
        """
        b, q, c1 = class_logits.shape
        device = class_logits.device
        target_classes = torch.full((b, q), c1 - 1, dtype=torch.int64, device=device)
        for i, (src, tgt) in enumerate(matching):
            if src.numel():
                target_classes[i, src.to(device)] = targets[i].labels.to(device)[tgt.to(device)]
        weight = torch.ones(c1, device=device)
        weight[-1] = self.no_object_weight
        return F.cross_entropy(class_logits.float().transpose(1, 2), target_classes, weight)

    def mask_losses(
        self,
        mask_logits: Tensor,
        targets: Sequence[Targets],
        matching: Matching,
        num_masks: float,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Point-sampled BCE and Dice of the matched masks.

        Args:
            mask_logits: ``[B, Q, H, W]`` (tubes ``[B, Q, T, H, W]``).
            targets: the batch's targets (masks covering the same extent, any resolution).
            matching: the matcher's index pairs per image.
            num_masks: normaliser.
            generator: random generator for the points.

        Returns:
            Unweighted ``(loss_mask, loss_dice)`` float32 scalars (zeros, still connected to the graph,
            when nothing is matched).
        """
        device = mask_logits.device
        src = [mask_logits[i, s.to(device)] for i, (s, _) in enumerate(matching)]
        counts = [int(s.numel()) for s, _ in matching]
        if sum(counts) == 0:
            zero = mask_logits.float().sum() * 0.0  # keeps the graph connected
            return zero, zero
        tubes = mask_logits.ndim == 5
        frames = mask_logits.shape[2] if tubes else 1
        src_masks = torch.cat(src).float().reshape(-1, 1, *mask_logits.shape[-2:])  # [M (* T), 1, H, W]
        with torch.no_grad():
            coords = sample_points_by_uncertainty(
                src_masks.detach(),
                self.num_points,
                oversample_ratio=self.oversample_ratio,
                importance_sample_ratio=self.importance_sample_ratio,
                generator=generator,
            )  # [M (* T), P, 2]: the points of each frame of a tube
            labels = []
            for img, ((_, tgt), chunk) in enumerate(
                zip(matching, coords.split([c * frames for c in counts]))
            ):
                if tgt.numel():
                    masks = targets[img].masks[tgt.to(targets[img].masks.device)].to(device, torch.float32)
                    labels.append(point_sample(masks.reshape(-1, 1, *masks.shape[-2:]), chunk)[:, 0])
            point_labels = torch.cat(labels).reshape(sum(counts), -1)  # [M, (T *) P]
        point_logits = point_sample(src_masks, coords)[:, 0].reshape(sum(counts), -1)  # [M, (T *) P]
        return (
            sigmoid_ce_loss(point_logits, point_labels, num_masks),
            dice_loss(point_logits, point_labels, num_masks),
        )

    def match(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
        **match_kwargs: Any,
    ) -> Matching:
        """The matcher's index pairs for one prediction.

        Args:
            predictions: one decoder prediction.
            targets: the batch's targets.
            generator: random generator for the points.
            match_kwargs: passed to the matcher (e.g. ``eligible`` for many-to-many matching).
        """
        return self.matcher(
            predictions.mask_logits, predictions.class_logits, targets, generator, **match_kwargs
        )

    def single(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        num_masks: float,
        generator: torch.Generator | None = None,
        matching: Matching | None = None,
        **match_kwargs: Any,
    ) -> dict[str, Tensor]:
        """Weighted losses of one prediction (its auxiliary ones are not visited).

        Args:
            predictions: one decoder prediction.
            targets: the batch's targets.
            num_masks: normaliser.
            generator: random generator for the points.
            matching: precomputed index pairs (default: run the matcher).
            match_kwargs: passed to the matcher.

        Returns:
            ``{"loss_class", "loss_mask", "loss_dice"[, "loss_objectness" | "loss_iou"]}``.
        """
        if matching is None:
            matching = self.match(predictions, targets, generator, **match_kwargs)
        losses: dict[str, Tensor] = {}
        if predictions.class_logits is not None and self.class_weight:
            losses["loss_class"] = self.class_weight * self.class_loss(
                predictions.class_logits, targets, matching
            )
        loss_mask, loss_dice = self.mask_losses(
            predictions.mask_logits, targets, matching, num_masks, generator
        )
        losses["loss_mask"] = self.mask_weight * loss_mask
        losses["loss_dice"] = self.dice_weight * loss_dice
        if predictions.iou_scores is not None and self.objectness_weight:
            losses["loss_objectness"] = self.objectness_weight * objectness_loss(
                predictions.iou_scores, matching, num_masks
            )
        if predictions.iou_scores is not None and self.iou_weight:
            losses["loss_iou"] = self.iou_weight * matched_iou_loss(
                predictions.iou_scores,
                predictions.mask_logits,
                targets,
                matching,
                num_masks,
                unmatched_weight=self.iou_unmatched_weight,
                unmatched_target=self.iou_unmatched_target,
            )
        return losses

    def forward(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
        **match_kwargs: Any,
    ) -> dict[str, Tensor]:
        """Weighted losses of the final prediction and, with deep supervision, of each auxiliary one.

        Args:
            predictions: the model's outputs; ``mask_logits [B, Q, H, W]`` cover the same image extent
                as the target masks (pad the targets like the images), at any resolution.
            targets: B :class:`~segblocks.structures.Targets`.
            generator: random generator for point sampling (on the predictions' device).
            match_kwargs: passed to the matcher (e.g. ``eligible`` for many-to-many matching).

        Returns:
            ``{"loss_class", "loss_mask", "loss_dice"[, "loss_objectness" | "loss_iou"]}`` for the final prediction
            and the same keys suffixed ``_0``, ``_1``, ... for the auxiliary ones; every value is a
            weighted float32 scalar, so the total loss is ``sum(losses.values())``.

        Raises:
            TypeError: on targets that are not :class:`Targets` or a non-MaskPredictions input.
            ValueError: on a wrong number of targets or labels out of range.
        """
        return self.losses_and_matching(predictions, targets, generator, **match_kwargs)[0]

    def losses_and_matching(
        self,
        predictions: MaskPredictions,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
        **match_kwargs: Any,
    ) -> tuple[dict[str, Tensor], Matching]:
        """:meth:`forward`'s losses and the final prediction's matching (for losses built on it).

        Args:
            predictions: the model's outputs.
            targets: B :class:`~segblocks.structures.Targets`.
            generator: random generator for point sampling.
            match_kwargs: passed to the matcher.
        """
        if not isinstance(predictions, MaskPredictions):
            raise TypeError(f"predictions: expected MaskPredictions, got {type(predictions).__name__}")
        check_mask_logits(predictions.mask_logits)
        b = predictions.mask_logits.shape[0]
        num_classes = None if predictions.class_logits is None else predictions.class_logits.shape[-1] - 1
        self.check_targets(targets, b, num_classes)
        device = predictions.mask_logits.device
        num_masks = self.num_masks(targets, device)
        with torch.autocast(device_type=device.type, enabled=False):
            matching = self.match(predictions, targets, generator, **match_kwargs)
            losses = self.single(predictions, targets, num_masks, generator, matching)
            if self.deep_supervision:
                for i, aux in enumerate(predictions.aux):
                    for key, value in self.single(aux, targets, num_masks, generator, **match_kwargs).items():
                        losses[f"{key}_{i}"] = value
        return losses, matching
