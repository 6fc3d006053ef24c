"""Kill -9 in the middle of training, resume, and get bitwise the weights of an uninterrupted run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from segblocks import engine

from .conftest import RunTiny, load_weights_file
from .tiny_train import parse_args, train


def _records(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")
def test_killed_and_resumed_run_matches_uninterrupted_run_bitwise(tmp_path: Path, run_tiny: RunTiny) -> None:
    common = ["--steps", "12", "--save-every", "2", "--seed", "3"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    train(parse_args(["--run-dir", str(straight), "--out", str(straight / "final.safetensors"), *common]))

    args = ["--run-dir", str(broken), "--out", str(broken / "final.safetensors"), *common]
    # A real process SIGKILLs itself while writing the step-8 checkpoint: its data files exist, its
    # manifest does not, and steps 7-8 were trained but not saved.
    run_tiny(*args, "--kill-during-save-at", "8", expect_rc=-signal.SIGKILL)
    checkpoints = broken / "checkpoints"
    names = sorted(p.name for p in checkpoints.iterdir())
    assert names[0].startswith(".step_00000008.tmp-")  # the unfinished write, never renamed into place
    assert names[1:] == ["step_00000002", "step_00000004", "step_00000006"]
    assert engine.find_latest_checkpoint(checkpoints) == checkpoints / "step_00000006"

    # Resume in a fresh model/optimizer: from step 6, to the end.
    train(parse_args([*args, "--resume"]))

    expected = load_weights_file(straight / "final.safetensors")
    got = load_weights_file(broken / "final.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    # The metric log is one clean curve: steps trained twice appear once, with the same losses.
    straight_log, broken_log = _records(straight), _records(broken)
    assert [r["step"] for r in broken_log] == list(range(1, 13))
    assert [r["train/loss"] for r in broken_log] == [r["train/loss"] for r in straight_log]
    # keep_last=3 pruned older checkpoints; the stale staging directory was cleaned up.
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "step_00000008",
        "step_00000010",
        "step_00000012",
    ]
