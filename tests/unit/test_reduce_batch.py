"""Batched and one-at-a-time reductions agree bit for bit, across every backend (numba, numpy, Python)."""

from __future__ import annotations

import numpy as np
import pytest

from latticesym.groups import random_unimodular
from latticesym.reduce import Arithmetic, niggli_reduce
from latticesym.reduce import _numba as nb
from latticesym.reduce._kg import reduce_with_context

BACKENDS = ["numba", "numba-parallel", "numpy", "python"]


def _mixed_batch(n: int, seed: int) -> np.ndarray:
    """Physical, sheared (up to 1e6), near-singular, extreme and scaled cells, shuffled."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 3, 3)) + 3.0 * np.eye(3)
    kind = rng.integers(5, size=n)
    m = random_unimodular(n, max_entry=10**6, det=1, rng=rng).astype(np.float64)
    small = random_unimodular(n, max_entry=20, det=1, rng=rng).astype(np.float64)
    out = base.copy()
    out[kind == 1] = (small @ base)[kind == 1]
    out[kind == 2] = (m @ base)[kind == 2]
    out[kind == 3] = (base * np.array([1.0, 1e4, 1e8])[None, :, None])[kind == 3]
    out[kind == 4] = (1e-8 * (small @ base))[kind == 4]
    return out


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return _mixed_batch(150, 1)


def _same(a: object, b: object) -> None:
    __tracebackhide__ = True
    for name in ("lattice", "transform", "g6", "iterations", "status", "arithmetic", "tolerance"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_identical(batch: np.ndarray, backend: str) -> None:
    ref = niggli_reduce(batch, backend="numba")
    _same(niggli_reduce(batch, backend=backend), ref)


def test_batch_equals_single(batch: np.ndarray) -> None:
    r = niggli_reduce(batch)
    for i in range(0, batch.shape[0], 7):
        s = niggli_reduce(batch[i])
        for name in ("lattice", "transform", "g6"):
            assert np.array_equal(getattr(s, name), getattr(r, name)[i]), name
        assert s.iterations == r.iterations[i] and s.tolerance == r.tolerance[i]
        assert isinstance(s.iterations, int)


def test_leading_shape_and_empty(batch: np.ndarray) -> None:
    b = batch[:24].reshape(2, 3, 4, 3, 3)
    r = niggli_reduce(b)
    assert r.lattice.shape == (2, 3, 4, 3, 3) and r.g6.shape == (2, 3, 4, 6) and r.iterations.shape == (2, 3, 4)
    flat = niggli_reduce(batch[:24])
    np.testing.assert_array_equal(r.g6.reshape(24, 6), flat.g6)
    e = niggli_reduce(np.zeros((0, 3, 3)))
    assert e.lattice.shape == (0, 3, 3) and e.failed == []


def test_python_path_is_the_context_reducer(batch: np.ndarray) -> None:
    """The numba kernel mirrors reduce_with_context(FloatContext) step for step."""
    from latticesym.reduce._api import _prepare_numpy
    from latticesym.reduce._context import FloatContext

    x, _, _, _, k = _prepare_numpy(batch[:20])
    r = niggli_reduce(batch[:20], backend="numba")
    ctx = FloatContext()
    for i in range(20):
        run = reduce_with_context(ctx, ctx.prepare(x[i]), 1e-5, 1000)
        assert np.array_equal(np.ldexp(np.array(run.rows), k[i]), r.lattice[i])
        assert run.iterations == r.iterations[i]


def test_without_numba_falls_back(monkeypatch: pytest.MonkeyPatch, batch: np.ndarray) -> None:
    ref = niggli_reduce(batch[:30], backend="numba")
    monkeypatch.setattr(nb, "available", lambda: False)
    _same(niggli_reduce(batch[:30]), ref)
    single = niggli_reduce(batch[3])
    assert np.array_equal(single.lattice, ref.lattice[3])
    with pytest.raises(ImportError):
        niggli_reduce(batch[:2], backend="numba")
    with pytest.raises(ValueError):
        niggli_reduce(batch[:2], backend="fortran")


def test_escalated_lattices_in_a_batch() -> None:
    """Lattices float64 cannot decide are escalated one by one; the rest stay float64."""
    hard = np.array([[1.0, 0.0, 0.0], [3.0, 1.0, 0.0], [8.0, 8.0, 1e-20]])
    cubic = 2.0 * np.eye(3)
    r = niggli_reduce(np.stack([cubic, hard, cubic]))
    assert r.ok.all()
    assert r.arithmetic.tolist()[0] == Arithmetic.FLOAT64 and r.arithmetic[1] != Arithmetic.FLOAT64
    np.testing.assert_array_equal(r.g6[0], r.g6[2])


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.int64) if a.dtype == np.float64 else a.astype(np.int64)


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.05])
@pytest.mark.parametrize("max_iter", [3, 1000])
def test_raw_outputs_bitwise_identical(batch: np.ndarray, eps: float, max_iter: int) -> None:
    """Every float64 output of every backend, bit for bit (signed zeros included), failures too.

    ``max_iter=3`` stops most lattices inside the pre-reduction (``NOT_CONVERGED`` with the
    tolerance of the input), ``eps=0`` leaves exact ties undecidable (``PRECISION``) and large
    ``eps`` exercises the cap ``e <= A / 16``; invalid inputs (NaN, zero, subnormal, overflowing)
    take the early exits.
    """
    from latticesym.reduce._api import _run_float

    rng = np.random.default_rng(11)
    ints = rng.integers(-3, 4, (60, 3, 3)).astype(np.float64)
    odd = np.concatenate([ints, ints * 2.0**-1060, ints * 2.0**1000, np.full((2, 3, 3), np.nan), np.zeros((2, 3, 3))])
    src = np.ascontiguousarray(np.concatenate([batch, odd]))
    ref = _run_float(src, eps, max_iter, "numba", 0)
    assert (ref[3] != 0).any() and (ref[3] == 0).any()
    for backend in ("numba-parallel", "numpy", "python"):
        got = _run_float(src, eps, max_iter, backend, 0)
        for name, x, y in zip(("transform", "lattice", "g6", "status", "iterations", "tolerance"), ref, got):
            assert np.array_equal(_bits(x), _bits(y)), (backend, name)


def test_kernel_writes_public_outputs() -> None:
    """The compiled batch kernel checks finiteness and representability itself (no pass in Python)."""
    from latticesym.reduce import _kg
    from latticesym.reduce._api import _run_float, output_arrays

    src = np.stack([np.eye(3), np.full((3, 3), np.nan), 2.0**1000 * np.eye(3), np.zeros((3, 3))])
    t, r, g6, st, it, tol = _run_float(np.ascontiguousarray(src), 1e-5, 1000, "numba", 0)
    assert np.array_equal(g6[0], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]) and np.isnan(g6[1]).all()
    assert st.tolist() == [_kg.OK, _kg.NONFINITE, _kg.OVERFLOW, _kg.PRECISION]
    assert t.dtype == np.int64 and st.dtype == np.int8
    assert np.array_equal(t[1], np.eye(3)) and np.isnan(tol[1]) and it[1] == 0
    assert tol[0] == 1e-5 and np.array_equal(r[0], np.eye(3))
    arrays = output_arrays(5)
    assert [a.shape for a in arrays] == [(5, 3, 3), (5, 3, 3), (5, 6), (5,), (5,), (5,)]
