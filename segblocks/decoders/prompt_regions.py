"""Visual prompts as binary masks: clicks, boxes, strokes (scribbles, circles, polygons) and masks.

SEEM's visual sampler reads every visual prompt the same way: as the set of pixels it marks. These
functions draw a prompt of any kind into an ``[H, W]`` bool mask at the image's size and collect, per
object, a *positive* region (what belongs to the object) and a *negative* region (what does not):
a click is a small square (``radius`` pixels around it, SEEM's 3 x 3 dilation for ``radius=1``), a
box is filled, a stroke is a polyline drawn with a round pen of ``width`` pixels, a polygon is
filled, a mask is itself. Errors name the argument and the problem (a click outside the image, an
empty or wrongly sized mask, an object whose only prompt is a negative click).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from segblocks._validation import check_dtype, check_finite, check_ndim, check_shape
from segblocks.structures import Prompts

__all__ = [
    "ObjectRegions",
    "box_region",
    "click_region",
    "polygon_region",
    "regions_from_prompts",
    "stroke_region",
]


def _size(size: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size: expected a positive (H, W), got {tuple(size)}")
    return h, w


def _grid(size: tuple[int, int], device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(x [H, W], y [H, W])``."""
    h, w = size
    ys = torch.arange(h, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=device, dtype=torch.float32) + 0.5
    return xs[None, :].expand(h, w), ys[:, None].expand(h, w)


def click_region(
    x: float, y: float, size: tuple[int, int], *, radius: int = 1, name: str = "click"
) -> Tensor:
    """A click as the square of pixels within ``radius`` of pixel ``(x, y)``.

    Args:
        x: column of the click, in pixels (``0 <= x < W``).
        y: row of the click (``0 <= y < H``).
        size: ``(H, W)`` of the image.
        radius: half side of the square (1: SEEM's 3 x 3 dilation).
        name: the argument named in errors.

    Returns:
        ``[H, W]`` bool.

    Raises:
        ValueError: on a click outside the image or a negative radius.
    """
    h, w = _size(size)
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(
            f"{name}: ({x:g}, {y:g}) lies outside the {w}x{h} image (x in [0, {w}), y in [0, {h}))"
        )
    if radius < 0:
        raise ValueError(f"radius: expected >= 0, got {radius}")
    out = torch.zeros(h, w, dtype=torch.bool)
    cx, cy = int(x), int(y)
    out[max(cy - radius, 0) : cy + radius + 1, max(cx - radius, 0) : cx + radius + 1] = True
    return out


def box_region(box: Sequence[float] | Tensor, size: tuple[int, int], *, name: str = "box") -> Tensor:
    """A box ``(x1, y1, x2, y2)`` (pixel edges) filled: every pixel whose centre lies inside it.

    Args:
        box: the box in pixels; clipped to the image, it must keep at least one pixel.
        size: ``(H, W)`` of the image.
        name: the argument named in errors.

    Returns:
        ``[H, W]`` bool (a box thinner than a pixel keeps the pixel it crosses).

    Raises:
        ValueError: on a box with ``x2 < x1`` or ``y2 < y1``, or one lying outside the image.
    """
    h, w = _size(size)
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"{name}: expected x2 >= x1 and y2 >= y1, got {(x1, y1, x2, y2)}")
    if x2 < 0 or y2 < 0 or x1 >= w or y1 >= h:
        raise ValueError(f"{name}: {(x1, y1, x2, y2)} lies outside the {w}x{h} image")
    c0, c1 = max(round(x1), 0), min(max(round(x2), int(x1) + 1), w)
    r0, r1 = max(round(y1), 0), min(max(round(y2), int(y1) + 1), h)
    out = torch.zeros(h, w, dtype=torch.bool)
    out[r0:r1, c0:c1] = True
    return out


