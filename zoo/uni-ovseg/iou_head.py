"""How the IoU head scores grid candidates, against the target it is trained on.

``python zoo/uni-ovseg/iou_head.py --val-images 20`` decodes the inference point grid on val images
and compares every candidate's predicted IoU (``sigmoid`` of the IoU head) with its training target:
the best IoU its binary mask reaches with any mask containing its grid point (things, parts, stuff:
``eligible_iou_loss``'s target). It prints, as JSON, per kind of best-matching mask (thing, part,
stuff) and per bin of the true IoU, the number of candidates, their mean true and predicted IoU,
plus the least-squares slope of predicted on true (1 = calibrated spread, 0 = a constant), the
mean-squared error and the variance of the targets (the error a constant prediction would make).
With ``--train-images N`` it also scores the stage-1 training prompts of the first N training images
(the recipe's collate: points half inside random masks), the distribution the head is trained on,
under ``"training prompts"``.
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.inference import point_grid, prepare_images
from segblocks.zoo.uni_ovseg.build import DEFAULT, build_uni_ovseg
from segblocks.zoo.uni_ovseg.data import ImageMaskDataset, collate_image_mask, mask_targets
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor, one_image
from segblocks.zoo.uni_ovseg.shipped import SHIPPED_WEIGHTS, load_trained_weights

__all__ = ["main"]

BINS = (0.0, 0.25, 0.5, 0.75, 1.01)


def _summary(pred: list[float], true: list[float]) -> dict[str, float]:
    """Count, means, slope of predicted on true, MSE and the targets' variance."""
    if not pred:
        return {"n": 0}
    p, t = torch.tensor(pred), torch.tensor(true)
    var = float(t.var(unbiased=False))
    slope = float(((p - p.mean()) * (t - t.mean())).mean() / var) if var > 0 else float("nan")
    return {
        "n": len(pred),
        "mean_true": round(float(t.mean()), 3),
        "mean_predicted": round(float(p.mean()), 3),
        "slope": round(slope, 3),
        "mse": round(float((p - t).square().mean()), 4),
        "target_variance": round(var, 4),
    }


def _kinds(sample: object) -> list[str]:
    """``"thing"``, ``"stuff"`` or ``"part"`` for each mask of :func:`mask_targets` (panoptic first)."""
    panoptic, every = sample.to_targets(), mask_targets(sample)  # type: ignore[attr-defined, arg-type]
    assert panoptic.is_thing is not None
    n = len(panoptic.masks)
    return [
        ("thing" if bool(panoptic.is_thing[j]) else "stuff") if j < n else "part"
        for j in range(len(every.masks))
    ]


def _table(rows: dict[str, tuple[list[float], list[float]]]) -> dict[str, object]:
    """Per kind: the summary of every output and of each true-IoU bin."""
    return {
        kind: {
            "all": _summary(pred, true),
            **{
                f"true {lo:.2f}-{min(hi, 1.0):.2f}": _summary(
                    [a for a, b in zip(pred, true) if lo <= b < hi], [b for b in true if lo <= b < hi]
                )
                for lo, hi in itertools.pairwise(BINS)
            },
        }
        for kind, (pred, true) in rows.items()
    }


def _training_prompts(model: torch.nn.Module, num_images: int) -> dict[str, object]:
    """The same table on stage-1 training prompts of the first ``num_images`` training images."""
    cfg = model.config  # type: ignore[union-attr]
    k = cfg.num_multimask
    data = ImageMaskDataset(ShapesWorldConfig(image_size=(128, 128)), start=0, length=num_images)
    rows: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in ("thing", "part", "stuff")}
    for start in range(0, num_images, 8):
        items = [data[i] for i in range(start, min(start + 8, num_images))]
        batch = collate_image_mask(items, num_points=cfg.train_points, num_boxes=cfg.train_boxes, seed=0)
        out = model(batch.images, batch.prompts).points
        for i, (t, allowed) in enumerate(zip(batch.targets, batch.extras["point_eligible"])):
            kinds = _kinds(data.world.sample(items[i].index))
            p, (h, w) = allowed.shape[0], out.mask_logits.shape[-2:]
            gts = (
                (F.interpolate(t.masks.float()[None], size=(h, w), mode="area") >= 0.5)[0].flatten(1).float()
            )
            pred = (out.mask_logits[i, : p * k] > 0).flatten(1).float()
            inter = pred @ gts.T
            iou = inter / (pred.sum(1, keepdim=True) + gts.sum(1) - inter).clamp(min=1)
            scores = torch.where(allowed.repeat_interleave(k, 0), iou, torch.full_like(iou, -1.0))
            best, j = scores.max(1)
            for c in range(p * k):
                if float(best[c]) >= 0:
                    rows[kinds[int(j[c])]][0].append(float(out.iou_scores[i, c].sigmoid()))
                    rows[kinds[int(j[c])]][1].append(float(best[c]))
    return _table(rows)


def main(argv: list[str] | None = None) -> int:
    """Print the IoU head's calibration table as JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(prog="python zoo/uni-ovseg/iou_head.py")
    p.add_argument("--val-images", type=int, default=20)
    p.add_argument("--weights", default=str(SHIPPED_WEIGHTS), help="a trained model (default: shipped)")
    p.add_argument("--clip", default=DEFAULT, help="the CLIP weights the model was trained on")
    p.add_argument("--train-images", type=int, default=0, help="also score training prompts of these")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_trained_weights(build_uni_ovseg("tiny", clip_pretrained=args.clip), args.weights).eval()
    predictor = UniOVSegPredictor(model)
    k = model.config.num_multimask
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="val")
    rows: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in ("thing", "part", "stuff")}
    with torch.no_grad():
        for i in range(args.val_images):
            s = world.sample(i)
            image = s.image_tensor()[None]
            every, kinds = mask_targets(s), _kinds(s)
            padded = prepare_images(image, model.size_divisibility)
            _, pixels = model.encode_image(padded)
            cand = predictor.candidates(one_image(pixels, 0), tuple(padded.shape[-2:]), (128, 128))
            grid = point_grid(predictor.grid_size, (128, 128)).long()
            gts = every.masks.flatten(1).float()  # [N, HW]
            masks = cand.masks.flatten(1).float()  # [P * k, HW]
            inter = masks @ gts.T
            iou = inter / (masks.sum(1, keepdim=True) + gts.sum(1) - inter).clamp(min=1)
            for c in range(len(masks)):
                x, y = grid[c // k].tolist()
                eligible = every.masks[:, y, x]
                if not bool(eligible.any()):
                    continue
                scores = torch.where(eligible, iou[c], torch.full_like(iou[c], -1.0))
                j = int(scores.argmax())
                rows[kinds[j]][0].append(float(cand.scores[c]))
                rows[kinds[j]][1].append(float(scores[j]))
    out = _table(rows)
    if args.train_images:
        with torch.no_grad():
            out["training prompts"] = _training_prompts(model, args.train_images)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
