"""The shapes world's vocabulary: thing shapes, stuff textures, colours and seen/unseen splits.

Category ids are contiguous, things first: ``0..11`` are the twelve thing shapes, ``12..17`` the six
stuff classes. Names double as the open-vocabulary class names fed to a text encoder.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "CATEGORIES",
    "COLOURS",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "Category",
    "ClassSplit",
    "category_id",
]

THING_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "pentagon",
    "diamond",
    "cross",
    "ring",
    "heart",
    "crescent",
    "arrow",
)
STUFF_CLASSES: tuple[str, ...] = ("sky", "grass", "water", "sand", "wall", "road")

#: Thing colours, name -> RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 40),
    "purple": (140, 50, 180),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "pink": (250, 130, 190),
    "cyan": (40, 210, 220),
}


@dataclass(frozen=True)
class Category:
    """One class of the shapes world: a contiguous ``id``, its ``name`` and whether it is a thing."""

    id: int
    name: str
    is_thing: bool


CATEGORIES: tuple[Category, ...] = tuple(
    [Category(i, n, True) for i, n in enumerate(THING_CLASSES)]
    + [Category(len(THING_CLASSES) + i, n, False) for i, n in enumerate(STUFF_CLASSES)]
)
_BY_NAME = {c.name: c for c in CATEGORIES}


def category_id(name: str) -> int:
    """Return the category id of a class ``name``; raise ``ValueError`` for an unknown name."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown class name {name!r}; known classes: {', '.join(_BY_NAME)}")
    return _BY_NAME[name].id


@dataclass(frozen=True)
class ClassSplit:
    """A seen/unseen partition of the categories for open-vocabulary experiments.

    Segmentation models train on ``seen`` classes only; evaluation uses all classes, so ``unseen``
    classes are known to the model only by name (through the text encoder).

    Attributes:
        unseen: names of the held-out classes (things and/or stuff).
    """

    unseen: tuple[str, ...] = ("heart", "crescent", "arrow", "sand")

    def __post_init__(self) -> None:
        for name in self.unseen:
            category_id(name)
        if len(set(self.unseen)) != len(self.unseen):
            raise ValueError(f"unseen: duplicate class names in {self.unseen}")
        for is_thing, kind in ((True, "thing"), (False, "stuff")):
            if all(c.name in self.unseen for c in CATEGORIES if c.is_thing == is_thing):
                raise ValueError(f"unseen: at least one {kind} class must stay seen")

    @property
    def unseen_ids(self) -> frozenset[int]:
        """Category ids of the unseen classes."""
        return frozenset(category_id(n) for n in self.unseen)

    @property
    def seen_ids(self) -> frozenset[int]:
        """Category ids of the seen classes."""
        return frozenset(c.id for c in CATEGORIES) - self.unseen_ids

    def is_seen(self, category: int | str) -> bool:
        """Whether a category (id or name) is seen."""
        cid = category_id(category) if isinstance(category, str) else category
        return cid in self.seen_ids

    def proxy(self, *, things: int = 3, stuff: int = 1, seed: int = 0) -> ClassSplit:
        """This split with ``things`` seen thing and ``stuff`` seen stuff classes also held out.

        A model trained on the proxy's seen classes never sees the drawn ones, which then stand in
        for unseen classes: cross-validation over classes, for choosing what depends on unseen
        classes (e.g. an ensemble's exponent for them) without touching the real unseen ones. The
        draw is ``random.Random(seed).sample`` of the seen things, then of the seen stuff, each kept
        in category order; the default split gives ``circle, diamond, ring`` and ``water``.

        Args:
            things: seen thing classes to hold out (at least one must stay seen).
            stuff: seen stuff classes to hold out (at least one must stay seen).
            seed: the draw's seed.

        Returns:
            A split whose unseen classes are this split's, then the drawn ones.

        Raises:
            ValueError: on a count below 0 or one that leaves no seen thing or stuff class.
        """
        rng = random.Random(seed)
        drawn: list[str] = []
        for count, is_thing, name in ((things, True, "things"), (stuff, False, "stuff")):
            pool = [c.name for c in CATEGORIES if c.is_thing == is_thing and c.name not in self.unseen]
            if not 0 <= count < len(pool):
                raise ValueError(f"{name}: expected 0 to {len(pool) - 1} (of {len(pool)} seen), got {count}")
            drawn += sorted(rng.sample(pool, count), key=pool.index)
        return ClassSplit(unseen=(*self.unseen, *drawn))


def check_names(names: Iterable[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """Validate class names against ``allowed``; return them as a tuple."""
    out = tuple(names)
    for n in out:
        if n not in allowed:
            raise ValueError(f"{what}: unknown class name {n!r}; expected one of {', '.join(allowed)}")
    if not out:
        raise ValueError(f"{what}: expected at least one class name")
    return out
