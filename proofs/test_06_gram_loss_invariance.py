"""Proof 06: the Gram-space loss is zero on a whole equivalence class, basis and orientation free.

loss(pred, target) = min over M in S of |M G_p M^T - G_t|_F^2 / 9, with G_p, G_t the reduced
Gram matrices (N_p pred pred^T N_p^T etc.) and S = ``latticesym._tables.niggli_neighbours`` (proof 08).
See ``proofs/06_gram_loss_invariance.md``.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import sympy as sp

from latticesym._tables.niggli_neighbours import NIGGLI_NEIGHBOUR_TRANSFORMS

from ._exact import (
    EXAMPLE_LATTICES,
    IDENTITY,
    automorphisms,
    cayley_rotation,
    congruent,
    det3,
    g6_of_gram,
    gram,
    gram_of_g6,
    gram_space_loss,
    inverse,
    matmul,
    mse,
    reduced_gram,
    transpose,
)

# the det +1 half acts on Gram matrices exactly like all of S (M and -M give the same M G M^T)
S_PLUS = [IDENTITY] + [m for m in NIGGLI_NEIGHBOUR_TRANSFORMS if det3(m) == 1 and m != IDENTITY]

BASIS_CHANGES = {
    "identity": IDENTITY,
    "cyclic": ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
    "mirror (det -1)": ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "shear": ((1, 0, 0), (3, 1, 0), (-2, 5, 1)),
    "mixed": ((2, 1, 0), (1, 1, 0), (4, -3, 1)),
}
ROTATIONS = {
    "none": (0, 0, 0),
    "cayley(1,2,3)": (1, 2, 3),
    "cayley(-2/7,1/5,3/4)": (Fraction(-2, 7), Fraction(1, 5), Fraction(3, 4)),
}


@pytest.mark.proof
def test_gram_is_rotation_invariant_symbolic():
    """G(L Q^T) = L Q^T Q L^T = L L^T whenever Q^T Q = I (matrix-symbol algebra), and the
    Cayley parametrisation gives Q^T Q = I for every real (p, q, r) (rational functions)."""
    lat = sp.MatrixSymbol("L", 3, 3)
    q = sp.MatrixSymbol("Q", 3, 3)
    g_rot = (lat * q.T) * (lat * q.T).T
    assert g_rot.subs(q.T * q, sp.Identity(3)) == lat * lat.T
    p, r, s = sp.symbols("p r s", real=True)
    skew = sp.Matrix([[0, -s, r], [s, 0, -p], [-r, p, 0]])
    q_c = (sp.eye(3) - skew).inv() * (sp.eye(3) + skew)
    assert (q_c.T * q_c - sp.eye(3)).applyfunc(sp.simplify) == sp.zeros(3, 3)
    assert sp.simplify(q_c.det() - 1) == 0


@pytest.mark.proof
def test_reduced_gram_matrix_is_its_g6():
    """The Gram matrix and the G6 vector determine each other, so a unique reduced G6 is a
    unique reduced Gram *matrix*; only the reduced *basis* is unique up to automorphisms."""
    a, b, c, d, e, f = sp.symbols("a b c d e f")
    g = sp.Matrix([[a, f, e], [f, b, d], [e, d, c]])
    g6 = [g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]]
    back = sp.Matrix([[g6[0], g6[5] / 2, g6[4] / 2], [g6[5] / 2, g6[1], g6[3] / 2], [g6[4] / 2, g6[3] / 2, g6[2]]])
    assert back == g


@pytest.mark.proof
@pytest.mark.parametrize("name", sorted(EXAMPLE_LATTICES))
def test_loss_is_zero_on_the_equivalence_class(name):
    """pred = M0 target Q^T for several unimodular M0 (det +-1) and exact rotations Q.

    Both reduce to the same G6, hence the same Gram matrix, so the identity in S gives 0.  The
    map U = N_p M0 inv(N_t) between the two reduced bases is an automorphism of the reduced form
    (U G U^T = G) and lies in S, as proof 08 guarantees for every map between reduced bases."""
    target = EXAMPLE_LATTICES[name]
    n_t, g_t = reduced_gram(target)
    auts = set(automorphisms(g_t, [2, 2, 2]))
    s_set = set(NIGGLI_NEIGHBOUR_TRANSFORMS)
    for (m_name, m0), (q_name, w) in itertools.product(BASIS_CHANGES.items(), ROTATIONS.items()):
        q = cayley_rotation(*w)
        pred = matmul(matmul(m0, target), transpose(q))
        n_p, g_p = reduced_gram(pred)
        assert g6_of_gram(g_p) == g6_of_gram(g_t), (name, m_name, q_name)
        assert g_p == g_t
        u = matmul(matmul(n_p, m0), inverse(n_t))
        assert congruent(u, g_t) == g_t and u in auts and u in s_set, (name, m_name, q_name, u)
        assert gram_space_loss(pred, target, S_PLUS) == 0


@pytest.mark.proof
def test_lattice_loss_positive_where_gram_loss_is_zero():
    """On proof 05's counterexamples the Gram-space loss is exactly zero."""
    cubic = EXAMPLE_LATTICES["cubic"]
    triclinic = EXAMPLE_LATTICES["triclinic"]
    q = cayley_rotation(1, 2, 3)
    cases = [
        (matmul(((0, 1, 0), (0, 0, 1), (1, 0, 0)), cubic), cubic),
        (matmul(((1, 0, 0), (10**6, 1, 0), (0, 0, 1)), cubic), cubic),
        (matmul(triclinic, transpose(q)), triclinic),
    ]
    for pred, target in cases:
        n, _ = reduced_gram(pred)
        assert mse(pred, matmul(inverse(n), target)) > 0
        assert gram_space_loss(pred, target, S_PLUS) == 0


