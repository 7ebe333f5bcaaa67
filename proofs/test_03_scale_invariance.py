"""Proof 03: with e = eps * V**(2/3) every decision of the float reducer is scale invariant.

See ``proofs/03_scale_invariance.md``.
"""

from __future__ import annotations

import pytest
import sympy as sp

from ._exact import g6_of_lattice, is_niggli_reduced

A, B, C, XI, ETA, ZETA = sp.symbols("A B C xi eta zeta", real=True)
T, V, EPS = sp.symbols("t V epsilon", positive=True)
G6_SYMBOLS = (A, B, C, XI, ETA, ZETA)


def _comparisons() -> list[tuple[str, sp.Expr, sp.Expr]]:
    """Every tolerant comparison ``lhs < rhs - e`` in docs/algorithm.md (phases 1 and 2).

    ``x > y`` is ``y < x - e``; ``x == y`` is "neither", so it is decided by the same two
    comparisons; the tolerant sign of ``x`` compares ``x`` with 0.
    """
    out = [
        ("A1: A > B", B, A),
        ("A1: |xi| > |eta|", sp.Abs(ETA), sp.Abs(XI)),
        ("A2: B > C", C, B),
        ("A2: |eta| > |zeta|", sp.Abs(ZETA), sp.Abs(ETA)),
        ("A5: |xi| > B", B, sp.Abs(XI)),
        ("A5: 2 eta < zeta", 2 * ETA, ZETA),
        ("A5: zeta < 0", ZETA, sp.Integer(0)),
        ("A6: |eta| > A", A, sp.Abs(ETA)),
        ("A6: 2 xi < zeta", 2 * XI, ZETA),
        ("A7: |zeta| > A", A, sp.Abs(ZETA)),
        ("A7: 2 xi < eta", 2 * XI, ETA),
        ("A7: eta < 0", ETA, sp.Integer(0)),
        ("A8: xi+eta+zeta+A+B < 0", XI + ETA + ZETA + A + B, sp.Integer(0)),
        ("A8: 2(A+eta)+zeta > 0", sp.Integer(0), 2 * (A + ETA) + ZETA),
    ]
    for name, x in (("xi", XI), ("eta", ETA), ("zeta", ZETA)):
        out.append((f"sign({name}) = -1", x, sp.Integer(0)))
        out.append((f"sign({name}) = +1", sp.Integer(0), x))
    # phase 1: the step v_i -= q v_j is taken only if G'_ii < G_ii - e, with
    # G'_ii = G_ii - 2 q G_ij + q^2 G_jj (q an integer; here the (c, b) pair, G_ij = xi / 2)
    q = sp.Symbol("q", integer=True)
    out.append(("pre: |c - q b|^2 < |c|^2", C - q * XI + q**2 * B, C))
    out.append(("pre: |b|^2 < |a|^2 (sort)", B, A))
    return out


COMPARISONS = _comparisons()


def _scaled(expr: sp.Expr) -> sp.Expr:
    """The expression evaluated on the G6 of ``t * L``, i.e. on ``t**2 * g6``."""
    return expr.subs({s: T**2 * s for s in G6_SYMBOLS}, simultaneous=True)


@pytest.mark.proof
def test_tolerance_scales_like_the_g6():
    e = EPS * V ** sp.Rational(2, 3)
    e_scaled = EPS * (T**3 * V) ** sp.Rational(2, 3)  # V(tL) = |det(t L)| = t^3 V
    assert sp.simplify(e_scaled - T**2 * e) == 0


@pytest.mark.proof
def test_volume_of_a_scaled_lattice():
    lat = sp.Matrix(3, 3, sp.symbols("l0:9", real=True))
    assert sp.expand((T * lat).det() - T**3 * lat.det()) == 0


