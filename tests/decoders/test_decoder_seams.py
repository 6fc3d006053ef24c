"""Toy assemblies through the one mask decoder, each trained by a criterion configured per query group:
location queries that start from box regions and attend only to themselves (OMG-Seg), a memory group
under a fixed region (SEEM), prompt tokens that are attended to but never cross-attend (SEEM,
Uni-OVSeg), and a 3-frame clip whose queries predict mask tubes (Mask2Former-VIS)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from segblocks.decoders import (
    MaskedAttentionDecoder,
    QueryGroup,
    SelfAttentionRule,
    build_masked_attention_decoder,
)
from segblocks.layers import SinePositionEncoding, SinePositionEncoding3D
from segblocks.losses import GroupedCriterion, SetCriterion
from segblocks.matchers import ByConstructionMatcher, HungarianMatcher
from segblocks.structures import MaskPredictions, Targets

D, B, H = 16, 2, 16  # width, batch, mask-feature side (stride 4 of a 64 px image)


class ToyModel(nn.Module):
    """A frozen 'backbone' projection, learned semantic queries, a box-to-query encoder, the decoder."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.frozen_stem = nn.Conv2d(3, D, 1).requires_grad_(False)
        self.levels = nn.ModuleList(nn.Conv2d(D, D, 1) for _ in range(2))
        self.mask_proj = nn.Conv2d(D, D, 1)
        self.decoder: MaskedAttentionDecoder = build_masked_attention_decoder(
            dim=D, num_heads=2, ffn_dim=32, num_layers=2, in_channels=(D, D), mask_dim=D
        )
        self.semantic_feat = nn.Embedding(4, D)
        self.semantic_pos = nn.Embedding(4, D)
        self.box_embed = nn.Linear(4, D)
        self.prompt_type = nn.Embedding(1, D)

    def features(self, images: Tensor) -> tuple[list[Tensor], Tensor]:
        x = self.frozen_stem(images)
        f4 = nn.functional.avg_pool2d(x, 4)
        return [lvl(nn.functional.avg_pool2d(f4, s)) for lvl, s in zip(self.levels, (4, 2))], self.mask_proj(
            f4
        )

    def semantic(self, b: int) -> QueryGroup:
        return QueryGroup(
            "semantic",
            self.semantic_feat.weight.expand(b, -1, -1),
            self.semantic_pos.weight.expand(b, -1, -1),
        )

    def location(self, boxes: Tensor) -> QueryGroup:
        """OMG-Seg-style location queries: content = prompt type, position = box code, region = box."""
        b, n = boxes.shape[:2]
        region = torch.zeros(b, n, H, H, dtype=torch.bool)
        for i in range(b):
            for j in range(n):
                x1, y1, x2, y2 = (boxes[i, j] * H).round().long().tolist()
                region[i, j, y1:y2, x1:x2] = True
        return QueryGroup(
            "location",
            self.prompt_type.weight.expand(b, n, -1),
            self.box_embed(boxes),
            self_attention=SelfAttentionRule.only_self(),
            cross_mask=region,
        )


def boxes() -> Tensor:
    return torch.tensor(
        [[[0.0, 0.0, 0.5, 0.5], [0.5, 0.25, 1.0, 0.75]], [[0.25, 0.25, 0.75, 1.0], [0, 0, 1, 1]]]
    )


def box_targets(bx: Tensor) -> list[Targets]:
    out = []
    for per_image in bx:
        masks = torch.zeros(len(per_image), 64, 64, dtype=torch.bool)
        for j, (x1, y1, x2, y2) in enumerate((per_image * 64).long().tolist()):
            masks[j, y1:y2, x1:x2] = True
        out.append(Targets(masks=masks, labels=torch.zeros(len(per_image), dtype=torch.int64)))
    return out


def class_targets() -> list[Targets]:
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, :32], masks[1, 32:] = True, True
    return [Targets(masks=masks, labels=torch.tensor([0, 1])) for _ in range(B)]


def capture_layer_inputs(decoder: MaskedAttentionDecoder) -> list[tuple[Tensor | None, ...]]:
    """Record (cross_mask, self_mask, cross_attends) of every decoder layer call."""
    seen: list[tuple[Tensor | None, ...]] = []
    for layer in decoder.layers:
        layer.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[4:7])))
    return seen


def grouped_criterion(location_matcher: nn.Module | None = None) -> GroupedCriterion:
    return GroupedCriterion(
        groups={
            "semantic": SetCriterion(matcher=HungarianMatcher(num_points=64), num_points=64),
            "location": SetCriterion(
                matcher=location_matcher or ByConstructionMatcher(), class_weight=0.0, num_points=64
            ),
        }
    )


