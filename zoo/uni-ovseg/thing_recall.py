"""Where things are lost, stage by stage, from the point grid to the panoptic map.

``python zoo/uni-ovseg/thing_recall.py --val-images 20`` prints, as JSON, for the predicted-IoU filter
at 0.65 (the released value), 0.5 and off, the share of val things (percent) that

- ``candidates``: get a grid candidate with IoU > 0.5 (before the filter; the same for every row),
- ``after_filter``: still have one after the predicted-IoU filter,
- ``after_nms``: still have one after inner-NMS (the proposals),
- ``named_adapted`` / ``named_frozen``: ... whose best proposal is named right (18 names), through
  the adapter / by the frozen CLIP,
- ``panoptic_argmax`` / ``panoptic_soft``: end as a panoptic segment with IoU > 0.5 and the right
  class, with the paper's label rule (the most similar class, confidence = predicted IoU) or the
  soft one (confidence = predicted IoU x class probability),

plus the mean predicted and true IoU of each thing's best candidate (how the IoU head scores it).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.data import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.inference import panoptic_inference, prepare_images, proposal_class_logits
from segblocks.structures import PanopticResult
from segblocks.zoo.uni_ovseg.build import DEFAULT, build_uni_ovseg
from segblocks.zoo.uni_ovseg.outputs import Proposals
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor, one_image
from segblocks.zoo.uni_ovseg.shipped import SHIPPED_WEIGHTS, load_trained_weights

__all__ = ["FILTERS", "main"]

#: IoU-filter thresholds measured (0: every candidate passes).
FILTERS: dict[str, float] = {"filter 0.65": 0.65, "filter 0.5": 0.5, "no filter": 0.0}
COUNTS = ("candidates", "after_filter", "after_nms", "named_adapted", "named_frozen")
RULES = ("argmax", "soft")


def _ious(masks: Tensor, gt: Tensor) -> Tensor:
    """``[M]`` IoU of ``[M, H, W]`` bool masks with one ``[H, W]`` bool mask."""
    m, g = masks.flatten(1).float(), gt.flatten().float()
    inter = m @ g
    return inter / (m.sum(1) + g.sum() - inter).clamp(min=1)


def _found(panoptic: PanopticResult, gt: Tensor, label: int) -> bool:
    """Whether a segment of ``panoptic`` covers ``gt`` at IoU > 0.5 with class ``label``."""
    for seg in panoptic.segments:
        if seg.category_id == label and float(_ious((panoptic.segment_map == seg.id)[None], gt)[0]) > 0.5:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Print the stage-by-stage thing-recall table as JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(prog="python zoo/uni-ovseg/thing_recall.py")
    p.add_argument("--val-images", type=int, default=20)
    p.add_argument("--weights", default=str(SHIPPED_WEIGHTS), help="a trained model (default: shipped)")
    p.add_argument(
        "--clip", default=DEFAULT, help="the CLIP weights the model was trained on (default: shipped)"
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_trained_weights(build_uni_ovseg("tiny", clip_pretrained=args.clip), args.weights).eval()
    cfg = model.config
    predictor = UniOVSegPredictor(model)
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="val")
    is_thing = [c.is_thing for c in CATEGORIES]
    text = F.normalize(model.clip.encode_text([c.name for c in CATEGORIES]), dim=-1)
    counts = {name: dict.fromkeys(COUNTS + tuple(f"panoptic_{r}" for r in RULES), 0) for name in FILTERS}
    things, best_pred, best_true = 0, [], []
    with torch.no_grad():
        for i in range(args.val_images):
            s = world.sample(i)
            t, image = s.to_targets(), s.image_tensor()[None]
            padded_image = prepare_images(image, model.size_divisibility)
            _, pixels = model.encode_image(padded_image)
            candidates = predictor.candidates(
                one_image(pixels, 0), tuple(padded_image.shape[-2:]), (128, 128)
            )
            assert t.is_thing is not None
            gts = [(t.masks[j], int(t.labels[j])) for j in torch.nonzero(t.is_thing).flatten().tolist()]
            things += len(gts)
            for gt, _ in gts:
                iou = _ious(candidates.masks, gt)
                k = int(iou.argmax())
                if float(iou[k]) > 0.5:
                    best_pred.append(float(candidates.scores[k]))
                    best_true.append(float(iou[k]))
            for name, threshold in FILTERS.items():
                c = counts[name]
                kept = candidates.scores >= threshold
                props: Proposals = predictor.select(candidates, iou_threshold=threshold)
                adapted = predictor.name(image, props, text, adapted=True)
                frozen = predictor.name(image, props, text, adapted=False)
                panoptic = {
                    rule: panoptic_inference(
                        proposal_class_logits(adapted, props.scores, label_rule=rule),
                        props.mask_logits,
                        is_thing=is_thing,
                        object_mask_threshold=cfg.object_mask_threshold,
                        overlap_threshold=cfg.overlap_threshold,
                    )
                    for rule in RULES
                }
                for gt, label in gts:
                    iou = _ious(candidates.masks, gt)
                    c["candidates"] += int(bool((iou > 0.5).any()))
                    c["after_filter"] += int(bool((iou[kept] > 0.5).any()))
                    piou = _ious(props.masks, gt)
                    k = int(piou.argmax())
                    if float(piou[k]) > 0.5:
                        c["after_nms"] += 1
                        c["named_adapted"] += int(int(adapted[k].argmax()) == label)
                        c["named_frozen"] += int(int(frozen[k].argmax()) == label)
                    for rule in RULES:
                        c[f"panoptic_{rule}"] += int(_found(panoptic[rule], gt, label))
    rows: dict[str, object] = {
        name: {k: round(100 * v / max(1, things), 1) for k, v in c.items()} for name, c in counts.items()
    }
    rows["things"] = things
    rows["best_candidate"] = {
        "recalled": len(best_true),
        "mean_predicted_iou": round(sum(best_pred) / max(1, len(best_pred)), 3),
        "mean_true_iou": round(sum(best_true) / max(1, len(best_true)), 3),
        "predicted_at_least_0.65": round(100 * sum(v >= 0.65 for v in best_pred) / max(1, len(best_pred)), 1),
    }
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
