"""Optional compiled kernel: the reducer of ``_kg.reduce_with_context`` for float64, one lattice per loop pass.

numba is imported only when :func:`kernels` is first called, and only if it is installed; the
callers fall back to the numpy batch (:mod:`latticesym.reduce._batch`) otherwise.  The step logic is
not rewritten here: :func:`latticesym.reduce._kg.kg_decide`, the error bounds and Dot2 are compiled
from their own source.  What this module adds is the mechanics (integer row operations on the
transform, rows recomputed from the *original* input), mirroring ``reduce_with_context`` with a
:class:`~latticesym.reduce._context.FloatContext` operation for operation, so the results are
bit-identical (tested).

The transform is held as float64 integers (exact below ``2**52``, checked before every step), so
the products ``T @ L`` need no conversion; the caller turns it into int64.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import numpy as np

from latticesym.reduce import _accurate, _kg
from latticesym.reduce._context import CANCEL_RATIO_SQ, FLOAT_TINY, MAX_TRANSFORM

__all__ = ["available", "kernels"]

_U = _accurate.UNIT_ROUNDOFF
_PI = (0, 0, 1, 1, 2, 2)  # _kg.PRE_PAIRS, split for numba
_PJ = (1, 2, 0, 2, 0, 1)
_PRE_TAU = _kg.PRE_TAU
_VOLUME_RTOL = _kg.VOLUME_RTOL
_OK, _PRECISION, _NOT_CONVERGED, _OVERFLOW, _CYCLE = _kg.OK, _kg.PRECISION, _kg.NOT_CONVERGED, _kg.OVERFLOW, _kg.CYCLE

# Filled with compiled functions by kernels(); the kernel source below calls these names.
_nb_fast: Any = None
_nb_checked: Any = None
_nb_dot2: Any = None
_nb_det: Any = None
_nb_cbrt: Any = None
_nb_errors: Any = None
_nb_row: Any = None
_nb_one: Any = None
_nb_prepare: Any = None
_nb_raw: Any = None


def _row(t: Any, i: int, x: Any, h: Any, lo: Any, nl: Any, accurate: bool, out: Any, oi: int) -> None:
    """Row ``i`` of ``t @ x`` into ``out[oi]``: plain product, or Dot2 when it cancels (FloatContext.row)."""
    t0, t1, t2 = t[i, 0], t[i, 1], t[i, 2]
    if not accurate:
        r0 = t0 * x[0, 0] + t1 * x[1, 0] + t2 * x[2, 0]
        r1 = t0 * x[0, 1] + t1 * x[1, 1] + t2 * x[2, 1]
        r2 = t0 * x[0, 2] + t1 * x[1, 2] + t2 * x[2, 2]
        s = abs(t0) * nl[0] + abs(t1) * nl[1] + abs(t2) * nl[2]
        if not s * s > CANCEL_RATIO_SQ * (r0 * r0 + r1 * r1 + r2 * r2):
            out[oi, 0] = r0
            out[oi, 1] = r1
            out[oi, 2] = r2
            return
    for j in range(3):
        out[oi, j] = _nb_dot2(t0, t1, t2, x[0, j], h[0, j], lo[0, j], x[1, j], h[1, j], lo[1, j],
                              x[2, j], h[2, j], lo[2, j])


def _tol(v: float, eps: float) -> float:
    f, x = math.frexp(v)
    k = x // 3
    return eps * math.ldexp(_nb_cbrt(math.ldexp(f, x - 3 * k)), 2 * k)


def _volume(r: Any) -> tuple[float, bool]:
    det, bound = _nb_det(r[0, 0], r[0, 1], r[0, 2], r[1, 0], r[1, 1], r[1, 2], r[2, 0], r[2, 1], r[2, 2])
    v = abs(det)
    return v, bound + FLOAT_TINY < _VOLUME_RTOL * v


def _gram_row(r: Any, g: Any, i: int) -> None:
    for k in range(3):
        d = r[i, 0] * r[k, 0] + r[i, 1] * r[k, 1] + r[i, 2] * r[k, 2]
        g[i, k] = d
        g[k, i] = d


def _one(x: Any, h: Any, lo: Any, nl: Any, eps: float, max_iter: int, skip: int,
         t: Any, r: Any, g: Any, sv: Any) -> tuple[int, int, float]:
    """Reduce one normalised lattice ``x``; returns ``(status, iterations, e)``; ``t, r, g`` hold the state."""
    for i in range(3):
        for j in range(3):
            t[i, j] = 1.0 if i == j else 0.0
    accurate = False
    for i in range(3):
        _nb_row(t, i, x, h, lo, nl, accurate, r, i)
    for i in range(3):
        _gram_row(r, g, i)
    n_pre = 0
    n_kg = 0
    if not (g[0, 0] > 0 and g[1, 1] > 0 and g[2, 2] > 0):
        return _PRECISION, 0, 0.0
    v_used, _ = _volume(r)
    e = _tol(v_used, eps)
    code = _nb_fast(g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1],
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, e, 0.0, 0)[0]
    if code != 0:
        # Phase 1: pre-reduction, greedy on the largest decrease (docs/algorithm.md)
        while True:
            best = 0.0
            bi = -1
            bj = -1
            bq = 0.0
            for p in range(6):
                i = _PI[p]
                j = _PJ[p]
                y = g[i, j] / g[j, j]
                q = np.floor(abs(y) + 0.5)
                if y < 0:
                    q = -q
                dec = (2 * q * g[i, j] - q * q * g[j, j]) / g[i, i]
                if dec > best:
                    best = dec
                    bi = i
                    bj = j
                    bq = q
            if not best > _PRE_TAU:
                break
            if n_pre >= max_iter:
                return _NOT_CONVERGED, n_pre + n_kg, e
            aq = abs(bq)
            for k in range(3):
                if not abs(t[bi, k]) + aq * abs(t[bj, k]) <= MAX_TRANSFORM:
                    return _OVERFLOW, n_pre + n_kg, e
            for k in range(3):
                t[bi, k] = t[bi, k] - bq * t[bj, k]
            n_pre += 1
            _nb_row(t, bi, x, h, lo, nl, accurate, r, bi)
            _gram_row(r, g, bi)
            if not g[bi, bi] > 0:
                return _PRECISION, n_pre + n_kg, e
        for i in range(3):
            _nb_row(t, i, x, h, lo, nl, True, sv, i)
        v_used, _ = _volume(sv)
        e = _tol(v_used, eps)

    # Phase 2: Krivy-Gruber with tolerance, Brent's cycle detection on t
    for i in range(3):
        for j in range(3):
            sv[i, j] = t[i, j]
    power = 1
    lam = 0
    while True:
        code, _, si, sj, sk = _nb_fast(g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1],
                                       0.0, 0.0, 0.0, 0.0, 0.0, 0.0, e, 0.0, skip)
        if code == 0:
            if not accurate:
                for i in range(3):
                    _nb_row(t, i, x, h, lo, nl, True, r, i)
                for i in range(3):
                    _gram_row(r, g, i)
            v_fin, reliable = _volume(r)
            if not reliable:
                return _PRECISION, n_pre + n_kg, e
            if abs(v_fin - v_used) > _VOLUME_RTOL * v_fin:
                v_used = v_fin
                e = _tol(v_used, eps)
                accurate = True
                continue
            one = 1.0 + 8.0 * _U
            s0 = abs(t[0, 0]) * nl[0] + abs(t[0, 1]) * nl[1] + abs(t[0, 2]) * nl[2]
            s1 = abs(t[1, 0]) * nl[0] + abs(t[1, 1]) * nl[1] + abs(t[1, 2]) * nl[2]
            s2 = abs(t[2, 0]) * nl[0] + abs(t[2, 1]) * nl[1] + abs(t[2, 2]) * nl[2]
            d0, d1, d2, d3, d4, d5 = _nb_errors(math.sqrt(g[0, 0]) * one, math.sqrt(g[1, 1]) * one,
                                                math.sqrt(g[2, 2]) * one, s0, s1, s2, _U, FLOAT_TINY)
            code2, unsure, _, _, _ = _nb_checked(g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1],
                                                 d0, d1, d2, d3, d4, d5, e, _U, skip)
            if code2 != 0:
                if accurate:
                    return _PRECISION, n_pre + n_kg, e
                accurate = True
                for i in range(3):
                    for j in range(3):
                        sv[i, j] = t[i, j]
                power = 1
                lam = 0
                continue
            if unsure:
                return _PRECISION, n_pre + n_kg, e
            return _OK, n_pre + n_kg, e
        if n_kg >= max_iter:
            return _NOT_CONVERGED, n_pre + n_kg, e
        if code <= 2:
            a = 0 if code == 1 else 1  # A1 swaps a, b; A2 swaps b, c; all three negated (det +1)
            b = a + 1
            c = 2 if code == 1 else 0
            for k in range(3):
                tmp = t[a, k]
                t[a, k] = -t[b, k]
                t[b, k] = -tmp
                t[c, k] = -t[c, k]
                tmp = r[a, k]
                r[a, k] = -r[b, k]
                r[b, k] = -tmp
                r[c, k] = -r[c, k]
            gaa = g[a, a]
            g[a, a] = g[b, b]
            g[b, b] = gaa
            gac = g[a, c]
            g[a, c] = g[b, c]
            g[c, a] = g[b, c]
            g[b, c] = gac
            g[c, b] = gac
        elif code <= 4:
            for k in range(3):
                t[0, k] = si * t[0, k]
                t[1, k] = sj * t[1, k]
                t[2, k] = sk * t[2, k]
                r[0, k] = si * r[0, k]
                r[1, k] = sj * r[1, k]
                r[2, k] = sk * r[2, k]
            g[1, 2] = sj * sk * g[1, 2]
            g[2, 1] = g[1, 2]
            g[0, 2] = si * sk * g[0, 2]
            g[2, 0] = g[0, 2]
            g[0, 1] = si * sj * g[0, 1]
            g[1, 0] = g[0, 1]
        else:
            if code == 8:  # A8: c <- c + a + b
                i = 2
                for k in range(3):
                    if not abs(t[2, k]) + abs(t[0, k]) + abs(t[1, k]) <= MAX_TRANSFORM:
                        return _OVERFLOW, n_pre + n_kg, e
                for k in range(3):
                    t[2, k] = t[2, k] + t[0, k] + t[1, k]
            else:  # A5: c -= n b; A6: c -= n a; A7: b -= n a
                i = 1 if code == 7 else 2
                j = 1 if code == 5 else 0
                y = g[i, j] / g[j, j]
                q = np.floor(abs(y) + 0.5)
                if y < 0:
                    q = -q
                if q == 0:
                    q = float(si)
                aq = abs(q)
                for k in range(3):
                    if not abs(t[i, k]) + aq * abs(t[j, k]) <= MAX_TRANSFORM:
                        return _OVERFLOW, n_pre + n_kg, e
                for k in range(3):
                    t[i, k] = t[i, k] - q * t[j, k]
            _nb_row(t, i, x, h, lo, nl, accurate, r, i)
            _gram_row(r, g, i)
            if not g[i, i] > 0:
                return _PRECISION, n_pre + n_kg + 1, e
        n_kg += 1
        same = True
        for a in range(3):
            for b in range(3):
                if t[a, b] != sv[a, b]:
                    same = False
        if same:
            return _CYCLE, n_pre + n_kg, e
        lam += 1
        if lam == power:
            for a in range(3):
                for b in range(3):
                    sv[a, b] = t[a, b]
            power *= 2
            lam = 0


def _batch(x: Any, h: Any, lo: Any, nl: Any, eps: float, max_iter: int, skip: int,
           t: Any, r: Any, g: Any, sv: Any, status: Any, iters: Any, etol: Any) -> None:
    for n in _prange(x.shape[0]):
        st, it, e = _nb_one(x[n], h[n], lo[n], nl[n], eps, max_iter, skip, t[n], r[n], g[n], sv[n])
        status[n] = st
        iters[n] = it
        etol[n] = e


def _prange(n: int) -> range:  # replaced by numba.prange when compiled
    return range(n)


_lock = threading.Lock()
_compiled: dict[str, Any] = {}


def available() -> bool:
    """Whether numba can be imported."""
    if _compiled:
        return True
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernels() -> dict[str, Any]:
    """All compiled kernels: ``serial``, ``parallel`` (prepared input), ``raw_serial``,
    ``raw_parallel`` (raw input, original units) and ``single`` (one lattice).

    Raises ``ImportError`` when numba is not installed.  :func:`kernel` compiles just one.
    """
    return {name: kernel(name) for name in _SOURCES}


_SOURCES = {"serial": ("_batch", False), "parallel": ("_batch", True), "raw_serial": ("_batch_raw", False),
            "raw_parallel": ("_batch_raw", True), "single": ("_single", False)}


def kernel(name: str) -> Any:
    """The compiled kernel ``name`` (compiled on first use, then cached on disk by numba)."""
    got = _compiled.get(name)
    if got is not None:
        return got
    with _lock:
        if name in _compiled:
            return _compiled[name]
        import numba

        g = globals()
        with warnings.catch_warnings():
            # numba's own notices (e.g. a read-only cache directory) are not errors of ours
            warnings.simplefilter("ignore", numba.NumbaWarning)
            if "_helpers" not in _compiled:
                jit = numba.njit(cache=True, nogil=True, inline="always")
                g["_nb_fast"] = jit(_kg.rebind(_kg.kg_decide, "nb_kg_decide_fast", lt=jit(_kg.lt_fast)))
                g["_nb_checked"] = jit(_kg.rebind(_kg.kg_decide, "nb_kg_decide", lt=jit(_kg.lt_checked)))
                g["_nb_dot2"] = jit(_accurate.dot2)
                g["_nb_det"] = jit(_accurate.det3_with_bound)
                g["_nb_cbrt"] = jit(_accurate.cbrt_squared_mantissa)
                g["_nb_errors"] = jit(_kg.g6_error_bounds)
                g["_nb_row"] = jit(_row)
                for helper in ("_tol", "_volume", "_gram_row"):
                    g[helper] = jit(g[helper])
                g["_nb_one"] = numba.njit(cache=True, nogil=True)(_one)
                g["_nb_prepare"] = numba.njit(cache=True, nogil=True)(_prepare)
                g["_prange"] = numba.prange
                _compiled["_helpers"] = True
            if name == "single":
                if "raw_serial" not in _compiled:
                    _compiled["raw_serial"] = _compile_and_warm("raw_serial", numba)
                g["_nb_raw"] = _compiled["raw_serial"]
            _compiled[name] = _compile_and_warm(name, numba)
        return _compiled[name]


def _compile_and_warm(name: str, numba: Any) -> Any:
    """Compile ``name`` for float64 C-contiguous arrays now (or load it from numba's cache)."""
    src_name, parallel = _SOURCES[name]
    source = globals()[src_name]
    if parallel:  # a separate qualname keeps numba's on-disk cache of the two variants apart
        source = _kg.rebind(source, src_name + "_parallel")
    fn = numba.njit(cache=True, nogil=True, parallel=parallel)(source)
    n = 2
    src = np.eye(3)[None].repeat(n, axis=0)
    if name == "single":
        fn(np.eye(3), 1e-5, 10)
    elif src_name == "_batch_raw":
        fn(src, 1e-5, 10, 0, np.empty((n, 3, 3)), np.empty((n, 3, 3)), np.empty((n, 6)), np.empty(n, np.int64),
           np.empty(n, np.int64), np.empty(n), np.empty(n, np.int64), np.empty((n, 6, 3, 3)))
    else:
        h, lo = _accurate.split(src)
        fn(src, h, lo, np.ones((n, 3)), 1e-5, 10, 0, np.empty((n, 3, 3)), np.empty((n, 3, 3)), np.empty((n, 3, 3)),
           np.empty((n, 3, 3)), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n))
    return fn


