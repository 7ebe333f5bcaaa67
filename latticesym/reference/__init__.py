"""The exact-arithmetic Niggli oracle: every comparison decided exactly (eps = 0).

``latticesym.reference`` is the ground truth that the float, mpmath and torch reducers are
cross-checked against.  It imports nothing but :mod:`latticesym.errors` and never touches float
arithmetic to decide anything: floats are converted exactly (``Fraction(x)``), the Gram matrix
is scaled to Python integers, and Krivy-Gruber runs on those.

Examples
--------
The worked example of Krivy & Gruber (1976), given as a G6 vector:

>>> from latticesym.reference import niggli_reduce_g6
>>> [int(x) for x in niggli_reduce_g6((9, 27, 4, -5, -4, -22)).g6]
[4, 9, 9, 9, 3, 4]

A sheared simple cubic lattice:

>>> r = niggli_reduce([[1, 0, 0], [1000, 1, 0], [0, 0, 1]])
>>> [int(x) for x in r.g6], r.transform.tolist()
([1, 1, 1, 0, 0, 0], [[1, 0, 0], [-1000, 1, 0], [0, 0, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from latticesym.errors import LatticeShapeError, SingularLatticeError
from latticesym.reference._conditions import niggli_violations
from latticesym.reference._exact import (
    check_nonsingular,
    det3,
    exact_gram,
    integer_gram,
    is_rational_matrix,
    to_exact_lattice,
    to_exact_scalar,
)
from latticesym.reference._krivy_gruber import KGState, krivy_gruber, pre_reduce

__all__ = [
    "ExactNiggliResult",
    "exact_g6",
    "exact_gram",
    "gram_from_g6",
    "is_niggli_reduced",
    "niggli_reduce",
    "niggli_reduce_g6",
    "niggli_violations",
    "reduction_problems",
    "to_exact_lattice",
]

DEFAULT_MAX_ITER = 100_000


def _frozen_object_array(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    arr = np.empty((3, 3), dtype=object)
    for i in range(3):
        for j in range(3):
            arr[i, j] = rows[i][j]
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class ExactNiggliResult:
    """Result of the exact reduction.

    Attributes
    ----------
    lattice : numpy.ndarray, shape (3, 3), dtype object
        The reduced basis (rows), ``Fraction`` entries for rational input (sympy expressions
        for an irrational input with a rational metric); ``None`` when the reduction was run on a
        G6 vector alone (:func:`niggli_reduce_g6`).  Equals ``transform @ input`` exactly.
    transform : numpy.ndarray, shape (3, 3), dtype object
        Python ``int`` entries, ``det == +1``.  Read-only.
    g6 : tuple of 6 Fraction
        The Niggli-reduced ``(A, B, C, xi, eta, zeta)``, unique for the lattice.
    iterations : int
        Number of unimodular steps applied (pre-reduction plus Krivy-Gruber).
    """

    lattice: Any
    transform: np.ndarray
    g6: tuple[Fraction, ...]
    iterations: int

    @property
    def gram(self) -> tuple[tuple[Fraction, ...], ...]:
        """The reduced Gram matrix, exactly."""
        return gram_from_g6(self.g6)


def gram_from_g6(g6: Sequence[Any]) -> tuple[tuple[Fraction, ...], ...]:
    """Exact symmetric Gram matrix of a G6 vector ``(A, B, C, xi, eta, zeta)``."""
    A, B, C, xi, eta, zeta = (to_exact_scalar(x) for x in g6)
    return ((A, zeta / 2, eta / 2), (zeta / 2, B, xi / 2), (eta / 2, xi / 2, C))


def exact_g6(lattice: Any) -> tuple[Fraction, ...]:
    """Exact G6 vector of a lattice (rows are basis vectors).

    >>> exact_g6([[1, 0, 0], [0.5, 1, 0], [0, 0, 2]])
    (Fraction(1, 1), Fraction(5, 4), Fraction(4, 1), Fraction(0, 1), Fraction(0, 1), Fraction(1, 1))
    """
    g = exact_gram(to_exact_lattice(lattice))
    return (g[0][0], g[1][1], g[2][2], 2 * g[1][2], 2 * g[0][2], 2 * g[0][1])


def _run(int_gram: list[list[int]], max_iter: int, skip: frozenset[str]) -> KGState:
    state = KGState(g=int_gram)
    if "pre" not in skip:
        pre_reduce(state, max_iter)
    krivy_gruber(state, max_iter, skip=skip)
    return state


def niggli_reduce(lattice: Any, *, max_iter: int = DEFAULT_MAX_ITER, _skip: frozenset[str] = frozenset()
                  ) -> ExactNiggliResult:
    """Niggli-reduce a lattice exactly.

    Parameters
    ----------
    lattice : array_like, shape (3, 3)
        Rows are basis vectors.  Entries: ints, floats (converted exactly), ``Fraction``,
        ``Decimal``, sympy ``Integer``/``Rational``, or sympy expressions whose Gram matrix
        :math:`L L^T` is rational (e.g. hexagonal cells with :math:`\\sqrt{3}/2`).
    max_iter : int
        Cap on the number of steps; exact Krivy-Gruber always terminates, so the cap is a guard
        that raises :class:`~latticesym.errors.ReductionError`, never a silent stop.

    Returns
    -------
    ExactNiggliResult
        ``lattice == transform @ input`` exactly, ``det(transform) == +1``, and ``g6`` satisfies
        every Niggli condition of International Tables A.  The G6 is unique; the basis is unique
        up to the lattice's automorphisms.

    Raises
    ------
    LatticeShapeError, NonFiniteLatticeError, SingularLatticeError, NotExactError, TypeError

    Notes
    -----
    The Gram matrix :math:`G = L L^T` is multiplied by the least common denominator of its
    entries, giving an integer matrix on which every comparison is exact.  Each step applies an
    integer :math:`M` with :math:`\\det M = 1` as :math:`G \\leftarrow M G M^T`,
    :math:`T \\leftarrow M T`.

    References
    ----------
    Krivy & Gruber (1976), Acta Cryst. A32, 297. Grosse-Kunstleve, Sauter & Adams (2004),
    Acta Cryst. A60, 1.
    """
    rows = to_exact_lattice(lattice)
    gram = exact_gram(rows)
    check_nonsingular(rows, gram)
    int_gram, denom = integer_gram(gram)
    state = _run(int_gram, max_iter, _skip)
    t = state.t
    if is_rational_matrix(rows):
        out = [[sum(t[i][k] * rows[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    else:
        import sympy

        out = [[sympy.nsimplify(sum(t[i][k] * sympy.sympify(rows[k][j]) for k in range(3))) for j in range(3)]
               for i in range(3)]
    g6 = tuple(Fraction(x, denom) for x in state.g6())
    return ExactNiggliResult(lattice=_frozen_object_array(out), transform=_frozen_object_array(t), g6=g6,
                             iterations=state.iterations)


def niggli_reduce_g6(g6: Sequence[Any], *, max_iter: int = DEFAULT_MAX_ITER) -> ExactNiggliResult:
    """Niggli-reduce a metric given as a G6 vector; ``lattice`` of the result is ``None``.

    The transform acts on any basis with this metric: ``transform @ L`` is reduced.
    """
    if len(g6) != 6:
        raise LatticeShapeError(f"a G6 vector has 6 entries, got {len(g6)}")
    gram = gram_from_g6(g6)
    if not all(isinstance(x, Fraction) for row in gram for x in row):
        raise TypeError("G6 entries must be rational for the exact oracle")
    check_nonsingular(gram, gram)  # det(G) > 0: positive definite needs A > 0 and minors > 0 too
    if gram[0][0] <= 0 or gram[0][0] * gram[1][1] - gram[0][1] ** 2 <= 0:
        raise SingularLatticeError(f"G6 {tuple(str(x) for x in g6)} is not positive definite")
    int_gram, denom = integer_gram(gram)
    state = _run(int_gram, max_iter, frozenset())
    return ExactNiggliResult(lattice=None, transform=_frozen_object_array(state.t),
                             g6=tuple(Fraction(x, denom) for x in state.g6()), iterations=state.iterations)


def is_niggli_reduced(x: Any) -> bool:
    """Whether a G6 vector (length 6) or a lattice (3x3) satisfies every Niggli condition exactly.

    Written from International Tables A, independently of the reducer
    (see :func:`niggli_violations` for the list of conditions).

    >>> is_niggli_reduced((4, 9, 9, 9, 3, 4))
    True
    >>> is_niggli_reduced([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    False
    """
    arr = np.asarray(x, dtype=object)
    if arr.shape == (6,):
        g6 = tuple(to_exact_scalar(v) for v in arr)
    elif arr.shape == (3, 3):
        g6 = exact_g6(x)
    else:
        raise LatticeShapeError(f"expected a G6 vector (6,) or a lattice (3, 3), got shape {arr.shape}")
    return not niggli_violations(g6)


def reduction_problems(lattice: Any, result: ExactNiggliResult) -> list[str]:
    """Everything wrong with ``result`` as a Niggli reduction of ``lattice`` (empty if correct).

    Checks, exactly: the transform is an integer matrix with determinant +1; ``transform @
    lattice == result.lattice``; ``result.g6`` is the metric of ``result.lattice``; and it meets
    every Niggli condition.  Used by the tests of every reducer, and to test the testers.
    """
    problems = []
    t = np.asarray(result.transform, dtype=object)
    if t.shape != (3, 3) or not all(isinstance(x, int | np.integer) for x in t.flat):
        return [f"transform is not a 3x3 integer matrix: {t.tolist()}"]
    d = det3([[int(x) for x in row] for row in t])
    if d != 1:
        problems.append(f"det(transform) = {d}, not +1")
    rows = to_exact_lattice(lattice)
    product = [[sum(int(t[i][k]) * rows[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    out = to_exact_lattice(result.lattice)
    if [list(r) for r in out] != product:
        problems.append("transform @ lattice != result.lattice")
    if exact_g6(out) != tuple(result.g6):
        problems.append(f"g6 {tuple(str(x) for x in result.g6)} is not the metric of result.lattice")
    problems += [f"Niggli condition violated: {v}" for v in niggli_violations(result.g6)]
    return problems
