r"""Boundary maps of the Niggli cone: the finite candidate set :math:`S` of the Gram-space loss.

:math:`S` is the set of integer :math:`3\times 3` matrices :math:`M` with :math:`\det M = \pm 1` for
which some positive-definite Gram matrix :math:`G` has both :math:`G` and :math:`M G M^T` in the
*closed* Niggli cone (rows convention: a basis change is ``L' = M @ L``, ``G' = M @ G @ M.T``).
It holds the automorphism group of every reduced form and every map between two reduced bases of
nearby lattices across a boundary of the cone, and is closed under :math:`M \mapsto -M` and
:math:`M \mapsto M^{-1}`; :math:`|S| = 1992`, all entries in :math:`\{-1, 0, 1\}`.

The table is package data, ``niggli_neighbours.txt`` beside this module (one matrix a line, its
nine entries row by row, sorted lexicographically).  It is written by :mod:`.derive`
(``python -m latticesym._tables.niggli_neighbours.derive --write``; ``--check`` re-derives and
compares byte for byte) and certified exactly by ``proofs/test_08_boundary_maps.py`` (proof 08).

Examples
--------
>>> S = niggli_neighbour_transforms()
>>> len(S), ((1, 0, 0), (0, 1, 0), (0, 0, 1)) in S
(1992, True)
>>> niggli_neighbour_array().shape, niggli_neighbour_array().dtype
((1992, 3, 3), dtype('int64'))
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from latticesym.errors import LatticeError

__all__ = [
    "DATA_FILE", "NIGGLI_NEIGHBOUR_TRANSFORMS", "IntMatrix3", "niggli_neighbour_array", "niggli_neighbour_transforms",
    "parse_table",
]

DATA_FILE = "niggli_neighbours.txt"
"""Name of the data file inside this package."""

IntMatrix3 = tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]


def parse_table(text: str) -> tuple[IntMatrix3, ...]:
    """Parse the text format (``#`` comment lines, then nine integers a line) into nested tuples.

    Raises
    ------
    LatticeError
        A data line without exactly nine integers, or a matrix with :math:`\\det M \\ne \\pm 1`.
    """
    out: list[IntMatrix3] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            v = [int(x) for x in line.split()]
        except ValueError as exc:
            raise LatticeError(f"{DATA_FILE} line {lineno}: not integers: {line!r}") from exc
        if len(v) != 9:
            raise LatticeError(f"{DATA_FILE} line {lineno}: {len(v)} entries, expected 9")
        m: IntMatrix3 = ((v[0], v[1], v[2]), (v[3], v[4], v[5]), (v[6], v[7], v[8]))
        det = (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )
        if det not in (1, -1):
            raise LatticeError(f"{DATA_FILE} line {lineno}: det = {det}, expected +-1")
        out.append(m)
    return tuple(out)


@functools.cache
def niggli_neighbour_transforms() -> tuple[IntMatrix3, ...]:
    """The 1992 matrices of :math:`S` as nested int tuples, sorted lexicographically (read once)."""
    text = resources.files("latticesym._tables.niggli_neighbours").joinpath(DATA_FILE).read_text(encoding="ascii")
    return parse_table(text)


@functools.cache
def niggli_neighbour_array() -> np.ndarray:
    """:func:`niggli_neighbour_transforms` as a read-only ``(1992, 3, 3)`` int64 array, same order."""
    arr = np.asarray(niggli_neighbour_transforms(), dtype=np.int64).reshape(-1, 3, 3)
    arr.flags.writeable = False
    return arr


NIGGLI_NEIGHBOUR_TRANSFORMS: tuple[IntMatrix3, ...] = niggli_neighbour_transforms()
"""The table itself (same object as :func:`niggli_neighbour_transforms`), for the proofs."""
