"""Uni-OVSeg's point-grid inference: a grid of point prompts -> filtered, de-duplicated, named masks.

1. :func:`point_grid`: ``n x n`` points at the pixel-aligned cell centres (released code: 20 x 20).
2. Every point answers with ``k`` candidate masks and predicted IoUs; keep those with predicted IoU
   ``>= iou_threshold`` (released code: 0.65 after its double sigmoid, see the model card).
3. :func:`mask_nms` (inner-NMS): walking from the best score down, drop a mask whose IoU with a kept
   one reaches ``iou_threshold`` (0.5) or that lies ``>= inner_threshold`` (70 %) inside a kept one.
4. :func:`proposal_class_logits`: each kept mask's class probabilities (CLIP against any vocabulary)
   and predicted IoU become ``[M, C + 1]`` logits whose softmax is ``(iou * p_c, 1 - iou)`` (or,
   with the paper's rule ``label_rule="argmax"``, ``iou`` on the most similar class alone), so the
   shared semantic and panoptic post-processing turn the named proposals into maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_shape

__all__ = ["LABEL_RULES", "mask_nms", "point_grid", "proposal_class_logits"]

#: How a named proposal becomes class logits (:func:`proposal_class_logits`).
LABEL_RULES: tuple[str, ...] = ("soft", "argmax")


def point_grid(points_per_side: int, image_size: tuple[int, int]) -> Tensor:
    """``[n * n, 2]`` float ``(x, y)`` pixel coordinates of a uniform grid at cell centres, row by row.

    Args:
        points_per_side: ``n``.
        image_size: ``(H, W)``.

    Raises:
        ValueError: on ``n < 1`` or a non-positive image size.
    """
    if not isinstance(points_per_side, int) or isinstance(points_per_side, bool) or points_per_side < 1:
        raise ValueError(f"points_per_side: expected an int >= 1, got {points_per_side!r}")
    h, w = image_size
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size: expected a positive (H, W), got {image_size}")
    n = points_per_side
    cells = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ys, xs = torch.meshgrid(cells * h, cells * w, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def mask_nms(
    masks: Tensor,
    scores: Tensor,
    *,
    iou_threshold: float = 0.5,
    inner_threshold: float = 0.7,
    downsample: float = 0.5,
) -> Tensor:
    """Inner-NMS on binary masks: indices of the kept masks, best score first.

    Args:
        masks: ``[M, H, W]`` bool masks.
        scores: ``[M]`` scores (predicted IoU).
        iou_threshold: drop a mask whose IoU with a kept (better) mask reaches this.
        inner_threshold: drop a mask whose area lies at least this fraction inside a kept mask.
        downsample: compare masks at this fraction of their resolution (released code: 0.5).

    Returns:
        ``[K]`` int64 indices into ``masks``.

    Raises:
        ValueError: on shapes that do not fit or thresholds outside ``[0, 1]``.
        TypeError: on non-bool masks.
    """
    check_ndim("masks", masks, 3, "[M, H, W]")
    check_dtype("masks", masks, "bool")
    check_shape("scores", scores, (masks.shape[0],), f"[M={masks.shape[0]}]")
    for name, v in (("iou_threshold", iou_threshold), ("inner_threshold", inner_threshold)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}: expected a value in [0, 1], got {v}")
    if not 0.0 < downsample <= 1.0:
        raise ValueError(f"downsample: expected a value in (0, 1], got {downsample}")
    if masks.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=masks.device)
    m = masks.float()[:, None]
    if downsample < 1.0:
        size = (max(1, round(masks.shape[1] * downsample)), max(1, round(masks.shape[2] * downsample)))
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    flat = (m[:, 0] > 0.5).flatten(1).float()  # [M, P]
    order = scores.float().argsort(descending=True)
    flat = flat[order]
    inter = flat @ flat.T
    area = flat.sum(1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_min(1.0)
    inside = inter / area[:, None].clamp_min(1.0)  # [i, j]: fraction of mask i inside mask j
    kept: list[int] = []
    for i in range(len(order)):
        if area[i] == 0:
            continue
        if any(iou[i, j] >= iou_threshold or inside[i, j] >= inner_threshold for j in kept):
            continue
        kept.append(i)
    return order[torch.as_tensor(kept, dtype=torch.int64, device=order.device)]


def proposal_class_logits(
    class_probs: Tensor, scores: Tensor, eps: float = 1e-6, *, label_rule: str = "soft"
) -> Tensor:
    """``[M, C + 1]`` logits whose softmax is ``(score * p_1, ..., score * p_C, 1 - score)``.

    With ``label_rule="argmax"`` the class probabilities are first replaced by the one-hot of each
    proposal's most similar class (Uni-OVSeg Sec. 3.3: the mask takes "the category with the maximum
    similarity as the label"), so its confidence is the score alone, ``(score, 1 - score)``; with
    ``"soft"`` the confidence is ``score * max_c p_c`` and the semantic map mixes classes.

    Args:
        class_probs: ``[M, C]`` class probabilities of each proposal (rows sum to 1).
        scores: ``[M]`` proposal confidence in ``[0, 1]`` (predicted IoU).
        eps: floor inside the logarithm.
        label_rule: ``"soft"`` (default) or ``"argmax"``.

    Raises:
        ValueError: on shapes that do not fit or an unknown ``label_rule``.
    """
    check_ndim("class_probs", class_probs, 2, "[M, C]")
    check_shape("scores", scores, (class_probs.shape[0],), f"[M={class_probs.shape[0]}]")
    if label_rule not in LABEL_RULES:
        raise ValueError(f"label_rule: expected one of {LABEL_RULES}, got {label_rule!r}")
    probs_c = class_probs.float()
    if label_rule == "argmax":
        probs_c = F.one_hot(probs_c.argmax(-1), probs_c.shape[1]).float()
    s = scores.float().clamp(0, 1)[:, None]
    probs = torch.cat([probs_c * s, 1 - s], dim=1)
    return probs.clamp_min(eps).log()
