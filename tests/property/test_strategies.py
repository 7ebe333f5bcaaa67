"""Property tests of latticesym.strategies: validation, types, invariants and shrink targets.

Exact facts (determinants, relative volumes, Niggli boundaries) are checked in rational
arithmetic: floats are converted with ``Fraction(x)``, which is exact.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from latticesym import strategies
from latticesym.groups import exact_det
from latticesym.reference import exact_g6, niggli_reduce
from latticesym.strategies import (
    BOUNDARY_FAMILIES,
    KINDS,
    NEAR_SINGULAR_RANGE,
    boundary_lattices,
    g6_vectors,
    lattices,
    rotations,
    unimodular_matrices,
)

FLOAT_KINDS = [k for k in KINDS if k != "exact"]


# --------------------------------------------------------------------------- exact helpers
def as_fractions(lattice: Any) -> list[list[Fraction]]:
    return [[Fraction(x) for x in row] for row in np.asarray(lattice, dtype=object)]


def exact_gram(lattice: Any) -> list[list[Fraction]]:
    rows = as_fractions(lattice)
    return [[sum((x * y for x, y in zip(rows[i], rows[j])), Fraction(0)) for j in range(3)] for i in range(3)]


def relative_volume(lattice: Any) -> float:
    """``|det L| / (|a| |b| |c|)``: the determinant exactly, then one rounding per square root."""
    det = abs(exact_det(np.array(as_fractions(lattice), dtype=object)))
    g = exact_gram(lattice)
    return float(det) / math.sqrt(float(g[0][0]) * float(g[1][1]) * float(g[2][2]))


def boundary_equalities(g6: tuple[Fraction, ...]) -> list[str]:
    """The Niggli-boundary equalities that an exact (reduced) G6 vector satisfies."""
    A, B, C, xi, eta, zeta = g6
    found = {
        "A == B": A == B,
        "B == C": B == C,
        "xi == 0": xi == 0,
        "eta == 0": eta == 0,
        "zeta == 0": zeta == 0,
        "|xi| == B": abs(xi) == B,
        "|eta| == A": abs(eta) == A,
        "|zeta| == A": abs(zeta) == A,
        "|xi|+|eta|+|zeta| == A+B (type II)": xi <= 0
        and eta <= 0
        and zeta <= 0
        and abs(xi) + abs(eta) + abs(zeta) == A + B,
    }
    return [name for name, holds in found.items() if holds]


def is_exactly_orthogonal(q: Any) -> bool:
    rows = as_fractions(q)
    return all(
        sum((rows[i][k] * rows[j][k] for k in range(3)), Fraction(0)) == (1 if i == j else 0)
        for i in range(3)
        for j in range(3)
    )


def test_the_helpers_catch_bad_input() -> None:
    """Test the testers: a generic lattice is on no boundary; a shear is not orthogonal."""
    generic = niggli_reduce([[3, 0, 0], [Fraction(1, 3), 4, 0], [Fraction(1, 5), Fraction(2, 7), 5]])
    assert boundary_equalities(generic.g6) == []
    assert boundary_equalities(niggli_reduce(np.eye(3)).g6)  # cubic: on several
    assert not is_exactly_orthogonal([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert not is_exactly_orthogonal(np.diag([1.0, 1.0, 1.0 + 2**-52]))
    assert is_exactly_orthogonal(np.diag([1, -1, 1]))
    assert relative_volume(np.eye(3)) == 1.0
    assert relative_volume([[1, 0, 0], [0, 1, 0], [1, 1, 1e-9]]) < 1e-8


# --------------------------------------------------------------------------- public surface
def test_all_is_the_public_surface() -> None:
    public = {
        name
        for name, obj in vars(strategies).items()
        if not name.startswith("_") and callable(obj) and getattr(obj, "__module__", None) == strategies.__name__
    }
    assert public <= set(strategies.__all__)
    assert all(hasattr(strategies, name) for name in strategies.__all__)


# --------------------------------------------------------------------------- eager validation
@pytest.mark.parametrize(
    "build",
    [
        lambda: lattices(kind="cubic"),
        lambda: lattices(kind=None),  # type: ignore[arg-type]
        lambda: lattices(exact=1),  # type: ignore[arg-type]
        lambda: lattices(min_length=0),
        lambda: lattices(min_length=5, max_length=4),
        lambda: lattices(max_length=float("inf")),
        lambda: lattices(max_length=1e4),
        lambda: lattices(min_length="1"),  # type: ignore[arg-type]
        lambda: lattices(min_length=1.01, max_length=1.05),  # no multiple of 1/16 inside
        lambda: lattices(kind="sheared", max_entry=0),
        lambda: lattices(max_entry=10**10),
        lambda: lattices(max_entry=2.0),  # type: ignore[arg-type]
        lambda: unimodular_matrices(max_entry=0),
        lambda: unimodular_matrices(max_entry=True),
        lambda: unimodular_matrices(det=2),
        lambda: unimodular_matrices(det=0),
        lambda: unimodular_matrices(det="both"),
        lambda: rotations(exact="yes"),  # type: ignore[arg-type]
        lambda: boundary_lattices(family="cubic"),
        lambda: boundary_lattices(family=[]),
        lambda: boundary_lattices(max_entry=-1),
        lambda: g6_vectors(kind="nope"),
    ],
)
def test_bad_arguments_raise_at_construction(build: Any) -> None:
    with pytest.raises(InvalidArgument):
        build()  # no .example(): the error must come when the strategy is built


# --------------------------------------------------------------------------- unimodular matrices
@pytest.mark.parametrize("det", [1, -1, "either"])
@pytest.mark.parametrize("max_entry", [1, 3, 10**6])
def test_unimodular_matrices(det: Any, max_entry: int) -> None:
    allowed = {1, -1} if det == "either" else {det}
    seen_dets: set[int] = set()
    biggest = [0]

    @given(unimodular_matrices(max_entry=max_entry, det=det))
    def check(m: np.ndarray) -> None:
        assert m.shape == (3, 3) and m.dtype == np.int64
        d = exact_det(m)
        assert d in allowed
        assert int(np.abs(m).max()) <= max_entry
        seen_dets.add(d)
        biggest[0] = max(biggest[0], int(np.abs(m).max()))

    check()
    assert seen_dets == allowed  # "either" gives both signs
    assert biggest[0] >= min(max_entry, 10**5)  # large entries are reached


# --------------------------------------------------------------------------- rotations
@given(rotations())
def test_float_rotations_are_orthogonal(q: np.ndarray) -> None:
    assert q.shape == (3, 3) and q.dtype == np.float64
    assert np.abs(q @ q.T - np.eye(3)).max() < 1e-14
    assert abs(np.linalg.det(q) - 1.0) < 1e-14


@given(rotations(exact=True))
def test_exact_rotations_are_exactly_orthogonal(q: np.ndarray) -> None:
    assert q.shape == (3, 3) and q.dtype == object
    assert all(isinstance(x, Fraction) for x in q.ravel())
    assert is_exactly_orthogonal(q)
    assert exact_det(q) == 1


# --------------------------------------------------------------------------- shrink targets
def test_shrink_targets() -> None:
    always = lambda _: True  # noqa: E731
    eye = np.eye(3)
    assert np.array_equal(find(unimodular_matrices(), always), eye)
    assert np.array_equal(find(unimodular_matrices(det=-1), always), np.diag([1, 1, -1]))
    assert np.array_equal(find(rotations(), always), eye)
    assert np.array_equal(find(lattices(), always), eye)
    exact = find(lattices(kind="exact"), always)  # includes an exact rotation shrinking to I
    assert exact.dtype == object and np.array_equal(exact, eye)
    # floats shrink to the simplest value in range (here 3.0), the 1/16 grid to its lowest point
    cubic = find(lattices(min_length=2.5, max_length=7), always)
    assert np.array_equal(cubic, cubic[0, 0] * eye) and 2.5 <= cubic[0, 0] <= 7
    assert np.array_equal(find(lattices(min_length=2.5, max_length=7, exact=True), always), 2.5 * eye)


# --------------------------------------------------------------------------- lattices: types
@pytest.mark.parametrize("kind", FLOAT_KINDS)
def test_float_lattices_have_type_and_are_nonsingular(kind: str) -> None:
    @given(lattices(kind=kind))
    def check(lattice: np.ndarray) -> None:
        assert lattice.shape == (3, 3) and lattice.dtype == np.float64
        assert np.isfinite(lattice).all()
        assert exact_det(lattice) != 0

    check()


@pytest.mark.parametrize("kind", KINDS)
def test_exact_lattices_are_fraction_arrays(kind: str) -> None:
    @settings(max_examples=60)
    @given(lattices(kind=kind, exact=True))
    def check(lattice: np.ndarray) -> None:
        assert lattice.shape == (3, 3) and lattice.dtype == object
        assert all(type(x) is Fraction for x in lattice.ravel())
        assert exact_det(lattice) != 0

    check()


def test_kind_exact_is_physical_exact() -> None:
    @settings(max_examples=30)
    @given(lattices(kind="exact"))
    def check(lattice: np.ndarray) -> None:
        assert lattice.dtype == object
        assert all(type(x) is Fraction for x in lattice.ravel())

    check()


# --------------------------------------------------------------------------- lattices: invariants
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize(("lo", "hi"), [(1.0, 20.0), (5.0, 6.0), (0.5, 0.5)])
def test_physical_lengths_and_volume(exact: bool, lo: float, hi: float) -> None:
    @settings(max_examples=60)
    @given(lattices(kind="physical", exact=exact, min_length=lo, max_length=hi))
    def check(lattice: np.ndarray) -> None:
        g = exact_gram(lattice)
        slack = 0 if exact else 1e-12
        for i in range(3):
            assert lo**2 * (1 - slack) <= g[i][i] <= hi**2 * (1 + slack)
        assert relative_volume(lattice) >= 0.57

    check()


@pytest.mark.parametrize("exact", [False, True])
def test_near_singular_relative_volume_in_range(exact: bool) -> None:
    lo, hi = NEAR_SINGULAR_RANGE
    seen: list[float] = []

    @settings(max_examples=100)
    @given(lattices(kind="near_singular", exact=exact))
    def check(lattice: np.ndarray) -> None:
        r = relative_volume(lattice)
        assert lo <= r <= hi
        seen.append(r)

    check()
    assert min(seen) < 1e-10 and max(seen) > 1e-5  # the whole range is visited


def test_sheared_float_lattice_is_exactly_a_physical_one() -> None:
    biggest = [0.0]

    @settings(max_examples=40)
    @given(lattices(kind="sheared"))
    def check(lattice: np.ndarray) -> None:
        # The float entries are computed without rounding, so the lattice they span is the
        # (grid-rounded) physical one: its reduced cell has lengths within max_length.
        assert lattice.dtype == np.float64
        reduced = niggli_reduce(lattice)
        assert max(reduced.g6[:3]) <= Fraction(20 + 1e-6) ** 2
        assert relative_volume(reduced.lattice) >= 0.5
        biggest[0] = max(biggest[0], float(np.abs(lattice).max()))

    check()
    assert biggest[0] > 1e5  # large shears are reached


@pytest.mark.parametrize("family", BOUNDARY_FAMILIES)
@pytest.mark.parametrize("exact", [False, True])
def test_boundary_lattices_lie_on_a_niggli_boundary(family: str, exact: bool) -> None:
    @settings(max_examples=15)
    @given(boundary_lattices(family=family, exact=exact))
    def check(lattice: np.ndarray) -> None:
        g6 = niggli_reduce(lattice).g6
        assert boundary_equalities(g6), (family, [str(x) for x in g6])

    check()


@settings(max_examples=60)
@given(lattices(kind="boundary"))
def test_float_boundary_lattices_are_exactly_on_the_boundary(lattice: np.ndarray) -> None:
    # Every entry is a dyadic rational with a small denominator, so the float64 lattice is the
    # exact one and the oracle sees it on the boundary (not merely near it).
    assert lattice.dtype == np.float64
    assert all(Fraction(x).denominator <= 2**8 for x in lattice.ravel())
    assert boundary_equalities(niggli_reduce(lattice).g6)


# --------------------------------------------------------------------------- g6 vectors
@given(g6_vectors(kind="any"))
def test_float_g6_vectors(v: np.ndarray) -> None:
    assert v.shape == (6,) and v.dtype == np.float64
    assert (v[:3] > 0).all()


@settings(max_examples=60)
@given(st.data())
def test_exact_g6_vectors_match_the_oracle(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    lattice = data.draw(lattices(kind=kind, exact=True))
    ours = strategies._exact_g6(lattice)
    assert ours == exact_g6(lattice)
    v = data.draw(g6_vectors(kind=kind, exact=True))
    assert isinstance(v, tuple) and len(v) == 6 and all(type(x) is Fraction for x in v)
