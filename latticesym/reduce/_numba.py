"""Optional compiled kernel: the reducer of ``_kg.reduce_with_context`` for float64, one lattice per loop pass.

This is the *one* compiled Niggli reducer of latticesym: :func:`latticesym.niggli_reduce` runs
batches and single lattices through it, and :mod:`latticesym.torch` runs CPU tensors through it
(``latticesym.torch`` imports this module; never the reverse).

numba is imported only when :func:`kernel` is first called, and only if it is installed; the
callers fall back to the numpy batch (:mod:`latticesym.reduce._batch`) otherwise.  The step logic is
not rewritten here: :func:`latticesym.reduce._kg.kg_decide`, the error bounds and Dot2 are compiled
from their own source.  What this module adds is the mechanics (integer row operations on the
transform, rows recomputed from the *original* input), mirroring ``reduce_with_context`` with a
:class:`~latticesym.reduce._context.FloatContext` operation for operation, so the results are
bit-identical (tested).

Speed (what makes a lattice cost a few hundred nanoseconds):

- the whole state of one lattice (input, its Veltkamp halves, transform, rows, Gram matrix, the
  saved transform of the cycle test, a cache of accurate rows) lives in one 84-entry work buffer,
  allocated once per batch (once per chunk in the parallel kernel), never per lattice;
- power-of-two scalings are multiplications by exact powers of two from a table (bit-identical
  to ``ldexp`` whenever the power is representable; ``ldexp`` is called otherwise);
- rows take the plain product; Dot2 only where the plain product cancels, at the end of the
  pre-reduction (the volume behind ``e``) and for certification.  The certification reuses the
  Dot2 rows of the end of the pre-reduction for every row that the Krivy-Gruber phase only
  permuted or negated (Dot2 is odd: ``dot2(-t, x) == -dot2(t, x)`` exactly, zeros excepted, which
  are recomputed);
- the tolerance ``e = eps V**(2/3)`` (a Newton iteration, the longest dependency chain of a
  lattice) is computed only where a decision needs it: not for the input of a lattice that
  provably needs pre-reduction (:func:`_surely_unreduced`, ``_SURELY_UNREDUCED``), whose ``e`` is
  recomputed after the pre-reduction anyway; and the iteration stops at its fixed point (the
  remaining iterations would not change a bit);
- the pre-reduction skips the divisions of pairs whose rounded multiple is provably 0;
- the batch kernels write the public outputs directly (int64 transform, lattice and G6 in the
  input's units, status, iterations, the reported tolerance), and check finiteness and
  representability themselves, so the Python wrapper makes no pass over the batch.

The transform is held as float64 integers with canonical ``+0.0`` zeros (exact below ``2**52``,
checked before every step), so the products ``T @ L`` need no conversion.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from typing import Any

import numpy as np

from latticesym.reduce import _accurate, _kg
from latticesym.reduce._context import CANCEL_RATIO_SQ, FLOAT_TINY, MAX_TRANSFORM

__all__ = ["available", "compile_in_background", "compiled", "kernel", "kernels"]

_U = _accurate.UNIT_ROUNDOFF
_PI = (0, 0, 1, 1, 2, 2)  # _kg.PRE_PAIRS, split for numba
_PJ = (1, 2, 0, 2, 0, 1)
_PRE_TAU = _kg.PRE_TAU
_VOLUME_RTOL = _kg.VOLUME_RTOL
_TAU_A = _kg.TAU_A
_G6_MIN = _kg.G6_MIN
_NORMAL_MIN = _kg.NORMAL_MIN
_OK, _NONFINITE, _PRECISION, _NOT_CONVERGED, _OVERFLOW, _CYCLE = (
    _kg.OK, _kg.NONFINITE, _kg.PRECISION, _kg.NOT_CONVERGED, _kg.OVERFLOW, _kg.CYCLE)
_ONE8 = 1.0 + 8.0 * _U
# In the pre-reduction, 2|g_ij| < _HALF_GUARD * g_jj (as computed in float64) implies
# |fl(g_ij / g_jj)| < 1/2 - 2**-22, so the pair's rounded multiple is 0 (its relative decrease 0): the
# divisions of such a pair are skipped without changing any decision.
_HALF_GUARD = 1.0 - 2.0**-20
# A first pre-reduction step that shortens a vector by more than this fraction of its squared length
# proves that no tolerance makes the input Niggli reduced: a reduced basis (A <= B + e, B <= C + e,
# |xi| <= B + e, |eta|, |zeta| <= A + e with e <= A / 16, the cap of kg_decide) admits only q in
# {0, +-1} and relative decreases of at most 3e / A <= 3/16 < 1/4.  Then the initial e is not needed.
_SURELY_UNREDUCED = 0.25

# Offsets into the per-lattice work buffer (float64): input x, its Veltkamp halves h + lo, row
# norms nl, transform t, rows r, Gram matrix g (full 3x3), saved transform sv (cycle test), and the
# Dot2 rows ra of the transform ta at the end of the pre-reduction.
_X, _H, _LO, _NL, _T, _R, _G, _SV, _TA, _RA = 0, 9, 18, 27, 30, 39, 48, 57, 66, 75
WORK_SIZE = 84
# Exact powers of two 2**k for k in [_P2_MIN, _P2_MAX] (normal and subnormal: all representable).
_P2_MIN, _P2_MAX = -1074, 1023
_POW2 = np.array([math.ldexp(1.0, k) for k in range(_P2_MIN, _P2_MAX + 1)])
_NO_SCALE = -100000
# Relative slack on the bound eps (A + B + C) / 3 of e (covers the roundings of e and of the bound).
_E_HI_SLACK = 1.0 + 2.0**-20

# Filled with compiled functions by kernel(); the kernel source below calls these names.
_nb_fast: Any = None
_nb_checked: Any = None
_nb_dot2: Any = None
_nb_det: Any = None
_nb_errors: Any = None
_nb_one: Any = None
_nb_finish: Any = None
_nb_batch: Any = None


def _scale(v: float, k: int) -> float:
    """``ldexp(v, k)``: a multiplication by an exact power of two when ``2**k`` is representable."""
    if _P2_MIN <= k <= _P2_MAX:
        return v * _POW2[k - _P2_MIN]
    return math.ldexp(v, k)


def _tol(v: float, eps: float) -> float:
    """``eps * cbrt_squared(v)`` (``_accurate.cbrt_squared``), bit for bit."""
    f, x = math.frexp(v)
    k = x // 3
    m = f * _POW2[x - 3 * k - _P2_MIN]  # x - 3k in {0, 1, 2}: exact
    y = 0.7 + 0.25 * m
    for _ in range(6):  # cbrt_squared_mantissa; a fixed point stays fixed, so stop there
        z = y - (y * y * y - m) / (3.0 * y * y)
        if z == y:
            break
        y = z
    return eps * _scale(y * y, 2 * k)


def _row(w: Any, i: int, accurate: bool, out: int) -> None:
    """Row ``i`` of ``t @ x`` into ``w[out:out+3]``: plain product, or Dot2 when it cancels (FloatContext.row)."""
    ti = _T + 3 * i
    _row_of(w, w[ti], w[ti + 1], w[ti + 2], accurate, out)


def _row_of(w: Any, t0: float, t1: float, t2: float, accurate: bool, out: int) -> None:
    """``(t0, t1, t2) @ x`` into ``w[out:out+3]`` (``FloatContext.row``)."""
    if not accurate:
        r0 = t0 * w[_X] + t1 * w[_X + 3] + t2 * w[_X + 6]
        r1 = t0 * w[_X + 1] + t1 * w[_X + 4] + t2 * w[_X + 7]
        r2 = t0 * w[_X + 2] + t1 * w[_X + 5] + t2 * w[_X + 8]
        s = abs(t0) * w[_NL] + abs(t1) * w[_NL + 1] + abs(t2) * w[_NL + 2]
        if not s * s > CANCEL_RATIO_SQ * (r0 * r0 + r1 * r1 + r2 * r2):
            w[out] = r0
            w[out + 1] = r1
            w[out + 2] = r2
            return
    unit = -1  # a signed unit row (+-e_k): Dot2 returns +-x_k exactly wherever that is nonzero
    if abs(t0) + abs(t1) + abs(t2) == 1.0:
        unit = 0 if t0 != 0.0 else (1 if t1 != 0.0 else 2)
    for j in range(3):
        if unit >= 0:
            v = (t0 + t1 + t2) * w[_X + 3 * unit + j]
            if v != 0.0:
                w[out + j] = v
                continue
        w[out + j] = _nb_dot2(t0, t1, t2, w[_X + j], w[_H + j], w[_LO + j], w[_X + 3 + j], w[_H + 3 + j],
                              w[_LO + 3 + j], w[_X + 6 + j], w[_H + 6 + j], w[_LO + 6 + j])


def _gram_row(w: Any, i: int) -> None:
    ri = _R + 3 * i
    for k in range(3):
        rk = _R + 3 * k
        d = w[ri] * w[rk] + w[ri + 1] * w[rk + 1] + w[ri + 2] * w[rk + 2]
        w[_G + 3 * i + k] = d
        w[_G + 3 * k + i] = d


def _volume(w: Any, o: int) -> tuple[float, bool]:
    det, bound = _nb_det(w[o], w[o + 1], w[o + 2], w[o + 3], w[o + 4], w[o + 5], w[o + 6], w[o + 7], w[o + 8])
    v = abs(det)
    return v, bound + FLOAT_TINY < _VOLUME_RTOL * v


def _decide_fast(w: Any, e: float, skip: int) -> tuple[int, int, int, int]:
    code, _, si, sj, sk = _nb_fast(w[_G], w[_G + 4], w[_G + 8], 2 * w[_G + 5], 2 * w[_G + 2], 2 * w[_G + 1],
                                   0.0, 0.0, 0.0, 0.0, 0.0, 0.0, e, 0.0, skip)
    return code, si, sj, sk


def _surely_unreduced(w: Any, eps: float) -> bool:
    """Whether ``kg_decide_fast`` surely finds a step at the input's ``e``, without computing ``e``.

    ``e <= e_hi = eps (A + B + C) / 3``: ``V <= sqrt(A B C)`` (Hadamard) and the geometric mean is at
    most the arithmetic one; the cap ``min(e, A / 16)`` only lowers it.  The tolerant comparisons
    ``x < y - e`` are monotone in ``e`` (``y - e`` is rounded monotonically), so each test below
    holds at ``e`` if it holds at ``e_hi``: ``A > B`` (A1), ``B > C`` (A2), off-diagonal signs both
    strictly positive and strictly negative (A3 or A4), ``|xi| > B``, ``|eta| > A``, ``|zeta| > A``
    (A5-A7).  Any of them means a step (this one or an earlier one) applies.
    """
    a = w[_G]
    b = w[_G + 4]
    c = w[_G + 8]
    xi = 2 * w[_G + 5]
    eta = 2 * w[_G + 2]
    zeta = 2 * w[_G + 1]
    e = eps * ((a + b + c) / 3.0) * _E_HI_SLACK
    pos = (xi - e > 0.0) or (eta - e > 0.0) or (zeta - e > 0.0)
    neg = (xi < 0.0 - e) or (eta < 0.0 - e) or (zeta < 0.0 - e)
    return ((b < a - e) or (c < b - e) or (pos and neg) or (b < abs(xi) - e) or (a < abs(eta) - e)
            or (a < abs(zeta) - e))


def _pre_scan(w: Any) -> tuple[float, int, int, float]:
    """The pre-reduction's choice: the pair ``(i, j)`` (first on ties) with the largest relative
    decrease of ``|v_i|**2`` by ``v_i -= q v_j``, ``q = round(g_ij / g_jj)``; returns ``(dec, i, j, q)``."""
    best = 0.0
    bi = -1
    bj = -1
    bq = 0.0
    for p in range(6):
        i = _PI[p]
        j = _PJ[p]
        gij = w[_G + 3 * i + j]
        gjj = w[_G + 4 * j]
        if 2.0 * abs(gij) < _HALF_GUARD * gjj:
            continue  # then round(gij / gjj) == 0 (see _HALF_GUARD): dec == 0, never > best
        y = gij / gjj
        q = np.floor(abs(y) + 0.5)
        if q != 0.0:
            if y < 0:
                q = -q
            dec = (2 * q * gij - q * q * gjj) / w[_G + 4 * i]
            if dec > best:
                best = dec
                bi = i
                bj = j
                bq = q
    return best, bi, bj, bq


def _initial_tol(w: Any, v: float, eps: float) -> float:
    """``e`` of the input (identity transform) for a result reported from the pre-reduction.

    ``v`` is the volume of the initial rows, or negative when it was not computed: it is then
    recomputed from the rows of the identity transform, as they were (into the ``sv`` slots,
    unused in the pre-reduction).
    """
    if v < 0:
        _row_of(w, 1.0, 0.0, 0.0, False, _SV)
        _row_of(w, 0.0, 1.0, 0.0, False, _SV + 3)
        _row_of(w, 0.0, 0.0, 1.0, False, _SV + 6)
        v = _volume(w, _SV)[0]
    return _tol(v, eps)


def _accurate_rows(w: Any, cached: bool) -> None:
    """All rows by Dot2 (``FloatContext.row(.., True)``), reusing the rows cached for ``ta`` where
    a row of ``t`` is a row of ``ta`` or its negative (Dot2 of ``-t`` is ``-dot2(t)`` exactly
    unless the result is zero, which is recomputed)."""
    for i in range(3):
        ti = _T + 3 * i
        done = False
        if cached:
            for k in range(3):
                tk = _TA + 3 * k
                rk = _RA + 3 * k
                ri = _R + 3 * i
                if w[ti] == w[tk] and w[ti + 1] == w[tk + 1] and w[ti + 2] == w[tk + 2]:
                    w[ri] = w[rk]
                    w[ri + 1] = w[rk + 1]
                    w[ri + 2] = w[rk + 2]
                    done = True
                    break
                if (w[ti] == -w[tk] and w[ti + 1] == -w[tk + 1] and w[ti + 2] == -w[tk + 2]
                        and w[rk] != 0.0 and w[rk + 1] != 0.0 and w[rk + 2] != 0.0):
                    w[ri] = -w[rk]
                    w[ri + 1] = -w[rk + 1]
                    w[ri + 2] = -w[rk + 2]
                    done = True
                    break
        if not done:
            _row(w, i, True, _R + 3 * i)


def _neg0(v: float) -> float:
    """``-v`` for an integer-valued float, with a canonical ``+0.0`` (the transform's entries)."""
    return 0.0 - v


def _one(w: Any, eps: float, max_iter: int, skip: int) -> tuple[int, int, float]:
    """Reduce the normalised lattice in ``w`` (x, h, lo, nl set); returns ``(status, iterations, e)``.

    ``w`` holds the final transform, rows and Gram matrix.  Operation for operation
    ``_kg.reduce_with_context(FloatContext(), ...)``.
    """
    for i in range(9):
        w[_T + i] = 0.0
    w[_T] = 1.0
    w[_T + 4] = 1.0
    w[_T + 8] = 1.0
    accurate = False
    for i in range(3):
        _row(w, i, False, _R + 3 * i)
    for i in range(3):
        _gram_row(w, i)
    n_pre = 0
    n_kg = 0
    if not (w[_G] > 0 and w[_G + 4] > 0 and w[_G + 8] > 0):
        return _PRECISION, 0, math.nan  # no e yet (reduce_with_context reports none)
    cached = False
    best, bi, bj, bq = _pre_scan(w)
    v_used = -1.0  # the initial volume and e are computed only where they are needed
    e = -1.0
    pre = best > _SURELY_UNREDUCED or _surely_unreduced(w, eps)
    if not pre:
        v_used, _ = _volume(w, _R)
        e = _tol(v_used, eps)
        pre = _decide_fast(w, e, 0)[0] != 0
    if pre:
        # Phase 1: pre-reduction, greedy on the largest relative decrease (docs/algorithm.md)
        while best > _PRE_TAU:
            if n_pre >= max_iter:
                return _NOT_CONVERGED, n_pre + n_kg, _initial_tol(w, v_used, eps)
            aq = abs(bq)
            oi = _T + 3 * bi
            oj = _T + 3 * bj
            for k in range(3):
                if not abs(w[oi + k]) + aq * abs(w[oj + k]) <= MAX_TRANSFORM:
                    return _OVERFLOW, n_pre + n_kg, _initial_tol(w, v_used, eps)
            for k in range(3):
                w[oi + k] = w[oi + k] - bq * w[oj + k]
            n_pre += 1
            _row(w, bi, False, _R + 3 * bi)
            _gram_row(w, bi)
            if not w[_G + 4 * bi] > 0:
                return _PRECISION, n_pre + n_kg, _initial_tol(w, v_used, eps)
            best, bi, bj, bq = _pre_scan(w)
        # the volume behind e, from Dot2 rows (kept: the certification reuses them)
        for i in range(9):
            w[_TA + i] = w[_T + i]
        for i in range(3):
            _row(w, i, True, _RA + 3 * i)
        cached = True
        v_used, _ = _volume(w, _RA)
        e = _tol(v_used, eps)

    # Phase 2: Krivy-Gruber with tolerance, Brent's cycle detection on t
    for i in range(9):
        w[_SV + i] = w[_T + i]
    power = 1
    lam = 0
    known_reduced = not pre and skip == 0  # the decision just taken, on the same G6 and e
    while True:
        if known_reduced:
            code, si, sj, sk = 0, 1, 1, 1
            known_reduced = False
        else:
            code, si, sj, sk = _decide_fast(w, e, skip)
        if code == 0:
            if not accurate:
                _accurate_rows(w, cached)
                for i in range(3):
                    _gram_row(w, i)
            v_fin, reliable = _volume(w, _R)
            if not reliable:
                return _PRECISION, n_pre + n_kg, e
            if abs(v_fin - v_used) > _VOLUME_RTOL * v_fin:
                v_used = v_fin
                e = _tol(v_used, eps)
                accurate = True
                continue
            s0 = abs(w[_T]) * w[_NL] + abs(w[_T + 1]) * w[_NL + 1] + abs(w[_T + 2]) * w[_NL + 2]
            s1 = abs(w[_T + 3]) * w[_NL] + abs(w[_T + 4]) * w[_NL + 1] + abs(w[_T + 5]) * w[_NL + 2]
            s2 = abs(w[_T + 6]) * w[_NL] + abs(w[_T + 7]) * w[_NL + 1] + abs(w[_T + 8]) * w[_NL + 2]
            d0, d1, d2, d3, d4, d5 = _nb_errors(math.sqrt(w[_G]) * _ONE8, math.sqrt(w[_G + 4]) * _ONE8,
                                                math.sqrt(w[_G + 8]) * _ONE8, s0, s1, s2, _U, FLOAT_TINY)
            code2, unsure, _, _, _ = _nb_checked(w[_G], w[_G + 4], w[_G + 8], 2 * w[_G + 5], 2 * w[_G + 2],
                                                 2 * w[_G + 1], d0, d1, d2, d3, d4, d5, e, _U, skip)
            if code2 != 0:
                if accurate:
                    return _PRECISION, n_pre + n_kg, e
                accurate = True
                for i in range(9):
                    w[_SV + i] = w[_T + i]
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
                tmp = w[_T + 3 * a + k]
                w[_T + 3 * a + k] = _neg0(w[_T + 3 * b + k])
                w[_T + 3 * b + k] = _neg0(tmp)
                w[_T + 3 * c + k] = _neg0(w[_T + 3 * c + k])
                tmp = w[_R + 3 * a + k]
                w[_R + 3 * a + k] = -w[_R + 3 * b + k]
                w[_R + 3 * b + k] = -tmp
                w[_R + 3 * c + k] = -w[_R + 3 * c + k]
            gaa = w[_G + 4 * a]
            w[_G + 4 * a] = w[_G + 4 * b]
            w[_G + 4 * b] = gaa
            gac = w[_G + 3 * a + c]
            gbc = w[_G + 3 * b + c]
            w[_G + 3 * a + c] = gbc
            w[_G + 3 * c + a] = gbc
            w[_G + 3 * b + c] = gac
            w[_G + 3 * c + b] = gac
        elif code <= 4:
            for k in range(3):
                if si < 0:
                    w[_T + k] = _neg0(w[_T + k])
                if sj < 0:
                    w[_T + 3 + k] = _neg0(w[_T + 3 + k])
                if sk < 0:
                    w[_T + 6 + k] = _neg0(w[_T + 6 + k])
                w[_R + k] = si * w[_R + k]
                w[_R + 3 + k] = sj * w[_R + 3 + k]
                w[_R + 6 + k] = sk * w[_R + 6 + k]
            g12 = sj * sk * w[_G + 5]
            w[_G + 5] = g12
            w[_G + 7] = g12
            g02 = si * sk * w[_G + 2]
            w[_G + 2] = g02
            w[_G + 6] = g02
            g01 = si * sj * w[_G + 1]
            w[_G + 1] = g01
            w[_G + 3] = g01
        else:
            if code == 8:  # A8: c <- c + a + b
                i = 2
                for k in range(3):
                    if not abs(w[_T + 6 + k]) + abs(w[_T + k]) + abs(w[_T + 3 + k]) <= MAX_TRANSFORM:
                        return _OVERFLOW, n_pre + n_kg, e
                for k in range(3):
                    w[_T + 6 + k] = w[_T + 6 + k] + w[_T + k] + w[_T + 3 + k]
            else:  # A5: c -= n b; A6: c -= n a; A7: b -= n a
                i = 1 if code == 7 else 2
                j = 1 if code == 5 else 0
                y = w[_G + 3 * i + j] / w[_G + 4 * j]
                q = np.floor(abs(y) + 0.5)
                if y < 0:
                    q = -q
                if q == 0:
                    q = float(si)
                aq = abs(q)
                oi = _T + 3 * i
                oj = _T + 3 * j
                for k in range(3):
                    if not abs(w[oi + k]) + aq * abs(w[oj + k]) <= MAX_TRANSFORM:
                        return _OVERFLOW, n_pre + n_kg, e
                for k in range(3):
                    w[oi + k] = w[oi + k] - q * w[oj + k]
            _row(w, i, accurate, _R + 3 * i)
            _gram_row(w, i)
            if not w[_G + 4 * i] > 0:
                return _PRECISION, n_pre + n_kg + 1, e
        n_kg += 1
        same = True
        for k in range(9):
            if w[_T + k] != w[_SV + k]:
                same = False
                break
        if same:
            return _CYCLE, n_pre + n_kg, e
        lam += 1
        if lam == power:
            for k in range(9):
                w[_SV + k] = w[_T + k]
            power *= 2
            lam = 0


def _store_entry(w: Any, k: int, v: float) -> None:
    """Entry ``k`` of the normalised lattice: ``x = v`` and its Veltkamp split ``h + lo`` (for Dot2)."""
    w[_X + k] = v
    c = 134217729.0 * v
    hi = c - (c - v)
    w[_H + k] = hi
    w[_LO + k] = v - hi


def _store_row_norms(w: Any) -> None:
    """Row norms ``nl`` of the normalised lattice, rounded up by ``_ONE8``."""
    for i in range(3):
        o = _X + 3 * i
        w[_NL + i] = math.sqrt(w[o] * w[o] + w[o + 1] * w[o + 1] + w[o + 2] * w[o + 2]) * _ONE8


def _prepare(src: Any, w: Any) -> int:
    """Normalise ``src`` (3, 3) by a power of two into ``w`` (x, its split h + lo, row norms nl).

    Returns the exponent ``k`` (``src == x * 2**k``); ``-100000`` when the scaling is not exact
    (subnormal entries) or the matrix is zero.  Same operations as ``_api._prepare_numpy``.
    """
    amax = 0.0
    for i in range(3):
        for j in range(3):
            a = abs(src[i, j])
            if a > amax:
                amax = a
    if amax == 0.0:
        return _NO_SCALE
    k = math.frexp(amax)[1]
    if not (_P2_MIN <= k <= _P2_MAX and _P2_MIN <= -k <= _P2_MAX):
        return _prepare_ldexp(src, w, k)
    down = _POW2[-k - _P2_MIN]
    up = _POW2[k - _P2_MIN]
    for i in range(3):
        for j in range(3):
            v = src[i, j] * down  # == ldexp(src, -k): one rounding by an exact power of two
            if v * up != src[i, j]:
                return _NO_SCALE
            _store_entry(w, 3 * i + j, v)
    _store_row_norms(w)
    return k


def _prepare_ldexp(src: Any, w: Any, k: int) -> int:
    """:func:`_prepare` for exponents whose power of two is not representable (``ldexp`` throughout)."""
    for i in range(3):
        for j in range(3):
            v = math.ldexp(src[i, j], -k)
            if math.ldexp(v, k) != src[i, j]:
                return _NO_SCALE
            _store_entry(w, 3 * i + j, v)
    _store_row_norms(w)
    return k


def _finish(src: Any, w: Any, eps: float, max_iter: int, skip: int, n: int, t: Any, r: Any, g6: Any,
            status: Any, iters: Any, tol: Any) -> None:
    """Reduce lattice ``src`` and write every public output of lattice ``n`` (original units).

    ``t`` gets the transform reached (identity where nothing could start); ``r``, ``g6`` the rows
    and G6 of the final state, scaled back; ``tol`` the reported tolerance
    ``min(e, TAU_A * A)``.  Status ``NONFINITE`` for NaN/inf input, ``PRECISION`` where the
    input cannot be normalised exactly, ``OVERFLOW`` where the scaled-back output is not finite
    (or underflows: ``A < G6_MIN``, or a positive tolerance below the normal range).
    """
    finite = True
    for i in range(3):
        for j in range(3):
            if not math.isfinite(src[i, j]):
                finite = False
    k = _NO_SCALE
    if finite:
        k = _prepare(src, w)
    if k == _NO_SCALE:
        for i in range(3):
            for j in range(3):
                t[n, i, j] = 1 if i == j else 0
                r[n, i, j] = math.nan
        for i in range(6):
            g6[n, i] = math.nan
        status[n] = _PRECISION if finite else _NONFINITE
        iters[n] = 0
        tol[n] = math.nan
        return
    st, it, e = _nb_one(w, eps, max_iter, skip)
    ok = True
    for i in range(3):
        for j in range(3):
            t[n, i, j] = np.int64(w[_T + 3 * i + j])
            v = _scale(w[_R + 3 * i + j], k)
            r[n, i, j] = v
            ok = ok and math.isfinite(v)
    k2 = 2 * k
    a = _scale(w[_G], k2)
    g6[n, 0] = a
    g6[n, 1] = _scale(w[_G + 4], k2)
    g6[n, 2] = _scale(w[_G + 8], k2)
    g6[n, 3] = _scale(2 * w[_G + 5], k2)
    g6[n, 4] = _scale(2 * w[_G + 2], k2)
    g6[n, 5] = _scale(2 * w[_G + 1], k2)
    for i in range(6):
        ok = ok and math.isfinite(g6[n, i])
    et = _scale(e, k2)
    # underflow: A below G6_MIN, or a positive tolerance that is no longer a normal float
    ok = ok and a >= _G6_MIN and (e == 0.0 or et >= _NORMAL_MIN)
    if st == _OK and not ok:
        st = _OVERFLOW
    status[n] = st
    iters[n] = it
    b = _TAU_A * a
    tol[n] = et if et < b else (b if b <= et else math.nan)  # np.minimum (NaN propagates)


def _batch(src: Any, eps: float, max_iter: int, skip: int, t: Any, r: Any, g6: Any, status: Any, iters: Any,
           tol: Any) -> None:
    """Serial kernel: every output of :func:`_finish` for each lattice of ``src`` (n, 3, 3)."""
    w = np.empty(WORK_SIZE)
    for n in range(src.shape[0]):
        _nb_finish(src[n], w, eps, max_iter, skip, n, t, r, g6, status, iters, tol)


_CHUNK = 64


def _batch_parallel(src: Any, eps: float, max_iter: int, skip: int, t: Any, r: Any, g6: Any, status: Any,
                    iters: Any, tol: Any) -> None:
    """Parallel kernel (numba ``prange`` over chunks of lattices, one work buffer per chunk)."""
    m = src.shape[0]
    chunks = (m + _CHUNK - 1) // _CHUNK
    for c in _prange(chunks):
        w = np.empty(WORK_SIZE)
        hi = min(m, (c + 1) * _CHUNK)
        for n in range(c * _CHUNK, hi):
            _nb_finish(src[n], w, eps, max_iter, skip, n, t, r, g6, status, iters, tol)


def _single(src: Any, eps: float, max_iter: int) -> tuple[Any, Any, Any, int, int, float]:
    """One lattice, everything in one compiled call (the low-latency path)."""
    t = np.empty((1, 3, 3), np.int64)
    r = np.empty((1, 3, 3))
    g6 = np.empty((1, 6))
    st = np.empty(1, np.int8)
    it = np.empty(1, np.int64)
    tol = np.empty(1)
    _nb_batch(src.reshape(1, 3, 3), eps, max_iter, 0, t, r, g6, st, it, tol)
    return t[0], r[0], g6[0], st[0], it[0], tol[0]


def _prange(n: int) -> range:  # replaced by numba.prange when compiled
    return range(n)


_lock = threading.Lock()
_compiled: dict[str, Any] = {}
_SOURCES = {"serial": ("_batch", False), "parallel": ("_batch_parallel", True), "single": ("_single", False)}


def available() -> bool:
    """Whether numba can be imported."""
    if _compiled:
        return True
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def compiled(name: str) -> bool:
    """Whether kernel ``name`` is compiled (or loaded from numba's cache) in this process."""
    return name in _compiled


_background: dict[str, threading.Thread] = {}


def compile_in_background(name: str) -> threading.Thread:
    """Compile (or load from cache) kernel ``name`` in a daemon thread, once per process.

    The batch path uses this for the parallel kernel: a first large batch runs the serial
    kernel (bit-identical results) instead of waiting for the parallel one to compile.
    """
    with _lock:
        th = _background.get(name)
        if th is None:
            th = threading.Thread(target=_quiet_kernel, args=(name,), name=f"latticesym-compile-{name}", daemon=True)
            _background[name] = th
            th.start()
    return th


def _quiet_kernel(name: str) -> None:
    # a failure here is not lost: the foreground path compiles again and raises there
    with contextlib.suppress(Exception):
        kernel(name)


def kernels() -> dict[str, Any]:
    """All compiled kernels: ``serial`` and ``parallel`` batches, ``single`` (one lattice).

    Raises ``ImportError`` when numba is not installed.  :func:`kernel` compiles just one.
    """
    return {name: kernel(name) for name in _SOURCES}


def kernel(name: str) -> Any:
    """The compiled kernel ``name`` (compiled on first use, then cached on disk by numba).

    ``serial`` / ``parallel``: ``f(src, eps, max_iter, skip, t, r, g6, status, iters, tol)`` with
    ``src`` float64 (n, 3, 3) C-contiguous and the outputs preallocated: ``t`` int64 (n, 3, 3),
    ``r`` float64 (n, 3, 3), ``g6`` float64 (n, 6), ``status`` int8 (n,), ``iters`` int64 (n,),
    ``tol`` float64 (n,).  ``single``: ``f(src, eps, max_iter) -> (t, r, g6, status, iters, tol)``.
    """
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
                jit = numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
                g["_nb_fast"] = jit(_kg.rebind(_kg.kg_decide, "nb_kg_decide_fast", lt=jit(_kg.lt_fast)))
                g["_nb_checked"] = jit(_kg.rebind(_kg.kg_decide, "nb_kg_decide", lt=jit(_kg.lt_checked)))
                g["_nb_dot2"] = jit(_accurate.dot2)
                g["_nb_det"] = jit(_accurate.det3_with_bound)
                g["_nb_errors"] = jit(_kg.g6_error_bounds)
                for helper in ("_scale", "_tol", "_row_of", "_row", "_gram_row", "_volume", "_decide_fast",
                               "_accurate_rows", "_neg0", "_surely_unreduced", "_pre_scan", "_initial_tol",
                               "_store_entry", "_store_row_norms"):
                    g[helper] = jit(g[helper])
                g["_prepare_ldexp"] = numba.njit(cache=True, nogil=True, error_model="numpy")(_prepare_ldexp)
                g["_prepare"] = numba.njit(cache=True, nogil=True, error_model="numpy")(_prepare)
                g["_nb_one"] = numba.njit(cache=True, nogil=True, error_model="numpy")(_one)
                g["_nb_finish"] = numba.njit(cache=True, nogil=True, error_model="numpy")(_finish)
                g["_prange"] = numba.prange
                _compiled["_helpers"] = True
            if name == "single":
                g["_nb_batch"] = _compile("serial", numba)
            _compiled[name] = _compile(name, numba)
        return _compiled[name]


def _compile(name: str, numba: Any) -> Any:
    """Compile ``name`` (caller holds the lock and has compiled the helpers) and warm it up."""
    got = _compiled.get(name)
    if got is not None:
        return got
    src_name, parallel = _SOURCES[name]
    fn = numba.njit(cache=True, nogil=True, parallel=parallel, error_model="numpy")(globals()[src_name])
    if name == "single":
        fn(np.eye(3), 1e-5, 10)
    else:
        n = 2
        fn(np.eye(3)[None].repeat(n, axis=0), 1e-5, 10, 0, np.empty((n, 3, 3), np.int64), np.empty((n, 3, 3)),
           np.empty((n, 6)), np.empty(n, np.int8), np.empty(n, np.int64), np.empty(n))
    _compiled[name] = fn
    return fn
