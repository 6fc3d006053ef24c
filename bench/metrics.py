"""Update throughput of PanopticQuality and SemanticSegmentationMetric on 512x512 maps (one core).

Prints one JSON object: images per second for segblocks and for the torchmetrics peer measured in
the same run on the same inputs, and their ratio. Run: ``python bench/metrics.py [--images N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from segblocks.metrics import PanopticQuality, SemanticSegmentationMetric
from segblocks.structures import PanopticResult, SegmentInfo

SIZE = 512
NUM_THINGS, NUM_STUFF = 8, 4  # categories
THING_CATS = set(range(NUM_THINGS))
STUFF_CATS = set(range(NUM_THINGS, NUM_THINGS + NUM_STUFF))
CATEGORIES = {c: c in THING_CATS for c in range(NUM_THINGS + NUM_STUFF)}


def _panoptic_pair(
    rng: np.random.Generator,
) -> tuple[tuple[np.ndarray, dict[int, int]], tuple[np.ndarray, dict[int, int]]]:
    """A ground-truth map of ~40 blocky segments (with VOID) and a shifted, noisy prediction."""
    cells = 16
    stuff_ids = {c: 1000 + c for c in STUFF_CATS}
    grid = np.array([stuff_ids[int(c)] for c in rng.choice(sorted(STUFF_CATS), cells * cells)]).reshape(
        cells, cells
    )
    cats = {v: k for k, v in stuff_ids.items()}
    for sid in range(1, 31):  # 30 things painted as random rectangles of cells
        y, x = rng.integers(0, cells, 2)
        grid[y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = sid
        cats[sid] = int(rng.integers(0, NUM_THINGS))
    gt = np.kron(grid, np.ones((SIZE // cells, SIZE // cells), np.int64))
    gt[rng.random((SIZE, SIZE)) < 0.02] = 0  # VOID speckle
    present = set(np.unique(gt).tolist())
    gt_cats = {k: v for k, v in cats.items() if k in present}
    pred = np.roll(gt, (int(rng.integers(-8, 9)), int(rng.integers(-8, 9))), (0, 1))
    pred[pred == 0] = stuff_ids[NUM_THINGS]
    noise = rng.random((SIZE, SIZE)) < 0.05
    pred[noise] = stuff_ids[NUM_THINGS + 1]
    present = set(np.unique(pred).tolist())
    pred_cats = {k: v for k, v in {**cats, **{stuff_ids[c]: c for c in STUFF_CATS}}.items() if k in present}
    return (pred, pred_cats), (gt, gt_cats)


def _result(seg: np.ndarray, cats: dict[int, int]) -> PanopticResult:
    return PanopticResult(torch.from_numpy(seg), [SegmentInfo(k, v, CATEGORIES[v]) for k, v in cats.items()])


def _tm_input(seg: np.ndarray, cats: dict[int, int]) -> torch.Tensor:
    out = np.zeros((*seg.shape, 2), np.int64)
    out[..., 0] = 99  # void category
    for sid, c in cats.items():
        m = seg == sid
        out[m, 0] = c
        out[m, 1] = sid
    return torch.from_numpy(out)[None]


def _rate(fn: Callable[[int], None], n: int) -> tuple[float, float]:
    """Images per wall-clock second and per CPU second of this process (robust to a busy machine)."""
    fn(0)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20, help="distinct 512x512 inputs")
    parser.add_argument("--peer-images", type=int, default=5, help="updates timed for the (slower) peer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    pairs = [_panoptic_pair(rng) for _ in range(args.images)]
    ours_in = [(_result(*p), _result(*g)) for p, g in pairs]
    peer_in = [(_tm_input(*p), _tm_input(*g)) for p, g in pairs[: args.peer_images + 1]]
    sem_in = [
        (
            torch.from_numpy(rng.integers(0, 150, (SIZE, SIZE))),
            torch.from_numpy(rng.integers(0, 150, (SIZE, SIZE))),
        )
        for _ in range(args.images)
    ]
    for _, t in sem_in:
        t[:, :16] = 255

    from torchmetrics.classification import MulticlassJaccardIndex
    from torchmetrics.detection import PanopticQuality as PeerPQ

    pq = PanopticQuality(categories=CATEGORIES)
    peer_pq = PeerPQ(things=THING_CATS, stuffs=STUFF_CATS)
    miou = SemanticSegmentationMetric(num_classes=150)
    peer_miou = MulticlassJaccardIndex(num_classes=150, ignore_index=255)

    pq_rate = _rate(lambda i: pq.update(*ours_in[i % len(ours_in)]), args.images)
    peer_pq_rate = _rate(lambda i: peer_pq.update(*peer_in[i % len(peer_in)]), args.peer_images)
    miou_rate = _rate(lambda i: miou.update(*sem_in[i % len(sem_in)]), args.images)
    peer_miou_rate = _rate(
        lambda i: peer_miou.update(sem_in[i % len(sem_in)][0][None], sem_in[i % len(sem_in)][1][None]),
        args.images,
    )

    def entry(ours: tuple[float, float], peer: tuple[float, float]) -> dict[str, float]:
        return {
            "segblocks_images_per_s": round(ours[0], 2),
            "torchmetrics_images_per_s": round(peer[0], 2),
            "segblocks_images_per_cpu_s": round(ours[1], 2),
            "torchmetrics_images_per_cpu_s": round(peer[1], 2),
            "speedup_vs_torchmetrics": round(ours[1] / peer[1], 2),
        }

    print(
        json.dumps(
            {
                "benchmark": "metric update throughput, 512x512 maps, 1 thread",
                "machine": platform.machine(),
                "cpu_count": os.cpu_count(),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "torch": torch.__version__,
                "panoptic_quality": {
                    **entry(pq_rate, peer_pq_rate),
                    "target_images_per_s": 50,
                    "segments_per_image": round(float(np.mean([len(g[1]) for _, g in pairs])), 1),
                },
                "miou": {**entry(miou_rate, peer_miou_rate), "num_classes": 150},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
