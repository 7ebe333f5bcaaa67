"""Proof 09: a unique reduced G6 is not a unique reduced basis; the ambiguity is Aut(G) exactly.

See ``proofs/09_basis_non_uniqueness.md``.  For a reduced basis R with Gram matrix G, the det +1
transforms T with T R Niggli reduced are exactly Aut(G) n SL(3, Z).  Every such T lies in S
(proof 08: G and T G T^T are both in the closed cone), so scanning S is exhaustive.
"""

from __future__ import annotations

import pytest

from latticesym._tables.niggli_neighbours import NIGGLI_NEIGHBOUR_TRANSFORMS

from ._exact import (
    EXAMPLE_LATTICES,
    IDENTITY,
    automorphisms,
    congruent,
    det3,
    g6_of_gram,
    g6_of_lattice,
    is_niggli_reduced,
    matmul,
    reduced_gram,
)

# |Aut(G) n SL(3,Z)| = half the holohedry order (the other half is -1 times it)
EXPECTED_REDUCED_BASES = {
    "cubic": 24,  # m-3m, order 48
    "fcc": 24,
    "bcc": 24,
    "hexagonal": 12,  # 6/mmm, order 24
    "rhombohedral": 6,  # -3m, order 12
    "monoclinic": 2,  # 2/m, order 4
    "triclinic": 1,  # -1, order 2: the reduced basis is unique among det +1 transforms
}


@pytest.mark.proof
@pytest.mark.parametrize("name", sorted(EXPECTED_REDUCED_BASES))
def test_reduced_bases_are_exactly_the_automorphism_orbit(name):
    lattice = EXAMPLE_LATTICES[name]
    n, g = reduced_gram(lattice)
    reduced_basis = matmul(n, lattice)
    assert is_niggli_reduced(g6_of_gram(g))
    found = []
    for t in NIGGLI_NEIGHBOUR_TRANSFORMS:
        if det3(t) != 1:
            continue
        g_new = congruent(t, g)
        if is_niggli_reduced(g6_of_gram(g_new)):
            # uniqueness of the reduced G6, checked exhaustively for this lattice
            assert g_new == g, (name, t)
            found.append(t)
    auts_plus = [m for m in automorphisms(g, [2, 2, 2]) if det3(m) == 1]
    assert sorted(found) == sorted(auts_plus)
    assert len(found) == EXPECTED_REDUCED_BASES[name]
    bases = {matmul(t, reduced_basis) for t in found}
    assert len(bases) == len(found)  # distinct bases, all reduced, one G6
    assert all(g6_of_lattice(b) == g6_of_gram(g) for b in bases)


@pytest.mark.proof
def test_small_explicit_example_hexagonal():
    """Two different reduced bases of the hexagonal example lattice, related by the 6-fold
    rotation a -> a + b, b -> -a (an automorphism of G6 (2, 2, 3, 0, 0, -2))."""
    lattice = EXAMPLE_LATTICES["hexagonal"]
    assert is_niggli_reduced(g6_of_lattice(lattice))
    sixfold = ((1, 1, 0), (-1, 0, 0), (0, 0, 1))
    other = matmul(sixfold, lattice)
    assert det3(sixfold) == 1 and sixfold != IDENTITY
    assert other != lattice
    assert g6_of_lattice(other) == g6_of_lattice(lattice)
    assert is_niggli_reduced(g6_of_lattice(other))
