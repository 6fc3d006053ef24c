"""Every metric: its state pickles (as all_gather_object needs) and merging shards equals one pass."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from metric_helpers import CATEGORIES, panoptic_result, perturb, random_panoptic

from segblocks.metrics import (
    DavisJF,
    MaskAP,
    Metric,
    NoCMetric,
    PanopticQuality,
    SemanticSegmentationMetric,
    VideoAP,
    VideoInstances,
    VideoPanopticQuality,
)
from segblocks.structures import InstanceResult, Targets


def _feeds(
    rng: np.random.Generator,
) -> dict[str, tuple[Callable[[], Metric[Any]], list[Callable[[Metric[Any]], None]]]]:
    """For each metric: a constructor and a few update calls on random data."""
    pan = []
    for _ in range(4):
        gt = random_panoptic(rng, 10, 12, void=True)
        pan.append((panoptic_result(*perturb(rng, *gt)), panoptic_result(*gt)))
    sem = [
        (torch.from_numpy(rng.integers(0, 4, (6, 6))), torch.from_numpy(rng.integers(0, 4, (6, 6))))
        for _ in range(4)
    ]
    masks = [torch.from_numpy(rng.random((3, 8, 8)) < 0.4) for _ in range(4)]
    inst = [
        (
            InstanceResult(m, torch.tensor([1, 2, 1]), torch.from_numpy(rng.random(3))),
            Targets(m.roll(1, 1), torch.tensor([1, 2, 2])),
        )
        for m in masks
    ]
    tubes = [torch.from_numpy(rng.random((2, 3, 6, 6)) < 0.5) for _ in range(4)]
    vids = [
        (
            VideoInstances(t, torch.tensor([1, 2]), torch.from_numpy(rng.random(2))),
            VideoInstances(t.roll(1, 2), torch.tensor([1, 2])),
        )
        for t in tubes
    ]
    davis = [(rng.integers(0, 3, (3, 8, 8)), rng.integers(0, 3, (3, 8, 8))) for _ in range(4)]
    curves = [rng.random(int(rng.integers(1, 21))) for _ in range(4)]
    return {
        "pq": (
            lambda: PanopticQuality(categories=CATEGORIES),
            [lambda m, p=p, g=g: m.update(p, g) for p, g in pan],
        ),
        "vpq": (
            lambda: VideoPanopticQuality(categories=CATEGORIES, window_sizes=(1, 2)),
            [lambda m, i=i: m.update([pan[i][1], pan[i][1]], [pan[i][1], pan[i][1]]) for i in range(4)],
        ),
        "miou": (
            lambda: SemanticSegmentationMetric(num_classes=4),
            [lambda m, p=p, t=t: m.update(p, t) for p, t in sem],
        ),
        "mask_ap": (
            lambda: MaskAP(categories=[1, 2]),
            [lambda m, p=p, t=t, i=i: m.update(p, t, image_id=i) for i, (p, t) in enumerate(inst)],
        ),
        "video_ap": (
            lambda: VideoAP(categories=[1, 2]),
            [lambda m, p=p, t=t, i=i: m.update(p, t, video_id=i) for i, (p, t) in enumerate(vids)],
        ),
        "davis": (lambda: DavisJF(), [lambda m, p=p, g=g: m.update(p, g) for p, g in davis]),
        "noc": (lambda: NoCMetric(), [lambda m, c=c: m.update(c) for c in curves]),
    }


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "__dataclass_fields__"):
        return all(_same(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return bool(np.allclose(a, b, equal_nan=True))
    if isinstance(a, float):
        return (np.isnan(a) and np.isnan(b)) or bool(np.isclose(a, b, rtol=0, atol=1e-12))
    return bool(a == b)


@pytest.mark.parametrize("name", ["pq", "vpq", "miou", "mask_ap", "video_ap", "davis", "noc"])
def test_merged_shards_equal_one_pass_and_state_pickles(name: str) -> None:
    make, updates = _feeds(np.random.default_rng(0))[name]
    whole, a, b = make(), make(), make()
    for i, up in enumerate(updates):
        up(whole)
        up(a if i < 2 else b)
    restored = make()
    restored.merge_state(pickle.loads(pickle.dumps(b.get_state())))
    assert _same(a.merge(restored).compute(), whole.compute())
    a.reset()
    assert _same(a.compute(), make().compute())


def test_sync_of_every_metric_in_a_one_process_group(tmp_path: Path) -> None:
    feeds = _feeds(np.random.default_rng(1))
    metrics = {}
    for name, (make, updates) in feeds.items():
        m = make()
        for up in updates:
            up(m)
        metrics[name] = (m, m.compute())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        for m, _ in metrics.values():
            m.sync()
    finally:
        dist.destroy_process_group()
    for name, (m, before) in metrics.items():
        assert _same(m.compute(), before), name
