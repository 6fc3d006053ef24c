"""Every public class, function and method has a docstring that tells a reader what they need.

"Public" is what the API reference shows (``docs/_ext/apipages.py``): the ``__all__`` of every
public module. What a reader needs, and what this test asks for:

- a **summary line**: the docstring opens with a sentence, not with a section (``Args:``) or a blank;
- every **parameter named** (the Google ``Args:`` section the site renders), ``**options`` included,
  so a reader knows where keyword arguments go.

Length is not asked for: a method that only delegates is complete with its summary and its Args
(say, "Results of ``Predictor(self).predict(images, **options)``." and an ``Args:`` section). How
cleanly the docstrings render is checked by the docs build itself (``make docs``, warnings are errors).
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
    """Parameter names a reader must find documented (``*args`` excepted; ``**kwargs`` included)."""
    if getattr(func, "__module__", None) == "typing":  # a Protocol's placeholder __init__
        return []
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls") and p.kind is not inspect.Parameter.VAR_POSITIONAL
    ]


SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Attributes|Examples?|Notes?):")


def _summary_problem(obj: Any) -> str | None:
    """Why the docstring of ``obj`` has no summary line, or None (an inherited docstring counts)."""
    doc = getattr(obj, "__doc__", None) or inspect.getdoc(obj) or ""
    if not doc.strip():
        return "no docstring"
    first = doc.splitlines()[0].strip()
    if not first:
        return "no summary line (the docstring opens with a blank line)"
    if SECTION.match(first):
        return f"no summary line (it opens with the section {first!r})"
    return None


def _undocumented(params: list[str], doc: str) -> list[str]:
    return [p for p in params if not re.search(rf"\b{re.escape(p)}\b", doc)]


def docstring_problems(path: str, obj: Any) -> list[str]:
    """What is missing from the docstrings of one documented object (and its public methods)."""
    problems: list[str] = []
    doc = inspect.getdoc(obj) or ""
    summary = _summary_problem(obj)
    if summary == "no docstring":
        return [f"{path}: no docstring"]
    if summary:
        problems.append(f"{path}: {summary}")
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
            member_summary = _summary_problem(member) if member_doc.strip() else "no docstring"
            if member_summary:
                problems.append(f"{path}.{name}: {member_summary}")
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


class _Delegating:
    """A short class whose method only delegates.

    Args:
        inner: the object that does the work.
    """

    def __init__(self, inner: _Good) -> None:
        self.inner = inner

    def scale(self, factor: float, **options: Any) -> int:
        """``inner.scale(factor)``.

        Args:
            factor: the multiplier.
            **options: ignored.
        """
        return self.inner.scale(factor)


def _no_summary(x: int) -> int:
    """
    Args:
        x: a number.
    """
    return x


def _section_first(x: int) -> int:
    """Args:
    x: a number.
    """
    return x


def _undocumented_options(x: int, **options: Any) -> int:
    """Return ``x``.

    Args:
        x: a number.
    """
    return x


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_Good, []),
        (_Bad, ["p(): arguments not documented: size", "p.scale: no docstring"]),
        (_bad_function, ["p(): arguments not documented: y"]),
        (lambda: None, ["p: no docstring"]),
        (_Delegating, []),
        (_no_summary, ["p: no summary line (the docstring opens with a blank line)"]),
        (_section_first, ["p: no summary line (it opens with the section 'Args:')"]),
        (_undocumented_options, ["p(): arguments not documented: options"]),
    ],
)
def test_the_checker_reports_what_is_missing(obj: Any, expected: list[str]) -> None:
    assert docstring_problems("p", obj) == expected
