"""The caption entity parser agrees with the world's own entity lists for clean and noisy captions."""

from __future__ import annotations

import pytest

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.shapes.entities import parse_entities


def test_parser_recovers_the_entities_of_clean_and_noisy_captions() -> None:
    world = ShapesWorld(ShapesWorldConfig(image_size=(64, 64)), split="val")
    for i in range(20):
        s = world.sample(i)
        assert set(parse_entities(s.caption)) == set(s.caption_entities)
        assert set(parse_entities(s.noisy_caption)) == set(s.noisy_entities)


def test_parser_skips_unknown_words_and_rejects_bad_input() -> None:
    assert parse_entities("an empty scene.") == []
    assert parse_entities("a red zebra and a circle on grass.") == ["circle", "grass"]
    assert parse_entities("a circle and a circle.") == ["circle"]
    with pytest.raises(TypeError, match="caption"):
        parse_entities(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lexicon"):
        parse_entities("a circle", lexicon=())
