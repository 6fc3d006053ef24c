"""Parsing the category lists that metrics are configured with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["parse_categories"]


def parse_categories(name: str, categories: Mapping[int, bool] | Iterable[Any]) -> dict[int, bool]:
    """Return ``{category_id: is_thing}`` sorted by id from a mapping or from category objects.

    Args:
        name: the argument name used in error messages.
        categories: either a mapping ``{category_id: is_thing}`` or an iterable of objects with an
            ``id`` attribute and an ``is_thing`` (or COCO-style ``isthing``) attribute, such as the
            shapes world's ``CATEGORIES`` or :class:`segblocks.data.formats.CategoryRecord`.

    Returns:
        ``{category_id: is_thing}`` with ids in increasing order.

    Raises:
        TypeError: an entry has no id / thing flag, an id is not an int or a flag not a bool.
        ValueError: the list is empty, an id is negative or repeated.
    """
    pairs: list[tuple[Any, Any]]
    if isinstance(categories, Mapping):
        pairs = list(categories.items())
    else:
        pairs = []
        for i, cat in enumerate(categories):
            if not hasattr(cat, "id") or not (hasattr(cat, "is_thing") or hasattr(cat, "isthing")):
                raise TypeError(
                    f"{name}[{i}]: expected an object with `id` and `is_thing` attributes, got {cat!r}"
                )
            pairs.append((cat.id, getattr(cat, "is_thing", getattr(cat, "isthing", None))))
    if not pairs:
        raise ValueError(f"{name}: expected at least one category, got none")
    out: dict[int, bool] = {}
    for cid, thing in pairs:
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise TypeError(f"{name}: category ids must be ints, got {cid!r}")
        if cid < 0:
            raise ValueError(f"{name}: category ids must be non-negative, got {cid}")
        if cid in out:
            raise ValueError(f"{name}: category id {cid} is listed twice")
        if not isinstance(thing, bool | np.bool_):  # bool("false") would be True
            raise TypeError(f"{name}: the thing flag of category {cid} must be True or False, got {thing!r}")
        out[cid] = bool(thing)
    return dict(sorted(out.items()))
