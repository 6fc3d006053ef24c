"""``segblocks eval``: score prediction files (COCO panoptic / instances, semantic PNGs, YouTube-VIS,
VPQ, DAVIS) or a trained zoo model, print a table and optionally write the scores as JSON.

Kept apart from :mod:`segblocks.cli` (which registers it) so each command stays a few lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from segblocks.evaluation import EvaluationReport, format_table, write_report_json
from segblocks.structures import Batch

__all__ = ["add_eval_parser"]


def _file_reports(args: argparse.Namespace) -> EvaluationReport:
    from segblocks import evaluation as ev

    if args.format == "coco-panoptic":
        return ev.evaluate_coco_panoptic(args.gt_json, args.pred_json, args.gt_folder, args.pred_folder)
    if args.format == "coco-instances":
        return ev.evaluate_coco_instances(args.gt_json, args.results)
    if args.format == "youtube-vis":
        return ev.evaluate_youtube_vis(args.gt_json, args.results)
    if args.format == "semantic":
        names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
        return ev.evaluate_semantic(
            args.gt_dir,
            args.pred_dir,
            num_classes=args.num_classes,
            reduce_zero_label=not args.no_reduce_zero_label,
            class_names=names,
        )
    if args.format == "vpq":
        return ev.evaluate_vpq(args.gt_json, args.gt_folder, args.pred_json, args.pred_folder)
    assert args.format == "davis"
    return ev.evaluate_davis(
        args.davis_root,
        args.results,
        split=args.split,
        year=args.year,
        resolution=args.resolution,
        semi_supervised=not args.unsupervised,
    )


def _shapes_val_batches(args: argparse.Namespace) -> list[Batch]:
    """The first ``--val-images`` shapes-world val samples, batched as the training recipes do."""
    from segblocks.data import ShapesDataset, ShapesWorldConfig, collate_batch

    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    data = ShapesDataset(world, split="val", length=args.val_images)
    return [
        collate_batch([data[i] for i in range(s, min(s + args.batch_size, len(data)))])
        for s in range(0, len(data), args.batch_size)
    ]


def _checkpoint(weights: str) -> tuple[Path, dict[str, Any]]:
    """The ``model.safetensors`` of a weights path (file, checkpoint or run directory) and its saved state."""
    from segblocks.engine import find_latest_checkpoint

    path = Path(weights)
    if path.is_dir():
        latest = find_latest_checkpoint(path / "checkpoints") if (path / "checkpoints").is_dir() else None
        path = latest or find_latest_checkpoint(path) or path
        state = json.loads((path / "state.json").read_text()) if (path / "state.json").is_file() else {}
        return path / "model.safetensors", state
    if not path.is_file():
        raise FileNotFoundError(f"--weights: no such file or checkpoint directory {str(path)!r}")
    return path, {}


def _report_from_metrics(task: str, rows: dict[str, dict[str, float]], images: int) -> EvaluationReport:
    from segblocks.data import CATEGORIES

    return EvaluationReport(
        task=task,
        summary=dict(rows["mase"] if "mase" in rows else next(iter(rows.values()))),
        counts={"images": images, "classes": len(CATEGORIES)},
        rows=rows if len(rows) > 1 else {},
    )


def _percent_to_fraction(values: dict[str, float]) -> dict[str, float]:
    return {k: v / 100 for k, v in values.items() if k != "num_images"}


def _possam_report(args: argparse.Namespace) -> EvaluationReport:
    """PosSAM on the shapes world's val images, every class by name (the model card's protocol)."""
    from segblocks.data import CATEGORIES
    from segblocks.zoo.possam import PosSAMPredictor, evaluate, load_possam
    from segblocks.zoo.possam.shipped import load_shipped_possam

    model = load_shipped_possam() if args.weights is None else load_possam(weights=args.weights)
    predictor = PosSAMPredictor(model, object_mask_threshold=args.object_threshold)
    batches = _shapes_val_batches(args)
    vocab = predictor.encode_vocabulary([c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES])
    metrics = evaluate(predictor, batches, vocabulary=vocab)
    rows = {name: _percent_to_fraction(m.as_dict()) for name, m in metrics.items()}
    return _report_from_metrics("possam", rows, sum(len(b) for b in batches))


def _uni_ovseg_report(args: argparse.Namespace) -> EvaluationReport:
    """Uni-OVSeg on shapes-world val images: open-vocabulary mIoU/PQ (18 classes by name), prompts vs the tiny SAM."""
    from segblocks.data import ShapesWorld, ShapesWorldConfig
    from segblocks.zoo.uni_ovseg.evaluate import evaluate_card
    from segblocks.zoo.uni_ovseg.predict import load_uni_ovseg

    model = load_uni_ovseg(None if args.weights is None else _checkpoint(args.weights)[0])
    world = ShapesWorld(
        ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed), split="val"
    )
    rows = evaluate_card(
        model, [world.sample(i) for i in range(args.val_images)], compare_sam=not args.no_sam
    )
    shown = {k: v for r in rows.values() for k, v in r.items() if "seconds" not in k and "per_image" not in k}
    columns = [c for c in dict.fromkeys(shown) if c != "num_things"]  # one set of columns for every row
    nan = float("nan")
    table = {name: {c: r[c] / 100 if c in r else nan for c in columns} for name, r in rows.items()}
    summary = {k: v / 100 for k, v in {**rows["open_vocab"], **rows["prompt"]}.items() if k in columns}
    return EvaluationReport(
        task="uni-ovseg", summary=summary, counts={"images": args.val_images, "classes": 18}, rows=table
    )


def _mask2former_report(args: argparse.Namespace) -> EvaluationReport:
    """Mask2Former rebuilt from a ``segblocks train mask2former`` checkpoint, on shapes-world val images."""
    from segblocks.data import CATEGORIES
    from segblocks.engine import load_weights
    from segblocks.zoo.mask2former import Mask2FormerConfig, build_mask2former, evaluate

    model_file, state = _checkpoint(args.weights)
    if state.get("model_class", "Mask2Former") != "Mask2Former":
        raise ValueError(
            f"--weights: {args.weights!r} is a checkpoint of {state['model_class']}, not Mask2Former"
        )
    config = state.get("config") or {}
    recorded = state.get("extra")
    extra: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    backbone = args.backbone or extra.get("backbone") or "resnet18"
    open_vocab = args.open_vocab or bool(extra.get("open_vocab", False))
    names, flags = [c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES]
    classes: dict[str, Any] = (
        {"vocabulary": names} if open_vocab else {"num_classes": len(names), "class_names": names}
    )
    try:
        variant: Any = Mask2FormerConfig(**config) if config else args.variant
    except TypeError as err:  # fields of another model's config
        raise ValueError(f"--weights: {args.weights!r} is not a Mask2Former checkpoint ({err})") from None
    model = build_mask2former(backbone, **classes, is_thing=flags, variant=variant)
    load_weights(model_file, model, strict=True)
    batches = _shapes_val_batches(args)
    metrics = evaluate(model, batches)
    return _report_from_metrics(
        "mask2former",
        {"mask2former": _percent_to_fraction(metrics.as_dict())},
        sum(len(b) for b in batches),
    )


def _mask2former_video_report(args: argparse.Namespace) -> EvaluationReport:
    """The video Mask2Former (shipped or a checkpoint's weights) on shapes-world val clips in linked windows."""
    from segblocks.data import ShapesClipDataset, ShapesWorldConfig
    from segblocks.zoo.mask2former import Mask2FormerVideoPredictor
    from segblocks.zoo.mask2former.evaluate_video import evaluate_video
    from segblocks.zoo.mask2former.shipped import SHIPPED_VIDEO_WEIGHTS, load_shipped_mask2former_video

    weights = SHIPPED_VIDEO_WEIGHTS if args.weights is None else _checkpoint(args.weights)[0]
    model = load_shipped_mask2former_video(weights)
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    clips = ShapesClipDataset(world, split="val", length=args.val_images, num_frames=args.frames)
    metrics = evaluate_video(
        Mask2FormerVideoPredictor(model, window=args.window), (clips[i] for i in range(len(clips)))
    )
    values = {k: v / 100 for k, v in metrics.as_dict().items() if k != "num_videos"}
    return EvaluationReport(
        task="mask2former-video", summary=values, counts={"videos": metrics.num_videos, "frames": args.frames}
    )


def _omg_seg_report(args: argparse.Namespace) -> EvaluationReport:
    """OMG-Seg: every task of one checkpoint on shapes-world val images and clips (its card's table)."""
    from segblocks.zoo.omg_seg.evaluate import TABLE_COLUMNS, evaluate_world

    m = evaluate_world(
        args.weights,
        val_images=args.val_images,
        val_clips=args.val_clips,
        frames=args.frames,
        window=args.window,
        image_size=args.image_size,
        seed=args.seed,
        classifier=args.classifier,
    ).as_dict()
    summary = {header: m[field] / 100 for field, header in TABLE_COLUMNS}
    return EvaluationReport(
        task="omg-seg", summary=summary, counts={"images": int(m["num_images"]), "clips": int(m["num_clips"])}
    )


def _seem_report(args: argparse.Namespace) -> EvaluationReport:
    """SEEM: NoC / 1-IoU per first prompt, referring, PQ (and the ablations), as its card reports."""
    from segblocks.zoo.seem.report import evaluate_all, evaluation_report, val_samples
    from segblocks.zoo.seem.shipped import load_seem, load_shipped_seem

    model = load_shipped_seem() if args.weights is None else load_seem(args.weights)
    samples = val_samples(args.val_images, image_size=args.image_size, seed=args.seed)
    return evaluation_report(
        evaluate_all(model, samples, max_clicks=args.max_clicks, ablations=args.ablations)
    )


def _run_eval(args: argparse.Namespace) -> int:
    """Score, print the table, write the JSON."""
    if args.json is not None and Path(args.json).is_dir():
        raise IsADirectoryError(
            f"--json: {args.json!r} is a folder; give a file name such as {str(Path(args.json) / 'scores.json')!r}"
        )
    models = {
        "possam": _possam_report,
        "uni-ovseg": _uni_ovseg_report,
        "mask2former": _mask2former_report,
        "mask2former-video": _mask2former_video_report,
        "omg-seg": _omg_seg_report,
        "seem": _seem_report,
    }
    report = models[args.format](args) if args.format in models else _file_reports(args)
    print(format_table(report, rows=not args.no_rows))
    if args.json is not None:
        path = write_report_json(report, args.json)
        print(f"wrote {path.resolve()}", file=sys.stderr)
    return 0


def add_eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``segblocks eval FORMAT ...`` on the top-level sub-command parser."""
    top = sub.add_parser(
        "eval", help="score prediction files (or a trained zoo model) as the field's tools do"
    )
    formats = top.add_subparsers(dest="format", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = formats.add_parser(name, help=help_text)
        p.add_argument("--json", default=None, metavar="OUT", help="also write the scores to this JSON file")
        p.add_argument("--no-rows", action="store_true", help="print only the summary, not per-class rows")
        p.set_defaults(func=_run_eval)
        return p

    p = add("coco-panoptic", "PQ / SQ / RQ as panopticapi's pq_compute (JSON + PNGs, no images)")
    p.add_argument("--gt-json", required=True, help="ground-truth panoptic JSON")
    p.add_argument("--pred-json", required=True, help="predictions JSON (annotations only)")
    p.add_argument(
        "--gt-folder", default=None, help="ground-truth PNG folder (default: --gt-json without .json)"
    )
    p.add_argument(
        "--pred-folder", default=None, help="prediction PNG folder (default: --pred-json without .json)"
    )
    p = add("coco-instances", "the twelve COCOeval segm numbers (annotation JSON + results JSON)")
    p.add_argument("--gt-json", required=True, help="COCO instances JSON")
    p.add_argument("--results", required=True, help="results JSON (a list of detections with RLE masks)")
    p = add("youtube-vis", "the twelve YouTube-VIS AP numbers (annotation JSON + results JSON, no frames)")
    p.add_argument("--gt-json", required=True, help="YouTube-VIS annotation JSON")
    p.add_argument("--results", required=True, help="results JSON")
    p = add("semantic", "mIoU and pixel accuracy of label PNGs (ADE20K style)")
    p.add_argument("--gt-dir", required=True, help="ground-truth label PNG folder")
    p.add_argument("--pred-dir", required=True, help="prediction PNG folder (same file names)")
    p.add_argument("--num-classes", type=int, required=True, help="number of classes")
    p.add_argument("--class-names", default=None, help="comma-separated class names for the rows")
    p.add_argument(
        "--no-reduce-zero-label", action="store_true", help="PNG values are class ids and 255 is ignored"
    )
    p = add("vpq", "video panoptic quality from per-frame PNG + JSON (VIPSeg layout)")
    p.add_argument("--gt-json", required=True)
    p.add_argument("--gt-folder", required=True, help="one PNG folder per video")
    p.add_argument("--pred-json", required=True)
    p.add_argument("--pred-folder", required=True, help="one PNG folder per video")
    p = add("davis", "J, F, J&F, recall and decay (DAVIS folders, no frames)")
    p.add_argument("--davis-root", required=True, help="folder holding Annotations/ and ImageSets/")
    p.add_argument("--results", required=True, help="one folder of PNGs per sequence")
    p.add_argument("--split", default="val")
    p.add_argument("--year", default="2017")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--unsupervised", action="store_true", help="score the first and last frames too")
    p = add("possam", "PosSAM on shapes-world val images, all classes by name (its model card's numbers)")
    p.add_argument(
        "--weights", default=None, help="a checkpoint directory or model.safetensors (default: shipped)"
    )
    p.add_argument(
        "--object-threshold",
        type=float,
        default=None,
        help="one panoptic object threshold for every classifier (default: the weights' calibrated ones)",
    )
    _add_world_options(p)
    p = add("seem", "SEEM on shapes-world val images: NoC@85/90 and 1-IoU per first prompt, referring, PQ")
    p.add_argument(
        "--weights",
        default=None,
        help="a run or checkpoint directory, or model.safetensors (default: shipped)",
    )
    p.add_argument("--max-clicks", type=int, default=20, help="click cap (card: 20)")
    p.add_argument("--ablations", action="store_true", help="also the composition modes and memory off")
    _add_world_options(p)
    p.set_defaults(val_images=50)
    p = add(
        "uni-ovseg", "Uni-OVSeg on shapes-world val images: 18 classes by name, prompts next to the tiny SAM"
    )
    p.add_argument(
        "--weights", default=None, help="a checkpoint directory or .safetensors (default: shipped)"
    )
    p.add_argument("--no-sam", action="store_true", help="skip the tiny SAM comparison rows")
    _add_world_options(p)
    p = add(
        "mask2former", "Mask2Former from a segblocks train mask2former checkpoint, on shapes-world val images"
    )
    p.add_argument(
        "--weights", required=True, help="a run directory, checkpoint directory or model.safetensors"
    )
    p.add_argument(
        "--backbone",
        default=None,
        help="the backbone it was trained with (default: the one the checkpoint records)",
    )
    p.add_argument(
        "--open-vocab", action="store_true", help="it was trained with --open-vocab (recorded too)"
    )
    p.add_argument(
        "--variant", default="world", choices=("world", "paper"), help="when the checkpoint has no config"
    )
    _add_world_options(p)

    p = add(
        "mask2former-video",
        "Mask2Former-VIS on shapes-world val clips in linked windows (its card's numbers)",
    )
    p.add_argument(
        "--weights", default=None, help="a checkpoint directory or model.safetensors (default: shipped)"
    )
    p.add_argument("--frames", type=int, default=8, help="frames per val clip (card: 8)")
    p.add_argument("--window", type=int, default=2, help="frames per linked window (card: 2)")
    _add_world_options(p)
    p.set_defaults(val_images=20, image_size=96)

    p = add(
        "omg-seg",
        "OMG-Seg: every task of one checkpoint on shapes-world val images and clips (its card's table)",
    )
    p.add_argument(
        "--weights", default=None, help="a run / checkpoint directory or model.safetensors (default: shipped)"
    )
    p.add_argument("--val-clips", type=int, default=20, help="val clips (card: 20)")
    p.add_argument("--frames", type=int, default=8, help="frames per val clip (card: 8)")
    p.add_argument("--window", type=int, default=2, help="frames per linked window (card: 2)")
    p.add_argument("--classifier", default="ensemble", choices=("ensemble", "omg"))
    _add_world_options(p)
    p.set_defaults(image_size=96)


def _add_world_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-images", type=int, default=100, help="number of val images (cards: 100)")
    p.add_argument("--image-size", type=int, default=128, help="image side (cards: 128)")
    p.add_argument("--seed", type=int, default=0, help="world seed (cards: 0)")
    p.add_argument("--batch-size", type=int, default=8)
