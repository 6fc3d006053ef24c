"""The tiny SAM's training step: every prompt group of every image through the decoder, SAM's losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from segment_anything.modeling import Sam
from torch import Tensor

from segblocks.pretrain.shapes_sam.evaluate import embed_images
from segblocks.pretrain.shapes_sam.losses import SamLossWeights, prompt_losses
from segblocks.pretrain.shapes_sam.model import decode_prompts
from segblocks.pretrain.shapes_sam.prompts import PromptGroup

__all__ = ["sam_training_step"]


def sam_training_step(
    sam: Sam, images: Tensor, groups: Sequence[Sequence[PromptGroup]], weights: SamLossWeights
) -> dict[str, Tensor]:
    """SAM's losses of one batch, averaged over its prompts: ``focal``, ``dice`` and ``iou``.

    Each image is embedded once; each of its prompt groups is one prompt-encoder and mask-decoder
    call; the loss is taken at the decoder's resolution against area-averaged targets.

    Args:
        sam: the model (on the images' device).
        images: ``[B, 3, S, S]`` in ``[0, 1]``, ``S`` the encoder's ``img_size``.
        groups: per image, its prompt groups (targets ``[N, S, S]``), e.g. from
            :func:`~segblocks.pretrain.shapes_sam.sample_training_prompts`.
        weights: the loss weights.

    Returns:
        ``{"focal", "dice", "iou"}``: scalar losses (their sum is the training loss).

    Raises:
        ValueError: when ``groups`` does not hold one entry per image (and on bad images).
    """
    if len(groups) != images.shape[0]:
        raise ValueError(f"groups: expected one list per image ({images.shape[0]}), got {len(groups)}")
    embeddings = embed_images(sam, images)
    sums = {name: embeddings.new_zeros(()) for name in ("focal", "dice", "iou")}
    num_prompts = 0
    for i, image_groups in enumerate(groups):
        for group in image_groups:
            prompts = group.prompts.to(images.device)
            points = None
            if prompts.points is not None and prompts.point_labels is not None:
                points = (prompts.points, prompts.point_labels.float())
            logits, iou_pred = decode_prompts(
                sam,
                embeddings[i : i + 1],
                points=points,
                boxes=prompts.boxes,
                multimask_output=group.multimask,
                upsample=False,
            )
            low_res = (int(logits.shape[-2]), int(logits.shape[-1]))
            soft = F.adaptive_avg_pool2d(group.targets.to(images.device).float()[:, None], low_res)[:, 0]
            for name, value in prompt_losses(logits, iou_pred, soft, weights).items():
                sums[name] = sums[name] + value
            num_prompts += len(group.targets)
    return {name: value / max(num_prompts, 1) for name, value in sums.items()}
