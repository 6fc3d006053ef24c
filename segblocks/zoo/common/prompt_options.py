"""The ``segblocks predict`` prompt options, read alike for every zoo model.

``--points "x,y;x,y"`` (clicks) and ``--boxes "x1,y1,x2,y2;..."``, in pixels: items separated by
``;``, numbers by ``,``, spaces ignored. Each model turns the parsed values into its own prompt
structure.
"""

from __future__ import annotations

import math

__all__ = ["parse_boxes", "parse_points"]


def _parse(
    text: str, *, arity: int, name: str, what: str, plural: str, form: str, example: str
) -> list[tuple[float, ...]]:
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a string such as {example!r}, got {type(text).__name__}")
    items = [part for part in (p.strip() for p in text.split(";")) if part]
    if not items:
        raise ValueError(f"{name}: expected at least one {what} {form!r}, e.g. {example!r}, got {text!r}")
    out = []
    for i, item in enumerate(items):
        try:
            values = tuple(float(v) for v in item.split(","))
        except ValueError:
            values = ()
        if len(values) != arity:
            raise ValueError(
                f"{name}: {what} {i} {item!r} is not {form!r} ({plural} are separated by ';', e.g. {example!r})"
            )
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name}: {what} {i} {item!r} has a value that is not a finite number")
        out.append(values)
    return out


def parse_points(text: str, name: str = "--points") -> list[tuple[float, float]]:
    """``"x,y;x,y"`` -> ``[(x, y), ...]`` pixel coordinates.

    Args:
        text: the option's value.
        name: the option named in errors (``--points``, ``--negative``).

    Raises:
        TypeError: when ``text`` is not a string.
        ValueError: naming ``name`` on no point, a point without exactly two numbers, or a number
            that is not finite.
    """
    rows = _parse(text, arity=2, name=name, what="point", plural="points", form="x,y", example="12,30;40,8")
    return [(x, y) for x, y in rows]


def parse_boxes(text: str, name: str = "--boxes") -> list[tuple[float, float, float, float]]:
    """``"x1,y1,x2,y2;..."`` -> ``[(x1, y1, x2, y2), ...]`` pixel boxes (their order is checked by the model).

    Args:
        text: the option's value.
        name: the option named in errors.

    Raises:
        TypeError: when ``text`` is not a string.
        ValueError: naming ``name`` on no box, a box without exactly four numbers, or a number that
            is not finite.
    """
    rows = _parse(
        text,
        arity=4,
        name=name,
        what="box",
        plural="boxes",
        form="x1,y1,x2,y2",
        example="5,5,60,40;10,8,30,30",
    )
    return [(x1, y1, x2, y2) for x1, y1, x2, y2 in rows]
