"""The helpers of a visible training loop: options, overrides, training, evaluation, checkpoints, resume."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from segblocks.engine import (
    TrainingRun,
    TrainOptions,
    add_train_arguments,
    backward_step,
    build_adamw,
    build_train_loader,
    list_checkpoints,
    load_checkpoint,
    parse_overrides,
    setup_distributed,
    training_step_fn,
    warmup_multistep_schedule,
)
from segblocks.structures import Batch
from tests.engine.step_train import Blobs, MaskNet, collate


@dataclass
class _Config:
    width: int = 4


class _MaskNet(MaskNet):
    """step_train's mask net with a dataclass config, counting the batches it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.config = _Config()
        self.seen_targets: list[int] = []

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.targets is not None
        self.seen_targets.append(len(batch.targets))
        return super().training_step(batch)


def _evaluate(model: nn.Module) -> dict[str, float]:
    data = Blobs()
    images = torch.stack([data[i][0] for i in range(8)])
    masks = torch.stack([data[i][1].masks[0] for i in range(8)])
    with torch.no_grad():
        pred = model(images) > 0
    return {"iou": float((pred & masks).sum() / (pred | masks).sum().clamp(min=1))}


def _fit(run_dir: Path, **options: Any) -> tuple[_MaskNet, TrainingRun, dict[str, float]]:
    """The loop a recipe writes, on the tiny mask net."""
    torch.manual_seed(0)
    model = _MaskNet()
    optimizer = build_adamw(model, lr=0.05, weight_decay=0.0)
    scheduler = warmup_multistep_schedule(optimizer, milestones=[1000], warmup_steps=1)
    opts = TrainOptions(**{"steps": 40, "batch_size": 4, "clip_grad": 0.0, "eval_every": 20, **options})
    dist = setup_distributed(device="cpu")
    run = TrainingRun.start(
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        options=opts,
        run_dir=run_dir,
        dist=dist,
        args={"steps": opts.steps},
        checkpoint_extra={"note": "kept"},
    )
    loader = build_train_loader(
        Blobs(), batch_size=4, dist=dist, seed=0, start_step=run.step, collate_fn=collate
    )
    step = training_step_fn(model, dist)
    for batch in run.progress(loader, desc="test"):
        losses = step(batch)
        loss = sum(losses.values(), torch.zeros(()))
        backward_step(loss, optimizer=optimizer)
        scheduler.step()
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"])
        if run.eval_due():
            run.evaluate(lambda: _evaluate(model))
        if run.checkpoint_due():
            run.save_checkpoint()
    wall = run.wall_seconds
    final = _evaluate(model)
    run.finish(final, wall_seconds=wall)
    return model, run, final


def test_loop_trains_evaluates_and_checkpoints(tmp_path: Path) -> None:
    before = _evaluate(_MaskNet())["iou"]
    _, run, final = _fit(tmp_path, checkpoint_every=20)
    assert run.step == 40
    assert final["iou"] > max(0.8, before)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val/iou" in r] == [20, 40, 40]  # periodic, then final
    assert any("train/loss_mask" in r for r in records)
    assert json.loads((tmp_path / "args.json").read_text()) == {"steps": 40}
    latest = list_checkpoints(tmp_path / "checkpoints")[-1]
    ckpt = load_checkpoint(latest, model=_MaskNet(), restore_rng=False)
    assert ckpt.step == 40
    assert ckpt.config == {"width": 4}
    assert ckpt.extra["note"] == "kept" and ckpt.extra["train_seconds"] > 0


def test_loop_resumes_where_it_stopped(tmp_path: Path) -> None:
    _fit(tmp_path, steps=20, checkpoint_every=10)
    model, run, _ = _fit(tmp_path, steps=30, resume=True)
    assert run.step == 30
    assert len(model.seen_targets) == 10  # only the 10 missing steps ran


def test_loop_stops_at_the_time_budget(tmp_path: Path) -> None:
    model, run, _ = _fit(tmp_path, steps=10_000, time_budget_min=1e-6, eval_every=0)
    assert run.step <= 1 and len(model.seen_targets) == run.step


