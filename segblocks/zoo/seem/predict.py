"""``segblocks predict seem``: one object from clicks, a scribble, a box and/or a text on an image file.

All prompts given describe one object and are composed in one pass (SEEM's composition); the
overlay shows the image, the prompts (green positive and red negative clicks, the scribble in
magenta, the box in yellow) and the answer in colour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from segblocks.data import read_image
from segblocks.data.visualize import draw_prompts, overlay_segments, text_panel, tile_rows
from segblocks.zoo.common import prompt_options
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.session import SEEMSession, SessionResult

__all__ = [
    "SEEMPrediction",
    "parse_box",
    "parse_points",
    "predict_file",
    "read_stroke_mask",
    "write_overlay",
]

PathLike = str | os.PathLike[str]


def parse_points(text: str, name: str = "--points") -> list[tuple[float, float]]:
    """``"x,y;x,y"`` -> ``[(x, y), ...]`` (:func:`segblocks.zoo.common.prompt_options.parse_points`).

    Args:
        text: the option's value.
        name: the option named in errors (``--points``, ``--negative``).

    Raises:
        ValueError: naming ``name`` on anything else.
    """
    return prompt_options.parse_points(text, name)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``--boxes "x1,y1,x2,y2"`` -> the one box of the object (the other models' ``--boxes`` take a list).

    Args:
        text: the option's value.

    Raises:
        ValueError: naming ``--boxes`` on more than one box or a malformed one.
    """
    boxes = prompt_options.parse_boxes(text)
    if len(boxes) > 1:
        raise ValueError(
            f"--boxes: SEEM segments one object from all prompts: give one box, got {len(boxes)}"
        )
    return boxes[0]


def read_stroke_mask(path: PathLike, name: str = "--scribble") -> NDArray[np.bool_]:
    """A stroke drawn as an image: every non-black pixel is part of the stroke.

    Args:
        path: the mask image.
        name: the option named in errors.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when PIL cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such mask file {str(path)!r}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L")) > 0
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{name}: {str(path)!r} is not a readable image ({err})") from None


@dataclass
class SEEMPrediction:
    """The image, the prompts given and the answer."""

    image: NDArray[np.uint8]
    result: SessionResult
    points: list[tuple[float, float, bool]]
    box: tuple[float, float, float, float] | None
    scribble: NDArray[np.bool_] | None
    text: str | None


def predict_file(
    model: SEEM,
    image: PathLike,
    *,
    points: Sequence[tuple[float, float]] = (),
    negative: Sequence[tuple[float, float]] = (),
    scribble: PathLike | None = None,
    box: tuple[float, float, float, float] | None = None,
    text: str | None = None,
) -> SEEMPrediction:
    """Segment one object of an image file from every prompt given (one composed round).

    Args:
        model: a SEEM.
        image: the image file.
        points: positive clicks ``(x, y)``.
        negative: negative clicks ``(x, y)``.
        scribble: a stroke mask image of the image's size.
        box: ``(x1, y1, x2, y2)``.
        text: a text prompt.

    Raises:
        FileNotFoundError: when the image does not exist.
        ValueError: on an image file :func:`~segblocks.data.read_image` refuses (named ``--image``),
            or bad prompts (errors name the option).
    """
    pixels = read_image(image, name="--image")  # [3, H, W] float: back to the stored bytes
    array = (pixels.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    stroke = read_stroke_mask(scribble) if scribble is not None else None
    session = SEEMSession(model)
    session.set_image(array)
    clicks = [(x, y, True) for x, y in points] + [(x, y, False) for x, y in negative]
    try:
        result = session.prompt(clicks=clicks, box=box, stroke=stroke, text=text)
    except ValueError as err:
        message = str(err)
        for arg, option in (
            ("clicks", "--points/--negative"),
            ("stroke", "--scribble"),
            ("text", "--text"),
            ("box", "--boxes"),
        ):
            if message.startswith(arg):
                message = option + message[len(arg) :]
                break
        raise ValueError(message) from None
    return SEEMPrediction(
        image=array,
        result=result,
        points=[(x, y, p) for x, y, p in clicks],
        box=box,
        scribble=stroke,
        text=text,
    )


def write_overlay(prediction: SEEMPrediction, path: PathLike, *, scale: int = 1) -> Path:
    """Write image+prompts | answer overlay, with a caption, as a PNG.

    Args:
        prediction: :func:`predict_file`'s result.
        path: the PNG to write (parents are created).
        scale: integer upscaling of the drawing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = prediction.image
    base = Image.fromarray(image)
    if scale > 1:
        base = base.resize((base.width * scale, base.height * scale), Image.Resampling.NEAREST)
    if prediction.scribble is not None:
        arr = np.asarray(base).copy()
        up = np.kron(prediction.scribble, np.ones((scale, scale), bool)) if scale > 1 else prediction.scribble
        arr[up] = (255, 0, 255)
        base = Image.fromarray(arr)
    prompts = draw_prompts(
        base, points=prediction.points, boxes=[prediction.box] if prediction.box else [], scale=scale
    )
    segment_map = prediction.result.masks[0].numpy().astype(np.int64)
    answer = overlay_segments(image, segment_map, scale=scale)
    lines = [
        f"prompts: {len(prediction.points)} clicks"
        + (f", text {prediction.text!r}" if prediction.text else "")
        + (", scribble" if prediction.scribble is not None else "")
        + (", box" if prediction.box else ""),
        f"answer: {int(segment_map.sum())} pixels, score {float(prediction.result.scores[0]):.2f}",
    ]
    sheet = tile_rows([[prompts, answer], [text_panel(lines, width=2 * prompts.width)]])
    sheet.save(path)
    return path
