"""Uni-OVSeg: the figure's wiring, promptable and open-vocabulary inference, paper-scale counts, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from segblocks.data import ShapesWorldConfig
from segblocks.structures import Prompts
from segblocks.zoo import build_uni_ovseg
from segblocks.zoo.uni_ovseg import UniOVSeg, UniOVSegPredictor, get_config
from segblocks.zoo.uni_ovseg.data import ImageMaskDataset, collate_image_mask


@pytest.fixture(scope="module")
def model() -> UniOVSeg:
    torch.manual_seed(0)
    return build_uni_ovseg("tiny", dec_layers=1, enc_layers=1, num_points=256)


def points(*xy: tuple[float, float]) -> Prompts:
    return Prompts(
        points=torch.tensor(xy).reshape(-1, 1, 2), point_labels=torch.ones(len(xy), 1, dtype=torch.int64)
    )


def test_forward_answers_points_with_k_masks_and_boxes_with_one(model: UniOVSeg) -> None:
    images = torch.rand(2, 3, 64, 64)
    prompts = [points((3.0, 4.0), (30.0, 40.0)), Prompts(boxes=torch.tensor([[2.0, 2.0, 40.0, 50.0]]))]
    out = model(images, prompts)
    assert out.points.mask_logits.shape == (2, 2 * 4, 16, 16)
    assert out.points.iou_scores is not None and out.points.iou_scores.shape == (2, 8)
    assert out.boxes.mask_logits.shape == (2, 2, 16, 16)
    assert len(out.points.aux) == model.config.dec_layers  # the prediction before the first layer too
    assert out.tokens.num_prompts == [2, 1] and out.tokens.is_box[1, 0]


def test_prompts_are_independent(model: UniOVSeg) -> None:
    """Self-attention only within a prompt and a per-prompt cross-attention region: adding a prompt
    leaves another prompt's answer unchanged."""
    model.eval()
    images = torch.rand(1, 3, 64, 64)
    alone = model(images, [points((10.0, 10.0))]).points.mask_logits
    together = model(images, [points((10.0, 10.0), (50.0, 50.0))]).points.mask_logits[:, :4]
    model.train()
    assert torch.allclose(alone, together, atol=1e-5)


def test_stage1_step_reaches_every_trainable_parameter_but_not_the_adapter() -> None:
    torch.manual_seed(0)
    model = build_uni_ovseg("tiny", dec_layers=3, enc_layers=1, num_points=256)
    world = ShapesWorldConfig(image_size=(64, 64))
    ds = ImageMaskDataset(world, start=0, length=4)
    batch = collate_image_mask([ds[i] for i in range(2)], num_points=3, num_boxes=2)
    model.zero_grad()
    losses = model.training_step(batch)
    assert {"point_loss_mask", "point_loss_dice", "point_loss_iou", "box_loss_mask", "box_loss_iou"} <= set(
        losses
    )
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()  # type: ignore[union-attr]
    no_grad = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad
        and p.grad is None
        and not n.startswith("adapter.")
        and not n.startswith("prompt_encoder.box_emb")
        and "mask_head.mlps.0" not in n
    ]
    assert no_grad == []
    assert all(p.grad is None for p in model.adapter.trainable_parameters())
    assert not any(p.requires_grad for p in model.clip.parameters())


