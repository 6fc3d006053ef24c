"""Hungarian matching of predicted masks to ground-truth segments (Mask2Former's matcher).

Cost = ``class_weight * (-p_class) + mask_weight * BCE + dice_weight * Dice``, the mask terms on
``num_points`` uniformly random points shared by every prediction and target of an image (for mask
tubes of a clip, the same points in every frame, costs summed over the tube). Costs are
computed in float32 without autocast and without gradients; the assignment is SciPy's
``linear_sum_assignment`` on the CPU (one device-to-host copy per image, inherent to the algorithm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.matchers.costs import pairwise_class_cost, pairwise_dice_cost, pairwise_sigmoid_ce_cost
from segblocks.ops import point_sample
from segblocks.structures import Targets

__all__ = ["HungarianMatcher", "Matcher", "Matching", "check_mask_logits", "prompt_slots", "sample_at_points"]

#: Per image, ``(prediction indices [M], target indices [M])`` int64 on the CPU.
Matching = list[tuple[Tensor, Tensor]]


class Matcher(Protocol):
    """What a set criterion needs from a matcher (Hungarian, by construction, many-to-many)."""

    def __call__(
        self,
        mask_logits: Tensor,
        class_logits: Tensor | None,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> Matching:
        """Index pairs per image.

        Args:
            mask_logits: ``[B, Q, H, W]`` (tubes ``[B, Q, T, H, W]``).
            class_logits: ``[B, Q, C + 1]`` or None.
            targets: B :class:`~segblocks.structures.Targets`.
            generator: random generator for point sampling.
        """
        ...


def check_mask_logits(mask_logits: Tensor) -> None:
    """Raise unless ``mask_logits`` is a floating ``[B, Q, H, W]`` or ``[B, Q, T, H, W]`` tensor."""
    if not isinstance(mask_logits, Tensor) or mask_logits.ndim not in (4, 5):
        shape = tuple(mask_logits.shape) if isinstance(mask_logits, Tensor) else type(mask_logits).__name__
        raise ValueError(f"mask_logits: expected [B, Q, H, W] or tubes [B, Q, T, H, W], got {shape}")
    check_dtype("mask_logits", mask_logits, "floating")


def prompt_slots(mask_logits: Tensor, targets: Sequence[Targets], outputs_per_prompt: int) -> int:
    """Validate a prompt matcher's inputs; return the number of prompt slots ``P`` (``Q = P * k``).

    Args:
        mask_logits: ``[B, Q, H, W]`` (or tubes) of ``k`` consecutive outputs per prompt.
        targets: B :class:`~segblocks.structures.Targets`.
        outputs_per_prompt: ``k``.

    Raises:
        ValueError: on logits that are not ``[B, Q(, T), H, W]`` floats, ``Q`` not a multiple of
            ``outputs_per_prompt``, or a number of targets other than ``B``.
    """
    check_mask_logits(mask_logits)
    b, q = mask_logits.shape[:2]
    if q % outputs_per_prompt:
        raise ValueError(f"mask_logits: {q} queries are not {outputs_per_prompt} outputs for each prompt")
    if len(targets) != b:
        raise ValueError(f"targets: expected {b} Targets (one per image), got {len(targets)}")
    return q // outputs_per_prompt


def sample_at_points(masks: Tensor, points: Tensor) -> Tensor:
    """Sample masks (or mask tubes, the same points in every frame) as float32 at normalised points.

    Args:
        masks: ``[M, H, W]`` or ``[M, T, H, W]`` logits or 0/1 masks.
        points: ``[1, P, 2]`` shared points or ``[M, P, 2]`` (``[M * T, P, 2]`` for tubes), ``(x, y)``
            in ``[0, 1]``.

    Returns:
        ``[M, P]`` (``[M, T * P]`` for tubes) float32 samples.
    """
    m = masks.shape[0]
    frames = masks.reshape(-1, 1, *masks.shape[-2:]).float()  # [M (* T), 1, H, W]
    return point_sample(frames, points)[:, 0].reshape(m, -1)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to targets minimising the point-sampled cost.

    Args:
        class_weight: weight of the class cost (Mask2Former: 2.0).
        mask_weight: weight of the point-sampled BCE cost (5.0).
        dice_weight: weight of the point-sampled Dice cost (5.0).
        num_points: points per image (12,544 = 112 x 112 at paper scale).
    """

    def __init__(
        self,
        *,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        num_points: int = 12544,
    ) -> None:
        super().__init__()
        if min(class_weight, mask_weight, dice_weight) < 0:
            raise ValueError(
                f"class_weight, mask_weight, dice_weight: expected non-negative, "
                f"got {class_weight}, {mask_weight}, {dice_weight}"
            )
        if num_points <= 0:
            raise ValueError(f"num_points: expected a positive int, got {num_points}")
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.num_points = num_points

    def cost_matrix(
        self,
        mask_logits: Tensor,
        class_logits: Tensor | None,
        targets: Targets,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The ``[Q, N]`` float32 cost matrix of one image.

        Args:
            mask_logits: ``[Q, H, W]`` predicted mask logits (``[Q, T, H, W]`` tubes).
            class_logits: ``[Q, C + 1]`` class logits, or None (class-agnostic matching).
            targets: the image's ground truth; its masks cover the same extent as ``mask_logits``
                (any resolution).
            generator: random generator for the points.

        Returns:
            ``[Q, N]`` costs.
        """
        q = mask_logits.shape[0]
        n = len(targets)
        device = mask_logits.device
        points = torch.rand(1, self.num_points, 2, device=device, generator=generator)
        pred = sample_at_points(mask_logits, points)  # [Q, (T *) P]
        tgt = sample_at_points(targets.masks.to(device=device, dtype=torch.float32), points)
        cost = self.mask_weight * pairwise_sigmoid_ce_cost(pred, tgt)
        cost = cost + self.dice_weight * pairwise_dice_cost(pred, tgt)
        if class_logits is not None and self.class_weight:
            cost = cost + self.class_weight * pairwise_class_cost(class_logits, targets.labels.to(device))
        assert cost.shape == (q, n)
        return cost

    @torch.no_grad()
    def forward(
        self,
        mask_logits: Tensor,
        class_logits: Tensor | None,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> Matching:
        """Match the predictions of every image to its targets.

        Args:
            mask_logits: ``[B, Q, H, W]`` mask logits (``[B, Q, T, H, W]`` tubes).
            class_logits: ``[B, Q, C + 1]`` class logits, or None to match on masks only.
            targets: B :class:`~segblocks.structures.Targets` (N may be 0).
            generator: random generator for the points (on ``mask_logits``' device).

        Returns:
            B pairs ``(pred_idx [M], target_idx [M])`` int64 on the CPU, ``M = min(Q, N)``, sorted by
            prediction index.

        Raises:
            ValueError: on shape mismatches or a wrong number of targets.
            TypeError: on non-floating logits or targets that are not :class:`Targets`.
        """
        check_mask_logits(mask_logits)
        b, q = mask_logits.shape[:2]
        if class_logits is not None:
            check_ndim("class_logits", class_logits, 3, "[B, Q, C + 1]")
            if class_logits.shape[:2] != (b, q):
                raise ValueError(
                    f"class_logits: expected shape ({b}, {q}, C + 1), got {tuple(class_logits.shape)}"
                )
        if len(targets) != b:
            raise ValueError(f"targets: expected {b} Targets (one per image), got {len(targets)}")
        matching: Matching = []
        with torch.autocast(device_type=mask_logits.device.type, enabled=False):
            for i, t in enumerate(targets):
                if not isinstance(t, Targets):
                    raise TypeError(
                        f"targets[{i}]: expected a segblocks.structures.Targets, got {type(t).__name__}"
                    )
                if len(t) == 0:
                    empty = torch.empty(0, dtype=torch.int64)
                    matching.append((empty, empty.clone()))
                    continue
                cost = self.cost_matrix(
                    mask_logits[i], None if class_logits is None else class_logits[i], t, generator
                )
                cost_np = cost.cpu().numpy()
                if not np.isfinite(cost_np).all():
                    raise ValueError(
                        f"mask_logits, class_logits: image {i} gives non-finite matching costs "
                        "(NaN or inf in the predictions)"
                    )
                rows, cols = linear_sum_assignment(cost_np)
                matching.append(
                    (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
                )
        return matching
