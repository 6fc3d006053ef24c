"""The shared recipe loop: options, overrides, training, evaluation, checkpoints and resume."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from segblocks.engine import (
    FitOptions,
    add_fit_arguments,
    build_adamw,
    fit,
    list_checkpoints,
    load_checkpoint,
    parse_overrides,
    setup_distributed,
    warmup_multistep_schedule,
)
from segblocks.structures import Targets


@dataclass
class _Batch:
    images: Tensor
    targets: list[Targets]


class _Blobs(Dataset[tuple[Tensor, Targets]]):
    """8x8 images with one bright square; the target is its mask."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[Tensor, Targets]:
        g = torch.Generator().manual_seed(index)
        y, x = (int(v) for v in torch.randint(0, 5, (2,), generator=g))
        mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        mask[0, y : y + 3, x : x + 3] = True
        image = 0.1 * torch.rand(3, 8, 8, generator=g) + mask.float()
        return image, Targets(masks=mask, labels=torch.zeros(1, dtype=torch.int64))


def _collate(items: list[tuple[Tensor, Targets]]) -> _Batch:
    return _Batch(images=torch.stack([i for i, _ in items]), targets=[t for _, t in items])


@dataclass
class _Config:
    width: int = 4


class _MaskNet(nn.Module):
    """One conv predicting a mask; ``losses`` is its BCE against the (single) target mask."""

    def __init__(self) -> None:
        super().__init__()
        self.config = _Config()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        self.seen_targets: list[int] = []

    def forward(self, images: Tensor) -> Tensor:
        return self.conv(images)[:, 0]

    def losses(self, outputs: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        self.seen_targets.append(len(targets))
        masks = torch.stack([t.masks[0] for t in targets]).float()
        return {"loss_mask": F.binary_cross_entropy_with_logits(outputs, masks)}


def _evaluate(model: nn.Module) -> dict[str, float]:
    data = _Blobs()
    images = torch.stack([data[i][0] for i in range(8)])
    masks = torch.stack([data[i][1].masks[0] for i in range(8)])
    with torch.no_grad():
        pred = model(images) > 0
    return {"iou": float((pred & masks).sum() / (pred | masks).sum().clamp(min=1))}


def _fit(run_dir: Path, **options: Any) -> tuple[_MaskNet, Any]:
    torch.manual_seed(0)
    model = _MaskNet()
    optimizer = build_adamw(model, lr=0.05, weight_decay=0.0)
    scheduler = warmup_multistep_schedule(optimizer, milestones=[1000], warmup_steps=1)
    opts = FitOptions(**{"steps": 40, "batch_size": 4, "clip_grad": 0.0, "eval_every": 20, **options})
    result = fit(
        model,
        train_set=_Blobs(),
        collate_fn=_collate,
        optimizer=optimizer,
        scheduler=scheduler,
        options=opts,
        run_dir=run_dir,
        dist=setup_distributed(device="cpu"),
        evaluate=_evaluate,
        flatten=lambda r: r,
        checkpoint_extra={"note": "kept"},
        args={"steps": opts.steps},
        desc="test",
    )
    return model, result


def test_fit_trains_evaluates_and_checkpoints(tmp_path: Path) -> None:
    before = _evaluate(_MaskNet())["iou"]
    _, result = _fit(tmp_path, checkpoint_every=20)
    assert result.step == 40
    assert result.final["iou"] > max(0.8, before)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val/iou" in r] == [20, 40, 40]  # periodic, then final
    assert any("train/loss_mask" in r for r in records)
    assert json.loads((tmp_path / "args.json").read_text()) == {"steps": 40}
    latest = list_checkpoints(tmp_path / "checkpoints")[-1]
    ckpt = load_checkpoint(latest, model=_MaskNet(), restore_rng=False)
    assert ckpt.step == 40
    assert ckpt.config == {"width": 4}
    assert ckpt.extra["note"] == "kept" and ckpt.extra["train_seconds"] > 0


def test_fit_resumes_where_it_stopped(tmp_path: Path) -> None:
    _fit(tmp_path, steps=20, checkpoint_every=10)
    model, result = _fit(tmp_path, steps=30, resume=True)
    assert result.step == 30
    assert len(model.seen_targets) == 10  # only the 10 missing steps ran


def test_fit_stops_at_the_time_budget(tmp_path: Path) -> None:
    model, result = _fit(tmp_path, steps=10_000, time_budget_min=1e-6, eval_every=0)
    assert result.step <= 1 and len(model.seen_targets) == result.step


def test_fit_rejects_a_model_without_losses(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="losses"):
        fit(
            nn.Linear(2, 2),
            train_set=_Blobs(),
            collate_fn=_collate,
            optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
            scheduler=torch.optim.lr_scheduler.ConstantLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))])),
            options=FitOptions(steps=1, batch_size=1),
            run_dir=tmp_path,
            dist=setup_distributed(device="cpu"),
            evaluate=_evaluate,
            flatten=lambda r: r,
        )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("steps", 0, "steps"),
        ("batch_size", -1, "batch_size"),
        ("log_every", 0, "log_every"),
        ("eval_every", -1, "eval_every"),
        ("time_budget_min", 0.0, "time_budget_min"),
        ("eval_every_min", -2.0, "eval_every_min"),
        ("clip_grad", -0.1, "clip_grad"),
        ("precision", "fp8", "precision"),
    ],
)
def test_fit_options_reject_bad_values(field: str, value: Any, match: str) -> None:
    kwargs: dict[str, Any] = {"steps": 1, "batch_size": 1, field: value}
    with pytest.raises(ValueError, match=match):
        FitOptions(**kwargs)


def test_fit_arguments_map_onto_options() -> None:
    parser = argparse.ArgumentParser()
    add_fit_arguments(parser, out="runs/x", eval_every=7, lr=1e-3)
    args = parser.parse_args(["--steps", "12", "--eval-every-min", "2.5", "--set", "a=1", "b=mlp"])
    options = FitOptions.from_args(args)
    assert (options.steps, options.eval_every, options.eval_every_min) == (12, 7, 2.5)
    assert (args.out, args.lr) == ("runs/x", 1e-3)
    assert parse_overrides(args.set) == {"a": 1, "b": "mlp"}
    assert parse_overrides(["xs=[1, 2]", "flag=true"]) == {"xs": [1, 2], "flag": True}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["no_equals"])
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["=3"])