def test_training_step_fn_rejects_a_model_without_training_step() -> None:
    with pytest.raises(TypeError, match="training_step"):
        training_step_fn(nn.Linear(2, 2), setup_distributed(device="cpu"))


def test_eval_is_due_by_steps_or_minutes(tmp_path: Path) -> None:
    model = _MaskNet()
    dist = setup_distributed(device="cpu")
    by_steps = TrainingRun.start(
        model, optimizer=None, scheduler=None, options=TrainOptions(steps=9, batch_size=1, eval_every=3),
        run_dir=tmp_path / "a", dist=dist,
    )  # fmt: skip
    due = []
    for _ in range(9):
        by_steps.end_step(torch.zeros(()), {}, lr=0.0)
        due.append(by_steps.eval_due())
    assert due == [False, False, True] * 3
    by_time = TrainingRun.start(
        model, optimizer=None, scheduler=None,
        options=TrainOptions(steps=9, batch_size=1, eval_every_min=1e-9), run_dir=tmp_path / "b", dist=dist,
    )  # fmt: skip
    assert by_time.eval_due()
    by_time.log_eval({"iou": 0.5})
    records = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val/iou"] == 0.5


def test_evaluate_logs_and_leaves_the_training_draws_alone(tmp_path: Path) -> None:
    run = TrainingRun.start(
        _MaskNet(), optimizer=None, scheduler=None, options=TrainOptions(steps=2, batch_size=1),
        run_dir=tmp_path, dist=setup_distributed(device="cpu"),
    )  # fmt: skip
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    values = run.evaluate(lambda: {"noise": float(torch.rand(5).sum())})  # an evaluation that draws
    assert torch.equal(torch.rand(3), expected)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val/noise"] == values["noise"]


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
def test_train_options_reject_bad_values(field: str, value: Any, match: str) -> None:
    kwargs: dict[str, Any] = {"steps": 1, "batch_size": 1, field: value}
    with pytest.raises(ValueError, match=match):
        TrainOptions(**kwargs)


def test_train_arguments_map_onto_options() -> None:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser, out="runs/x", eval_every=7, lr=1e-3)
    args = parser.parse_args(["--steps", "12", "--eval-every-min", "2.5", "--set", "a=1", "b=mlp"])
    options = TrainOptions.from_args(args)
    assert not hasattr(args, "image_size"), "the shapes world's options are not the engine's"
    assert (options.steps, options.eval_every, options.eval_every_min) == (12, 7, 2.5)
    assert (args.out, args.lr) == ("runs/x", 1e-3)
    assert parse_overrides(args.set) == {"a": 1, "b": "mlp"}
    assert parse_overrides(["xs=[1, 2]", "flag=true"]) == {"xs": [1, 2], "flag": True}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["no_equals"])
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["=3"])


@pytest.mark.slow
def test_the_ddp_wrapped_training_step_trains_what_one_process_trains(tmp_path: Path) -> None:
    """Two gloo processes through ``training_step_fn`` (DDP) match one process with the same global batch."""
    script = Path(__file__).with_name("step_train.py")
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(script.parents[2]), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    finals = {}
    for nproc in (1, 2):
        run_dir = tmp_path / f"p{nproc}"
        launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run"]
        launcher += [] if nproc == 1 else ["--standalone", f"--nproc_per_node={nproc}"]
        proc = subprocess.run(
            [*launcher, str(script), str(run_dir), "4", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        finals[nproc] = load_file(str(run_dir / "final.safetensors"))
    for key, value in finals[1].items():
        torch.testing.assert_close(finals[2][key], value, rtol=0, atol=1e-5)
    torch.manual_seed(0)
    initial = nn.Conv2d(3, 1, 3, padding=1).weight  # step_train.py's initialisation
    assert not torch.allclose(finals[1]["conv.weight"], initial, atol=1e-3), "the weights trained"
