"""Proof 08: the boundary-map set S of the closed Niggli cone is finite; enumerate and certify it.

S = {M in GL(3, Z) : some positive-definite G has G and M G M^T both in the closed Niggli cone}.

See ``proofs/08_boundary_maps.md`` for the argument.  This module

* checks the lemmas that bound S (extreme rays of the two closed pieces, the 1/4 lower bound,
  the finite parts of the coefficient lemma, the index-counting step),
* re-verifies the exact enumeration of S made by the package's derivation
  (``latticesym/_tables/niggli_neighbours/derive.py``: every member with a rational witness G,
  every other candidate with an exact certificate, an empty face or a Farkas vector), each
  certificate re-checked here with the independent helpers of ``_exact``, and
* compares the result with the shipped table ``niggli_neighbours.txt`` byte for byte.

Regenerate the shipped table with ``python -m latticesym._tables.niggli_neighbours.derive --write``.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from latticesym._tables.niggli_neighbours import DATA_FILE, derive, niggli_neighbour_transforms, parse_table
from latticesym._tables.niggli_neighbours.derive import Decision

from ._exact import (
    CLOSED_CONE,
    IDENTITY,
    STEP_A1,
    STEP_A2,
    STEP_A8,
    apply6,
    automorphisms,
    det3,
    extreme_rays,
    g6_matrix,
    g6_matrix_int,
    gram_of_g6,
    in_closed_cone,
    inverse,
    is_niggli_reduced,
    is_psd,
    quad_g6_coefficients,
    step_a5,
    step_a6,
    step_a7,
)

PIECES = ("I", "II")
RAYS = {piece: extreme_rays(CLOSED_CONE[piece]) for piece in PIECES}
KAPPA = Fraction(1, 4)

# Lemma E: the rows a primitive coefficient vector can have when x G x^T equals G_jj, j its
# last nonzero index (B_1, B_2, B_3 in the markdown).
ROWS_J1 = tuple((s, 0, 0) for s in (1, -1))
ROWS_J2 = tuple((x1, s, 0) for x1 in (-1, 0, 1) for s in (1, -1))
ROWS_J3 = tuple((x1, x2, s) for x1 in range(-2, 3) for x2 in range(-2, 3) for s in (1, -1))
BOX_ROWS = ROWS_J1 + ROWS_J2 + ROWS_J3

STORED_TABLE = Path(derive.__file__).resolve().parent / DATA_FILE


def dot(h, g):
    """Exact dot product (ints stay ints; Fractions where the inputs have them)."""
    return sum(a * b for a, b in zip(h, g))


def last_index(x) -> int:
    return max(i for i in range(3) if x[i] != 0)


def unit(i: int) -> list[int]:
    e = [0] * 6
    e[i] = 1
    return e


# ---------------------------------------------------------------------------------------------
# the lemmas
# ---------------------------------------------------------------------------------------------
@pytest.mark.proof
def test_closed_pieces_are_pointed_and_full_dimensional():
    """Both pieces are pointed polyhedral cones (constraint rank 6), so each is the conic hull
    of its extreme rays; the sum of the rays is an interior point, which is Niggli reduced, so
    each piece is the closure of its reduced points (the special conditions only bite on
    boundaries)."""
    for piece in PIECES:
        rows = CLOSED_CONE[piece]
        assert np.linalg.matrix_rank(np.array(rows, dtype=float)) == 6
        rays = RAYS[piece]
        assert len(rays) == {"I": 11, "II": 10}[piece]
        interior = [sum(r[i] for r in rays) for i in range(6)]
        assert all(dot(h, interior) > 0 for h in rows), piece
        assert is_niggli_reduced(interior), (piece, interior)


@pytest.mark.proof
def test_reduced_points_lie_in_the_closed_pieces():
    """Main conditions + sign split imply membership of P_I or P_II (sampled exact G6 grid)."""
    rng = random.Random(8)
    seen = 0
    for _ in range(4000):
        a = Fraction(rng.randint(1, 6))
        v = (a, a + rng.randint(0, 4), a + rng.randint(0, 8), *(Fraction(rng.randint(-12, 12), 2) for _ in range(3)))
        if is_niggli_reduced(v):
            seen += 1
            assert in_closed_cone(v, "I" if v[3] > 0 else "II"), v
    assert seen > 100


@pytest.mark.proof
def test_lemma_k_quarter_lower_bound():
    """For every G in P_I or P_II, G - diag(G)/4 is positive semi-definite, i.e.
    x G x^T >= (A x1^2 + B x2^2 + C x3^2)/4 for all real x.  The map G -> G - diag(G)/4 is
    linear and the PSD matrices form a convex cone, so checking the extreme rays suffices.
    Consequence: every G in the closed cone with A > 0 is positive definite."""
    for piece in PIECES:
        for ray in RAYS[piece]:
            g = gram_of_g6(ray)
            shifted = tuple(tuple(g[i][j] - (KAPPA * g[i][i] if i == j else 0) for j in range(3)) for i in range(3))
            assert is_psd(shifted), (piece, ray)
    # 1/3 would be false: the fcc ray (1,1,1,1,1,1) has smallest normalised eigenvalue 1/2, the
    # type-II ray (1,1,1,-1,-1,0) has 1 - 1/sqrt(2) < 1/3.
    g = gram_of_g6((1, 1, 1, -1, -1, 0))
    assert not is_psd(tuple(tuple(g[i][j] - (Fraction(1, 3) if i == j else 0) for j in range(3)) for i in range(3)))


@pytest.mark.proof
def test_lemma_e_finite_part():
    """Inside the box, Q(x) >= G_jj holds on the whole closed cone: each inequality is linear in
    G6 for fixed x, so it is checked on every extreme ray of both pieces (exact).

    x = (x1, x2, +-1), |x1|, |x2| <= 2: Q(x) - C >= 0;  x = (x1, +-1, 0), |x1| <= 1: Q(x) - B >= 0.
    """
    for piece in PIECES:
        for ray in RAYS[piece]:
            for x in ROWS_J3 + ROWS_J2 + ROWS_J1:
                j = last_index(x)
                assert dot(quad_g6_coefficients(x), ray) - ray[j] >= 0, (piece, ray, x)


@pytest.mark.proof
def test_lemma_e_outside_the_box_spot_check():
    """Outside the box the markdown's case analysis gives Q(x) > G_jj whenever A > 0.  Exact
    spot check on a ring of coefficient vectors (|x_i| <= 6) at every extreme ray with A > 0
    (Q(x) - G_jj is linear in G6; positive on the rays with A > 0 and >= 0 on the others
    gives positive on every G with A > 0)."""
    box = set(BOX_ROWS)
    for piece in PIECES:
        for ray in RAYS[piece]:
            for x in itertools.product(range(-6, 7), repeat=3):
                if not any(x) or x in box:
                    continue
                j = last_index(x)
                value = dot(quad_g6_coefficients(x), ray) - ray[j]
                if ray[0] > 0:
                    assert value > 0, (piece, ray, x)
                else:
                    assert value >= 0, (piece, ray, x)


@pytest.mark.proof
def test_two_dimensional_half_bound():
    """A x1^2 + B x2^2 - sqrt(AB)|x1 x2| - (A x1^2 + B x2^2)/2 = (sqrt(A)|x1| - sqrt(B)|x2|)^2 / 2,
    the inequality behind the 2-D cases of Lemma E (used with |zeta| <= A <= sqrt(AB))."""
    import sympy as sp

    a, b, u, v = sp.symbols("A B u v", positive=True)  # u = |x1|, v = |x2|
    lhs = a * u**2 + b * v**2 - sp.sqrt(a * b) * u * v - (a * u**2 + b * v**2) / 2
    assert sp.simplify(lhs - (sp.sqrt(a) * u - sp.sqrt(b) * v) ** 2 / 2) == 0


@pytest.mark.proof
def test_last_index_counting():
    """For an invertible 3x3 matrix, the sorted last-nonzero indices of its rows satisfy
    j_(m) >= m (rows supported in the first t coordinates are independent, so at most t of
    them).  Exhaustive over the 512 zero patterns: every pattern admitting a nonzero
    determinant (a perfect matching rows -> columns) satisfies it."""
    for bits in range(1 << 9):
        support = [[(bits >> (3 * i + j)) & 1 for j in range(3)] for i in range(3)]
        if any(not any(row) for row in support):
            continue
        nonsingular = any(all(support[i][p[i]] for i in range(3)) for p in itertools.permutations(range(3)))
        if not nonsingular:
            continue
        lasts = sorted(max(j for j in range(3) if support[i][j]) for i in range(3))
        assert lasts[0] >= 0 and lasts[1] >= 1 and lasts[2] >= 2, support


@pytest.mark.proof
def test_fast_g6_matrix_matches_definition():
    rng = random.Random(1)
    for _ in range(100):
        m = tuple(tuple(rng.randint(-3, 3) for _ in range(3)) for _ in range(3))
        assert g6_matrix(m) == g6_matrix_int(m)


# ---------------------------------------------------------------------------------------------
# the enumeration
# ---------------------------------------------------------------------------------------------
def candidate_transforms() -> list:
    """Integer M with det +-1, all rows in the box and all rows of inv(M) in the box (M^-1 is in
    S whenever M is, since the definition is symmetric).  Independent of the derivation's own."""
    rowset = set(BOX_ROWS)
    out = []
    for m in itertools.product(BOX_ROWS, repeat=3):
        if det3(m) in (1, -1) and all(tuple(r) in rowset for r in inverse(m)):
            out.append(m)
    return out


