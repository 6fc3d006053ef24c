"""OMG-Seg's co-training data on the shapes world: three kinds of batch, one task a batch.

* **images** as 2-frame pseudo-clips (the official code trains COCO panoptic as 2-frame pseudo-video):
  each image is repeated as both frames and its masks become tubes, so the shared decoder sees the
  same 5-D input it sees on clips;
* **clips** of 2 frames (video instance/panoptic: things are tracks, stuff regions too);
* **prompts**: a class-agnostic batch of images whose targets are the masks of ``num_prompts``
  segments (drawn with replacement when an image has fewer, as the official "sam" branch replicates
  instances), each prompted by one random point inside it or its (1 %-jittered) box, prompt ``i``
  asking for target ``i``.

Every kind keeps only the classes of the training vocabulary (the held-out classes never appear:
their images are drawn from the world without them), labels re-indexed to positions in it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from segblocks.data import (
    CATEGORIES,
    ShapesClipExample,
    ShapesDataset,
    ShapesExample,
    ShapesWorldConfig,
    collate_clip_batch,
    jitter_box,
    sample_point,
)
from segblocks.structures import Batch, Prompts, Targets

__all__ = [
    "KINDS",
    "PromptedImages",
    "collate_clips_seen",
    "collate_prompted",
    "collate_pseudo_clips",
    "relabel",
    "seen_world",
    "task_schedule",
]

#: The batch kinds of co-training, in the order of the balanced schedule.
KINDS = ("image", "clip", "prompt")


def seen_world(config: ShapesWorldConfig) -> ShapesWorldConfig:
    """The same world without its split's held-out classes: no image or clip drawn from it shows one.

    Args:
        config: the world (its ``split`` names the held-out classes).
    """
    unseen = set(config.split.unseen)
    return dataclasses.replace(
        config,
        thing_classes=tuple(c for c in config.thing_classes if c not in unseen),
        stuff_classes=tuple(c for c in config.stuff_classes if c not in unseen),
    )


def relabel(targets: Targets, seen_ids: Sequence[int]) -> Targets:
    """Targets with labels re-indexed from category ids to positions in ``seen_ids``.

    Args:
        targets: one image's or clip's targets, labels = shapes-world category ids.
        seen_ids: sorted category ids of the training vocabulary.

    Raises:
        ValueError: on a label outside ``seen_ids`` (a held-out class in training data).
    """
    index = torch.full((max(c.id for c in CATEGORIES) + 1,), -1, dtype=torch.int64)
    index[torch.tensor(list(seen_ids))] = torch.arange(len(seen_ids))
    labels = index[targets.labels]
    if bool((labels < 0).any()):
        raise ValueError(
            f"targets: labels {targets.labels.tolist()} include classes outside the training vocabulary"
        )
    return dataclasses.replace(targets, labels=labels)


def collate_pseudo_clips(examples: list[ShapesExample], seen_ids: Sequence[int], frames: int = 2) -> Batch:
    """Images as ``frames``-frame pseudo-clips ``[B, T, 3, H, W]`` with tube targets.

    Args:
        examples: shapes-world images of one size.
        seen_ids: sorted category ids of the training vocabulary.
        frames: frames of a pseudo-clip (official: 2).
    """
    images = torch.stack([e.image for e in examples])
    targets = []
    for e in examples:
        t = relabel(e.targets, seen_ids)
        targets.append(dataclasses.replace(t, masks=t.masks[:, None].expand(-1, frames, -1, -1).contiguous()))
    return Batch(images=images[:, None].expand(-1, frames, -1, -1, -1).contiguous(), targets=targets)


def collate_clips_seen(examples: list[ShapesClipExample], seen_ids: Sequence[int]) -> Batch:
    """Clips ``[B, T, 3, H, W]`` with tube targets labelled in the training vocabulary.

    Args:
        examples: shapes-world clips of one length and size (drawn without the held-out classes).
        seen_ids: sorted category ids of the training vocabulary.
    """
    batch = collate_clip_batch(examples)
    assert batch.targets is not None
    return Batch(images=batch.images, targets=[relabel(t, seen_ids) for t in batch.targets])


@dataclasses.dataclass
class PromptedExample:
    """One image of the prompt branch: the image, its prompts and the masks they ask for."""

    image: Tensor
    prompts: Prompts
    targets: Targets


class PromptedImages(Dataset[PromptedExample]):
    """Shapes-world images with ``num_prompts`` point or box prompts each (class-agnostic targets).

    Each image draws its prompt kind (points or boxes, even odds), then ``num_prompts`` of its
    segments (things and stuff; without replacement while they last), deterministically per index.

    Args:
        images: the images to prompt.
        num_prompts: prompts an image (official: 20).
        seed: base seed of the prompt draws.
        box_jitter: largest box side move, as a fraction of the box (official: about 1 %).
    """

    def __init__(
        self, images: ShapesDataset, *, num_prompts: int, seed: int = 0, box_jitter: float = 0.01
    ) -> None:
        if num_prompts < 1:
            raise ValueError(f"num_prompts: expected at least one prompt an image, got {num_prompts}")
        self.images = images
        self.num_prompts = num_prompts
        self.seed = seed
        self.box_jitter = box_jitter

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> PromptedExample:
        example = self.images[index]
        rng = np.random.default_rng((self.seed, index))
        masks = example.targets.masks
        n = len(masks)
        order = np.concatenate([rng.permutation(n) for _ in range(-(-self.num_prompts // n))])[
            : self.num_prompts
        ]
        chosen = masks[torch.from_numpy(order)]
        arrays = chosen.numpy()
        if rng.random() < 0.5:
            xy = [sample_point(m, rng) for m in arrays]
            points = torch.tensor([[[x + 0.5, y + 0.5]] for x, y in xy], dtype=torch.float32)
            prompts = Prompts(points=points, point_labels=torch.ones(len(xy), 1, dtype=torch.int64))
        else:
            boxes = torch.tensor(
                [jitter_box(m, rng, jitter=self.box_jitter) for m in arrays], dtype=torch.float32
            )
            prompts = Prompts(boxes=boxes)
        targets = Targets(masks=chosen, labels=torch.zeros(len(chosen), dtype=torch.int64))
        return PromptedExample(image=example.image, prompts=prompts, targets=targets)


def collate_prompted(examples: list[PromptedExample]) -> Batch:
    """Images ``[B, 3, H, W]`` with one :class:`Prompts` and its targets each.

    Args:
        examples: items of :class:`PromptedImages` (one image size).
    """
    return Batch(
        images=torch.stack([e.image for e in examples]),
        targets=[e.targets for e in examples],
        prompts=[e.prompts for e in examples],
    )


def task_schedule(mix: dict[str, int]) -> list[str]:
    """The balanced schedule: one cycle of batch kinds, each ``mix[kind]`` times, interleaved.

    ``{"image": 1, "clip": 1, "prompt": 1}`` gives ``["image", "clip", "prompt"]``; ``{"image": 2,
    "clip": 1}`` gives ``["image", "clip", "image"]``. Step ``s`` trains on kind ``cycle[s % len]``.

    Args:
        mix: ``{kind: batches a cycle}`` over :data:`KINDS` (0 leaves a kind out).

    Raises:
        ValueError: on an unknown kind, a negative count, or nothing to train on.
    """
    unknown = sorted(set(mix) - set(KINDS))
    if unknown or any(v < 0 for v in mix.values()) or sum(mix.values()) == 0:
        raise ValueError(
            f"mix: expected non-negative batch counts of {KINDS}, at least one positive; got {mix}"
        )
    total = sum(mix.values())
    slots: list[tuple[float, int, str]] = []
    for order, kind in enumerate(KINDS):
        count = mix.get(kind, 0)
        slots += [((i + 0.5) / count, order, kind) for i in range(count)]
    cycle = [kind for _, _, kind in sorted(slots)]
    assert len(cycle) == total
    return cycle
