"""Does a finer dense map name things better? The tiny CLIP's own weights, run at stride 8.

The tiny CLIP's ``clip_dense`` is 8x8 at 128 px (stride 16), so a typical thing covers about four
cells and mask pooling could mix its border cells with the background. This measures that guess
without training a new CLIP: the a-trous conversion (DeepLab's) runs the *same* weights at stride 8.
The last max pool (stride 2) becomes a stride-1 max pool over the same 2x2 window, and every 3x3
convolution after it doubles its dilation. The even positions of the stride-8 map are then exactly
the stride-16 map (checked here: ``max_abs_diff_even``); the odd ones are the network's own features
for a pooling grid shifted by one cell, so the map has four times the cells and nothing new to learn.

Mask pooling of the val images' ground-truth segments against the 18 class names (the card's
protocol), at stride 16 and at stride 8, and with ``--scales`` the image resized first (the tower
knows shapes at the size it was trained on; a smaller image puts things at the crops' scale).
Prints one JSON object per scale. Example::

    python bench/clip_dense_stride.py --val-images 200 --scales 1 0.75
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.backbones.clip_image_towers import cnn_head_per_location
from segblocks.backbones.timm_trunks import ShapesPlainCNN
from segblocks.data.shapes import CATEGORIES, ShapesWorld, ShapesWorldConfig


class _StrideOneMaxPool(nn.Module):
    """A 2x2 max pool at stride 1, padded at the bottom and right: ``[B, C, H, W]`` -> same size."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, stride=1)


def atrous_stride8(trunk: ShapesPlainCNN) -> ShapesPlainCNN:
    """A copy of ``trunk`` whose last two stages run at stride 8 instead of 16 (same weights)."""
    if not isinstance(trunk, ShapesPlainCNN):
        raise TypeError(f"trunk: expected a ShapesPlainCNN, got {type(trunk).__name__}")
    out = copy.deepcopy(trunk)
    pool_stage = out.stages[-2]
    if not isinstance(pool_stage[0], nn.MaxPool2d):
        raise ValueError("trunk: its second-to-last stage does not start with a max pool")
    pool_stage[0] = _StrideOneMaxPool()
    for stage in out.stages[-2:]:
        for m in stage.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                d = 2 * m.dilation[0]
                m.dilation, m.padding = (d, d), (d, d)
    return out


@torch.no_grad()
def measure(clip: OpenCLIPBackbone, world: ShapesWorld, images: int, scale: float) -> dict[str, float]:
    """Mask-pooling top-1 (%) of things and stuff at strides 16 and 8, for images resized by ``scale``."""
    visual = clip.clip.visual
    trunk8 = atrous_stride8(visual.trunk).eval()
    names = clip.encode_text([c.name for c in CATEGORIES])
    hits: dict[str, list[bool]] = {f"{k}_{t}": [] for k in ("s16", "s8") for t in ("things", "stuff")}
    max_diff = 0.0
    for i in range(images):
        sample = world.sample(i)
        targets = sample.to_targets()
        image = sample.image_tensor()[None]
        if scale != 1.0:
            image = F.interpolate(image, scale_factor=scale, mode="bilinear", antialias=True)
        dense16 = clip(image)["clip_dense"]
        dense8 = cnn_head_per_location(visual, trunk8.forward_features(clip.normalize(image)))
        max_diff = max(max_diff, float((dense8[..., ::2, ::2] - dense16).abs().max()))
        for key, dense in (("s16", dense16), ("s8", dense8)):
            regions = clip.pool_masks(dense, targets.masks[None])[0]
            correct = ((regions @ names.T).argmax(-1) == targets.labels).tolist()
            for label, hit in zip(targets.labels.tolist(), correct):
                hits[f"{key}_{'things' if CATEGORIES[label].is_thing else 'stuff'}"].append(hit)
    result = {"scale": scale, "images": images, "max_abs_diff_even": float(f"{max_diff:.2e}")}
    result.update({k: round(100 * sum(v) / max(len(v), 1), 1) for k, v in hits.items()})
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="shapes", help="a tiny-CLIP .safetensors file, or 'shapes' (shipped)")
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="image resize factors")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    clip = OpenCLIPBackbone("shapes-clip-tiny", pretrained=args.weights).eval()
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="val")
    for scale in args.scales:
        print(json.dumps(measure(clip, world, args.val_images, scale)))


if __name__ == "__main__":
    main()
