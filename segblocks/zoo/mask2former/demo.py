"""The video part of ``segblocks demo``: the shipped Mask2Former-VIS on one shapes-world val clip.

One sheet per clip: the frames (top), ground-truth tracks (middle) and the predicted tracks (bottom),
ids kept over the frames by linked windows; the clip's VOS J&F and VPQ are printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from segblocks.data import CATEGORIES, ShapesClipDataset, ShapesWorldConfig
from segblocks.data.visualize import overlay_segments, text_panel, tile_rows
from segblocks.zoo.mask2former.evaluate_video import VideoMetrics, evaluate_video
from segblocks.zoo.mask2former.shipped import load_shipped_mask2former_video
from segblocks.zoo.mask2former.video_predictor import Mask2FormerVideoPredictor

__all__ = ["VideoDemo", "run_video_demo"]

_SIZE = 96  # the shipped model's training resolution


@dataclass
class VideoDemo:
    """What the video demo wrote and measured: the PNG sheet and the clip's metrics."""

    file: Path
    metrics: VideoMetrics


def run_video_demo(out: str | Path, *, num_frames: int = 8, seed: int = 0, window: int = 2) -> VideoDemo:
    """Segment and track one val clip with the shipped video model and write a frames | truth | prediction sheet.

    Args:
        out: the output folder (created).
        num_frames: frames of the clip.
        seed: the shapes world's seed.
        window: frames per linked window.

    Raises:
        ValueError: on fewer than 1 frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames: expected a positive int, got {num_frames}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Mask2FormerVideoPredictor(load_shipped_mask2former_video(), window=window)
    clip = ShapesClipDataset(
        ShapesWorldConfig(image_size=(_SIZE, _SIZE), seed=seed), split="val", length=1, num_frames=num_frames
    )[0]
    result = predictor.predict_video(clip.frames, tasks=("panoptic",))
    assert result.panoptic is not None
    frames, truths, guesses = [], [], []
    for t, sample in enumerate(clip.clip.frames):
        frames.append(Image.fromarray(sample.image).resize((2 * _SIZE,) * 2, Image.Resampling.NEAREST))
        truths.append(overlay_segments(sample.image, sample.panoptic, scale=2))
        pred = result.panoptic.segment_maps[t].cpu().numpy().astype(np.int32)
        guesses.append(overlay_segments(sample.image, pred, scale=2))
    names = [f"{s.id}: {CATEGORIES[s.category_id].name}" for s in result.panoptic.segments]
    legend = text_panel(
        [
            "rows: frames | ground-truth tracks | predicted tracks (one colour per id over the clip)",
            f"predicted segments: {', '.join(names)}",
        ],
        width=len(frames) * frames[0].width,
    )
    path = out / "video_00.png"
    tile_rows([frames, truths, guesses, [legend]]).save(path)
    metrics = evaluate_video(predictor, [clip])
    return VideoDemo(file=path, metrics=metrics)
