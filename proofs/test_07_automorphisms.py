"""Proof 07: automorphism groups of reduced cubic, hexagonal, fcc (and bcc) forms, enumerated.

See ``proofs/07_automorphisms.md``.  Aut(G) = {M integer : M G M^T == G}; completeness of the
enumeration rests on the bound x_i^2 <= (G^-1)_ii * x G x^T for every coefficient vector x.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import sympy as sp

from ._exact import (
    IDENTITY,
    automorphisms,
    det3,
    gram_of_g6,
    inverse,
    is_niggli_reduced,
    matmul,
)


def coefficient_bounds(g) -> list[int]:
    """b_i = floor(sqrt(max_k (G^-1)_ii G_kk)): |M[k][i]| <= b_i for every automorphism M."""
    g_inv = inverse(g)
    out = []
    for i in range(3):
        top = max(Fraction(g_inv[i][i]) * g[k][k] for k in range(3))
        b = math.isqrt(top.numerator // top.denominator)
        while (b + 1) ** 2 <= top:
            b += 1
        assert b * b <= top < (b + 1) ** 2
        out.append(b)
    return out


@pytest.mark.proof
def test_coefficient_bound_ingredients():
    """For positive-definite G with inner product <u, v>_G = u G v^T, the vector u = e_i G^-1
    satisfies <u, x>_G = x_i and <u, u>_G = (G^-1)_ii (symbolic, generic symmetric G).  With
    Cauchy-Schwarz, x_i^2 <= (G^-1)_ii * <x, x>_G; a row of an automorphism has
    <x, x>_G = G_kk, which gives :func:`coefficient_bounds`."""
    a, b, c, d, e, f = sp.symbols("a b c d e f", real=True)
    g = sp.Matrix([[a, f, e], [f, b, d], [e, d, c]])
    g_inv = g.inv()
    x = sp.Matrix([sp.symbols("x1 x2 x3", real=True)])
    for i in range(3):
        u = sp.Matrix([[1 if j == i else 0 for j in range(3)]]) * g_inv
        assert sp.simplify((u * g * x.T)[0, 0] - x[i]) == 0
        assert sp.simplify((u * g * u.T)[0, 0] - g_inv[i, i]) == 0


def is_group(elements) -> bool:
    s = set(elements)
    return IDENTITY in s and all(matmul(x, y) in s for x in s for y in s) and all(inverse(x) in s for x in s)


NEG_I = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))

FORMS = [
    # (name, reduced G6, |Aut|) ; hexagonal: A = B, zeta = -A, c^2 = 2 (any c with c^2 != 1 works)
    ("cubic", (1, 1, 1, 0, 0, 0), 48),
    ("hexagonal", (1, 1, 2, 0, 0, -1), 24),
    ("hexagonal example lattice", (2, 2, 3, 0, 0, -2), 24),
    ("fcc primitive", (1, 1, 1, 1, 1, 1), 48),
    ("bcc primitive", (3, 3, 3, -2, -2, -2), 48),
]


@pytest.mark.proof
@pytest.mark.parametrize(("name", "g6", "order"), FORMS, ids=[f[0] for f in FORMS])
def test_automorphism_group_order(name, g6, order):
    assert is_niggli_reduced(g6)
    g = gram_of_g6(g6)
    bounds = coefficient_bounds(g)
    assert max(bounds) <= 1, bounds  # so the search box is {-1, 0, 1}^9
    auts = automorphisms(g, bounds)
    assert len(auts) == order
    assert NEG_I in auts
    assert is_group(auts)
    assert sum(det3(m) == 1 for m in auts) == order // 2


@pytest.mark.proof
def test_enumeration_box_is_not_too_small():
    """Sanity check of completeness: enlarging the box to {-2..2} finds nothing new."""
    for _, g6, order in FORMS[:2] + FORMS[3:4]:
        assert len(automorphisms(gram_of_g6(g6), [2, 2, 2])) == order


@pytest.mark.proof
def test_hexagonal_with_c_squared_one_is_still_24():
    """(1, 1, 1, 0, 0, -1): c has the length of a, but c is not in the triangular net's
    vector system, so the group stays 6/mmm (order 24)."""
    g = gram_of_g6((1, 1, 1, 0, 0, -1))
    bounds = coefficient_bounds(g)
    assert len(automorphisms(g, bounds)) == 24


@pytest.mark.proof
def test_rows_are_lattice_vectors_of_the_same_length():
    """The enumeration only draws rows x with x G x^T == G_kk; spot-check the fcc count:
    the 12 shortest vectors of fcc (its 12 nearest neighbours) appear as rows."""
    g = gram_of_g6((1, 1, 1, 1, 1, 1))
    rows = {m[k] for m in automorphisms(g, [1, 1, 1]) for k in range(3)}
    shortest = [
        x
        for x in itertools.product((-1, 0, 1), repeat=3)
        if any(x) and sum(g[i][j] * x[i] * x[j] for i in range(3) for j in range(3)) == 1
    ]
    assert len(shortest) == 12
    assert rows == set(shortest)
