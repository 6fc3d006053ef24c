"""The shapes world's vocabulary: thing shapes, stuff textures, colours and seen/unseen splits.

Category ids are contiguous, things first: ``0..11`` are the twelve thing shapes, ``12..17`` the six
stuff classes. Names double as the open-vocabulary class names fed to a text encoder.
"""

from __future__ import annotations

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


def check_names(names: Iterable[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """Validate class names against ``allowed``; return them as a tuple."""
    out = tuple(names)
    for n in out:
        if n not in allowed:
            raise ValueError(f"{what}: unknown class name {n!r}; expected one of {', '.join(allowed)}")
    if not out:
        raise ValueError(f"{what}: expected at least one class name")
    return out
