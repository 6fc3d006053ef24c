"""``segblocks predict MODEL``: segment an image file (or a folder of frames) with a zoo model.

Kept apart from :mod:`segblocks.cli` (which registers it) so each command stays a few lines. The
prompt options are spelled alike for every model (``--points``, ``--boxes``; SEEM adds
``--negative``, ``--scribble``, ``--text``) and read by :mod:`segblocks.zoo.common.prompt_options`;
an option the chosen model does not read is refused.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_predict_parser"]


def _omg_seg_predict(args: argparse.Namespace) -> int:
    """``segblocks predict omg-seg``: any task of OMG-Seg on an image file or a folder of frames."""
    from segblocks.zoo.omg_seg.predict import predict_files

    names = None if args.vocabulary is None else [v.strip() for v in args.vocabulary.split(",") if v.strip()]
    stuff = {s.strip() for s in args.stuff.split(",") if s.strip()}
    unknown = sorted(stuff - set(names or ()))
    if unknown:  # an empty --vocabulary is refused by the model, naming the vocabulary
        raise ValueError(
            f"--stuff: {unknown} are not in --vocabulary (give the class names with --vocabulary)"
        )
    flags = None if names is None else [n not in stuff for n in names]
    for line in predict_files(
        task=args.task, image=args.image, frames=args.frames, points=args.points, boxes=args.boxes,
        vocabulary=names, is_thing=flags, weights=args.weights, out=args.out, scale=args.scale,
    ):  # fmt: skip
        print(line)
    return 0


def _predict_seem(args: argparse.Namespace) -> int:
    """``segblocks predict seem``: one object from clicks, a scribble, a box and/or a text."""
    from segblocks.zoo.seem.predict import parse_box, parse_points, predict_file, write_overlay
    from segblocks.zoo.seem.shipped import load_seem, load_shipped_seem

    model = load_shipped_seem() if args.weights is None else load_seem(args.weights)
    prediction = predict_file(
        model,
        args.image,
        points=parse_points(args.points, "--points") if args.points else [],
        negative=parse_points(args.negative, "--negative") if args.negative else [],
        scribble=args.scribble,
        box=parse_box(args.boxes) if args.boxes else None,
        text=args.text,
    )
    mask = prediction.result.masks[0]
    print(f"object: {int(mask.sum())} pixels, score {float(prediction.result.scores[0]):.2f}")
    path = write_overlay(prediction, args.out or "seem_overlay.png", scale=args.scale)
    print(f"wrote {path.resolve()}")
    return 0


#: The prompt and input options each ``predict`` model reads (one spelling for all: plural ``--points``,
#: ``--boxes``); any other one given is refused rather than ignored.
PREDICT_OPTIONS: dict[str, tuple[str, ...]] = {
    "possam": (),
    "omg-seg": ("frames", "points", "boxes"),
    "uni-ovseg": ("points",),
    "seem": ("points", "negative", "boxes", "scribble", "text"),
}


def _predict(args: argparse.Namespace) -> int:
    """``segblocks predict MODEL``: PosSAM here; OMG-Seg, Uni-OVSeg and SEEM in their own modules."""
    if args.old_box is not None:  # the spelling of `predict seem` before the prompt flags were unified
        if args.boxes is not None:
            raise ValueError("--box, --boxes: --box is the old spelling of --boxes; give --boxes only")
        print("warning: --box is deprecated; use --boxes", file=sys.stderr)
        args.boxes = args.old_box
    given = [
        name for name in ("frames", "points", "negative", "boxes", "scribble", "text") if getattr(args, name)
    ]
    foreign = [name for name in given if name not in PREDICT_OPTIONS[args.model]]
    if foreign:
        options = ", ".join(f"--{name}" for name in foreign)
        takes = ", ".join(f"--{name}" for name in PREDICT_OPTIONS[args.model]) or "none"
        raise ValueError(f"{options}: not an option of predict {args.model} (it reads {takes})")
    if args.model in ("uni-ovseg", "seem") and args.image is None:
        raise ValueError(f"--image: {args.model} needs an image file")
    if args.model == "uni-ovseg":
        from segblocks.zoo.uni_ovseg.predict import run_predict

        print("\n".join(run_predict(args)))
        return 0
    if args.model == "seem":
        return _predict_seem(args)
    if args.model == "omg-seg":
        return _omg_seg_predict(args)
    from segblocks.zoo.possam import load_possam, predict_image, write_overlay
    from segblocks.zoo.possam.shipped import load_shipped_possam

    if args.image is None or not args.vocabulary:
        raise ValueError("--image, --vocabulary: possam needs an image file and class names")
    vocabulary = [v.strip() for v in args.vocabulary.split(";" if ";" in args.vocabulary else ",")]
    vocabulary = [v for v in vocabulary if v]
    if not vocabulary:
        raise ValueError("--vocabulary: expected class names separated by commas, e.g. 'cat,dog,sky'")
    stuff = {s.strip() for s in args.stuff.split(",") if s.strip()}
    unknown = sorted(stuff - set(vocabulary))
    if unknown:
        raise ValueError(f"--stuff: {unknown} are not in --vocabulary")
    real = args.sam_checkpoint is not None or args.clip_pretrained is not None
    if args.weights is None and not real:
        print(
            "warning: using the world-scale PosSAM weights: they only know the shapes world (pass "
            "--sam-checkpoint/--clip-pretrained and --weights for a paper-scale model)",
            file=sys.stderr,
        )
        model = load_shipped_possam()
    else:
        model = load_possam(
            sam_checkpoint=args.sam_checkpoint,
            clip_pretrained=args.clip_pretrained,
            weights=args.weights,
            variant=args.variant,
        )
    flags = [name not in stuff for name in vocabulary]
    result = predict_image(args.image, vocabulary, is_thing=flags, classifier=args.classifier, model=model)
    for seg in result.segments:
        print(f"segment {seg.id}: {vocabulary[seg.category_id]} (score {seg.score:.2f})")
    if args.out:
        path = write_overlay(args.image, result, args.out, class_names=vocabulary, scale=args.scale)
        print(f"wrote {path.resolve()}")
    return 0


def add_predict_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``segblocks predict MODEL ...`` on the top-level sub-command parser.

    Args:
        sub: the top-level parser's sub-commands.
    """
    predict = sub.add_parser("predict", help="segment an image file with a zoo model")
    predict.add_argument("model", choices=("possam", "omg-seg", "uni-ovseg", "seem"), help="the zoo model")
    predict.add_argument("--image", default=None, help="the image file")
    predict.add_argument("--vocabulary", default=None, help="class names, comma-separated")
    predict.add_argument("--frames", default=None, help="omg-seg: a folder of frames (video tasks)")
    predict.add_argument(
        "--task", default="panoptic", help="omg-seg: panoptic|instance|semantic|vis|vps|vss|interactive"
    )
    predict.add_argument(
        "--points", default=None, help='omg-seg, uni-ovseg, seem: (positive) clicks "x,y;x,y"'
    )
    predict.add_argument(
        "--boxes",
        default=None,
        help='omg-seg interactive: boxes "x1,y1,x2,y2;..."; seem: one box "x1,y1,x2,y2"',
    )
    predict.add_argument("--box", dest="old_box", default=None, help=argparse.SUPPRESS)  # before --boxes
    predict.add_argument("--negative", default=None, help="seem: negative clicks 'x,y;x,y'")
    predict.add_argument(
        "--scribble", default=None, help="seem: a stroke drawn as a mask image (non-black = stroke)"
    )
    predict.add_argument("--text", default=None, help="seem: a text prompt, e.g. 'the red star'")
    predict.add_argument("--stuff", default="", help="which of the class names are stuff (comma-separated)")
    predict.add_argument("--out", default=None, help="write the overlay PNG here")
    predict.add_argument("--scale", type=int, default=1, help="upscaling of the overlay drawing")
    predict.add_argument("--classifier", default="mase", choices=("ldp", "clip", "geometric", "mase"))
    predict.add_argument(
        "--weights", default=None, help="trained weights (default: the shipped world-scale ones)"
    )
    predict.add_argument("--sam-checkpoint", default=None, help="SAM weights (e.g. sam_vit_b_01ec64.pth)")
    predict.add_argument("--clip-pretrained", default=None, help="CLIP weights (open_clip tag or file)")
    predict.add_argument("--variant", default="tiny", choices=("tiny", "vit_b", "vit_l", "vit_h"))
    predict.set_defaults(func=_predict)
