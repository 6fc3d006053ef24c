"""Per-prompt results (K candidates with scores, the best one) and clip results (ids kept over frames)."""

from __future__ import annotations

import pytest
import torch

from segblocks.inference import postprocess_clips, postprocess_prompts


def test_prompt_results_keep_every_candidate_and_name_the_best() -> None:
    logits = torch.full((2, 6, 8, 8), -5.0)  # 3 prompts x 2 outputs, image 1 has 2 real prompts
    logits[0, 1, :4] = 5.0
    scores = torch.tensor([[0.0, 3.0, 2.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 4.0, 0.0, 0.0]])
    out = postprocess_prompts(
        logits,
        scores,
        num_prompts=[3, 2],
        outputs_per_prompt=2,
        padded=(32, 32),
        image_sizes=[(32, 32), (30, 20)],
    )
    assert out[0].masks.shape == (3, 2, 32, 32) and out[1].masks.shape == (2, 2, 30, 20)
    assert out[0].best.tolist() == [1, 0, 0] and out[1].best.tolist() == [0, 1]
    assert out[0].best_masks[0, :16].all() and not out[0].best_masks[0, 16:].any()
    torch.testing.assert_close(out[0].scores[0], torch.tensor([0.0, 3.0]).sigmoid())
    unscored = postprocess_prompts(
        logits, None, num_prompts=[1, 0], padded=(32, 32), image_sizes=[(32, 32)] * 2
    )
    assert unscored[0].masks.shape == (1, 1, 32, 32) and unscored[1].masks.shape[0] == 0
    with pytest.raises(ValueError, match="num_prompts"):
        postprocess_prompts(logits, None, num_prompts=[7, 0], padded=(32, 32), image_sizes=[(32, 32)] * 2)


def test_clip_results_keep_one_id_per_query_over_the_frames() -> None:
    t = 3
    logits = torch.full((1, 2, t, 8, 8), -9.0)
    logits[0, 0, :, :4] = 9.0  # query 0: top half in every frame
    logits[0, 1, :2, 4:] = 9.0  # query 1: bottom half, gone in the last frame
    classes = torch.tensor([[[9.0, -9.0, -9.0], [-9.0, 9.0, -9.0]]])  # thing 0, thing 1, void
    out = postprocess_clips(
        logits, classes, [True, True], padded=(16, 16), image_sizes=[(16, 16)], object_mask_threshold=0.5
    )[0]
    assert out.panoptic is not None and out.semantic is not None and out.instance is not None
    maps = out.panoptic.segment_maps
    assert maps.shape == (t, 16, 16)
    top, bottom = {int(v) for v in maps[:, :8].unique()}, {int(v) for v in maps[:2, 8:].unique()}
    assert len(top) == 1 and len(bottom) == 1 and top != bottom  # one id per tube, in every frame
    assert (maps[2, 8:] == 0).all()
    assert {s.category_id for s in out.panoptic.segments} == {0, 1}
    assert out.semantic.label_maps.shape == (t, 16, 16)
    assert out.instance.masks.shape[1:] == (t, 16, 16)
    assert not out.instance.masks[out.instance.labels == 1][0, 2].any()
