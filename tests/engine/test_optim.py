"""AdamW parameter groups (backbone multiplier, no decay on norms/embeddings, frozen excluded), schedules."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from segblocks import engine


class LayerNorm2d(nn.Module):
    """A custom norm (as segment_anything's), recognised by its class name."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), LayerNorm2d(4))
        self.backbone.pos_embed = nn.Parameter(torch.zeros(1, 4))
        self.frozen = nn.Linear(4, 4).requires_grad_(False)
        self.query_feat = nn.Embedding(5, 4)
        self.decoder = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.tied = self.decoder  # the same parameters reachable twice


def _names(model: nn.Module, group: dict[str, object]) -> set[str]:
    ids = {id(p) for p in group["params"]}  # type: ignore[attr-defined]
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_param_groups_split_by_backbone_and_decay() -> None:
    model = Toy()
    groups = engine.param_groups(model, lr=1e-4, weight_decay=0.05, backbone_lr_multiplier=0.1)
    by_name = {g["name"]: g for g in groups}
    assert _names(model, by_name["backbone.decay"]) == {"backbone.0.weight", "backbone.0.bias"}
    assert _names(model, by_name["backbone.no_decay"]) == {
        "backbone.1.weight",
        "backbone.1.bias",
        "backbone.2.weight",
        "backbone.pos_embed",
    }
    assert _names(model, by_name["model.decay"]) == {"decoder.weight", "decoder.bias"}
    assert _names(model, by_name["model.no_decay"]) == {"query_feat.weight", "norm.weight", "norm.bias"}
    assert by_name["backbone.decay"]["lr"] == pytest.approx(1e-5)
    assert by_name["backbone.no_decay"]["weight_decay"] == 0.0
    assert by_name["model.decay"]["lr"] == 1e-4 and by_name["model.decay"]["weight_decay"] == 0.05
    # Every trainable parameter exactly once; frozen ones never.
    listed = [id(p) for g in groups for p in g["params"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == {id(p) for p in model.parameters() if p.requires_grad}


def test_build_adamw_uses_the_groups() -> None:
    model = Toy()
    optimizer = engine.build_adamw(model, lr=1e-4, backbone_lr_multiplier=0.1)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([1e-5, 1e-5, 1e-4, 1e-4])


def test_param_groups_errors() -> None:
    with pytest.raises(TypeError, match=r"model: expected an nn\.Module"):
        engine.param_groups("model", lr=1e-4, weight_decay=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected non-negative"):
        engine.param_groups(Toy(), lr=-1.0, weight_decay=0.0)
    with pytest.raises(ValueError, match="no trainable parameter"):
        engine.param_groups(nn.Linear(2, 2).requires_grad_(False), lr=1e-4, weight_decay=0.0)


def _lrs(scheduler: torch.optim.lr_scheduler.LambdaLR, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_warmup_multistep_schedule() -> None:
    scheduler = engine.warmup_multistep_schedule(
        _optimizer(), milestones=[6, 8], gamma=0.1, warmup_steps=4, warmup_factor=0.2
    )
    lrs = _lrs(scheduler, 10)
    # Linear ramp from 0.2 to 1 over 4 steps, then flat, then x0.1 at each milestone.
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lrs[4:6] == pytest.approx([1.0, 1.0])
    assert lrs[6:8] == pytest.approx([0.1, 0.1])
    assert lrs[8:] == pytest.approx([0.01, 0.01])


def test_warmup_cosine_schedule() -> None:
    total = 20
    scheduler = engine.warmup_cosine_schedule(
        _optimizer(2.0), total_steps=total, warmup_steps=5, min_factor=0.1
    )
    lrs = _lrs(scheduler, total + 3)
    assert lrs[0] == pytest.approx(2.0 * 0.001)  # warmup_factor at step 0
    assert all(b > a for a, b in itertools.pairwise(lrs[:6]))  # warm-up rises
    after = lrs[5:]
    assert all(b <= a for a, b in itertools.pairwise(after))  # then never rises
    assert lrs[total] == pytest.approx(0.2) and lrs[-1] == pytest.approx(0.2)  # floor at min_factor
    mid = engine.WarmupCosine(total_steps=total, min_factor=0.0)(total // 2)
    assert mid == pytest.approx(0.5)


def test_schedule_errors() -> None:
    with pytest.raises(ValueError, match="milestones: expected increasing"):
        engine.warmup_multistep_schedule(_optimizer(), milestones=[5, 3])
    with pytest.raises(ValueError, match="warmup_factor: expected a value in"):
        engine.warmup_multistep_schedule(_optimizer(), milestones=[5], warmup_factor=2.0)
    with pytest.raises(ValueError, match="warmup_steps: expected an int"):
        engine.warmup_cosine_schedule(_optimizer(), total_steps=5, warmup_steps=-1)
    with pytest.raises(ValueError, match="total_steps: expected an int"):
        engine.warmup_cosine_schedule(_optimizer(), total_steps=0)
    with pytest.raises(ValueError, match="min_factor: expected a value in"):
        engine.warmup_cosine_schedule(_optimizer(), total_steps=5, min_factor=1.5)