def face_functionals(m) -> list[list[int]]:
    """Linear forms that must vanish on any witness G (see the markdown): Q(M_k) - G_jj and
    G_jj - G_kk (j = last index of row k).  Each is of one sign on the closed cone."""
    out = []
    for k in range(3):
        x = m[k]
        j = last_index(x)
        h = list(quad_g6_coefficients(x))
        h[j] -= 1
        out.append(h)
        out.append([a - b for a, b in zip(unit(j), unit(k))])
    return out


def face_rays(m, piece) -> list:
    fs = face_functionals(m)
    return [r for r in RAYS[piece] if all(dot(f, r) == 0 for f in fs)]


def pair_constraints(t6, s, t) -> list[tuple[int, ...]]:
    """Rows H with H g >= 0 <=> g in P_s and T g in P_t."""
    mapped = [tuple(sum(h[k] * t6[k][c] for k in range(6)) for c in range(6)) for h in CLOSED_CONE[t]]
    return list(CLOSED_CONE[s]) + mapped


def witness_ok(m, s, t, g) -> bool:
    """Exact: A > 0, g in P_s and M g M^T in P_t (A > 0 on the cone => positive definite)."""
    return g[0] > 0 and in_closed_cone(g, s) and in_closed_cone(apply6(g6_matrix_int(m), g), t)


