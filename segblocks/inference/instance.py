"""Instance post-processing: top-k (query, class) pairs scored by class probability x mask quality."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from segblocks.inference.checks import check_query_outputs
from segblocks.structures import InstanceResult

__all__ = ["instance_inference"]


def instance_inference(
    class_logits: Tensor,
    mask_logits: Tensor,
    *,
    top_k: int = 100,
    is_thing: Sequence[bool] | Tensor | None = None,
) -> InstanceResult:
    """Select the ``top_k`` best (query, class) pairs of one image as instances.

    ``score = softmax(class)[q, c] * mean(sigmoid(mask_q) inside mask_q >= 0.5)`` (Mask2Former).

    Args:
        class_logits: ``[Q, C + 1]`` logits, the last column void (never selected).
        mask_logits: ``[Q, H, W]`` logits at the output resolution.
        top_k: pairs kept before the thing filter (Mask2Former: 100).
        is_thing: optional ``C`` flags; pairs of stuff classes are dropped.

    Returns:
        :class:`~segblocks.structures.InstanceResult` sorted by decreasing class probability.

    Raises:
        ValueError: on wrong shapes, a non-positive ``top_k`` or ``is_thing`` of the wrong length.
        TypeError: on non-floating logits.
    """
    check_query_outputs(class_logits, mask_logits)
    if top_k <= 0:
        raise ValueError(f"top_k: expected a positive int, got {top_k}")
    q, c1 = class_logits.shape
    num_classes = c1 - 1
    probs = class_logits.float().softmax(-1)[:, :-1]  # [Q, C]
    k = min(top_k, q * num_classes)
    top_scores, flat = probs.flatten().topk(k)
    labels = flat % num_classes
    queries = torch.div(flat, num_classes, rounding_mode="floor")
    if is_thing is not None:
        thing = torch.as_tensor(is_thing, dtype=torch.bool, device=class_logits.device).flatten()
        if thing.numel() != num_classes:
            raise ValueError(f"is_thing: expected {num_classes} flags (one per class), got {thing.numel()}")
        keep = thing[labels]
        top_scores, labels, queries = top_scores[keep], labels[keep], queries[keep]
    probs_masks = mask_logits[queries].float().sigmoid()
    binary = probs_masks >= 0.5
    mask_scores = (probs_masks * binary).flatten(1).sum(-1) / (binary.flatten(1).sum(-1) + 1e-6)
    return InstanceResult(masks=binary, labels=labels.to(torch.int64), scores=top_scores * mask_scores)
