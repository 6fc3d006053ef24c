"""SEEM's click history: every click is marked, so the visual sampler can keep its share of points.

A correction click added to a large first prompt (polygon, scribble, circle, box, mask) used to be ORed
into that region and drew about one sampled point of 128; these tests pin that training, evaluation
and the session mark every click, and that the model samples the marked clicks as regions of their own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorld, ShapesWorldConfig
from segblocks.decoders import ObjectRegions, click_region
from segblocks.metrics.clicks import Click
from segblocks.structures import Targets
from segblocks.zoo.seem import PromptBatch, build_seem, get_config
from segblocks.zoo.seem.interaction import add_click, simulate_next_round
from segblocks.zoo.seem.session import SEEMSession

SIZE = (64, 64)
VOCAB = [c.name for c in CATEGORIES]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_seem(
        "tiny",
        vocabulary=VOCAB,
        is_thing=[c.is_thing for c in CATEGORIES],
        num_points=256,
        separate_clicks=True,
    )


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return ShapesWorld(ShapesWorldConfig(image_size=SIZE), split="val").sample(0)


def _large_prompt(sample) -> tuple[PromptBatch, torch.Tensor]:  # type: ignore[no-untyped-def]
    gt = torch.from_numpy(sample.mask(sample.thing_segments[0].id))
    rows = torch.nonzero(gt)[:, 0]
    region = gt.clone()[None]
    region[0, int(rows.float().median()) :] = False  # a stroke over the object's top half, not a click
    prompts = PromptBatch.from_objects(
        [ObjectRegions(positive=region, negative=torch.zeros_like(region))], [[None]], SIZE
    )
    return prompts, gt


def test_simulated_clicks_are_marked(sample) -> None:  # type: ignore[no-untyped-def]
    prompts, gt = _large_prompt(sample)
    assert prompts.clicks is None
    answers = torch.zeros(1, 1, *SIZE, dtype=torch.bool)
    nxt = simulate_next_round(
        prompts, answers, [Targets(masks=gt[None], labels=torch.zeros(1, dtype=torch.long))]
    )
    assert nxt.clicks is not None and int(nxt.clicks.sum()) == 9  # the new 3 x 3 click, nothing of the region
    added = nxt.positive[0, 0] & ~prompts.positive[0, 0]
    assert bool((nxt.clicks[0, 0] & ~added & ~prompts.positive[0, 0]).sum() == 0)
    again = simulate_next_round(
        nxt, torch.ones_like(answers), [Targets(masks=gt[None], labels=torch.zeros(1, dtype=torch.long))]
    )
    assert again.clicks is not None and int(again.clicks.sum()) == 18  # the history is kept


def test_the_model_samples_a_correction_click_inside_a_large_prompt(model, sample) -> None:  # type: ignore[no-untyped-def]
    region = torch.zeros(1, *SIZE, dtype=torch.bool)
    region[0, 2:42, 2:42] = True  # a 1,600-pixel first prompt
    prompts = PromptBatch.from_objects(
        [ObjectRegions(positive=region, negative=torch.zeros_like(region))], [[None]], SIZE
    )
    clicks = click_region(20, 20, SIZE)[None, None]
    marked = PromptBatch(
        positive=prompts.positive,
        negative=prompts.negative,
        previous=prompts.previous,
        texts=prompts.texts,
        valid=prompts.valid,
        clicks=clicks,
    )
    model.visual_sampler.num_points = 32
    try:
        encoding = model.encode_image(sample.image_tensor()[None])
        counts = []
        for batch in (prompts, marked):
            out = model.decode(encoding, batch, generator=torch.Generator().manual_seed(0))
            px = (out.points.coords[0] * torch.tensor(SIZE[::-1])).long()
            counts.append(int(clicks[0, 0, px[:, 1], px[:, 0]].sum()))
    finally:
        model.visual_sampler.num_points = 256
    assert counts[0] <= 2 and counts[1] == 9


def test_training_and_evaluation_mark_clicks() -> None:
    from segblocks.zoo.seem.training_prompts import image_prompts

    sample = ShapesDataset(ShapesWorldConfig(image_size=SIZE), split="train", length=1)[0].sample
    rng = np.random.default_rng(0)
    for _ in range(10):
        drawn = image_prompts(sample, rng, max_objects=4, max_referring=2, composition_rate=1.0)
        assert drawn.clicks is not None and drawn.clicks.shape == drawn.targets.shape
        pos = drawn.regions.positive.numpy()
        assert not (drawn.clicks & ~pos).any()  # clicks are part of their regions
        for j, text in enumerate(drawn.texts):
            if text is not None:  # a composed click is all click
                assert (drawn.clicks[j] == pos[j]).all()


def test_session_marks_clicks_not_strokes(model, sample) -> None:  # type: ignore[no-untyped-def]
    session = SEEMSession(model)
    session.set_image(sample.image)
    session.prompt(box=(5, 5, 40, 40))
    session.prompt(0, clicks=[(20, 20), (50, 50, False)])
    obj = session._objects[0]
    assert int(obj.clicks.sum()) == 18 and bool((obj.clicks & obj.negative).sum() == 9)


def test_separate_clicks_is_a_config_option() -> None:
    assert not get_config("tiny").separate_clicks and not get_config("focal_t").separate_clicks
    assert build_seem("tiny", vocabulary=VOCAB, separate_clicks=True).visual_sampler.separate_clicks
    with pytest.raises(TypeError, match="clicks: expected a bool dtype"):
        PromptBatch(
            positive=torch.zeros(1, 1, *SIZE, dtype=torch.bool),
            negative=torch.zeros(1, 1, *SIZE, dtype=torch.bool),
            previous=torch.zeros(1, 1, *SIZE, dtype=torch.bool),
            texts=[[None]],
            valid=torch.ones(1, 1, dtype=torch.bool),
            clicks=torch.zeros(1, 1, *SIZE),
        )


def test_add_click_draws_into_one_prompts_regions_in_place() -> None:
    positive = torch.zeros(3, 16, 16, dtype=torch.bool)
    negative, clicks = torch.zeros_like(positive), torch.zeros_like(positive)
    positive[1, 4:7, 4:7] = True
    region = add_click(positive[1], negative[1], clicks[1], Click(x=5, y=5, positive=False))
    assert torch.equal(region, click_region(5, 5, (16, 16)))
    assert not negative.any() and torch.equal(clicks[1], region)  # never negative where positive
    region = add_click(positive[1], negative[1], clicks[1], Click(x=12, y=12, positive=False), radius=2)
    assert region.sum() == 25 and torch.equal(negative[1], region) and not (positive[1] & region).any()
    add_click(positive[1], negative[1], clicks[1], Click(x=12, y=12, positive=True))
    assert positive[1, 12, 12] and not negative[1, 12, 12] and negative[1, 10, 10]  # leaves negative
    assert not positive[[0, 2]].any() and not clicks[[0, 2]].any()  # other prompts untouched
