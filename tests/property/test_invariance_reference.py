"""The invariance suite for the exact oracle (``pytest -m invariance``).

For drawn exact lattices L, unimodular M and exact rational rotations Q (Cayley transform):
the reduced G6 is a function of the lattice alone (basis, orientation, handedness of the basis),
the result honours the contract (``transform @ L == lattice`` exactly, det +1, reduced), and
reduction is idempotent up to the lattice's automorphisms.  Every property runs at least 200
examples under the ``ci`` hypothesis profile.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from latticesym import strategies as lst
from latticesym.errors import ReductionError
from latticesym.reference import (
    exact_g6,
    is_niggli_reduced,
    niggli_reduce,
    niggli_reduce_g6,
    niggli_violations,
)
from latticesym.reference import niggli_reduce as _real_reduce
from latticesym.reference._exact import det3

pytestmark = pytest.mark.invariance

exact_lattices = lst.lattices(kind="physical", exact=True)
boundary_lattices = lst.lattices(kind="boundary", exact=True)
any_exact = st.one_of(exact_lattices, boundary_lattices)
sl3z = lst.unimodular_matrices(max_entry=5, det=1)
gl3z_minus = lst.unimodular_matrices(max_entry=5, det=-1)
big_shears = lst.unimodular_matrices(max_entry=10**6, det=1)
rotations = lst.rotations(exact=True)

SMALL = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=np.int64).reshape(-1, 3, 3)
SMALL = SMALL[np.abs(np.rint(np.linalg.det(SMALL))) == 1]
COEFFS = np.array([v for v in itertools.product(range(-2, 3), repeat=3) if any(v)], dtype=np.int64)


def _obj(m) -> np.ndarray:
    return np.array([[x for x in row] for row in np.asarray(m, dtype=object)], dtype=object)


def _mul(a, b) -> np.ndarray:
    return _obj(a) @ _obj(b)


def _int_gram(g6) -> tuple[np.ndarray, int]:
    """Gram matrix of an exact G6, scaled to integers (object ints)."""
    A, B, C, xi, eta, zeta = (Fraction(x) for x in g6)
    g = [[A, zeta / 2, eta / 2], [zeta / 2, B, xi / 2], [eta / 2, xi / 2, C]]
    d = 1
    for x in (v for row in g for v in row):
        d = d * x.denominator // np.gcd(d, x.denominator)
    return np.array([[int(x * d) for x in row] for row in g], dtype=object), d


@given(any_exact, sl3z)
def test_g6_invariant_under_sl3z(lattice, m) -> None:
    assert niggli_reduce(_mul(m, lattice)).g6 == niggli_reduce(lattice).g6


@given(any_exact, gl3z_minus)
def test_g6_invariant_under_det_minus_one(lattice, m) -> None:
    assert niggli_reduce(_mul(m, lattice)).g6 == niggli_reduce(lattice).g6


@given(exact_lattices, big_shears)
def test_g6_invariant_under_large_shears(lattice, m) -> None:
    assert niggli_reduce(_mul(m, lattice)).g6 == niggli_reduce(lattice).g6


@given(any_exact, rotations)
def test_g6_invariant_under_exact_rotations(lattice, q) -> None:
    assert niggli_reduce(_mul(lattice, _obj(q).T)).g6 == niggli_reduce(lattice).g6


@given(any_exact, sl3z, rotations)
def test_g6_invariant_under_basis_change_and_rotation(lattice, m, q) -> None:
    assert niggli_reduce(_mul(_mul(m, lattice), _obj(q).T)).g6 == niggli_reduce(lattice).g6


@given(any_exact, sl3z)
def test_unreduced_g6_changes_but_reduced_does_not(lattice, m) -> None:
    # exact_g6 is the metric of the basis; it is invariant only after reduction
    assert niggli_reduce_g6(exact_g6(_mul(m, lattice))).g6 == niggli_reduce(lattice).g6


@given(any_exact, sl3z)
def test_transform_maps_input_to_output_exactly(lattice, m) -> None:
    basis = _mul(m, lattice)
    result = niggli_reduce(basis)
    assert (result.transform @ basis == result.lattice).all()


@given(any_exact, big_shears)
def test_transform_is_unimodular_det_plus_one(lattice, m) -> None:
    t = niggli_reduce(_mul(m, lattice)).transform
    assert all(type(x) is int for x in t.flat)
    assert det3(t) == 1


@given(any_exact, sl3z)
def test_output_is_niggli_reduced(lattice, m) -> None:
    result = niggli_reduce(_mul(m, lattice))
    assert is_niggli_reduced(result.g6), niggli_violations(result.g6)
    assert is_niggli_reduced(result.lattice)


@given(any_exact, sl3z)
def test_g6_is_the_metric_of_the_output(lattice, m) -> None:
    result = niggli_reduce(_mul(m, lattice))
    assert exact_g6(result.lattice) == result.g6


@given(any_exact, sl3z)
def test_idempotent_g6(lattice, m) -> None:
    result = niggli_reduce(_mul(m, lattice))
    assert niggli_reduce(result.lattice).g6 == result.g6


@given(any_exact, sl3z)
def test_idempotent_transform_is_identity_or_automorphism(lattice, m) -> None:
    result = niggli_reduce(_mul(m, lattice))
    again = niggli_reduce(result.lattice)
    g, _ = _int_gram(result.g6)
    t = _obj(again.transform)
    assert (t @ g @ t.T == g).all()
    if not any(abs(v) == 0 or abs(v) in (result.g6[0], result.g6[1]) for v in result.g6[3:]) and len(
        set(result.g6[:3])
    ) == 3:
        # no symmetry and off every special boundary: the reduced basis is unique up to -I only
        assert (t == np.eye(3, dtype=int)).all() or (t == -np.eye(3, dtype=int)).all()


@given(any_exact, sl3z)
def test_volume_and_handedness_preserved(lattice, m) -> None:
    basis = _mul(m, lattice)
    assert det3(niggli_reduce(basis).lattice) == det3(basis)


@given(any_exact, sl3z)
def test_first_vector_is_a_shortest_lattice_vector(lattice, m) -> None:
    g, _ = _int_gram(niggli_reduce(_mul(m, lattice)).g6)
    norms = np.einsum("ni,ij,nj->n", COEFFS.astype(object), g, COEFFS.astype(object))
    assert g[0][0] == min(norms)


@given(any_exact)
def test_reduced_basis_has_minimal_length_sum(lattice) -> None:
    """Niggli cells are Buerger cells: A + B + C is minimal over neighbouring bases."""
    g, _ = _int_gram(niggli_reduce(lattice).g6)
    traces = np.einsum("nij,jk,nik->n", SMALL.astype(object), g, SMALL.astype(object))
    assert g[0][0] + g[1][1] + g[2][2] == min(traces)


@given(any_exact, st.fractions(min_value=Fraction(1, 1000), max_value=1000))
def test_scaling_scales_g6_and_keeps_transform(lattice, t) -> None:
    base = niggli_reduce(lattice)
    scaled = niggli_reduce(_obj(lattice) * t)
    assert scaled.g6 == tuple(x * t * t for x in base.g6)
    assert (scaled.transform == base.transform).all()


@given(any_exact, sl3z)
def test_predicate_agrees_with_reducer(lattice, m) -> None:
    basis = _mul(m, lattice)
    assert is_niggli_reduced(basis) == (exact_g6(basis) == niggli_reduce(basis).g6)


@given(any_exact, st.permutations([0, 1, 2]))
def test_g6_invariant_under_axis_permutations(lattice, perm) -> None:
    permuted = _obj(lattice)[list(perm)]
    assert niggli_reduce(permuted).g6 == niggli_reduce(lattice).g6


@given(any_exact, sl3z)
def test_g6_reduction_matches_lattice_reduction(lattice, m) -> None:
    basis = _mul(m, lattice)
    by_metric = niggli_reduce_g6(exact_g6(basis))
    by_basis = niggli_reduce(basis)
    assert by_metric.g6 == by_basis.g6
    assert (by_metric.transform == by_basis.transform).all()


@given(any_exact, big_shears)
def test_iterations_grow_with_log_of_shear(lattice, m) -> None:
    entries = max(abs(int(x)) for x in _obj(m).flat)
    assert niggli_reduce(_mul(m, lattice)).iterations <= 40 + 12 * np.log10(max(entries, 1))


@given(any_exact, sl3z, sl3z)
def test_two_bases_reduce_to_bases_related_by_an_automorphism(lattice, m1, m2) -> None:
    r1 = niggli_reduce(_mul(m1, lattice))
    r2 = niggli_reduce(_mul(m2, lattice))
    assert r1.g6 == r2.g6
    # r2.lattice = A @ r1.lattice with A = T2 M2 inv(M1) inv(T1), an automorphism of the reduced form
    lat1, lat2 = _obj(r1.lattice), _obj(r2.lattice)
    inv1 = np.array(
        [[Fraction(x) for x in row] for row in np.linalg.inv(np.array(lat1, dtype=float))], dtype=object
    )
    a = lat2 @ inv1
    a_int = np.array([[round(float(x)) for x in row] for row in a], dtype=object)
    assert (a_int @ lat1 == lat2).all()
    assert det3(a_int) == 1


@given(any_exact, sl3z)
def test_output_lattice_generates_the_same_lattice(lattice, m) -> None:
    basis = _mul(m, lattice)
    result = niggli_reduce(basis)
    # inverse of a det-1 integer matrix is integer: adjugate
    t = result.transform
    adj = np.array(
        [[t[(j + 1) % 3][(i + 1) % 3] * t[(j + 2) % 3][(i + 2) % 3]
          - t[(j + 1) % 3][(i + 2) % 3] * t[(j + 2) % 3][(i + 1) % 3] for j in range(3)] for i in range(3)],
        dtype=object,
    )
    assert (adj @ _obj(result.lattice) == basis).all()


# --- test the tester -------------------------------------------------------------------------------
PROPERTIES = [
    (test_g6_invariant_under_sl3z, (any_exact, sl3z)),
    (test_g6_invariant_under_exact_rotations, (any_exact, rotations)),
    (test_transform_maps_input_to_output_exactly, (any_exact, sl3z)),
    (test_transform_is_unimodular_det_plus_one, (any_exact, big_shears)),
    (test_output_is_niggli_reduced, (any_exact, sl3z)),
    (test_idempotent_g6, (any_exact, sl3z)),
    (test_volume_and_handedness_preserved, (any_exact, sl3z)),
    (test_first_vector_is_a_shortest_lattice_vector, (any_exact, sl3z)),
]


def _flipped(lattice, **kw):
    from dataclasses import replace

    r = _real_reduce(lattice, **kw)
    return replace(r, transform=-np.array(r.transform), lattice=-np.array(r.lattice))


def _skipping(*steps):
    def broken(lattice, **kw):
        return _real_reduce(lattice, max_iter=10_000, _skip=frozenset(steps))

    return broken


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("sign flipped (det -1 transform)", _flipped),
        ("A4 skipped", _skipping("A4")),
        ("A3 skipped", _skipping("A3")),
        ("A1 skipped", _skipping("A1")),
        ("A2 skipped", _skipping("A2")),
        ("A5-A7 and pre-reduction skipped", _skipping("pre", "A5", "A6", "A7")),
        ("A8 and pre-reduction skipped", _skipping("pre", "A8")),
    ],
)
def test_suite_catches_a_broken_reducer(name, broken, monkeypatch) -> None:
    """Each deliberately broken oracle fails at least one property of this suite."""
    import sys

    module = sys.modules[__name__]
    monkeypatch.setattr(module, "niggli_reduce", broken)
    caught = []
    quick = settings(max_examples=100, phases=[Phase.generate], report_multiple_bugs=False, database=None)
    for prop, strategies in PROPERTIES:
        # a fresh hypothesis test around the same body: quick, no shrinking, real tests untouched
        try:
            quick(given(*strategies)(prop.hypothesis.inner_test))()
        except (AssertionError, ReductionError) as exc:  # a failed property, or a broken loop's cap
            caught.append((prop.__name__, type(exc).__name__))
    assert caught, f"no property caught the broken reducer: {name}"
