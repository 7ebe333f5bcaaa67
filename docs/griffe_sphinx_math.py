"""Griffe extension for the API pages: Sphinx math in numpy docstrings becomes arithmatex math.

latticesym's docstrings write math the Sphinx way, ``:math:`e = \\epsilon V^{2/3}``` inline and
``.. math:: G = L L^T`` as a block.  mkdocstrings renders docstrings as Markdown, which would
print the roles literally and eat TeX's backslash escapes (``\\{`` becomes ``{``).  This
extension rewrites the docstring text *before* it is parsed:

- ``:math:`X``` becomes ``\\(X\\)``;
- ``.. math:: X`` (with its indented continuation lines, or an indented block after it) becomes a
  display block ``\\[ X \\]`` on lines of its own;

which ``pymdownx.arithmatex`` (generic mode) then protects from Markdown and hands to MathJax
(``docs/js/mathjax.js``).  Cross-reference roles (``:func:``, ``:class:``, ...) are handled
after rendering, in ``docs/hooks.py``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_INLINE = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def sphinx_math_to_arithmatex(text: str) -> str:
    """Rewrite ``:math:`` roles and ``.. math::`` directives of a docstring (see the module docstring).

    >>> sphinx_math_to_arithmatex("Tolerance :math:`e = V^{2/3}` here.")
    'Tolerance \\\\(e = V^{2/3}\\\\) here.'
    >>> print(sphinx_math_to_arithmatex("Text.\\n\\n.. math:: a = b,\\\\\\n          c = d\\n\\nMore."))
    Text.
    <BLANKLINE>
    \\[
    a = b,\\
    c = d
    \\]
    <BLANKLINE>
    More.
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        base = _indent(lines[i])
        body = [m.group("rest").strip()] if m.group("rest").strip() else []
        i += 1
        # the body: following lines indented deeper than the directive; a blank line belongs to
        # it only when the next non-blank line is indented deeper too
        while i < len(lines):
            if lines[i].strip():
                if _indent(lines[i]) <= base:
                    break
                body.append(lines[i].strip())
                i += 1
                continue
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j == len(lines) or _indent(lines[j]) <= base:
                break
            i = j
        pad = " " * base
        if out and out[-1].strip():
            out.append("")
        out += [pad + "\\[", *(pad + b for b in body), pad + "\\]"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return _INLINE.sub(lambda m: f"\\({m.group(1)}\\)", "\n".join(out))


class SphinxMath(griffe.Extension):
    """Rewrite Sphinx math in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and "math:" in obj.docstring.value:
            obj.docstring.value = sphinx_math_to_arithmatex(obj.docstring.value)
