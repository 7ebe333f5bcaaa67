"""CPU fast path of the torch reducer: the same two phases, compiled per lattice with numba.

On CPU the per-operation overhead of eager torch (~2 us per op on tiny tensors) dominates a
vectorised Krivy-Gruber loop at the batch sizes of training (256), so
:func:`latticesym.torch.niggli_reduce` runs CPU tensors through this kernel when numba is
installed (``backend="auto"``).  It mirrors :mod:`latticesym.torch._reduce` step for step:
phase 1 (three compare-swaps tolerant by ``e``, then rounded size reductions ``v_i <- v_i - q v_j``
taken only when they shorten ``v_i`` by more than ``e``), phase 2 in rounds (A1, A2, A1, then
A3/A4, then the first of A5-A8, the basis recomputed from ``T @ L_in`` at the start of each
round), the same cycle test (a transform equal to the one of two rounds before), the same
tolerances and the same certification.  The loop over the batch is compiled
(no Python per lattice).  Tests check that both backends return the same transforms.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is the optional "fast" extra
    from numba import njit as _njit
except ImportError:  # pragma: no cover - exercised only without numba
    _njit = None  # type: ignore[assignment]

__all__ = ["AVAILABLE", "reduce_batch"]

AVAILABLE = _njit is not None

_U = np.finfo(np.float64).eps / 2
_TINY = np.finfo(np.float64).tiny
_EXACT_INT = 2.0**53


def _round_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _sign(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def _basis(T: np.ndarray, L: np.ndarray, X: np.ndarray) -> None:
    for i in range(3):
        for k in range(3):
            X[i, k] = T[i, 0] * L[0, k] + T[i, 1] * L[1, k] + T[i, 2] * L[2, k]


def _dot(X: np.ndarray, i: int, j: int) -> float:
    return X[i, 0] * X[j, 0] + X[i, 1] * X[j, 1] + X[i, 2] * X[j, 2]


def _g6(X: np.ndarray, g: np.ndarray) -> None:
    g[0] = _dot(X, 0, 0)
    g[1] = _dot(X, 1, 1)
    g[2] = _dot(X, 2, 2)
    g[3] = 2 * _dot(X, 1, 2)
    g[4] = 2 * _dot(X, 0, 2)
    g[5] = 2 * _dot(X, 0, 1)


def _swap_rows(M: np.ndarray, i: int, j: int) -> None:
    """Rows ``(-M_j, -M_i, -M_k)``: the det +1 swap of A1 (i, j = 0, 1) and A2 (1, 2)."""
    for k in range(3):
        a = M[i, k]
        M[i, k] = -M[j, k]
        M[j, k] = -a
    m = 3 - i - j
    for k in range(3):
        M[m, k] = -M[m, k]


def _reduce_one(L: np.ndarray, eps: float, max_iter: int, T: np.ndarray, g: np.ndarray) -> tuple[int, bool]:
    """Reduce one lattice in place of ``T`` (identity on entry); returns (iterations, certified)."""
    X = np.empty((3, 3))
    det = (
        L[0, 0] * (L[1, 1] * L[2, 2] - L[1, 2] * L[2, 1])
        - L[0, 1] * (L[1, 0] * L[2, 2] - L[1, 2] * L[2, 0])
        + L[0, 2] * (L[1, 0] * L[2, 1] - L[1, 1] * L[2, 0])
    )
    vol = abs(det)
    lengths = 1.0
    finite = True
    for i in range(3):
        s = 0.0
        for k in range(3):
            if not math.isfinite(L[i, k]):
                finite = False
            s += L[i, k] * L[i, k]
        lengths *= math.sqrt(s)
    if not finite or not (vol > 1e-300) or not (vol > 64 * 2 * _U * lengths):
        _g6(L, g)
        return 0, False
    e = eps * vol ** (2.0 / 3.0)
    iters = 0
    # Phase 1: pre-reduction sweeps with rounded multiples.
    sweeps = 0
    took = True
    while took and sweeps < max_iter:
        sweeps += 1
        took = False
        _basis(T, L, X)
        for stage in range(3):
            i = 1 if stage == 1 else 0
            j = i + 1
            if _dot(X, j, j) < _dot(X, i, i) - e:
                _swap_rows(T, i, j)
                _swap_rows(X, i, j)
        for pair in range(3):
            i = 1 if pair == 0 else 2
            j = 1 if pair == 2 else 0
            gij = _dot(X, i, j)
            gjj = _dot(X, j, j)
            gii = _dot(X, i, i)
            q = _round_away(gij / max(gjj, _TINY))
            if gii - 2 * q * gij + q * q * gjj < gii - e:
                for k in range(3):
                    T[i, k] = T[i, k] - q * T[j, k]
                    X[i, k] = X[i, k] - q * X[j, k]
                took = True
                iters += 1
    pre_unfinished = took
    # Phase 2: Krivy-Gruber rounds.
    rounds = 0
    moved = True
    cycling = False
    prev1 = T.copy()
    prev2 = np.full((3, 3), np.nan)
    while moved and rounds < max_iter:
        rounds += 1
        moved = False
        _basis(T, L, X)
        _g6(X, g)
        for stage in range(3):
            # A1 (x, y = A, B; tie-break |xi| vs |eta|), A2 (B, C; |eta| vs |zeta|), A1 again
            p = 1 if stage == 1 else 0
            q1 = p + 1
            op, oq = p + 3, q1 + 3
            if g[q1] < g[p] - e or (abs(g[p] - g[q1]) <= e and abs(g[oq]) < abs(g[op]) - e):
                _swap_rows(T, p, q1)
                g[p], g[q1] = g[q1], g[p]
                g[op], g[oq] = g[oq], g[op]
                iters += 1
        # A3 / A4: signs
        npos = 0
        nneg = 0
        nzero = 0
        for k in range(3, 6):
            if g[k] > e:
                npos += 1
            elif g[k] < -e:
                nneg += 1
            else:
                nzero += 1
        s0, s1, s2 = 1.0, 1.0, 1.0
        if nzero == 0 and nneg % 2 == 0:  # A3: l*m*n == 1
            s0 = -1.0 if g[3] < -e else 1.0
            s1 = -1.0 if g[4] < -e else 1.0
            s2 = -1.0 if g[5] < -e else 1.0
        else:  # A4
            s0 = -1.0 if g[3] > e else 1.0
            s1 = -1.0 if g[4] > e else 1.0
            s2 = -1.0 if g[5] > e else 1.0
            if npos % 2 == 1:
                if abs(g[3]) <= e:
                    s0 = -s0
                elif abs(g[4]) <= e:
                    s1 = -s1
                else:
                    s2 = -s2
        if s0 < 0 or s1 < 0 or s2 < 0:
            for k in range(3):
                T[0, k] *= s0
                T[1, k] *= s1
                T[2, k] *= s2
            g[3] *= s0
            g[4] *= s1
            g[5] *= s2
            iters += 1
        A, B, xi, eta, zeta = g[0], g[1], g[3], g[4], g[5]
        # A5
        if abs(xi) - e > B or (abs(xi - B) <= e and 2 * eta < zeta - e) or (abs(xi + B) <= e and zeta < -e):
            q = _round_away(xi / max(2 * B, _TINY)) if abs(xi) - e > B else _sign(xi)
            for k in range(3):
                T[2, k] = T[2, k] - q * T[1, k]
            moved = True
        # A6
        elif abs(eta) - e > A or (abs(eta - A) <= e and 2 * xi < zeta - e) or (abs(eta + A) <= e and zeta < -e):
            q = _round_away(eta / max(2 * A, _TINY)) if abs(eta) - e > A else _sign(eta)
            for k in range(3):
                T[2, k] = T[2, k] - q * T[0, k]
            moved = True
        # A7
        elif abs(zeta) - e > A or (abs(zeta - A) <= e and 2 * xi < eta - e) or (abs(zeta + A) <= e and eta < -e):
            q = _round_away(zeta / max(2 * A, _TINY)) if abs(zeta) - e > A else _sign(zeta)
            for k in range(3):
                T[1, k] = T[1, k] - q * T[0, k]
            moved = True
        else:
            # A8
            s = xi + eta + zeta + A + B
            if s < -e or (abs(s) <= e and 2 * (A + eta) + zeta - e > 0):
                for k in range(3):
                    T[2, k] = T[2, k] + T[0, k] + T[1, k]
                moved = True
        if moved:
            iters += 1
            # a transform equal to the one of two rounds before: a cycle (uncertified, stop)
            same = True
            for i in range(3):
                for k in range(3):
                    if T[i, k] != prev2[i, k]:
                        same = False
            if same:
                cycling = True
                break
            prev2[:, :] = prev1
            prev1[:, :] = T
    # Certification (same bound as the torch path).
    _basis(T, L, X)
    _g6(X, g)
    r = 0.0
    tmax = 0.0
    for i in range(3):
        s = 0.0
        for k in range(3):
            v = abs(T[i, 0]) * abs(L[0, k]) + abs(T[i, 1]) * abs(L[1, k]) + abs(T[i, 2]) * abs(L[2, k])
            s += v * v
            tmax = max(tmax, abs(T[i, k]))
        r = max(r, math.sqrt(s))
    x = math.sqrt(max(g[0], g[1], g[2]))
    bound = 8 * _U * r * x + 10 * _U * _U * r * r + 2 * _U * x * x
    detT = (
        T[0, 0] * (T[1, 1] * T[2, 2] - T[1, 2] * T[2, 1])
        - T[0, 1] * (T[1, 0] * T[2, 2] - T[1, 2] * T[2, 0])
        + T[0, 2] * (T[1, 0] * T[2, 1] - T[1, 1] * T[2, 0])
    )
    ok = (not moved) and (not cycling) and (not pre_unfinished) and tmax < _EXACT_INT and bound <= e / 4 and detT == 1.0
    if not tmax < _EXACT_INT:  # never hand out a transform that is not exactly integer
        for i in range(3):
            for k in range(3):
                T[i, k] = 1.0 if i == k else 0.0
        _g6(L, g)
    return iters, ok


def _reduce_batch(
    L: np.ndarray, eps: float, max_iter: int, T: np.ndarray, g: np.ndarray, iters: np.ndarray, ok: np.ndarray
) -> None:
    for b in range(L.shape[0]):
        for i in range(3):
            for k in range(3):
                T[b, i, k] = 1.0 if i == k else 0.0
        it, good = _reduce_one(L[b], eps, max_iter, T[b], g[b])
        iters[b] = it
        ok[b] = good


if AVAILABLE:
    _round_away = _njit(cache=True)(_round_away)
    _sign = _njit(cache=True)(_sign)
    _basis = _njit(cache=True)(_basis)
    _dot = _njit(cache=True)(_dot)
    _g6 = _njit(cache=True)(_g6)
    _swap_rows = _njit(cache=True)(_swap_rows)
    _reduce_one = _njit(cache=True)(_reduce_one)
    _reduce_batch = _njit(cache=True)(_reduce_batch)


def reduce_batch(L: np.ndarray, eps: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reduce a C-contiguous float64 ``(n, 3, 3)`` batch; returns ``T`` (float64), G6, iterations, ok."""
    n = L.shape[0]
    T = np.empty((n, 3, 3))
    g = np.empty((n, 6))
    iters = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=np.bool_)
    _reduce_batch(np.ascontiguousarray(L, dtype=np.float64), float(eps), int(max_iter), T, g, iters, ok)
    return T, g, iters, ok
