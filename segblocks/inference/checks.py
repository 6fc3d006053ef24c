"""Input checks shared by the post-processing functions."""

from __future__ import annotations

from torch import Tensor

from segblocks._validation import check_dtype, check_ndim

__all__ = ["check_query_outputs"]


def check_query_outputs(class_logits: Tensor, mask_logits: Tensor) -> None:
    """Check one image's ``class_logits [Q, C + 1]`` and ``mask_logits [Q, H, W]``.

    Raises:
        ValueError: on wrong ranks, fewer than 2 class columns or a query-count mismatch.
        TypeError: on non-floating inputs.
    """
    check_ndim("class_logits", class_logits, 2, "[Q, C + 1]")
    check_dtype("class_logits", class_logits, "floating")
    check_ndim("mask_logits", mask_logits, 3, "[Q, H, W]")
    check_dtype("mask_logits", mask_logits, "floating")
    if class_logits.shape[1] < 2:
        raise ValueError(
            f"class_logits: expected at least one class plus void, got {tuple(class_logits.shape)}"
        )
    if class_logits.shape[0] != mask_logits.shape[0]:
        raise ValueError(
            f"mask_logits: expected {class_logits.shape[0]} queries (class_logits'), got {tuple(mask_logits.shape)}"
        )
