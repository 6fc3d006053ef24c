"""Why a SEEM does or does not learn from a correction click: the measurements of the card's diagnosis.

On the things of the first ``--images`` val images (point-first: one click at the centre-most pixel),
it prints, for round 1 and for round 2 (the simulator's next click added, the round-1 answer as the
memory prompt): mean IoU split by the sign of the second click; round 2 without memory, with memory
but no new click, and with the click's sign flipped; the answer's area; where round 1's false
positives lie (other things, stuff) and how much of them is disconnected from the clicked object;
and how much pixel position a linear read-out finds in the mask features and the decoder's levels
(R^2 on held-out images).

    python zoo/seem/correction_diagnostics.py --weights runs/seem/world --images 16
    python zoo/seem/correction_diagnostics.py --images 16            # the shipped weights
    python zoo/seem/correction_diagnostics.py --weights old.safetensors --clip clip_v9.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from scipy import ndimage

from segblocks.data import CATEGORIES
from segblocks.decoders import ObjectRegions, click_region
from segblocks.metrics.clicks import first_click, next_click
from segblocks.zoo.seem import PromptBatch, build_seem
from segblocks.zoo.seem.interaction import answer_masks
from segblocks.zoo.seem.model import SEEM
from segblocks.zoo.seem.outputs import ImageEncoding
from segblocks.zoo.seem.report import val_samples
from segblocks.zoo.seem.shipped import load_seem, load_shipped_seem


def _model(weights: str | None, clip: str | None) -> SEEM:
    if weights is None:
        return load_shipped_seem()
    if weights.endswith(".safetensors"):  # an exported file, possibly of another CLIP or configuration
        model = build_seem(
            "tiny",
            vocabulary=[c.name for c in CATEGORIES],
            is_thing=[c.is_thing for c in CATEGORIES],
            clip_pretrained=clip or "default",
            position_features=any(k.startswith("pixel_position.") for k in load_file(weights)),
        )
        model.load_state_dict({k: v.float() for k, v in load_file(weights).items()}, strict=False)
        return model.eval()
    return load_seem(Path(weights))


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.count_nonzero(pred | gt)
    return np.count_nonzero(pred & gt) / union if union else 1.0


def _answer(
    model: SEEM,
    enc: ImageEncoding,
    pos: torch.Tensor,
    neg: torch.Tensor,
    prev: torch.Tensor,
    memory: bool = True,
) -> np.ndarray:
    n = pos.shape[0]
    prompts = PromptBatch.from_objects(
        [ObjectRegions(positive=pos, negative=neg)], [[None] * n], enc.image_size, previous=[prev]
    )
    out = model.decode(enc, prompts, use_memory=memory, generator=torch.Generator().manual_seed(0))
    return answer_masks(out.answers(), enc.image_size, enc.padded)[0].numpy()


def _position_r2(maps: list[torch.Tensor]) -> tuple[float, float]:
    """R^2 of a linear read-out of (x, y) from ``[C, H, W]`` maps: fit on the first half, scored on the rest."""
    _, h, w = maps[0].shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    target = torch.stack([xs.flatten() / (w - 1), ys.flatten() / (h - 1)], 1).double()
    design = [torch.cat([m.flatten(1).T.double(), torch.ones(h * w, 1, dtype=torch.double)], 1) for m in maps]
    half = len(design) // 2
    fit = torch.linalg.lstsq(torch.cat(design[:half]), target.repeat(half, 1), driver="gelsd").solution
    test = target.repeat(len(design) - half, 1)
    err = ((torch.cat(design[half:]) @ fit - test) ** 2).sum(0)
    r2 = 1 - err / ((test - test.mean(0)) ** 2).sum(0)
    return float(r2[0]), float(r2[1])


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--weights", default=None, help="run directory, checkpoint or exported file (default: shipped)"
    )
    p.add_argument("--clip", default=None, help="CLIP weights for an exported file of another CLIP")
    p.add_argument("--images", type=int, default=16, help="val images (every thing is an object)")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = _model(args.weights, args.clip).eval()
    rows: list[dict[str, float | str]] = []
    fp = {"all": 0, "other_things": 0, "stuff": 0, "disconnected": 0}
    maps: dict[str, list[torch.Tensor]] = {}
    for sample in val_samples(args.images):
        things = list(sample.thing_segments)
        enc = model.encode_image(sample.image_tensor()[None])
        for name, m in [("mask features", enc.pixels.mask_features)] + [
            (f"level {i}", f) for i, f in enumerate(enc.pixels.multi_scale_features)
        ]:
            maps.setdefault(name, []).append(m[0].float())
        if not things:
            continue
        gts = [sample.mask(t.id) for t in things]
        size = gts[0].shape
        pos = torch.stack([click_region(first_click(g).x, first_click(g).y, size) for g in gts])
        neg = torch.zeros_like(pos)
        first = _answer(model, enc, pos, neg, torch.zeros_like(pos))
        clicks = [next_click(g, first[j], pos[j].numpy()) for j, g in enumerate(gts)]
        pos2, neg2, pos_flip, neg_flip = pos.clone(), neg.clone(), pos.clone(), neg.clone()
        for j, c in enumerate(clicks):
            if c is None:
                continue
            r = click_region(c.x, c.y, size)
            if c.positive:
                pos2[j] |= r
                neg_flip[j] |= r & ~pos[j]
            else:
                neg2[j] |= r & ~pos[j]
                pos_flip[j] |= r
        prev = torch.from_numpy(first)
        second = _answer(model, enc, pos2, neg2, prev)
        no_memory = _answer(model, enc, pos2, neg2, torch.zeros_like(prev), memory=False)
        memory_only = _answer(model, enc, pos, neg, prev)
        flipped = _answer(model, enc, pos_flip, neg_flip, prev)
        others = np.zeros(size, bool)
        for j, (t, g) in enumerate(zip(things, gts)):
            c = clicks[j]
            rows.append(
                {
                    "sign": "none" if c is None else ("positive" if c.positive else "negative"),
                    "round 1": _iou(first[j], g),
                    "round 2": _iou(second[j], g),
                    "round 2, memory off": _iou(no_memory[j], g),
                    "memory, no click": _iou(memory_only[j], g),
                    "sign flipped": _iou(flipped[j], g),
                    "area 1": float(first[j].sum()),
                    "area 2": float(second[j].sum()),
                    "gt area": float(g.sum()),
                }
            )
            others[:] = False
            for u in things:
                if u.id != t.id:
                    others |= sample.mask(u.id)
            wrong = first[j] & ~g
            labels, _ = ndimage.label(first[j])
            touching = np.unique(labels[g & first[j]])
            fp["all"] += int(wrong.sum())
            fp["other_things"] += int((wrong & others).sum())
            fp["stuff"] += int((wrong & ~others).sum())
            fp["disconnected"] += int((wrong & ~np.isin(labels, touching[touching > 0])).sum())
    keys = [k for k in rows[0] if k != "sign"]
    print(f"{len(rows)} objects of {args.images} val images; IoU in percent, areas in pixels")
    print(f"{'second click':>14} {'n':>4} " + " ".join(f"{k:>20}" for k in keys))
    for sign in ("positive", "negative", "all"):
        sel = [r for r in rows if sign == "all" or r["sign"] == sign]
        if not sel:
            continue
        vals = [np.mean([float(r[k]) for r in sel]) * (100 if "area" not in k else 1) for k in keys]
        print(f"{sign:>14} {len(sel):>4} " + " ".join(f"{v:>20.1f}" for v in vals))
    total = max(fp["all"], 1)
    print(
        f"round-1 false positives: {fp['all']} px; on other things {100 * fp['other_things'] / total:.0f} %, "
        f"on stuff {100 * fp['stuff'] / total:.0f} %, disconnected from the clicked object "
        f"{100 * fp['disconnected'] / total:.0f} %"
    )
    for name, ms in maps.items():
        rx, ry = _position_r2(ms)
        print(f"position in {name} ({tuple(ms[0].shape)}): linear read-out R^2 x {rx:.2f}, y {ry:.2f}")


if __name__ == "__main__":
    main()
