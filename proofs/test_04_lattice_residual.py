"""Proof 04: the research note's lattice-space residual and its gradient.

See ``proofs/04_lattice_residual.md``.  Rows convention: ``N @ pred`` is reduced.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from ._exact import (
    EXAMPLE_LATTICES,
    frobenius_sq,
    g6_of_lattice,
    gram,
    inverse,
    is_niggli_reduced,
    matmul,
    mse,
    niggli_reduce_gram,
    sub,
)

PRED = sp.Matrix(3, 3, sp.symbols("p0:9", real=True))
TARGET = sp.Matrix(3, 3, sp.symbols("t0:9", real=True))
NMAT = sp.Matrix(3, 3, sp.symbols("n0:9", real=True))


@pytest.mark.proof
def test_residual_identity():
    """pred - inv(N) target == inv(N) (N pred - target) for every invertible N.

    Multiplied through by det N (inv(N) = adj(N) / det N) this is the polynomial identity
    det(N) pred - adj(N) target == adj(N) (N pred - target), which uses adj(N) N = det(N) I.
    """
    adj = NMAT.adjugate()
    det = NMAT.det()
    assert (adj * NMAT - det * sp.eye(3)).applyfunc(sp.expand) == sp.zeros(3, 3)
    lhs = det * PRED - adj * TARGET
    rhs = adj * (NMAT * PRED - TARGET)
    assert (lhs - rhs).applyfunc(sp.expand) == sp.zeros(3, 3)


@pytest.mark.proof
def test_loss_is_a_quadratic_with_the_stated_gradient_where_n_is_constant():
    """With N fixed, K = inv(N) target is a constant matrix and
    loss = (1/9) sum_ij (pred - K)_ij^2 is a polynomial in pred with gradient (2/9)(pred - K)."""
    k = sp.Matrix(3, 3, sp.symbols("k0:9", real=True))
    loss = sum((PRED - k).applyfunc(lambda v: v**2)) / 9
    assert sp.Poly(loss, *PRED).total_degree() == 2
    grad = sp.Matrix(3, 3, [sp.diff(loss, p) for p in PRED])
    assert (grad - sp.Rational(2, 9) * (PRED - k)).applyfunc(sp.expand) == sp.zeros(3, 3)


@pytest.mark.proof
def test_comparisons_are_nonzero_polynomials_in_pred():
    """N changes only where some comparison of the reducer is at equality.  Each comparison
    is a nonzero linear form of the G6 of N' pred (N' the transform so far), i.e. a nonzero
    quadratic polynomial in pred's 9 entries, so its zero set has measure zero.  Checked
    for the six G6 coordinates with N' = I and with a shear N' (a nonzero linear form of
    linearly independent polynomials is nonzero)."""
    for n_prime in (sp.eye(3), sp.Matrix([[1, 0, 0], [3, 1, 0], [-2, 5, 1]])):
        g = (n_prime * PRED) * (n_prime * PRED).T
        coords = [g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]]
        polys = [sp.Poly(sp.expand(c), *PRED) for c in coords]
        monomials = sorted({m for p in polys for m in p.monoms()})
        coeff_matrix = sp.Matrix([[p.as_dict().get(m, 0) for m in monomials] for p in polys])
        assert coeff_matrix.rank() == 6


@pytest.mark.proof
def test_residual_grows_with_inv_n():
    """pred = S (target + Delta) with a shear S of size k = 10**6 and a small Delta.

    The reducer undoes the shear, N pred = target + Delta (reduced), so the reduced-basis
    residual is Delta, while the lattice-space residual pred - inv(N) target equals
    inv(N) Delta, >= 10**6 times larger (exact Fractions)."""
    target = EXAMPLE_LATTICES["triclinic"]  # type I, strictly inside the cone
    assert is_niggli_reduced(g6_of_lattice(target))
    k = 10**6
    delta = Fraction(1, 1000)
    perturbed = ((target[0][0] + delta, target[0][1], target[0][2]), target[1], target[2])
    shear = ((1, 0, 0), (k, 1, 0), (0, 0, 1))
    pred = matmul(shear, perturbed)
    n, _, _ = niggli_reduce_gram(gram(pred))
    reduced = matmul(n, pred)
    assert is_niggli_reduced(g6_of_lattice(reduced))
    assert reduced == perturbed  # the reducer found the unsheared basis (triclinic: unique)
    n_inv = inverse(n)
    reduced_residual = frobenius_sq(sub(reduced, target))
    lattice_residual = frobenius_sq(sub(pred, matmul(n_inv, target)))
    assert lattice_residual == frobenius_sq(matmul(n_inv, sub(reduced, target)))
    assert reduced_residual == delta**2
    assert lattice_residual >= 10**12 * reduced_residual  # squared norms: ratio >= (10**6)**2
    assert mse(pred, matmul(n_inv, target)) == lattice_residual / 9
