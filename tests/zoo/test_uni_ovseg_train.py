"""``segblocks train uni-ovseg``: both stages in one command (3-step smoke run), and the unpaired data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from segblocks.cli import main as cli_main
from segblocks.data import ShapesWorldConfig
from segblocks.structures import Targets
from segblocks.zoo.uni_ovseg.data import (
    ImageMaskDataset,
    ImageMaskPair,
    ImageTextDataset,
    check_unpaired,
    collate_image_mask,
    collate_image_text,
    mask_targets,
    stage1_prompts,
)

WORLD = ShapesWorldConfig(image_size=(64, 64))


def test_two_stage_smoke_run_writes_metrics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = cli_main(
        [
            "train", "uni-ovseg", "--image-size", "64", "--batch-size", "2", "--steps", "6", "--stop-at-step", "3",
            "--align-steps", "3", "--align-batch-size", "2", "--train-images", "8", "--text-images", "8",
            "--val-images", "1", "--threads", "1", "--warmup-steps", "1", "--log-every", "1",
            "--checkpoint-every", "0", "--out", str(out),
            "--set", "dec_layers=1", "enc_layers=1", "num_points=128", "grid_size=2", "align_grid_size=2",
            "train_points=2", "train_boxes=1", "align_min_similarity=0.0",
        ]
    )  # fmt: skip
    assert code == 0
    final = json.loads((out / "final.json").read_text())
    assert final["stage1_steps"] == 3 and final["stage2_steps"] == 3
    assert 0.0 <= final["open_vocab"]["miou"] <= 100.0 and 0.0 <= final["prompt"]["box_miou"] <= 100.0
    records = [json.loads(line) for line in (out / "stage2" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train/loss_align" in r]
    assert train and all(np.isfinite(r["train/loss_align"]) for r in train)
    assert all("train/pairs" in r and "train/skipped" in r for r in train)

    # one command = stage 1, then stage 2 alone on stage 1's checkpoint: the same adapter, bit for bit
    stage1 = next((out / "stage1" / "checkpoints").glob("**/model.safetensors"))
    split = tmp_path / "split"
    argv = ["train", "uni-ovseg", "--image-size", "64", "--align-steps", "3", "--align-batch-size", "2",
            "--train-images", "8", "--text-images", "8", "--val-images", "1", "--threads", "1",
            "--checkpoint-every", "0", "--skip-stage1", "--init", str(stage1), "--out", str(split),
            "--set", "dec_layers=1", "enc_layers=1", "num_points=128", "grid_size=2", "align_grid_size=2",
            "train_points=2", "train_boxes=1", "align_min_similarity=0.0"]  # fmt: skip
    assert cli_main(argv) == 0
    one, two = (
        load_file(next((run / "stage2" / "checkpoints").glob("**/model.safetensors"))) for run in (out, split)
    )
    adapter = [k for k in one if k.startswith("adapter.") and "lora" in k]
    assert adapter and all(torch.equal(one[k], two[k]) for k in one)
    assert any(bool(one[k].abs().sum() > 0) for k in adapter if k.endswith("lora_B"))  # it trained

    # stage 2 alone on the stage-1 weights (the ablations), with the clean captions and one input size
    again = tmp_path / "align_only"
    argv = ["train", "uni-ovseg", "--image-size", "64", "--align-steps", "2", "--align-batch-size", "2",
            "--train-images", "8", "--text-images", "8", "--val-images", "1", "--threads", "1",
            "--out", str(again), "--caption", "clean", "--no-ensemble", "--skip-stage1", "--init", str(stage1),
            "--set", "dec_layers=1", "enc_layers=1", "num_points=128", "grid_size=2", "align_grid_size=2"]  # fmt: skip
    assert cli_main(argv) == 0
    final = json.loads((again / "final.json").read_text())
    assert final["stage1_steps"] == 0 and final["stage2_steps"] == 2 and final["caption"] == "clean"
    assert cli_main([*argv[:-12], "--skip-stage1"]) == 2  # needs --init
    assert cli_main([*argv, "--stop-at-step", "0"]) == 2


def test_the_two_stages_never_share_an_image() -> None:
    masks = ImageMaskDataset(WORLD, start=0, length=4)
    texts = ImageTextDataset(WORLD, start=4, length=4, caption="clean")
    check_unpaired(masks, texts)
    masks[1], texts[0]
    check_unpaired(masks, texts)
    with pytest.raises(ValueError, match="both masks and texts"):
        check_unpaired(masks, ImageTextDataset(WORLD, start=2, length=4))
    sneaky = ImageTextDataset(WORLD, start=4, length=4)
    sneaky.served.add(1)  # as if index 1 had been served with its caption
    with pytest.raises(ValueError, match="served with both"):
        check_unpaired(masks, sneaky)
    with pytest.raises(ValueError, match="same world"):
        check_unpaired(
            masks, ImageTextDataset(ShapesWorldConfig(image_size=(64, 64), seed=1), start=8, length=2)
        )
    # the examples themselves carry only their own half
    assert not hasattr(masks[0], "caption") and not hasattr(texts[0], "targets")


def test_stage1_data_masks_prompts_and_eligibility() -> None:
    ds = ImageMaskDataset(WORLD, start=0, length=2)
    sample = ds.world.sample(0)
    t = mask_targets(sample)
    assert len(t) == len(sample.segments) + int(
        np.asarray(sample.part_masks).reshape(len(sample.thing_segments), -1).any(1).sum()
    )
    prompts, pe, be = stage1_prompts(t, np.random.default_rng(0), num_points=4, num_boxes=2)
    assert prompts.points is not None and prompts.points.shape == (4, 1, 2) and prompts.boxes is not None
    for p, (x, y) in enumerate(prompts.points[:, 0].tolist()):
        assert pe[p].tolist() == t.masks[:, int(y), int(x)].tolist()  # the masks containing the point
    assert not pe[4:].any() and be[4:].sum(1).tolist() == [1, 1] and not be[:4].any()
    with pytest.raises(ValueError, match="at least one mask"):
        stage1_prompts(
            Targets(masks=torch.zeros(0, 8, 8, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64)),
            np.random.default_rng(0),
            num_points=1,
            num_boxes=0,
        )
    empty = ImageMaskPair(
        image=torch.zeros(3, 64, 64),
        targets=Targets(
            masks=torch.zeros(0, 64, 64, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64)
        ),
        index=99,
    )
    batch = collate_image_mask([ds[0], empty], num_points=2, num_boxes=1)
    assert len(batch) == 1  # the image without masks is skipped (and logged)
    with pytest.raises(ValueError, match="no image"):
        collate_image_mask([empty], num_points=2, num_boxes=1)


def test_stage2_data_parses_entities_and_skips_captions_without_one() -> None:
    texts = ImageTextDataset(WORLD, start=10, length=3, caption="noisy")
    batch = collate_image_text([texts[i] for i in range(3)])
    assert batch.targets is None and len(batch.extras["entities"]) == 3
    with pytest.raises(ValueError, match="caption"):
        ImageTextDataset(WORLD, start=0, length=1, caption="llava")


def test_alignment_pairs_masks_with_entities_and_trains_only_the_adapter() -> None:
    from segblocks.zoo import build_uni_ovseg

    torch.manual_seed(0)
    model = build_uni_ovseg("tiny", dec_layers=1, enc_layers=1, align_min_similarity=0.0)
    texts = ImageTextDataset(ShapesWorldConfig(image_size=(128, 128)), start=0, length=2, caption="clean")
    pairs = [texts[i] for i in range(2)]
    world = texts.world
    masks = [world.sample(p.index).to_targets().masks for p in pairs]  # stand-ins for predicted masks
    images = torch.stack([p.image for p in pairs])
    model.zero_grad()
    losses, stats = model.alignment_losses(images, masks, [p.entities for p in pairs])
    assert stats["pairs"] > 0 and stats["skipped"] == 0 and 0.0 < float(losses["loss_align"].detach()) < 2.0
    losses["loss_align"].backward()
    grads = {n: p.grad for n, p in model.adapter.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    # at initialisation B = 0, so only B gets a non-zero gradient (LoRA's usual start)
    assert all(bool(g.abs().sum() > 0) for n, g in grads.items() if g is not None and n.endswith("lora_B"))
    others = [n for n, p in model.named_parameters() if p.grad is not None and not n.startswith("adapter.")]
    assert others == []


def test_contrastive_alignment_classifies_regions_among_the_batch_entities() -> None:
    from segblocks.losses import region_text_alignment_loss
    from segblocks.zoo import build_uni_ovseg

    torch.manual_seed(0)
    texts = ImageTextDataset(ShapesWorldConfig(image_size=(128, 128)), start=0, length=3, caption="clean")
    pairs = [texts[i] for i in range(3)]
    masks = [texts.world.sample(p.index).to_targets().masks for p in pairs]
    images = torch.stack([p.image for p in pairs])
    entities = [p.entities for p in pairs]
    batch_names = sorted({n for names in entities for n in names})
    out = {}
    for kind in ("pull", "contrastive"):
        model = build_uni_ovseg("tiny", dec_layers=1, enc_layers=1, align_min_similarity=0.0, align_loss=kind)
        out[kind] = model.alignment_losses(images, masks, entities)
    (pull, pull_stats), (contrastive, stats) = out["pull"], out["contrastive"]
    assert stats == pull_stats and stats["batch_entities"] == len(batch_names) > max(map(len, entities))
    # one image alone: its own names are the candidates; with B = 0 the adapted regions are the
    # frozen ones, so the loss is the cross-entropy recomputed here at the CLIP's temperature
    model.zero_grad()
    names = sorted(set(entities[0]))
    vocab = model.entity_embeddings(names)
    frozen = model.region_embeddings(images[:1], masks[0][None], model.config.ensemble_sizes, adapted=False)[
        :, 0
    ]
    own = torch.tensor([names.index(n) for n in entities[0]])
    match = model.mask_text_matcher(frozen, vocab[own])
    regions = model.region_embeddings(images[:1], masks[0][None], (128,), adapted=False)[0, 0]
    one = region_text_alignment_loss(
        regions[match.region_idx],
        vocab,
        own[match.entity_idx],
        kind="contrastive",
        temperature=1 / float(model.clip.logit_scale),
    )
    single, _ = model.alignment_losses(images[:1], masks[:1], entities[:1])
    assert float(single["loss_align"].detach()) == pytest.approx(float(one.detach().mean()), rel=1e-4)
    contrastive["loss_align"].backward()
    grads = [p.grad for n, p in model.adapter.named_parameters() if n.endswith("lora_B")]
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads)
    assert float(contrastive["loss_align"].detach()) > 0 and float(pull["loss_align"].detach()) > 0


def test_alignment_skips_images_without_entities_or_masks() -> None:
    from segblocks.zoo import build_uni_ovseg

    model = build_uni_ovseg("tiny", dec_layers=1, enc_layers=1)
    images = torch.rand(2, 3, 64, 64)
    masks = [torch.ones(1, 64, 64, dtype=torch.bool), torch.zeros(0, 64, 64, dtype=torch.bool)]
    losses, stats = model.alignment_losses(images, masks, [[], ["circle"]])
    assert stats["skipped"] == 2 and stats["pairs"] == 0
    losses["loss_align"].backward()  # a zero loss that still reaches the adapter (no crash)
    with pytest.raises(ValueError, match="entries"):
        model.alignment_losses(images, masks[:1], [["circle"]])
