"""Why later clicks add little: the round-by-round measurements of the SEEM card.

On the things of the first ``--images`` val images, each object starts from a first prompt of
``--first`` (as ``segblocks eval seem``) and takes the simulator's clicks for ``--rounds`` rounds, every
object of an image in one decoder pass (the evaluation's protocol). Per round it prints the mean IoU,
which of the 3 candidates was chosen and the mean IoU of each candidate and of the best one, and,
split by the sign of the click just added: how many objects, the mean IoU gain, the mean number of
sampled points that fell on that click and the share of clicks within 3 px of an earlier click of the
same sign (a click the model ignored comes back beside itself), and the error region's half-width
at the click (its distance-transform value: the error the click points at is a sliver when it is 1-2
px, finer than the stride-4 mask features and the stride-8 to 32 levels the prompt tokens are read
from). It ends with two ceilings per object:
the best IoU any single query could reach (a logistic fit of the object's own mask on the image's
mask features -- an answer is one embedding's dot product with them) and the stride-4 bound (the mask
pooled to the mask features' grid and upsampled). With ``--training-batches`` it also counts, on
training batches (the recipe's prompts, no rounds), which candidate the best-of-3 matcher trains and
which the selection picks, by kind of prompt; with ``--memory`` the first round's IoU (one centre
click per thing of images with two things or more) under different memory masks: none, the model's
own answer, the ground truth, the whole image, another object's mask.

    python zoo/seem/round_diagnostics.py --weights runs/seem/world --first point --images 12
    python zoo/seem/round_diagnostics.py --first polygon --separate-clicks false    # the shipped weights
    python zoo/seem/round_diagnostics.py --images 0 --training-batches 6
    python zoo/seem/round_diagnostics.py --images 12 --memory --rounds 0
    python zoo/seem/round_diagnostics.py --weights runs/seem/overfit8 --split train --images 8
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.shapes.sample import ShapesSample
from segblocks.decoders import ObjectRegions, click_region
from segblocks.metrics.clicks import next_click
from segblocks.zoo.seem import PromptBatch
from segblocks.zoo.seem.evaluate import FIRST_PROMPTS, _first_region
from segblocks.zoo.seem.interaction import add_click, answer_masks
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.outputs import ImageEncoding
from segblocks.zoo.seem.report import val_samples
from segblocks.zoo.seem.shipped import load_seem, load_shipped_seem


def _samples(images: int, split: str) -> list[ShapesSample]:
    """The first ``images`` shapes-world images (128 px, seed 0) of ``split``."""
    if split == "val":
        return val_samples(images) if images > 0 else []
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128), seed=0), split=split)
    return [world.sample(i) for i in range(images)]


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.count_nonzero(pred | gt)
    return np.count_nonzero(pred & gt) / union if union else 1.0


def _ceilings(model: SEEM, mask_features: torch.Tensor, gt: np.ndarray) -> tuple[float, float]:
    """(best single-query IoU, stride-4 IoU bound) of one object; ``mask_features`` ``[C, h, w]``."""
    c, h, w = mask_features.shape
    size = gt.shape
    x = mask_features.flatten(1).T.float()
    target = F.avg_pool2d(torch.from_numpy(gt).float()[None, None], size[0] // h)[0, 0]
    e = torch.zeros(c + 1, requires_grad=True)
    opt = torch.optim.LBFGS([e], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = x @ e[:c] + e[c]
        loss = F.binary_cross_entropy_with_logits(logits, target.flatten()) + 1e-4 * (e[:c] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)  # type: ignore[arg-type]
    with torch.no_grad():
        logits = (x @ e[:c] + e[c]).reshape(1, 1, h, w)
        fit = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0, 0] > 0
        pooled = (
            F.interpolate(target[None, None], size=size, mode="bilinear", align_corners=False)[0, 0] > 0.5
        )
    return _iou(fit.numpy(), gt), _iou(pooled.numpy(), gt)


@torch.no_grad()
def _rounds(
    model: SEEM, kind: str, images: int, rounds: int, split: str
) -> tuple[list[dict], list[tuple[float, float]]]:
    rng = np.random.default_rng(0)
    rows: list[dict] = []
    ceilings: list[tuple[float, float]] = []
    for index, sample in enumerate(_samples(images, split)):
        gts = [sample.mask(s.id) for s in sample.thing_segments]
        if not gts:
            continue
        size = gts[0].shape
        enc = model.encode_image(sample.image_tensor()[None])
        with torch.enable_grad():
            ceilings += [_ceilings(model, enc.pixels.mask_features[0], g) for g in gts]
        n = len(gts)
        pos = torch.from_numpy(np.stack([_first_region(kind, m, rng) for m in gts]))
        neg, prev = torch.zeros_like(pos), torch.zeros_like(pos)
        clicks = pos.clone() if kind == "point" else torch.zeros_like(pos)
        added: list[tuple[torch.Tensor, bool, float, float] | None] = [None] * n
        before = [0.0] * n
        generator = torch.Generator().manual_seed(index)
        for r in range(rounds):
            prompts = PromptBatch.from_objects(
                [ObjectRegions(positive=pos, negative=neg)],
                [[None] * n],
                size,
                previous=[prev],
                clicks=[clicks],
            )
            out = model.decode(enc, prompts, generator=generator)
            answers = answer_masks(out.answers(), size, enc.padded)[0]
            assert out.prompts is not None and out.selected is not None and out.points is not None
            cands = answer_masks(out.prompts.mask_logits.unflatten(1, (n, -1))[0], size, enc.padded)
            px = (out.points.coords[0] * torch.tensor([size[1], size[0]])).long()
            for i in range(n):
                iou = _iou(answers[i].numpy(), gts[i])
                row = {
                    "round": r + 1,
                    "iou": iou,
                    "selected": int(out.selected[0, i]),
                    "candidates": [_iou(cands[i, k].numpy(), gts[i]) for k in range(cands.shape[1])],
                }
                if added[i] is not None:
                    region, positive, near, depth = added[i]  # type: ignore[misc]
                    mine = (out.points.prompt_ids[0] == i) & out.points.valid[0]
                    on = region[px[mine][:, 1], px[mine][:, 0]]
                    row.update(
                        sign=positive, gain=iou - before[i], points=int(on.sum()), near=near, depth=depth
                    )
                rows.append(row)
                before[i] = iou
                click = next_click(gts[i], answers[i].numpy(), (pos[i] | neg[i]).numpy())
                if click is None:
                    added[i] = None
                    continue
                ys, xs = np.nonzero((pos[i] if click.positive else neg[i]).numpy())
                near = float(np.min(np.hypot(xs - click.x, ys - click.y))) if len(xs) else 1e9
                pred, gt = answers[i].numpy(), gts[i]
                error = (gt & ~pred) if click.positive else (~gt & pred)
                error &= ~(pos[i] | neg[i]).numpy()
                depth = float(ndimage.distance_transform_edt(np.pad(error, 1))[1:-1, 1:-1][click.y, click.x])
                region = add_click(pos[i], neg[i], clicks[i], click)
                added[i] = (region, click.positive, near, depth)
            prev = answers.clone()
    return rows, ceilings


@torch.no_grad()
def _candidates_in_training(model: SEEM, batches: int) -> None:
    """Which candidate the matcher trains and the selection picks, by kind of prompt, on training batches."""
    from segblocks.data import ShapesDataset, ShapesWorldConfig
    from segblocks.matchers.by_construction import ByConstructionMatcher
    from segblocks.zoo.seem.train import collate_seem

    data = ShapesDataset(ShapesWorldConfig(image_size=(128, 128), seed=0), split="train", length=4 * batches)
    matcher = ByConstructionMatcher(outputs_per_prompt=model.per_prompt, num_points=4096)
    rng = np.random.default_rng(0)
    k = model.per_prompt
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((2, k), int))
    model.train()  # as the recipe sees it
    for b in range(batches):
        batch = collate_seem([data[4 * b + i] for i in range(4)], rng, max_rounds=0)
        prompts, targets = batch.extras["prompts"], batch.extras["prompt_targets"]
        out = model(batch.images, prompts)
        assert out.prompts is not None and out.selected is not None
        matching = matcher(out.prompts.mask_logits, None, targets, generator=torch.Generator().manual_seed(b))
        for i, (src, _) in enumerate(matching):
            for p, q in enumerate(src.tolist()):
                text, visual = prompts.texts[i][p] is not None, bool(prompts.positive[i, p].any())
                large = int(targets[i].masks[p].sum()) > 3000
                kind = (
                    ("text + click" if visual else "text")
                    if text
                    else ("visual, stuff-size" if large else "visual")
                )
                counts[kind][0, q % k] += 1
                counts[kind][1, int(out.selected[i, p])] += 1
    model.eval()
    for kind, (matched, chosen) in sorted(counts.items()):
        print(
            f"training prompts, {kind}: matcher trains {matched.tolist()}, selection picks {chosen.tolist()}"
        )


@torch.no_grad()
def _memory_masks(model: SEEM, images: int, split: str) -> None:
    """Round-1 IoU (centre clicks) with the memory mask empty, the own answer, the truth, all, another's."""
    names = ("none", "own answer", "ground truth", "whole image", "another object")
    ious: dict[str, list[float]] = {k: [] for k in names}
    for index, sample in enumerate(_samples(images, split)):
        gts = [sample.mask(s.id) for s in sample.thing_segments]
        if len(gts) < 2:
            continue
        size, n = gts[0].shape, len(gts)
        enc = model.encode_image(sample.image_tensor()[None])
        pos = torch.stack([click_region(*_centre(g), size) for g in gts])

        truth = torch.from_numpy(np.stack(gts))
        own = _round_one(model, enc, pos, torch.zeros_like(pos), index)
        masks = (torch.zeros_like(pos), own, truth, torch.ones_like(pos), truth.roll(1, 0))
        for name, previous in zip(names, masks):
            result = _round_one(model, enc, pos, previous, index)
            ious[name] += [_iou(result[i].numpy(), gts[i]) for i in range(n)]
    for name, values in ious.items():
        print(f"round 1, memory mask = {name}: IoU {100 * np.mean(values):.1f} ({len(values)} things)")


