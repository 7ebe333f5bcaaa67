"""Proof 01: every Krivy-Gruber step is a det +1 integer basis change with the stated G6 update.

See ``proofs/01_krivy_gruber_steps.md``.  Rows convention: ``new_basis = M @ old_basis`` and
``G' = M G M^T``.
"""

from __future__ import annotations

import itertools

import pytest
import sympy as sp

from ._exact import (
    STEP_A1,
    STEP_A2,
    STEP_A8,
    sign_step_a3,
    sign_step_a4,
    step_a5,
    step_a6,
    step_a7,
)

A, B, C, XI, ETA, ZETA = sp.symbols("A B C xi eta zeta", real=True)
N = sp.Symbol("n", integer=True)


def symbolic_gram() -> sp.Matrix:
    """The general symmetric Gram matrix written through its G6 entries."""
    return sp.Matrix([[A, ZETA / 2, ETA / 2], [ZETA / 2, B, XI / 2], [ETA / 2, XI / 2, C]])


def g6_after(m: sp.Matrix) -> list[sp.Expr]:
    """G6 of ``M G M^T`` for the symbolic ``G``, expanded."""
    g = m * symbolic_gram() * m.T
    return [sp.expand(v) for v in (g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1])]


def assert_same_g6(m, expected) -> None:
    __tracebackhide__ = True
    got = g6_after(sp.Matrix(m))
    diff = [sp.expand(g - e) for g, e in zip(got, expected)]
    assert diff == [0] * 6, f"M={m}: M G M^T has G6 {got}, formula says {expected}"


def assert_unimodular_plus(m) -> None:
    __tracebackhide__ = True
    mat = sp.Matrix(m)
    assert all(v.is_integer for v in mat), f"{m} is not an integer matrix"
    assert sp.expand(mat.det()) == 1, f"det {m} = {mat.det()} != 1"


# (label, M, stated G6 update) for the fixed and sign-parametrised steps.
def _steps() -> list[tuple[str, object, list[sp.Expr]]]:
    out: list[tuple[str, object, list[sp.Expr]]] = [
        ("A1", STEP_A1, [B, A, C, ETA, XI, ZETA]),
        ("A2", STEP_A2, [A, C, B, XI, ZETA, ETA]),
        ("A8", STEP_A8, [A, B, A + B + C + XI + ETA + ZETA, 2 * B + XI + ZETA, 2 * A + ETA + ZETA, ZETA]),
    ]
    for s in (1, -1):
        out += [
            (f"A5 s={s}", step_a5(s), [A, B, B + C - s * XI, XI - 2 * s * B, ETA - s * ZETA, ZETA]),
            (f"A6 s={s}", step_a6(s), [A, B, A + C - s * ETA, XI - s * ZETA, ETA - 2 * s * A, ZETA]),
            (f"A7 s={s}", step_a7(s), [A, A + B - s * ZETA, C, XI - s * ETA, ETA, ZETA - 2 * s * A]),
        ]
    return out


STEPS = _steps()


@pytest.mark.proof
@pytest.mark.parametrize(("label", "m", "formula"), STEPS, ids=[s[0] for s in STEPS])
def test_step_is_unimodular_with_stated_g6_update(label, m, formula):
    assert_unimodular_plus(m)
    assert_same_g6(m, formula)


@pytest.mark.proof
def test_step_a1_matrix_is_the_one_in_the_brief():
    # (a, b, c) -> (-b, -a, -c): the swap of a and b with det +1.
    assert STEP_A1 == ((0, -1, 0), (-1, 0, 0), (0, 0, -1))
    assert STEP_A2 == ((-1, 0, 0), (0, 0, -1), (0, -1, 0))
    assert STEP_A8 == ((1, 0, 0), (0, 1, 0), (1, 1, 1))


@pytest.mark.proof
def test_generalised_multiples_for_every_integer_n():
    """c -= n b, c -= n a, b -= n a for a symbolic integer n (the rounded-multiple steps)."""
    cases = [
        (step_a5, [A, B, C - N * XI + N**2 * B, XI - 2 * N * B, ETA - N * ZETA, ZETA]),
        (step_a6, [A, B, C - N * ETA + N**2 * A, XI - N * ZETA, ETA - 2 * N * A, ZETA]),
        (step_a7, [A, B - N * ZETA + N**2 * A, C, XI - N * ETA, ETA, ZETA - 2 * N * A]),
    ]
    for make, formula in cases:
        assert_unimodular_plus(make(N))
        assert_same_g6(make(N), formula)
    # With n = +-1 these are A5-A7: n**2 == 1 turns C - n xi + n**2 B into B + C - s xi.
    for s in (1, -1):
        assert sp.expand((C - N * XI + N**2 * B).subs(N, s) - (B + C - s * XI)) == 0