def predictions(model: ToyModel, decoded, name: str, head: nn.Module | None = None) -> MaskPredictions:
    group = decoded.group(name)
    preds = [
        MaskPredictions(mask_logits=m, class_logits=None if head is None else head(q))
        for q, m in zip(group.queries, group.mask_logits)
    ]
    preds[-1].aux = preds[:-1]
    return preds[-1]


def assert_trainable_grads(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_location_queries_start_from_their_boxes_and_attend_only_to_themselves() -> None:
    model = ToyModel()
    head = nn.Linear(D, 3)
    images = torch.rand(B, 3, 64, 64)
    feats, mask_features = model.features(images)
    seen = capture_layer_inputs(model.decoder)
    bx = boxes()
    decoded = model.decoder([model.semantic(B), model.location(bx)], feats, mask_features)

    loc = decoded.slices["location"]
    first_cross, self_mask, _ = seen[0]
    assert first_cross is not None and self_mask is not None
    region = model.location(bx).cross_mask
    assert region is not None
    expected = MaskedAttentionDecoder.region_mask(region, tuple(feats[0].shape[-2:]), None)
    assert torch.equal(first_cross[:, loc], expected)  # the first layer attends inside the box only
    second_cross = seen[1][0]
    assert second_cross is not None
    predicted = MaskedAttentionDecoder.attention_mask(decoded.mask_logits[1], tuple(feats[1].shape[-2:]))
    assert torch.equal(second_cross, predicted)  # later layers follow the queries' own predictions
    block = self_mask[:, loc, :]
    assert torch.equal(block, torch.eye(self_mask.shape[1], dtype=torch.bool)[loc].expand(B, -1, -1))

    criterion = grouped_criterion()
    losses = criterion(
        {
            "semantic": predictions(model, decoded, "semantic", head),
            "location": predictions(model, decoded, "location"),
        },
        {"semantic": class_targets(), "location": box_targets(bx)},
    )
    assert {"semantic/loss_class", "location/loss_mask", "location/loss_dice_0"} <= set(losses)
    assert "location/loss_class" not in losses
    sum(losses.values()).backward()
    assert_trainable_grads(model)


def test_a_memory_group_keeps_its_fixed_region_in_every_layer() -> None:
    model = ToyModel()
    feats, mask_features = model.features(torch.rand(B, 3, 64, 64))
    seen = capture_layer_inputs(model.decoder)
    previous = torch.zeros(B, 1, 64, 64, dtype=torch.bool)
    previous[:, :, 8:40, 8:40] = True  # last round's mask
    memory = QueryGroup(
        "memory",
        torch.randn(B, 1, D),
        torch.zeros(B, 1, D),
        self_attention=SelfAttentionRule.own_group(),
        cross_mask=previous,
        fixed_cross_mask=True,
    )
    decoded = model.decoder([model.semantic(B), memory], feats, mask_features)
    s = decoded.slices["memory"]
    for i, (cross, _, _) in enumerate(seen):
        assert cross is not None
        size = tuple(feats[i % 2].shape[-2:])
        assert torch.equal(cross[:, s], MaskedAttentionDecoder.region_mask(previous, size, None)), i
    with pytest.raises(ValueError, match="fixed_cross_mask"):
        QueryGroup("memory", torch.randn(B, 1, D), torch.zeros(B, 1, D), fixed_cross_mask=True)
    with pytest.raises(ValueError, match="cross_mask"):
        QueryGroup("memory", torch.randn(B, 1, D), torch.zeros(B, 1, D), cross_mask=previous[:1])


def test_prompt_tokens_are_attended_to_but_never_cross_attend() -> None:
    model = ToyModel()
    images = torch.rand(B, 3, 64, 64)
    tokens = QueryGroup(
        "prompt_tokens",
        torch.randn(B, 3, D),
        torch.randn(B, 3, D),
        self_attention=SelfAttentionRule.only_self(),
        cross_attends=False,
    )
    feats, mask_features = model.features(images)
    other_feats, other_mask = model.features(torch.rand(B, 3, 64, 64))
    a = model.decoder([model.semantic(B), tokens], feats, mask_features)
    b = model.decoder([model.semantic(B), tokens], other_feats, other_mask)
    s = a.slices["prompt_tokens"]
    # the tokens see neither the image nor other queries: new image features leave them unchanged
    torch.testing.assert_close(a.queries[-1][:, s], b.queries[-1][:, s])
    assert not torch.allclose(a.queries[-1][:, a.slices["semantic"]], b.queries[-1][:, b.slices["semantic"]])
    # ... while the semantic queries, which attend to every query, do read them
    plain = model.decoder([model.semantic(B)], feats, mask_features)
    assert not torch.allclose(a.queries[-1][:, a.slices["semantic"]], plain.queries[-1])


def test_a_prompts_tokens_share_the_union_of_their_masks() -> None:
    model = ToyModel()
    feats, mask_features = model.features(torch.rand(B, 3, 64, 64))
    seen = capture_layer_inputs(model.decoder)
    segments = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]])
    tokens = QueryGroup(
        "prompt",
        torch.randn(B, 5, D),
        torch.randn(B, 5, D),
        self_attention=SelfAttentionRule.same_segment(),
        segment_ids=segments,
        union_by_segment=True,
    )
    decoded = model.decoder([model.semantic(B), tokens], feats, mask_features)
    s = decoded.slices["prompt"]
    for i, (cross, _, _) in enumerate(seen):
        assert cross is not None
        own = MaskedAttentionDecoder.attention_mask(decoded.mask_logits[i], tuple(feats[i % 2].shape[-2:]))[
            :, s
        ]
        for b in range(B):
            for seg in (0, 1):
                rows = segments[b] == seg
                assert (cross[b, s][rows] == own[b][rows].any(0)).all(), (i, b, seg)
    with pytest.raises(ValueError, match="union_by_segment"):
        QueryGroup("prompt", torch.randn(B, 5, D), torch.randn(B, 5, D), union_by_segment=True)


