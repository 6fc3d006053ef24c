"""Captions (clean and noisy) and referring expressions for shapes-world samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segblocks.data.shapes.categories import CATEGORIES, COLOURS, STUFF_CLASSES, THING_CLASSES
from segblocks.data.shapes.sample import ReferringExpression, Segment

__all__ = ["clean_caption", "noisy_caption", "referring_expressions", "resolve_referring", "size_word"]

RELATIONS = ("largest", "smallest", "leftmost", "rightmost", "topmost", "bottommost")
# A superlative is used only when the runner-up differs by this margin, so the phrase is unambiguous
# for a reader too (radius ratio, or pixels of centroid distance).
_SIZE_MARGIN = 1.25
_POSITION_MARGIN = 6.0


def size_word(radius: float, radius_range: tuple[float, float]) -> str:
    """The size word of a thing: ``"small"``, ``"large"`` or ``""`` (medium, not mentioned).

    Args:
        radius: the thing's radius in pixels.
        radius_range: ``(min, max)`` radius of the world's things in pixels.
    """
    lo, hi = radius_range
    if radius < lo + (hi - lo) / 3:
        return "small"
    if radius > lo + 2 * (hi - lo) / 3:
        return "large"
    return ""


def _phrase(words: Sequence[str]) -> str:
    words = [w for w in words if w]
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _article(noun_phrase: str) -> str:
    return ("an " if noun_phrase[0] in "aeiou" else "a ") + noun_phrase


def _thing_phrase(seg: Segment, radius_range: tuple[float, float]) -> str:
    name = CATEGORIES[seg.category_id].name
    return _article(" ".join(w for w in (size_word(seg.radius, radius_range), seg.colour, name) if w))


def _compose(things: list[str], stuff: list[str]) -> str:
    if things and stuff:
        return f"{_phrase(things)} on {_phrase(stuff)}."
    return (_phrase(things) or _phrase(stuff) or "an empty scene") + "."


def clean_caption(segments: Sequence[Segment], radius_range: tuple[float, float]) -> tuple[str, list[str]]:
    """A caption that names every visible entity with its size and colour.

    Args:
        segments: the sample's segments (things first, then stuff).
        radius_range: ``(min, max)`` thing radius in pixels, for the size words.

    Returns:
        ``(caption, entity class names)``.
    """
    things = [s for s in segments if s.is_thing]
    stuff = [s for s in segments if not s.is_thing]
    text = _compose(
        [_thing_phrase(s, radius_range) for s in things], [CATEGORIES[s.category_id].name for s in stuff]
    )
    return text, [CATEGORIES[s.category_id].name for s in (*things, *stuff)]


def noisy_caption(
    segments: Sequence[Segment],
    radius_range: tuple[float, float],
    rng: np.random.Generator,
    *,
    missing_rate: float,
    hallucination_rate: float,
) -> tuple[str, list[str]]:
    """A web-alt-text-like caption with missing and hallucinated entities.

    Args:
        segments: the sample's segments.
        radius_range: ``(min, max)`` thing radius in pixels, for the size words.
        rng: random generator.
        missing_rate: probability that an entity is left out.
        hallucination_rate: probability, per entity, that an absent thing or stuff class is
            mentioned as well.

    Returns:
        ``(caption, entity class names mentioned)``.
    """
    for name, rate in (("missing_rate", missing_rate), ("hallucination_rate", hallucination_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name}: expected a probability in [0, 1], got {rate}")
    present = {CATEGORIES[s.category_id].name for s in segments}
    things: list[str] = []
    stuff: list[str] = []
    entities: list[str] = []
    for s in segments:
        if rng.random() < missing_rate:
            continue
        name = CATEGORIES[s.category_id].name
        (things if s.is_thing else stuff).append(_thing_phrase(s, radius_range) if s.is_thing else name)
        entities.append(name)
    for _ in segments:
        if rng.random() >= hallucination_rate:
            continue
        if rng.random() < 0.7:
            absent = [n for n in THING_CLASSES if n not in present]
            if absent:
                name = str(rng.choice(absent))
                things.append(_article(f"{rng.choice(list(COLOURS))} {name}"))
                entities.append(name)
        else:
            absent = [n for n in STUFF_CLASSES if n not in present]
            if absent:
                name = str(rng.choice(absent))
                stuff.append(name)
                entities.append(name)
    return _compose(things, stuff), entities


def _relation_key(relation: str, seg: Segment) -> float:
    """Larger is 'more' for the relation (e.g. the leftmost has the largest key)."""
    x, y = seg.centroid
    return {
        "largest": seg.radius,
        "smallest": -seg.radius,
        "leftmost": -x,
        "rightmost": x,
        "topmost": -y,
        "bottommost": y,
    }[relation]


def resolve_referring(expression: ReferringExpression, segments: Sequence[Segment]) -> list[int]:
    """Return the ids of the things an expression describes (exactly one for a valid expression).

    Filters the visible things by shape and colour, then applies the superlative relation if any.

    Args:
        expression: the structured expression.
        segments: the segments of the sample (stuff is ignored).
    """
    if expression.relation is not None and expression.relation not in RELATIONS:
        raise ValueError(f"relation: expected one of {RELATIONS}, got {expression.relation!r}")
    shape_id = next((c.id for c in CATEGORIES if c.name == expression.shape and c.is_thing), None)
    if shape_id is None:
        raise ValueError(f"shape: unknown thing class {expression.shape!r}")
    group = [
        s
        for s in segments
        if s.is_thing
        and s.category_id == shape_id
        and (expression.colour is None or s.colour == expression.colour)
    ]
    if expression.relation is None or not group:
        return [s.id for s in group]
    best = max(_relation_key(expression.relation, s) for s in group)
    return [s.id for s in group if _relation_key(expression.relation, s) == best]


def _is_clear(relation: str, target: Segment, group: Sequence[Segment]) -> bool:
    others = [s for s in group if s.id != target.id]
    if relation in ("largest", "smallest"):
        ratio = _SIZE_MARGIN if relation == "largest" else 1 / _SIZE_MARGIN
        return all(
            (target.radius >= ratio * o.radius)
            if relation == "largest"
            else (target.radius <= ratio * o.radius)
            for o in others
        )
    key = _relation_key(relation, target)
    return all(key - _relation_key(relation, o) >= _POSITION_MARGIN for o in others)


def referring_expressions(segments: Sequence[Segment]) -> list[ReferringExpression]:
    """One unambiguous referring expression per thing that can be told apart from the others.

    Tries, in order: the shape alone, colour + shape, then colour + shape + a superlative (size or
    position) that separates the target from its look-alikes by a clear margin. Things that no
    phrase of this grammar singles out get no expression.

    Args:
        segments: the sample's segments (stuff is ignored).
    """
    things = [s for s in segments if s.is_thing]
    out: list[ReferringExpression] = []
    for target in things:
        shape = CATEGORIES[target.category_id].name
        candidates = [ReferringExpression(f"the {shape}", target.id, shape)]
        candidates.append(
            ReferringExpression(f"the {target.colour} {shape}", target.id, shape, target.colour)
        )
        group = [s for s in things if s.category_id == target.category_id and s.colour == target.colour]
        for relation in RELATIONS:
            if len(group) > 1 and _is_clear(relation, target, group):
                text = f"the {relation} {target.colour} {shape}"
                candidates.append(ReferringExpression(text, target.id, shape, target.colour, relation))
        for expr in candidates:
            if resolve_referring(expr, things) == [target.id]:
                out.append(expr)
                break
    return out
