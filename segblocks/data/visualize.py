"""Drawing segmentation results and prompts onto images (PIL), for demos and docs."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

__all__ = ["draw_prompts", "overlay_segments", "segment_colour", "text_panel", "tile_rows"]


def segment_colour(segment_id: int) -> tuple[int, int, int]:
    """A stable, saturated colour for a segment id (golden-ratio hue walk).

    Args:
        segment_id: the id.

    Returns:
        ``(r, g, b)`` in ``0..255``.
    """
    hue = (segment_id * 0.618033988749895) % 1.0
    i, f = int(hue * 6), (hue * 6) % 1.0
    v, s = 1.0, 0.75
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return int(r * 255), int(g * 255), int(b * 255)


def overlay_segments(
    image: NDArray[np.uint8], segment_map: NDArray[np.integer], *, alpha: float = 0.55, scale: int = 1
) -> Image.Image:
    """Blend one colour per segment id over ``image`` and draw the segment borders in white.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        segment_map: ``[H, W]`` integer ids; ``0`` (VOID) is left unpainted.
        alpha: opacity of the colours.
        scale: integer upscaling factor of the result (nearest neighbour), for small images.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != segment_map.shape:
        raise ValueError(
            f"image/segment_map: expected [H, W, 3] and [H, W] of the same H, W, got "
            f"{image.shape} and {segment_map.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    colours = np.zeros((*segment_map.shape, 3), dtype=np.float32)
    for sid in np.unique(segment_map):
        if sid != 0:
            colours[segment_map == sid] = segment_colour(int(sid))
    painted = segment_map != 0
    out = image.astype(np.float32)
    out[painted] = (1 - alpha) * out[painted] + alpha * colours[painted]
    border = np.zeros(segment_map.shape, dtype=bool)
    border[1:] |= segment_map[1:] != segment_map[:-1]
    border[:, 1:] |= segment_map[:, 1:] != segment_map[:, :-1]
    out[border] = 255
    result = Image.fromarray(out.astype(np.uint8))
    if scale > 1:
        result = result.resize((result.width * scale, result.height * scale), Image.Resampling.NEAREST)
    return result


def draw_prompts(
    image: Image.Image,
    *,
    points: Sequence[tuple[float, float, bool]] = (),
    boxes: Sequence[tuple[float, float, float, float]] = (),
    strokes: Sequence[NDArray[np.float64]] = (),
    scale: int = 1,
) -> Image.Image:
    """Draw prompts on a copy of ``image`` (coordinates in the original, unscaled pixels).

    Args:
        points: ``(x, y, positive)`` clicks: green positive, red negative.
        boxes: ``(x1, y1, x2, y2)`` boxes, in yellow.
        strokes: ``[L, 2]`` polylines (scribbles, polygons), in magenta.
        scale: the factor ``image`` was upscaled by.
    """
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for stroke in strokes:
        pts = [(float(x) * scale, float(y) * scale) for x, y in np.asarray(stroke)]
        if len(pts) > 1:
            draw.line(pts, fill=(255, 0, 255), width=max(1, scale))
    for x1, y1, x2, y2 in boxes:
        draw.rectangle(
            [x1 * scale, y1 * scale, x2 * scale - 1, y2 * scale - 1],
            outline=(255, 230, 0),
            width=max(1, scale // 2),
        )
    r = max(2, scale * 2)
    for x, y, positive in points:
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        draw.ellipse(
            [cx - r, cy - r, cx + r, cy + r],
            fill=(0, 200, 0) if positive else (230, 0, 0),
            outline=(255, 255, 255),
        )
    return out


def text_panel(lines: Sequence[str], *, width: int = 512) -> Image.Image:
    """Render lines of text, wrapped to the panel width, on a white panel with PIL's built-in font."""
    line_chars = max(20, (width - 12) // 7)
    wrapped = [w for line in lines for w in (textwrap.wrap(line, line_chars) or [""])]
    line_h = 14
    panel = Image.new("RGB", (width, line_h * len(wrapped) + 12), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for i, line in enumerate(wrapped):
        draw.text((6, 6 + i * line_h), line, fill=(0, 0, 0))
    return panel


def tile_rows(rows: Sequence[Sequence[Image.Image]]) -> Image.Image:
    """Paste pictures into one sheet: rows top to bottom, each row's pictures left to right.

    Args:
        rows: the rows; a row is as tall as its tallest picture, the sheet as wide as its widest row.

    Returns:
        An RGB sheet on white.

    Raises:
        ValueError: when there is no picture at all.
    """
    if not any(rows):
        raise ValueError("rows: expected at least one picture")
    widths = [sum(p.width for p in row) for row in rows]
    heights = [max((p.height for p in row), default=0) for row in rows]
    sheet = Image.new("RGB", (max(widths), sum(heights)), (255, 255, 255))
    y = 0
    for row, height in zip(rows, heights):
        x = 0
        for picture in row:
            sheet.paste(picture, (x, y))
            x += picture.width
        y += height
    return sheet
