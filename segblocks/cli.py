"""The ``segblocks`` command line: ``demo``, ``train RECIPE``, ``predict MODEL`` and ``eval FORMAT``.

``predict`` and ``eval`` are registered from :mod:`segblocks.cli_predict` and :mod:`segblocks.cli_eval`.

The CLI is the one place that prints; the library logs. Every error caused by the input (a wrong
argument, a missing or corrupt file, an image PIL cannot read, a checkpoint that does not fit)
ends as one line ``error: ...`` on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segblocks.cli_eval import add_eval_parser
from segblocks.cli_predict import add_predict_parser

__all__ = ["main"]

#: Errors caused by the input rather than by a bug: reported in one line with exit status 2.
#: ``OSError`` covers missing / unreadable files and PIL's ``UnidentifiedImageError`` and truncated
#: images; ``RuntimeError`` subclasses are listed by name (a corrupt or foreign checkpoint).
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, SyntaxError)


def _input_error_types() -> tuple[type[BaseException], ...]:
    from safetensors import SafetensorError

    from segblocks.engine.weights import CheckpointError

    return (*INPUT_ERRORS, CheckpointError, SafetensorError)


def _message(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text


def _demo(args: argparse.Namespace) -> int:
    """Render shapes-world samples: image, panoptic overlay, prompts and captions, as PNG files."""
    from PIL import Image

    from segblocks.data import (
        CATEGORIES,
        ShapesWorld,
        ShapesWorldConfig,
        jitter_box,
        sample_point,
        sample_scribble,
    )
    from segblocks.data.visualize import draw_prompts, overlay_segments, text_panel, tile_rows

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = ShapesWorld(ShapesWorldConfig(image_size=(args.size, args.size), seed=args.seed), split="val")
    scale = max(1, 384 // args.size)
    written: list[Path] = []
    for index in range(args.num_images):
        sample = world.sample(index)
        rng = np.random.default_rng(index)
        image = Image.fromarray(sample.image).resize((args.size * scale,) * 2, Image.Resampling.NEAREST)
        overlay = overlay_segments(sample.image, sample.panoptic, scale=scale)
        points, boxes, strokes = [], [], []
        for k, seg in enumerate(sample.thing_segments):
            mask = sample.mask(seg.id)
            if k % 3 == 0:
                x, y = sample_point(mask, rng, mode="center")
                points.append((float(x), float(y), True))
            elif k % 3 == 1:
                boxes.append(jitter_box(mask, rng))
            else:
                strokes.append(sample_scribble(mask, rng)[0])
        prompts = draw_prompts(image, points=points, boxes=boxes, strokes=strokes, scale=scale)
        names = ", ".join(f"{s.id}: {CATEGORIES[s.category_id].name}" for s in sample.segments)
        lines = [
            f"caption: {sample.caption}",
            f"noisy caption: {sample.noisy_caption}",
            *(f"referring: {r.text}  ->  segment {r.target_id}" for r in sample.referring),
            f"segments: {names}",
        ]
        sheet = tile_rows([[image, overlay, prompts], [text_panel(lines, width=3 * image.width)]])
        for name, picture in (
            ("image", image),
            ("panoptic", overlay),
            ("prompts", prompts),
            ("sheet", sheet),
        ):
            path = out / f"shapes_{index:02d}_{name}.png"
            picture.save(path)
            written.append(path)
        print(f"[{index}] {sample.caption}")
    if args.possam:
        written += _possam_demo(out, args)
    if args.video:
        written += _video_demo(out, args)
    if args.omg_seg:
        written += _omg_seg_demo(out, args)
    if args.uni_ovseg:
        written += _uni_ovseg_demo(out, args)
    if args.seem:
        written += _seem_demo(out, args)
    print(f"wrote {len(written)} PNG files to {out.resolve()}:")
    for path in written:
        print(f"  {path}")
    return 0


def _uni_ovseg_demo(out: Path, args: argparse.Namespace) -> list[Path]:
    """Uni-OVSeg (trained on unpaired masks and texts) names all 18 classes; one click, 4 granularities."""
    from segblocks.zoo.uni_ovseg.demo import run_uni_ovseg_demo

    demo = run_uni_ovseg_demo(out, num_images=args.num_images, seed=args.seed)
    m = demo.metrics
    print(f"Uni-OVSeg on these images (18 class names): PQ {m.pq:.1f}, mIoU {m.miou:.1f}")
    return demo.files


def _video_demo(out: Path, args: argparse.Namespace) -> list[Path]:
    """Track one val clip with the shipped video Mask2Former."""
    from segblocks.zoo.mask2former.demo import run_video_demo

    demo = run_video_demo(out, seed=args.seed)
    m = demo.metrics
    print(
        f"video Mask2Former on one val clip of 8 frames (windows of 2 linked): VOS J&F {m.vos_jf:.1f}, "
        f"VPQ {m.vpq:.1f} (stuff {m.vpq_stuff:.1f}, things {m.vpq_things:.1f}), VIS AP {m.vis_ap:.1f}"
    )
    return [demo.file]


def _omg_seg_demo(out: Path, args: argparse.Namespace) -> list[Path]:
    """World-scale OMG-Seg with the shipped weights: one image in three tasks, one clip, one prompt."""
    from segblocks.zoo.omg_seg.demo import run_omg_seg_demo

    demo = run_omg_seg_demo(out, seed=args.seed)
    print("\n".join(demo.lines))
    return [demo.file]


def _seem_demo(out: Path, args: argparse.Namespace) -> list[Path]:
    """The shipped SEEM: a multi-round correction and a text + click composition."""
    from segblocks.zoo.seem.demo import run_seem_demo

    demo = run_seem_demo(out, seed=args.seed)
    r1, r2 = demo.correction_ious
    t, b = demo.composition_ious
    print(
        f"SEEM (world scale, shipped weights): click -> IoU {100 * r1:.1f}; after the correction click -> {100 * r2:.1f}"
    )
    print(f"  {demo.text!r}: text alone IoU {100 * t:.1f}; text + one click IoU {100 * b:.1f}")
    return demo.files


def _possam_demo(out: Path, args: argparse.Namespace) -> list[Path]:
    """World-scale PosSAM with the shipped weights on val images, every class by name; print metrics."""
    from segblocks.zoo.possam.demo import run_possam_demo

    demo = run_possam_demo(out, num_images=args.num_images, seed=args.seed)
    print(f"PosSAM (world scale, shipped weights) on {args.num_images} val images, all 18 classes by name;")
    print(f"held out from its training, known only by name: {', '.join(demo.unseen)}")
    print(f"  {'classifier':<10} {'PQ':>6} {'seen':>6} {'unseen':>6} {'SQ':>6} {'RQ':>6} {'mIoU':>6}")
    for name, m in demo.metrics.items():
        row = (m.pq, m.pq_seen, m.pq_unseen, m.sq, m.rq, m.miou)
        print(f"  {name:<10} " + " ".join(f"{v:6.1f}" for v in row))
    return demo.files


#: ``segblocks train NAME ...`` runs ``main(argv)`` of the recipe's module with the remaining arguments.
TRAIN_RECIPES: dict[str, str] = {
    "shapes-clip": "segblocks.pretrain.shapes_clip",
    "shapes-sam": "segblocks.pretrain.shapes_sam",
    "mask2former": "segblocks.zoo.mask2former.train",
    "mask2former-video": "segblocks.zoo.mask2former.train_video",
    "possam": "segblocks.zoo.possam.train",
    "omg-seg": "segblocks.zoo.omg_seg.train",
    "uni-ovseg": "segblocks.zoo.uni_ovseg.train",
    "seem": "segblocks.zoo.seem.train",
}


def _train(args: argparse.Namespace) -> int:
    """Dispatch to a training recipe; each recipe parses its own options (``--help`` lists them)."""
    import importlib

    if args.recipe not in TRAIN_RECIPES:
        known = ", ".join(sorted(TRAIN_RECIPES)) or "none yet"
        raise ValueError(f"unknown recipe {args.recipe!r}; known recipes: {known}")
    module = importlib.import_module(TRAIN_RECIPES[args.recipe])
    return int(module.main(args.recipe_args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segblocks", description="segblocks: composable segmentation blocks"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="render shapes-world samples with annotations and prompts to PNG files"
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--num-images", type=int, default=4, help="number of samples (default: 4)")
    demo.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128)")
    demo.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    demo.add_argument(
        "--no-possam", dest="possam", action="store_false", help="skip the PosSAM segmentation part"
    )
    demo.add_argument(
        "--no-video", dest="video", action="store_false", help="skip the video (Mask2Former-VIS) part"
    )
    demo.add_argument(
        "--no-omg-seg", dest="omg_seg", action="store_false", help="skip the OMG-Seg (every task) part"
    )
    demo.add_argument(
        "--no-uni-ovseg", dest="uni_ovseg", action="store_false", help="skip the Uni-OVSeg part"
    )
    demo.add_argument("--no-seem", dest="seem", action="store_false", help="skip the SEEM interaction part")
    demo.set_defaults(func=_demo)
    add_predict_parser(sub)
    train = sub.add_parser("train", help="train a model or a tiny foundation model on the shapes world")
    train.add_argument("recipe", help="what to train (see the docs for the list)")
    train.add_argument(
        "recipe_args", nargs=argparse.REMAINDER, help="options of the recipe (--help for each)"
    )
    train.set_defaults(func=_train)
    add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segblocks`` console script.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 on bad input.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if getattr(args, "num_images", 1) < 1:
        print("error: --num-images must be >= 1", file=sys.stderr)
        return 2
    out = getattr(args, "out", None)
    if isinstance(out, str) and args.command == "predict" and Path(out).is_dir():
        print(
            f"error: --out: {out!r} is a folder; give a file name such as {str(Path(out) / 'overlay.png')!r}",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.func(args))
    except _input_error_types() as err:
        if args.verbose:  # the full traceback, for a bug report
            traceback.print_exc()
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
