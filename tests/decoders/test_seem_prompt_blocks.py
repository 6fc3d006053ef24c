"""SEEM's prompt blocks: regions, the visual sampler, spatial queries, memory prompts, text tokens."""

from __future__ import annotations

import pytest
import torch

from segblocks.backbones import OpenCLIPBackbone
from segblocks.decoders import (
    DenseMaskPrompt,
    MemoryPrompts,
    ObjectRegions,
    QueryGroup,
    SelfAttentionRule,
    SpatialQueries,
    TextPromptTokens,
    VisualSampler,
    box_region,
    build_masked_attention_decoder,
    build_self_attention_mask,
    click_region,
    polygon_region,
    regions_from_prompts,
    sample_prompt_points,
    select_candidates,
    stroke_region,
)
from segblocks.losses import CandidateSelectionLoss
from segblocks.structures import MaskPredictions, Prompts, Targets

SIZE = (32, 40)


# ----------------------------------------------------------------------------- regions
def test_click_is_a_three_by_three_square() -> None:
    region = click_region(10, 5, SIZE)
    assert region.sum() == 9 and region[4:7, 9:12].all()


def test_box_stroke_polygon_regions() -> None:
    box = box_region((2.0, 3.0, 6.0, 5.0), SIZE)
    assert box.sum() == 8 and box[3:5, 2:6].all()
    stroke = stroke_region(torch.tensor([[2.5, 2.5], [20.5, 2.5]]), SIZE, width=1.0)
    assert stroke[2, 2:21].all() and stroke.sum() == 19
    square = polygon_region(torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]), SIZE)
    assert square[:10, :10].all() and not square[12:, 12:].any()


def test_regions_from_prompts_unions_each_object() -> None:
    prompts = Prompts(
        points=torch.tensor([[[5.0, 5.0], [20.0, 20.0]], [[30.0, 10.0], [0.0, 0.0]]]),
        point_labels=torch.tensor([[1, 0], [1, -1]]),
        boxes=torch.tensor([[0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 12.0, 12.0]]),
    )
    regions = regions_from_prompts(prompts, SIZE)
    assert len(regions) == 2
    assert regions.positive[0, 5, 5] and regions.negative[0, 20, 20] and not regions.positive[0, 20, 20]
    assert regions.positive[1, 10, 30] and regions.positive[1, 11, 11] and not regions.negative[1].any()


