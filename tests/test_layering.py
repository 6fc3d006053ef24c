"""Packages import downward only: no import cycle between top-level packages, no zoo model importing another.

Every ``import`` of every module of ``segblocks`` (function-level imports included) is read with
``ast``, so the rules hold for code paths a test run may not reach.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import segblocks

ROOT = Path(segblocks.__file__).parent
ZOO = ROOT / "zoo"
#: Zoo packages every zoo model may import (shared, owned by no model).
ZOO_SHARED = {"common"}
#: No cycle is allowed (data imports metrics for the click simulator and VideoInstances; metrics
#: imports no data).
ALLOWED_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Absolute names of the ``segblocks`` modules ``path`` imports (relative imports resolved)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def _top(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "segblocks" or len(parts) < 2:
        return None
    return parts[1]


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = _top(_module_name(path))
        if source is None:
            continue
        for name in _imports(path):
            target = _top(name)
            if target is not None and target != source and (ROOT / target).is_dir():
                graph.setdefault(source, set()).add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Pairs of packages that reach each other."""

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    reachable = {node: reach(node) for node in graph}
    return {frozenset({a, b}) for a in graph for b in reachable[a] if a != b and a in reachable.get(b, set())}


def test_no_import_cycle_between_top_level_packages() -> None:
    cycles = _cycles(_package_graph()) - ALLOWED_CYCLES
    assert not cycles, (
        f"packages that import each other (directly or through others): {sorted(map(sorted, cycles))}"
    )


def test_layers_is_at_the_bottom_and_zoo_at_the_top() -> None:
    graph = _package_graph()
    assert graph.get("layers", set()) <= {"ops", "structures"}, graph.get("layers")
    importers_of_zoo = sorted(
        p for p, targets in graph.items() if "zoo" in targets and p not in ("cli", "cli_eval", "cli_predict")
    )
    assert not importers_of_zoo, f"only the CLI may import the zoo, got {importers_of_zoo}"


def test_the_engine_knows_nothing_of_the_shapes_world() -> None:
    graph = _package_graph()
    assert "data" not in graph.get("engine", set()) and "zoo" not in graph.get("engine", set())


def test_no_zoo_model_imports_another() -> None:
    models = {p.name for p in ZOO.iterdir() if (p / "__init__.py").is_file()} - ZOO_SHARED
    offences = []
    for model in sorted(models):
        for path in (ZOO / model).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[:2] == ["segblocks", "zoo"] and len(parts) > 2 and parts[2] in models - {model}:
                    offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offences, offences


def test_the_walk_sees_the_rules_it_checks() -> None:
    # the checker itself: relative imports resolve, and a real cycle would be found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == {frozenset(p) for p in ("ab", "bc", "ac")}
    graph = _package_graph()
    assert "decoders" in graph.get("zoo", set()) and "layers" in graph.get("decoders", set())