@pytest.mark.proof
def test_rounded_multiple_brings_the_off_diagonal_into_range():
    """With t = xi / (2B) and n = round(t): xi' = xi - 2nB = 2B (t - n), so |xi'| <= B since
    |t - n| <= 1/2 (same for eta and zeta with A).  The pre-reduction's
    ``q = round(G_ij / G_jj)`` is the same statement for ``G_ij = xi / 2``, ``G_jj = B``."""
    t = sp.Symbol("t", real=True)
    b = sp.Symbol("B", positive=True)
    assert sp.expand((2 * b * t - 2 * N * b) - 2 * b * (t - N)) == 0
    # exact spot check over a grid of rational t, including the ties t = k + 1/2
    for num in range(-40, 41):
        tt = sp.Rational(num, 8)
        n = int(sp.floor(tt + sp.Rational(1, 2)))
        assert abs(2 * tt - 2 * n) <= 1  # |xi'| / B


@pytest.mark.proof
def test_diagonal_sign_changes():
    """diag(i, j, k) sends (xi, eta, zeta) to (j k xi, i k eta, i j zeta); with i j k = 1 that
    is (i xi, j eta, k zeta).  Exhaustive over the four sign triples with product 1."""
    i, j, k = sp.symbols("i j k")
    got = g6_after(sp.diag(i, j, k))
    expected = [i**2 * A, j**2 * B, k**2 * C, j * k * XI, i * k * ETA, i * j * ZETA]
    assert [sp.expand(g - e) for g, e in zip(got, expected)] == [0] * 6
    for signs in itertools.product((1, -1), repeat=3):
        if signs[0] * signs[1] * signs[2] != 1:
            continue
        si, sj, sk = signs
        assert_unimodular_plus(sp.diag(si, sj, sk))
        assert_same_g6(sp.diag(si, sj, sk), [A, B, C, si * XI, sj * ETA, sk * ZETA])


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@pytest.mark.proof
def test_a3_a4_exhaustive_over_sign_patterns():
    """All 27 patterns (l, m, n) in {-1, 0, 1}^3 of (sign xi, sign eta, sign zeta).

    l m n == 1: A3's diag(i, j, k) has det +1 and makes all three entries positive.
    l m n <= 0: A4's diag(i, j, k) (i = -1 iff l == 1, then flip a zero-entry index if the
    product is -1) exists, has det +1 and makes all three entries <= 0.
    """
    needed_flip = []
    for l, m, n in itertools.product((-1, 0, 1), repeat=3):
        if l * m * n == 1:
            d = sign_step_a3(l, m, n)
            new = [d[1][1] * d[2][2] * l, d[0][0] * d[2][2] * m, d[0][0] * d[1][1] * n]
            assert all(v == 1 for v in new), (l, m, n, new)
        else:
            naive = [-1 if s == 1 else 1 for s in (l, m, n)]
            if naive[0] * naive[1] * naive[2] == -1:
                # the flip is needed: show a zero entry exists, and that flipping it is harmless
                assert 0 in (l, m, n), (l, m, n)
                needed_flip.append((l, m, n))
            d = sign_step_a4(l, m, n)
            new = [d[1][1] * d[2][2] * l, d[0][0] * d[2][2] * m, d[0][0] * d[1][1] * n]
            assert all(v <= 0 for v in new), (l, m, n, new)
        assert d[0][0] * d[1][1] * d[2][2] == 1, (l, m, n, d)
    # Without the Grosse-Kunstleve et al. (2004) flip, these patterns would give det -1:
    odd_positive_with_zero = [
        p
        for p in itertools.product((-1, 0, 1), repeat=3)
        if p[0] * p[1] * p[2] == 0 and sum(v == 1 for v in p) % 2 == 1
    ]
    assert sorted(needed_flip) == sorted(odd_positive_with_zero)
    assert (1, 0, -1) in needed_flip


@pytest.mark.proof
def test_a4_reason_no_zero_means_no_flip():
    """Why a zero entry always exists when the flip is needed: if no entry is zero and
    l m n == -1, the number of positive entries is even, so the naive product
    (-1)**(#positive) is +1.  Exhaustive over the nonzero patterns."""
    for pattern in itertools.product((-1, 1), repeat=3):
        if pattern[0] * pattern[1] * pattern[2] == -1:
            positives = sum(v == 1 for v in pattern)
            assert positives % 2 == 0
            assert (-1) ** positives == 1