@pytest.mark.parametrize(
    ("prompts", "match"),
    [
        (
            Prompts(points=torch.tensor([[[50.0, 5.0]]]), point_labels=torch.tensor([[1]])),
            "outside the 40x32",
        ),
        (Prompts(masks=torch.zeros(1, *SIZE, dtype=torch.bool)), "masks: mask prompt"),
        (
            Prompts(masks=torch.ones(1, 8, 8, dtype=torch.bool)),
            "masks: expected mask prompts of the image's size",
        ),
        (
            Prompts(points=torch.tensor([[[5.0, 5.0]]]), point_labels=torch.tensor([[0]])),
            "no positive prompt",
        ),
        (Prompts(strokes=[torch.tensor([[-9.0, -9.0]])]), "strokes\\[0\\].*outside"),
    ],
    ids=["click-outside", "empty-mask", "mask-of-another-size", "negative-only", "stroke-outside"],
)
def test_bad_visual_prompts_are_named(prompts: Prompts, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        regions_from_prompts(prompts, SIZE)


def test_texts_without_words_are_refused() -> None:
    clip = OpenCLIPBackbone("shapes-clip-tiny", pretrained="shapes")
    with pytest.raises(ValueError, match=r"texts\[1\]: expected a text with at least one word"):
        clip.encode_text_tokens(["the red star", " ?! "])
    tokens, valid, pooled = clip.encode_text_tokens(["the red star", "a circle"])
    assert tokens.shape[:2] == valid.shape and valid[0].all() and not valid[1].all()
    # the pooled token is exactly CLIP's sentence embedding
    torch.testing.assert_close(pooled[0], clip.encode_text(["the red star"], templates=("{}",))[0])


# ----------------------------------------------------------------------------- visual sampler
def test_sampling_gives_each_region_equal_probability() -> None:
    positive = torch.zeros(1, 2, 64, 64, dtype=torch.bool)
    positive[0, 0, :60, :60] = True  # 3600 pixels
    positive[0, 1, 62:, 62:] = True  # 4 pixels
    negative = torch.zeros_like(positive)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(2)
    for _ in range(200):
        pts = sample_prompt_points(positive, negative, 2, generator=g)
        counts += torch.bincount(pts.prompt_ids[0][pts.valid[0]], minlength=2)
    share = counts / counts.sum()
    assert abs(float(share[1]) - 0.5) < 0.08  # a 4-pixel click weighs as much as a large mask
    pts = sample_prompt_points(positive, negative, 100)
    assert int(pts.valid.sum()) == 100 and int((pts.prompt_ids[0] == 1).sum()) == 4  # without replacement


def test_visual_sampler_tokens_per_level() -> None:
    sampler = VisualSampler(in_channels=(8, 8, 8), dim=16, num_points=20)
    features = [torch.randn(2, 8, s, s) for s in (4, 8, 16)]
    positive = torch.zeros(2, 3, 32, 32, dtype=torch.bool)
    positive[0, 0, 3:6, 3:6] = True
    positive[1, 2, 10:20, 10:20] = True
    negative = torch.zeros_like(positive)
    negative[0, 0, 20:23, 20:23] = True
    group, points = sampler(features, positive, negative)
    assert not group.cross_attends and group.level_content is not None and len(group.level_content) == 3
    assert group.self_attention == SelfAttentionRule.same_segment()
    assert not torch.equal(group.level_content[0], group.level_content[2])
    assert set(points.prompt_ids[1][points.valid[1]].tolist()) == {2}
    assert points.positive[0][points.valid[0]].any() and (~points.positive[0][points.valid[0]]).any()
    with pytest.raises(ValueError, match="features: expected 3 levels"):
        sampler(features[:2], positive, negative)


def test_decoder_resets_per_level_content_before_each_layer() -> None:
    torch.manual_seed(0)
    decoder = build_masked_attention_decoder(
        dim=16, num_heads=2, ffn_dim=32, num_layers=3, in_channels=(16,) * 3, mask_dim=16
    )
    features = [torch.randn(1, 16, s, s) for s in (4, 8, 16)]
    mask_features = torch.randn(1, 16, 16, 16)
    queries = QueryGroup(name="q", content=torch.randn(1, 2, 16), positional=torch.zeros(1, 2, 16))
    levels = [torch.randn(1, 3, 16) for _ in range(3)]

    def run(levels: list[torch.Tensor]) -> torch.Tensor:
        tokens = QueryGroup(
            name="tokens",
            content=levels[0],
            positional=torch.zeros(1, 3, 16),
            cross_attends=False,
            level_content=levels,
        )
        return decoder([queries, tokens], features, mask_features).group("q").mask_logits[-1]

    changed = [levels[0], levels[1], levels[2] + 1.0]
    assert not torch.allclose(run(levels), run(changed))  # the last layer read level 2's tokens
    with pytest.raises(ValueError, match="level_content: expected 3 levels"):
        decoder(
            [
                queries,
                QueryGroup(name="t", content=levels[0], positional=levels[0], level_content=levels[:2]),
            ],
            features,
            mask_features,
        )


def test_dense_prompt_adds_each_runs_features_to_its_masks() -> None:
    torch.manual_seed(0)
    decoder = build_masked_attention_decoder(
        dim=16, num_heads=2, ffn_dim=32, num_layers=2, in_channels=(16,) * 3, mask_dim=8
    )
    features = [torch.randn(1, 16, s, s) for s in (4, 8, 16)]
    mask_features = torch.randn(1, 8, 16, 16)
    other = QueryGroup(name="object", content=torch.randn(1, 2, 16), positional=torch.zeros(1, 2, 16))
    content = torch.randn(1, 4, 16)

    def run(dense: torch.Tensor | None, frames: int | None = None) -> torch.Tensor:
        group = QueryGroup(
            name="spatial", content=content, positional=torch.zeros(1, 4, 16), dense_prompt=dense
        )
        return decoder([other, group], features, mask_features, num_frames=frames).mask_logits[0]

    plain = run(None)
    assert torch.equal(run(torch.zeros(1, 2, 8, 16, 16)), plain)
    dense = torch.randn(1, 2, 8, 16, 16)
    logits = run(dense)
    assert torch.equal(logits[:, :2], plain[:, :2])  # another group's masks are untouched
    embed = decoder.mask_head.embed(decoder.norm(content))[0]  # [4, 8]: runs (0, 1) and (2, 3)
    extra = torch.einsum("qc,qchw->qhw", embed, dense[0].repeat_interleave(2, dim=0))
    torch.testing.assert_close(logits[0, 2:], plain[0, 2:] + extra)
    with pytest.raises(ValueError, match=r"dense_prompt: expected .* S dividing Q=4"):
        run(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(ValueError, match=r"dense_prompt: expected .*\(8, 16, 16\)"):
        run(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"dense_prompt: expected .*images only"):
        run(torch.zeros(1, 2, 8, 16, 16), frames=1)
    with pytest.raises(TypeError, match="dense_prompt"):
        run(torch.zeros(1, 2, 8, 16, 16, dtype=torch.long))


def test_dense_mask_prompt_starts_at_zero_and_checks_its_input() -> None:
    torch.manual_seed(0)
    block = DenseMaskPrompt(mask_dim=8)
    previous = torch.zeros(2, 3, 64, 64, dtype=torch.bool)
    previous[0, 1, 10:30, 20:40] = True
    out = block(previous, (16, 16))
    assert out.shape == (2, 3, 8, 16, 16) and not out.any()  # zero-initialised projection
    torch.nn.init.normal_(block.encoder[-1].weight)
    out = block(previous, (16, 16))
    assert not torch.allclose(out[0, 1], out[0, 0]) and torch.allclose(out[0, 0], out[1, 2])
    assert block(previous, (8, 8)).shape == (2, 3, 8, 8, 8)  # any mask size is resized first
    with pytest.raises(TypeError, match="previous"):
        block(previous.float(), (16, 16))
    with pytest.raises(ValueError, match="previous: expected"):
        block(previous[0], (16, 16))
    with pytest.raises(ValueError, match="size: expected a positive"):
        block(previous, (0, 16))
    with pytest.raises(ValueError, match="mask_dim, hidden"):
        DenseMaskPrompt(mask_dim=0)


# ----------------------------------------------------------------------------- queries and memory
def test_spatial_queries_and_memory_wiring() -> None:
    valid = torch.tensor([[True, True]])
    memory = MemoryPrompts(dim=8, per_prompt=2)(torch.zeros(1, 2, 8, 8, dtype=torch.bool), valid)
    spatial = SpatialQueries(dim=8, per_prompt=3)(valid, ("memory",))
    assert (
        memory.fixed_cross_mask and memory.cross_mask is not None and memory.cross_mask.shape == (1, 4, 8, 8)
    )
    mask = build_self_attention_mask([spatial, memory])[0]  # [10, 10]: spatial 0..5, memory 6..9
    assert mask[0, 6] and mask[0, 7] and not mask[0, 8]  # prompt 0's queries see prompt 0's memory only
    assert mask[6, 0] and not mask[6, 3]  # memory sees its own prompt's spatial queries only
    assert not mask[0, 3]  # candidates of different prompts never attend to each other


def test_text_tokens_group() -> None:
    tokens = TextPromptTokens(text_dim=6, dim=8)(
        torch.randn(1, 2, 4, 6), torch.ones(1, 2, 4, dtype=torch.bool)
    )
    assert tokens.content.shape == (1, 8, 8) and not tokens.cross_attends
    assert tokens.segment_ids is not None and tokens.segment_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_select_candidates_and_its_loss() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.0, 2.0, 1.0, 0.0]])
    assert select_candidates(scores, 3).tolist() == [[1, 0]]
    loss = CandidateSelectionLoss(group="spatial", per_prompt=3)
    pred = MaskPredictions(mask_logits=torch.zeros(1, 6, 4, 4), iou_scores=scores)
    target = [Targets(masks=torch.zeros(2, 4, 4, dtype=torch.bool), labels=torch.zeros(2, dtype=torch.long))]
    good = loss(
        {"spatial": pred}, {"spatial": target}, {"spatial": [(torch.tensor([1, 3]), torch.tensor([0, 1]))]}
    )
    bad = loss(
        {"spatial": pred}, {"spatial": target}, {"spatial": [(torch.tensor([2, 5]), torch.tensor([0, 1]))]}
    )
    assert float(good) < float(bad)


