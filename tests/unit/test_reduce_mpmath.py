"""The mpmath reducer: the same step logic at a chosen precision; agreement with float64 and the oracle."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from latticesym.errors import PrecisionError, SingularLatticeError
from latticesym.groups import random_unimodular
from latticesym.reduce import Arithmetic, mp_niggli_reduce, niggli_reduce
from latticesym.reference import niggli_reduce as exact_reduce


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    base = rng.standard_normal((12, 3, 3)) + 3.0 * np.eye(3)
    m = random_unimodular(12, max_entry=1000, det=1, rng=rng).astype(np.float64)
    return list(base[:4]) + list((m @ base)[4:8]) + [b * s for b, s in zip(base[8:], (1e-8, 1e8, 1e-3, 1e3))]


@pytest.mark.parametrize("lat", _cases())
def test_mpmath_agrees_with_float(lat: np.ndarray) -> None:
    f = niggli_reduce(lat)
    m = mp_niggli_reduce(lat, prec=113)
    assert m.arithmetic == Arithmetic.MPMATH
    assert round(np.linalg.det(m.transform.astype(float))) == 1
    np.testing.assert_array_equal(m.transform, f.transform)  # same decisions
    g6 = np.array([float(v) for v in m.g6])
    np.testing.assert_allclose(g6, f.g6, rtol=1e-13, atol=1e-13 * np.max(f.g6))
    ref = np.array([float(v) for v in exact_reduce(lat).g6])
    np.testing.assert_allclose(g6, ref, rtol=0, atol=1e-6 * np.max(ref))


def test_mpmath_precision_is_local() -> None:
    before = (mpmath.mp.prec, mpmath.mp.dps)
    r = mp_niggli_reduce([[1, 0, 0], [10**6, 1, 0], [0, 0, 1]], prec=300)
    assert (mpmath.mp.prec, mpmath.mp.dps) == before
    assert r.lattice[1, 0].context.prec == 300
    assert [int(v) for v in r.g6] == [1, 1, 1, 0, 0, 0]


def test_mpmath_exact_inputs() -> None:
    lat = [[Fraction(1, 3), 0, 0], [Fraction(7, 3), 1, 0], [0, mpmath.mpf("0.5"), 2]]
    r = mp_niggli_reduce(lat, prec=200)
    assert r.transform.dtype == np.int64
    ex = exact_reduce([[Fraction(1, 3), 0, 0], [Fraction(7, 3), 1, 0], [0, Fraction(1, 2), 2]])
    np.testing.assert_allclose([float(v) for v in r.g6], [float(v) for v in ex.g6], rtol=1e-30)


def test_mpmath_near_singular_beyond_float() -> None:
    lat = np.array([[1.0, 0.0, 0.0], [3.0, 1.0, 0.0], [8.0, 8.0, 1e-20]])
    with pytest.raises(PrecisionError):
        niggli_reduce(lat, precision="float")
    r = mp_niggli_reduce(lat, prec=256)
    ex = exact_reduce(lat)
    np.testing.assert_allclose([float(v) for v in r.g6], [float(v) for v in ex.g6], rtol=1e-12)


def test_mpmath_errors() -> None:
    with pytest.raises(PrecisionError):  # eps = 0 and exact ties: no finite precision certifies them
        mp_niggli_reduce(np.eye(3), eps=0.0, prec=64)
    with pytest.raises(SingularLatticeError):
        mp_niggli_reduce(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        mp_niggli_reduce(np.eye(3), prec=20)


@pytest.mark.parametrize(
    "lattice",
    [
        np.diag([1e-3, 1.0, 1.0]),  # needle: e = eps V^(2/3) exceeds A / 16, the cap applies
        np.diag([1.0, 2.0, 3.0]),
        [[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.1, 0.2, 1.0]],
    ],
)
def test_mpmath_reports_the_same_capped_tolerance_as_float(lattice) -> None:
    """``result.tolerance`` is the tolerance the comparisons used, ``min(eps V^(2/3), A / 16)``, in both
    arithmetics (the mpmath path once reported the uncapped ``e``)."""
    flt = niggli_reduce(np.asarray(lattice, dtype=float))
    mp_ = mp_niggli_reduce(lattice)
    a = float(flt.g6[0])
    assert float(mp_.tolerance) == pytest.approx(flt.tolerance, rel=1e-12)
    assert flt.tolerance <= a / 16 * (1 + 1e-15)
