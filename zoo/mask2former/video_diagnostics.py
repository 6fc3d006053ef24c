"""Where the video model's thing scores go: for each ground-truth tube of the val clips, the query tube
that overlaps it best (IoU over the clip), whether that IoU passes 0.5 and whether its class is right.

Usage (prints JSON; the model card's table)::

    python zoo/mask2former/video_diagnostics.py [--weights FILE] [--clips 20] [--frames 8] [--size 96]
"""

from __future__ import annotations

import argparse
import json

import torch

from segblocks.data import ShapesClipDataset, ShapesWorldConfig, tubes_from_frames
from segblocks.zoo.mask2former import Mask2FormerVideoPredictor
from segblocks.zoo.mask2former.shipped import SHIPPED_VIDEO_WEIGHTS, load_shipped_mask2former_video


def main() -> None:
    """Print per-kind (thing / stuff) best-query IoU, share above 0.5, class accuracy, top probability."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default=str(SHIPPED_VIDEO_WEIGHTS))
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--window", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_shipped_mask2former_video(args.weights)
    predictor = Mask2FormerVideoPredictor(model, window=args.window)
    world = ShapesWorldConfig(image_size=(args.size, args.size))
    clips = ShapesClipDataset(world, split="val", length=args.clips, num_frames=args.frames)
    rows: dict[str, list[tuple[float, bool, float]]] = {"things": [], "stuff": []}
    for i in range(len(clips)):
        clip = clips[i]
        tubes = tubes_from_frames(clip.targets)
        linked = predictor.link(clip.frames)
        q, t = linked.mask_logits.shape[:2]
        pred = (
            torch.nn.functional.interpolate(
                linked.mask_logits.flatten(0, 1)[None], size=(args.size, args.size), mode="bilinear"
            )[0].reshape(q, t, args.size, args.size)
            > 0
        )
        probs = linked.class_logits.exp()
        p_flat, g_flat = pred.flatten(1).float(), tubes.masks.flatten(1).float()
        inter = g_flat @ p_flat.T
        iou = inter / (g_flat.sum(1)[:, None] + p_flat.sum(1)[None] - inter).clamp_min(1.0)
        assert tubes.is_thing is not None
        for g in range(len(tubes)):
            best = int(iou[g].argmax())
            top_p, top_c = probs[best, :-1].max(dim=0)
            kind = "things" if bool(tubes.is_thing[g]) else "stuff"
            rows[kind].append((float(iou[g, best]), int(top_c) == int(tubes.labels[g]), float(top_p)))
    out = {}
    for kind, r in rows.items():
        n = max(len(r), 1)
        out[kind] = {
            "tubes": len(r),
            "best_query_iou_mean": sum(x[0] for x in r) / n,
            "iou_above_0.5": sum(x[0] > 0.5 for x in r) / n,
            "class_right": sum(x[1] for x in r) / n,
            "top_class_probability_mean": sum(x[2] for x in r) / n,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
