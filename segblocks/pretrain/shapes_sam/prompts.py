"""Prompts for the tiny SAM: what training samples per image, and the fixed prompts of evaluation.

Coordinates follow ``segment_anything``'s convention in the input-image frame: points are ``(x, y)``
pixel indices and boxes ``(x_min, y_min, x_max, y_max)`` of the first and last covered pixel (the
prompt encoder adds half a pixel to both). The shapes world's boxes are pixel *edges*
(``x2 = last column + 1``), so :func:`edge_box_to_sam` subtracts one from ``x2`` and ``y2``.

Three prompt kinds, as SAM trains them:

- **single point** (ambiguous, multi-mask output): the target is the thing's mask or, with
  probability ``part_prob``, its visible part; the point is drawn uniformly inside the target, so a
  point inside a part is seen with both targets and the three outputs learn to cover part and whole;
- **box** (single-mask output): the thing's (or, rarely, the part's) box, each side jittered by up to
  ``box_jitter`` of the box size;
- **several points** (single-mask output): 2-3 positive points in the target and, half of the time,
  one negative point inside the target's box but outside the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from segblocks.data.shapes.prompts import first_click, jitter_box, sample_point
from segblocks.data.shapes.sample import ShapesSample
from segblocks.structures import Prompts

__all__ = [
    "MAX_BOX_JITTER",
    "PromptCounts",
    "PromptGroup",
    "edge_box_to_sam",
    "eval_prompts",
    "sample_training_prompts",
]

#: The largest training-box jitter, as a fraction of the box size (each side moves by at most this).
MAX_BOX_JITTER = 0.5
_MAX_POINTS = 4  # positive points (<= 3) + one negative; shorter prompts are padded with label -1


@dataclass(frozen=True)
class PromptCounts:
    """How many prompts of each kind one training image gets.

    Attributes:
        points: single-point prompts (multi-mask output, min-over-masks loss).
        boxes: box prompts (single-mask output).
        multi_points: prompts of several points (single-mask output).
        part_prob: probability that a single-point or several-point prompt targets the part.
        box_part_prob: probability that a box prompt targets the part.
        box_jitter: largest move of a box side, as a fraction of the box size.
    """

    points: int = 4
    boxes: int = 3
    multi_points: int = 1
    part_prob: float = 0.35
    box_part_prob: float = 0.15
    box_jitter: float = 0.1

    def __post_init__(self) -> None:
        for name in ("points", "boxes", "multi_points"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
        if self.points + self.boxes + self.multi_points == 0:
            raise ValueError("points, boxes, multi_points: at least one prompt per image is needed")
        for name in ("part_prob", "box_part_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
        if not 0.0 <= self.box_jitter <= MAX_BOX_JITTER:
            raise ValueError(
                f"box_jitter: expected a fraction in [0, {MAX_BOX_JITTER}], got {self.box_jitter!r}"
            )


@dataclass
class PromptGroup:
    """Prompts of one kind for one image, each with its target mask (one ``MaskDecoder`` call).

    Attributes:
        prompts: N :class:`~segblocks.structures.Prompts` rows: ``points [N, P, 2]`` with
            ``point_labels [N, P]`` (1 positive, 0 negative, -1 padding), or ``boxes [N, 4]``.
        targets: ``[N, H, W]`` bool target mask of each prompt.
        multimask: the decoder predicts three masks (ambiguous single points) instead of one.
    """

    prompts: Prompts
    targets: Tensor
    multimask: bool


def edge_box_to_sam(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A shapes-world edge box ``(x1, y1, x2, y2)`` as SAM's ``(x_min, y_min, x_max, y_max)``.

    Args:
        box: pixel edges, ``x2 = last column + 1``.

    Returns:
        First and last covered pixel indices.

    Raises:
        ValueError: if the box is not 4 numbers with ``x2 > x1`` and ``y2 > y1``.
    """
    if len(box) != 4 or not (box[2] > box[0] and box[3] > box[1]):
        raise ValueError(f"box: expected (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, max(x1, x2 - 1.0), max(y1, y2 - 1.0)


def _target(
    whole: NDArray[np.bool_], part: NDArray[np.bool_], p: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    return part if part.any() and rng.random() < p else whole


def _multi_prompt(
    target: NDArray[np.bool_], rng: np.random.Generator
) -> tuple[list[tuple[int, int]], list[int]]:
    n_pos = int(rng.integers(2, _MAX_POINTS))
    points = [sample_point(target, rng) for _ in range(n_pos)]
    labels = [1] * n_pos
    x1, y1, x2, y2 = (round(v) for v in jitter_box(target, rng, jitter=0.0))
    ring = np.zeros_like(target)
    ring[y1:y2, x1:x2] = True
    ring &= ~target
    if ring.any() and rng.random() < 0.5:
        points.append(sample_point(ring, rng))
        labels.append(0)
    while len(points) < _MAX_POINTS:
        points.append((0, 0))
        labels.append(-1)
    return points, labels


def _stack(masks: list[NDArray[np.bool_]], size: tuple[int, int]) -> Tensor:
    if not masks:
        return torch.zeros((0, *size), dtype=torch.bool)
    return torch.from_numpy(np.stack(masks))


def sample_training_prompts(
    sample: ShapesSample, rng: np.random.Generator, counts: PromptCounts
) -> list[PromptGroup]:
    """Draw the training prompts of one image (each prompt picks a thing uniformly at random).

    Args:
        sample: a shapes-world sample with ``instance_masks`` and ``part_masks`` ``[N, H, W]``.
        rng: the random generator (fixes every draw).
        counts: how many prompts of each kind, and how they are drawn.

    Returns:
        The non-empty groups, in the order single points, boxes, several points (none when the
        image has no thing).

    Raises:
        TypeError: on a ``sample`` that is not a ``ShapesSample`` or ``counts`` that is not
            ``PromptCounts``.
    """
    if not isinstance(sample, ShapesSample):
        raise TypeError(f"sample: expected a ShapesSample, got {type(sample).__name__}")
    if not isinstance(counts, PromptCounts):
        raise TypeError(f"counts: expected PromptCounts, got {type(counts).__name__}")
    wholes, parts = sample.instance_masks, sample.part_masks
    size = sample.size
    n = len(wholes)
    pts, pt_t, boxes, box_t, mc, ml, mt = [], [], [], [], [], [], []
    if n:
        for _ in range(counts.points):
            i = int(rng.integers(n))
            target = _target(wholes[i], parts[i], counts.part_prob, rng)
            pts.append([sample_point(target, rng)])
            pt_t.append(target)
        for _ in range(counts.boxes):
            i = int(rng.integers(n))
            target = _target(wholes[i], parts[i], counts.box_part_prob, rng)
            jitter = counts.box_jitter * float(rng.random())
            boxes.append(edge_box_to_sam(jitter_box(target, rng, jitter=jitter)))
            box_t.append(target)
        for _ in range(counts.multi_points):
            i = int(rng.integers(n))
            target = _target(wholes[i], parts[i], counts.part_prob, rng)
            clicks, click_labels = _multi_prompt(target, rng)
            mc.append(clicks)
            ml.append(click_labels)
            mt.append(target)
    groups: list[PromptGroup] = []
    if pts:  # single points: ambiguous, three outputs
        points = torch.tensor(pts, dtype=torch.float32).reshape(-1, 1, 2)
        labels = torch.ones(points.shape[:2], dtype=torch.int64)
        groups.append(PromptGroup(Prompts(points=points, point_labels=labels), _stack(pt_t, size), True))
    if boxes:
        box_prompts = Prompts(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        groups.append(PromptGroup(box_prompts, _stack(box_t, size), False))
    if mc:  # several points, padded with label -1
        points = torch.tensor(mc, dtype=torch.float32).reshape(-1, _MAX_POINTS, 2)
        labels = torch.tensor(ml, dtype=torch.int64).reshape(-1, _MAX_POINTS)
        groups.append(PromptGroup(Prompts(points=points, point_labels=labels), _stack(mt, size), False))
    return groups


def eval_prompts(sample: ShapesSample) -> tuple[Tensor, Tensor, Tensor]:
    """The fixed evaluation prompts of every thing: its centre-most pixel and its tight box.

    Args:
        sample: a shapes-world sample.

    Returns:
        ``(points [N, 1, 2], boxes [N, 4], masks [N, H, W] bool)`` for the ``N`` things; the point
        is the first click of the interactive protocol (the distance-transform maximum).

    Raises:
        TypeError: on a ``sample`` that is not a ``ShapesSample``.
    """
    if not isinstance(sample, ShapesSample):
        raise TypeError(f"sample: expected a ShapesSample, got {type(sample).__name__}")
    wholes = sample.instance_masks
    points = [[(c.x, c.y)] for c in (first_click(m) for m in wholes)]
    boxes = [edge_box_to_sam(tuple(float(v) for v in b)) for b in sample.boxes]  # type: ignore[arg-type]
    return (
        torch.tensor(points, dtype=torch.float32).reshape(-1, 1, 2),
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.from_numpy(wholes),
    )
