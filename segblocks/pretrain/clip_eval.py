"""Zero-shot evaluation of a CLIP backbone on the shapes world: crops, stuff regions, mask pooling.

Three protocols, all with text embeddings from :meth:`OpenCLIPBackbone.encode_text` (segblocks'
prompt-template ensemble) and no training on the evaluated split:

- **thing crops**: each thing of a val image, cropped around its box (side 1.3 x the longer box side,
  resized to ``crop_size``), classified among the 12 thing classes;
- **stuff regions**: each stuff region, a square centred where the region is thickest, classified
  among the 6 stuff classes;
- **mask pooling**: the dense CLIP map of the whole image (``clip_dense``), averaged inside each
  ground-truth segment mask (:meth:`OpenCLIPBackbone.pool_masks`), classified among all 18 classes.

Accuracies are reported over all, seen and unseen classes (the world's :class:`ClassSplit`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from segblocks.backbones import OpenCLIPBackbone
from segblocks.data.shapes import CATEGORIES, THING_CLASSES, ShapesWorld
from segblocks.pretrain.clip_data import crop_images, stuff_crop_box, thing_crop_box

__all__ = ["ClipZeroShotResult", "evaluate_zero_shot"]

_NUM_THINGS = len(THING_CLASSES)


@dataclass
class ClipZeroShotResult:
    """Top-1 accuracies in percent (``nan`` when a group is empty) and the numbers of cases.

    Attributes:
        thing_top1: thing crops among the thing classes, all classes.
        thing_top1_seen: thing crops of seen classes.
        thing_top1_unseen: thing crops of unseen classes.
        stuff_top1: stuff regions among the stuff classes, all classes.
        stuff_top1_seen: stuff regions of seen classes.
        stuff_top1_unseen: stuff regions of unseen classes.
        mask_pool_top1: ground-truth segments by mask pooling among all classes.
        mask_pool_top1_seen: mask pooling, segments of seen classes.
        mask_pool_top1_unseen: mask pooling, segments of unseen classes.
        num_things: thing crops evaluated.
        num_stuff: stuff regions evaluated.
        num_segments: segments evaluated by mask pooling.
    """

    thing_top1: float
    thing_top1_seen: float
    thing_top1_unseen: float
    stuff_top1: float
    stuff_top1_seen: float
    stuff_top1_unseen: float
    mask_pool_top1: float
    mask_pool_top1_seen: float
    mask_pool_top1_unseen: float
    num_things: int
    num_stuff: int
    num_segments: int

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict (for JSON and logs)."""
        return {k: float(v) for k, v in asdict(self).items()}


def _accuracy(correct: Tensor, labels: Tensor, unseen: Tensor) -> tuple[float, float, float]:
    """Top-1 in percent over all, seen and unseen cases."""

    def pct(keep: Tensor) -> float:
        return float(correct[keep].float().mean() * 100) if bool(keep.any()) else float("nan")

    is_unseen = unseen[labels]
    return pct(torch.ones_like(is_unseen)), pct(~is_unseen), pct(is_unseen)


def _cat(parts: list[Tensor], dtype: torch.dtype) -> Tensor:
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)


@torch.no_grad()
def evaluate_zero_shot(
    backbone: OpenCLIPBackbone,
    world: ShapesWorld,
    *,
    num_images: int = 200,
    crop_size: int = 64,
    batch_size: int = 16,
) -> ClipZeroShotResult:
    """Evaluate ``backbone`` zero-shot on the first ``num_images`` samples of ``world``.

    Args:
        backbone: the CLIP backbone (any open_clip model; set to eval mode for the call).
        world: the split to evaluate (usually val).
        num_images: images to draw.
        crop_size: side of the thing and stuff crops.
        batch_size: images per forward pass.

    Returns:
        The :class:`ClipZeroShotResult`.

    Raises:
        ValueError: on a non-positive ``num_images``, ``crop_size`` or ``batch_size``.
    """
    for name, value in (("num_images", num_images), ("crop_size", crop_size), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value}")
    was_training = backbone.training
    backbone.eval()
    names = [c.name for c in CATEGORIES]
    text = backbone.encode_text(names)  # [18, D]: things first, then stuff
    unseen = torch.zeros(len(names), dtype=torch.bool)
    unseen[sorted(world.config.split.unseen_ids)] = True
    thing_hits, thing_labels, stuff_hits, stuff_labels, pool_hits, pool_labels = [], [], [], [], [], []
    for start in range(0, num_images, batch_size):
        samples = [world.sample(i) for i in range(start, min(start + batch_size, num_images))]
        images = torch.stack([s.image_tensor() for s in samples])
        things = [[thing_crop_box(g.bbox) for g in s.thing_segments] for s in samples]
        t_labels = torch.tensor([g.category_id for s in samples for g in s.thing_segments], dtype=torch.int64)
        stuff, s_labels_list = [], []
        for s in samples:
            boxes = []
            for g in s.segments:
                box = None if g.is_thing else stuff_crop_box(s.mask(g.id))
                if box is not None:
                    boxes.append(box)
                    s_labels_list.append(g.category_id)
            stuff.append(boxes)
        s_labels = torch.tensor(s_labels_list, dtype=torch.int64)
        if len(t_labels):
            emb = backbone.encode_image(crop_images(images, things, crop_size), normalize=True)
            thing_hits.append((emb @ text[:_NUM_THINGS].T).argmax(-1) == t_labels)
            thing_labels.append(t_labels)
        if len(s_labels):
            emb = backbone.encode_image(crop_images(images, stuff, crop_size), normalize=True)
            stuff_hits.append((emb @ text[_NUM_THINGS:].T).argmax(-1) + _NUM_THINGS == s_labels)
            stuff_labels.append(s_labels)
        dense = backbone(images)["clip_dense"]
        for b, s in enumerate(samples):
            targets = s.to_targets()
            regions = backbone.pool_masks(dense[b : b + 1], targets.masks[None])[0]
            pool_hits.append((regions @ text.T).argmax(-1) == targets.labels)
            pool_labels.append(targets.labels)
    backbone.train(was_training)
    th, tl = _cat(thing_hits, torch.bool), _cat(thing_labels, torch.int64)
    sh, sl = _cat(stuff_hits, torch.bool), _cat(stuff_labels, torch.int64)
    ph, pl = _cat(pool_hits, torch.bool), _cat(pool_labels, torch.int64)
    return ClipZeroShotResult(
        *_accuracy(th, tl, unseen),
        *_accuracy(sh, sl, unseen),
        *_accuracy(ph, pl, unseen),
        num_things=len(tl),
        num_stuff=len(sl),
        num_segments=len(pl),
    )
