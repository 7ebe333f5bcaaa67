"""Fuzzing of the public float API: nothing but ``LatticeError`` or ``TypeError`` may escape.

``latticesym.niggli_reduce`` and ``latticesym.is_niggli_reduced`` are fed arbitrary arrays:
random shapes, float64 / float32 / int entries, NaN, infinities, signed zeros, subnormals, huge
and tiny magnitudes, and physical lattices scaled by anything from 1e-300 to 1e300.  A call may
return or raise a typed :class:`~latticesym.errors.LatticeError` (or ``TypeError`` for input that
is not numbers); any other exception - including a numpy warning turned into an error by
``filterwarnings = error`` - is a bug.  Each call must also finish within ``CALL_SECONDS``.

Shrinking: towards small shapes, the value 0.0 and the first strategy branch (float64 arrays).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import latticesym
from latticesym import families
from latticesym.errors import LatticeError

CALL_SECONDS = 5.0

SPECIAL = [0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-310, 1e-160, 1e-154, 1e154,
           1e160, 1e300, 1.7976931348623157e308, -1.7976931348623157e308, np.nan, np.inf, -np.inf]

finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from(SPECIAL),
)


def _shapes() -> st.SearchStrategy[tuple[int, ...]]:
    lattice_like = st.sampled_from([(3, 3), (1, 3, 3), (2, 3, 3), (0, 3, 3), (2, 1, 3, 3)])
    other = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
    return st.one_of(lattice_like, other)


arbitrary_arrays = st.one_of(
    _shapes().flatmap(lambda s: hnp.arrays(np.float64, s, elements=finite_or_not)),
    _shapes().flatmap(lambda s: hnp.arrays(np.float32, s, elements=st.floats(width=32))),
    _shapes().flatmap(lambda s: hnp.arrays(np.int64, s, elements=st.integers(-(2**62), 2**62))),
)


@st.composite
def scaled_lattices(draw: st.DrawFn) -> np.ndarray:
    """A non-degenerate integer-ish basis times ``10**k`` for ``k`` in [-320, 308]."""
    base = np.array(draw(st.lists(st.integers(-4, 4), min_size=9, max_size=9)), dtype=np.float64).reshape(3, 3)
    base += np.eye(3) * 10
    k = draw(st.integers(-320, 308))
    with np.errstate(over="ignore", under="ignore"):
        return base * 10.0**k


@st.composite
def batches_with_holes(draw: st.DrawFn) -> np.ndarray:
    """A small batch of physical cells with some entries replaced by specials."""
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = families.physical(n, rng=rng)
    holes = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 2), st.integers(0, 2),
                                    st.sampled_from(SPECIAL)), max_size=3))
    for i, j, k, v in holes:
        out[i, j, k] = v
    return out


inputs = st.one_of(arbitrary_arrays, scaled_lattices(), batches_with_holes())


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    __tracebackhide__ = True
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except (LatticeError, TypeError) as exc:
        return exc
    finally:
        took = time.perf_counter() - t0
        assert took <= CALL_SECONDS, f"{fn.__name__} took {took:.1f} s (> {CALL_SECONDS} s) on {args!r} {kwargs!r}"


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    """Compile / import every path once, so the per-call time bound measures calls, not JIT."""
    cells = families.physical(3, rng=np.random.default_rng(0))
    for x in (cells, cells[0], np.zeros((3, 3)), np.full((2, 3, 3), np.nan)):
        for kwargs in ({}, {"errors": "mask"}, {"precision": "float"}):
            _call(latticesym.niggli_reduce, x, **kwargs)
        _call(latticesym.is_niggli_reduced, x)


fuzz = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)


@pytest.mark.timeout(600)
@fuzz
@given(x=inputs)
def test_niggli_reduce_raises_only_typed_errors(x: np.ndarray) -> None:
    out = _call(latticesym.niggli_reduce, x)
    if isinstance(out, BaseException):
        return
    lead = np.shape(x)[:-2]
    assert np.shape(out.lattice) == (*lead, 3, 3)
    assert np.shape(out.transform) == (*lead, 3, 3)
    assert np.all(np.isfinite(out.lattice))
    if np.size(out.transform):
        t = np.asarray(out.transform).reshape(-1, 3, 3)
        assert np.all(np.rint(np.linalg.det(t.astype(np.float64))) == 1)


@pytest.mark.timeout(600)
@fuzz
@given(x=inputs)
def test_niggli_reduce_masked_raises_only_typed_errors(x: np.ndarray) -> None:
    _call(latticesym.niggli_reduce, x, errors="mask")


@pytest.mark.timeout(600)
@fuzz
@given(x=inputs)
def test_is_niggli_reduced_raises_only_typed_errors(x: np.ndarray) -> None:
    out = _call(latticesym.is_niggli_reduced, x)
    if not isinstance(out, BaseException):
        assert np.shape(out) == np.shape(x)[:-2]


@pytest.mark.timeout(600)
@fuzz
@given(x=st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=2), max_size=3),
                   st.just([[1, 2, 3], [4, 5]]), st.just(np.array([[1j, 0, 0], [0, 1, 0], [0, 0, 1]]))))
def test_non_numeric_input_raises_typed_errors(x: Any) -> None:
    _call(latticesym.niggli_reduce, x)
    _call(latticesym.is_niggli_reduced, x)
