"""OMG-Seg from segblocks blocks (a random-init tiny ConvNeXt CLIP): images, clips and prompts through one
decoder, the location queries' self-attention switch, the OMG classifier's fixed scale and zero
background, the "in the training vocabulary" rule, losses and gradients per query group, every task
of the predictor, clear errors by class of bad input, and the paper-scale parameter counts on the
meta device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segblocks.backbones import register_clip_config
from segblocks.data import CATEGORIES
from segblocks.structures import Batch, Prompts, Targets
from segblocks.zoo import build_omg_seg
from segblocks.zoo.omg_seg import VARIANTS, OMGSeg, OMGSegConfig, get_config, in_training_vocabulary
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor
from tests.backbones.conftest import CONVNEXT_CFG

TINY_CLIP = "segblocks-test-omg-convnext"
register_clip_config(TINY_CLIP, CONVNEXT_CFG, overwrite=True)
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
    location_sine_dim=16,
    clip_model=TINY_CLIP,
)
NAMES = [c.name for c in CATEGORIES]
THINGS = [c.is_thing for c in CATEGORIES]


def tiny(**overrides: object) -> OMGSeg:
    torch.manual_seed(0)
    return build_omg_seg(
        "tiny", vocabulary=NAMES[:6], is_thing=THINGS[:6], clip_pretrained=None, **{**TINY, **overrides}
    )


@pytest.fixture(scope="module")
def model() -> OMGSeg:
    return tiny().eval()


def click(x: float, y: float) -> Prompts:
    return Prompts(points=torch.tensor([[[float(x), float(y)]]]), point_labels=torch.tensor([[1]]))


def test_one_decoder_for_images_clips_and_prompts(model: OMGSeg) -> None:
    images = torch.rand(2, 3, 64, 64)
    out = model(images)
    assert out.mask_logits.shape == (2, 8, 16, 16)
    assert out.class_logits is not None and out.class_logits.shape == (2, 8, 6 + 6 + 1)  # + 6 negatives
    assert out.iou_scores is not None and out.iou_scores.shape == (2, 8)
    assert len(out.aux) == 2
    tubes = model(torch.rand(1, 3, 3, 64, 64))
    assert tubes.mask_logits.shape == (1, 8, 3, 16, 16)
    prompts = [click(10, 20), Prompts(boxes=torch.tensor([[4.0, 4.0, 30.0, 40.0], [0.0, 0.0, 64.0, 64.0]]))]
    located = model(images, prompts)
    assert located.mask_logits.shape == (2, 2, 16, 16)  # padded to the largest prompt count
    assert torch.isfinite(located.mask_logits).all()


def _prompt_zero_masks(m: OMGSeg, prompts: Prompts) -> torch.Tensor:
    with torch.no_grad():
        return m(torch.ones(1, 3, 64, 64) * 0.5, [prompts]).mask_logits[0, 0]


def test_location_queries_attend_only_to_themselves_unless_switched_off() -> None:
    one = click(20, 20)
    two = Prompts(
        points=torch.tensor([[[20.0, 20.0]], [[50.0, 40.0]]]), point_labels=torch.tensor([[1], [1]])
    )
    masked = tiny().eval()
    torch.testing.assert_close(_prompt_zero_masks(masked, one), _prompt_zero_masks(masked, two))
    open_ = tiny(location_self_mask=False).eval()
    open_.load_state_dict(masked.state_dict())
    assert not torch.allclose(_prompt_zero_masks(open_, one), _prompt_zero_masks(open_, two))


def test_point_to_box_conversion_is_explicit_and_configurable() -> None:
    assert get_config("convnext_large").point_box_size == 6.0  # the official 6 x 6 box
    assert tiny().location_encoder.point_box_size == 6.0
    assert tiny(point_box_size=None).location_encoder.point_box_size is None
    with pytest.raises(ValueError, match="point_box_size"):
        get_config("tiny", point_box_size=-1.0)


def test_classifier_has_a_fixed_scale_and_a_zero_background() -> None:
    model = tiny(class_void="zero")  # the official background (the world default learns it)
    out = model(torch.rand(1, 3, 64, 64))
    assert out.class_logits is not None
    assert torch.equal(out.class_logits[..., -1], torch.zeros(1, 8))
    assert out.class_logits[..., :-1].abs().max() <= 100.0 + 1e-4
    assert float(model.classifier.head.scale) == pytest.approx(100.0)
    assert not any("log_scale" in n for n, _ in model.named_parameters())
    assert "text_embeddings" not in model.state_dict()  # rebuilt from the names, never checkpointed


def test_training_vocabulary_rule_matches_synonyms_not_substrings() -> None:
    flags = in_training_vocabulary(
        ["Circle", "red circle", "people", "sofa/couch", "arrow"], ["circle", "person, people", "couch"]
    )
    assert flags.tolist() == [True, False, True, True, False]


def test_losses_per_group_and_gradients_reach_every_trainable_parameter() -> None:
    m = tiny()
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 8:30, 8:30] = True
    masks[1, 30:60, 20:50] = True
    targets = [Targets(masks=masks, labels=torch.tensor([0, 3]))]
    semantic = m.training_step(Batch(images=torch.rand(1, 3, 64, 64), targets=targets))
    assert {
        "semantic/loss_class",
        "semantic/loss_mask",
        "semantic/loss_dice",
        "semantic/loss_objectness",
    } <= set(semantic)
    prompts = [
        Prompts(points=torch.tensor([[[15.0, 15.0]], [[35.0, 45.0]]]), point_labels=torch.tensor([[1], [1]]))
    ]
    location = m.training_step(Batch(images=torch.rand(1, 3, 64, 64), targets=targets, prompts=prompts))
    assert {k.split("/")[1].rsplit("_", 1)[0] if k[-1].isdigit() else k.split("/")[1] for k in location} == {
        "loss_mask",
        "loss_dice",
    }
    tube_targets = [Targets(masks=masks[:, None].expand(-1, 2, -1, -1).clone(), labels=torch.tensor([0, 3]))]
    clips = m.training_step(Batch(images=torch.rand(1, 2, 3, 64, 64), targets=tube_targets))
    total = sum(semantic.values()) + sum(location.values()) + sum(clips.values())
    total.backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(p.grad is None for p in m.clip.parameters())


def test_predictor_runs_every_task(model: OMGSeg) -> None:
    images = torch.rand(2, 3, 64, 64)
    for task, field in (("panoptic", "panoptic"), ("instance", "instance"), ("semantic", "semantic")):
        results = model.predict(images, task=task, vocabulary=NAMES, is_thing=THINGS)
        assert len(results) == 2 and getattr(results[0], field) is not None
    clip = torch.rand(5, 3, 64, 64)
    predictor = OMGSegPredictor(model, window=2)
    assert predictor.predict(clip, task="vps").panoptic.segment_maps.shape == (5, 64, 64)
    assert predictor.predict(list(clip), task="vis").instance is not None
    assert predictor.predict(clip[None], task="vss", classifier="omg").semantic.label_maps.shape == (
        5,
        64,
        64,
    )
    first = torch.zeros(2, 64, 64, dtype=torch.bool)
    first[0, :10, :10] = first[1, 40:, 40:] = True
    assert predictor.predict(clip, task="vos", prompts=Prompts(masks=first)).shape == (2, 5, 64, 64)
    answers = model.predict(images[:1], task="interactive", prompts=click(30, 30))
    assert answers[0].masks.shape == (1, 1, 64, 64)


def test_ensemble_uses_alpha_on_trained_classes_and_beta_on_the_others(model: OMGSeg) -> None:
    predictor = OMGSegPredictor(model, vocabulary=NAMES, is_thing=THINGS)
    assert predictor.vocabulary.seen.tolist() == [True] * 6 + [False] * (len(NAMES) - 6)
    assert (predictor.ensemble.alpha, predictor.ensemble.beta) == (0.6, 1.0)  # world: chosen on a proxy
    assert (OMGSegConfig().alpha, OMGSegConfig().beta) == (0.4, 0.8)  # paper scale: FC-CLIP's


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda m: m.predict(torch.rand(1, 3, 64, 64), task="interactive", prompts=click(80, 10)), "prompts"),
        (
            lambda m: m.predict(
                torch.rand(1, 3, 64, 64),
                task="interactive",
                prompts=Prompts(boxes=torch.tensor([[30.0, 5.0, 10.0, 20.0]])),
            ),
            "boxes",
        ),
        (lambda m: m.predict([torch.rand(3, 64, 64), torch.rand(3, 32, 64)], task="vis"), "frames"),
        (lambda m: m.predict(torch.rand(1, 3, 64, 64), task="depth"), "task"),
        (lambda m: m.predict(torch.rand(1, 3, 64, 64), task="panoptic", vocabulary=[]), "vocabulary"),
        (lambda m: m.predict(torch.rand(1, 3, 64, 64), task="interactive"), "prompts"),
        (lambda m: m.predict(torch.rand(1, 3, 64, 64), classifier="mase"), "classifier"),
    ],
    ids=[
        "prompt-outside-image",
        "box-x2-before-x1",
        "frames-differ",
        "unknown-task",
        "empty-vocabulary",
        "no-prompts",
        "unknown-classifier",
    ],
)
def test_bad_input_names_the_argument(model: OMGSeg, call: object, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call(model)  # type: ignore[operator]


def test_build_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        build_omg_seg("tiny", vocabulary=[], clip_pretrained=None, **TINY)
    with pytest.raises(TypeError, match="vocabulary"):
        build_omg_seg("tiny", vocabulary="circle", clip_pretrained=None, **TINY)
    with pytest.raises(ValueError, match="variant"):
        build_omg_seg("resnet50", vocabulary=["a"])
    with pytest.raises(TypeError, match="unknown OMGSegConfig fields"):
        get_config("tiny", queries=3)


def test_paper_scale_parameter_counts_on_the_meta_device() -> None:
    model = build_omg_seg("convnext_large", vocabulary=NAMES, device="meta")
    counts = model.state_summary()
    cfg = VARIANTS["convnext_large"]
    assert (cfg.num_queries, cfg.dec_layers, cfg.hidden_dim) == (300, 9, 256)
    assert model.clip.output_shape()["res5"].channels == 1536
    # frozen: the whole OpenCLIP ConvNeXt-L (image and text towers); trainable: decoders and heads
    assert 340e6 < counts["frozen"] < 360e6
    assert 20e6 < counts["trainable"] < 22e6


def test_box_regions_stay_in_the_unpadded_image(model: OMGSeg) -> None:
    right_half = Prompts(boxes=torch.tensor([[50.0, 0.0, 100.0, 100.0]]))
    group = model.location_queries([right_half], (100, 100), (128, 128), (32, 32))  # 100 px padded to 128
    assert group.cross_mask is not None
    cols = group.cross_mask[0, 0].any(0).nonzero()[:, 0]
    assert int(cols.min()) == 12 and int(cols.max()) == 24  # x in [50, 100) of 100 px -> cells 12..24 of 25
    assert not group.cross_mask[0, 0, 25:].any()
    assert model(torch.rand(1, 3, 100, 100), [right_half]).mask_logits.shape == (1, 1, 32, 32)


def test_one_task_a_batch_trains_under_ddp(tmp_path: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from segblocks.engine.run import _TrainingStep

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        m = tiny()
        step = DistributedDataParallel(_TrainingStep(m))
        masks = torch.zeros(1, 64, 64, dtype=torch.bool)
        masks[0, 8:30, 8:30] = True
        targets = [Targets(masks=masks, labels=torch.tensor([1]))]
        batches = [
            Batch(images=torch.rand(1, 3, 64, 64), targets=targets),
            Batch(images=torch.rand(1, 3, 64, 64), targets=targets, prompts=[click(15, 15)]),
            Batch(images=torch.rand(1, 3, 64, 64), targets=targets),
        ]
        for batch in batches:  # DDP would refuse the second step if a part were left out of the graph
            losses = step(batch)
            assert "unused_parameters" in losses
            sum(losses.values()).backward()
    finally:
        dist.destroy_process_group()
