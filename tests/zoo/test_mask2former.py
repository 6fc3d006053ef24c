"""Mask2Former from segblocks blocks: it overfits a handful of shapes-world images, gradients reach
every trainable parameter (none reach a frozen backbone), bf16 stays finite, bad inputs are padded or
rejected clearly, empty targets train, open vocabulary works, configurations follow the paper."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from segblocks.backbones import Backbone
from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig, collate_batch
from segblocks.heads import LinearClassHead, OpenVocabClassHead
from segblocks.structures import ShapeSpec, Targets
from segblocks.zoo import build_mask2former
from segblocks.zoo.mask2former import Mask2Former, evaluate, get_config

NAMES = [c.name for c in CATEGORIES]
THINGS = [c.is_thing for c in CATEGORIES]
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
)


class TinyBackbone(Backbone):
    """A four-stage conv net with the backbone contract (res2..res5, output_shape, size_divisibility)."""

    _size_divisibility = 32

    def __init__(self, *, frozen: bool = False) -> None:
        super().__init__(pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0))

        def block(i: int, o: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.GroupNorm(4, o), nn.ReLU())

        self.stages = nn.ModuleList(
            [nn.Sequential(block(3, 16), block(16, 16)), block(16, 32), block(32, 32), block(32, 64)]
        )
        if frozen:
            for p in self.parameters():
                p.requires_grad_(False)

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            "res2": ShapeSpec(16, 4),
            "res3": ShapeSpec(32, 8),
            "res4": ShapeSpec(32, 16),
            "res5": ShapeSpec(64, 32),
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            out[f"res{i + 2}"] = x
        return out


class TextBackbone(TinyBackbone):
    """A tiny backbone that also encodes class names, like a CLIP backbone."""

    def encode_text(self, names: list[str]) -> torch.Tensor:
        g = torch.Generator().manual_seed(len(names))
        return torch.nn.functional.normalize(torch.randn(len(names), 12, generator=g), dim=-1)


def tiny_model(**kw: object) -> Mask2Former:
    torch.manual_seed(0)
    backbone = kw.pop("backbone", None) or TinyBackbone()
    args: dict[str, object] = dict(
        num_classes=len(NAMES), class_names=NAMES, is_thing=THINGS, variant="world"
    )
    args.update(TINY)
    args.update(kw)
    return build_mask2former(backbone, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def batch():
    ds = ShapesDataset(ShapesWorldConfig(image_size=(64, 64), num_things=(1, 2)), split="train", length=4)
    return collate_batch([ds[i] for i in range(4)])


def test_forward_outputs(batch) -> None:
    model = tiny_model()
    out = model(batch.images)
    assert out.mask_logits.shape == (4, 8, 16, 16)
    assert out.class_logits is not None and out.class_logits.shape == (4, 8, len(NAMES) + 1)
    assert len(out.aux) == 2, "dec_layers predictions before the final one"
    assert isinstance(model.class_head, LinearClassHead)


def test_overfits_a_handful_of_images(batch) -> None:
    model = tiny_model()
    untrained = evaluate(model, [batch], tasks=("panoptic",)).pq
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for step in range(50):
        losses = model.losses(model(batch.images), batch.targets, torch.Generator().manual_seed(step))
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert sum(history[-5:]) < 0.6 * sum(history[:5]), history
    trained = evaluate(model, [batch], tasks=("panoptic", "semantic", "instance"))
    assert trained.pq > untrained + 25, (untrained, trained)
    assert trained.miou > 0 and trained.num_images == 4


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one(batch) -> None:
    model = tiny_model(backbone=TinyBackbone(frozen=True))
    # one update moves the zero-initialised deformable offsets, after which every parameter feeds the loss
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        sum(model.losses(model(batch.images), batch.targets).values()).backward()
        opt.step()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("backbone.") for n in trainable)
    no_grad = [n for n, p in trainable.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not no_grad, no_grad
    assert all(p.grad is None for p in model.backbone.parameters())


def test_bf16_autocast_has_no_nan(batch) -> None:
    model = tiny_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch.images)
        losses = model.losses(out, batch.targets)
    assert out.mask_logits.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_indivisible_images_are_padded_and_results_unpadded(batch) -> None:
    model = tiny_model().eval()
    images = batch.images[:2, :, :50, :61]
    out = model(images)
    assert out.mask_logits.shape[-2:] == (16, 16), "padded to 64x64"
    preds = model.predict(images)
    assert preds[0].panoptic is not None and preds[0].panoptic.segment_map.shape == (50, 61)
    assert preds[1].semantic is not None and preds[1].semantic.label_map.shape == (50, 61)
    assert preds[1].instance is not None and preds[1].instance.masks.shape[1:] == (50, 61)
    targets = [
        Targets(masks=t.masks[:, :50, :61], labels=t.labels, is_thing=t.is_thing) for t in batch.targets[:2]
    ]
    losses = model.losses(out, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    strict = tiny_model(pad_inputs=False)
    with pytest.raises(ValueError, match=r"size_divisibility=32 and pad_inputs=False; pad to 64x64"):
        strict(images)


def test_empty_targets_train(batch) -> None:
    model = tiny_model()
    empty = [
        Targets(masks=torch.zeros(0, 64, 64, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64))
    ] * 4
    losses = model.losses(model(batch.images), empty)
    total = sum(losses.values())
    total.backward()
    assert math.isfinite(float(total.detach()))


def test_wrong_targets_raise_clearly(batch) -> None:
    model = tiny_model()
    out = model(batch.images)
    with pytest.raises(TypeError, match="masks: expected a bool dtype"):
        Targets(masks=torch.zeros(1, 64, 64, dtype=torch.uint8), labels=torch.zeros(1, dtype=torch.int64))
    with pytest.raises(TypeError, match="labels: expected an integer dtype"):
        Targets(masks=torch.zeros(1, 64, 64, dtype=torch.bool), labels=torch.zeros(1))
    with pytest.raises(TypeError, match="list of Targets"):
        model.losses(out, batch.targets[0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"targets\[0\]"):
        model.losses(out, [{"masks": None}] * 4)  # type: ignore[list-item]
    bad = [Targets(masks=t.masks, labels=t.labels + 100, is_thing=t.is_thing) for t in batch.targets]
    with pytest.raises(ValueError, match="class ids in"):
        model.losses(out, bad)
    with pytest.raises(TypeError, match="images"):
        model(batch.images.to(torch.uint8))
    with pytest.raises(ValueError, match="images"):
        model(batch.images[:, :1])


def test_open_vocabulary(batch) -> None:
    torch.manual_seed(0)
    vocab = NAMES[:5]
    model = build_mask2former(
        TextBackbone(),
        vocabulary=vocab,
        is_thing=THINGS[:5],
        variant="world",
        **TINY,  # type: ignore[arg-type]
    )
    assert isinstance(model.class_head, OpenVocabClassHead)
    assert model(batch.images).class_logits.shape[-1] == 6  # type: ignore[union-attr]
    assert "text_embeddings" not in model.state_dict(), "rebuilt from the vocabulary, not checkpointed"
    model.set_vocabulary(NAMES, THINGS, torch.randn(len(NAMES), 12))
    assert model(batch.images).class_logits.shape[-1] == len(NAMES) + 1  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="cannot encode text"):
        build_mask2former(TinyBackbone(), vocabulary=vocab, variant="world", **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="width 12"):
        model.set_vocabulary(["a"], [True], torch.randn(1, 7))
    with pytest.raises(TypeError, match="closed-set"):
        tiny_model().set_vocabulary(["a"], [True], torch.randn(1, 12))


def test_fpn_pixel_decoder_variant(batch) -> None:
    model = tiny_model(pixel_decoder="fpn")
    assert model(batch.images).mask_logits.shape == (4, 8, 16, 16)


def test_configs_and_build_errors() -> None:
    paper = get_config("paper")
    assert (paper.hidden_dim, paper.num_queries, paper.dec_layers, paper.ffn_dim) == (256, 100, 9, 2048)
    assert (paper.enc_layers, paper.enc_heads, paper.enc_points, paper.enc_ffn_dim) == (6, 8, 4, 1024)
    assert (paper.num_points, paper.oversample_ratio, paper.importance_sample_ratio) == (12544, 3.0, 0.75)
    assert (paper.class_weight, paper.mask_weight, paper.dice_weight, paper.no_object_weight) == (
        2.0,
        5.0,
        5.0,
        0.1,
    )
    model = build_mask2former(TinyBackbone(), num_classes=133, variant="paper")
    assert len(model.mask_decoder.layers) == 9 and model.query_feat.num_embeddings == 100
    with pytest.raises(ValueError, match="exactly one"):
        build_mask2former(TinyBackbone(), num_classes=3, vocabulary=["a"])
    with pytest.raises(ValueError, match="variant"):
        get_config("huge")
    with pytest.raises(TypeError, match="unknown Mask2FormerConfig fields"):
        get_config("world", hidden=3)
    with pytest.raises(ValueError, match="pixel_decoder"):
        get_config("world", pixel_decoder="bifpn")
    with pytest.raises(ValueError, match="class_names"):
        build_mask2former(TinyBackbone(), num_classes=3, class_names=["a"], variant="world")
    with pytest.raises(TypeError, match="output_shape"):
        build_mask2former(nn.Linear(2, 2), num_classes=3, variant="world")


def test_training_recipe_runs_and_resumes(tmp_path) -> None:
    from segblocks.zoo.mask2former.train import main

    tiny = [f"{k}={v}" for k, v in TINY.items()]
    args = ["--backbone", "regnetx_002", "--image-size", "64", "--batch-size", "2", "--val-images", "2"]
    args += ["--eval-every", "0", "--checkpoint-every", "0", "--out", str(tmp_path), "--set", *tiny]
    assert main([*args, "--steps", "2"]) == 0
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["step"] == 2 and final["num_images"] == 2
    assert main([*args, "--steps", "3", "--resume"]) == 0
    assert json.loads((tmp_path / "final.json").read_text())["step"] == 3
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val/pq" in r] == [2, 3]
    assert all(math.isfinite(r["train/loss"]) for r in records if "train/loss" in r)
