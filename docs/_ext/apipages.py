"""Plan and write the API reference: one page per public module of a package, found recursively.

No Sphinx import here, so the tests can check the plan without the docs extras installed.

Rules (what a reader sees):

- Every module whose dotted path has no component starting with ``_`` gets a page, found with
  ``pkgutil`` (a new module appears without editing anything). Private modules get none.
- A module's public names are its ``__all__``; without ``__all__``, the public classes and functions
  it defines.
- Each public object is documented in full once, at its *public home*: the shallowest package that
  exports it and contains its defining module (``segblocks.ops.mask_pool``, the path users import),
  else its defining module, else the shallowest module that exports it. Every other module that
  exports it lists it in a short table that links to that home.
- :func:`alias_map` maps every other path of an object (``segblocks.ops.mask_pooling.mask_pool``,
  which type hints use) to its home, so cross-references to either path resolve.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

__all__ = [
    "ApiPage",
    "alias_map",
    "module_summary",
    "plan_api",
    "public_modules",
    "render_page",
    "write_pages",
]


@dataclass
class ApiPage:
    """The content of one module's page.

    Attributes:
        module: dotted module name (the page title).
        is_package: whether the module is a package.
        documented: ``(name, directive)`` documented in full here, in source order; directive is one
            of ``autoclass``, ``autoexception``, ``autofunction``, ``autodata``.
        elsewhere: ``(name, home)`` exported here but documented at ``home`` (a full dotted path).
        children: dotted names of the public direct sub-modules.
        shadowed: whether the parent package binds this module's name to something else (a
            function re-exported under its module's name, like ``ops.ms_deform_attn``); the page
            then registers no module target, so the name links to that object.
    """

    module: str
    is_package: bool
    documented: list[tuple[str, str]] = field(default_factory=list)
    elsewhere: list[tuple[str, str]] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    shadowed: bool = False


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split("."))


def public_modules(package: str) -> list[str]:
    """Return ``package`` and every public module below it, imported, in depth-first sorted order."""
    found: list[str] = []

    def visit(name: str) -> None:
        module = importlib.import_module(name)
        found.append(name)
        if hasattr(module, "__path__"):
            children = sorted(m.name for m in pkgutil.iter_modules(module.__path__))
            for child in children:
                if not child.startswith("_"):
                    visit(f"{name}.{child}")

    if _is_private(package):
        raise ValueError(f"package: expected a public package name, got {package!r}")
    visit(package)
    return found


def _exported(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return [str(n) for n in names]
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


def _assigned_names(module: ModuleType) -> set[str]:
    """Names assigned at the top level of the module's source (where a constant is documented)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _directive(obj: object) -> str | None:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if inspect.isroutine(obj):
        return "autofunction"
    if inspect.ismodule(obj):
        return None
    return "autodata"


def _source_line(obj: object) -> int:
    try:
        return inspect.getsourcelines(obj)[1]  # type: ignore[arg-type]
    except (OSError, TypeError):
        return 0


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def plan_api(package: str) -> list[ApiPage]:
    """Plan the API pages of ``package`` (see the module docstring for the rules).

    Args:
        package: dotted name of an importable, public package, e.g. ``"segblocks"``.

    Returns:
        One :class:`ApiPage` per public module, parents before children.

    Raises:
        ValueError: if ``package`` is private.
        ImportError: if a public module cannot be imported (its page could not be rendered).
    """
    names = public_modules(package)
    modules = {name: importlib.import_module(name) for name in names}
    depth = {name: name.count(".") for name in names}
    pages = {name: ApiPage(module=name, is_package=hasattr(modules[name], "__path__")) for name in names}
    for name in names:
        parent = name.rpartition(".")[0]
        if parent in pages:
            pages[parent].children.append(name)
            bound = vars(modules[parent]).get(name.rpartition(".")[2], modules[name])
            pages[name].shadowed = bound is not modules[name]

    # Who exports each object (by identity for classes/functions, by module and name for data).
    exporters: dict[int, list[str]] = {}
    objects: dict[int, object] = {}
    data: list[tuple[str, str]] = []
    for name in names:
        for export in _exported(modules[name]):
            if not hasattr(modules[name], export):
                raise AttributeError(f"{name}.__all__ lists {export!r}, which the module does not define")
            obj = getattr(modules[name], export)
            kind = _directive(obj)
            if kind is None:
                continue  # a sub-module listed in __all__: it has its own page
            if kind == "autodata":
                data.append((name, export))
                continue
            if not _within(getattr(obj, "__module__", "") or "", package):
                continue  # re-exported from another library: documented there
            exporters.setdefault(id(obj), []).append(name)
            objects[id(obj)] = obj

    homes: dict[int, str] = {}
    for key, where in exporters.items():
        obj = objects[key]
        definer = obj.__module__
        ancestors = [m for m in where if _within(definer, m)]
        if ancestors:
            homes[key] = min(ancestors, key=lambda m: depth[m])
        elif definer in pages:
            homes[key] = definer
        else:
            homes[key] = min(where, key=lambda m: depth[m])

    placed: dict[str, list[tuple[tuple[str, int], str, str]]] = {name: [] for name in names}
    for key, where in exporters.items():
        obj = objects[key]
        home = homes[key]
        export_name = next(n for n in _exported(modules[home]) if getattr(modules[home], n) is obj)
        order = (obj.__module__, _source_line(obj))
        placed[home].append((order, export_name, _directive(obj) or "autodata"))
        for other in where:
            if other != home:
                local = next(n for n in _exported(modules[other]) if getattr(modules[other], n) is obj)
                pages[other].elsewhere.append((local, f"{home}.{export_name}"))

    # Data has no identity worth trusting (small ints, None): a constant is documented where the
    # source assigns it (its ``#:`` comment lives there) and linked from modules that re-export it.
    assigned = sorted((m, e) for m, e in data if e in _assigned_names(modules[m]))
    for module_name, export in data:
        if (module_name, export) in assigned:
            placed[module_name].append(((module_name, 10**9), export, "autodata"))
            continue
        value = getattr(modules[module_name], export)
        source = [(m, e) for m, e in assigned if e == export and getattr(modules[m], e) is value]
        if source:
            pages[module_name].elsewhere.append((export, f"{source[0][0]}.{export}"))
        else:
            placed[module_name].append(((module_name, 10**9), export, "autodata"))

    for name in names:
        pages[name].documented = [(n, d) for _, n, d in sorted(placed[name])]
        pages[name].elsewhere.sort()
    return [pages[name] for name in names]


