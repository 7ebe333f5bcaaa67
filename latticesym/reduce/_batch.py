"""Vectorised numpy batch of the float reducer: no Python loop over lattices.

Every lattice follows exactly the control flow of :func:`latticesym.reduce._kg.reduce_with_context`
(float64 context) and of the numba kernel, but all lattices advance together, one step per pass,
each on its own path: a lattice in pre-reduction takes a pre-reduction step while another takes a
Krivy-Gruber step.  Finished lattices leave the working set, so a pass costs time proportional
to the lattices still running.  The decisions are :func:`~latticesym.reduce._kg.kg_decide` applied
to whole arrays; the rows use the same Dot2 as the scalar paths.  Results are bit-identical to the
numba kernel and to the one-lattice path (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.reduce import _kg
from latticesym.reduce._accurate import UNIT_ROUNDOFF, cbrt_squared, det3_with_bound, dot2
from latticesym.reduce._context import CANCEL_RATIO_SQ, FLOAT_TINY, MAX_TRANSFORM

__all__ = ["reduce_batch_numpy"]

_PI = np.array([p[0] for p in _kg.PRE_PAIRS])
_PJ = np.array([p[1] for p in _kg.PRE_PAIRS])
_U = UNIT_ROUNDOFF


def _tol(v: NDArray[np.float64], eps: float) -> NDArray[np.float64]:
    return eps * cbrt_squared(v, np.frexp, np.ldexp)


def _volume(r: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    det, bound = det3_with_bound(r[:, 0, 0], r[:, 0, 1], r[:, 0, 2], r[:, 1, 0], r[:, 1, 1], r[:, 1, 2],
                                 r[:, 2, 0], r[:, 2, 1], r[:, 2, 2])
    v = np.abs(det)
    return v, bound + FLOAT_TINY < _kg.VOLUME_RTOL * v


class _State:
    """Arrays of the working set (first axis: lattice)."""

    def __init__(self, x: NDArray[np.float64], h: NDArray[np.float64], lo: NDArray[np.float64],
                 nl: NDArray[np.float64]):
        m = x.shape[0]
        self.idx = np.arange(m)
        self.x, self.h, self.lo, self.nl = x, h, lo, nl
        self.t = np.broadcast_to(np.eye(3), (m, 3, 3)).copy()
        self.r = np.empty((m, 3, 3))
        self.g = np.empty((m, 3, 3))
        self.sv = np.empty((m, 3, 3))
        self.power = np.ones(m, dtype=np.int64)
        self.lam = np.zeros(m, dtype=np.int64)
        self.n_pre = np.zeros(m, dtype=np.int64)
        self.n_kg = np.zeros(m, dtype=np.int64)
        self.accurate = np.zeros(m, dtype=bool)
        self.pre = np.zeros(m, dtype=bool)
        self.v_used = np.zeros(m)
        self.e = np.zeros(m)

    def keep(self, mask: NDArray[np.bool_]) -> None:
        for name in ("idx", "x", "h", "lo", "nl", "t", "r", "g", "sv", "power", "lam", "n_pre", "n_kg",
                     "accurate", "pre", "v_used", "e"):
            setattr(self, name, getattr(self, name)[mask])


def _rows(s: _State, sel: NDArray[np.intp], ri: NDArray[np.intp], accurate: NDArray[np.bool_],
          out: NDArray[np.float64]) -> None:
    """Row ``ri`` of ``t @ x`` for the lattices ``sel`` into ``out[sel, ri]`` (FloatContext.row)."""
    x, nl = s.x[sel], s.nl[sel]
    tr = s.t[sel, ri]
    t0, t1, t2 = tr[:, 0], tr[:, 1], tr[:, 2]
    r0 = t0 * x[:, 0, 0] + t1 * x[:, 1, 0] + t2 * x[:, 2, 0]
    r1 = t0 * x[:, 0, 1] + t1 * x[:, 1, 1] + t2 * x[:, 2, 1]
    r2 = t0 * x[:, 0, 2] + t1 * x[:, 1, 2] + t2 * x[:, 2, 2]
    sz = np.abs(t0) * nl[:, 0] + np.abs(t1) * nl[:, 1] + np.abs(t2) * nl[:, 2]
    need = accurate | (sz * sz > CANCEL_RATIO_SQ * (r0 * r0 + r1 * r1 + r2 * r2))
    res = np.stack([r0, r1, r2], axis=-1)
    if need.any():
        w = np.flatnonzero(need)
        hw, lw, xw = s.h[sel[w]], s.lo[sel[w]], x[w]
        a0, a1, a2 = t0[w], t1[w], t2[w]
        for j in range(3):
            res[w, j] = dot2(a0, a1, a2, xw[:, 0, j], hw[:, 0, j], lw[:, 0, j], xw[:, 1, j], hw[:, 1, j],
                             lw[:, 1, j], xw[:, 2, j], hw[:, 2, j], lw[:, 2, j])
    out[sel, ri] = res


def _gram_row(r: NDArray[np.float64], g: NDArray[np.float64], sel: NDArray[np.intp], ri: NDArray[np.intp]) -> None:
    rs = r[sel]
    ar = np.arange(sel.size)
    a = rs[ar, ri]
    for k in range(3):
        b = rs[:, k]
        d = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]
        g[sel, ri, k] = d
        g[sel, k, ri] = d


def _all_rows(s: _State, sel: NDArray[np.intp], accurate: NDArray[np.bool_], out: NDArray[np.float64]) -> None:
    for i in range(3):
        _rows(s, sel, np.full(sel.size, i), accurate, out)


def _full_gram(s: _State, sel: NDArray[np.intp]) -> None:
    for i in range(3):
        _gram_row(s.r, s.g, sel, np.full(sel.size, i))


def _g6_args(g: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    return g[:, 0, 0], g[:, 1, 1], g[:, 2, 2], 2 * g[:, 1, 2], 2 * g[:, 0, 2], 2 * g[:, 0, 1]


def reduce_batch_numpy(x: NDArray[np.float64], h: NDArray[np.float64], lo: NDArray[np.float64],
                       nl: NDArray[np.float64], eps: float, max_iter: int, skip: int = 0
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64],
                                  NDArray[np.int64], NDArray[np.float64]]:
    """Reduce normalised lattices ``x`` (n, 3, 3); same arguments and outputs as the numba kernel.

    Returns ``(t, r, g, status, iterations, e)``: float64 integer transforms, rows, Gram matrices,
    status codes of :mod:`latticesym.reduce._kg`, iteration counts and tolerances.
    """
    n = x.shape[0]
    t_out, r_out, g_out = np.zeros((n, 3, 3)), np.zeros((n, 3, 3)), np.zeros((n, 3, 3))
    st_out = np.full(n, _kg.OK, dtype=np.int64)
    it_out = np.zeros(n, dtype=np.int64)
    e_out = np.zeros(n)
    s = _State(x, h, lo, nl)
    zero = np.zeros(n)

    def finish(sel: NDArray[np.intp], status: int, extra: int = 0) -> None:
        ids = s.idx[sel]
        t_out[ids], r_out[ids], g_out[ids] = s.t[sel], s.r[sel], s.g[sel]
        st_out[ids] = status
        it_out[ids] = s.n_pre[sel] + s.n_kg[sel] + extra
        e_out[ids] = s.e[sel]

    every = np.arange(n)
    _all_rows(s, every, s.accurate, s.r)
    _full_gram(s, every)
    alive = np.ones(n, dtype=bool)
    bad = ~((s.g[:, 0, 0] > 0) & (s.g[:, 1, 1] > 0) & (s.g[:, 2, 2] > 0))
    if bad.any():
        finish(np.flatnonzero(bad), _kg.PRECISION)
        alive &= ~bad
    s.v_used = _volume(s.r)[0]
    s.e = _tol(s.v_used, eps)
    code = _kg.kg_decide_fast(*_g6_args(s.g), zero, zero, zero, zero, zero, zero, s.e, 0.0)[0]
    s.pre = code != _kg.REDUCED
    s.sv[:] = s.t
    s.keep(alive)

    while s.idx.size:
        alive = np.ones(s.idx.size, dtype=bool)
        # ---------------- Phase 1: pre-reduction, greedy on the largest relative decrease
        psel = np.flatnonzero(s.pre)
        if psel.size:
            g = s.g[psel]
            gij = g[:, _PI, _PJ]
            gjj = g[:, _PJ, _PJ]
            y = gij / gjj
            q = np.floor(np.abs(y) + 0.5)
            q = np.where(y < 0, -q, q)
            dec = (2 * q * gij - q * q * gjj) / g[:, _PI, _PI]
            k = np.argmax(dec, axis=1)
            ar = np.arange(psel.size)
            best = dec[ar, k]
            stop = ~(best > _kg.PRE_TAU)
            go = ~stop
            over = go & (s.n_pre[psel] >= max_iter)
            if over.any():
                finish(psel[over], _kg.NOT_CONVERGED)
                alive[psel[over]] = False
                go &= ~over
            bi, bj, bq = _PI[k], _PJ[k], q[ar, k]
            ti, tj = s.t[psel, bi], s.t[psel, bj]
            fits = np.all(np.abs(ti) + np.abs(bq)[:, None] * np.abs(tj) <= MAX_TRANSFORM, axis=1)
            ovf = go & ~fits
            if ovf.any():
                finish(psel[ovf], _kg.OVERFLOW)
                alive[psel[ovf]] = False
                go &= ~ovf
            if go.any():
                w = psel[go]
                wi = bi[go]
                s.t[w, wi] = ti[go] - bq[go][:, None] * tj[go]
                s.n_pre[w] += 1
                _rows(s, w, wi, s.accurate[w], s.r)
                _gram_row(s.r, s.g, w, wi)
                nonpos = ~(s.g[w, wi, wi] > 0)
                if nonpos.any():
                    finish(w[nonpos], _kg.PRECISION)
                    alive[w[nonpos]] = False
            if stop.any():
                w = psel[stop]
                tmp = np.empty((s.idx.size, 3, 3))
                _all_rows(s, w, np.ones(w.size, dtype=bool), tmp)
                s.v_used[w] = _volume(tmp[w])[0]
                s.e[w] = _tol(s.v_used[w], eps)
                s.pre[w] = False
                s.sv[w] = s.t[w]
                s.power[w] = 1
                s.lam[w] = 0
        # ---------------- Phase 2: Krivy-Gruber, for lattices that were already in it
        ksel = np.flatnonzero(~s.pre & alive)
        if psel.size:
            ksel = np.setdiff1d(ksel, psel, assume_unique=True)
        if ksel.size:
            _kg_pass(s, ksel, eps, max_iter, skip, alive, finish)
        s.keep(alive)
    return t_out, r_out, g_out, st_out, it_out, e_out


def _kg_pass(s: _State, ksel: NDArray[np.intp], eps: float, max_iter: int, skip: int,
             alive: NDArray[np.bool_], finish: Any) -> None:
    zero = np.zeros(ksel.size)
    code, _, si, sj, sk = _kg.kg_decide_fast(*_g6_args(s.g[ksel]), zero, zero, zero, zero, zero, zero,
                                             s.e[ksel], 0.0, skip)
    code = np.asarray(code)
    si, sj, sk = (np.broadcast_to(np.asarray(v), code.shape).astype(np.float64) for v in (si, sj, sk))

    # ---- certification of the lattices that no step changes
    c = ksel[code == _kg.REDUCED]
    if c.size:
        fast = c[~s.accurate[c]]
        if fast.size:
            _all_rows(s, fast, np.ones(fast.size, dtype=bool), s.r)
            _full_gram(s, fast)
        v_fin, reliable = _volume(s.r[c])
        unrel = ~reliable
        if unrel.any():
            finish(c[unrel], _kg.PRECISION)
            alive[c[unrel]] = False
        incons = reliable & (np.abs(v_fin - s.v_used[c]) > _kg.VOLUME_RTOL * v_fin)
        if incons.any():
            w = c[incons]
            s.v_used[w] = v_fin[incons]
            s.e[w] = _tol(s.v_used[w], eps)
            s.accurate[w] = True
        cc = c[reliable & ~incons]
        if cc.size:
            g, t, nl = s.g[cc], s.t[cc], s.nl[cc]
            one = 1.0 + 8.0 * _U
            sz = [np.abs(t[:, i, 0]) * nl[:, 0] + np.abs(t[:, i, 1]) * nl[:, 1] + np.abs(t[:, i, 2]) * nl[:, 2]
                  for i in range(3)]
            d = _kg.g6_error_bounds(np.sqrt(g[:, 0, 0]) * one, np.sqrt(g[:, 1, 1]) * one, np.sqrt(g[:, 2, 2]) * one,
                                    sz[0], sz[1], sz[2], _U, FLOAT_TINY)
            ga = _g6_args(g)
            code2, unsure, _, _, _ = _kg.kg_decide(ga[0], ga[1], ga[2], ga[3], ga[4], ga[5], d[0], d[1], d[2], d[3],
                                                   d[4], d[5], s.e[cc], _U, skip)
            code2 = np.asarray(code2)
            unsure = np.broadcast_to(np.asarray(unsure), code2.shape)
            moved = code2 != _kg.REDUCED
            was_acc = s.accurate[cc]
            fail = moved & was_acc
            if fail.any():
                finish(cc[fail], _kg.PRECISION)
                alive[cc[fail]] = False
            redo = cc[moved & ~was_acc]
            if redo.size:
                s.accurate[redo] = True
                s.sv[redo] = s.t[redo]
                s.power[redo] = 1
                s.lam[redo] = 0
            ok = ~moved
            if (ok & unsure).any():
                finish(cc[ok & unsure], _kg.PRECISION)
                alive[cc[ok & unsure]] = False
            if (ok & ~unsure).any():
                finish(cc[ok & ~unsure], _kg.OK)
                alive[cc[ok & ~unsure]] = False

    # ---- one step for the others
    act = code != _kg.REDUCED
    capped = act & (s.n_kg[ksel] >= max_iter)
    if capped.any():
        finish(ksel[capped], _kg.NOT_CONVERGED)
        alive[ksel[capped]] = False
    act &= ~capped
    if not act.any():
        return
    for swap_code, (a, b, cidx) in ((_kg.A1, (0, 1, 2)), (_kg.A2, (1, 2, 0))):
        w = ksel[act & (code == swap_code)]
        if w.size:  # A1 swaps a, b; A2 swaps b, c; all three rows negated (det +1)
            for arr in (s.t, s.r):
                va, vb, vc = arr[w, a].copy(), arr[w, b].copy(), arr[w, cidx].copy()
                arr[w, a], arr[w, b], arr[w, cidx] = -vb, -va, -vc
            g = s.g[w]
            gaa, gbb, gac, gbc = g[:, a, a].copy(), g[:, b, b].copy(), g[:, a, cidx].copy(), g[:, b, cidx].copy()
            s.g[w, a, a], s.g[w, b, b] = gbb, gaa
            s.g[w, a, cidx], s.g[w, cidx, a] = gbc, gbc
            s.g[w, b, cidx], s.g[w, cidx, b] = gac, gac
    m34 = act & ((code == _kg.A3) | (code == _kg.A4))
    if m34.any():
        w = ksel[m34]
        sg = np.stack([si[m34], sj[m34], sk[m34]], axis=-1)
        s.t[w] = sg[:, :, None] * s.t[w]
        s.r[w] = sg[:, :, None] * s.r[w]
        s.g[w] = (sg[:, :, None] * sg[:, None, :]) * s.g[w]
    shear = act & (code >= _kg.A5)
    stepped = act.copy()
    if shear.any():
        pos = np.flatnonzero(shear)
        w = ksel[pos]
        cw = code[pos]
        ri = np.where(cw == _kg.A7, 1, 2)
        rj = np.where(cw == _kg.A5, 1, 0)
        a8 = cw == _kg.A8
        ar = np.arange(w.size)
        y = s.g[w, ri, rj] / s.g[w, rj, rj]
        q = np.floor(np.abs(y) + 0.5)
        q = np.where(y < 0, -q, q)
        q = np.where(q == 0, si[pos], q)
        t = s.t[w]
        ti, tj = t[ar, ri], t[ar, rj]
        fits = np.asarray(np.where(
            a8, np.all(np.abs(t[:, 2]) + np.abs(t[:, 0]) + np.abs(t[:, 1]) <= MAX_TRANSFORM, axis=1),
            np.all(np.abs(ti) + np.abs(q)[:, None] * np.abs(tj) <= MAX_TRANSFORM, axis=1)), dtype=bool)
        if not fits.all():
            finish(w[~fits], _kg.OVERFLOW)
            alive[w[~fits]] = False
            stepped[pos[~fits]] = False
        new = np.where(a8[:, None], t[:, 2] + t[:, 0] + t[:, 1], ti - q[:, None] * tj)
        f = fits
        w, ri, new = w[f], ri[f], new[f]
        s.t[w, ri] = new
        _rows(s, w, ri, s.accurate[w], s.r)
        _gram_row(s.r, s.g, w, ri)
        nonpos = ~(s.g[w, ri, ri] > 0)
        if nonpos.any():
            finish(w[nonpos], _kg.PRECISION, extra=1)
            alive[w[nonpos]] = False
            stepped[pos[f][nonpos]] = False
    w = ksel[stepped]
    s.n_kg[w] += 1
    same = np.all(s.t[w] == s.sv[w], axis=(1, 2))
    if same.any():
        finish(w[same], _kg.CYCLE)
        alive[w[same]] = False
    w = w[~same]
    s.lam[w] += 1
    save = w[s.lam[w] == s.power[w]]
    s.sv[save] = s.t[save]
    s.power[save] *= 2
    s.lam[save] = 0
