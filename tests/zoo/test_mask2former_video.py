"""Mask2Former on clips (Mask2Former-VIS): tube outputs, overfitting a few clips (tube AP well above an
untrained model), gradients to every trainable parameter, long videos in linked windows, VOS, the
recipe, and clear errors on bad clips."""

from __future__ import annotations

import json

import pytest
import torch

from segblocks.data import ShapesClipDataset, ShapesWorldConfig, collate_clip_batch
from segblocks.structures import Batch, Targets
from segblocks.zoo.mask2former import Mask2FormerVideoPredictor
from segblocks.zoo.mask2former.evaluate_video import evaluate_video
from tests.zoo.test_mask2former import TINY, TinyBackbone, tiny_model

WORLD = ShapesWorldConfig(image_size=(64, 64), num_things=(1, 2), num_stuff_regions=(1, 1))


@pytest.fixture(scope="module")
def clips():
    ds = ShapesClipDataset(WORLD, split="train", length=3, num_frames=4)
    return [ds[i] for i in range(3)]


def test_clips_give_tubes_and_train(clips) -> None:
    model = tiny_model()
    batch = collate_clip_batch(clips[:2])
    out = model(batch.images)
    assert out.mask_logits.shape == (2, 8, 4, 16, 16) and out.class_logits is not None
    losses = model.training_step(batch)
    assert all(torch.isfinite(v) for v in losses.values())


def test_overfits_a_few_clips(clips) -> None:
    model = tiny_model()
    predictor = Mask2FormerVideoPredictor(model, window=4, object_mask_threshold=0.5)
    untrained = evaluate_video(predictor, clips)
    batch = collate_clip_batch(clips)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(60):
        loss = sum(model.training_step(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = evaluate_video(predictor, clips)
    assert trained.vis_ap > untrained.vis_ap + 20, (untrained, trained)
    assert trained.vpq > untrained.vpq + 20, (untrained, trained)
    assert trained.num_videos == 3


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(clips) -> None:
    model = tiny_model(backbone=TinyBackbone(frozen=True))
    batch = collate_clip_batch(clips[:2])
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(2):  # one update moves the zero-initialised deformable offsets
        opt.zero_grad()
        sum(model.training_step(batch).values()).backward()
        opt.step()
    no_grad = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert not no_grad, no_grad
    assert all(p.grad is None for p in model.backbone.parameters())


def test_long_videos_run_in_linked_windows_and_follow_objects(clips) -> None:
    model = tiny_model().eval()
    frames = clips[0].frames
    predictor = Mask2FormerVideoPredictor(model, window=2)
    result = predictor.predict_video(frames)
    assert result.panoptic is not None and result.panoptic.segment_maps.shape == (4, 64, 64)
    assert result.instance is not None and result.instance.masks.shape[1:] == (4, 64, 64)
    linked = predictor.link(frames)
    assert linked.mask_logits.shape == (8, 4, 16, 16)
    # a window of the whole clip gives the plain clip forward
    whole = Mask2FormerVideoPredictor(model, window=4).link(frames)
    with torch.no_grad():
        direct = model(frames[None])
    torch.testing.assert_close(whole.mask_logits, direct.mask_logits[0].half().float())
    first = torch.zeros(1, 64, 64, dtype=torch.bool)
    first[0, 10:30, 10:30] = True
    followed = predictor.follow_objects(frames, first)
    assert followed.shape == (1, 4, 64, 64) and followed.dtype == torch.bool


def test_bad_clips_raise_clearly(clips) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="at least one frame"):
        model(torch.rand(1, 0, 3, 64, 64))
    frames, tubes = torch.rand(1, 3, 3, 64, 64), collate_clip_batch(clips[:1]).targets
    with pytest.raises(ValueError, match="tubes of T=3"):
        Batch(images=frames, targets=tubes)  # 4-frame tubes for a 3-frame clip
    with pytest.raises(ValueError, match="unique"):  # a track id reused for two objects in one frame
        Targets(
            masks=torch.ones(2, 4, 4, dtype=torch.bool),
            labels=torch.tensor([0, 1]),
            instance_ids=torch.tensor([3, 3]),
        )
    predictor = Mask2FormerVideoPredictor(model)
    with pytest.raises(ValueError, match="frames"):
        predictor.predict_video(torch.rand(0, 3, 64, 64))
    with pytest.raises(ValueError, match="first_masks"):
        predictor.follow_objects(torch.rand(2, 3, 64, 64), torch.ones(1, 32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="window"):
        Mask2FormerVideoPredictor(model, window=0)


def test_video_recipe_runs_and_resumes(tmp_path) -> None:
    from segblocks.zoo.mask2former.train_video import main

    tiny = [f"{k}={v}" for k, v in TINY.items()]
    args = ["--backbone", "regnetx_002", "--image-size", "64", "--batch-size", "2", "--val-images", "2"]
    args += ["--frames", "2", "--val-frames", "4", "--window", "2", "--checkpoint-every", "0"]
    args += ["--out", str(tmp_path), "--set", *tiny]
    assert main([*args, "--steps", "2"]) == 0
    final = json.loads((tmp_path / "final.json").read_text())
    assert (
        final["step"] == 2
        and final["num_videos"] == 2
        and {"vis_ap", "vpq", "vss_miou", "vos_jf"} <= set(final)
    )
    assert main([*args, "--steps", "3", "--resume"]) == 0
    assert json.loads((tmp_path / "final.json").read_text())["step"] == 3
    with pytest.raises(ValueError, match="--window"):
        main([*args, "--window", "0"])
