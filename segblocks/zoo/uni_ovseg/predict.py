"""``segblocks predict uni-ovseg``: name any vocabulary in an image file, or answer point prompts.

``--vocabulary "circle,star,grass"`` runs the point-grid open-vocabulary inference and writes a
panoptic overlay; ``--points "x,y;x,y"`` runs the promptable mode and writes each point's best mask
(and its ``k`` granularities' scores). Without ``--weights`` the shipped world-scale model is used.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import torch

from segblocks.data import read_image
from segblocks.data.visualize import draw_prompts, overlay_segments, text_panel, tile_rows
from segblocks.structures import Prompts
from segblocks.zoo.common import prompt_options
from segblocks.zoo.uni_ovseg.build import build_uni_ovseg
from segblocks.zoo.uni_ovseg.model import UniOVSeg
from segblocks.zoo.uni_ovseg.shipped import SHIPPED_WEIGHTS, load_trained_weights

__all__ = ["load_uni_ovseg", "parse_points", "run_predict"]

logger = logging.getLogger(__name__)


def parse_points(text: str) -> torch.Tensor:
    """Point prompts from the command line -> ``[N, 2]`` float pixel coordinates.

    Args:
        text: ``"x,y;x,y"``.

    Raises:
        ValueError: on an empty list or a malformed point.
    """
    points = prompt_options.parse_points(text)
    return torch.tensor(points, dtype=torch.float32)


def load_uni_ovseg(weights: str | os.PathLike[str] | None = None, *, variant: str = "tiny") -> UniOVSeg:
    """A Uni-OVSeg with trained weights, in eval mode.

    Args:
        weights: a ``.safetensors`` file of trained weights (default: the shipped world-scale ones).
        variant: the configuration the weights were trained with.
    """
    model = build_uni_ovseg(variant)
    return load_trained_weights(model, SHIPPED_WEIGHTS if weights is None else Path(weights)).eval()


def _save(
    image: torch.Tensor,
    segment_map: np.ndarray,
    lines: list[str],
    out: str,
    scale: int,
    points: list[tuple[float, float, bool]],
) -> Path:
    rgb = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    drawing = draw_prompts(overlay_segments(rgb, segment_map, scale=scale), points=points, scale=scale)
    canvas = tile_rows([[drawing], [text_panel(lines or ["no segments"], width=max(drawing.width, 160))]])
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def run_predict(args: argparse.Namespace) -> list[str]:
    """The ``segblocks predict uni-ovseg`` command; returns the lines the CLI prints.

    Args:
        args: the parsed command line (``--image`` with ``--vocabulary`` and/or ``--points``,
            ``--stuff``, ``--weights``, ``--out``, ``--scale``).
    """
    if not args.vocabulary and not args.points:
        raise ValueError("--vocabulary or --points: give class names to name, or points to segment")
    image = read_image(args.image, name="--image")[None]
    if args.weights is None:
        logger.warning("the shipped world-scale Uni-OVSeg only knows the shapes world")
    model = load_uni_ovseg(args.weights)
    printed: list[str] = []
    if args.vocabulary:
        vocabulary = [v.strip() for v in args.vocabulary.split(",") if v.strip()]
        stuff = {s.strip() for s in args.stuff.split(",") if s.strip()}
        unknown = sorted(stuff - set(vocabulary))
        if unknown:
            raise ValueError(f"--stuff: {unknown} are not in --vocabulary")
        result = model.predict(image, vocabulary=vocabulary, is_thing=[v not in stuff for v in vocabulary])[0]
        lines = [
            f"segment {s.id}: {vocabulary[s.category_id]} (score {s.score:.2f})"
            for s in result.panoptic.segments
        ]
        printed += lines or ["no segments"]
        if args.out:
            seg = result.panoptic.segment_map.cpu().numpy().astype(np.int32)
            printed.append(f"wrote {_save(image, seg, lines, args.out, args.scale, []).resolve()}")
    if args.points:
        pts = parse_points(args.points)
        prompts = Prompts(points=pts[:, None], point_labels=torch.ones(len(pts), 1, dtype=torch.int64))
        answer = model.segment_prompts(image, [prompts])[0]
        seg = np.zeros(image.shape[-2:], dtype=np.int32)
        lines = []
        for i, (masks, scores) in enumerate(zip(answer.masks, answer.scores)):
            best = int(scores.argmax())
            seg[masks[best].cpu().numpy()] = i + 1
            lines.append(
                f"point {i} ({pts[i, 0]:.0f},{pts[i, 1]:.0f}): best mask {best}, {int(masks[best].sum())} px; "
                f"predicted IoU per granularity {[round(float(s), 2) for s in scores]}"
            )
        printed += lines
        if args.out:
            out = args.out if not args.vocabulary else str(Path(args.out).with_suffix("")) + "_points.png"
            points = [(float(x), float(y), True) for x, y in pts.tolist()]
            printed.append(f"wrote {_save(image, seg, lines, out, args.scale, points).resolve()}")
    return printed
