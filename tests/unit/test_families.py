"""Unit tests of the stress-family generators (:mod:`latticesym.families`)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from latticesym import families
from latticesym.reference import exact_g6, niggli_reduce

N = 24


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_shape_dtype_finite_and_deterministic(name: str) -> None:
    a = families.generate(name, N, np.random.default_rng(1))
    b = families.generate(name, N, np.random.default_rng(1))
    assert a.shape == (N, 3, 3) and a.dtype == np.float64
    assert np.all(np.isfinite(a))
    assert np.array_equal(a, b)
    assert families.generate(name, 0, np.random.default_rng(1)).shape == (0, 3, 3)
    assert all(_det(m) != 0 for m in a)


def test_physical_parameters() -> None:
    a = families.physical(200, rng=np.random.default_rng(2), lengths=(3, 4), min_relative_volume=0.5)
    lengths = np.linalg.norm(a, axis=-1)
    assert lengths.min() >= 3 - 1e-12 and lengths.max() <= 4 + 1e-12
    assert families.relative_volume(a).min() >= 0.5 - 1e-12


def test_sheared_entries_span_the_range() -> None:
    base = families.physical(300, rng=np.random.default_rng(3))
    sheared = families.sheared(300, rng=np.random.default_rng(3))
    t = np.rint(sheared @ np.linalg.inv(base))
    # same rng stream: sheared() draws its physical cells first
    assert np.allclose(sheared, t @ base, rtol=0, atol=1e-6 * np.abs(sheared).max())
    big = np.abs(t).max(axis=(1, 2))
    assert big.max() > 1e4 and big.min() >= 1
    assert all(_det(m) == 1 for m in t)


@pytest.mark.parametrize(("lo", "hi"), [(1e-12, 1e-10), (1e-5, 1e-3)])
def test_near_singular_relative_volume(lo: float, hi: float) -> None:
    a = families.near_singular(40, rng=np.random.default_rng(4), relative_volume=(lo, hi))
    rv = np.array([float(abs(_det(m))) for m in a]) / np.linalg.norm(a, axis=-1).prod(axis=-1)
    assert np.all(rv >= lo / 2) and np.all(rv <= hi * 2), rv


def _det(m: np.ndarray) -> Fraction:
    r = [[Fraction(float(x)) for x in row] for row in m]
    return (r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]))


def test_extreme_aspect_ratio() -> None:
    a = families.extreme_aspect(60, rng=np.random.default_rng(5), ratio=(1e3, 1e8))
    n = np.linalg.norm(a, axis=-1)
    ratio = n.max(axis=1) / n.min(axis=1)
    assert ratio.min() >= 1e3 * 0.999 and ratio.max() <= 1e8 * 1.001


def test_boundary_exact_cases_lie_on_the_boundary() -> None:
    a = families.boundary(28, rng=np.random.default_rng(6))
    labels = families.boundary_labels(28)
    for lat, (kind, exact) in zip(a, labels):
        if not exact or kind in ("hexagonal", "rhombohedral"):
            continue
        g6 = niggli_reduce(lat).g6
        A, B, C = g6[:3]
        if kind in ("cubic", "fcc", "bcc"):
            assert A == B == C, (kind, g6)
        if kind == "tetragonal":
            assert A == B or B == C, (kind, g6)
        if kind == "orthorhombic":
            assert g6[3:] == (0, 0, 0), (kind, g6)


def test_untrained_and_scaled() -> None:
    u = families.untrained(500, rng=np.random.default_rng(7), scale=2.0)
    assert abs(u.std() - 2.0) < 0.1
    s = families.scaled(4, rng=np.random.default_rng(8))
    n = np.linalg.norm(s, axis=-1)
    assert n[0].max() < 1e-6 and n[1].min() > 1e7 and n[2].max() < 1e-6


def test_invalid_kinds_are_invalid_exactly() -> None:
    a = families.invalid(14, rng=np.random.default_rng(9))
    for lat, kind in zip(a, families.invalid_labels(14)):
        if kind in ("nan", "inf", "neg_inf"):
            assert not np.all(np.isfinite(lat))
        else:
            g = exact_g6(lat)
            assert _det(lat) == 0, (kind, g)
    for label, arr in families.invalid_shapes(rng=np.random.default_rng(10)):
        assert arr.shape[-2:] != (3, 3) or arr.ndim < 2, label


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: families.physical(-1, rng=np.random.default_rng()), ValueError),
        (lambda: families.physical(2, rng=1), TypeError),  # type: ignore[arg-type]
        (lambda: families.physical(2.0, rng=np.random.default_rng()), TypeError),  # type: ignore[arg-type]
        (lambda: families.physical(2, rng=np.random.default_rng(), lengths=(5, 2)), ValueError),
        (lambda: families.physical(2, rng=np.random.default_rng(), angles=(10, 190)), ValueError),
        (lambda: families.near_singular(2, rng=np.random.default_rng(), relative_volume=2.0), ValueError),
        (lambda: families.untrained(2, rng=np.random.default_rng(), scale=-1.0), ValueError),
        (lambda: families.scaled(2, rng=np.random.default_rng(), factors=()), ValueError),
        (lambda: families.generate("nope", 2, np.random.default_rng()), ValueError),
    ],
)
def test_parameters_are_validated_eagerly(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]
