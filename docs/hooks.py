"""MkDocs build hooks: publish the proof statements of ``proofs/`` inside the site.

MkDocs only reads pages below ``docs_dir``, and the proofs live in ``proofs/`` next to their
pytest modules.  Instead of committing copies (which would drift), this hook

- adds every ``proofs/NN_*.md`` to the build as a generated page ``proofs/NN_*.md``
  (``on_files``), titled by its first heading and listed under "Proofs" in the navigation
  (``on_config``);
- replaces the marker ``<!-- proofs:table -->`` in ``docs/proofs.md`` with the table of
  ``proofs/README.md``, its links pointing at the generated pages (``on_page_markdown``).

It also hides the first-line directives ``# docs: no-run`` / ``# docs: needs spglib`` of code
blocks, which only ``tests/unit/test_docs.py`` reads.

The library's docstrings are numpy style with Sphinx cross-reference roles (``:func:`x```,
``:class:`x```, ...), which mkdocstrings renders literally; ``on_page_content`` turns them into
optional cross-references: links where the target is documented, plain code otherwise.  (Sphinx
math is rewritten earlier, in the docstrings themselves, by ``docs/griffe_sphinx_math.py``.)

Only the standard library and MkDocs are used, so ``make docs`` needs nothing beyond the
``docs`` extra.  The helpers without a ``config`` argument are tested in
``tests/unit/test_docs.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROOFS = ROOT / "proofs"
MARKER = "<!-- proofs:table -->"
_PROOF_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.md$")


def proof_files(proofs: Path = PROOFS) -> list[Path]:
    """The proof statements ``proofs/NN_name.md``, in order."""
    return sorted(p for p in proofs.glob("*.md") if _PROOF_NAME.match(p.name))


def proof_title(path: Path) -> str:
    """The first Markdown heading of a proof statement (its file name if it has none)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def proof_table(proofs: Path = PROOFS) -> str:
    """The statement table of ``proofs/README.md`` with links rewritten to ``proofs/NN_name.md``."""
    lines = (proofs / "README.md").read_text(encoding="utf-8").splitlines()
    table = [line for line in lines if line.startswith("|")]
    if not table:
        raise ValueError(f"{proofs / 'README.md'} has no table of proofs")
    text = "\n".join(table)
    return re.sub(r"\]\((\d\d_[a-z0-9_]+\.md)\)", r"](proofs/\1)", text)


def _nav_with_proofs(nav: list[Any], entries: list[dict[str, str]]) -> bool:
    """Replace the nav item ``{"Proofs": "proofs.md"}`` (at any depth) by a section."""
    for i, item in enumerate(nav):
        if isinstance(item, dict):
            for key, value in item.items():
                if value == "proofs.md":
                    nav[i] = {key: [{"Overview": "proofs.md"}, *entries]}
                    return True
                if isinstance(value, list) and _nav_with_proofs(value, entries):
                    return True
    return False


def on_config(config: Any) -> Any:
    nav = config.get("nav")
    if nav:
        entries = [{proof_title(p): f"proofs/{p.name}"} for p in proof_files()]
        _nav_with_proofs(nav, entries)
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path in proof_files():
        files.append(File.generated(config, f"proofs/{path.name}", content=path.read_text(encoding="utf-8")))
    return files


_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|const):<code>(~?)([\w.]+)(\(\))?</code>")


def page_module(src_uri: str) -> str | None:
    """``latticesym.<name>`` for an API page ``api/<name>.md`` (``None`` elsewhere)."""
    m = re.fullmatch(r"api/(\w+)\.md", src_uri)
    return f"latticesym.{m.group(1)}" if m and m.group(1) != "index" else None


def sphinx_roles_to_html(html: str, module: str | None = None) -> str:
    """Rewrite the Sphinx cross-reference roles that mkdocstrings leaves in rendered docstrings.

    ``:func:`~a.b.c``` becomes an optional autoref to ``a.b.c`` showing ``c``; a bare name is
    looked up in ``module`` first and in ``latticesym`` second.
    """
    def role(m: re.Match[str]) -> str:
        tilde, name, call = m.group(1), m.group(2), m.group(3) or ""
        shown = name.rsplit(".", 1)[-1] if tilde else name
        if "." in name:
            ident, slug = name, f"latticesym.{name}"
        else:
            ident, slug = (f"{module}.{name}" if module else f"latticesym.{name}"), f"latticesym.{name}"
        return f'<autoref identifier="{ident}" slug="{slug}" optional><code>{shown}{call}</code></autoref>'

    return _ROLE.sub(role, html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return sphinx_roles_to_html(html, page_module(page.file.src_uri))


_TEST_DIRECTIVE = re.compile(r"^(```python[^\n]*\n)[ \t]*# docs: (?:no-run|needs [\w., ]+)[ \t]*\n", re.M)


def strip_test_directives(markdown: str) -> str:
    """Drop the ``# docs: no-run`` / ``# docs: needs ...`` first lines (read by ``tests/unit/test_docs.py``)."""
    return _TEST_DIRECTIVE.sub(r"\1", markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri == "proofs.md" and MARKER in markdown:
        markdown = markdown.replace(MARKER, proof_table())
    return strip_test_directives(markdown)
