"""Checkpoints: exact round trip, and refusal of corrupt, foreign and unsafe files without half-loading."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import segblocks.engine.checkpoint as checkpoint_module
from segblocks import engine
from segblocks.engine import CheckpointError

from .tiny_train import TinySegNet, segmentation_loss


@dataclass
class Run:
    model: TinySegNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def _new_run(width: int = 8, seed: int = 0) -> Run:
    torch.manual_seed(seed)
    model = TinySegNet(width=width)
    optimizer = engine.build_adamw(model, lr=1e-2)
    scheduler = engine.warmup_multistep_schedule(optimizer, milestones=[3], warmup_steps=2)
    return Run(model, optimizer, scheduler)


def _train(run: Run, steps: int) -> None:
    for _ in range(steps):
        images = torch.rand(2, 3, 8, 8)
        loss = segmentation_loss(run.model(images), (images[:, 0] > 0.5).long())
        engine.backward_step(loss, optimizer=run.optimizer, max_norm=1.0)
        run.scheduler.step()


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _save(run: Run, root: Path, step: int, **kwargs: Any) -> Path:
    return engine.save_checkpoint(
        root, step=step, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, **kwargs
    )


def _rehash(checkpoint: Path) -> None:
    """Rewrite the manifest to match the files, as an attacker who replaced a file would."""
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (checkpoint / name).read_bytes()
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def two_checkpoints(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A run directory with good checkpoints at steps 2 and 4; returns it and the step-2 weights."""
    run = _new_run()
    _train(run, 2)
    _save(run, tmp_path, 2, config={"lr": 1e-2})
    step2 = _weights(run.model)
    _train(run, 2)
    _save(run, tmp_path, 4, config={"lr": 1e-2})
    return tmp_path, step2


def _load(path: Path, run: Run) -> engine.Checkpoint:
    return engine.load_checkpoint(path, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler)


