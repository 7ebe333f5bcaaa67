"""Proof 02: the Niggli main conditions confine every angle of a reduced cell to [60, 120] deg.

See ``proofs/02_angle_bounds.md``.
"""

from __future__ import annotations

import pytest
import sympy as sp

from ._exact import CLOSED_CONE, extreme_rays, is_niggli_reduced

# A > 0; B = A + d1, C = B + d2 with d1, d2 >= 0 (the main condition A <= B <= C);
# |off-diagonal| = bound * sqrt(1 - s) with s in [0, 1] (the conditions |xi| <= B, ...).
A = sp.Symbol("A", positive=True)
D1, D2, S = sp.symbols("d1 d2 s", nonnegative=True)
B_ = A + D1
C_ = B_ + D2


def _quarter_minus(cos_sq: sp.Expr) -> sp.Expr:
    return sp.factor(sp.together(sp.Rational(1, 4) - cos_sq))


@pytest.mark.proof
def test_cos_squared_at_most_a_quarter():
    """cos^2 <= 1/4 for each angle, symbolically for every cell satisfying the main conditions.

    gamma = angle(a, b): cos = zeta / (2 sqrt(A B)), zeta^2 = A^2 (1 - s).
    beta  = angle(a, c): cos = eta  / (2 sqrt(A C)), eta^2  = A^2 (1 - s).
    alpha = angle(b, c): cos = xi   / (2 sqrt(B C)), xi^2   = B^2 (1 - s).
    """
    cases = {
        "gamma": A**2 * (1 - S) / (4 * A * B_),
        "beta": A**2 * (1 - S) / (4 * A * C_),
        "alpha": B_**2 * (1 - S) / (4 * B_ * C_),
    }
    expected = {
        "gamma": (D1 + A * S) / (4 * (A + D1)),
        "beta": (D1 + D2 + A * S) / (4 * (A + D1 + D2)),
        "alpha": (D2 + (A + D1) * S) / (4 * (A + D1 + D2)),
    }
    for name, cos_sq in cases.items():
        margin = _quarter_minus(cos_sq)
        assert sp.simplify(margin - expected[name]) == 0, (name, margin)
        # numerator and denominator are sums of products of nonnegative symbols
        assert margin.is_nonnegative, (name, margin)


@pytest.mark.proof
def test_half_cosine_means_60_to_120_degrees():
    assert sp.acos(sp.Rational(1, 2)) == sp.pi / 3
    assert sp.acos(-sp.Rational(1, 2)) == 2 * sp.pi / 3
    # acos is decreasing on [-1, 1], so |cos| <= 1/2 <=> angle in [pi/3, 2 pi/3]
    x = sp.Symbol("x")
    assert sp.simplify(sp.diff(sp.acos(x), x) + 1 / sp.sqrt(1 - x**2)) == 0


def _cosines(g6):
    a, b, c, xi, eta, zeta = (sp.Rational(v) for v in g6)
    return {
        "alpha": xi / (2 * sp.sqrt(b * c)),
        "beta": eta / (2 * sp.sqrt(a * c)),
        "gamma": zeta / (2 * sp.sqrt(a * b)),
    }


@pytest.mark.proof
def test_bounds_attained_by_hexagonal_and_fcc():
    hexagonal = (1, 1, 4, 0, 0, -1)  # gamma = 120 deg
    fcc_primitive = (1, 1, 1, 1, 1, 1)  # all angles 60 deg
    assert is_niggli_reduced(hexagonal) and is_niggli_reduced(fcc_primitive)
    assert sp.acos(_cosines(hexagonal)["gamma"]) == sp.Rational(2, 3) * sp.pi
    assert all(sp.acos(c) == sp.pi / 3 for c in _cosines(fcc_primitive).values())
    # alpha = 120 deg needs xi = -B = -sqrt(B C), i.e. B = C: (1, 2, 2, -2, 0, 0) is reduced
    alpha_obtuse = (1, 2, 2, -2, 0, 0)
    assert is_niggli_reduced(alpha_obtuse)
    assert sp.acos(_cosines(alpha_obtuse)["alpha"]) == 2 * sp.pi / 3
    # alpha = beta = 60 deg are attained by the fcc cell above; gamma = 60 deg by it too.


@pytest.mark.proof
def test_beta_never_reaches_120_degrees():
    """cos beta = -1/2 needs eta^2 = A C with eta^2 <= A^2 <= A C, so A = B = C and eta = -A.
    Then the special conditions clash: eta = -A forces zeta = 0, B = C forces |eta| <= |zeta|.
    Exhaustive over a grid of the remaining free entries (xi, zeta) in [-1, 0] (type II is
    forced since eta < 0); the argument itself needs no grid."""
    for p in range(0, 9):
        for q in range(0, 9):
            g6 = (1, 1, 1, -sp.Rational(p, 8), -1, -sp.Rational(q, 8))
            assert not is_niggli_reduced(g6), g6


@pytest.mark.proof
def test_extreme_rays_of_the_closed_cone_respect_the_bound():
    """Cross-check: every extreme ray of the closed Niggli cone has |cos| <= 1/2 wherever the
    angle is defined (nonzero lengths); since the bound is not linear in G6 this is a spot
    check, the symbolic test above is the proof."""
    for piece, rows in CLOSED_CONE.items():
        for ray in extreme_rays(rows):
            a, b, c, xi, eta, zeta = ray
            for num, l1, l2 in ((xi, b, c), (eta, a, c), (zeta, a, b)):
                if l1 and l2:
                    assert sp.Rational(num) ** 2 <= sp.Rational(l1 * l2), (piece, ray)


@pytest.mark.proof
def test_angle_range_does_not_imply_reduced():
    """The converse fails: gamma = 60 deg with |zeta| > A (A = 1, B = 4, zeta = 2)."""
    g6 = (1, 4, 4, 0, 0, 2)
    assert sp.acos(_cosines(g6)["gamma"]) == sp.pi / 3
    assert not is_niggli_reduced(g6)