def alias_map(pages: list[ApiPage]) -> dict[str, str]:
    """Map every non-home path of a documented object to its home path.

    Covers the paths of re-exports (``segblocks.heads.mask_pool``) and the defining path that type
    hints and ``__module__`` use (``segblocks.ops.mask_pooling.mask_pool``).

    Args:
        pages: the output of :func:`plan_api`.

    Returns:
        ``{alias: home}``, both full dotted paths; homes are not keys.
    """
    aliases: dict[str, str] = {}
    for page in pages:
        for local, home in page.elsewhere:
            aliases[f"{page.module}.{local}"] = home
        for name, directive in page.documented:
            if directive == "autodata":
                continue
            obj = getattr(importlib.import_module(page.module), name)
            defined = f"{obj.__module__}.{obj.__qualname__}"
            home = f"{page.module}.{name}"
            if defined != home:
                aliases[defined] = home
    return aliases


def _underline(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def module_summary(name: str) -> str:
    """The first line of a module's docstring (reStructuredText), or a dash."""
    doc = (inspect.getdoc(importlib.import_module(name)) or "").strip()
    return doc.splitlines()[0].strip() if doc else "—"


def render_page(page: ApiPage) -> str:
    """Return the reStructuredText of one module's page (autodoc directives, no docstrings)."""
    lines = [
        ".. This file is generated by docs/_ext/apipages.py at every build; do not edit it.",
        "",
        _underline(page.module),
        f".. automodule:: {page.module}",
    ]
    if page.shadowed:
        lines.append("   :no-index:")
    lines.append("")
    module = importlib.import_module(page.module)
    for name, directive in page.documented:
        lines.append(f".. {directive}:: {page.module}.{name}")
        if directive in ("autoclass", "autoexception"):
            lines.append("   :members:")
            if getattr(module, name).__bases__ != (object,):  # "Bases: object" says nothing
                lines.append("   :show-inheritance:")
        lines.append("")
    if page.elsewhere:
        lines += [
            ".. rubric:: Documented elsewhere",
            "",
            "This module also exports these names; each is documented once, at the path it is",
            "imported from.",
            "",
            ".. autosummary::",
            "   :nosignatures:",
            "",
        ]
        # autosummary rejects full paths under the current module; those are written relatively.
        prefix = page.module + "."
        lines += [
            f"   {home.removeprefix(prefix)}" if home.startswith(prefix) else f"   {home}"
            for _, home in page.elsewhere
        ]
        lines.append("")
    if page.children:
        # Page links, not object references: a shadowed module's name refers to another object.
        lines += [".. rubric:: Modules", "", ".. list-table::", "   :class: module-list", ""]
        for child in page.children:
            lines += [
                f"   * - :doc:`{child.rpartition('.')[2]} <{child}>`",
                f"     - {module_summary(child)}",
            ]
        lines += ["", ".. toctree::", "   :hidden:", ""]
        lines += [f"   {child}" for child in page.children]
        lines.append("")
    return "\n".join(lines)


def write_pages(pages: list[ApiPage], out_dir: Path) -> list[Path]:
    """Write one ``<module>.rst`` per page into ``out_dir`` and delete stale pages there.

    A file is rewritten only when its content changes, so incremental builds stay incremental.

    Args:
        pages: the output of :func:`plan_api`.
        out_dir: the generated folder (created if missing; only ``*.rst`` files in it are managed).

    Returns:
        The paths of the pages, in the order of ``pages``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for page in pages:
        path = out_dir / f"{page.module}.rst"
        text = render_page(page)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in set(out_dir.glob("*.rst")) - set(written):
        stale.unlink()
    return written
