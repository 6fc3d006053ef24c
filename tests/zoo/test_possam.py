"""PosSAM from segblocks blocks (random-init tiny SAM and CLIP): training outputs and losses, gradients
reach every trainable parameter and never a frozen one, open-vocabulary prediction with every
classifier for a vocabulary given at call time, clear errors, the paper's parameter counts on the
meta device, the training recipe (loss falls, checkpoint, resume, the four-row JSON) and the
predict-an-image helpers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from segblocks.backbones import register_clip_config
from segblocks.data import CATEGORIES, ClassSplit, ShapesDataset, ShapesWorldConfig, collate_batch
from segblocks.zoo import build_possam
from segblocks.zoo.possam import CLASSIFIERS, VARIANTS, PosSAM, PosSAMPredictor, get_config, seen_flags
from segblocks.zoo.possam.config import WORLD_CLIP_MODEL, WORLD_SAM_MODEL
from segblocks.zoo.possam.evaluate import evaluate
from segblocks.zoo.possam.train import seen_targets, seen_world
from tests.backbones.conftest import CONVNEXT_CFG

TINY_CLIP = "segblocks-test-possam-convnext"
register_clip_config(TINY_CLIP, CONVNEXT_CFG, overwrite=True)  # the backbone tests' tiny ConvNeXt CLIP
TINY = dict(
    hidden_dim=32,
    num_heads=2,
    conv_dim=32,
    mask_dim=32,
    norm_groups=8,
    num_queries=8,
    dec_layers=2,
    enc_layers=1,
    enc_heads=2,
    ffn_dim=64,
    enc_ffn_dim=64,
    num_points=256,
    fpn_channels=32,
    ldp_heads=2,
    ldp_ffn_dim=64,
    ldp_layers=1,
)
TINY_VIT_CLIP = "segblocks-test-possam-vit"
register_clip_config(
    TINY_VIT_CLIP,
    {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    overwrite=True,
)
RANDOM = dict(sam_model="vit_tiny", sam_checkpoint=None, clip_model=TINY_CLIP, clip_pretrained=None)
NAMES = [c.name for c in CATEGORIES]
THINGS = [c.is_thing for c in CATEGORIES]
SPLIT = ShapesWorldConfig().split
SEEN = sorted(SPLIT.seen_ids)


def tiny_possam(**kw: object) -> PosSAM:
    torch.manual_seed(0)
    args: dict[str, object] = dict(
        vocabulary=[NAMES[i] for i in SEEN], is_thing=[THINGS[i] for i in SEEN], **RANDOM, **TINY
    )
    args.update(kw)
    return build_possam("tiny", **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def batch():
    ds = ShapesDataset(ShapesWorldConfig(image_size=(64, 64), num_things=(1, 2)), split="train", length=4)
    return collate_batch([ds[i] for i in range(4)])


def test_forward_outputs_and_losses(batch) -> None:
    model = tiny_possam()
    out = model(batch.images)
    c = len(SEEN)
    assert out.mask_logits.shape == (4, 8, 16, 16)
    assert out.class_logits is not None and out.class_logits.shape == (4, 8, c + 1)
    assert out.iou_scores is not None and out.iou_scores.shape == (4, 8)
    assert len(out.aux) == 2 and all(a.iou_scores is not None for a in out.aux)
    losses = model.losses(out, seen_targets(batch.extras["samples"], SEEN))
    assert {"loss_class", "loss_mask", "loss_dice", "loss_iou", "loss_iou_1"} <= set(losses)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert "text_embeddings" not in model.state_dict(), "rebuilt from class names, not checkpointed"
    assert model.sam.image_encoder.training is False and model.clip.clip.training is False


@pytest.mark.parametrize(("clip_residual", "void"), [(False, "learned"), (True, "learned"), (True, "linear")])
def test_trains_and_gradients_reach_every_trainable_parameter_but_no_frozen_one(
    batch, clip_residual, void
) -> None:
    model = tiny_possam(ldp_clip_residual=clip_residual, ldp_void=void)
    assert model.ldp.clip_residual is clip_residual and model.ldp.class_head.void == void
    targets = seen_targets(batch.extras["samples"], SEEN)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for step in range(12):
        opt.zero_grad()
        losses = model.losses(model(batch.images), targets, torch.Generator().manual_seed(step))
        loss = sum(losses.values())
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        if step == 1:  # after one update the zero-initialised deformable offsets feed the loss too
            trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
            assert trainable and not any(n.startswith(("clip.", "sam.image_encoder.")) for n in trainable)
            no_grad = [n for n, p in trainable.items() if p.grad is None or p.grad.abs().sum() == 0]
            assert not no_grad, no_grad
            assert all(p.grad is None for p in model.clip.parameters())
            assert all(p.grad is None for p in model.sam.image_encoder.parameters())
        opt.step()
        history.append(float(loss.detach()))
    assert sum(history[-3:]) < 0.9 * sum(history[:3]), history


def test_bf16_autocast_has_no_nan_and_losses_stay_fp32(batch) -> None:
    model = tiny_possam()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch.images)
        losses = model.losses(out, seen_targets(batch.extras["samples"], SEEN))
        preds = model.eval().predict(batch.images[:1], vocabulary=NAMES, is_thing=THINGS)
    assert out.mask_logits.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert preds[0].panoptic is not None


def test_a_vit_clip_works_and_its_unused_pyramid_stays_frozen(batch) -> None:
    model = tiny_possam(clip_model=TINY_VIT_CLIP)
    assert model.clip.kind == "vit" and not any(p.requires_grad for p in model.clip.parameters())
    out = model(batch.images)
    sum(model.losses(out, seen_targets(batch.extras["samples"], SEEN)).values()).backward()
    assert all(p.grad is None for p in model.clip.parameters())
    outputs = PosSAMPredictor(model.eval()).infer(batch.images[:1], ["star", "heart"])
    assert outputs.clip_logits.shape == (1, 8, 2)


def test_predict_any_vocabulary_with_every_classifier(batch) -> None:
    model = tiny_possam().eval()
    images = batch.images[:2, :, :50, :61]  # padded to 64x64 inside, results unpadded
    for classifier in CLASSIFIERS:
        preds = model.predict(images, vocabulary=NAMES, is_thing=THINGS, classifier=classifier)
        assert len(preds) == 2
        assert preds[0].panoptic is not None and preds[0].panoptic.segment_map.shape == (50, 61)
        assert preds[1].semantic is not None and preds[1].semantic.label_map.shape == (50, 61)
        assert preds[1].instance is not None and preds[1].instance.masks.shape[1:] == (50, 61)
        assert int(preds[0].semantic.label_map.max()) < len(NAMES)  # type: ignore[union-attr]
    predictor = PosSAMPredictor(model, classifier="ldp")
    outputs = predictor.infer(images, ["a red star", "sky"])
    assert outputs.clip_logits.shape == (2, 8, 2) and outputs.ldp_logits.shape == (2, 8, 3)
    assert outputs.vocabulary.seen.tolist() == [False, True]
    for classifier in CLASSIFIERS:
        probs = predictor.classify(outputs, classifier).softmax(-1)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 8))
    torch.testing.assert_close(predictor.classify(outputs), outputs.ldp_logits)  # the predictor's default
    predictor.set_vocabulary(["star", "dog"], [True, True])
    assert predictor.vocabulary.names == ("star", "dog") and predictor.vocabulary.text_embeddings.shape == (
        2,
        24,
    )
    preds = predictor.predict(images, tasks=("semantic",))
    assert int(preds[0].semantic.label_map.max()) < 2  # type: ignore[union-attr]
    assert model(batch.images).class_logits.shape[-1] == len(SEEN) + 1, "training keeps its vocabulary"  # type: ignore[union-attr]


def test_seen_flags_match_names_and_synonyms() -> None:
    flags = seen_flags(["Star", "heart", "dog, sky", "grass"], ["star", "sky", "grass"])
    assert flags.tolist() == [True, False, True, True]
    vocab = PosSAMPredictor(tiny_possam()).encode_vocabulary(NAMES, THINGS)
    assert [n for n, s in zip(NAMES, vocab.seen.tolist()) if not s] == sorted(SPLIT.unseen, key=NAMES.index)


def test_bad_inputs_raise_clearly(batch) -> None:
    model = tiny_possam()
    with pytest.raises(ValueError, match="classifier: expected one of"):
        model.predict(batch.images, classifier="vote")
    with pytest.raises(TypeError, match="one string"):
        model.predict(batch.images, vocabulary="star,sky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is_thing: expected 2 flags"):
        model.predict(batch.images, vocabulary=["star", "sky"], is_thing=[True])
    with pytest.raises(ValueError, match="class_names: expected non-empty"):
        model.predict(batch.images, vocabulary=["star", " "])
    with pytest.raises(ValueError, match="images"):
        model(batch.images[:, :1])
    with pytest.raises(TypeError, match="images"):
        model(batch.images.to(torch.uint8))
    with pytest.raises(ValueError, match=r"size_divisibility=32 and pad_inputs=False; pad to 64x64"):
        tiny_possam(pad_inputs=False)(batch.images[:, :, :50, :61])
    with pytest.raises(TypeError, match="list of Targets"):
        model.losses(model(batch.images), batch.targets[0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variant: expected one of"):
        get_config("vit_g")
    with pytest.raises(TypeError, match="unknown PosSAMConfig fields"):
        get_config("tiny", ldp_width=3)
    with pytest.raises(ValueError, match="num_heads: 5 does not divide"):
        tiny_possam(ldp_heads=5)
    parts = dict(
        sam=model.sam,
        clip=model.clip,
        pixel_decoder=model.pixel_decoder,
        mask_decoder=model.mask_decoder,
        iou_head=model.iou_head,
        ldp=model.ldp,
        criterion=model.criterion,
        num_queries=8,
        vocabulary=model.train_vocabulary,
    )
    with pytest.raises(ValueError, match="classifier: expected one of"):
        PosSAMPredictor(model, classifier="vote")
    with pytest.raises(TypeError, match="sam: expected a SAMBackbone"):
        PosSAM(**{**parts, "sam": torch.nn.Identity()})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clip: expected a OpenCLIPBackbone"):
        PosSAM(**{**parts, "clip": model.sam})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="vocabulary: expected a Vocabulary"):
        PosSAM(**{**parts, "vocabulary": ["star"]})  # type: ignore[arg-type]


def test_configs_follow_the_paper_and_world_names_are_configurable() -> None:
    paper = get_config("vit_b")
    assert (paper.class_weight, paper.mask_weight, paper.iou_weight) == (2.0, 5.0, 1.0)
    assert (paper.alpha, paper.beta, paper.hidden_dim, paper.mask_dim, paper.fpn_channels) == (
        0.4,
        0.8,
        256,
        256,
        256,
    )
    assert [VARIANTS[v].sam_model for v in ("vit_b", "vit_l", "vit_h")] == ["vit_b", "vit_l", "vit_h"]
    assert VARIANTS["vit_h"].clip_model == "convnext_large_d_320"
    tiny = get_config("tiny")
    assert (tiny.sam_model, tiny.sam_checkpoint) == (WORLD_SAM_MODEL, "shapes")
    assert (tiny.clip_model, tiny.clip_pretrained) == (WORLD_CLIP_MODEL, "shapes")


@pytest.mark.parametrize(("variant", "frozen"), [("vit_b", 441.4e6), ("vit_l", 660.0e6), ("vit_h", 988.7e6)])
def test_paper_parameter_counts_on_the_meta_device(variant: str, frozen: float) -> None:
    model = build_possam(variant, vocabulary=["cat", "dog"], device="meta")
    counts = model.state_summary()
    assert abs(counts["frozen"] - frozen) / frozen < 0.002, counts
    assert abs(counts["trainable"] - 51.5e6) / 51.5e6 < 0.15, counts
    assert next(model.parameters()).device.type == "meta"


def test_evaluate_reports_every_classifier(batch) -> None:
    model = tiny_possam()
    predictor = PosSAMPredictor(model, vocabulary=NAMES, is_thing=THINGS)
    results = evaluate(predictor, [batch])
    assert sorted(results) == sorted(CLASSIFIERS)
    for m in results.values():
        assert m.num_images == 4 and 0.0 <= m.miou <= 100.0
        assert set(m.as_dict()) >= {"pq", "pq_seen", "pq_unseen", "sq", "rq", "miou"}
    with pytest.raises(ValueError, match="classifiers"):
        evaluate(predictor, [batch], classifiers=("vote",))


def recipe_args(tmp_path) -> list[str]:
    tiny = [f"{k}={v}" for k, v in TINY.items()]
    args = ["--sam-model", "vit_tiny", "--sam-checkpoint", "none", "--clip-model", TINY_CLIP]
    args += ["--clip-pretrained", "none", "--image-size", "64", "--batch-size", "2", "--val-images", "2"]
    args += ["--lr", "2e-3", "--warmup-steps", "0", "--clip-grad", "0", "--log-every", "1"]
    return [*args, "--eval-every", "0", "--checkpoint-every", "0", "--out", str(tmp_path), "--set", *tiny]


def test_training_recipe_runs_resumes_and_writes_the_ablation(tmp_path) -> None:
    from segblocks.zoo.possam.train import main

    args = recipe_args(tmp_path)
    assert main([*args, "--steps", "8"]) == 0
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["step"] == 8 and sorted(final["classifiers"]) == sorted(CLASSIFIERS)
    for row in final["classifiers"].values():
        assert {"pq", "pq_seen", "pq_unseen", "sq", "rq", "miou"} <= set(row) and row["num_images"] == 2
    assert sorted(final["unseen"]) == sorted(SPLIT.unseen)
    assert sorted((tmp_path / "checkpoints").iterdir())[-1].name == "step_00000008"
    assert main([*args, "--steps", "9", "--resume"]) == 0
    assert json.loads((tmp_path / "final.json").read_text())["step"] == 9
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r["train/loss"] for r in records if "train/loss" in r]
    assert all(math.isfinite(v) for v in train) and len(train) == 9
    assert sum(train[-3:]) < sum(train[:3]), train
    assert [r["step"] for r in records if "val/mase/pq" in r] == [8, 9]


def test_recipe_trains_on_another_split(tmp_path, capsys) -> None:
    from segblocks.zoo.possam.predict import load_possam
    from segblocks.zoo.possam.train import main

    proxy = ClassSplit().proxy()
    assert main([*recipe_args(tmp_path), "--steps", "1", "--unseen-classes", ",".join(proxy.unseen)]) == 0
    assert sorted(json.loads((tmp_path / "final.json").read_text())["unseen"]) == sorted(proxy.unseen)
    seen = tuple(c.name for c in CATEGORIES if c.id in proxy.seen_ids)
    assert load_possam(weights=tmp_path).train_vocabulary.names == seen and len(seen) == 10
    with pytest.raises(SystemExit):
        main([*recipe_args(tmp_path), "--unseen-classes", "heart,dragon"])
    assert "--unseen-classes: unknown class name 'dragon'" in capsys.readouterr().err


def test_a_checkpoint_keeps_the_ldp_options(tmp_path) -> None:
    from segblocks.zoo.possam.predict import load_possam
    from segblocks.zoo.possam.train import main

    assert main([*recipe_args(tmp_path), "ldp_clip_residual=true", "ldp_void=linear", "--steps", "1"]) == 0
    model = load_possam(weights=tmp_path)  # the recipe's args end in --set, which the options join
    assert model.ldp.clip_residual and model.config is not None and model.config.ldp_clip_residual
    assert model.config.ldp_void == "linear" and model.ldp.class_head.void_linear is not None


def test_a_query_void_reads_the_decoders_queries(batch) -> None:
    model = tiny_possam(ldp_void="query")
    head = model.ldp.class_head
    assert head.void_reads_input and head.void_linear is not None
    assert head.void_linear.in_features == model.mask_decoder.dim
    with torch.no_grad():
        head.void_linear.weight.normal_()
    out = model(batch.images)
    expected = out.query_embeddings @ head.void_linear.weight[0] + head.void_linear.bias
    torch.testing.assert_close(out.class_logits[..., -1], expected)
    targets = seen_targets(batch.extras["samples"], SEEN)
    model.losses(out, targets, torch.Generator().manual_seed(0))["loss_class"].backward()
    assert model.query_feat.weight.grad is not None, "the void's loss reaches the decoder's queries"


def test_config_rejects_an_unknown_ldp_void_or_iou_unmatched_target_or_a_negative_weight() -> None:
    from segblocks.zoo.possam.config import get_config

    with pytest.raises(ValueError, match=r"ldp_void: expected one of \('learned', 'linear', 'query'\)"):
        get_config("tiny", ldp_void="zero")
    with pytest.raises(ValueError, match="iou_unmatched_weight: expected a non-negative value"):
        get_config("tiny", iou_unmatched_weight=-0.5)
    with pytest.raises(ValueError, match="iou_unmatched_target: expected one of"):
        get_config("tiny", iou_unmatched_target="best")


def test_iou_unmatched_weight_and_target_reach_the_criterion(batch) -> None:
    best = tiny_possam()  # the world-scale default: every query towards its best segment
    assert (
        best.criterion.iou_unmatched_weight == 1.0 and best.criterion.iou_unmatched_target == "best_segment"
    )
    model = tiny_possam(iou_unmatched_target="zero")
    assert model.criterion.iou_unmatched_weight == 1.0 and model.criterion.iou_unmatched_target == "zero"
    targets = seen_targets(batch.extras["samples"], SEEN)
    out = model(batch.images)
    plain = tiny_possam(iou_unmatched_weight=0.0)  # the same criterion but for the option
    with_unmatched = model.losses(out, targets, torch.Generator().manual_seed(0))["loss_iou"]
    without = plain.losses(out, targets, torch.Generator().manual_seed(0))["loss_iou"]
    assert float(with_unmatched) > float(without), "unmatched queries add their squared IoU"


def test_seen_world_draws_no_unseen_class() -> None:
    world = ShapesWorldConfig(image_size=(64, 64), seed=3)
    seen = seen_world(world)
    assert seen.split == world.split and seen.image_size == world.image_size
    unseen_ids = world.split.unseen_ids
    labels = {
        int(v) for i in range(40) for v in ShapesDataset(seen, split="train", length=40)[i].targets.labels
    }
    assert labels and not labels & unseen_ids
    assert labels == set(world.split.seen_ids) or len(labels) >= 10  # the seen classes still appear
    everything = {
        int(v) for i in range(40) for v in ShapesDataset(world, split="train", length=40)[i].targets.labels
    }
    assert everything & unseen_ids  # the unrestricted world does draw them
    with pytest.raises(ValueError, match="stuff_classes"):
        seen_world(ShapesWorldConfig(stuff_classes=("sky", "grass", "sand"), num_stuff_regions=(1, 3)))


def test_predict_image_and_overlay(tmp_path, batch) -> None:
    from segblocks.zoo.possam.predict import load_possam, predict_image, write_overlay

    image = tmp_path / "shapes.png"
    Image.fromarray((batch.images[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(image)
    model = tiny_possam().eval()
    result = predict_image(image, ["star", "sky", "grass"], model=model, classifier="geometric")
    assert result.segment_map.shape == (64, 64)
    out = write_overlay(
        image, result, tmp_path / "overlay.png", class_names=["star", "sky", "grass"], scale=2
    )
    width, height = Image.open(out).size
    assert width >= 128 and height > 128, "the 2x drawing with its legend below"
    # a checkpoint of the recipe carries the config, the training vocabulary and the frozen weights
    from segblocks.zoo.possam.train import main

    assert main([*recipe_args(tmp_path / "run"), "--steps", "1"]) == 0
    loaded = load_possam(weights=tmp_path / "run")
    assert loaded.train_vocabulary.names == tuple(NAMES[i] for i in SEEN)
    assert isinstance(predict_image(image, ["star", "dog"], model=loaded).segment_map, torch.Tensor)
    with pytest.raises(FileNotFoundError, match="no such image"):
        predict_image(tmp_path / "missing.png", ["star"], model=model)


def _shipped_world_models() -> bool:
    from segblocks.backbones import find_weights

    return all(
        find_weights(name, tag) is not None
        for name, tag in ((WORLD_SAM_MODEL, "shapes"), (WORLD_CLIP_MODEL, "shapes"))
    )


@pytest.mark.skipif(not _shipped_world_models(), reason="the shipped tiny SAM and CLIP are not installed")
def test_world_scale_uses_the_shipped_tiny_models_by_default(batch) -> None:
    model = build_possam("tiny", vocabulary=[NAMES[i] for i in SEEN], is_thing=[THINGS[i] for i in SEEN])
    assert model.sam.model_name == WORLD_SAM_MODEL and model.clip.model_name == WORLD_CLIP_MODEL
    assert model.sam.load_report.source != "random init"
    preds = model.eval().predict(batch.images[:1], vocabulary=NAMES, is_thing=THINGS)
    assert preds[0].panoptic is not None and preds[0].panoptic.segment_map.shape == (64, 64)
