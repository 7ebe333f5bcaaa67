"""The documentation's code runs, its pictures exist, and its build inputs are consistent.

- Every ```` ```python ```` block of ``docs/**/*.md`` and ``README.md`` runs, page by page in one
  namespace (a later block may use names from an earlier one, as a reader would), from the
  repository root.  A page whose code uses torch is skipped when torch is not installed, and so
  is a page with a block whose first line is ``# docs: needs spglib, gemmi`` when one of those
  modules is missing.  A block whose first line is ``# docs: no-run`` is shown only (e.g. a
  downstream repository's test file).
- Every image a page references exists, and every page of ``mkdocs.yml``'s nav exists.
- ``docs/hooks.py`` (which publishes ``proofs/`` in the site) finds every proof statement.

``make docs`` (``mkdocs build --strict``) is the full check of the build itself.
"""

from __future__ import annotations

import doctest
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
SOURCES = [ROOT / "README.md", *PAGES]
NO_RUN = "# docs: no-run"
_NEEDS = re.compile(r"^\s*# docs: needs ([\w., ]+)$", re.M)

_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HTML_IMAGE = re.compile(r"<img[^>]+src=\"([^\"]+)\"")


def python_blocks(text: str) -> list[str]:
    """The ```` ```python ```` blocks of a Markdown text, in order."""
    return [b for b in _BLOCK.findall(text) if not b.lstrip().startswith(NO_RUN)]


def _uses_torch(code: str) -> bool:
    return re.search(r"^\s*(import torch|from torch|import latticesym\.torch|from latticesym\.torch|"
                     r"from latticesym import torch)", code, re.M) is not None


def _needs(blocks: list[str]) -> set[str]:
    """Modules the blocks need: torch when they import it, and those named by ``# docs: needs``."""
    out = {"torch"} if any(_uses_torch(b) for b in blocks) else set()
    for block in blocks:
        first = block.lstrip().splitlines()[0] if block.strip() else ""
        m = _NEEDS.match(first)
        if m:
            out |= {name.strip() for name in m.group(1).split(",") if name.strip()}
    return out


def _load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_python_blocks_are_found() -> None:
    assert python_blocks("text\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\n# docs: no-run\nboom\n```\n") \
        == ["x = 1\n"]
    assert _needs(["# docs: needs spglib, gemmi\nx = 1\n", "import torch\n"]) == {"spglib", "gemmi", "torch"}
    assert sum(len(python_blocks(p.read_text())) for p in PAGES) >= 5, "the docs should carry runnable examples"


@pytest.mark.parametrize("source", [s for s in SOURCES if python_blocks(s.read_text())], ids=_rel)
def test_code_blocks_run(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(source.read_text())
    missing = sorted(m for m in _needs(blocks) if importlib.util.find_spec(m) is None)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (not installed)")
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": f"docs_{source.stem}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{_rel(source)} (python block {number})", "exec")
        exec(code, namespace)


def _images(page: Path) -> list[str]:
    text = page.read_text()
    return [m for m in _IMAGE.findall(text) + _HTML_IMAGE.findall(text) if "://" not in m]


@pytest.mark.parametrize("page", [p for p in PAGES if _images(p)], ids=_rel)
def test_referenced_images_exist(page: Path) -> None:
    missing = [src for src in _images(page) if not (page.parent / src).resolve().is_file()]
    assert not missing, f"{_rel(page)} references missing images: {missing}"


def test_pages_with_plots_reference_them() -> None:
    wanted = {"peers.md": ["img/failure_map.png"],
              "proxy_loss.md": ["img/proxy_boundary.png", "img/proxy_shear.png"],
              "frame_averaging.md": ["img/frame_averaging_boundary.png"]}
    for page, images in wanted.items():
        found = _images(DOCS / page)
        for image in images:
            assert image in found, f"docs/{page} should show {image}"


def _nav_pages(nav: Any) -> list[str]:
    out: list[str] = []
    if isinstance(nav, str):
        out.append(nav)
    elif isinstance(nav, list):
        for item in nav:
            out += _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            out += _nav_pages(value)
    return out


def test_nav_pages_exist() -> None:
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):  # mkdocs.yml uses MkDocs' own tags (!relative)
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    pages = _nav_pages(config["nav"])
    assert "index.md" in pages and "algorithm.md" in pages and "experiments/mlp.md" in pages
    missing = [p for p in pages if "://" not in p and not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml nav names missing pages: {missing}"


def _resolves(ident: str) -> bool:
    """A module (found without importing it: torch may be missing), or a name inside one."""
    parts = ident.split(".")
    for k in range(len(parts), 0, -1):
        module = ".".join(parts[:k])
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            break
    else:
        return False
    obj: Any = importlib.import_module(module) if k < len(parts) else None
    for attr in parts[k:]:
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def test_api_pages_reference_existing_objects() -> None:
    idents = {page.name: re.findall(r"^::: ([\w.]+)", page.read_text(), re.M) for page in (DOCS / "api").glob("*.md")}
    assert sum(map(len, idents.values())) >= 10
    missing = [(page, i) for page, ids in sorted(idents.items()) for i in ids if not _resolves(i)]
    assert not missing, f"API pages document objects that do not exist: {missing}"


def test_snippets_exist() -> None:
    for page in PAGES:
        for name in re.findall(r'^--8<-- "([^"]+)"', page.read_text(), re.M):
            assert (ROOT / name).is_file() or (DOCS / name).is_file(), f"{_rel(page)} includes missing {name}"


def test_hooks_publish_every_proof() -> None:
    hooks = _load_hooks()
    statements = sorted(p.name for p in (ROOT / "proofs").glob("[0-9][0-9]_*.md"))
    assert [p.name for p in hooks.proof_files()] == statements and len(statements) >= 8
    table = hooks.proof_table()
    for name in statements:
        assert f"](proofs/{name})" in table, f"proofs/README.md's table does not link {name}"
    assert hooks.MARKER in (DOCS / "proofs.md").read_text()


def test_hooks_rewrite_sphinx_roles() -> None:
    hooks = _load_hooks()
    html = hooks.sphinx_roles_to_html("see :func:<code>~latticesym.testing.invariance_error</code>",
                                      "latticesym.testing")
    assert '<autoref identifier="latticesym.testing.invariance_error"' in html
    assert "<code>invariance_error</code></autoref>" in html
    shown = hooks.strip_test_directives(
        "```python\n# docs: needs spglib, gemmi\nx = 1\n```\n```python\n# docs: no-run\n")
    assert shown == "```python\nx = 1\n```\n```python\n"
    short = hooks.sphinx_roles_to_html(":class:<code>Cell</code>", hooks.page_module("api/adapters.md"))
    assert 'identifier="latticesym.adapters.Cell"' in short


def test_griffe_extension_rewrites_sphinx_math() -> None:
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("docs_griffe_sphinx_math", DOCS / "griffe_sphinx_math.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert doctest.testmod(module).failed == 0
    text = "Intro :math:`\\{x\\}`.\n\n.. math::\n\n    G = L L^T\n\n    H = 1\n\nAfter."
    assert module.sphinx_math_to_arithmatex(text) == "Intro \\(\\{x\\}\\).\n\n\\[\nG = L L^T\nH = 1\n\\]\n\nAfter."
