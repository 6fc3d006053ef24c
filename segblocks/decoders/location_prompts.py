"""OMG-Seg's location queries: one decoder query per point or box prompt (OMG-Seg, Sec. 3.2 and code).

Each prompt becomes a box: a box prompt as given, a point as a small square around it (OMG-Seg's
code silently turns every click into a 6 x 6 box; here the side is the explicit ``point_box_size``,
and ``None`` keeps a point as a box of size 0). The query's content is a learned prompt-type
embedding (point or box) plus one learned mask token; its position is a linear projection of the
sine encoding of the box's normalised ``(cx, cy, w, h)`` (4 x 128 -> 512 -> ``dim``). Location queries
attend only to themselves in self-attention, and may start their first cross-attention inside their
box (``start_in_box``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.layers.position_encoding import sine_ladder
from segblocks.structures import Prompts

__all__ = ["LocationPromptEncoder", "prompt_boxes"]


def prompt_boxes(
    prompts: Prompts, image_size: tuple[int, int], point_box_size: float | None
) -> tuple[Tensor, Tensor]:
    """The boxes of one image's point and box prompts, points first.

    Args:
        prompts: one image's prompts; each point prompt must have exactly one positive click.
        image_size: ``(H, W)`` of the image the coordinates refer to.
        point_box_size: side in pixels of the box a point becomes (None: a zero-size box).

    Returns:
        ``(boxes [N, 4] float (x1, y1, x2, y2) in pixels, is_box [N] bool)``.

    Raises:
        ValueError: on a point prompt with several or negative clicks, a prompt outside the image, or
            no point and no box prompt.
    """
    h, w = image_size
    given, kinds = [], []  # the prompts as boxes before points grow: points first
    if prompts.points is not None and prompts.point_labels is not None:
        labels = prompts.point_labels
        if prompts.points.shape[1] != 1 or bool((labels != 1).any()):
            raise ValueError(
                "prompts.points: location queries take one positive click a prompt "
                f"(points [N, 1, 2], labels 1), got points {tuple(prompts.points.shape)} with labels {labels.tolist()}"
            )
        given.append(prompts.points[:, 0].float().repeat(1, 2))
        kinds.append(torch.zeros(len(prompts.points), dtype=torch.bool))
    if prompts.boxes is not None:
        given.append(prompts.boxes.float())
        kinds.append(torch.ones(len(prompts.boxes), dtype=torch.bool))
    if not given:
        raise ValueError("prompts: location queries need point or box prompts, got neither")
    boxes, is_box = torch.cat(given), torch.cat(kinds)
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("prompts: points and boxes must be finite, got NaN or inf")
    outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
    if bool(outside.any()):
        raise ValueError(
            f"prompts: prompt(s) {outside.nonzero()[:, 0].tolist()} lie outside the {h}x{w} image"
        )
    if point_box_size is not None:
        grow = torch.where(is_box, 0.0, point_box_size / 2)[:, None]
        boxes = boxes + torch.cat([-grow, -grow, grow, grow], dim=1)
    return boxes.clamp_min(0).minimum(boxes.new_tensor([w, h, w, h])), is_box


class LocationPromptEncoder(nn.Module):
    """Point and box prompts -> OMG-Seg location queries (a :class:`QueryGroup` named ``"location"``).

    Args:
        dim: query width ``D``.
        point_box_size: side in pixels of the box a click becomes (OMG-Seg: 6); None keeps points
            as zero-size boxes.
        sine_dim: sine channels per box coordinate (OMG-Seg: 128, so 512 in all).
        start_in_box: give each query its box as its first-layer cross-attention region.
        temperature: base of the sine frequency ladder.
    """

    def __init__(
        self,
        *,
        dim: int,
        point_box_size: float | None = 6.0,
        sine_dim: int = 128,
        start_in_box: bool = True,
        temperature: float = 10000.0,
    ) -> None:
        super().__init__()
        if dim <= 0 or sine_dim <= 0 or sine_dim % 2:
            raise ValueError(f"dim, sine_dim: expected positive ints, sine_dim even; got {dim}, {sine_dim}")
        if point_box_size is not None and not point_box_size >= 0:
            raise ValueError(f"point_box_size: expected a size >= 0 in pixels or None, got {point_box_size}")
        self.dim = dim
        self.point_box_size = point_box_size
        self.sine_dim = sine_dim
        self.start_in_box = start_in_box
        self.temperature = temperature
        self.type_embed = nn.Embedding(2, dim)  # 0 point, 1 box
        self.mask_token = nn.Embedding(1, dim)
        self.pos_proj = nn.Linear(4 * sine_dim, dim)

    def encode_boxes(self, boxes: Tensor) -> Tensor:
        """Sine codes of boxes: ``[..., 4]`` -> ``[..., 4 * sine_dim]``.

        Args:
            boxes: ``[..., 4]`` normalised ``(cx, cy, w, h)`` in ``[0, 1]``.
        """
        return sine_ladder(boxes * 2 * math.pi, self.sine_dim, self.temperature).flatten(-2)

    def forward(
        self,
        prompts: Sequence[Prompts],
        image_size: tuple[int, int],
        mask_size: tuple[int, int] | None = None,
    ) -> QueryGroup:
        """One location query per prompt of every image, padded to the batch's largest count.

        Args:
            prompts: B :class:`~segblocks.structures.Prompts` (points first, then boxes, per image).
            image_size: ``(H, W)`` of the (unpadded) images the coordinates refer to.
            mask_size: ``(h, w)`` of the box regions given as first-layer cross-attention masks
                (default: ``image_size // 4``); unused without ``start_in_box``.

        Returns:
            A :class:`QueryGroup` ``"location"`` of ``[B, N, D]`` queries, ``only_self`` attention,
            ``valid`` marking real prompts, and (``start_in_box``) ``cross_mask [B, N, h, w]``.

        Raises:
            ValueError: on no images, bad prompts (see :func:`prompt_boxes`) or a bad ``image_size``.
            TypeError: on an element that is not :class:`Prompts`.
        """
        if len(prompts) == 0:
            raise ValueError("prompts: expected one Prompts per image, got none")
        h, w = image_size
        if h <= 0 or w <= 0:
            raise ValueError(f"image_size: expected a positive (H, W), got {image_size}")
        per_image = []
        for i, p in enumerate(prompts):
            if not isinstance(p, Prompts):
                raise TypeError(f"prompts[{i}]: expected Prompts, got {type(p).__name__}")
            per_image.append(prompt_boxes(p, image_size, self.point_box_size))
        device = self.mask_token.weight.device
        b, n = len(prompts), max(len(k) for _, k in per_image)
        boxes = torch.zeros(b, n, 4, device=device)
        kinds = torch.zeros(b, n, dtype=torch.long, device=device)
        valid = torch.zeros(b, n, dtype=torch.bool, device=device)
        for i, (bx, kind) in enumerate(per_image):
            boxes[i, : len(bx)], kinds[i, : len(bx)], valid[i, : len(bx)] = (
                bx.to(device),
                kind.to(device),
                True,
            )
        scale = boxes.new_tensor([w, h, w, h])
        x1, y1, x2, y2 = (boxes / scale).unbind(-1)
        cxcywh = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
        content = self.type_embed(kinds) + self.mask_token.weight
        positional = self.pos_proj(self.encode_boxes(cxcywh).to(self.pos_proj.weight.dtype))
        region = None
        if self.start_in_box:
            mh, mw = mask_size or (max(1, h // 4), max(1, w // 4))
            ys = (torch.arange(mh, device=device) + 0.5) / mh
            xs = (torch.arange(mw, device=device) + 0.5) / mw
            inside_y = (ys[None, None] >= y1[..., None]) & (ys[None, None] <= y2[..., None])
            inside_x = (xs[None, None] >= x1[..., None]) & (xs[None, None] <= x2[..., None])
            region = inside_y[..., :, None] & inside_x[..., None, :]  # [B, N, h, w]
        return QueryGroup(
            name="location",
            content=content,
            positional=positional,
            self_attention=SelfAttentionRule.only_self(),
            valid=valid,
            cross_mask=region,
        )
