"""What stage 2 learns from, and what the adapter does to thing names (diagnosis, not training).

``python zoo/uni-ovseg/alignment_pairs.py --weights <stage-2 checkpoint>`` prints, as JSON:

- ``cosine``: the frozen CLIP's region embeddings (128 + 160 px) of the ground-truth masks of the
  first ``--val-images`` val images against the 18 class names: quartiles of the cosine with the
  right class (things, stuff) and with the 17 others, and the share of each at or above each
  ``--thresholds`` value (what a confident-pair threshold lets through);
- ``pairs``: on ``--text-images`` stage-2 images (train indices from 20,000, clean captions), the
  confident mask-entity pairs stage 2 would form at each threshold, sorted by the ground truth that
  training never sees: right / wrong thing pairs, right / wrong stuff pairs, and masks that match
  no segment (IoU <= 0.5);
- ``thing_names``: how the ground-truth thing masks of those val images are named by the frozen
  CLIP and through the adapter: right, wrong thing name, stuff name, mean cosine with the right name.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import Tensor

from segblocks.data import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.data.shapes.entities import parse_entities
from segblocks.heads.region_embeddings import ensemble_region_embeddings
from segblocks.matchers import MaskTextMatcher
from segblocks.zoo.uni_ovseg.build import build_uni_ovseg
from segblocks.zoo.uni_ovseg.model import UniOVSeg
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor
from segblocks.zoo.uni_ovseg.shipped import SHIPPED_WEIGHTS, load_trained_weights

__all__ = ["main"]

SIZES = (128, 160)
FIRST_TEXT_IMAGE = 20000  # the recipe's stage-2 images start after its 20,000 stage-1 images


def _quartiles(values: list[float], thresholds: list[float]) -> dict[str, object]:
    v = torch.tensor(values)
    q = torch.quantile(v, torch.tensor([0.25, 0.5, 0.75])).tolist()
    return {
        "quartiles": [round(x, 2) for x in q],
        "at_least": {str(t): round(100 * float((v >= t).float().mean()), 1) for t in thresholds},
        "n": len(values),
    }


def cosine_table(model: UniOVSeg, val: list, thresholds: list[float]) -> dict[str, object]:
    """Right-class and wrong-class cosines of ground-truth masks (frozen CLIP)."""
    text = model.clip.encode_text([c.name for c in CATEGORIES])
    right_thing: list[float] = []
    right_stuff: list[float] = []
    wrong: list[float] = []
    for s in val:
        t = s.to_targets()
        regions = model.region_embeddings(s.image_tensor()[None], t.masks[None], SIZES, adapted=False)
        cos = ensemble_region_embeddings(regions)[0] @ text.T  # [N, 18]
        assert t.is_thing is not None
        for j, label in enumerate(t.labels.tolist()):
            (right_thing if bool(t.is_thing[j]) else right_stuff).append(float(cos[j, label]))
            wrong += [float(x) for k, x in enumerate(cos[j].tolist()) if k != label]
    return {
        "right_thing": _quartiles(right_thing, thresholds),
        "right_stuff": _quartiles(right_stuff, thresholds),
        "wrong": _quartiles(wrong, thresholds),
    }


def pair_table(model: UniOVSeg, num_images: int, thresholds: list[float]) -> dict[str, dict[str, int]]:
    """Confident pairs of stage 2 at each threshold, sorted by the (hidden) ground truth."""
    cfg = model.config
    proposer = UniOVSegPredictor(model, grid_size=cfg.align_grid_size)
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="train")
    index = {c.name: i for i, c in enumerate(CATEGORIES)}
    keys = ("thing_right", "thing_wrong", "stuff_right", "stuff_wrong", "no_segment")
    rows = {str(t): dict.fromkeys(keys, 0) for t in thresholds}
    for i in range(FIRST_TEXT_IMAGE, FIRST_TEXT_IMAGE + num_images):
        s = world.sample(i)
        entities = parse_entities(s.caption)
        image = s.image_tensor()[None]
        masks = proposer.batch_proposals(image)[0].masks
        if not entities or masks.shape[0] == 0:
            continue
        frozen = model.region_embeddings(image, masks[None], cfg.ensemble_sizes, adapted=False)[:, 0]
        text = model.entity_embeddings(entities)
        t = s.to_targets()
        assert t.is_thing is not None
        iou = _iou(masks, t.masks)  # [M, N]
        for threshold in thresholds:
            match = MaskTextMatcher(min_similarity=threshold)(frozen, text)
            row = rows[str(threshold)]
            for r, e in zip(match.region_idx.tolist(), match.entity_idx.tolist()):
                best, j = iou[r].max(0)
                if float(best) <= 0.5:
                    row["no_segment"] += 1
                    continue
                kind = "thing" if bool(t.is_thing[j]) else "stuff"
                right = index.get(entities[e], -1) == int(t.labels[j])
                row[f"{kind}_{'right' if right else 'wrong'}"] += 1
    return rows


def thing_names(model: UniOVSeg, val: list) -> dict[str, dict[str, float]]:
    """Naming of ground-truth thing masks by the frozen CLIP and through the adapter."""
    text = model.clip.encode_text([c.name for c in CATEGORIES])
    is_stuff = [not c.is_thing for c in CATEGORIES]
    rows: dict[str, dict[str, float]] = {}
    for name, adapted in (("frozen", False), ("adapted", True)):
        row = {"right": 0.0, "wrong_thing": 0.0, "wrong_stuff": 0.0}
        cosines: list[float] = []
        for s in val:
            t = s.to_targets()
            regions = model.region_embeddings(s.image_tensor()[None], t.masks[None], SIZES, adapted=adapted)
            cos = ensemble_region_embeddings(regions)[0] @ text.T
            assert t.is_thing is not None
            for j in torch.nonzero(t.is_thing).flatten().tolist():
                label, guess = int(t.labels[j]), int(cos[j].argmax())
                row["right" if guess == label else ("wrong_stuff" if is_stuff[guess] else "wrong_thing")] += 1
                cosines.append(float(cos[j, label]))
        row["mean_right_cosine"] = round(sum(cosines) / max(1, len(cosines)), 3)
        rows[name] = row
    return rows


def _iou(a: Tensor, b: Tensor) -> Tensor:
    """``[M, N]`` IoU of bool masks ``[M, H, W]`` and ``[N, H, W]``."""
    x, y = a.flatten(1).float(), b.flatten(1).float()
    inter = x @ y.T
    return inter / (x.sum(1)[:, None] + y.sum(1)[None] - inter).clamp(min=1)


def main(argv: list[str] | None = None) -> int:
    """Print the three tables as JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(prog="python zoo/uni-ovseg/alignment_pairs.py")
    p.add_argument("--weights", default=str(SHIPPED_WEIGHTS), help="a trained model (default: shipped)")
    p.add_argument("--val-images", type=int, default=50)
    p.add_argument("--text-images", type=int, default=100)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.3, 0.4])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_trained_weights(build_uni_ovseg("tiny"), args.weights).eval()
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="val")
    val = [world.sample(i) for i in range(args.val_images)]
    with torch.no_grad():
        out = {
            "cosine": cosine_table(model, val, args.thresholds),
            "pairs": pair_table(model, args.text_images, args.thresholds),
            "thing_names": thing_names(model, val),
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