def _round_one(
    model: SEEM, enc: ImageEncoding, pos: torch.Tensor, previous: torch.Tensor, seed: int
) -> torch.Tensor:
    """``[N, H, W]`` answers of one decoder pass with positive regions ``pos`` and memory ``previous``."""
    n = int(pos.shape[0])
    regions = ObjectRegions(positive=pos, negative=torch.zeros_like(pos))
    prompts = PromptBatch.from_objects([regions], [[None] * n], enc.image_size, previous=[previous])
    out = model.decode(enc, prompts, generator=torch.Generator().manual_seed(seed))
    return answer_masks(out.answers(), enc.image_size, enc.padded)[0]


def _centre(mask: np.ndarray) -> tuple[int, int]:
    from segblocks.metrics.clicks import first_click

    click = first_click(mask)
    return click.x, click.y


def main() -> None:
    """Parse the options, run the rounds and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--weights", default=None, help="a run directory or checkpoint (default: the shipped file)"
    )
    p.add_argument("--first", default="point", choices=FIRST_PROMPTS, help="the first prompt's type")
    p.add_argument("--images", type=int, default=12, help="val images")
    p.add_argument("--rounds", type=int, default=8, help="rounds per object (the first prompt is round 1)")
    p.add_argument(
        "--training-batches", type=int, default=0, help="also count candidates on training batches"
    )
    p.add_argument(
        "--split", default="val", choices=("val", "train"), help="whose images (train: overfit runs)"
    )
    p.add_argument("--memory", action="store_true", help="also the round-1 IoU under different memory masks")
    p.add_argument(
        "--separate-clicks", default=None, choices=("true", "false"), help="override the sampler option"
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_shipped_seem() if args.weights is None else load_seem(args.weights)
    if args.separate_clicks is not None:
        model.visual_sampler.separate_clicks = args.separate_clicks == "true"
    if args.training_batches:
        _candidates_in_training(model, args.training_batches)
    if args.memory:
        _memory_masks(model, args.images, args.split)
    if args.images < 1 or args.rounds < 1:
        return
    rows, ceilings = _rounds(model, args.first, args.images, args.rounds, args.split)
    by_round: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_round[row["round"]].append(row)
    print(
        f"{len(by_round[1])} things of {args.images} {args.split} images, first prompt {args.first}; IoU in percent"
    )
    for r, sel in by_round.items():
        chosen = np.bincount([x["selected"] for x in sel], minlength=3).tolist()
        cands = np.mean([x["candidates"] for x in sel], axis=0) * 100
        line = (
            f"round {r}: IoU {100 * np.mean([x['iou'] for x in sel]):.1f}, chosen {chosen}, "
            f"candidates {' / '.join(f'{v:.1f}' for v in cands)}, best "
            f"{100 * np.mean([max(x['candidates']) for x in sel]):.1f}"
        )
        for sign, name in ((True, "+"), (False, "-")):
            part = [x for x in sel if x.get("sign") is sign]
            if part:
                line += (
                    f" | {name} n {len(part)} gain {100 * np.mean([x['gain'] for x in part]):+.1f} "
                    f"points {np.mean([x['points'] for x in part]):.1f} "
                    f"beside an earlier {np.mean([x['near'] <= 3 for x in part]):.2f} "
                    f"error half-width {np.mean([x['depth'] for x in part]):.1f} px"
                )
        print(line)
    best, bound = np.array(ceilings).T
    print(
        f"best single query: IoU {100 * best.mean():.1f}, >= 85 for {np.mean(best >= 0.85):.2f}, "
        f">= 90 for {np.mean(best >= 0.9):.2f}; stride-4 bound {100 * bound.mean():.1f} "
        f"(>= 85 {np.mean(bound >= 0.85):.2f}, >= 90 {np.mean(bound >= 0.9):.2f})"
    )


if __name__ == "__main__":
    main()
