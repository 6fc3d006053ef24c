"""The paper's input-size table in miniature: region top-1 of ground-truth masks per input size(s).

``python zoo/uni-ovseg/input_sizes.py --val-images 50`` prints, as JSON, the top-1 accuracy of
the frozen tiny CLIP's region embeddings of val ground-truth masks against the 18 class names (things
and stuff apart) and the CLIP time per image, for single input sizes and their ensembles, with and
without the adapter of a trained model (``--weights``).
"""

from __future__ import annotations

import argparse
import json

import torch

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.zoo.uni_ovseg.build import build_uni_ovseg
from segblocks.zoo.uni_ovseg.evaluate import region_top1
from segblocks.zoo.uni_ovseg.shipped import load_trained_weights

__all__ = ["SIZE_SETS", "main"]

#: The single sizes and ensembles measured (the world's images are 128 px; the paper's 896 / 1024).
SIZE_SETS: tuple[tuple[int, ...], ...] = ((96,), (128,), (160,), (96, 128), (128, 160), (96, 128, 160))


def main(argv: list[str] | None = None) -> int:
    """Print the input-size table as JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(prog="python zoo/uni-ovseg/input_sizes.py")
    p.add_argument("--val-images", type=int, default=50)
    p.add_argument("--weights", default=None, help="a trained model (for the adapter rows)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build_uni_ovseg("tiny").eval()
    if args.weights:
        load_trained_weights(model, args.weights)
    world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128)), split="val")
    samples = [world.sample(i) for i in range(args.val_images)]
    rows = {}
    for sizes in SIZE_SETS:
        key = "+".join(map(str, sizes))
        rows[key] = region_top1(model, samples, sizes, adapted=False)
        if args.weights:
            rows[key + " adapted"] = region_top1(model, samples, sizes, adapted=True)
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