def test_a_three_frame_clip_gives_mask_tubes_trained_per_group() -> None:
    model = ToyModel()
    t = 3
    clip = torch.rand(B, t, 3, 64, 64)
    feats, mask_features = model.features(clip.flatten(0, 1))  # frames of a clip consecutive
    head = nn.Linear(D, 3)
    bx = boxes()
    decoded = model.decoder([model.semantic(B), model.location(bx)], feats, mask_features, num_frames=t)
    assert decoded.mask_logits[-1].shape == (B, 4 + 2, t, H, H)
    # the same query draws a different mask in each frame
    assert not torch.allclose(decoded.mask_logits[-1][:, :, 0], decoded.mask_logits[-1][:, :, 1])

    tube = torch.zeros(2, t, 64, 64, dtype=torch.bool)
    tube[0, :, :32] = True
    tube[1, :2, 32:] = True  # absent in the last frame
    tubes = [Targets(masks=tube, labels=torch.tensor([0, 1])) for _ in range(B)]
    loc_tubes = [
        Targets(masks=tg.masks[:, None].expand(-1, t, -1, -1).clone(), labels=tg.labels)
        for tg in box_targets(bx)
    ]
    assert tubes[0].present.tolist() == [[True, True, True], [True, True, False]]
    losses = grouped_criterion()(
        {
            "semantic": predictions(model, decoded, "semantic", head),
            "location": predictions(model, decoded, "location"),
        },
        {"semantic": tubes, "location": loc_tubes},
    )
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    sum(losses.values()).backward()
    assert_trainable_grads(model)

    with pytest.raises(ValueError, match="num_frames"):
        model.decoder([model.semantic(B)], feats, mask_features, num_frames=4)


def test_the_3d_encoding_is_the_2d_one_for_images_and_codes_time_for_clips() -> None:
    x = torch.zeros(6, 5, 4, 7)
    torch.testing.assert_close(SinePositionEncoding3D(dim=16)(x), SinePositionEncoding(dim=16)(x))
    clip = SinePositionEncoding3D(dim=16)(x, num_frames=3)
    assert clip.shape == (6, 16, 4, 7)
    assert not torch.allclose(clip[0], clip[1])  # frames differ
    torch.testing.assert_close(clip[0], clip[3])  # the same frame of two clips agrees
    with pytest.raises(ValueError, match="num_frames"):
        SinePositionEncoding3D(dim=16)(x, num_frames=4)


def test_grouped_criterion_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="groups"):
        GroupedCriterion(groups={})
    with pytest.raises(TypeError, match="SetCriterion"):
        GroupedCriterion(groups={"semantic": nn.Linear(1, 1)})  # type: ignore[dict-item]
    criterion = grouped_criterion()
    preds = MaskPredictions(mask_logits=torch.zeros(B, 2, 8, 8))
    with pytest.raises(KeyError, match="memory"):
        criterion({"semantic": preds}, {"memory": class_targets()})
    # a group without targets this batch is skipped
    assert set(criterion({"semantic": preds}, {})) == set()