def _prepare(src: Any, x: Any, h: Any, lo: Any, nl: Any) -> int:
    """Normalise ``src`` by a power of two into ``x`` (split ``h + lo``, row norms ``nl``).

    Returns the exponent ``k`` (``src == x * 2**k``), or ``-100000`` when the scaling is not
    exact (subnormal entries) or the matrix is zero.  Same operations as the numpy preparation.
    """
    amax = 0.0
    for i in range(3):
        for j in range(3):
            a = abs(src[i, j])
            if a > amax:
                amax = a
    if amax == 0.0:
        return -100000
    k = math.frexp(amax)[1]
    for i in range(3):
        for j in range(3):
            v = math.ldexp(src[i, j], -k)
            if math.ldexp(v, k) != src[i, j]:
                return -100000
            x[i, j] = v
            c = 134217729.0 * v
            hi = c - (c - v)
            h[i, j] = hi
            lo[i, j] = v - hi
    for i in range(3):
        nl[i] = math.sqrt(x[i, 0] * x[i, 0] + x[i, 1] * x[i, 1] + x[i, 2] * x[i, 2]) * (1.0 + 8.0 * _U)
    return k


def _batch_raw(src: Any, eps: float, max_iter: int, skip: int, t: Any, r: Any, g6: Any,
               status: Any, iters: Any, etol: Any, kexp: Any, scratch: Any) -> None:
    """Prepare, reduce and scale back each lattice of ``src`` (n, 3, 3); outputs in original units.

    ``scratch`` is float64 work space of shape (n, 6, 3, 3).
    """
    for n in _prange(src.shape[0]):
        x = scratch[n, 0]
        h = scratch[n, 1]
        lo = scratch[n, 2]
        nl = scratch[n, 3, 0]
        g = scratch[n, 4]
        sv = scratch[n, 5]
        k = _nb_prepare(src[n], x, h, lo, nl)
        kexp[n] = k
        if k == -100000:
            status[n] = _PRECISION
            iters[n] = 0
            etol[n] = 0.0
            continue
        st, it, e = _nb_one(x, h, lo, nl, eps, max_iter, skip, t[n], r[n], g, sv)
        status[n] = st
        iters[n] = it
        etol[n] = math.ldexp(e, 2 * k)
        for i in range(3):
            for j in range(3):
                r[n, i, j] = math.ldexp(r[n, i, j], k)
        g6[n, 0] = math.ldexp(g[0, 0], 2 * k)
        g6[n, 1] = math.ldexp(g[1, 1], 2 * k)
        g6[n, 2] = math.ldexp(g[2, 2], 2 * k)
        g6[n, 3] = math.ldexp(2 * g[1, 2], 2 * k)
        g6[n, 4] = math.ldexp(2 * g[0, 2], 2 * k)
        g6[n, 5] = math.ldexp(2 * g[0, 1], 2 * k)


def _single(src: Any, eps: float, max_iter: int) -> tuple[Any, Any, Any, int, int, float]:
    """One lattice, everything in one compiled call (the low-latency path)."""
    scratch = np.empty((1, 6, 3, 3))
    t = np.empty((1, 3, 3))
    r = np.empty((1, 3, 3))
    g6 = np.empty((1, 6))
    st = np.empty(1, np.int64)
    it = np.empty(1, np.int64)
    et = np.empty(1)
    kx = np.empty(1, np.int64)
    _nb_raw(src.reshape(1, 3, 3), eps, max_iter, 0, t, r, g6, st, it, et, kx, scratch)
    ti = np.empty((3, 3), np.int64)
    for i in range(3):
        for j in range(3):
            ti[i, j] = np.int64(t[0, i, j])
    return ti, r[0], g6[0], st[0], it[0], et[0]