def test_object_regions_check() -> None:
    with pytest.raises(ValueError, match="negative"):
        ObjectRegions(
            positive=torch.zeros(1, 4, 4, dtype=torch.bool), negative=torch.ones(2, 4, 4, dtype=torch.bool)
        )


def test_sampled_points_keep_their_prompt_and_sign() -> None:
    """A negative click's tokens are negative and belong to its own prompt (the correction's wiring)."""
    positive = torch.zeros(1, 2, 32, 32, dtype=torch.bool)
    negative = torch.zeros_like(positive)
    positive[0, 0, 2:5, 2:5] = True
    negative[0, 0, 20:23, 2:5] = True  # prompt 0's negative click
    positive[0, 1, 10:30, 10:30] = True
    pts = sample_prompt_points(positive, negative, 64, generator=torch.Generator().manual_seed(0))
    xs = (pts.coords[0, :, 0] * 32).long()
    ys = (pts.coords[0, :, 1] * 32).long()
    for i in range(int(pts.valid[0].sum())):
        pid, sign = int(pts.prompt_ids[0, i]), bool(pts.positive[0, i])
        region = positive if sign else negative
        assert bool(region[0, pid, ys[i], xs[i]]), (i, pid, sign)
    assert int((~pts.positive[0] & pts.valid[0]).sum()) == 9  # every pixel of the small negative click


