"""Sphinx extension that keeps the segblocks site in step with the repository, offline.

At every build it:

- writes the API reference pages (``docs/api/generated/``, see :mod:`apipages`);
- writes one stub page per model card found at ``zoo/<model>/README.md`` (``docs/zoo/cards/``) that
  includes the card itself, so the card lives in one place;
- expands two markers (MyST comment lines) in the pages that hold them:
  ``% segblocks:nav`` becomes the toctrees declared for that page in ``segblocks_nav`` (conf.py),
  keeping only pages that exist, and ``% segblocks:bench-results`` becomes tables of the JSON files
  in ``bench/results/``;
- resolves cross-references that the Python domain cannot: other paths of our own objects (their
  defining module, other re-exports) and external names (:mod:`offline_links`, or intersphinx when
  ``SEGBLOCKS_DOCS_INTERSPHINX=1``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import re
import typing
from pathlib import Path
from typing import Any

import apipages
import offline_links
from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.typing import stringify_annotation

__all__ = ["setup"]

log = logging.getLogger(__name__)

NAV_MARKER = "% segblocks:nav"
BENCH_MARKER = "% segblocks:bench-results"
MODULES_MARKER = "% segblocks:api-modules"
_ALIASES: dict[str, str] = {}
_MODULES: list[tuple[str, str]] = []  # (dotted name, first docstring line) of every API page


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _card_stubs(app: Sphinx) -> None:
    zoo = Path(app.config.segblocks_zoo_dir)
    out = Path(app.srcdir) / "zoo" / "cards"
    wanted: set[Path] = set()
    for card in sorted(zoo.glob("*/README.md")):
        stub = out / f"{card.parent.name}.md"
        rel = Path("..", "..", "..").joinpath(card.relative_to(zoo.parent)).as_posix()
        _write_if_changed(
            stub,
            f"% Generated at build time from {card.relative_to(zoo.parent).as_posix()}; edit that file.\n\n"
            f"```{{include}} {rel}\n:relative-images:\n:relative-docs: ../\n```\n",
        )
        wanted.add(stub)
    for stale in set(out.glob("*.md")) - wanted:
        stale.unlink()


def _generate(app: Sphinx) -> None:
    pages = apipages.plan_api(app.config.segblocks_api_package)
    apipages.write_pages(pages, Path(app.srcdir) / "api" / "generated")
    _ALIASES.clear()
    _ALIASES.update(apipages.alias_map(pages))
    _MODULES[:] = [(p.module, apipages.module_summary(p.module)) for p in pages]
    _card_stubs(app)


def _nav_block(
    env: BuildEnvironment, docname: str, sections: list[tuple[str | None, list[str]]], hidden: bool
) -> str:
    base = docname.rpartition("/")[0]
    docs = sorted(env.found_docs)
    blocks: list[str] = []
    for caption, entries in sections:
        chosen: list[str] = []
        for entry in entries:
            full = f"{base}/{entry}" if base else entry
            matches = fnmatch.filter(docs, full) if any(c in entry for c in "*?[") else [full]
            for match in matches:
                if match in env.found_docs and match != docname and match not in chosen:
                    chosen.append(match)
        if not chosen:
            continue
        lines = ["```{toctree}", ":maxdepth: 1"] + ([":hidden:"] if hidden else [])
        if caption:
            lines.append(f":caption: {caption}")
        lines.append("")
        lines += [m[len(base) + 1 :] if base else m for m in chosen]
        lines.append("```")
        blocks.append("\n".join(lines))
    if not blocks and not hidden:
        return "```{note}\nNothing here yet: these pages appear as their features land.\n```"
    return "\n\n".join(blocks)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value)}`"
    return str(value).replace("|", "\\|")


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _table(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return lines


def bench_markdown(results_dir: Path) -> str:
    """Render every ``<results_dir>/*.json`` as MyST tables (one section per file)."""
    files = sorted(results_dir.glob("*.json"))
    if not files:
        return (
            "```{note}\nNo benchmark results are recorded yet: `bench/results/` holds none. "
            "See above for how a result lands here.\n```"
        )
    out: list[str] = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        out += [f"### `{path.stem}`", ""]
        script = results_dir.parent / f"{path.stem}.py"
        if script.exists():
            out += [f"Measured by `python bench/{script.name}`.", ""]
        records = data if isinstance(data, list) else None
        scalars: dict[str, Any] = {}
        tables: list[tuple[str, list[dict[str, Any]]]] = []
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                    tables.append((key, [_flatten(v) for v in value]))
                elif isinstance(value, dict):
                    scalars.update(_flatten(value, f"{key}."))
                else:
                    scalars[key] = value
        if records is not None and all(isinstance(r, dict) for r in records):
            tables.append(("", [_flatten(r) for r in records]))
        if scalars:
            out += [*_table([{"field": k, "value": v} for k, v in scalars.items()]), ""]
        for name, rows in tables:
            if name:
                out += [f"**{name}**", ""]
            out += [*_table(rows), ""]
    return "\n".join(out)


def modules_markdown(modules: list[tuple[str, str]], docname: str) -> str:
    """A MyST table linking every API page, with the first line of its module docstring."""
    base = "/".join([".."] * docname.count("/"))
    lines = ["```{list-table}", ":header-rows: 1", ":widths: 40 60", ":class: module-index", ""]
    lines += ["* - Module", "  - What it holds"]
    for module, summary in modules:
        target = f"{base}/api/generated/{module}" if base else f"api/generated/{module}"
        # reST roles of docstrings (:class:`X`) become MyST roles ({class}`X`).
        summary = re.sub(r":(\w+(?::\w+)?):`", r"{\1}`", summary)
        lines += [f"* - {{doc}}`{module} <{target}>`", f"  - {summary}"]
    lines.append("```")
    return "\n".join(lines)


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    text = source[0]
    if NAV_MARKER in text:
        sections = app.config.segblocks_nav.get(docname)
        if sections is None:
            raise ValueError(f"{docname}: has {NAV_MARKER!r} but conf.py segblocks_nav has no entry for it")
        hidden = docname in app.config.segblocks_nav_hidden
        text = text.replace(NAV_MARKER, _nav_block(app.env, docname, sections, hidden))
    if MODULES_MARKER in text:
        text = text.replace(MODULES_MARKER, modules_markdown(_MODULES, docname))
    if BENCH_MARKER in text:
        text = text.replace(BENCH_MARKER, bench_markdown(Path(app.config.segblocks_bench_results)))
    source[0] = text


def _always_reread(
    app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    # Pages built from the repository's state (which pages exist, bench results) are cheap to reread.
    return [
        d for d in (*app.config.segblocks_nav, *app.config.segblocks_always_reread) if d in env.found_docs
    ]


def _missing_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target = str(node["reftarget"])
    # A short name in a module's docstring (":func:`load_weights`") means that module's object.
    module, cls = node.get("py:module"), node.get("py:class")
    scopes = (
        [f"{module}.{cls}.", f"{module}.", ""] if module and cls else [f"{module}.", ""] if module else [""]
    )
    home = next((h for h in (_home(scope + target) for scope in scopes) if h is not None), None)
    if home is not None:
        domain = env.get_domain("py")
        resolved = domain.resolve_xref(
            env, node.get("refdoc", ""), app.builder, node["reftype"], home, node, contnode
        )
        if resolved is not None:
            return resolved
    name = offline_links.normalize(target)
    if "sphinx.ext.intersphinx" in app.extensions and name != target:
        from sphinx.ext.intersphinx import missing_reference

        renamed = node.deepcopy()
        renamed["reftarget"] = name
        found = missing_reference(app, env, renamed, contnode)
        if found is not None:
            return found
    url = offline_links.external_url(name)
    if url is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url, reftitle=name)
    ref += contnode
    return ref


def _dataclass_field_types(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Give the documented attributes of a dataclass their field types (``points: Tensor | None``).

    Napoleon would read them from the annotations, but sphinx-autodoc-typehints switches that off
    (it mislabels constructor arguments of ordinary classes); for dataclass fields it is exact.
    """
    if what != "class" or not dataclasses.is_dataclass(obj):
        return
    try:
        hints = typing.get_type_hints(obj)
    except Exception:  # an annotation that cannot be evaluated: leave the attributes untyped
        return
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        match = re.match(r"^(\s*)\.\. attribute:: (\w+)\s*$", line)
        has_type = i + 1 < len(lines) and lines[i + 1].strip().startswith(":type:")
        if match and match[2] in hints and not has_type:
            annotation = stringify_annotation(hints[match[2]], "fully-qualified-except-typing")
            out.append(f"{match[1]}   :type: {annotation}")
    lines[:] = out


def _home(target: str) -> str | None:
    """The documented path of one of our objects (or of a member of one) reached by another path."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in _ALIASES:
            return ".".join([_ALIASES[head], *parts[cut:]])
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the configuration values and event handlers (see the module docstring)."""
    app.add_config_value("segblocks_api_package", "segblocks", "env")
    app.add_config_value("segblocks_zoo_dir", "", "env")
    app.add_config_value("segblocks_bench_results", "", "env")
    app.add_config_value("segblocks_nav", {}, "env")
    app.add_config_value("segblocks_nav_hidden", [], "env")
    app.add_config_value("segblocks_always_reread", [], "env")
    app.connect("builder-inited", _generate)
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _always_reread)
    # After napoleon (priority 500) has turned "Attributes:" sections into ``.. attribute::``.
    app.connect("autodoc-process-docstring", _dataclass_field_types, priority=600)
    # After intersphinx (priority 500), so real inventories win when they are loaded, and before
    # the Python domain's builtin_resolver (900), which would render `int`, `None` unlinked.
    app.connect("missing-reference", _missing_reference, priority=800)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
