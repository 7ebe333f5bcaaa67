"""Proof 10: why S holds boundary maps: the reduced Gram matrix jumps, the min over S does not.

See ``proofs/10_gram_loss_continuity.md``.  Two lattices a distance ~delta apart, straddling a
boundary of the Niggli cone, have reduced Gram matrices O(1) apart; the Gram-space loss with the
minimum over S (proof 08) is at most the input gap 2 delta^2 / 9 (xi differs by 2 delta).
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from latticesym._tables.niggli_neighbours import NIGGLI_NEIGHBOUR_TRANSFORMS

from ._exact import (
    CLOSED_CONE,
    congruent,
    det3,
    frobenius_sq,
    g6_of_gram,
    gram_of_g6,
    in_closed_cone,
    inverse,
    is_niggli_reduced,
    niggli_reduce_gram,
    sub,
)

S_PLUS = [m for m in NIGGLI_NEIGHBOUR_TRANSFORMS if det3(m) == 1]

# (name, boundary point G6_0, index of the entry moved by +-delta)
BOUNDARIES = [
    # type I, xi = B with zeta > 2 eta: on the far side A5 fires (c -> c - b)
    ("xi = B (A5)", (2, 3, 4, 3, Fraction(1, 2), Fraction(3, 2)), 3, -1),
    # type II, A + B + xi + eta + zeta = 0 with 2(A + eta) + zeta > 0: on the far side A8 fires
    ("A+B+xi+eta+zeta = 0 (A8)", (2, 3, 4, Fraction(-5, 2), -1, Fraction(-3, 2)), 3, 1),
]
DELTAS = [Fraction(1, 10), Fraction(1, 100), Fraction(1, 1000)]


def moved(g6, index, amount):
    v = list(g6)
    v[index] += amount
    return tuple(v)


def loss_min_over(transforms, g_p, g_t) -> Fraction:
    return min(frobenius_sq(sub(congruent(m, g_p), g_t)) for m in transforms) / 9


@pytest.mark.proof
@pytest.mark.parametrize(("name", "g6_0", "index", "inside"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_reduced_gram_jumps_but_loss_over_s_is_small(name, g6_0, index, inside):
    assert any(in_closed_cone(g6_0, piece) for piece in CLOSED_CONE)
    assert not is_niggli_reduced(g6_0)  # a boundary point excluded by a special condition
    for delta in DELTAS:
        g_target = gram_of_g6(moved(g6_0, index, inside * delta))  # inside: already reduced
        g_pred = gram_of_g6(moved(g6_0, index, -inside * delta))  # outside: the reducer acts
        assert is_niggli_reduced(g6_of_gram(g_target))
        assert not is_niggli_reduced(g6_of_gram(g_pred))
        input_gap = frobenius_sq(sub(g_pred, g_target)) / 9
        assert input_gap == 2 * delta**2 / 9  # G_12 differs by delta, twice
        _, g_t, _ = niggli_reduce_gram(g_target)
        n_p, g_p, _ = niggli_reduce_gram(g_pred)
        assert g_t == g_target
        # without S (M = I only) the loss stays O(1) as delta -> 0 ...
        assert frobenius_sq(sub(g_p, g_t)) / 9 > Fraction(1, 100), (name, delta)
        # ... with the minimum over S it is at most the input gap
        assert loss_min_over(S_PLUS, g_p, g_t) <= input_gap, (name, delta)
        # the map that does it is inv(N_p) (up to sign), a boundary map in S
        assert inverse(n_p) in set(NIGGLI_NEIGHBOUR_TRANSFORMS)
        assert frobenius_sq(sub(congruent(inverse(n_p), g_p), g_t)) / 9 == input_gap
