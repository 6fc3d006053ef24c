"""The card's diagnostics of the shipped weights: ``python zoo/omg-seg/diagnostics.py``.

1. Interactive IoU split into things and stuff (centre click and tight box on every segment of the
   first 20 val images).
2. Panoptic PQ per class on the first 100 val images (all 18 classes by name, ensemble classifier).
3. The same 100 images with the four held-out names removed from the vocabulary (their text embeddings
   zeroed, so their logit is 0 -- the zero background's): how well the 14 training classes are named
   when no held-out name competes.
4. VOS J&F on the 20 val clips with the top 10 objectness-ranked proposals (the world default) and
   with every query a proposal (the ranking out of the way): is a VOS drop the objectness ranking or
   the masks?

5. The text space the classifier names in (no weights needed): the cosine of each held-out name with
   the direction the official classifier learns for "none of the training classes", minus the mean
   of the 14 training names; and the largest cosine between two of the 18 names.

``--sections images`` runs 1-3, ``--sections vos`` runs 4, ``--sections text`` runs 5 (default: all);
``--weights RUN`` diagnoses a run's newest checkpoint instead of the shipped weights.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
import torch.nn.functional as F

from segblocks.data import CATEGORIES, ShapesClipDataset, ShapesDataset, ShapesWorldConfig
from segblocks.inference.targets import targets_to_panoptic
from segblocks.metrics import PanopticQuality
from segblocks.structures import PanopticResult
from segblocks.zoo.omg_seg.evaluate import _prompted_ious, evaluate_all
from segblocks.zoo.omg_seg.predict import load_omg_seg
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor


def vos(predictor: OMGSegPredictor) -> None:
    """VOS J&F of the 20 val clips (8 frames, windows of 2) by the number of proposals VOS chooses from."""
    clips = ShapesClipDataset(ShapesWorldConfig(image_size=(96, 96)), split="val", length=20, num_frames=8)
    base = predictor.config
    print("\n| VOS proposals | J&F |\n|---|---:|")
    for k in (base.vos_proposals, predictor.model.num_queries):
        predictor.config = dataclasses.replace(base, vos_proposals=k)
        jf = evaluate_all(predictor, [], (clips[i] for i in range(len(clips)))).vos_jf
        print(f"| top {k} by objectness | {jf:.1f} |")
    predictor.config = base


def text_space(predictor: OMGSegPredictor) -> None:
    """Where the held-out names lie relative to the training names (unit text embeddings)."""
    vocab = predictor.vocabulary
    text = vocab.text_embeddings.float()
    away = -F.normalize(text[vocab.seen].mean(0), dim=0)  # "none of the training classes"
    cos = text @ text.T
    off = cos[~torch.eye(len(text), dtype=torch.bool)]
    print(f"\nlargest cosine between two of the {len(text)} names: {off.max():.2f}")
    print(f"length of the mean of the {len(text)} unit names: {text.mean(0).norm():.3f}", end="")
    print(f" (orthogonal names: {len(text) ** -0.5:.3f})")
    sphere = F.normalize(torch.randn(4096, text.shape[1], generator=torch.Generator().manual_seed(0)), dim=-1)
    print(
        f"largest cosine of 4,096 random directions with -mean(training names): {(sphere @ away).max():.2f}"
    )
    negated = -text[vocab.seen] @ away  # what a negative costs a query along -mean (class_negative_margin)
    print(
        f"cosine of -mean(training names) with the negated training names: {negated.min():.2f} to {negated.max():.2f}"
    )
    print("| held-out name | cosine with -mean(training names) | largest cosine with a training name |")
    print("|---|---:|---:|")
    for i in (~vocab.seen).nonzero().flatten().tolist():
        print(f"| {vocab.names[i]} | {float(text[i] @ away):+.2f} | {float(cos[i][vocab.seen].max()):+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="text,images,vos", help="text, images, vos (comma-separated)")
    parser.add_argument("--weights", default=None, help="a run or checkpoint directory (default: shipped)")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    names = [c.name for c in CATEGORIES]
    predictor = OMGSegPredictor(
        load_omg_seg(args.weights), vocabulary=names, is_thing=[c.is_thing for c in CATEGORIES]
    )
    if "text" in sections:
        text_space(predictor)
    if "vos" in sections:
        vos(predictor)
    if "images" not in sections:
        return
    data = ShapesDataset(ShapesWorldConfig(image_size=(96, 96)), split="val", length=100)
    ious: dict[tuple[str, bool], list[float]] = {(k, t): [] for k in ("click", "box") for t in (True, False)}
    pq = PanopticQuality(categories=dict(enumerate(predictor.vocabulary.is_thing)))
    for i in range(len(data)):
        ex = data[i]
        image = ex.image[None]
        if i < 20:
            assert ex.targets.is_thing is not None
            for kind in ("click", "box"):
                for thing, iou in zip(
                    ex.targets.is_thing.tolist(), _prompted_ious(predictor, image, ex.targets.masks, kind)
                ):
                    ious[kind, thing].append(iou)
        pan = predictor.segment_images(image, ("panoptic",), predictor.vocabulary, "ensemble")[0].panoptic
        assert pan is not None
        pq.update(
            PanopticResult(segment_map=pan.segment_map, segments=pan.segments),
            targets_to_panoptic(ex.targets),
        )
    print("| prompt | things: mean IoU (n) | stuff: mean IoU (n) |\n|---|---:|---:|")
    for kind in ("click", "box"):
        t, s = ious[kind, True], ious[kind, False]
        print(f"| {kind} | {100 * sum(t) / len(t):.1f} ({len(t)}) | {100 * sum(s) / len(s):.1f} ({len(s)}) |")
    result = pq.compute()
    print("\n| class | trained | PQ | TP | FP | FN |\n|---|---|---:|---:|---:|---:|")
    for i, name in enumerate(names):
        c = result.per_class[i]
        seen = "yes" if bool(predictor.vocabulary.seen[i]) else "held out"
        print(f"| {name} | {seen} | {100 * c.pq:.1f} | {c.tp} | {c.fp} | {c.fn} |")
    vocab = predictor.vocabulary
    text = vocab.text_embeddings.clone()
    text[~vocab.seen] = 0.0
    predictor.vocabulary = dataclasses.replace(vocab, text_embeddings=text)
    closed = evaluate_all(predictor, (data[i] for i in range(len(data))), [])
    print("\nheld-out names removed (14 training names):", end="")
    for key in ("ps_pq", "ps_pq_things", "ps_pq_stuff", "is_ap", "ss_miou"):
        print(f" {key} {getattr(closed, key):.1f}", end="")
    print()


if __name__ == "__main__":
    main()