def test_round_trip_restores_model_optimizer_scheduler_rng_and_config(tmp_path: Path) -> None:
    run = _new_run()
    _train(run, 3)
    path = _save(run, tmp_path, 3, config={"lr": 1e-2, "sizes": (8, 16)}, extra={"best": torch.tensor(0.5)})
    expected_next = (torch.rand(4), np.random.rand(3), random.random())  # noqa: NPY002
    _train(run, 2)  # the continuation we expect to reproduce
    expected_weights = _weights(run.model)

    fresh = _new_run(seed=123)
    loaded = _load(path, fresh)
    assert loaded.step == 3 and loaded.config == {"lr": 1e-2, "sizes": [8, 16]}
    assert torch.equal(loaded.extra["best"], torch.tensor(0.5))
    got_next = (torch.rand(4), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(got_next[0], expected_next[0]) and np.array_equal(got_next[1], expected_next[1])
    assert got_next[2] == expected_next[2]
    assert fresh.scheduler.last_epoch == 3
    _train(fresh, 2)
    _assert_same(_weights(fresh.model), expected_weights)


def test_model_file_alone_loads_as_weights(two_checkpoints: tuple[Path, dict[str, torch.Tensor]]) -> None:
    root, step2 = two_checkpoints
    model = TinySegNet(width=8)
    engine.load_weights(root / "step_00000002" / "model.safetensors", model)
    _assert_same(_weights(model), step2)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip:model.safetensors", "corrupt"),
        ("flip:training_state.safetensors", "corrupt"),
        ("flip:state.json", "corrupt"),
        ("truncate:model.safetensors", "truncated"),
        ("garble:manifest.json", "corrupt manifest"),
        ("delete:manifest.json", "incomplete"),
        ("delete:training_state.safetensors", "missing"),
    ],
)
def test_damaged_checkpoint_is_refused_and_the_last_good_one_is_used(
    two_checkpoints: tuple[Path, dict[str, torch.Tensor]],
    damage: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root, step2 = two_checkpoints
    how, name = damage.split(":")
    target = root / "step_00000004" / name
    data = bytearray(target.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif how == "truncate":
        target.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garble":
        target.write_bytes(b"{not json")
    else:
        target.unlink()

    run = _new_run(seed=7)
    before = _weights(run.model)
    with pytest.raises(CheckpointError, match=message):
        _load(root / "step_00000004", run)
    _assert_same(_weights(run.model), before)  # nothing was half-loaded
    with pytest.raises(CheckpointError, match=message):
        engine.verify_checkpoint(root / "step_00000004")

    with caplog.at_level(logging.WARNING):
        loaded = engine.resume(True, checkpoint_dir=root, model=run.model, optimizer=run.optimizer)
    assert loaded is not None and loaded.step == 2
    assert "skipping checkpoint" in caplog.text and message in caplog.text
    _assert_same(_weights(run.model), step2)
    assert engine.find_latest_checkpoint(root) == root / "step_00000002"


def test_checkpoint_of_a_different_model_is_refused(
    two_checkpoints: tuple[Path, dict[str, torch.Tensor]], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = two_checkpoints
    narrow = _new_run(width=4)
    before = _weights(narrow.model)
    with pytest.raises(
        CheckpointError, match=r"written for TinySegNet.*does not fit TinySegNet.*5 shape mismatches"
    ):
        _load(root / "step_00000004", narrow)
    _assert_same(_weights(narrow.model), before)
    with pytest.raises(
        CheckpointError, match=r"2 missing keys \(weight, bias\); 6 unexpected keys \(backbone.0.bias"
    ):
        engine.load_checkpoint(root / "step_00000004", model=nn.Linear(2, 2))

    # A foreign checkpoint as the newest of the run: skipped, the run's last good one is used.
    _save(narrow, root, 6)
    run = _new_run(seed=7)
    with caplog.at_level(logging.WARNING):
        loaded = engine.resume("latest", checkpoint_dir=root, model=run.model)
    assert loaded is not None and loaded.step == 4 and "does not fit" in caplog.text


def test_optimizer_mismatch_is_refused_before_the_model_is_touched(
    two_checkpoints: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    root, _ = two_checkpoints
    run = _new_run(seed=7)
    run.model.head.requires_grad_(False)  # same weights, different trainable set
    optimizer = engine.build_adamw(run.model, lr=1e-2)
    before = _weights(run.model)
    with pytest.raises(CheckpointError, match="optimizer does not fit"):
        engine.load_checkpoint(root / "step_00000004", model=run.model, optimizer=optimizer)
    _assert_same(_weights(run.model), before)
    engine.save_checkpoint(root, step=9, model=run.model)  # weights only
    with pytest.raises(CheckpointError, match="holds no scheduler state"):
        engine.load_checkpoint(root / "step_00000009", model=run.model, scheduler=run.scheduler)


class _RunsCode:
    """Unpickling this object would create a file: the stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickle_that_would_run_code_is_refused(
    two_checkpoints: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, step2 = two_checkpoints
    marker = tmp_path / "code_ran"
    evil = tmp_path / "weights.pt"
    torch.save({"backbone.0.weight": _RunsCode(marker)}, evil)
    model = TinySegNet(width=8)
    before = _weights(model)

    with pytest.raises(CheckpointError, match="would run code"):
        engine.load_weights(evil, model)
    with pytest.raises(CheckpointError, match=r"is a file.*pickle.*load_weights"):
        engine.resume(evil, checkpoint_dir=root, model=model)
    # The same pickle planted inside the newest checkpoint, with a manifest that matches it.
    planted = root / "step_00000004"
    (planted / "model.safetensors").write_bytes(evil.read_bytes())
    _rehash(planted)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        engine.load_checkpoint(planted, model=model)
    _assert_same(_weights(model), before)
    with caplog.at_level(logging.WARNING):
        loaded = engine.resume(True, checkpoint_dir=root, model=model)
    assert loaded is not None and loaded.step == 2 and "refusing to unpickle" in caplog.text
    _assert_same(_weights(model), step2)
    assert not marker.exists()


def test_safe_torch_save_state_dict_loads(tmp_path: Path) -> None:
    source = TinySegNet(width=8)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pth")
    model = TinySegNet(width=8)
    assert engine.load_weights(tmp_path / "w.pth", model, prefix="module.") == []
    _assert_same(_weights(model), _weights(source))
    partial = TinySegNet(width=4)
    missing = engine.load_weights(tmp_path / "w.pth", partial, prefix="module.", strict=False)
    assert "backbone.0.weight" in missing and "head.bias" not in missing
    with pytest.raises(FileNotFoundError, match="no such file"):
        engine.load_weights(tmp_path / "absent.pt", model)
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{junk")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        engine.load_weights(tmp_path / "junk.safetensors", model)


def test_every_checkpoint_bad_raises_instead_of_restarting(
    two_checkpoints: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    root, _ = two_checkpoints
    for step in (2, 4):
        (root / f"step_{step:08d}" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"no usable checkpoint among 2.*resume=False"):
        engine.resume(True, checkpoint_dir=root, model=TinySegNet(width=8))


def test_resume_settings(tmp_path: Path) -> None:
    model = TinySegNet(width=8)
    assert engine.resume(None, checkpoint_dir=tmp_path, model=model) is None
    assert engine.resume(False, checkpoint_dir=tmp_path, model=model) is None
    assert engine.resume(True, checkpoint_dir=tmp_path / "empty", model=model) is None
    with pytest.raises(TypeError, match="resume: expected"):
        engine.resume(3, checkpoint_dir=tmp_path, model=model)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        engine.resume(tmp_path / "nowhere", checkpoint_dir=tmp_path, model=model)


def test_interrupted_write_leaves_no_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _new_run()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "_write_manifest", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(run, tmp_path, 1)
    assert engine.list_checkpoints(tmp_path) == []
    monkeypatch.undo()
    _save(run, tmp_path, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000002"]  # the staging dir was cleaned


def test_keep_last_and_resave(tmp_path: Path) -> None:
    run = _new_run()
    for step in (1, 2, 3, 4):
        _save(run, tmp_path, step, keep_last=2)
    assert [p.name for p in engine.list_checkpoints(tmp_path)] == ["step_00000003", "step_00000004"]
    _train(run, 1)
    _save(run, tmp_path, 4, keep_last=2)  # re-saving a step replaces it
    fresh = _new_run(seed=5)
    _load(tmp_path / "step_00000004", fresh)
    _assert_same(_weights(fresh.model), _weights(run.model))


def test_save_errors(tmp_path: Path) -> None:
    run = _new_run()
    with pytest.raises(ValueError, match="step: expected"):
        _save(run, tmp_path, -1)
    with pytest.raises(ValueError, match="keep_last: expected"):
        _save(run, tmp_path, 1, keep_last=0)
    with pytest.raises(TypeError, match="config: cannot store a object"):
        _save(run, tmp_path, 1, config={"bad": object()})
    with pytest.raises(TypeError, match="extra/x: cannot store a object"):
        _save(run, tmp_path, 1, extra={"x": object()})
    assert engine.list_checkpoints(tmp_path) == []


def test_fp16_scaler_state_round_trips(tmp_path: Path) -> None:
    model = TinySegNet(width=8)
    optimizer = engine.build_adamw(model, lr=1e-3)
    scaler = engine.make_grad_scaler("fp16", "cpu")
    for _ in range(2):
        images = torch.rand(2, 3, 8, 8)
        with engine.autocast("cpu", "fp16"):
            loss = segmentation_loss(model(images), (images[:, 0] > 0.5).long())
        engine.backward_step(loss, optimizer=optimizer, scaler=scaler, max_norm=1.0)
    path = engine.save_checkpoint(tmp_path, step=2, model=model, optimizer=optimizer, scaler=scaler)
    fresh = engine.make_grad_scaler("fp16", "cpu")
    engine.load_checkpoint(path, model=TinySegNet(width=8), scaler=fresh)
    assert fresh.state_dict() == scaler.state_dict()


def test_files_are_flushed_and_named_by_step(tmp_path: Path) -> None:
    path = _save(_new_run(), tmp_path, 12)
    assert path == tmp_path / "step_00000012"
    assert sorted(os.listdir(path)) == [
        "manifest.json",
        "model.safetensors",
        "state.json",
        "training_state.safetensors",
    ]
    assert engine.verify_checkpoint(path) == 12


def test_tied_weights_round_trip(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 4)
            self.unembed = nn.Linear(4, 5, bias=False)
            self.unembed.weight = self.embed.weight

    model = Tied()
    path = engine.save_checkpoint(tmp_path, step=1, model=model)
    fresh = Tied()
    engine.load_checkpoint(path, model=fresh)
    assert torch.equal(fresh.embed.weight, model.embed.weight)
    assert fresh.unembed.weight is fresh.embed.weight  # still tied
