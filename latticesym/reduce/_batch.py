"""Vectorised batch of the float reducer, written once for numpy arrays and torch tensors.

Every lattice follows exactly the control flow of :func:`latticesym.reduce._kg.reduce_with_context`
(float64 context) and of the numba kernel, but all lattices advance together, one step per pass,
each on its own path: a lattice in pre-reduction takes a pre-reduction step while another takes a
Krivy-Gruber step.  Finished lattices leave the working set, so a pass costs time proportional
to the lattices still running.  The decisions are :func:`~latticesym.reduce._kg.kg_decide` applied
to whole arrays; the rows use the same Dot2 as the scalar paths.  Results are bit-identical to the
numba kernel and to the one-lattice path (tested).

The array operations go through an *ops* object (:class:`NumpyOps` here; ``latticesym.torch``
supplies one for torch tensors on any device, so the torch reducer runs this very code and takes
the same decisions): elementwise IEEE operations only (``+ - * /``, ``sqrt``, ``floor``, exact
power-of-two scalings), never a fused or reordered reduction, so numpy, torch on CPU and torch
on CUDA round alike.  This module never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.reduce import _kg
from latticesym.reduce._accurate import UNIT_ROUNDOFF, cbrt_squared, det3_with_bound, dot2, split
from latticesym.reduce._context import CANCEL_RATIO_SQ, FLOAT_TINY, MAX_TRANSFORM

__all__ = ["NO_SCALE", "NUMPY", "NumpyOps", "prepare", "reduce_batch", "reduce_batch_numpy", "reduce_raw"]

_U = UNIT_ROUNDOFF
#: Exponent marking a lattice that cannot be normalised exactly (zero or subnormal entries).
NO_SCALE = -100000


class NumpyOps:
    """The array operations of the batch, for numpy (``latticesym.torch`` has the torch twin).

    ``syncs`` counts the reads of array contents into Python (``any``, ``nonzero``): on a GPU each
    is a host synchronisation.
    """

    name = "numpy"

    def __init__(self) -> None:
        self.syncs = 0
        self.pi = np.array([p[0] for p in _kg.PRE_PAIRS])
        self.pj = np.array([p[1] for p in _kg.PRE_PAIRS])

    # creation
    def zeros(self, shape: Any, kind: str = "f") -> Any:
        return np.zeros(shape, dtype=_NP_DTYPES[kind])

    def full(self, shape: Any, value: Any, kind: str = "f") -> Any:
        return np.full(shape, value, dtype=_NP_DTYPES[kind])

    def arange(self, n: int) -> Any:
        return np.arange(n)

    def eye(self, n: int) -> Any:
        return np.broadcast_to(np.eye(3), (n, 3, 3)).copy()

    def like_float(self, v: Any, like: Any) -> Any:
        """``v`` (scalar or array) as a float64 array of the shape of ``like``."""
        return np.broadcast_to(np.asarray(v), np.shape(like)).astype(np.float64)

    def like_bool(self, v: Any, like: Any) -> Any:
        return np.broadcast_to(np.asarray(v, dtype=bool), np.shape(like))

    # reading into Python (host synchronisations on a GPU)
    def any(self, mask: Any) -> bool:
        self.syncs += 1
        return bool(mask.any())

    def nonzero(self, mask: Any) -> Any:
        self.syncs += 1
        return np.flatnonzero(mask)

    @staticmethod
    def size(a: Any) -> int:
        return int(a.shape[0])

    # elementwise and shape operations
    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    floor = staticmethod(np.floor)
    sqrt = staticmethod(np.sqrt)
    isfinite = staticmethod(np.isfinite)
    frexp = staticmethod(np.frexp)
    ldexp = staticmethod(np.ldexp)

    @staticmethod
    def stack(arrays: list[Any], axis: int = -1) -> Any:
        return np.stack(arrays, axis=axis)

    @staticmethod
    def all(a: Any, axis: Any) -> Any:
        return np.all(a, axis=axis)

    @staticmethod
    def amax(a: Any, axis: Any) -> Any:
        return np.max(a, axis=axis)

    @staticmethod
    def argmax(a: Any, axis: int) -> Any:
        return np.argmax(a, axis=axis)

    @staticmethod
    def copy(a: Any) -> Any:
        return a.copy()

    @staticmethod
    def setdiff(a: Any, b: Any) -> Any:
        """Sorted ``a`` without the entries of ``b`` (both sorted, unique)."""
        return np.setdiff1d(a, b, assume_unique=True)

    @staticmethod
    def to_int(a: Any, kind: str = "i") -> Any:
        return a.astype(_NP_DTYPES[kind])

    @staticmethod
    def errstate() -> Any:
        """Silence overflow where outputs are checked for representability afterwards."""
        return np.errstate(over="ignore", invalid="ignore")


_NP_DTYPES = {"f": np.float64, "i": np.int64, "b": np.bool_, "i8": np.int8}
#: The numpy operations (stateless but for the sync counter, which numpy callers ignore).
NUMPY = NumpyOps()


def _tol(v: Any, eps: float, ops: Any) -> Any:
    return eps * cbrt_squared(v, ops.frexp, ops.ldexp)


def _volume(r: Any) -> tuple[Any, Any]:
    det, bound = det3_with_bound(r[:, 0, 0], r[:, 0, 1], r[:, 0, 2], r[:, 1, 0], r[:, 1, 1], r[:, 1, 2],
                                 r[:, 2, 0], r[:, 2, 1], r[:, 2, 2])
    v = abs(det)
    return v, bound + FLOAT_TINY < _kg.VOLUME_RTOL * v


def prepare(src: Any, ops: Any = NUMPY) -> tuple[Any, ...]:
    """Power-of-two normalisation and Veltkamp split of ``src`` (n, 3, 3), as the numba ``_prepare``.

    Returns ``x, h, lo, nl, k``: ``src == x * 2**k`` exactly (``k == NO_SCALE`` where that is not
    possible: zero or subnormal entries; ``x`` is then all ones), the halves ``x == h + lo``, the
    row norms ``nl`` (rounded up).
    """
    amax = ops.amax(abs(src), (1, 2))
    k = ops.to_int(ops.frexp(amax)[1])
    x = ops.ldexp(src, -k[:, None, None])
    exact = ops.all(ops.ldexp(x, k[:, None, None]) == src, (1, 2)) & (amax > 0)
    k = ops.where(exact, k, NO_SCALE)
    x = ops.where(exact[:, None, None], x, 1.0)
    h, lo = split(x)
    nl = ops.sqrt(x[..., 0] * x[..., 0] + x[..., 1] * x[..., 1] + x[..., 2] * x[..., 2]) * (1.0 + 8.0 * _U)
    return x, h, lo, nl, k


class _State:
    """Arrays of the working set (first axis: lattice)."""

    _FIELDS = ("idx", "x", "h", "lo", "nl", "t", "r", "g", "sv", "power", "lam", "n_pre", "n_kg", "accurate",
               "pre", "v_used", "e")

    def __init__(self, x: Any, h: Any, lo: Any, nl: Any, ops: Any):
        m = ops.size(x)
        self.idx = ops.arange(m)
        self.x, self.h, self.lo, self.nl = x, h, lo, nl
        self.t = ops.eye(m)
        self.r = ops.zeros((m, 3, 3))
        self.g = ops.zeros((m, 3, 3))
        self.sv = ops.zeros((m, 3, 3))
        self.power = ops.full((m,), 1, "i")
        self.lam = ops.zeros((m,), "i")
        self.n_pre = ops.zeros((m,), "i")
        self.n_kg = ops.zeros((m,), "i")
        self.accurate = ops.zeros((m,), "b")
        self.pre = ops.zeros((m,), "b")
        self.v_used = ops.zeros((m,))
        self.e = ops.full((m,), float("nan"))  # as reduce_with_context: no e before the first volume

    def keep(self, mask: Any) -> None:
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[mask])


def _rows(s: _State, sel: Any, ri: Any, accurate: Any, out: Any, ops: Any) -> None:
    """Row ``ri`` of ``t @ x`` for the lattices ``sel`` into ``out[sel, ri]`` (FloatContext.row)."""
    x, nl = s.x[sel], s.nl[sel]
    tr = s.t[sel, ri]
    t0, t1, t2 = tr[:, 0], tr[:, 1], tr[:, 2]
    r0 = t0 * x[:, 0, 0] + t1 * x[:, 1, 0] + t2 * x[:, 2, 0]
    r1 = t0 * x[:, 0, 1] + t1 * x[:, 1, 1] + t2 * x[:, 2, 1]
    r2 = t0 * x[:, 0, 2] + t1 * x[:, 1, 2] + t2 * x[:, 2, 2]
    sz = abs(t0) * nl[:, 0] + abs(t1) * nl[:, 1] + abs(t2) * nl[:, 2]
    need = accurate | (sz * sz > CANCEL_RATIO_SQ * (r0 * r0 + r1 * r1 + r2 * r2))
    res = ops.stack([r0, r1, r2], -1)
    if ops.any(need):
        w = ops.nonzero(need)
        hw, lw, xw = s.h[sel[w]], s.lo[sel[w]], x[w]
        a0, a1, a2 = t0[w], t1[w], t2[w]
        for j in range(3):
            res[w, j] = dot2(a0, a1, a2, xw[:, 0, j], hw[:, 0, j], lw[:, 0, j], xw[:, 1, j], hw[:, 1, j],
                             lw[:, 1, j], xw[:, 2, j], hw[:, 2, j], lw[:, 2, j])
    out[sel, ri] = res


def _gram_row(r: Any, g: Any, sel: Any, ri: Any, ops: Any) -> None:
    rs = r[sel]
    a = rs[ops.arange(ops.size(sel)), ri]
    for k in range(3):
        b = rs[:, k]
        d = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]
        g[sel, ri, k] = d
        g[sel, k, ri] = d


def _all_rows(s: _State, sel: Any, accurate: Any, out: Any, ops: Any) -> None:
    for i in range(3):
        _rows(s, sel, ops.full((ops.size(sel),), i, "i"), accurate, out, ops)


def _full_gram(s: _State, sel: Any, ops: Any) -> None:
    for i in range(3):
        _gram_row(s.r, s.g, sel, ops.full((ops.size(sel),), i, "i"), ops)


def _g6_args(g: Any) -> tuple[Any, ...]:
    return g[:, 0, 0], g[:, 1, 1], g[:, 2, 2], 2 * g[:, 1, 2], 2 * g[:, 0, 2], 2 * g[:, 0, 1]


def reduce_batch(x: Any, h: Any, lo: Any, nl: Any, eps: float, max_iter: int, skip: int = 0,
                 ops: Any = NUMPY) -> tuple[Any, ...]:
    """Reduce normalised lattices ``x`` (n, 3, 3) (from :func:`prepare`); same outputs as ``_kg``'s reducer.

    Returns ``(t, r, g, status, iterations, e)``: float64 integer transforms, rows, Gram matrices,
    status codes of :mod:`latticesym.reduce._kg`, iteration counts and tolerances.
    """
    n = ops.size(x)
    t_out, r_out, g_out = ops.zeros((n, 3, 3)), ops.zeros((n, 3, 3)), ops.zeros((n, 3, 3))
    st_out = ops.full((n,), _kg.OK, "i")
    it_out = ops.zeros((n,), "i")
    e_out = ops.zeros((n,))
    s = _State(x, h, lo, nl, ops)
    zero = ops.zeros((n,))

    def finish(sel: Any, status: int, extra: int = 0) -> None:
        ids = s.idx[sel]
        t_out[ids], r_out[ids], g_out[ids] = s.t[sel], s.r[sel], s.g[sel]
        st_out[ids] = status
        it_out[ids] = s.n_pre[sel] + s.n_kg[sel] + extra
        e_out[ids] = s.e[sel]

    every = ops.arange(n)
    _all_rows(s, every, s.accurate, s.r, ops)
    _full_gram(s, every, ops)
    alive = ops.full((n,), True, "b")
    bad = ~((s.g[:, 0, 0] > 0) & (s.g[:, 1, 1] > 0) & (s.g[:, 2, 2] > 0))
    if ops.any(bad):
        finish(ops.nonzero(bad), _kg.PRECISION)
        alive &= ~bad
    s.v_used = _volume(s.r)[0]
    s.e = _tol(s.v_used, eps, ops)
    code = _kg.kg_decide_fast(*_g6_args(s.g), zero, zero, zero, zero, zero, zero, s.e, 0.0)[0]
    s.pre = code != _kg.REDUCED
    s.sv[:] = s.t
    s.keep(alive)

    while ops.size(s.idx):
        alive = ops.full((ops.size(s.idx),), True, "b")
        # ---------------- Phase 1: pre-reduction, greedy on the largest relative decrease
        psel = ops.nonzero(s.pre)
        if ops.size(psel):
            g = s.g[psel]
            gij = g[:, ops.pi, ops.pj]
            gjj = g[:, ops.pj, ops.pj]
            y = gij / gjj
            q = ops.floor(abs(y) + 0.5)
            q = ops.where(y < 0, -q, q)
            dec = (2 * q * gij - q * q * gjj) / g[:, ops.pi, ops.pi]
            k = ops.argmax(dec, 1)
            ar = ops.arange(ops.size(psel))
            best = dec[ar, k]
            stop = ~(best > _kg.PRE_TAU)
            go = ~stop
            over = go & (s.n_pre[psel] >= max_iter)
            if ops.any(over):
                finish(psel[over], _kg.NOT_CONVERGED)
                alive[psel[over]] = False
                go &= ~over
            bi, bj, bq = ops.pi[k], ops.pj[k], q[ar, k]
            ti, tj = s.t[psel, bi], s.t[psel, bj]
            fits = ops.all(abs(ti) + abs(bq)[:, None] * abs(tj) <= MAX_TRANSFORM, 1)
            ovf = go & ~fits
            if ops.any(ovf):
                finish(psel[ovf], _kg.OVERFLOW)
                alive[psel[ovf]] = False
                go &= ~ovf
            if ops.any(go):
                w = psel[go]
                wi = bi[go]
                s.t[w, wi] = ti[go] - bq[go][:, None] * tj[go]
                s.n_pre[w] += 1
                _rows(s, w, wi, s.accurate[w], s.r, ops)
                _gram_row(s.r, s.g, w, wi, ops)
                nonpos = ~(s.g[w, wi, wi] > 0)
                if ops.any(nonpos):
                    finish(w[nonpos], _kg.PRECISION)
                    alive[w[nonpos]] = False
            if ops.any(stop):
                w = psel[stop]
                tmp = ops.zeros((ops.size(s.idx), 3, 3))
                _all_rows(s, w, ops.full((ops.size(w),), True, "b"), tmp, ops)
                s.v_used[w] = _volume(tmp[w])[0]
                s.e[w] = _tol(s.v_used[w], eps, ops)
                s.pre[w] = False
                s.sv[w] = s.t[w]
                s.power[w] = 1
                s.lam[w] = 0
        # ---------------- Phase 2: Krivy-Gruber, for lattices that were already in it
        ksel = ops.nonzero(~s.pre & alive)
        if ops.size(psel):
            ksel = ops.setdiff(ksel, psel)
        if ops.size(ksel):
            _kg_pass(s, ksel, eps, max_iter, skip, alive, finish, ops)
        s.keep(alive)
    return t_out, r_out, g_out, st_out, it_out, e_out


def _kg_pass(s: _State, ksel: Any, eps: float, max_iter: int, skip: int, alive: Any, finish: Any,
             ops: Any) -> None:
    zero = ops.zeros((ops.size(ksel),))
    code, _, si, sj, sk = _kg.kg_decide_fast(*_g6_args(s.g[ksel]), zero, zero, zero, zero, zero, zero,
                                             s.e[ksel], 0.0, skip)
    si, sj, sk = (ops.like_float(v, code) for v in (si, sj, sk))

    # ---- certification of the lattices that no step changes
    c = ksel[code == _kg.REDUCED]
    if ops.size(c):
        fast = c[~s.accurate[c]]
        if ops.size(fast):
            _all_rows(s, fast, ops.full((ops.size(fast),), True, "b"), s.r, ops)
            _full_gram(s, fast, ops)
        v_fin, reliable = _volume(s.r[c])
        unrel = ~reliable
        if ops.any(unrel):
            finish(c[unrel], _kg.PRECISION)
            alive[c[unrel]] = False
        incons = reliable & (abs(v_fin - s.v_used[c]) > _kg.VOLUME_RTOL * v_fin)
        if ops.any(incons):
            w = c[incons]
            s.v_used[w] = v_fin[incons]
            s.e[w] = _tol(s.v_used[w], eps, ops)
            s.accurate[w] = True
        cc = c[reliable & ~incons]
        if ops.size(cc):
            g, t, nl = s.g[cc], s.t[cc], s.nl[cc]
            one = 1.0 + 8.0 * _U
            sz = [abs(t[:, i, 0]) * nl[:, 0] + abs(t[:, i, 1]) * nl[:, 1] + abs(t[:, i, 2]) * nl[:, 2]
                  for i in range(3)]
            d = _kg.g6_error_bounds(ops.sqrt(g[:, 0, 0]) * one, ops.sqrt(g[:, 1, 1]) * one,
                                    ops.sqrt(g[:, 2, 2]) * one, sz[0], sz[1], sz[2], _U, FLOAT_TINY)
            ga = _g6_args(g)
            code2, unsure, _, _, _ = _kg.kg_decide(ga[0], ga[1], ga[2], ga[3], ga[4], ga[5], d[0], d[1], d[2], d[3],
                                                   d[4], d[5], s.e[cc], _U, skip)
            unsure = ops.like_bool(unsure, code2)
            moved = code2 != _kg.REDUCED
            was_acc = s.accurate[cc]
            fail = moved & was_acc
            if ops.any(fail):
                finish(cc[fail], _kg.PRECISION)
                alive[cc[fail]] = False
            redo = cc[moved & ~was_acc]
            if ops.size(redo):
                s.accurate[redo] = True
                s.sv[redo] = s.t[redo]
                s.power[redo] = 1
                s.lam[redo] = 0
            ok = ~moved
            if ops.any(ok & unsure):
                finish(cc[ok & unsure], _kg.PRECISION)
                alive[cc[ok & unsure]] = False
            if ops.any(ok & ~unsure):
                finish(cc[ok & ~unsure], _kg.OK)
                alive[cc[ok & ~unsure]] = False

    # ---- one step for the others
    act = code != _kg.REDUCED
    capped = act & (s.n_kg[ksel] >= max_iter)
    if ops.any(capped):
        finish(ksel[capped], _kg.NOT_CONVERGED)
        alive[ksel[capped]] = False
    act &= ~capped
    if not ops.any(act):
        return
    for swap_code, (a, b, cidx) in ((_kg.A1, (0, 1, 2)), (_kg.A2, (1, 2, 0))):
        w = ksel[act & (code == swap_code)]
        if ops.size(w):  # A1 swaps a, b; A2 swaps b, c; all three rows negated (det +1)
            # transform entries are integers: 0 - v keeps a canonical +0.0 (rows negate exactly)
            va, vb, vc = ops.copy(s.t[w, a]), ops.copy(s.t[w, b]), ops.copy(s.t[w, cidx])
            s.t[w, a], s.t[w, b], s.t[w, cidx] = 0.0 - vb, 0.0 - va, 0.0 - vc
            va, vb, vc = ops.copy(s.r[w, a]), ops.copy(s.r[w, b]), ops.copy(s.r[w, cidx])
            s.r[w, a], s.r[w, b], s.r[w, cidx] = -vb, -va, -vc
            g = s.g[w]
            gaa, gbb = ops.copy(g[:, a, a]), ops.copy(g[:, b, b])
            gac, gbc = ops.copy(g[:, a, cidx]), ops.copy(g[:, b, cidx])
            s.g[w, a, a], s.g[w, b, b] = gbb, gaa
            s.g[w, a, cidx], s.g[w, cidx, a] = gbc, gbc
            s.g[w, b, cidx], s.g[w, cidx, b] = gac, gac
    m34 = act & ((code == _kg.A3) | (code == _kg.A4))
    if ops.any(m34):
        w = ksel[m34]
        sg = ops.stack([si[m34], sj[m34], sk[m34]], -1)
        s.t[w] = sg[:, :, None] * s.t[w] + 0.0  # + 0.0: canonical zeros in the transform
        s.r[w] = sg[:, :, None] * s.r[w]
        s.g[w] = (sg[:, :, None] * sg[:, None, :]) * s.g[w]
    shear = act & (code >= _kg.A5)
    stepped = ops.copy(act)
    if ops.any(shear):
        pos = ops.nonzero(shear)
        w = ksel[pos]
        cw = code[pos]
        ri = ops.where(cw == _kg.A7, 1, 2)
        rj = ops.where(cw == _kg.A5, 1, 0)
        a8 = cw == _kg.A8
        ar = ops.arange(ops.size(w))
        y = s.g[w, ri, rj] / s.g[w, rj, rj]
        q = ops.floor(abs(y) + 0.5)
        q = ops.where(y < 0, -q, q)
        q = ops.where(q == 0, si[pos], q)
        t = s.t[w]
        ti, tj = t[ar, ri], t[ar, rj]
        fits = ops.where(a8, ops.all(abs(t[:, 2]) + abs(t[:, 0]) + abs(t[:, 1]) <= MAX_TRANSFORM, 1),
                         ops.all(abs(ti) + abs(q)[:, None] * abs(tj) <= MAX_TRANSFORM, 1))
        if not bool(ops.all(fits, 0)):
            ops.syncs += 1
            finish(w[~fits], _kg.OVERFLOW)
            alive[w[~fits]] = False
            stepped[pos[~fits]] = False
        new = ops.where(a8[:, None], t[:, 2] + t[:, 0] + t[:, 1], ti - q[:, None] * tj)
        f = fits
        w, ri, new = w[f], ri[f], new[f]
        s.t[w, ri] = new
        _rows(s, w, ri, s.accurate[w], s.r, ops)
        _gram_row(s.r, s.g, w, ri, ops)
        nonpos = ~(s.g[w, ri, ri] > 0)
        if ops.any(nonpos):
            finish(w[nonpos], _kg.PRECISION, extra=1)
            alive[w[nonpos]] = False
            stepped[pos[f][nonpos]] = False
    w = ksel[stepped]
    s.n_kg[w] += 1
    same = ops.all(s.t[w] == s.sv[w], (1, 2))
    if ops.any(same):
        finish(w[same], _kg.CYCLE)
        alive[w[same]] = False
    w = w[~same]
    s.lam[w] += 1
    save = w[s.lam[w] == s.power[w]]
    s.sv[save] = s.t[save]
    s.power[save] *= 2
    s.lam[save] = 0


def finalize(t: Any, rows: Any, g6n: Any, status: Any, iters: Any, e: Any, k: Any, ops: Any = NUMPY
             ) -> tuple[Any, ...]:
    """Results of normalised lattices back in the original units (``src == x * 2**k``).

    Returns ``(t, lattice, g6, status, iterations, tolerance)`` as the numba kernel writes them:
    ``t`` int64 (the identity where the lattice could not be normalised), ``status`` ``PRECISION``
    there and ``OVERFLOW`` where a certified output is not representable (not finite, ``A`` below
    ``_kg.G6_MIN`` or a positive tolerance below the normal range), ``tolerance``
    ``min(e, TAU_A * A)``.
    """
    bad = k == NO_SCALE
    kk = ops.where(bad, 0, k)
    with ops.errstate():
        g6s = ops.ldexp(g6n, 2 * kk[:, None])
        rs = ops.ldexp(rows, kk[:, None, None])
        et = ops.ldexp(e, 2 * kk)
        representable = (ops.all(ops.isfinite(rs), (1, 2)) & ops.all(ops.isfinite(g6s), 1)
                         & (g6s[:, 0] >= _kg.G6_MIN) & ((e == 0.0) | (et >= _kg.NORMAL_MIN)))
        tl = ops.minimum(et, _kg.TAU_A * g6s[:, 0])
    status = ops.where((status == _kg.OK) & ~representable, _kg.OVERFLOW, status)
    t = ops.to_int(ops.where(bad[:, None, None], ops.eye(ops.size(t)), t))
    nan = float("nan")
    return (t, ops.where(bad[:, None, None], nan, rs), ops.where(bad[:, None], nan, g6s),
            ops.to_int(ops.where(bad, _kg.PRECISION, status), "i8"), ops.where(bad, 0, iters),
            ops.where(bad, nan, tl))


def reduce_raw(src: Any, eps: float, max_iter: int, skip: int = 0, ops: Any = NUMPY) -> tuple[Any, ...]:
    """Reduce lattices ``src`` (n, 3, 3) in their original units: the outputs of the numba batch kernel.

    ``(t, lattice, g6, status, iterations, tolerance)``; non-finite lattices get ``NONFINITE``
    (identity transform, NaN lattice, G6 and tolerance, zero iterations).
    """
    n = ops.size(src)
    finite = ops.all(ops.isfinite(src), (1, 2))
    t = ops.to_int(ops.eye(n))
    lat, g6 = ops.full((n, 3, 3), float("nan")), ops.full((n, 6), float("nan"))
    st = ops.full((n,), _kg.NONFINITE, "i8")
    it, tol = ops.zeros((n,), "i"), ops.full((n,), float("nan"))
    run = ops.nonzero(finite)
    if not ops.size(run):
        return t, lat, g6, st, it, tol
    x, h, lo, nl, k = prepare(src[run], ops)
    tf, rr, g, s_f, i_f, et = reduce_batch(x, h, lo, nl, eps, max_iter, skip, ops)
    g6n = ops.stack([g[:, 0, 0], g[:, 1, 1], g[:, 2, 2], 2 * g[:, 1, 2], 2 * g[:, 0, 2], 2 * g[:, 0, 1]], -1)
    t[run], lat[run], g6[run], st[run], it[run], tol[run] = finalize(tf, rr, g6n, s_f, i_f, et, k, ops)
    return t, lat, g6, st, it, tol


def reduce_batch_numpy(x: NDArray[np.float64], h: NDArray[np.float64], lo: NDArray[np.float64],
                       nl: NDArray[np.float64], eps: float, max_iter: int, skip: int = 0) -> tuple[Any, ...]:
    """:func:`reduce_batch` on numpy arrays."""
    return reduce_batch(x, h, lo, nl, eps, max_iter, skip, NUMPY)
