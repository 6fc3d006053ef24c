"""Calibrate a ``segblocks train possam`` run as the shipped file was, score it on val, measure its void decision.

The model card's protocol for a candidate PosSAM (``zoo/possam/README.md``):

1. exponents of both ensembles on the proxy run, then each classifier's object threshold on 100
   training-split images (:func:`segblocks.zoo.possam.calibration.calibrate`);
2. optionally write the calibrated trained tensors in the shipped format (``--export``);
3. every classifier on the first ``--val-images`` val images with all 18 class names (seen and
   unseen), as ``segblocks eval possam`` scores the shipped file;
4. optionally MASE without its IoU weighting, its threshold re-calibrated by the same rule
   (``--ablate-iou``);
5. the void decision on ``--diagnose-images`` training images (training names, nothing from val):
   the share of non-empty queries whose LDP void probability is below 0.5, the queries an image that
   pass each classifier's threshold (duplicates take the things' pixels in the panoptic merge), and
   of the ground-truth things, how many have a mask with IoU > 0.5 and how many of those LDP names
   right, and how many have two or more such masks and keep a second one (void below 0.5): a
   duplicate.

``--seed`` names the run's world seed (``segblocks train possam --seed``): calibration and
diagnosis use its training images; ``--val-seeds`` scores val images of any seeds (default the
run's). ``--exponents-from`` takes the ensembles' exponents from a shipped-format file instead of
choosing them on a proxy. Prints JSON::

    python bench/possam_run_report.py --run runs/possam_v17 --proxy runs/possam_v17_proxy \\
        --export runs/possam_v17/calibrated.safetensors --ablate-iou
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig, collate_batch
from segblocks.zoo.possam import CLASSIFIERS, PosSAM, PosSAMPredictor, evaluate, load_possam
from segblocks.zoo.possam.calibration import calibrate, calibrate_object_thresholds, calibration_batches
from segblocks.zoo.possam.shipped import export_trained_weights, load_shipped_possam


def _val_rows(
    model: PosSAM, images: int, seed: int = 0, classifiers: tuple[str, ...] = CLASSIFIERS
) -> dict[str, Any]:
    world = ShapesWorldConfig(image_size=(128, 128), seed=seed)
    data = ShapesDataset(world, split="val", length=images)
    batches = [collate_batch([data[i] for i in range(s, min(s + 8, images))]) for s in range(0, images, 8)]
    predictor = PosSAMPredictor(model)
    vocab = predictor.encode_vocabulary([c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES])
    metrics = evaluate(predictor, batches, vocabulary=vocab, classifiers=classifiers)
    return {name: m.as_dict() for name, m in metrics.items()}


@torch.no_grad()
def _void_decision(model: PosSAM, images: int, seed: int = 0) -> dict[str, Any]:
    predictor = PosSAMPredictor(model)  # the training vocabulary, which the targets index
    below, nonempty, things, found, named, covered, duplicated = 0, 0, 0, 0, 0, 0, 0
    passing = dict.fromkeys(CLASSIFIERS, 0)
    for batch in calibration_batches(images=images, seed=seed):
        outputs = predictor.infer(batch.images)
        void = outputs.ldp_logits.softmax(-1)[..., -1]
        below += int((void[outputs.valid] < 0.5).sum())
        nonempty += int(outputs.valid.sum())
        for name in CLASSIFIERS:
            probs = predictor.classify(outputs, name).softmax(-1)
            scores, labels = probs.max(-1)
            keep = (labels != probs.shape[-1] - 1) & (scores > predictor.object_threshold(name))
            passing[name] += int((keep & outputs.valid).sum())
        size = batch.images.shape[-2:]
        masks = torch.nn.functional.interpolate(outputs.mask_logits.float(), size=size, mode="bilinear") > 0
        for i, target in enumerate(batch.targets):
            assert target.is_thing is not None
            for gt, label in zip(target.masks[target.is_thing], target.labels[target.is_thing]):
                things += 1
                inter = (masks[i] & gt).flatten(1).sum(-1)
                iou = inter / (masks[i] | gt).flatten(1).sum(-1).clamp(min=1)
                best = int(iou.argmax())
                over = void[i][iou > 0.5].sort().values  # the void probabilities of its masks
                if over.numel() >= 2:  # a second mask of the thing, kept unless its void wins
                    covered += 1
                    duplicated += int(float(over[1]) < 0.5)
                if float(iou[best]) > 0.5:
                    found += 1
                    named += int(int(outputs.ldp_logits[i, best, :-1].argmax()) == int(label))
    return {
        "images": images,
        "share_nonempty_queries_void_below_0.5": below / max(nonempty, 1),
        "queries_per_image_passing_threshold": {k: v / images for k, v in passing.items()},
        "things": things,
        "things_with_a_mask_iou_above_0.5": found,
        "of_those_named_right_by_ldp": named,
        "things_with_two_or_more_masks_iou_above_0.5": covered,
        "of_those_with_a_second_mask_void_below_0.5": duplicated,
        "logit_scale": float(model.ldp.class_head.scale),
        "residual_gate": None if model.ldp.residual_gate is None else float(model.ldp.residual_gate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the run directory of the candidate")
    parser.add_argument("--proxy", help="its proxy run (exponents); without it FC-CLIP's are kept")
    parser.add_argument("--export", type=Path, help="write the calibrated shipped-format file here")
    parser.add_argument(
        "--exponents-from", type=Path, help="use a shipped-format file's exponents (no proxy)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the run's world seed (calibration, diagnosis)")
    parser.add_argument("--val-seeds", type=int, nargs="+", help="score val images of these world seeds")
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--diagnose-images", type=int, default=24)
    parser.add_argument("--ablate-iou", action="store_true", help="also MASE without its IoU weighting")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.proxy is not None and args.exponents_from is not None:
        parser.error("--proxy, --exponents-from: give one source of exponents")
    model = load_possam(weights=args.run)
    assert model.config is not None
    if args.exponents_from is not None:
        source = load_shipped_possam(args.exponents_from).config  # its header, validated
        assert source is not None
        model.config = dataclasses.replace(model.config, ensemble_exponents=source.ensemble_exponents)
    proxy = None if args.proxy is None else load_possam(weights=args.proxy)
    model = calibrate(model, proxy=proxy, seed=args.seed)
    assert model.config is not None
    val_seeds = args.val_seeds or [args.seed]
    report: dict[str, Any] = {
        "run": args.run,
        "proxy": args.proxy,
        "ensemble_exponents": model.config.ensemble_exponents,
        "object_mask_thresholds": model.config.object_mask_thresholds,
    }
    if args.export is not None:
        report["exported"] = str(export_trained_weights(model, args.export))
    report["val"] = {seed: _val_rows(model, args.val_images, seed) for seed in val_seeds}
    report["void_decision"] = _void_decision(model, args.diagnose_images, args.seed)
    if args.ablate_iou:
        config = dataclasses.replace(model.config, mase_use_iou=False)
        model.config = config
        threshold = calibrate_object_thresholds(
            PosSAMPredictor(model), calibration_batches(seed=args.seed), classifiers=("mase",)
        )
        assert config.object_mask_thresholds is not None
        model.config = dataclasses.replace(
            config, object_mask_thresholds={**config.object_mask_thresholds, **threshold}
        )
        report["mase_without_iou"] = {
            seed: {
                "threshold": threshold["mase"],
                **_val_rows(model, args.val_images, seed, ("mase",))["mase"],
            }
            for seed in val_seeds
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