def farkas_ok(m, s, t, y) -> bool:
    """Exact: y >= 0 and y^T H = -e_A, which makes {H g >= 0, A >= 1} infeasible."""
    h = pair_constraints(g6_matrix_int(m), s, t)
    return all(v >= 0 for v in y) and all(
        sum((y[i] * h[i][c] for i in range(len(h))), Fraction(0)) == (-1 if c == 0 else 0) for c in range(6)
    )


def _lp_feasible_point(h_rows):
    h = np.array(h_rows, dtype=float)
    a_ub = np.vstack([-h, [[-1, 0, 0, 0, 0, 0]]])
    b_ub = np.zeros(len(a_ub))
    b_ub[-1] = -1.0
    res = linprog(np.zeros(6), A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * 6, method="highs")
    return res.x if res.status == 0 else None


def verify_decision(m, d: Decision) -> bool:
    """Re-check a decision of the derivation from its certificates alone, with the independent
    exact helpers of ``_exact`` (exact)."""
    if d.member:
        s, t, g = d.witness
        return witness_ok(m, s, t, g)
    covered = set()
    m_inv = inverse(m)
    for cert in d.certificates:
        if cert[0] == "empty face of G":
            if any(r[0] > 0 for r in face_rays(m, cert[1])):
                return False
            covered |= {(cert[1], t) for t in PIECES}
        elif cert[0] == "empty face of G'":
            if any(r[0] > 0 for r in face_rays(m_inv, cert[2])):
                return False
            covered.add((cert[1], cert[2]))
        else:
            _, s, t, y = cert
            if not farkas_ok(m, s, t, y):
                return False
            covered.add((s, t))
    return covered == {(s, t) for s in PIECES for t in PIECES}


def enumerate_neighbours() -> tuple[tuple, dict]:
    """The derivation shipped with the package (cached there)."""
    return derive.enumerate_neighbours()


@pytest.mark.proof
def test_derivation_helpers_agree_with_the_independent_ones():
    """The package's derivation uses its own exact helpers; they agree with ``_exact`` here."""
    assert derive.candidate_transforms() == candidate_transforms()
    assert tuple(derive.BOX_ROWS) == BOX_ROWS
    assert derive.CLOSED_CONE == CLOSED_CONE
    rng = random.Random(2)
    for _ in range(200):
        m = tuple(tuple(rng.randint(-3, 3) for _ in range(3)) for _ in range(3))
        assert derive.g6_action(m) == g6_matrix_int(m)


@pytest.mark.proof
def test_enumeration_is_certified_and_matches_the_stored_set():
    members, decisions = enumerate_neighbours()
    assert len(decisions) == 12912
    for m, d in decisions.items():
        assert verify_decision(m, d), m
    assert len(members) == 1992
    assert sum(det3(m) == 1 for m in members) == 996
    assert STORED_TABLE.read_text(encoding="ascii") == derive.render_table(members)
    assert niggli_neighbour_transforms() == members
    assert parse_table(STORED_TABLE.read_text(encoding="ascii")) == members