@pytest.mark.proof
def test_loss_between_different_lattices_is_basis_and_orientation_free():
    """For non-equivalent pred and target, the loss is positive and unchanged by any basis
    change or rotation of either argument (it depends on the reduced Gram matrices only)."""
    pairs = [("triclinic", "monoclinic"), ("hexagonal", "rhombohedral"), ("fcc", "bcc")]
    m1 = BASIS_CHANGES["mixed"]
    m2 = BASIS_CHANGES["mirror (det -1)"]
    q1 = cayley_rotation(1, 2, 3)
    q2 = cayley_rotation(Fraction(-2, 7), Fraction(1, 5), Fraction(3, 4))
    for p_name, t_name in pairs:
        pred, target = EXAMPLE_LATTICES[p_name], EXAMPLE_LATTICES[t_name]
        base = gram_space_loss(pred, target, S_PLUS)
        assert base > 0
        moved_pred = matmul(matmul(m1, pred), transpose(q1))
        moved_target = matmul(matmul(m2, target), transpose(q2))
        assert gram_space_loss(moved_pred, moved_target, S_PLUS) == base, (p_name, t_name)


@pytest.mark.proof
def test_mirror_images_need_no_special_case():
    """A lattice and its mirror image are rotations of each other: -I is an automorphism of
    every lattice, so L R^T = (-L)(-R)^T with -R a proper rotation and -L = (-I) L the same
    lattice.  Hence a Gram-based loss being blind to handedness loses nothing for lattices."""
    reflection = ((1, 0, 0), (0, 1, 0), (0, 0, -1))
    for lat in EXAMPLE_LATTICES.values():
        mirrored = matmul(lat, transpose(reflection))
        minus_r = tuple(tuple(-v for v in row) for row in reflection)
        assert det3(minus_r) == 1
        minus_l = tuple(tuple(-v for v in row) for row in lat)
        assert matmul(minus_l, transpose(minus_r)) == mirrored
        assert gram(mirrored) == gram(lat)


@pytest.mark.proof
def test_reduced_forms_used_here_are_the_expected_ones():
    expected = {
        "cubic": (1, 1, 1, 0, 0, 0),
        "hexagonal": (2, 2, 3, 0, 0, -2),
        "fcc": (2, 2, 2, 2, 2, 2),
        "bcc": (3, 3, 3, -2, -2, -2),
    }
    for name, g6 in expected.items():
        _, g = reduced_gram(EXAMPLE_LATTICES[name])
        assert g == gram_of_g6(g6), name