def stroke_region(
    points: Tensor, size: tuple[int, int], *, width: float = 3.0, name: str = "stroke"
) -> Tensor:
    """A stroke (scribble, circle stroke): a polyline drawn with a round pen.

    Args:
        points: ``[L, 2]`` float ``(x, y)`` vertices in pixels (one vertex: a dot).
        size: ``(H, W)`` of the image.
        width: pen width in pixels (> 0).
        name: the argument named in errors.

    Returns:
        ``[H, W]`` bool: pixels whose centre lies within ``width / 2`` of the polyline (the pixel under
        each vertex always included).

    Raises:
        ValueError: on a bad shape, no vertex, a non-positive width or a stroke entirely outside the image.
    """
    h, w = _size(size)
    check_shape(name, points, (None, 2), "[L, 2]")
    check_dtype(name, points, "floating")
    check_finite(name, points)
    if points.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one vertex, got an empty stroke")
    if not width > 0:
        raise ValueError(f"width: expected a positive pen width, got {width}")
    pts = points.float().cpu()
    xs, ys = _grid((h, w), "cpu")
    pix = torch.stack([xs, ys], dim=-1).reshape(-1, 2)  # [HW, 2]
    a = pts[:-1] if len(pts) > 1 else pts
    b = pts[1:] if len(pts) > 1 else pts
    ab = b - a  # [S, 2]
    t = ((pix[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[None]
    nearest = a[None] + t.clamp(0, 1)[..., None] * ab[None]  # [HW, S, 2]
    dist = (pix[:, None] - nearest).norm(dim=-1).min(dim=1).values
    out = (dist <= width / 2).reshape(h, w)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    cols, rows = pts[inside, 0].long(), pts[inside, 1].long()
    out[rows, cols] = True
    if not out.any():
        raise ValueError(f"{name}: the stroke lies entirely outside the {w}x{h} image")
    return out


def polygon_region(vertices: Tensor, size: tuple[int, int], *, name: str = "polygon") -> Tensor:
    """A polygon filled (even-odd rule on pixel centres), its vertices' pixels included.

    Args:
        vertices: ``[V, 2]`` float ``(x, y)``, ``V >= 1``.
        size: ``(H, W)`` of the image.
        name: the argument named in errors.

    Returns:
        ``[H, W]`` bool.

    Raises:
        ValueError: on a bad shape or a polygon entirely outside the image.
    """
    h, w = _size(size)
    check_shape(name, vertices, (None, 2), "[V, 2]")
    check_dtype(name, vertices, "floating")
    check_finite(name, vertices)
    if vertices.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one vertex")
    v = vertices.float().cpu()
    xs, ys = _grid((h, w), "cpu")
    inside = torch.zeros(h, w, dtype=torch.bool)
    x0, y0 = v[:, 0], v[:, 1]
    x1, y1 = v.roll(-1, 0)[:, 0], v.roll(-1, 0)[:, 1]
    for i in range(len(v)):
        crosses = (y0[i] > ys) != (y1[i] > ys)
        denom = (y1[i] - y0[i]) if float(y1[i] - y0[i]) != 0 else torch.tensor(1e-12)
        x_at = x0[i] + (ys - y0[i]) * (x1[i] - x0[i]) / denom
        inside ^= crosses & (xs < x_at)
    return inside | stroke_region(v, (h, w), width=1.0, name=name)


@dataclass
class ObjectRegions:
    """The visual prompts of N objects of one image as regions.

    Attributes:
        positive: ``[N, H, W]`` bool, what the user marked as belonging to each object.
        negative: ``[N, H, W]`` bool, what the user marked as not belonging to it.
    """

    positive: Tensor
    negative: Tensor

    def __post_init__(self) -> None:
        check_ndim("positive", self.positive, 3, "[N, H, W]")
        check_dtype("positive", self.positive, "bool")
        check_shape("negative", self.negative, tuple(self.positive.shape), "[N, H, W] like positive")
        check_dtype("negative", self.negative, "bool")

    def __len__(self) -> int:
        return int(self.positive.shape[0])

    def check_new_objects(self, name: str = "prompts") -> None:
        """Raise when an object has only negative prompts (nothing says where it is).

        Args:
            name: the argument named in the error.

        Raises:
            ValueError: naming the objects whose positive region is empty.
        """
        empty = (~self.positive.flatten(1).any(1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"{name}: object(s) {empty} have no positive prompt; a negative click alone cannot start "
                "a new object (add a positive click, box, stroke, mask or a text)"
            )


def regions_from_prompts(
    prompts: Prompts,
    size: tuple[int, int],
    *,
    click_radius: int = 1,
    stroke_width: float = 3.0,
    require_positive: bool = True,
) -> ObjectRegions:
    """Draw one image's visual prompts into positive and negative regions, one pair per object.

    Object ``i`` is the union of ``points[i]`` (positive and negative clicks), ``boxes[i]``,
    ``strokes[i]`` and ``masks[i]``: every visual field given must hold the same number of prompts.
    Texts are not drawn (the text encoder reads them).

    Args:
        prompts: the image's prompts.
        size: ``(H, W)`` of the image the coordinates refer to.
        click_radius: half side of a click's square.
        stroke_width: pen width of strokes.
        require_positive: raise on an object without a positive prompt.

    Returns:
        :class:`ObjectRegions` ``[N, H, W]``.

    Raises:
        ValueError: on visual fields of different counts, no visual prompt, a click outside the image,
            an empty mask prompt, a mask prompt of another size, or an object with only negative clicks.
    """
    h, w = _size(size)
    counts = {
        name: n
        for name, n in (
            ("points", None if prompts.points is None else prompts.points.shape[0]),
            ("boxes", None if prompts.boxes is None else prompts.boxes.shape[0]),
            ("strokes", None if prompts.strokes is None else len(prompts.strokes)),
            ("masks", None if prompts.masks is None else prompts.masks.shape[0]),
        )
        if n is not None
    }
    if not counts:
        raise ValueError("prompts: no visual prompt (points, boxes, strokes or masks) to draw")
    if len(set(counts.values())) != 1:
        raise ValueError(f"prompts: every visual field needs one entry per object, got counts {counts}")
    n = next(iter(counts.values()))
    positive = torch.zeros(n, h, w, dtype=torch.bool)
    negative = torch.zeros(n, h, w, dtype=torch.bool)
    if prompts.points is not None and prompts.point_labels is not None:
        for i in range(n):
            for j, (xy, label) in enumerate(
                zip(prompts.points[i].tolist(), prompts.point_labels[i].tolist())
            ):
                if label < 0:
                    continue
                region = click_region(xy[0], xy[1], (h, w), radius=click_radius, name=f"points[{i}, {j}]")
                (positive if label == 1 else negative)[i] |= region
    if prompts.boxes is not None:
        for i in range(n):
            positive[i] |= box_region(prompts.boxes[i], (h, w), name=f"boxes[{i}]")
    if prompts.strokes is not None:
        for i, stroke in enumerate(prompts.strokes):
            positive[i] |= stroke_region(stroke, (h, w), width=stroke_width, name=f"strokes[{i}]")
    if prompts.masks is not None:
        if tuple(prompts.masks.shape[-2:]) != (h, w):
            raise ValueError(
                f"masks: expected mask prompts of the image's size ({h}, {w}), got {tuple(prompts.masks.shape[-2:])}"
            )
        empty = (~prompts.masks.flatten(1).any(1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"masks: mask prompt(s) {empty} are empty; a mask prompt needs at least one pixel"
            )
        positive |= prompts.masks.cpu()
    regions = ObjectRegions(positive=positive, negative=negative & ~positive)
    if require_positive:
        regions.check_new_objects()
    return regions
