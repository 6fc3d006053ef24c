"""torchrun with 2 gloo processes trains the same weights as 1 process with the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from .conftest import RunTiny, load_weights_file
from .tiny_train import parse_args, train


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")
def test_two_processes_match_one_process(tmp_path: Path, run_tiny: RunTiny) -> None:
    common = ["--steps", "6", "--batch-size", "8", "--seed", "1"]
    one, two = tmp_path / "one", tmp_path / "two"
    train(parse_args(["--run-dir", str(one), "--out", str(one / "final.safetensors"), *common]))
    run_tiny(
        "--run-dir", str(two), "--out", str(two / "final.safetensors"), "--save-every", "3", *common, nproc=2
    )

    expected = load_weights_file(one / "final.safetensors")
    got = load_weights_file(two / "final.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-5)
    # The loss rank 0 logs is the mean over ranks, i.e. the single-process loss of the global batch.
    torch.testing.assert_close(torch.tensor(_losses(two)), torch.tensor(_losses(one)), rtol=0, atol=1e-5)
    assert _losses(one)[-1] < _losses(one)[0]  # the weights did train, so the match is not trivial
    # Only rank 0 wrote the checkpoint; it holds both ranks' RNG states.
    state = json.loads((two / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
