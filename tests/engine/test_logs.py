"""Metric logs (JSON lines, optional TensorBoard) and progress bars."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from segblocks import engine


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_records_and_resume_truncation(tmp_path: Path) -> None:
    with engine.MetricLogger(tmp_path, tensorboard=False) as log:
        for step in range(1, 6):
            log.log(step, {"loss": torch.tensor(1.0 / step), "lr": 0.1}, prefix="train")
        log.log(5, {"nan": float("nan")})
    records = _records(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 5]
    assert records[1]["train/loss"] == 0.5 and records[1]["train/lr"] == 0.1
    assert records[-1]["nan"] == "nan"  # non-finite values stay valid JSON
    # A line cut by an interruption, then a resume from step 3: later records are dropped.
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 6, "tra')
    engine.MetricLogger(tmp_path, resume_step=3, tensorboard=False).log(4, {"loss": 0.2}, prefix="train")
    assert [(r["step"], r.get("train/loss")) for r in _records(tmp_path / "metrics.jsonl")] == [
        (1, 1.0),
        (2, 0.5),
        (3, pytest.approx(1 / 3)),
        (4, 0.2),
    ]


def test_disabled_logger_writes_nothing(tmp_path: Path) -> None:
    log = engine.MetricLogger(tmp_path / "run", enabled=False)
    log.log(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "run").exists()


def test_logger_validation(tmp_path: Path) -> None:
    log = engine.MetricLogger(tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match=r"metrics\['m'\]: expected a scalar, got shape \(3,\)"):
        log.log(1, {"m": torch.ones(3)})
    with pytest.raises(TypeError, match=r"metrics\['m'\]: expected a number or a scalar tensor, got str"):
        log.log(1, {"m": "x"})


class _FakeWriter:
    instances: ClassVar[list[_FakeWriter]] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        _FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def close(self) -> None:
        self.closed = True


def test_tensorboard_events_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = _FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = engine.MetricLogger(tmp_path, resume_step=7)
    log.log(8, {"loss": 0.5}, prefix="train")
    log.close()
    writer = _FakeWriter.instances[-1]
    assert writer.log_dir == str(tmp_path / "tb") and writer.purge_step == 7
    assert writer.scalars == [("train/loss", 0.5, 8)] and writer.closed


def test_tensorboard_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    engine.MetricLogger(tmp_path).log(1, {"loss": 1.0})  # silently JSON-lines only
    with pytest.raises(ImportError, match="tensorboard: requested but not installed"):
        engine.MetricLogger(tmp_path, tensorboard=True)


def test_progress_bar_passes_items_through() -> None:
    assert list(engine.progress_bar(range(3), enabled=False)) == [0, 1, 2]
    bar = engine.progress_bar(iter(range(5, 8)), total=8, initial=5, desc="train")
    assert list(bar) == [5, 6, 7] and bar.n == 8
