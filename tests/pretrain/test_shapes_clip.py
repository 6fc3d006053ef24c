"""The tiny CLIP: its tokenizer, its training pairs, the zero-shot evaluation and the recipe."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer

from segblocks.backbones import OpenCLIPBackbone
from segblocks.backbones.registry import CLIP_CONFIG_DIR
from segblocks.data.shapes import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.pretrain import clip_losses, shapes_clip
from segblocks.pretrain.clip_data import (
    ClipBatch,
    Phrase,
    crop_images,
    make_clip_batch,
    stuff_crop_box,
    thing_crop_box,
    thing_phrase,
)
from segblocks.pretrain.clip_eval import evaluate_zero_shot
from segblocks.pretrain.clip_vocab import SHAPES_WORDS, bpe_merges_for, write_bpe_subset

SMALL_WORLD = ShapesWorldConfig(image_size=(64, 64), num_things=(1, 3))
UNSEEN = SMALL_WORLD.split.unseen_ids


# -- tokenizer ---------------------------------------------------------------------------------------
def test_shapes_words_tokenize_exactly_as_with_the_full_bpe() -> None:
    tiny = open_clip.get_tokenizer(shapes_clip.MODEL_NAME)
    full = SimpleTokenizer()
    assert isinstance(tiny, SimpleTokenizer)
    for word in SHAPES_WORDS:
        assert [tiny.decoder[i] for i in tiny.encode(word)] == [full.decoder[i] for i in full.encode(word)]
    # Words outside the list still tokenize (into smaller pieces), and decode back.
    assert tiny.decode(tiny.encode("a zebra on a bicycle")).strip() == "a zebra on a bicycle"


def test_shipped_bpe_file_and_config_agree_with_the_word_list(tmp_path: Path) -> None:
    config = json.loads((CLIP_CONFIG_DIR / f"{shapes_clip.MODEL_NAME}.json").read_text())
    shipped = CLIP_CONFIG_DIR / config["text_cfg"]["tokenizer_kwargs"]["bpe_path"]
    vocab_size = write_bpe_subset(tmp_path / "bpe.txt.gz")
    assert gzip.decompress(shipped.read_bytes()) == gzip.decompress((tmp_path / "bpe.txt.gz").read_bytes())
    assert vocab_size == config["text_cfg"]["vocab_size"] == SimpleTokenizer(bpe_path=str(shipped)).vocab_size
    tokenizer = open_clip.get_tokenizer(shapes_clip.MODEL_NAME)
    assert tokenizer.eot_token_id == vocab_size - 1  # open_clip pools the text at the largest id


def test_bpe_merges_errors() -> None:
    with pytest.raises(ValueError, match="at least one word"):
        bpe_merges_for([])
    with pytest.raises(ValueError, match="lower-case letters"):
        bpe_merges_for(["Star"])


# -- training pairs --------------------------------------------------------------------------------
def test_thing_phrase_keeps_the_name_and_only_given_attributes() -> None:
    rng = np.random.default_rng(0)
    phrases = {thing_phrase("star", "red", "small", rng).words for _ in range(64)}
    assert phrases == {"star", "red star", "small star", "small red star"}
    assert {thing_phrase("star", None, "", rng) for _ in range(8)} == {Phrase("star")}


def test_crop_boxes_cover_their_object() -> None:
    box = thing_crop_box((10, 20, 30, 30))
    assert box == pytest.approx((7.0, 12.0, 33.0, 38.0))  # square, 1.3 x the longer side
    rng = np.random.default_rng(0)
    for _ in range(20):
        x1, y1, x2, y2 = thing_crop_box((10, 20, 30, 30), rng)
        assert x2 - x1 == pytest.approx(y2 - y1) and 22 <= x2 - x1 <= 32
        assert x1 < 12 and x2 > 28  # the centre moves by at most 10 % of the side
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:35, 10:30] = True
    x1, y1, x2, y2 = stuff_crop_box(mask)
    assert 10 <= x1 and x2 <= 30 and 5 <= y1 and y2 <= 35
    thin = np.zeros((40, 40), dtype=bool)
    thin[:, :4] = True
    assert stuff_crop_box(thin) is None


def test_crop_images_cuts_and_resizes() -> None:
    images = torch.zeros(2, 3, 16, 16)
    images[1, :, 2:10, 2:10] = 1.0
    crops = crop_images(images, [[], [(4.0, 4.0, 8.0, 8.0), (0.0, 0.0, 16.0, 16.0)]], size=4)
    assert crops.shape == (2, 3, 4, 4)
    torch.testing.assert_close(crops[0], torch.ones(3, 4, 4))
    assert crops[1].mean() == pytest.approx(1 / 4, abs=0.05)
    assert crop_images(images, [[], []], size=4).shape == (0, 3, 4, 4)
    with pytest.raises(ValueError, match="one list per image"):
        crop_images(images, [[]], size=4)
    with pytest.raises(ValueError, match="size: expected a positive int"):
        crop_images(images, [[], []], size=0)


def test_clip_batch_is_consistent_with_the_samples() -> None:
    world = ShapesWorld(SMALL_WORLD)
    batch = make_clip_batch(world, [0, 1, 2], np.random.default_rng(0), crop_size=32)
    samples = [world.sample(i) for i in range(3)]
    n_things = sum(len(s.thing_segments) for s in samples)
    assert batch.images.shape == (3, 3, 64, 64) and batch.captions == [s.caption for s in samples]
    assert len(batch.thing_texts) == n_things and batch.crops.shape[1:] == (3, 32, 32)
    assert len(batch.crop_labels) == len(batch.crops) >= n_things
    assert all(CATEGORIES[int(c)].is_thing for c in batch.crop_labels[:n_things])
    assert not any(CATEGORIES[int(c)].is_thing for c in batch.crop_labels[n_things:])
    for b, s in enumerate(samples):
        k = len(s.segments)
        assert batch.mask_labels[b, :k].tolist() == [g.category_id for g in s.segments]
        assert (batch.mask_labels[b, k:] == -1).all() and not batch.masks[b, k:].any()
    for text, label in zip(batch.thing_texts, batch.crop_labels):
        assert CATEGORIES[int(label)].name in text
    assert [p.words in t for p, t in zip(batch.thing_phrases, batch.thing_texts)] == [True] * n_things
    assert [p.name for p in batch.mask_phrases] == [
        CATEGORIES[int(c)].name for c in batch.mask_labels[batch.mask_labels >= 0]
    ]
    stuff_labels = batch.crop_labels[len(batch.crop_labels) - len(batch.stuff_texts) :]
    assert len(batch.stuff_texts) == len(batch.crops) - n_things
    assert all(CATEGORIES[int(c)].name in t for t, c in zip(batch.stuff_texts, stuff_labels))
    with pytest.raises(ValueError, match="at least one sample index"):
        make_clip_batch(world, [], np.random.default_rng(0))


def test_clip_batch_views_repeat_every_thing_in_order() -> None:
    world = ShapesWorld(SMALL_WORLD)
    one = make_clip_batch(world, [0, 1], np.random.default_rng(0), crop_size=32)
    three = make_clip_batch(world, [0, 1], np.random.default_rng(0), crop_size=32, views=3)
    n_things, n_stuff = len(one.thing_texts), len(one.crops) - len(one.thing_texts)
    assert len(three.thing_texts) == n_things and len(three.crops) == 3 * n_things + n_stuff
    things = one.crop_labels[:n_things]
    torch.testing.assert_close(
        three.crop_labels, torch.cat([things, things, things, one.crop_labels[n_things:]])
    )
    assert not torch.equal(three.crops[:n_things], three.crops[n_things : 2 * n_things])  # jittered anew
    with pytest.raises(ValueError, match="views: expected a positive int"):
        make_clip_batch(world, [0], np.random.default_rng(0), views=0)


def test_clip_batch_keeps_whole_images_of_the_first_samples_only() -> None:
    world = ShapesWorld(SMALL_WORLD)
    every = make_clip_batch(world, [0, 1, 2], np.random.default_rng(0), crop_size=32)
    first = make_clip_batch(world, [0, 1, 2], np.random.default_rng(0), crop_size=32, full_images=1)
    assert first.images.shape[0] == first.masks.shape[0] == len(first.captions) == 1
    torch.testing.assert_close(first.images, every.images[:1])
    assert first.captions == every.captions[:1]
    torch.testing.assert_close(first.crop_labels, every.crop_labels)  # crops from every sample
    for bad in (0, 4):
        with pytest.raises(ValueError, match="full_images: expected an int in"):
            make_clip_batch(world, [0, 1, 2], np.random.default_rng(0), full_images=bad)


# -- losses, evaluation and the recipe -------------------------------------------------------------
def test_running_batch_norm_neither_uses_nor_updates_batch_statistics() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    x = torch.randn(2, 3, 8, 8) * 5 + 3
    before = net[1].running_mean.clone()
    with clip_losses.running_batch_norm(net):
        out = net(x)
        assert not net[1].training
    torch.testing.assert_close(net[1].running_mean, before)
    torch.testing.assert_close(out, net.eval()(x))
    assert net.train()[1].training


def test_name_uniformity_is_lower_for_names_kept_apart() -> None:
    """The text-only term prefers spread class names (and never sees an image or a label)."""
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).train()
    batch = make_clip_batch(ShapesWorld(SMALL_WORLD), [0], np.random.default_rng(0), crop_size=32)
    before = clip_losses.clip_losses(backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN)
    with torch.no_grad():  # collapse every token onto one embedding: the names become identical
        backbone.clip.token_embedding.weight.copy_(backbone.clip.token_embedding.weight[:1].clone())
    merged = clip_losses.clip_losses(backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN)
    assert before["name_uniformity"] < merged["name_uniformity"]


def test_phrase_relations_judge_each_text_by_what_both_texts_state() -> None:
    red_star, star, small_star = Phrase("star", "red"), Phrase("star"), Phrase("star", size="small")
    rows = [red_star, star, Phrase("sand")]
    cols = [star, Phrase("star", "red"), Phrase("star", "blue"), small_star, Phrase("heart"), Phrase("sand")]
    true, false = clip_losses.phrase_relations(rows, cols)
    assert true.tolist() == [
        [True, True, False, False, False, False],  # a red star: "star", "red star" are true of it
        [True, False, False, False, False, False],  # a star of unknown colour: only "star"
        [False, False, False, False, False, True],
    ]
    assert false.tolist() == [
        [False, False, True, False, True, True],  # "small star" unknown: the object's size is not stated
        [False, False, False, False, True, True],  # "red star", "blue star", "small star" unknown
        [True, True, True, True, True, False],
    ]


def test_multi_positive_loss_averages_positives_and_ignores_unknown_pairs() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 5.0, -1.0]])
    pos = torch.tensor([[True, True, False], [False, False, False]])
    neg = torch.tensor([[False, False, True], [True, False, True]])
    rows = logits[0].log_softmax(-1)[:2].mean()
    # columns 0 and 1 have one positive (row 0); column 0's softmax runs over both rows, column 1's
    # over row 0 only (row 1 is unknown to it): log-probability 0
    col0 = logits[:, 0].log_softmax(-1)[0]
    expected = -(rows + (col0 + 0.0) / 2) / 2
    torch.testing.assert_close(clip_losses.multi_positive_loss(logits, pos, neg), expected)
    unknown = torch.tensor([[False, False, False], [False, False, False]])
    torch.testing.assert_close(clip_losses.multi_positive_loss(logits, unknown, neg), torch.tensor(0.0))
    with pytest.raises(ValueError, match="one \\[R, C\\] shape"):
        clip_losses.multi_positive_loss(logits, pos[:1], neg)
    with pytest.raises(ValueError, match="both positive and negative"):
        clip_losses.multi_positive_loss(logits, pos, pos)


def test_phrase_matching_trains_crops_and_segments_on_phrases_of_every_class() -> None:
    """With phrase matching, unseen crops and segments learn from their phrases (not their labels)."""
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).train()
    batch = make_clip_batch(ShapesWorld(SMALL_WORLD), [0, 1], np.random.default_rng(0), crop_size=32, views=2)
    losses = clip_losses.clip_losses(
        backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, phrase_matching=True
    )
    assert {"crop_phrase", "region_phrase"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["region_phrase"] > 0
    (losses["crop_phrase"] + losses["region_phrase"]).backward()
    first = next(backbone.clip.visual.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize(("crop_phrases", "with_head"), [(True, True), (False, False)])
def test_losses_are_finite_and_reach_every_trainable_parameter(crop_phrases: bool, with_head: bool) -> None:
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).train()
    head = torch.nn.Linear(backbone.embed_dim, len(CATEGORIES)) if with_head else None
    batch = make_clip_batch(ShapesWorld(SMALL_WORLD), [0, 1], np.random.default_rng(0), crop_size=32)
    losses = clip_losses.clip_losses(
        backbone,
        batch,
        np.random.default_rng(0),
        unseen_ids=UNSEEN,
        crop_phrases=crop_phrases,
        label_head=head,
    )
    expected = {"caption", "crop_class", "region_class", "name_uniformity"}
    expected |= {"crop_label"} if with_head else set()
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values(), torch.zeros(())).backward()
    no_grad = [n for n, p in backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad
    assert head is None or head.weight.grad is not None


def test_class_name_losses_never_see_the_labels_of_unseen_classes() -> None:
    """The image tower learns unseen classes from captions and phrases only: relabelling every unseen
    crop and segment (as another unseen class) leaves the class-name losses unchanged."""
    world = ShapesWorld(SMALL_WORLD)
    index = next(i for i in range(200) if any(g.category_id in UNSEEN for g in world.sample(i).segments))
    batch = make_clip_batch(world, [index, index + 1], np.random.default_rng(0), crop_size=32)
    order = sorted(UNSEEN)
    relabel = {c: order[(k + 1) % len(order)] for k, c in enumerate(order)}
    relabelled = dataclasses.replace(
        batch,
        crop_labels=batch.crop_labels.clone().apply_(lambda c: relabel.get(c, c)),
        mask_labels=batch.mask_labels.clone().apply_(lambda c: relabel.get(c, c)),
    )
    assert not torch.equal(batch.mask_labels, relabelled.mask_labels)
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).eval()

    head = torch.nn.Linear(backbone.embed_dim, len(CATEGORIES))

    def class_losses(b: ClipBatch, unseen: frozenset[int]) -> list[float]:
        with torch.no_grad():
            losses = clip_losses.clip_losses(
                backbone, b, np.random.default_rng(0), unseen_ids=unseen, label_head=head
            )
        return [losses[k].item() for k in ("crop_class", "region_class", "crop_label")]

    assert class_losses(batch, UNSEEN) == class_losses(relabelled, UNSEEN)
    assert class_losses(batch, frozenset()) != class_losses(relabelled, frozenset())  # labels matter
    with pytest.raises(ValueError, match="unseen_ids: expected category ids"):
        clip_losses.clip_losses(backbone, batch, np.random.default_rng(0), unseen_ids={99})


def test_region_labels_apply_the_label_head_to_seen_segments_only() -> None:
    """``region_labels`` is the label head's cross-entropy on the mask-pooled (unnormalised) segments
    of the whole images, over seen classes only; its gradient reaches the dense map's tower."""
    world = ShapesWorld(SMALL_WORLD)
    index = next(i for i in range(200) if any(g.category_id in UNSEEN for g in world.sample(i).segments))
    batch = make_clip_batch(world, [index, index + 1], np.random.default_rng(0), crop_size=32)
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).eval()
    head = torch.nn.Linear(backbone.embed_dim, len(CATEGORIES))
    losses = clip_losses.clip_losses(
        backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, label_head=head, region_labels=True
    )
    with torch.no_grad():
        dense = backbone(batch.images)["clip_dense"]
        pooled = backbone.pool_masks(dense, batch.masks, normalize=False)
        keep = (batch.mask_labels >= 0) & ~torch.isin(batch.mask_labels, torch.tensor(sorted(UNSEEN)))
        expected = F.cross_entropy(head(pooled[keep]), batch.mask_labels[keep])
    assert bool(torch.isin(batch.mask_labels, torch.tensor(sorted(UNSEEN))).any())  # some are left out
    torch.testing.assert_close(losses["region_label"], expected)
    losses["region_label"].backward()
    assert all(p.grad is not None for p in backbone.clip.visual.trunk.parameters())
    without = clip_losses.clip_losses(
        backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, label_head=head
    )
    assert "region_label" not in without
    with pytest.raises(ValueError, match="region_labels: needs a label_head"):
        clip_losses.clip_losses(
            backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, region_labels=True
        )