@pytest.mark.proof
def test_verification_rejects_tampered_certificates():
    """The checker can fail: a wrong witness, a dropped certificate, a perturbed Farkas vector and
    a member claimed as a non-member are all rejected."""
    _, decisions = enumerate_neighbours()
    member = next(m for m, d in decisions.items() if d.member)
    s, t, g = decisions[member].witness
    assert not verify_decision(member, Decision(True, (s, t, (-1, *g[1:]))))
    assert not verify_decision(member, Decision(False, certificates=[("empty face of G", p) for p in PIECES]))
    farkas = next(
        (m, d) for m, d in decisions.items() if not d.member and any(c[0] == "farkas" for c in d.certificates)
    )
    m, d = farkas
    assert not verify_decision(m, Decision(False, certificates=d.certificates[:-1]))
    bad = [
        (c[0], c[1], c[2], tuple(v + Fraction(1, 7) for v in c[3])) if c[0] == "farkas" else c
        for c in d.certificates
    ]
    assert not verify_decision(m, Decision(False, certificates=bad))


@pytest.mark.proof
def test_set_is_closed_under_negation_and_inversion():
    members = set(enumerate_neighbours()[0])
    neg = {tuple(tuple(-v for v in row) for row in m) for m in members}
    inv = {inverse(m) for m in members}
    assert neg == members and inv == members
    assert IDENTITY in members


@pytest.mark.proof
def test_set_contains_automorphisms_and_krivy_gruber_steps():
    members = set(enumerate_neighbours()[0])
    for g6 in ((1, 1, 1, 0, 0, 0), (1, 1, 2, 0, 0, -1), (1, 1, 1, 1, 1, 1), (3, 3, 3, -2, -2, -2)):
        assert set(automorphisms(gram_of_g6(g6), [1, 1, 1])) <= members, g6
    steps = [STEP_A1, STEP_A2, STEP_A8] + [f(s) for f in (step_a5, step_a6, step_a7) for s in (1, -1)]
    for m in steps:
        assert m in members, m
    for signs in itertools.product((1, -1), repeat=3):
        assert ((signs[0], 0, 0), (0, signs[1], 0), (0, 0, signs[2])) in members


@pytest.mark.proof
def test_face_pruning_agrees_with_plain_lp_on_a_sample():
    """Independent (floating-point) cross-check of the face argument: on a sample of
    candidates rejected without any LP, a plain LP on the full constraints is infeasible."""
    _, decisions = enumerate_neighbours()
    face_only = [m for m, d in decisions.items() if not d.member and all(c[0] != "farkas" for c in d.certificates)]
    rng = random.Random(80)
    for m in rng.sample(face_only, 150):
        t6 = g6_matrix_int(m)
        for s in PIECES:
            for t in PIECES:
                assert _lp_feasible_point(pair_constraints(t6, s, t)) is None, (m, s, t)


@pytest.mark.proof
def test_matrices_outside_the_box_are_not_in_s_sample():
    """Sampled (floating-point LP) evidence for the entry bound: random unimodular matrices
    with an entry of size >= 3 admit no witness."""
    rng = random.Random(81)
    checked = 0
    while checked < 100:
        m = tuple(tuple(rng.randint(-4, 4) for _ in range(3)) for _ in range(3))
        if det3(m) not in (1, -1) or max(abs(v) for row in m for v in row) < 3:
            continue
        checked += 1
        t6 = g6_matrix_int(m)
        for s in PIECES:
            for t in PIECES:
                assert _lp_feasible_point(pair_constraints(t6, s, t)) is None, (m, s, t)


@pytest.mark.proof
@pytest.mark.slow
def test_plain_lp_on_every_candidate_agrees():
    """Full floating-point cross-check (about half a minute): a plain LP on every candidate,
    with no face pruning, gives exactly the same set.  M and -M have the same action on G6,
    so one LP run per pair {M, -M} decides both."""
    members, decisions = enumerate_neighbours()
    lp_members = set()
    for m in decisions:
        if det3(m) != 1:
            continue
        t6 = g6_matrix_int(m)
        if any(_lp_feasible_point(pair_constraints(t6, s, t)) is not None for s in PIECES for t in PIECES):
            lp_members.add(m)
            lp_members.add(tuple(tuple(-v for v in row) for row in m))
    assert lp_members == set(members)
