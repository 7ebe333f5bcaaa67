"""Hypothesis properties of the float Niggli reducer: invariance, idempotence, certification, fuzzing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latticesym.errors import LatticeError
from latticesym.groups import random_unimodular
from latticesym.metric import lattice_from_parameters
from latticesym.reduce import is_niggli_reduced, niggli_reduce
from latticesym.reduce._certify import result_violations


def _round_bits(x: np.ndarray, bits: int) -> np.ndarray:
    m, k = np.frexp(x)
    return np.ldexp(np.round(np.ldexp(m, bits)), k - bits)


@st.composite
def lattices(draw: st.DrawFn) -> np.ndarray:
    """Cells from parameters (lengths 1..10, or stretched up to 1e6), in a random unimodular basis.

    Entries are rounded to 20 bits so that small unimodular changes of basis are exact in float64.
    Shrinks towards a cube-like cell in the identity basis.
    """
    abc = [draw(st.floats(1.0, 10.0)) for _ in range(3)]
    stretch = draw(st.sampled_from([1.0, 1.0, 1e3, 1e6]))
    abc[2] *= stretch
    ang = [draw(st.floats(50.0, 130.0)) for _ in range(3)]
    try:
        lat = lattice_from_parameters(*abc, *ang)
    except LatticeError:
        assume(False)
    seed = draw(st.integers(0, 2**32 - 1))
    shear = draw(st.sampled_from([1, 3, 100]))
    m = random_unimodular(1, max_entry=shear, det=1, rng=np.random.default_rng(seed))[0]
    out = _round_bits(m.astype(np.float64) @ _round_bits(lat, 20), 20)
    assume(abs(np.linalg.det(out)) > 1e-6 * np.prod(np.linalg.norm(out, axis=1)))
    return out


def _exact_product(m: np.ndarray, lat: np.ndarray) -> np.ndarray | None:
    out = m.astype(np.float64) @ lat
    for i in range(3):
        for j in range(3):
            if Fraction(out[i, j]) != sum(Fraction(int(m[i, k])) * Fraction(lat[k, j]) for k in range(3)):
                return None
    return out


@pytest.mark.invariance
@given(lat=lattices(), seed=st.integers(0, 2**32 - 1))
def test_basis_independence(lat: np.ndarray, seed: int) -> None:
    m = random_unimodular(1, max_entry=4, det=1, rng=np.random.default_rng(seed))[0]
    other = _exact_product(m, lat)
    assume(other is not None)
    r1, r2 = niggli_reduce(lat), niggli_reduce(other)
    assert np.max(np.abs(r1.g6 - r2.g6)) <= 16 * r1.tolerance


@pytest.mark.invariance
@given(lat=lattices(), k=st.integers(-60, 60))
def test_power_of_two_scaling_is_exact(lat: np.ndarray, k: int) -> None:
    r1, r2 = niggli_reduce(lat), niggli_reduce(np.ldexp(lat, k))
    np.testing.assert_array_equal(r1.transform, r2.transform)
    np.testing.assert_array_equal(np.ldexp(r1.lattice, k), r2.lattice)


@pytest.mark.invariance
@given(lat=lattices())
def test_rotation_invariance(lat: np.ndarray) -> None:
    q = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # exact quarter turn about z
    r1, r2 = niggli_reduce(lat), niggli_reduce(lat @ q.T)
    np.testing.assert_array_equal(r1.transform, r2.transform)
    np.testing.assert_array_equal(r1.g6, r2.g6)


@pytest.mark.invariance
@given(lat=lattices())
def test_idempotent_and_certified(lat: np.ndarray) -> None:
    r = niggli_reduce(lat)
    assert not result_violations(lat, r.transform, r.lattice, r.g6, r.tolerance)
    assert is_niggli_reduced(r.lattice)
    again = niggli_reduce(r.lattice)
    assert np.max(np.abs(again.g6 - r.g6)) <= 1e-12 * np.max(r.g6)
    if again.iterations == 0:
        np.testing.assert_array_equal(again.transform, np.eye(3, dtype=np.int64))


# arbitrary floats, weighted towards the nasty ones (the stress suite fuzzes more widely)
_any_float = st.one_of(
    st.floats(-10.0, 10.0),
    st.sampled_from([0.0, -0.0, 1.0, 2.0**53 + 2, 1e-300, 5e-324, 1e300, -1e300, 2.0**-1022,
                     float("nan"), float("inf"), -float("inf")]),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
)


@given(arr=hnp.arrays(np.float64, st.sampled_from([(3, 3), (2, 3, 3), (3, 3), (1, 3, 3)]), elements=_any_float))
def test_fuzz_only_typed_errors(arr: np.ndarray) -> None:
    try:
        r = niggli_reduce(arr, errors="mask")
    except (LatticeError, TypeError):
        return
    flat = arr.reshape(-1, 3, 3)
    for i, lat in enumerate(flat):
        idx = np.unravel_index(i, arr.shape[:-2]) if arr.ndim > 2 else ()
        if np.asarray(r.status)[idx] == 0:
            assert not result_violations(lat, r.transform[idx], r.lattice[idx], r.g6[idx],
                                         np.asarray(r.tolerance)[idx])
