"""Evaluation of a promptable SAM on shapes-world things: 1-point and 1-box mIoU.

For every thing of every image (instance mean, as SAM's single-prompt evaluations):

- **1-point oracle**: one positive click at the thing's centre-most pixel (the first click of the
  interactive protocol), multi-mask output; the best of the three masks against the thing's mask;
- **1-point top-IoU**: the same three masks, the one the IoU head ranks first;
- **1-box**: the thing's tight box, single-mask output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from segment_anything.modeling import Sam
from torch import Tensor

from segblocks.data.shapes.sample import ShapesSample
from segblocks.pretrain.shapes_sam.losses import mask_iou_per_output
from segblocks.pretrain.shapes_sam.model import decode_prompts
from segblocks.pretrain.shapes_sam.prompts import eval_prompts

__all__ = ["ShapesSamMetrics", "embed_images", "evaluate_shapes_sam"]


@dataclass(frozen=True)
class ShapesSamMetrics:
    """Mean IoU over the things of a validation set.

    Attributes:
        point_oracle_miou: 1 centre click, best of the 3 multi-mask outputs.
        point_top_iou_miou: 1 centre click, the output with the highest predicted IoU.
        box_miou: the tight box, single-mask output.
        num_things: number of things evaluated.
        num_images: number of images.
    """

    point_oracle_miou: float
    point_top_iou_miou: float
    box_miou: float
    num_things: int
    num_images: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a JSON-friendly dict."""
        return asdict(self)


def embed_images(sam: Sam, images: Tensor) -> Tensor:
    """SAM's image embeddings of a batch of ``[0, 1]`` RGB images of the encoder's ``img_size``.

    Args:
        sam: the model.
        images: ``[B, 3, S, S]`` float in ``[0, 1]``, ``S = sam.image_encoder.img_size``.

    Returns:
        ``[B, C, S / p, S / p]``.

    Raises:
        ValueError: on a bad shape.
    """
    size = sam.image_encoder.img_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise ValueError(f"images: expected [B, 3, {size}, {size}] in [0, 1], got {tuple(images.shape)}")
    embedding: Tensor = sam.image_encoder(sam.preprocess(images * 255.0))
    return embedding


@torch.no_grad()
def evaluate_shapes_sam(
    sam: Sam, samples: Sequence[ShapesSample], *, batch_size: int = 16
) -> ShapesSamMetrics:
    """1-point (oracle and top-IoU) and 1-box mIoU of ``sam`` on the things of ``samples``.

    Args:
        sam: the model (put in eval mode here, restored after).
        samples: shapes-world samples of the encoder's ``img_size``.
        batch_size: images per encoder call.

    Returns:
        The metrics (NaN mIoU when there is no thing).

    Raises:
        TypeError: if ``sam`` is not a ``Sam`` or ``samples`` holds something else than samples.
        ValueError: on an empty ``samples``, a bad ``batch_size`` or a sample of the wrong size.
    """
    if not isinstance(sam, Sam):
        raise TypeError(f"sam: expected a segment_anything Sam, got {type(sam).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if len(samples) == 0:
        raise ValueError("samples: expected at least one sample")
    if not all(isinstance(s, ShapesSample) for s in samples):
        raise TypeError("samples: expected a sequence of ShapesSample")
    device = next(sam.parameters()).device
    was_training = sam.training
    sam.eval()
    oracle: list[Tensor] = []
    top: list[Tensor] = []
    box: list[Tensor] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        images = torch.stack([s.image_tensor() for s in chunk]).to(device)
        embeddings = embed_images(sam, images)
        for i, sample in enumerate(chunk):
            points, boxes, masks = eval_prompts(sample)
            if len(masks) == 0:
                continue
            points, boxes, masks = points.to(device), boxes.to(device), masks.to(device)
            labels = torch.ones(points.shape[:2], device=device)
            emb = embeddings[i : i + 1]
            logits, iou_pred = decode_prompts(sam, emb, points=(points, labels), multimask_output=True)
            ious = mask_iou_per_output(logits, masks)  # [N, 3]
            oracle.append(ious.max(dim=1).values)
            top.append(ious.gather(1, iou_pred.argmax(dim=1, keepdim=True))[:, 0])
            logits, _ = decode_prompts(sam, emb, boxes=boxes, multimask_output=False)
            box.append(mask_iou_per_output(logits, masks)[:, 0])
    sam.train(was_training)
    n = sum(len(x) for x in oracle)

    def mean(values: list[Tensor]) -> float:
        return float(torch.cat(values).mean()) if n else float("nan")

    return ShapesSamMetrics(
        point_oracle_miou=mean(oracle),
        point_top_iou_miou=mean(top),
        box_miou=mean(box),
        num_things=n,
        num_images=len(samples),
    )
