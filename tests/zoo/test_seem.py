"""SEEM in the zoo: the model, its training recipe, evaluation and the interactive session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segblocks.data import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.decoders import ObjectRegions, click_region
from segblocks.structures import Targets
from segblocks.zoo.seem import PromptBatch, build_seem
from segblocks.zoo.seem.evaluate import evaluate_generic, evaluate_interactive, evaluate_referring
from segblocks.zoo.seem.interaction import simulate_next_round
from segblocks.zoo.seem.session import SEEMSession

SIZE = (64, 64)
VOCAB = [c.name for c in CATEGORIES]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_seem("tiny", vocabulary=VOCAB, is_thing=[c.is_thing for c in CATEGORIES], num_points=256)


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return ShapesWorld(ShapesWorldConfig(image_size=SIZE), split="val").sample(0)


def _prompts() -> PromptBatch:
    pos = torch.stack([click_region(10, 12, SIZE), click_region(40, 40, SIZE)])
    neg = torch.zeros_like(pos)
    neg[0] = click_region(50, 5, SIZE)
    return PromptBatch.from_objects(
        [ObjectRegions(positive=pos, negative=neg), None],
        [[None, "the red star"], ["a circle"]],
        SIZE,
    )


def test_one_pass_answers_visual_text_and_composed_prompts(model) -> None:  # type: ignore[no-untyped-def]
    out = model(torch.rand(2, 3, *SIZE), _prompts())
    assert out.generic.class_logits.shape == (2, 24, len(VOCAB) + 1)
    assert out.prompts is not None and out.prompts.mask_logits.shape == (2, 6, 16, 16)
    assert out.selected is not None and out.selected.shape == (2, 2)
    assert out.answers().shape == (2, 2, 16, 16)
    assert len(out.generic.aux) == len(out.prompts.aux) == model.mask_decoder.num_predictions - 1


def test_every_trainable_parameter_gets_a_gradient(model) -> None:  # type: ignore[no-untyped-def]
    model.zero_grad()
    out = model(torch.rand(2, 3, *SIZE), _prompts())
    masks = torch.zeros(2, *SIZE, dtype=torch.bool)
    masks[0, 5:20, 5:20] = True
    masks[1, 30:50, 30:50] = True
    generic = [Targets(masks=masks, labels=torch.tensor([0, 12]), is_thing=torch.tensor([True, False]))] * 2
    prompt_targets = [
        Targets(masks=masks, labels=torch.zeros(2, dtype=torch.long)),
        Targets(masks=masks[:1], labels=torch.zeros(1, dtype=torch.long)),
    ]
    losses = model.losses(out, generic, prompt_targets)
    assert {"object/loss_class", "spatial/loss_mask", "spatial/loss_dice", "spatial/loss_select"} <= set(
        losses
    )
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(p.grad is None for p in model.clip.parameters())  # the frozen CLIP stays frozen


def test_memory_off_drops_the_memory_group(model) -> None:  # type: ignore[no-untyped-def]
    encoding = model.encode_image(torch.rand(2, 3, *SIZE))
    prompts = _prompts()
    prompts.previous[0, 0, 0:30, 0:30] = True
    with torch.no_grad():
        on = model.decode(encoding, prompts, generator=torch.Generator().manual_seed(0)).answers()
        off = model.decode(
            encoding, prompts, use_memory=False, generator=torch.Generator().manual_seed(0)
        ).answers()
    assert not torch.allclose(on, off)


def test_paper_scale_parameter_counts_on_meta() -> None:
    model = build_seem("focal_t", vocabulary=["a", "b"], device="meta")
    summary = model.state_summary()
    assert summary["parts"]["backbone"] == 27_877_392  # timm FocalNet-T (LRF)
    assert model.mask_decoder.dim == 512 and model.num_queries == 101
    assert summary["trainable"] > 60e6


def test_simulated_round_clicks_inside_the_error(sample) -> None:  # type: ignore[no-untyped-def]
    gt = torch.from_numpy(sample.mask(sample.thing_segments[0].id))
    ys, xs = np.nonzero(gt.numpy())
    pos = click_region(int(xs[0]), int(ys[0]), SIZE)[None]
    prompts = PromptBatch.from_objects(
        [ObjectRegions(positive=pos, negative=torch.zeros_like(pos))], [[None]], SIZE
    )
    answers = torch.zeros(
        1, 1, *SIZE, dtype=torch.bool
    )  # nothing found: the next click is positive, in the object
    nxt = simulate_next_round(
        prompts, answers, [Targets(masks=gt[None], labels=torch.zeros(1, dtype=torch.long))]
    )
    added = nxt.positive[0, 0] & ~prompts.positive[0, 0]
    assert added.any() and bool((added & gt).any())
    assert torch.equal(nxt.previous, answers)


def test_evaluation_runs_every_protocol(model, sample) -> None:  # type: ignore[no-untyped-def]
    inter = evaluate_interactive(model, [sample], max_clicks=2)
    assert set(inter) == {"point", "box", "scribble", "polygon", "mask"}
    assert all(1 <= m.noc90 <= 2 and 0 <= m.iou1 <= 100 for m in inter.values())
    for mode in ("text", "visual", "both", "ensemble"):
        assert evaluate_referring(model, [sample], mode=mode).num_expressions == len(sample.referring)
    assert "pq" in evaluate_generic(model, [sample])
    with pytest.raises(ValueError, match="first_prompts"):
        evaluate_interactive(model, [sample], first_prompts=("lasso",))


# ----------------------------------------------------------------------------- the session
def test_session_encodes_once_and_answers_round_after_round(model, sample) -> None:  # type: ignore[no-untyped-def]
    calls = []
    handle = model.backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        session = SEEMSession(model)
        session.set_image(sample.image)
        first = session.prompt(clicks=[(20, 20)])
        second = session.prompt(0, clicks=[(2, 2, False)])
        third = session.prompt(text="the red star", clicks=[(40, 40)])
        fourth = session.prompt(box=(30, 30, 50, 50))
    finally:
        handle.remove()
    assert len(calls) == 1
    assert first.masks.shape == (1, *SIZE) and second.round == 2
    assert third.masks.shape == (2, *SIZE) and fourth.scores.shape == (3,)
    assert torch.equal(
        fourth.probabilities[0], second.probabilities[0]
    )  # an untouched object keeps its answer
    ensemble = SEEMSession(model, composition="ensemble")
    ensemble.set_image(sample.image)
    assert ensemble.prompt(text="the star", clicks=[(30, 30)]).masks.shape == (1, *SIZE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clicks": [(70, 5)]}, r"clicks\[0\]: \(70, 5\) lies outside"),
        ({"stroke": np.zeros(SIZE, bool)}, "stroke: the mask is empty"),
        ({"stroke": np.ones((8, 8), bool)}, "stroke: expected the image's size"),
        ({"clicks": [(5, 5, False)]}, "clicks: a new object needs a positive prompt"),
        ({"text": " ?! "}, "text: expected a text with at least one word"),
        ({"obj": 3, "clicks": [(5, 5)]}, "obj: no object 3"),
        ({}, "prompt: give at least one"),
    ],
    ids=[
        "click-outside",
        "empty-stroke",
        "stroke-of-another-size",
        "negative-only",
        "no-words",
        "unknown-object",
        "nothing",
    ],
)
def test_session_errors_name_the_argument(model, sample, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    session = SEEMSession(model)
    session.set_image(sample.image)
    with pytest.raises(ValueError, match=match):
        session.prompt(**kwargs)


def test_session_needs_an_image(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="image: call set_image"):
        SEEMSession(model).prompt(clicks=[(1, 1)])


# ----------------------------------------------------------------------------- the recipe
def test_train_recipe_three_steps(tmp_path: Path) -> None:
    from segblocks.zoo.seem.train import main

    out = tmp_path / "run"
    code = main(
        [
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--image-size",
            "64",
            "--val-images",
            "1",
            "--threads",
            "1",
            "--eval-clicks",
            "2",
            "--out",
            str(out),
            "--max-rounds",
            "2",
            "--set",
            "num_points=256",
        ]
    )
    assert code == 0
    final = json.loads((out / "final.json").read_text())
    assert final["step"] == 3 and "noc90" in final["metrics"] and "referring_ciou" in final["metrics"]


def test_config_and_prompt_batch_errors() -> None:
    from segblocks.zoo.seem import get_config

    with pytest.raises(ValueError, match="variant: expected one of"):
        get_config("focal_xxl")
    with pytest.raises(TypeError, match="unknown SEEMConfig fields"):
        get_config("tiny", spatial_queries=3)
    with pytest.raises(ValueError, match="memory_per_prompt"):
        get_config("tiny", memory_per_prompt=0)
    empty = ObjectRegions(
        positive=torch.zeros(1, *SIZE, dtype=torch.bool), negative=torch.zeros(1, *SIZE, dtype=torch.bool)
    )
    with pytest.raises(ValueError, match="neither a positive visual prompt nor a text"):
        PromptBatch.from_objects([empty], [[None]], SIZE)
    with pytest.raises(ValueError, match=r"texts\[0\]\[0\]: expected a text with at least one word"):
        PromptBatch.from_objects([None], [["..."]], SIZE)
    with pytest.raises(ValueError, match="regions\\[0\\]: 1 objects but 2 texts"):
        PromptBatch.from_objects([empty], [[None, "a star"]], SIZE)


def test_prompts_of_another_size_are_refused(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="prompts: regions of size"):
        model(torch.rand(2, 3, 32, 32), _prompts())


# ----------------------------------------------------------------------------- where prompts are
def test_position_features_reach_the_answers_and_learn() -> None:
    torch.manual_seed(0)
    model = build_seem(
        "tiny",
        vocabulary=VOCAB,
        is_thing=[c.is_thing for c in CATEGORIES],
        num_points=256,
        position_features=True,
    )
    assert model.pixel_position is not None
    image = torch.rand(1, 3, *SIZE)
    plain = model.pixel_decoder(model.backbone(image)).mask_features
    encoding = model.encode_image(image)
    assert encoding.pixels.mask_features.shape == plain.shape
    torch.testing.assert_close(encoding.pixels.mask_features, plain)  # zero-initialised: starts as without
    click = click_region(10, 12, SIZE)[None]
    prompts = PromptBatch.from_objects(
        [ObjectRegions(positive=click, negative=torch.zeros_like(click))], [[None]], SIZE
    )
    out = model.decode(encoding, prompts)
    masks = torch.zeros(1, 1, *SIZE, dtype=torch.bool)
    masks[0, 0, 5:20, 5:20] = True
    losses = model.losses(out, None, [Targets(masks=masks[0], labels=torch.zeros(1, dtype=torch.long))])
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.pixel_position.parameters())
    with pytest.raises(ValueError, match="position_max_cycles"):
        build_seem("tiny", vocabulary=VOCAB, position_max_cycles=0.0)


def test_dense_memory_starts_as_without_then_reads_the_previous_mask() -> None:
    torch.manual_seed(0)
    model = build_seem("tiny", vocabulary=VOCAB, num_points=256, dense_memory=True)
    assert model.dense_memory is not None and build_seem("tiny", vocabulary=VOCAB).dense_memory is None
    encoding = model.encode_image(torch.rand(2, 3, *SIZE))
    prompts, moved = _prompts(), _prompts()
    moved.previous[0, 0, 0:30, 0:30] = True

    def answers(p: PromptBatch, use_memory: bool = True) -> torch.Tensor:
        with torch.no_grad():
            return model.decode(
                encoding, p, use_memory=use_memory, generator=torch.Generator().manual_seed(0)
            ).prompts.mask_logits  # type: ignore[union-attr]

    # zero-initialised: only the memory tokens see the previous mask, as without the option
    without = build_seem("tiny", vocabulary=VOCAB, num_points=256)
    without.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        reference = without.decode(encoding, moved, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(answers(moved), reference.prompts.mask_logits)  # type: ignore[union-attr]
    torch.nn.init.normal_(model.dense_memory.encoder[-1].weight, std=0.5)
    changed = (answers(moved) - answers(prompts)).abs().amax(dim=(-1, -2))[0]  # [P * k]
    assert bool((changed[:3] > 0).all())  # prompt 0's candidates read their previous mask
    assert not changed[3:].any()  # and no other prompt's
    torch.testing.assert_close(answers(moved, False), answers(prompts, False))  # memory off: ignored


def test_training_batches_draw_every_number_of_rounds() -> None:
    from segblocks.data import ShapesDataset
    from segblocks.zoo.seem.train import collate_seem

    data = ShapesDataset(ShapesWorldConfig(image_size=SIZE), split="train", length=2)
    rng = np.random.default_rng(0)
    rounds = {collate_seem([data[0], data[1]], rng, max_rounds=3).extras["rounds"] for _ in range(40)}
    assert rounds == {0, 1, 2, 3}


def test_simulated_round_adds_a_negative_click_on_a_false_positive(sample) -> None:  # type: ignore[no-untyped-def]
    gt = torch.from_numpy(sample.mask(sample.thing_segments[0].id))
    ys, xs = np.nonzero(gt.numpy())
    pos = click_region(int(xs[len(xs) // 2]), int(ys[len(ys) // 2]), SIZE)[None]
    prompts = PromptBatch.from_objects(
        [ObjectRegions(positive=pos, negative=torch.zeros_like(pos))], [[None]], SIZE
    )
    answers = torch.ones(1, 1, *SIZE, dtype=torch.bool)  # everything: the error is mostly false positives
    nxt = simulate_next_round(
        prompts, answers, [Targets(masks=gt[None], labels=torch.zeros(1, dtype=torch.long))]
    )
    assert torch.equal(nxt.positive, prompts.positive)
    assert nxt.negative[0, 0].any() and not bool((nxt.negative[0, 0] & gt).any())  # outside the object
    assert torch.equal(nxt.previous, answers)  # the round-1 answer is round 2's memory prompt
