"""Where a tiny CLIP loses its thing accuracy: the image tower, the class names, or the seen/unseen bias.

For a trained tiny CLIP (a ``.safetensors`` file of ``segblocks train shapes-clip``), on val thing
crops (``thing_crop_box``, evaluation box), prints one JSON object:

- ``zero_shot_top1``: crops against the 12 thing names (the card's protocol, ``--crop-size``);
- ``linear_probe_top1``: a 12-way logistic regression on the frozen crop embeddings, fitted on the
  thing crops of ``--probe-images`` train images (every class, unseen ones included): how well the
  image tower separates the shapes, whatever the names do;
- ``unseen_named_as_seen``: the share of unseen-class crops whose best name is a seen class;
- ``name_cosine_mean`` / ``name_cosine_max``: pairwise cosines of the 12 thing-name embeddings;
- ``mask_pool_things_top1`` / ``mask_pool_stuff_top1``: the dense map mask-pooled over every
  ground-truth segment of the val images, against the 18 names, things and stuff apart.

Example::

    python bench/clip_diagnostics.py runs/clip_v5/shapes.safetensors --model shapes-clip-tiny-resnet
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.backbones import OpenCLIPBackbone
from segblocks.data.shapes import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.pretrain.clip_data import crop_images, thing_crop_box

NUM_THINGS = sum(c.is_thing for c in CATEGORIES)


@torch.no_grad()
def crop_embeddings(
    clip: OpenCLIPBackbone, world: ShapesWorld, images: int, size: int
) -> tuple[Tensor, Tensor]:
    """Unit-norm embeddings ``[N, D]`` and labels ``[N]`` of the thing crops of the first ``images``."""
    embs, labels = [], []
    for start in range(0, images, 32):
        samples = [world.sample(i) for i in range(start, min(start + 32, images))]
        batch = torch.stack([s.image_tensor() for s in samples])
        boxes = [[thing_crop_box(g.bbox) for g in s.thing_segments] for s in samples]
        embs.append(clip.encode_image(crop_images(batch, boxes, size), normalize=True))
        labels += [g.category_id for s in samples for g in s.thing_segments]
    return torch.cat(embs), torch.tensor(labels)


@torch.no_grad()
def mask_pool_top1(clip: OpenCLIPBackbone, world: ShapesWorld, images: int) -> tuple[float, float]:
    """Top-1 (%) of mask-pooled ground-truth segments against the 18 names: things, stuff."""
    names = clip.encode_text([c.name for c in CATEGORIES])
    hits: dict[bool, list[bool]] = {True: [], False: []}
    for i in range(images):
        sample = world.sample(i)
        targets = sample.to_targets()
        dense = clip(sample.image_tensor()[None])["clip_dense"]
        regions = clip.pool_masks(dense, targets.masks[None])[0]
        for label, hit in zip(
            targets.labels.tolist(), ((regions @ names.T).argmax(-1) == targets.labels).tolist()
        ):
            hits[CATEGORIES[label].is_thing].append(hit)
    return (
        100 * sum(hits[True]) / max(len(hits[True]), 1),
        100 * sum(hits[False]) / max(len(hits[False]), 1),
    )


def linear_probe(train_x: Tensor, train_y: Tensor, val_x: Tensor, val_y: Tensor, steps: int = 500) -> float:
    """Top-1 (%) of a logistic regression (full-batch Adam) fitted on ``train_x``."""
    head = torch.nn.Linear(train_x.shape[1], NUM_THINGS)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(head(train_x * 10), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (head(val_x * 10).argmax(-1) == val_y).float().mean().item() * 100


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", help="a tiny-CLIP .safetensors file, or 'shapes' for the shipped one")
    p.add_argument("--model", default="shapes-clip-tiny", help="its open_clip config")
    p.add_argument("--crop-size", type=int, default=32)
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--probe-images", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    clip = OpenCLIPBackbone(args.model, pretrained=args.weights).eval()
    config = ShapesWorldConfig(image_size=(128, 128))
    val_x, val_y = crop_embeddings(clip, ShapesWorld(config, split="val"), args.val_images, args.crop_size)
    train_x, train_y = crop_embeddings(
        clip, ShapesWorld(config, split="train"), args.probe_images, args.crop_size
    )
    names = clip.encode_text([c.name for c in CATEGORIES[:NUM_THINGS]])
    predicted = (val_x @ names.T).argmax(-1)
    unseen = torch.zeros(len(CATEGORIES), dtype=torch.bool)
    unseen[sorted(config.split.unseen_ids)] = True
    is_unseen = unseen[val_y]
    pool_things, pool_stuff = mask_pool_top1(clip, ShapesWorld(config, split="val"), args.val_images)
    cos = names @ names.T
    off = cos[~torch.eye(NUM_THINGS, dtype=torch.bool)]
    print(
        json.dumps(
            {
                "weights": args.weights,
                "zero_shot_top1": round((predicted == val_y).float().mean().item() * 100, 1),
                "linear_probe_top1": round(linear_probe(train_x, train_y, val_x, val_y), 1),
                "unseen_named_as_seen": round((~unseen[predicted][is_unseen]).float().mean().item() * 100, 1),
                "name_cosine_mean": round(off.mean().item(), 3),
                "name_cosine_max": round(off.max().item(), 3),
                "mask_pool_things_top1": round(pool_things, 1),
                "mask_pool_stuff_top1": round(pool_stuff, 1),
                "val_things": len(val_y),
            }
        )
    )


if __name__ == "__main__":
    main()
