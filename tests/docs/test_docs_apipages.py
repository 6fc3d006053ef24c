"""The API reference plan: which modules get pages and where each object is documented."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import apipages  # noqa: E402
import offline_links  # noqa: E402

FILES = {
    "__init__.py": '''
        """A fake package."""
        from PKG.ops import attend, pool
        from PKG.structures import Box

        __all__ = ["Box", "attend", "pool"]
    ''',
    "structures.py": '''
        """Containers."""
        __all__ = ["Box", "SIZE"]

        #: the default size
        SIZE = 3


        class Box:
            """A box."""
    ''',
    "_private.py": '''
        """Not for users."""
        def helper():
            """Help."""
    ''',
    "ops/__init__.py": '''
        """Ops."""
        from PKG.ops.attend import attend
        from PKG.ops.pooling import SIZE, pool

        __all__ = ["SIZE", "attend", "pool"]
    ''',
    "ops/attend.py": '''
        """A module named like the function it holds (shadowed by the re-export)."""
        __all__ = ["attend"]


        def attend(x):
            """Attend to ``x``."""
    ''',
    "ops/pooling.py": '''
        """Pooling."""
        from PKG.structures import SIZE

        __all__ = ["SIZE", "pool", "unpool"]


        def unpool(x):
            """Not re-exported by the package: documented here."""


        def pool(x):
            """Pool ``x``."""
    ''',
    "ops/_kernels.py": '''
        """Private."""
    ''',
}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"fakepkg_{uuid.uuid4().hex[:8]}"
    for rel, text in FILES.items():
        path = tmp_path / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("PKG", name).lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


def test_every_public_module_gets_a_page_and_private_ones_none(package: str) -> None:
    pages = {p.module.removeprefix(package): p for p in apipages.plan_api(package)}
    assert sorted(pages) == ["", ".ops", ".ops.attend", ".ops.pooling", ".structures"]
    assert pages[""].children == [f"{package}.ops", f"{package}.structures"]
    assert pages[".ops"].is_package and not pages[".ops.pooling"].is_package


def test_objects_are_documented_once_at_the_path_users_import(package: str) -> None:
    pages = {p.module.removeprefix(package): p for p in apipages.plan_api(package)}
    # The shallowest package that exports an object and contains its module is its home; the
    # order is that of the defining modules, then of the source lines.
    assert pages[""].documented == [
        ("attend", "autofunction"),
        ("pool", "autofunction"),
        ("Box", "autoclass"),
    ]
    assert pages[".structures"].elsewhere == [("Box", f"{package}.Box")]
    # unpool is exported only by its module; the constant is documented where it is assigned.
    assert pages[".ops.pooling"].documented == [("unpool", "autofunction")]
    assert pages[".structures"].documented == [("SIZE", "autodata")]
    assert (".ops", ("SIZE", f"{package}.structures.SIZE")) in [
        (k, e) for k, p in pages.items() for e in p.elsewhere
    ]
    assert ("pool", f"{package}.pool") in pages[".ops"].elsewhere


def test_a_module_shadowed_by_its_function_registers_no_target(package: str) -> None:
    pages = {p.module.removeprefix(package): p for p in apipages.plan_api(package)}
    assert pages[".ops.attend"].shadowed and not pages[".ops.pooling"].shadowed
    text = apipages.render_page(pages[".ops.attend"])
    assert f".. automodule:: {package}.ops.attend\n   :no-index:" in text
    # The parent links its modules as pages, never as objects (the name means the function).
    parent = apipages.render_page(pages[".ops"])
    assert f":doc:`attend <{package}.ops.attend>`" in parent


def test_aliases_map_defining_and_re_export_paths_to_the_home(package: str) -> None:
    aliases = apipages.alias_map(apipages.plan_api(package))
    assert aliases[f"{package}.ops.pooling.pool"] == f"{package}.pool"
    assert aliases[f"{package}.ops.pool"] == f"{package}.pool"
    assert aliases[f"{package}.structures.Box"] == f"{package}.Box"
    assert f"{package}.pool" not in aliases  # homes are not aliases


def test_write_pages_rewrites_only_changes_and_removes_stale_pages(package: str, tmp_path: Path) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    (out / "stale.module.rst").write_text("old", encoding="utf-8")
    pages = apipages.plan_api(package)
    written = apipages.write_pages(pages, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    first = {p: p.stat().st_mtime_ns for p in written}
    apipages.write_pages(pages, out)
    assert {p: p.stat().st_mtime_ns for p in written} == first


def test_a_private_package_name_is_refused() -> None:
    with pytest.raises(ValueError, match="package: expected a public package name"):
        apipages.plan_api("segblocks._validation")


def test_a_name_in_all_that_does_not_exist_is_reported(package: str, tmp_path: Path) -> None:
    path = tmp_path / package / "structures.py"
    path.write_text(path.read_text(encoding="utf-8").replace('"SIZE"]', '"SIZE", "Missing"]'))
    with pytest.raises(AttributeError, match=r"structures\.__all__ lists 'Missing'"):
        apipages.plan_api(package)


@pytest.mark.parametrize(
    ("name", "url_end"),
    [
        ("torch.Tensor", "tensors.html#torch.Tensor"),
        ("torch.nn.modules.conv.Conv2d", "torch.nn.Conv2d.html#torch.nn.Conv2d"),
        ("torch.nn.modules.module.Module.forward", "torch.nn.Module.html#torch.nn.Module"),
        ("builtins.int", "functions.html#int"),
        ("None", "constants.html#None"),
        ("numpy._core.multiarray.ndarray", "numpy.ndarray.html#numpy.ndarray"),
    ],
)
def test_offline_links_resolve_external_names(name: str, url_end: str) -> None:
    url = offline_links.external_url(name)
    assert url is not None and url.startswith("https://") and url.endswith(url_end)


def test_unknown_external_names_stay_unlinked() -> None:
    assert offline_links.external_url("torch.some_private_thing") is None
    assert offline_links.external_url("segblocks.ops.mask_pool") is None