@pytest.mark.proof
@pytest.mark.parametrize(("name", "lhs", "rhs"), COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_every_comparison_keeps_its_truth_value(name, lhs, rhs):
    """``lhs(t^2 g) - rhs(t^2 g) + e(t L) == t^2 (lhs(g) - rhs(g) + e(L))`` for all t > 0, so the
    sign of ``lhs - rhs + e`` (the decision ``lhs < rhs - e``) does not depend on t."""
    e = EPS * V ** sp.Rational(2, 3)
    e_scaled = EPS * (T**3 * V) ** sp.Rational(2, 3)
    d = lhs - rhs + e
    d_scaled = _scaled(lhs) - _scaled(rhs) + e_scaled
    assert sp.simplify(d_scaled - T**2 * d) == 0, name
    assert (T**2).is_positive


@pytest.mark.proof
def test_rounded_multiples_are_scale_free():
    """The pre-reduction's q = round(G_ij / G_jj) is a ratio of two degree-1 quantities."""
    assert sp.simplify(_scaled(XI / 2) / _scaled(B) - (XI / 2) / B) == 0


@pytest.mark.proof
def test_volume_unchanged_by_basis_change_and_rotation():
    """det(M L Q^T) = det M det L det Q (generic symbolic 3x3), and |det M| = |det Q| = 1 for
    M unimodular and Q orthogonal (det(Q)^2 = det(Q Q^T) = 1), so V and e are unchanged."""
    x = sp.Matrix(3, 3, sp.symbols("x0:9"))
    y = sp.Matrix(3, 3, sp.symbols("y0:9"))
    assert sp.expand((x * y).det() - x.det() * y.det()) == 0
    assert sp.expand(x.T.det() - x.det()) == 0
    q = sp.Matrix(3, 3, sp.symbols("q0:9"))
    # det(Q Q^T) = det(Q)^2, so Q Q^T = I forces det(Q) = +-1
    assert sp.expand((q * q.T).det() - q.det() ** 2) == 0


@pytest.mark.proof
def test_other_exponents_are_not_scale_invariant():
    """V**p scales like t**(3p); only p = 2/3 matches the G6's t**2 (cctbx/ASE/pymatgen use
    V**(1/3), a length, against squared lengths; spglib uses p = 0)."""
    p = sp.Symbol("p", real=True)
    assert sp.solve(sp.Eq(3 * p, 2), p) == [sp.Rational(2, 3)]
    for bad in (0, sp.Rational(1, 3)):
        ratio = sp.simplify((T**3 * V) ** bad / (T**2 * V**bad))
        assert ratio != 1 and sp.simplify(ratio - T ** (3 * bad - 2)) == 0


def _tolerant_main_conditions(g6, e) -> bool:
    """The main Niggli conditions with a tolerance (the float predicate's shape)."""
    a, b, c, xi, eta, zeta = g6
    return a <= b + e and b <= c + e and abs(xi) <= b + e and abs(eta) <= a + e and abs(zeta) <= a + e


@pytest.mark.proof
def test_absolute_eps_is_not_scale_invariant():
    """Counterexample for an absolute tolerance (spglib: eps = 1e-5 in Angstrom^2).

    L = [[2,0,0],[7,1,0],[0,0,3]] is far from reduced (G6 = (4, 50, 9, 0, 0, 28): B > C and
    |zeta| = 28 > A = 4).  At scale 1e-8 every G6 entry is < 1e-14, so with eps = 1e-5 all
    tolerant conditions hold and the cell is declared reduced; at scale 1 it is not.  With
    e = eps * V**(2/3) the verdict is the same at both scales.  All numbers exact.
    """
    lat = ((2, 0, 0), (7, 1, 0), (0, 0, 3))
    eps = sp.Rational(1, 10**5)
    verdicts_abs, verdicts_rel = [], []
    for t in (sp.Integer(1), sp.Rational(1, 10**8)):
        scaled = tuple(tuple(t * v for v in row) for row in lat)
        g6 = tuple(sp.Rational(v.numerator, v.denominator) for v in g6_of_lattice(scaled))
        vol = abs(sp.Matrix(scaled).det())
        verdicts_abs.append(_tolerant_main_conditions(g6, eps))
        verdicts_rel.append(_tolerant_main_conditions(g6, eps * vol ** sp.Rational(2, 3)))
        assert not is_niggli_reduced(g6)
    assert verdicts_abs == [False, True], verdicts_abs
    assert verdicts_rel == [False, False], verdicts_rel