def test_region_crop_pulls_each_things_segment_towards_its_own_crops() -> None:
    """``region_crop``: one minus the cosine between a thing's mask-pooled embedding and the mean of its
    crops' embeddings (detached); the segments' things are the first crops' things, in order."""
    world = ShapesWorld(SMALL_WORLD)
    batch = make_clip_batch(world, [0, 1, 2], np.random.default_rng(0), crop_size=32, views=2, full_images=2)
    labels = batch.mask_labels[batch.mask_labels >= 0]
    things = [p for p, c in zip(batch.mask_phrases, labels.tolist()) if CATEGORIES[c].is_thing]
    assert 0 < len(things) < len(batch.thing_phrases)  # the third image's things have crops only
    assert all(a is b for a, b in zip(things, batch.thing_phrases))  # the same objects, in order
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).eval()
    losses = clip_losses.clip_losses(
        backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, region_crop=True
    )
    with torch.no_grad():
        crops = F.normalize(backbone(batch.crops)["clip_global"], dim=-1)
        n = len(batch.thing_phrases)
        target = F.normalize(crops[:n] + crops[n : 2 * n], dim=-1)[: len(things)]
        regions = backbone.pool_masks(backbone(batch.images)["clip_dense"], batch.masks)
        is_thing = torch.tensor([CATEGORIES[c].is_thing for c in labels.tolist()])
        expected = (1 - (regions[batch.mask_labels >= 0][is_thing] * target).sum(-1)).mean()
    torch.testing.assert_close(losses["region_crop"], expected)
    crops_in = batch.crops.clone().requires_grad_()
    images_in = batch.images.clone().requires_grad_()
    again = clip_losses.clip_losses(
        backbone,
        dataclasses.replace(batch, crops=crops_in, images=images_in),
        np.random.default_rng(0),
        unseen_ids=UNSEEN,
        region_crop=True,
    )["region_crop"]
    to_crops, to_images = torch.autograd.grad(again, [crops_in, images_in], allow_unused=True)
    assert to_crops is None and to_images is not None and to_images.abs().sum() > 0  # crops detached
    assert "region_crop" not in clip_losses.clip_losses(
        backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN
    )


