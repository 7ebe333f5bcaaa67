"""Proof 05: the lattice-space proxy loss is not zero on equivalent lattices (counterexamples).

See ``proofs/05_lattice_loss_counterexamples.md``.  loss(pred, target) = MSE(pred, inv(N) target)
with ``N @ pred`` Niggli reduced (the research note's proxy; ``target`` already reduced).
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from ._exact import (
    EXAMPLE_LATTICES,
    IDENTITY,
    cayley_rotation,
    det3,
    g6_of_lattice,
    gram,
    inverse,
    is_niggli_reduced,
    matmul,
    mse,
    niggli_reduce_gram,
    transpose,
)


def lattice_proxy_loss(pred, target):
    """The research note's loss with the exact reducer: returns (loss, N, N @ pred)."""
    n, _, _ = niggli_reduce_gram(gram(pred))
    reduced = matmul(n, pred)
    return mse(pred, matmul(inverse(n), target)), n, reduced


CUBIC = EXAMPLE_LATTICES["cubic"]
TRICLINIC = EXAMPLE_LATTICES["triclinic"]

# (name, M) with pred = M @ target: a cyclic permutation (det +1), a sign-permutation, a shear.
BASIS_CHANGES = [
    ("cyclic", ((0, 1, 0), (0, 0, 1), (1, 0, 0))),
    ("signed swap", ((0, 1, 0), (1, 0, 0), (0, 0, -1))),
    ("shear 10**6", ((1, 0, 0), (10**6, 1, 0), (0, 0, 1))),
]


@pytest.mark.proof
@pytest.mark.parametrize(("name", "m"), BASIS_CHANGES, ids=[b[0] for b in BASIS_CHANGES])
def test_cubic_target_same_lattice_positive_loss(name, m):
    target = CUBIC
    assert is_niggli_reduced(g6_of_lattice(target))
    assert abs(det3(m)) == 1
    pred = matmul(m, target)  # the same lattice in another basis
    loss, n, reduced = lattice_proxy_loss(pred, target)
    # N @ pred is a Niggli-reduced basis of the cubic lattice ...
    assert det3(n) == 1 and is_niggli_reduced(g6_of_lattice(reduced))
    assert gram(reduced) == gram(target)  # ... with the unique reduced metric ...
    assert reduced != target  # ... but it is a different (automorphism-related) basis,
    assert loss > 0  # so the loss is positive on an exactly equivalent pair.
    # pred - inv(N) target = inv(N) (R - target): zero iff R == target
    assert loss == mse(matmul(inverse(n), reduced), matmul(inverse(n), target))


@pytest.mark.proof
def test_cyclic_permutation_value():
    """pred = P (cyclic permutation) is already reduced, so N = I and loss = |P - I|^2 / 9 = 2/3."""
    pred = matmul(BASIS_CHANGES[0][1], CUBIC)
    loss, n, _ = lattice_proxy_loss(pred, CUBIC)
    assert n == IDENTITY
    assert loss == Fraction(2, 3)


@pytest.mark.proof
def test_shear_value_is_huge():
    """The 10**6 shear: the reducer lands on a signed permutation R != I, and the residual is
    multiplied by inv(N), which carries the 10**6 entry."""
    pred = matmul(BASIS_CHANGES[2][1], CUBIC)
    loss, _, _ = lattice_proxy_loss(pred, CUBIC)
    assert loss > 10**11


ROTATIONS = [(1, 2, 3), (Fraction(1, 3), 0, 0), (Fraction(-2, 7), Fraction(1, 5), Fraction(3, 4))]


@pytest.mark.proof
@pytest.mark.parametrize("target", [CUBIC, TRICLINIC], ids=["cubic", "triclinic"])
@pytest.mark.parametrize("w", ROTATIONS, ids=[str(w) for w in ROTATIONS])
def test_rotated_prediction_positive_loss(target, w):
    """pred = target @ Q^T (a rigid rotation, Q exact rational via Cayley): same Gram matrix,
    hence already reduced, N = I, and loss = MSE(target Q^T, target) > 0 for Q != I."""
    q = cayley_rotation(*w)
    assert matmul(q, transpose(q)) == IDENTITY and det3(q) == 1 and q != IDENTITY
    assert is_niggli_reduced(g6_of_lattice(target))
    pred = matmul(target, transpose(q))
    assert gram(pred) == gram(target)
    loss, n, _ = lattice_proxy_loss(pred, target)
    assert n == IDENTITY
    assert loss == mse(pred, target) > 0
