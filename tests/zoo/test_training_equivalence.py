"""The visible training loops train exactly as the engine's old ``fit()`` did.

``data/losses_before.json`` holds the first three steps' losses of the tiny Mask2Former and PosSAM
recipes (random init, seed 0, one thread), recorded with the code before the training step moved
into the models and the loop into the recipes. Rerunning the same recipes must give every loss term
again, to float32 rounding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from segblocks.zoo.mask2former.train import main as mask2former_main
from segblocks.zoo.possam.train import main as possam_main
from tests.zoo.test_mask2former import TINY as MASK2FORMER_TINY
from tests.zoo.test_possam import TINY as POSSAM_TINY
from tests.zoo.test_possam import TINY_CLIP

REFERENCE = json.loads((Path(__file__).parent / "data" / "losses_before.json").read_text())
COMMON = [
    "--image-size", "64", "--batch-size", "2", "--val-images", "1", "--steps", "3", "--log-every", "1",
    "--eval-every", "0", "--checkpoint-every", "0", "--threads", "1", "--seed", "0",
]  # fmt: skip
ARGS = {
    "mask2former": ["--backbone", "regnetx_002", *COMMON, "--set", *[f"{k}={v}" for k, v in MASK2FORMER_TINY.items()]],
    "possam": [
        "--sam-model", "vit_tiny", "--sam-checkpoint", "none", "--clip-model", TINY_CLIP,
        "--clip-pretrained", "none", "--lr", "2e-3", "--warmup-steps", "0", *COMMON,
        "--set", *[f"{k}={v}" for k, v in POSSAM_TINY.items()],
        # the options of the recording's time (the world-scale defaults since differ)
        "ldp_void=learned", "iou_unmatched_weight=0.0", "iou_unmatched_target=zero",
    ],
}  # fmt: skip
MAINS: dict[str, Callable[[list[str]], int]] = {"mask2former": mask2former_main, "possam": possam_main}


def _train_losses(main: Callable[[list[str]], int], args: list[str], out: Path) -> list[dict[str, float]]:
    assert main([*args, "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith("train/loss")} for r in records if "train/loss" in r]


@pytest.mark.parametrize("recipe", ["mask2former", "possam"])
def test_first_steps_give_the_recorded_losses(recipe: str, tmp_path: Path) -> None:
    got = _train_losses(MAINS[recipe], ARGS[recipe], tmp_path)
    expected = REFERENCE[recipe]
    assert len(got) == len(expected) == 3
    for step, (g, e) in enumerate(zip(got, expected), start=1):
        assert sorted(g) == sorted(e), f"step {step}: loss terms {sorted(g)} != {sorted(e)}"
        for name, value in e.items():
            assert g[name] == pytest.approx(value, rel=1e-5, abs=1e-7), f"step {step} {name}"


def test_evaluations_during_training_do_not_change_the_training(tmp_path: Path) -> None:
    """The same run, evaluated after every step, trains exactly as when it is evaluated at the end only
    (an evaluation once drew from torch's global generator and shifted the point sampling after it)."""
    args = list(ARGS["possam"])
    every = args.index("--eval-every")
    args[every + 1] = "1"
    assert _train_losses(MAINS["possam"], args, tmp_path) == _train_losses(
        MAINS["possam"], ARGS["possam"], tmp_path / "end_only"
    )