def test_losses_run_under_bf16_autocast() -> None:
    """A cheaper step (``bench/clip_step_speed.py``) runs the recipe's losses under bf16 autocast."""
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).train()
    batch = make_clip_batch(ShapesWorld(SMALL_WORLD), [0, 1], np.random.default_rng(0), crop_size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = clip_losses.clip_losses(
            backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, phrase_matching=True
        )
    assert losses["name_uniformity"].dtype == torch.float32
    assert all(torch.isfinite(v) for v in losses.values())


def test_class_names_can_take_their_targets_from_the_phrases() -> None:
    """With ``class_targets="phrases"`` every class's crops and segments meet the class names, judged
    by what their own phrases say: labels never reach the loss, phrases do."""
    world = ShapesWorld(SMALL_WORLD)
    batch = make_clip_batch(world, [0, 1], np.random.default_rng(0), crop_size=32)
    everything_relabelled = dataclasses.replace(
        batch,
        crop_labels=(batch.crop_labels + 1) % len(CATEGORIES),
        mask_labels=torch.where(batch.mask_labels >= 0, (batch.mask_labels + 1) % len(CATEGORIES), -1),
    )
    rephrased = dataclasses.replace(
        batch,
        thing_phrases=[
            p._replace(name="heart" if p.name != "heart" else "star") for p in batch.thing_phrases
        ],
    )
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME, frozen=False).eval()

    def class_losses(b: ClipBatch, targets: str = "phrases") -> list[float]:
        with torch.no_grad():
            losses = clip_losses.clip_losses(
                backbone, b, np.random.default_rng(0), unseen_ids=UNSEEN, class_targets=targets
            )
        return [losses[k].item() for k in ("crop_class", "region_class")]

    assert class_losses(batch) == class_losses(everything_relabelled)
    assert class_losses(batch)[0] != class_losses(rephrased)[0]
    assert class_losses(batch) != class_losses(batch, "labels")
    with pytest.raises(ValueError, match="class_targets: expected 'labels' or 'phrases'"):
        class_losses(batch, "names")


