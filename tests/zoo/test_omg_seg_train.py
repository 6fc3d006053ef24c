"""OMG-Seg's co-training recipe: the three batch kinds (pseudo-clips, clips, prompts), the balanced
schedule, and a 3-step run of ``segblocks train omg-seg`` that trains each kind once and evaluates
every task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from segblocks.data import ClassSplit, ShapesClipDataset, ShapesDataset, ShapesWorldConfig
from segblocks.zoo.omg_seg.cotraining import (
    PromptedImages,
    collate_clips_seen,
    collate_prompted,
    collate_pseudo_clips,
    seen_world,
    task_schedule,
)
from segblocks.zoo.omg_seg.train import main, parse_mix

WORLD = ShapesWorldConfig(image_size=(64, 64))
SEEN = sorted(WORLD.split.seen_ids)


def test_images_become_two_frame_pseudo_clips_with_tube_targets() -> None:
    examples = [ShapesDataset(seen_world(WORLD), length=2)[i] for i in range(2)]
    batch = collate_pseudo_clips(examples, SEEN)
    assert batch.images.shape == (2, 2, 3, 64, 64)
    assert torch.equal(batch.images[:, 0], batch.images[:, 1])
    assert batch.targets is not None
    t = batch.targets[0]
    assert t.masks.shape[1] == 2 and torch.equal(t.masks[:, 0], examples[0].targets.masks)
    assert int(t.labels.max()) < len(SEEN)


def test_clips_keep_the_training_classes_only() -> None:
    clips = ShapesClipDataset(seen_world(WORLD), length=2, num_frames=2)
    batch = collate_clips_seen([clips[0], clips[1]], SEEN)
    assert batch.images.shape == (2, 2, 3, 64, 64)
    assert batch.targets is not None and all(int(t.labels.max()) < len(SEEN) for t in batch.targets)


def test_prompt_i_asks_for_target_i() -> None:
    data = PromptedImages(ShapesDataset(WORLD, length=6), num_prompts=5, seed=1)
    kinds = set()
    for i in range(6):
        ex = data[i]
        assert len(ex.targets) == 5
        if ex.prompts.points is not None:
            kinds.add("point")
            for (x, y), mask in zip(ex.prompts.points[:, 0].tolist(), ex.targets.masks):
                assert mask[int(y), int(x)]  # the click lies inside the mask it asks for
        else:
            kinds.add("box")
            assert ex.prompts.boxes is not None
            for (x1, y1, x2, y2), mask in zip(ex.prompts.boxes.tolist(), ex.targets.masks):
                ys, xs = torch.nonzero(mask, as_tuple=True)
                assert abs(x1 - float(xs.min())) <= 1 and abs(x2 - float(xs.max() + 1)) <= 1
                assert abs(y1 - float(ys.min())) <= 1 and abs(y2 - float(ys.max() + 1)) <= 1
    assert kinds == {"point", "box"}
    batch = collate_prompted([data[0], data[1]])
    assert batch.prompts is not None and batch.images.shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="num_prompts"):
        PromptedImages(ShapesDataset(WORLD, length=1), num_prompts=0)


def test_balanced_schedule_and_mix_errors() -> None:
    assert task_schedule(parse_mix("image=1,clip=1,prompt=1")) == ["image", "clip", "prompt"]
    assert task_schedule(parse_mix("image=1,clip=0,prompt=0")) == ["image"]
    with pytest.raises(ValueError, match="--mix"):
        parse_mix("audio=1")
    with pytest.raises(ValueError, match="mix"):
        task_schedule({"image": 0})


def test_three_steps_train_each_kind_and_evaluate_every_task(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "--steps",
        "3",
        "--batch-size",
        "1",
        "--image-size",
        "64",
        "--val-images",
        "1",
        "--val-clips",
        "1",
    ]
    argv += [
        "--val-frames",
        "2",
        "--threads",
        "1",
        "--log-every",
        "1",
        "--out",
        str(out),
        "--set",
        "num_points=64",
        "--unseen-classes",  # the proxy split on which the card chooses the ensemble's exponents
        ",".join(ClassSplit().proxy().unseen),
    ]
    assert main(argv) == 0
    final = json.loads((out / "final.json").read_text())
    for key in (
        "ps_pq",
        "is_ap",
        "ss_miou",
        "vps_vpq",
        "vis_ap",
        "vss_miou",
        "vos_jf",
        "click_miou",
        "box_miou",
        "ov_pq_unseen",
    ):
        assert key in final
    assert final["step"] == 3 and final["held_out"] == sorted(ClassSplit().proxy().unseen)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kinds = {k.split(":")[0].removeprefix("train/") for row in logged for k in row if ":" in k}
    assert kinds == {"image", "clip", "prompt"}