# ----------------------------------------------------------------------------- clicks as their own regions
def _polygon_with_a_click() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    positive = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    positive[0, 0, 4:44, 4:44] = True  # a 1,600-pixel stroke or mask
    clicks = click_region(30, 30, (64, 64))[None, None]  # a correction click inside it
    return positive, torch.zeros_like(positive), clicks


def test_a_click_inside_a_large_region_keeps_its_share() -> None:
    positive, negative, clicks = _polygon_with_a_click()
    g = torch.Generator().manual_seed(0)
    on_click = []
    for use in (False, True):
        pts = sample_prompt_points(positive, negative, 32, clicks=clicks if use else None, generator=g)
        px = (pts.coords[0] * 64).long()
        on_click.append(int(clicks[0, 0, px[:, 1], px[:, 0]].sum()))
        assert bool(pts.positive[0][pts.valid[0]].all())  # clicks on a positive region stay positive
    assert on_click[0] <= 2  # drowned: 9 of 1,600 pixels
    assert on_click[1] == 9  # its own region: half of the 32 points go to its 9 pixels


def test_negative_clicks_are_negative_points_and_no_clicks_draw_as_before() -> None:
    positive, negative, clicks = _polygon_with_a_click()
    negative[0, 0, 50:53, 50:53] = True
    clicks = clicks | negative
    pts = sample_prompt_points(
        positive, negative, 64, clicks=clicks, generator=torch.Generator().manual_seed(1)
    )
    px = (pts.coords[0] * 64).long()
    assert torch.equal(pts.positive[0], ~negative[0, 0, px[:, 1], px[:, 0]])
    draws = [
        sample_prompt_points(positive, negative, 16, clicks=c, generator=torch.Generator().manual_seed(2))
        for c in (None, torch.zeros_like(clicks))
    ]
    assert torch.equal(draws[0].coords, draws[1].coords)  # no click marked: the same draw as without


@pytest.mark.parametrize(
    ("clicks", "error", "match"),
    [
        (torch.zeros(1, 1, 32, 32, dtype=torch.bool), ValueError, r"clicks: expected shape"),
        (torch.zeros(1, 1, 64, 64), TypeError, r"clicks: expected a bool dtype"),
    ],
)
def test_click_map_errors_name_the_argument(clicks: torch.Tensor, error: type, match: str) -> None:
    positive, negative, _ = _polygon_with_a_click()
    with pytest.raises(error, match=match):
        sample_prompt_points(positive, negative, 8, clicks=clicks)


def test_visual_sampler_uses_clicks_only_when_asked() -> None:
    positive, negative, clicks = _polygon_with_a_click()
    features = [torch.randn(1, 8, s, s) for s in (8, 16, 32)]
    for separate, expected in ((False, range(0, 3)), (True, range(9, 10))):
        sampler = VisualSampler(in_channels=(8, 8, 8), dim=16, num_points=32, separate_clicks=separate)
        _, pts = sampler(
            features, positive, negative, clicks=clicks, generator=torch.Generator().manual_seed(0)
        )
        px = (pts.coords[0] * 64).long()
        assert int(clicks[0, 0, px[:, 1], px[:, 0]].sum()) in expected