def test_segment_prompts_and_open_vocabulary_predict(model: UniOVSeg) -> None:
    model.eval()
    images = torch.rand(1, 3, 64, 64)
    res = model.segment_prompts(images, [points((5.0, 5.0), (20.0, 30.0))])
    assert res[0].masks.shape == (2, 4, 64, 64) and res[0].scores.shape == (2, 4)
    single = model.segment_prompts(images, [points((5.0, 5.0))], multimask=False)
    assert single[0].masks.shape == (1, 1, 64, 64)
    boxes = model.segment_prompts(images, [Prompts(boxes=torch.tensor([[0.0, 0.0, 30.0, 30.0]]))])
    assert boxes[0].masks.shape == (1, 1, 64, 64)
    cfg = model.config
    model.config = dataclasses.replace(cfg, pred_iou_threshold=0.0, grid_size=3, object_mask_threshold=0.0)
    try:
        out = model.predict(images, vocabulary=["circle", "sky"], is_thing=[True, False])
    finally:
        model.config = cfg
        model.train()
    p = out[0]
    assert p.semantic.label_map.shape == (64, 64)
    assert set(p.semantic.label_map.unique().tolist()) <= {0, 1}
    assert p.class_probs.shape == (len(p.proposals.scores), 2)
    assert p.proposals.num_candidates == 9 * 4
    # the paper's rule (default): a segment's confidence is its mask's predicted IoU, its label the argmax
    assert model.config.label_rule == "argmax" and len(p.panoptic.segments) >= 1
    for seg in p.panoptic.segments:
        assert any(abs(seg.score - float(s)) < 1e-4 for s in p.proposals.scores)


def test_bad_input_raises_clear_errors(model: UniOVSeg) -> None:
    images = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="outside"):
        model(images, [points((70.0, 5.0))])
    with pytest.raises(ValueError, match="one per image"):
        model(images, [points((5.0, 5.0)), points((5.0, 5.0))])
    with pytest.raises(ValueError, match="either points or boxes"):
        model.segment_prompts(
            images,
            [
                Prompts(
                    points=torch.ones(1, 1, 2),
                    point_labels=torch.ones(1, 1, dtype=torch.int64),
                    boxes=torch.tensor([[0.0, 0.0, 5.0, 5.0]]),
                )
            ],
        )
    with pytest.raises(ValueError, match="vocabulary"):
        model.predict(images, vocabulary=[])
    with pytest.raises(TypeError, match="vocabulary"):
        model.predict(images, vocabulary="circle")
    with pytest.raises(ValueError, match="vocabulary"):
        UniOVSegPredictor(model).predict(images)
    with pytest.raises(ValueError, match="points_per_side"):
        UniOVSegPredictor(model, grid_size=0)
    with pytest.raises(ValueError, match="variant"):
        build_uni_ovseg("vit_huge")
    with pytest.raises(TypeError, match="unknown"):
        get_config("tiny", no_such_field=1)
    with pytest.raises(ValueError, match="adapter_scales"):
        build_uni_ovseg("tiny", adapter_scales=("res9",))
    with pytest.raises(ValueError, match="label_rule"):
        get_config("tiny", label_rule="max")
    with pytest.raises(ValueError, match="align_loss"):
        get_config("tiny", align_loss="triplet")
    with pytest.raises(ValueError, match="align_temperature"):
        get_config("tiny", align_temperature=-0.1)
    with pytest.raises(ValueError, match="pixel_input_norm"):
        get_config("tiny", pixel_input_norm="batch")
    with pytest.raises(ValueError, match="pixel_position_encoding"):
        get_config("tiny", pixel_position_encoding="learned")
    with pytest.raises(ValueError, match="input_norm, position_encoding"):  # the plain FPN has neither
        build_uni_ovseg("tiny", pixel_decoder="fpn", pixel_input_norm="layer")


def test_paper_scale_parameter_counts_on_the_meta_device() -> None:
    m = build_uni_ovseg("convnext_large", device="meta")
    counts = m.state_summary()
    # ConvNeXt-L CLIP (image + text towers) frozen; decoders, prompt encoder, heads and adapter trainable
    assert counts["frozen"] == 353_836_993
    assert counts["trainable"] == 22_018_501  # incl. the released pixel decoder's 3 x 256 conv biases
    assert len(m.mask_decoder.layers) == 9 and len(m.iou_heads) == 5
    assert m.prompt_encoder.tokens_per_prompt == 7
    adapter = sum(p.numel() for p in m.adapter.trainable_parameters())
    assert adapter == 8 * sum(c + 768 for c in (384, 768, 1536))  # rank-8 A and B per scale, E = 768