def test_zero_shot_evaluation_counts_and_errors() -> None:
    backbone = OpenCLIPBackbone(shapes_clip.MODEL_NAME)
    world = ShapesWorld(SMALL_WORLD, split="val")
    result = evaluate_zero_shot(backbone, world, num_images=3, crop_size=32, batch_size=2)
    samples = [world.sample(i) for i in range(3)]
    assert result.num_things == sum(len(s.thing_segments) for s in samples)
    assert result.num_segments == sum(len(s.segments) for s in samples)
    assert 0 <= result.thing_top1 <= 100 and set(result.as_dict()) >= {"stuff_top1", "mask_pool_top1"}
    with pytest.raises(ValueError, match="num_images: expected a positive int"):
        evaluate_zero_shot(backbone, world, num_images=0)


@pytest.mark.slow
def test_recipe_writes_weights_that_load_by_path(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "--out",
        str(out),
        "--steps",
        "2",
        "--images-per-step",
        "2",
        "--full-images",
        "1",
        "--val-images",
        "2",
    ]
    assert shapes_clip.main([*argv, "--image-size", "64", "--crop-size", "32", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["val"]["num_things"] > 0
    loaded = OpenCLIPBackbone(shapes_clip.MODEL_NAME, pretrained=out / "shapes.safetensors")
    assert loaded.load_report.ok


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--steps", "0"], "--steps: expected a positive int"),
        (["--image-size", "100"], "multiples of 32"),
        (
            ["--images-per-step", "4", "--full-images", "5"],
            "--full-images: expected an int in \\[0, --images-per-step=4\\]",
        ),
        (["--region-label-weight", "-1"], "--region-label-weight: expected a weight >= 0"),
        (["--region-label-weight", "1", "--no-label-head"], "--region-label-weight: needs the label head"),
        (["--region-crop-weight", "-0.5"], "--region-crop-weight: expected a weight >= 0"),
    ],
)
def test_recipe_option_errors(argv: list[str], match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        shapes_clip.main(["--out", str(tmp_path), *argv])


def test_recipe_runs_on_the_engine_helpers(tmp_path: Path) -> None:
    """The recipe's loop is the engine's (metrics.jsonl, curve points, budget) and writes its weights."""
    import json

    from segblocks.pretrain.shapes_clip import main

    argv = [
        "--steps",
        "2",
        "--images-per-step",
        "2",
        "--full-images",
        "0",
        "--val-images",
        "2",
        "--curve-images",
        "2",
    ]
    assert main([*argv, "--curve-every", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train/loss" in r] == [1]
    assert [r["step"] for r in records if "val/thing_top1" in r] == [
        1,
        2,
        2,
    ]  # two curve points, the final one
    assert len((tmp_path / "curve.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 2
    assert (tmp_path / "shapes.safetensors").is_file()


def test_crop_statistics_leave_batch_norm_to_the_crops() -> None:
    """With ``crop_statistics`` the whole images neither use nor update the running statistics."""
    import copy

    torch.manual_seed(0)
    backbone = OpenCLIPBackbone("shapes-clip-tiny", frozen=False).train()
    batch = make_clip_batch(ShapesWorld(SMALL_WORLD), [0, 1], np.random.default_rng(0), crop_size=32)
    crops_only = copy.deepcopy(backbone)
    with torch.no_grad():
        clip_losses.clip_losses(
            backbone, batch, np.random.default_rng(0), unseen_ids=UNSEEN, crop_statistics=True
        )
        crops_only(batch.crops)
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    reference = [m for m in crops_only.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)
    for m, r in zip(norms, reference):
        torch.testing.assert_close(m.running_mean, r.running_mean)
        torch.testing.assert_close(m.running_var, r.running_var)
