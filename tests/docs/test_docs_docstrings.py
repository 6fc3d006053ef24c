"""Every public class, function and method has a docstring that documents its arguments.

"Public" is what the API reference shows (``docs/_ext/apipages.py``): the ``__all__`` of every
public module. Each such function, method and constructor must have a docstring, and every one of
its parameters must be named in it (the Google ``Args:`` section the site renders). How cleanly
the docstrings render is checked by the docs build itself (``make docs``, warnings are errors).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import apipages  # noqa: E402


def documented_objects(package: str = "segblocks") -> list[tuple[str, Any]]:
    """``(path, object)`` for every class and function the API reference documents in full."""
    found = []
    for page in apipages.plan_api(package):
        module = sys.modules[page.module]
        for name, directive in page.documented:
            if directive != "autodata":
                found.append((f"{page.module}.{name}", getattr(module, name)))
    return found


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(member, (staticmethod, classmethod)):
            yield name, member.__func__
        elif isinstance(member, property):
            yield name, member
        elif inspect.isfunction(member):
            yield name, member


def _parameters(func: Any) -> list[str]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    skip = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    return [
        p.name for p in signature.parameters.values() if p.name not in ("self", "cls") and p.kind not in skip
    ]


def _undocumented(params: list[str], doc: str) -> list[str]:
    return [p for p in params if not re.search(rf"\b{re.escape(p)}\b", doc)]


def docstring_problems(path: str, obj: Any) -> list[str]:
    """What is missing from the docstrings of one documented object (and its public methods)."""
    problems: list[str] = []
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return [f"{path}: no docstring"]
    if inspect.isclass(obj):
        init = vars(obj).get("__init__")
        # A dataclass's generated __init__ takes the fields, documented as "Attributes:".
        generated = inspect.isfunction(init) and init.__code__.co_filename == "<string>"
        if inspect.isfunction(init) and not generated:
            missing = _undocumented(_parameters(init), doc + "\n" + (inspect.getdoc(init) or ""))
            if missing:
                problems.append(f"{path}(): arguments not documented: {', '.join(missing)}")
        for name, member in _own_members(obj):
            member_doc = inspect.getdoc(member) or ""
            if not member_doc.strip():
                problems.append(f"{path}.{name}: no docstring")
            elif not isinstance(member, property):
                missing = _undocumented(_parameters(member), member_doc)
                if missing:
                    problems.append(f"{path}.{name}(): arguments not documented: {', '.join(missing)}")
    elif callable(obj):
        missing = _undocumented(_parameters(obj), doc)
        if missing:
            problems.append(f"{path}(): arguments not documented: {', '.join(missing)}")
    return problems


def test_every_public_object_documents_its_arguments() -> None:
    objects = documented_objects()
    assert objects, "the API reference documents nothing: is the package importable?"
    problems = [p for path, obj in objects for p in docstring_problems(path, obj)]
    assert not problems, "docstrings to complete:\n" + "\n".join(problems)


class _Good:
    """A well documented class.

    Args:
        size: how big.
    """

    def __init__(self, *, size: int) -> None:
        self.size = size

    def scale(self, factor: float) -> int:
        """Return ``size`` times ``factor``.

        Args:
            factor: the multiplier.
        """
        return int(self.size * factor)


class _Bad:
    """A class that forgets things."""

    def __init__(self, *, size: int) -> None:
        self.size = size

    def scale(self, factor: float) -> int:
        return int(self.size * factor)


def _bad_function(x: int, y: int) -> int:
    """Add ``x`` to something."""
    return x + y


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_Good, []),
        (_Bad, ["p(): arguments not documented: size", "p.scale: no docstring"]),
        (_bad_function, ["p(): arguments not documented: y"]),
        (lambda: None, ["p: no docstring"]),
    ],
)
def test_the_checker_reports_what_is_missing(obj: Any, expected: list[str]) -> None:
    assert docstring_problems("p", obj) == expected
