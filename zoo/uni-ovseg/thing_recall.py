"""Where things are lost: thing recall of the point-grid proposals and naming of the recalled ones.

``python zoo/uni-ovseg/thing_recall.py --val-images 20`` prints, as JSON, for the IoU filter at
0.65 (the default), 0.5 and off: the share of val things that get a proposal with IoU > 0.5 after
the filter and inner-NMS, and the share of those recalled things whose best proposal is named
right against the 18 class names, with the adapter and with the frozen CLIP alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch
import torch.nn.functional as F

from segblocks.data import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.zoo.uni_ovseg.build import build_uni_ovseg
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor
from segblocks.zoo.uni_ovseg.shipped import SHIPPED_WEIGHTS, load_trained_weights

__all__ = ["FILTERS", "main"]

#: IoU-filter thresholds measured (0: every candidate passes).
FILTERS: dict[str, float] = {"filter 0.65": 0.65, "filter 0.5": 0.5, "no filter": 0.0}


def main(argv: list[str] | None = None) -> int:
    """Print the thing-recall table as JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(prog="python zoo/uni-ovseg/thing_recall.py")
    p.add_argument("--val-images", type=int, default=20)
    p.add_argument("--weights", default=str(SHIPPED_WEIGHTS), help="a trained model (default: shipped)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_trained_weights(build_uni_ovseg("tiny"), args.weights).eval()
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="val")
    samples = [world.sample(i) for i in range(args.val_images)]
    text = F.normalize(model.clip.encode_text([c.name for c in CATEGORIES]), dim=-1)
    default = model.config
    rows = {}
    for name, threshold in FILTERS.items():
        model.config = dataclasses.replace(default, pred_iou_threshold=threshold)
        predictor = UniOVSegPredictor(model)
        things = recalled = named = named_frozen = 0
        with torch.no_grad():
            for s in samples:
                t, image = s.to_targets(), s.image_tensor()[None]
                proposals = predictor.batch_proposals(image)[0]
                masks = proposals.masks.float().flatten(1)  # [M, H*W]
                adapted = predictor.name(image, proposals, text, adapted=True).argmax(-1)
                frozen = predictor.name(image, proposals, text, adapted=False).argmax(-1)
                assert t.is_thing is not None
                for j in torch.nonzero(t.is_thing).flatten().tolist():
                    things += 1
                    gt = t.masks[j].float().flatten()
                    if masks.shape[0] == 0:
                        continue
                    iou = (masks * gt).sum(-1) / ((masks + gt) > 0).float().sum(-1).clamp(min=1)
                    k = int(iou.argmax())
                    if float(iou[k]) > 0.5:
                        recalled += 1
                        named += int(adapted[k] == t.labels[j])
                        named_frozen += int(frozen[k] == t.labels[j])
        rows[name] = {
            "things": things,
            "recall_iou50": round(100 * recalled / max(1, things), 1),
            "named_of_recalled_adapted": round(100 * named / max(1, recalled), 1),
            "named_of_recalled_frozen": round(100 * named_frozen / max(1, recalled), 1),
        }
    model.config = default
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
