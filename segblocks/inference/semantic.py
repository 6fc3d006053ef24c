"""Semantic post-processing: per-pixel class scores from soft class x mask probabilities."""

from __future__ import annotations

import torch
from torch import Tensor

from segblocks.inference.checks import check_query_outputs
from segblocks.structures import SemanticResult

__all__ = ["semantic_inference"]


def semantic_inference(class_logits: Tensor, mask_logits: Tensor) -> SemanticResult:
    """``scores[c] = sum_q softmax(class)[q, c] * sigmoid(mask[q])``; the label is the arg-max.

    Args:
        class_logits: ``[Q, C + 1]`` logits, the last column void (dropped).
        mask_logits: ``[Q, H, W]`` logits at the output resolution.

    Returns:
        :class:`~segblocks.structures.SemanticResult` with ``label_map [H, W]`` and ``scores [C, H, W]``.

    Raises:
        ValueError: on wrong ranks or a query-count mismatch.
        TypeError: on non-floating inputs.
    """
    check_query_outputs(class_logits, mask_logits)
    probs = class_logits.float().softmax(-1)[:, :-1]
    scores = torch.einsum("qc,qhw->chw", probs, mask_logits.float().sigmoid())
    return SemanticResult(label_map=scores.argmax(0), scores=scores)
