r"""The candidate search of the Gram-space loss, pruned by a proved bound, written once for every backend.

For a reduced prediction :math:`g_p` and a reduced target :math:`g_t` (G6 vectors, divided by
:math:`s = \operatorname{tr} G_t / 3`), the Gram-space loss needs the first minimiser over the
candidate set :math:`S` (:func:`latticesym.torch.neighbour_transforms`, identity first) of

.. math:: r_M = \| M G_p M^T - G_t \|_F^2
          = \sum_{k} (m_k G_p m_k^T - G_{t,kk})^2 + 2 \sum_{i<j} (m_i G_p m_j^T - G_{t,ij})^2 ,

:math:`m_k` the rows of :math:`M`.  The bound: every term is
non-negative, so the partial sums in the order

.. math:: b_1(m_1) = (m_1 G_p m_1^T - A_t)^2 \le
          b_2(m_1, m_2) = b_1 + (m_2 G_p m_2^T - B_t)^2 + 2 (m_1 G_p m_2^T - G_{t,12})^2
          \le b_3 = b_2 + (m_3 G_p m_3^T - C_t)^2 \le r_M ,

are lower bounds of :math:`r_M` that depend only on the first one, two or three rows, and they
stay lower bounds *after rounding* because the residual is accumulated in exactly this order
(IEEE addition of a non-negative number never decreases a sum).  Since :math:`S` (after the
identity) is sorted lexicographically by rows, it is a three-level trie; a subtree whose bound
is not below the best residual found so far cannot contain a strictly smaller residual, and is
skipped.  The result is the *same* first minimiser as the exhaustive search with the same
arithmetic (proved and checked in ``proofs/11_gram_pruning.md``).  A cell far from every boundary
visits a handful of nodes: if every row :math:`m \ne \pm e_k` occurring in position :math:`k` of
:math:`S` has :math:`|m G_p m^T - G_{p,kk}| \ge 2 \|G_p - G_t\|_F`, only the sign changes
:math:`\operatorname{diag}(\pm 1, \pm 1, \pm 1)` survive the bounds (proof 11, item 4).

:func:`residual` is the one residual, an expression in ``+ - *`` only, evaluated by

- the compiled kernel (:func:`kernel`, numba; one lattice per loop pass, the trie pruned), and
- the tensor path (:func:`prep_torch`): the same expression on ``(n, |S|)`` broadcasts with the
  bound as a mask, no host synchronisation, any device, traceable by ``torch.compile``;

the two agree bit for bit on the chosen candidate (tested).  The kernel also does the no-grad
part of the loss around the search (reduced target, scale, the target-basis term over the
target's automorphisms in :math:`S`), so the loss calls it once per batch.
"""

from __future__ import annotations

import threading
import types
import warnings
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from latticesym.reduce import _numba as _reduce_numba
from latticesym.reduce._accurate import dot2, two_product, two_sum
from latticesym.reduce._kg import OK
from latticesym.reduce._numba import WORK_SIZE

__all__ = ["SearchTrie", "form", "kernel", "prep_numba", "prep_python", "residual", "search_numpy", "trie"]


def form(A: Any, B: Any, C: Any, xi: Any, eta: Any, zeta: Any,
         m0: Any, m1: Any, m2: Any, n0: Any, n1: Any, n2: Any) -> Any:
    r"""Bilinear form :math:`m G n^T` of the Gram matrix with G6 ``(A, B, C, xi, eta, zeta)``.

    Entries of ``m``, ``n`` are integers (here in {-1, 0, 1}), so the products ``m_i n_j`` are exact.
    Elementwise (Python/numba scalars, numpy arrays, tensors alike).
    """
    return (A * (m0 * n0) + B * (m1 * n1) + C * (m2 * n2)
            + 0.5 * (xi * (m1 * n2 + m2 * n1) + eta * (m0 * n2 + m2 * n0) + zeta * (m0 * n1 + m1 * n0)))


def kform(A: Any, B: Any, C: Any, xi: Any, eta: Any, zeta: Any, kp: Any, i: int, j: int) -> Any:
    """:func:`form` of rows ``i`` and ``j`` of the trie with their integer products taken from ``kp``
    (:attr:`SearchTrie.kp`: ``kp[i, j] = (m0 n0, m1 n1, m2 n2, m1 n2 + m2 n1, m0 n2 + m2 n0, m0 n1 + m1 n0)``).

    The same operations in the same order as :func:`form` once its products of the integer entries are
    taken (they are exact), so the value is bit for bit :func:`form`'s (tested); the kernel saves the
    nine products and three sums of ``m`` and ``n`` per evaluation.
    """
    return (A * kp[i, j, 0] + B * kp[i, j, 1] + C * kp[i, j, 2]
            + 0.5 * (xi * kp[i, j, 3] + eta * kp[i, j, 4] + zeta * kp[i, j, 5]))


def diag_term(q: Any, t: Any) -> Any:
    """One diagonal term ``(q - t)**2`` of the residual (``q = m_k G_p m_k^T``, ``t = G_t[k, k]``)."""
    d = q - t
    return d * d


def off_term(q: Any, t: Any) -> Any:
    """One off-diagonal term ``2 (q - t / 2)**2`` of the residual (``q = m_i G_p m_j^T``, ``t`` = G6 entry of G_t)."""
    d = q - 0.5 * t
    return 2.0 * (d * d)


def residual(g: Any, gt: Any, m: Any) -> Any:
    r"""Squared Frobenius residual :math:`\|M G M^T - G_t\|_F^2` from G6 vectors ``g``, ``gt`` (tuples of 6)
    and the nine entries ``m`` of ``M`` (row-major tuple).

    Accumulated in the order of the bounds :math:`b_1, b_2, b_3` of the module docstring (they are its
    partial sums): the (1,1) term; the (2,2) and (1,2) terms; the (3,3) term; the (1,3) and (2,3) terms.
    """
    A, B, C, xi, eta, zeta = g
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    r = diag_term(form(A, B, C, xi, eta, zeta, m00, m01, m02, m00, m01, m02), gt[0])
    r = r + diag_term(form(A, B, C, xi, eta, zeta, m10, m11, m12, m10, m11, m12), gt[1])
    r = r + off_term(form(A, B, C, xi, eta, zeta, m00, m01, m02, m10, m11, m12), gt[5])
    r = r + diag_term(form(A, B, C, xi, eta, zeta, m20, m21, m22, m20, m21, m22), gt[2])
    return r + last_terms(g, gt, m)


def last_terms(g: Any, gt: Any, m: Any) -> Any:
    """The (1,3) and (2,3) terms ``2 (m_1 G m_3^T - G_t,13)**2 + 2 (m_2 G m_3^T - G_t,23)**2`` of :func:`residual`."""
    A, B, C, xi, eta, zeta = g
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    r = off_term(form(A, B, C, xi, eta, zeta, m00, m01, m02, m20, m21, m22), gt[4])
    return r + off_term(form(A, B, C, xi, eta, zeta, m10, m11, m12, m20, m21, m22), gt[3])


class SearchTrie(NamedTuple):
    """:math:`S` as a three-level trie of rows (all arrays numpy; S[0] is the identity, outside the trie).

    ``rows`` (r, 3) float64: the distinct rows of ``S[1:]``; level 1 entry ``a`` has row
    ``l1_row[a]`` and children ``l2[l1_lo[a]:l1_hi[a]]``; level 2 entry ``b`` has row ``l2_row[b]``
    and candidates ``c`` in ``[l2_lo[b], l2_hi[b])`` with third row ``c_row[c]`` and index
    ``c_idx[c]`` in ``S``.  Candidates are in ``S`` order, so a depth-first walk visits ``S`` in order.
    The walk's lookup tables: ``l1_of[r]`` the level-1 entry with row ``r`` (or -1), ``l2_of[a, r]``
    the child of ``a`` with row ``r`` (or -1), ``c_of[b, r]`` the candidate below ``b`` with third row
    ``r`` (or -1); rows are sorted, so ascending row order within a level is ``S`` order.
    ``kp[r, u]`` (r, r, 6): the integer products of rows ``r`` and ``u`` that :func:`kform` takes; the rows
    come in sign pairs, ``rows[r - 1 - u] == -rows[u]`` (so ``q`` of row ``u`` is computed once per pair).
    ``masks`` (1 + level-1 entries + level-2 entries,) int64, the trie as bit sets of rows (bit ``u`` for
    row ``u``; at most 32 rows): ``masks[0]`` the rows of level 1, ``masks[1 + a]`` the rows of the
    children of level-1 entry ``a``, ``masks[1 + len(l1_row) + b]`` the third rows below level-2 entry ``b``.
    """

    mats: np.ndarray
    rows: np.ndarray
    l1_row: np.ndarray
    l1_lo: np.ndarray
    l1_hi: np.ndarray
    l2_row: np.ndarray
    l2_lo: np.ndarray
    l2_hi: np.ndarray
    c_row: np.ndarray
    c_idx: np.ndarray
    l1_of: np.ndarray
    l2_of: np.ndarray
    c_of: np.ndarray
    kp: np.ndarray
    masks: np.ndarray


@lru_cache(maxsize=1)
def trie() -> SearchTrie:
    """The trie of :func:`latticesym.torch.neighbour_transforms` (built once)."""
    from latticesym.torch._loss import neighbour_transforms

    mats = neighbour_transforms()
    rest = mats[1:].reshape(-1, 9)
    if not (np.lexsort(rest.T[::-1]) == np.arange(len(rest))).all():
        raise AssertionError("neighbour_transforms()[1:] must be sorted lexicographically by rows")
    rows, inv = np.unique(mats[1:].reshape(-1, 3), axis=0, return_inverse=True)
    idx = inv.reshape(-1, 3)
    l1_row: list[int] = []
    l1_lo: list[int] = []
    l1_hi: list[int] = []
    l2_row: list[int] = []
    l2_lo: list[int] = []
    l2_hi: list[int] = []
    c = 0
    while c < len(idx):
        a_end = c
        while a_end < len(idx) and idx[a_end, 0] == idx[c, 0]:
            a_end += 1
        l1_row.append(idx[c, 0])
        l1_lo.append(len(l2_row))
        b = c
        while b < a_end:
            b_end = b
            while b_end < a_end and idx[b_end, 1] == idx[b, 1]:
                b_end += 1
            l2_row.append(idx[b, 1])
            l2_lo.append(b)
            l2_hi.append(b_end)
            b = b_end
        l1_hi.append(len(l2_row))
        c = a_end
    i64 = np.int64
    n_rows = len(rows)
    l1_of = np.full(n_rows, -1, i64)
    l2_of = np.full((len(l1_row), n_rows), -1, i64)
    c_of = np.full((len(l2_row), n_rows), -1, i64)
    for a in range(len(l1_row)):
        l1_of[l1_row[a]] = a
        for b in range(l1_lo[a], l1_hi[a]):
            l2_of[a, l2_row[b]] = b
            for c in range(l2_lo[b], l2_hi[b]):
                c_of[b, idx[c, 2]] = c
    if not (rows[::-1] == -rows).all():
        raise AssertionError("the rows of S must come in sign pairs, rows[r - 1 - u] == -rows[u]")
    if n_rows % 2 or n_rows > 32:
        raise AssertionError(f"the walk's bit sets take an even number of rows, at most 32; S has {n_rows}")
    masks = np.zeros(1 + len(l1_row) + len(l2_row), i64)
    for a in range(len(l1_row)):
        masks[0] |= 1 << int(l1_row[a])
        for b in range(l1_lo[a], l1_hi[a]):
            masks[1 + a] |= 1 << int(l2_row[b])
            for c in range(l2_lo[b], l2_hi[b]):
                masks[1 + len(l1_row) + b] |= 1 << int(idx[c, 2])
    m, n = rows[:, None, :].astype(np.float64), rows[None, :, :].astype(np.float64)
    kp = np.stack([m[..., 0] * n[..., 0], m[..., 1] * n[..., 1], m[..., 2] * n[..., 2],
                   m[..., 1] * n[..., 2] + m[..., 2] * n[..., 1], m[..., 0] * n[..., 2] + m[..., 2] * n[..., 0],
                   m[..., 0] * n[..., 1] + m[..., 1] * n[..., 0]], -1)
    return SearchTrie(mats.astype(np.float64), rows.astype(np.float64), np.array(l1_row, i64), np.array(l1_lo, i64),
                      np.array(l1_hi, i64), np.array(l2_row, i64), np.array(l2_lo, i64), np.array(l2_hi, i64),
                      idx[:, 2].astype(i64), np.arange(1, len(mats), dtype=i64), l1_of, l2_of, c_of,
                      np.ascontiguousarray(kp), masks)


# --------------------------------------------------------------------------- the per-lattice bodies
def _g6_rows(x: Any, out: Any) -> None:
    """G6 of the 3x3 basis ``x`` (rows), plain products, into ``out[0:6]``."""
    for k, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        v = x[i, 0] * x[j, 0] + x[i, 1] * x[j, 1] + x[i, 2] * x[j, 2]
        out[k] = v if k < 3 else 2.0 * v


def _matmul3(a: Any, b: Any, out: Any) -> None:
    for i in range(3):
        for k in range(3):
            out[i, k] = a[i, 0] * b[0, k] + a[i, 1] * b[1, k] + a[i, 2] * b[2, k]


def _imatmul3(a: Any, b: Any, out: Any) -> None:
    r"""``a @ b`` for an integer-valued ``a`` (entries below :math:`2^{53}`), every entry by Dot2.

    A reducing transform of a sheared or near-singular cell has entries up to :math:`10^{12}` and
    more, and ``N @ L`` is then a sum of terms near :math:`10^{19}` that cancel to a vector of
    length 3: the plain product loses every digit (fuzz finding, issue 13: a reduced target of
    zeros, scale 0, an infinite loss).  Dot2 (Ogita, Rump & Oishi 2005;
    :func:`latticesym.reduce._accurate.dot2`) is as accurate as a product in twice the precision,
    :math:`|\mathrm{dot2}(t, x) - t^T x| \le u |t^T x| + \gamma_3^2 |t|^T |x|`; the operations
    and their order are those of ``latticesym.torch._reduce._int_matmul``, so the kernel and
    the tensor paths agree bit for bit.  Where Dot2 is not finite (an input entry past
    :math:`2^{996}`, whose Veltkamp split overflows, or a non-finite input) the plain product is
    kept, as ``_reduce._int_matmul`` does.
    """
    for k in range(3):
        x0, x1, x2 = b[0, k], b[1, k], b[2, k]
        c0, c1, c2 = 134217729.0 * x0, 134217729.0 * x1, 134217729.0 * x2  # Veltkamp split, 2**27 + 1
        h0, h1, h2 = c0 - (c0 - x0), c1 - (c1 - x1), c2 - (c2 - x2)
        for i in range(3):
            v = dot2(a[i, 0], a[i, 1], a[i, 2], x0, h0, x0 - h0, x1, h1, x1 - h1, x2, h2, x2 - h2)
            out[i, k] = v if np.isfinite(v) else a[i, 0] * x0 + a[i, 1] * x1 + a[i, 2] * x2


def _det2_exact(a: Any, b: Any, c: Any, d: Any) -> Any:
    """``a * b - c * d`` for integer-valued floats, exact wherever the result is below ``2**53``.

    TwoProduct of both products, TwoSum of the two heads, the tails added last
    (:mod:`latticesym.reduce._accurate`): ``latticesym.torch._reduce._adjugate_eft``, entry by entry.
    """
    p, e = two_product(a, b)
    q, f = two_product(c, d)
    s, t = two_sum(p, -q)
    return s + (t + (e - f))


def _iadj3(m: Any, out: Any) -> None:
    """The adjugate of an integer-valued 3x3 ``m`` (exact for a unimodular one with entries below ``2**53``).

    Column ``a`` is the cross product of rows ``a + 1`` and ``a + 2``; each 2x2 minor by
    :func:`_det2_exact`.  The plain float products pass ``2**53`` once the entries pass about
    ``9.5e7`` and the inverse of a reducer's transform then comes out wrong by whole units
    (as in ``latticesym.torch.unimodular_inverse``).  Entries below ``2**26`` (every transform of a
    cell that is not sheared) take the plain products, which are then exact: the same bits, cheaper.
    """
    top = 0.0
    for a in range(3):
        for b in range(3):
            top = max(top, abs(m[a, b]))
    small = top < 67108864.0  # 2**26: products below 2**52, their difference below 2**53
    for a in range(3):
        b, c = (a + 1) % 3, (a + 2) % 3
        for k in range(3):
            k1, k2 = (k + 1) % 3, (k + 2) % 3
            if small:
                out[k, a] = m[b, k1] * m[c, k2] - m[b, k2] * m[c, k1]
            else:
                out[k, a] = _det2_exact(m[b, k1], m[c, k2], m[b, k2], m[c, k1])


def _level_masks(A: float, B: float, C: float, xi: float, eta: float, zeta: float, kp: Any, q: Any,
                 t0: float, t1: float, t2: float, lim: float, strict: bool) -> tuple[int, int, int]:
    """``q[r] = m_r G m_r^T`` for every row ``r`` of the trie, and per level ``k`` the bit set of the rows
    whose own diagonal term ``(q[r] - t_k)**2`` is ``< lim`` (``<= lim`` where not ``strict``).

    One :func:`kform` per sign pair (``q`` of ``-m`` is ``q`` of ``m`` bit for bit: the integer products
    are the same), so both rows of a pair enter a level together; the bits are set without a branch.
    Every bound of a candidate with row ``r`` in position ``k`` is ``>=`` that term (a rounded sum of
    non-negative terms is at least each of them), so the other rows cannot pass the bound.
    """
    n = kp.shape[0]
    m1 = 0
    m2 = 0
    m3 = 0
    for r in range(n // 2):
        v = kform(A, B, C, xi, eta, zeta, kp, r, r)
        q[r] = v
        q[n - 1 - r] = v
        pair = (1 << r) | (1 << (n - 1 - r))
        d1, d2, d3 = diag_term(v, t0), diag_term(v, t1), diag_term(v, t2)
        if strict:
            m1 |= pair * (d1 < lim)
            m2 |= pair * (d2 < lim)
            m3 |= pair * (d3 < lim)
        else:
            m1 |= pair * (d1 <= lim)
            m2 |= pair * (d2 <= lim)
            m3 |= pair * (d3 <= lim)
    return m1, m2, m3


#: De Bruijn sequence B(2, 5) and the bit index of each of its 5-bit windows: the index of the lowest set
#: bit of ``m < 2**32`` is ``_DB_INDEX[((m & -m) * _DB32 & 0xFFFFFFFF) >> 27]`` (Leiserson, Prokop &
#: Randall 1998, "Using de Bruijn sequences to index a 1 in a computer word"), exact integer arithmetic.
_DB32 = 0x077CB531
_DB_INDEX = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                      31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], np.int64)


def _low_index(low: Any) -> Any:
    """Index of the single set bit of ``low`` (a power of two below ``2**32``), by the de Bruijn table."""
    return _DB_INDEX[((low * _DB32) & 0xFFFFFFFF) >> 27]


def _pop_low(w: Any) -> tuple[Any, Any]:
    """``w`` without its lowest set bit, and that bit's index (``w != 0``, below ``2**32``)."""
    low = w & -w
    return w ^ low, _low_index(low)


def _best(g: Any, gt: Any, kp: Any, q: Any, l1_of: Any, l2_of: Any, c_of: Any, c_idx: Any, masks: Any
          ) -> tuple[int, float]:
    r"""First minimiser of :func:`residual` over S (identity first), the trie pruned by the partial-sum bounds.

    The rows of each level are pre-selected by their own diagonal term against the identity's residual
    (:func:`_level_masks`: a bit set per level); the subtree of a node is walked over the set bits of
    (the level's mask) & (the node's children, :attr:`SearchTrie.masks`), lowest first.  Only nodes
    that exist and pass the first bound are visited, with no test for a missing child: a walk with
    fewer unpredictable branches than a scan of the selected rows (measured: about 7 % of the fused
    kernel, ``docs/proxy_loss.md``).
    Ascending row order within a level is ``S`` order, so the first minimiser is the exhaustive
    search's.  Every term is the one :func:`residual` computes (:func:`kform` is :func:`form` bit for
    bit), summed in the same order.
    """
    A, B, C, xi, eta, zeta = g[0], g[1], g[2], g[3], g[4], g[5]
    gtt = (gt[0], gt[1], gt[2], gt[3], gt[4], gt[5])
    best = residual((A, B, C, xi, eta, zeta), gtt, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    best_i = 0
    m1, m2, m3 = _level_masks(A, B, C, xi, eta, zeta, kp, q, gtt[0], gtt[1], gtt[2], best, True)
    n1 = l2_of.shape[0]
    w1 = m1 & masks[0]
    while w1 != 0:
        w1, r0 = _pop_low(w1)
        b1 = diag_term(q[r0], gtt[0])
        if not b1 < best:
            continue
        a = l1_of[r0]
        w2 = m2 & masks[1 + a]
        while w2 != 0:
            w2, r1 = _pop_low(w2)
            b2 = b1 + diag_term(q[r1], gtt[1])
            if not b2 < best:
                continue
            b2 = b2 + off_term(kform(A, B, C, xi, eta, zeta, kp, r0, r1), gtt[5])
            if not b2 < best:
                continue
            b = l2_of[a, r1]
            w3 = m3 & masks[1 + n1 + b]
            while w3 != 0:
                w3, r2 = _pop_low(w3)
                b3 = b2 + diag_term(q[r2], gtt[2])
                if not b3 < best:
                    continue
                # last_terms: the (1,3) then the (2,3) term, summed before they are added to b3
                o = off_term(kform(A, B, C, xi, eta, zeta, kp, r0, r2), gtt[4])
                d = b3 + (o + off_term(kform(A, B, C, xi, eta, zeta, kp, r1, r2), gtt[3]))
                if d < best:
                    best, best_i = d, c_idx[c_of[b, r2]]
    return best_i, best


def _automorphisms(gt: Any, tol: float, kp: Any, q: Any, l1_of: Any, l2_of: Any, c_of: Any, c_idx: Any,
                   masks: Any, out: Any) -> int:
    """Indices (in S order, identity first) of the ``A`` in S with ``residual(gt, gt, A) <= tol``; their count.

    The walk of :func:`_best` with the fixed limit ``tol`` (non-strict) in place of the best residual.
    """
    A, B, C, xi, eta, zeta = gt[0], gt[1], gt[2], gt[3], gt[4], gt[5]
    gtt = (A, B, C, xi, eta, zeta)
    n = 0
    if residual(gtt, gtt, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) <= tol:
        out[n] = 0
        n += 1
    m1, m2, m3 = _level_masks(A, B, C, xi, eta, zeta, kp, q, A, B, C, tol, False)
    n1 = l2_of.shape[0]
    w1 = m1 & masks[0]
    while w1 != 0:
        w1, r0 = _pop_low(w1)
        a = l1_of[r0]
        b1 = diag_term(q[r0], A)
        w2 = m2 & masks[1 + a]
        while w2 != 0:
            w2, r1 = _pop_low(w2)
            b2 = b1 + diag_term(q[r1], B)
            if not b2 <= tol:
                continue
            b2 = b2 + off_term(kform(A, B, C, xi, eta, zeta, kp, r0, r1), zeta)
            if not b2 <= tol:
                continue
            b = l2_of[a, r1]
            w3 = m3 & masks[1 + n1 + b]
            while w3 != 0:
                w3, r2 = _pop_low(w3)
                b3 = b2 + diag_term(q[r2], C)
                if not b3 <= tol:
                    continue
                o = off_term(kform(A, B, C, xi, eta, zeta, kp, r0, r2), eta)
                if b3 + (o + off_term(kform(A, B, C, xi, eta, zeta, kp, r1, r2), xi)) <= tol:
                    out[n] = c_idx[c_of[b, r2]]
                    n += 1
    return n


def _target_basis_sq(Y: Any, V: Any, Gt: Any, R: Any, VR: Any) -> float:
    """``sum((V (Y Y^T - G_t) V^T)**2)`` (``V`` None-like: pass the identity), NaN read as inf."""
    for i in range(3):
        for j in range(3):
            R[i, j] = (Y[i, 0] * Y[j, 0] + Y[i, 1] * Y[j, 1] + Y[i, 2] * Y[j, 2]) - Gt[i, j]
    _matmul3(V, R, VR)
    s = 0.0
    for i in range(3):
        for j in range(3):
            v = VR[i, 0] * V[j, 0] + VR[i, 1] * V[j, 1] + VR[i, 2] * V[j, 2]
            s += v * v
    return s if s == s else np.inf


def _prep_core(X: Any, Tr: Any, Np: Any, Nt: Any, mats: Any, kp: Any, l1_of: Any, l2_of: Any, c_of: Any,
               c_idx: Any, masks: Any, tol: float, q: Any, g: Any, gt: Any,
               W: Any, auts: Any, M: Any, MN: Any, V: Any, Gt: Any) -> float:
    """The no-grad part of the Gram-space loss for one lattice; returns the scale ``tr G_t / 3``.

    ``X``, ``Tr``: the reduced prediction ``N_p P`` and the reduced target ``N_t T`` (3, 3), formed
    accurately by the caller (the reducer's rows or Dot2); ``Np``, ``Nt`` the reducing transforms
    (float64).  Writes ``M`` (the chosen candidate: ``M1``, or ``A M1`` in the target's basis),
    ``MN = M N_p``, ``V`` (the basis of the residual: identity or ``inv(N_t)``) and ``Gt`` (the
    reduced target's Gram matrix).  The candidate bases are ``M X``: ``M`` has small entries (those of
    S, or a product of two), so the plain products are as accurate as ``X``.  ``q``, ``g``,
    ``gt``, ``W`` (>= 5, 3, 3), ``auts``: scratch.
    """
    Vt, Y, R, VR, X1 = W[0], W[1], W[2], W[3], W[4]
    _g6_rows(Tr, gt)
    s = (gt[0] + gt[1] + gt[2]) / 3
    for a in range(3):
        for b in range(3):
            Gt[a, b] = Tr[a, 0] * Tr[b, 0] + Tr[a, 1] * Tr[b, 1] + Tr[a, 2] * Tr[b, 2]
    _g6_rows(X, g)
    finite = True
    for k in range(6):
        finite = finite and np.isfinite(g[k])
    for k in range(6):
        g[k] = g[k] / s if finite else 0.0
        gt[k] = gt[k] / s
    best, _ = _best(g, gt, kp, q, l1_of, l2_of, c_of, c_idx, masks)
    for a in range(3):
        for b in range(3):
            M[a, b] = mats[best, a, b]
            V[a, b] = 1.0 if a == b else 0.0
    _matmul3(M, Np, MN)
    # the target's own basis V_t = adj(N_t) (det N_t = +1); a signed permutation needs no second term
    _iadj3(Nt, Vt)
    perm = True
    for a in range(3):
        perm = perm and abs(Vt[a, 0]) + abs(Vt[a, 1]) + abs(Vt[a, 2]) == 1.0
    if perm:
        return s
    m_aut = _automorphisms(gt, tol, kp, q, l1_of, l2_of, c_of, c_idx, masks, auts)
    _matmul3(M, X, X1)  # the basis M1 N_p P; a candidate A M1 gives A X1
    res_a = _target_basis_sq(X1, V, Gt, R, VR)
    best_b, best_k = np.inf, -1
    for k in range(m_aut):
        _matmul3(mats[auts[k]], X1, Y)
        val = _target_basis_sq(Y, Vt, Gt, R, VR)
        if val < best_b:
            best_b, best_k = val, auts[k]
    if best_b < res_a:
        _matmul3(mats[best_k], MN, Y)
        _matmul3(mats[best_k], M, R)
        for a in range(3):
            for b in range(3):
                MN[a, b] = Y[a, b]
                M[a, b] = R[a, b]
                V[a, b] = Vt[a, b]
    return s


def _prep_one(p: Any, t: Any, Np: Any, Nt: Any, mats: Any, kp: Any, l1_of: Any, l2_of: Any, c_of: Any,
              c_idx: Any, masks: Any, tol: float, q: Any, g: Any, gt: Any,
              W: Any, auts: Any, MN: Any, V: Any, Gt: Any) -> float:
    """:func:`_prep_core` from the prediction ``p``, the target ``t`` and their transforms (Dot2 products).

    ``W`` (8, 3, 3): scratch (``X``, ``Tr``, ``M``, then :func:`_prep_core`'s).
    """
    X, Tr, M = W[0], W[1], W[2]
    _imatmul3(Nt, t, Tr)
    _imatmul3(Np, p, X)
    return _prep_core(X, Tr, Np, Nt, mats, kp, l1_of, l2_of, c_of, c_idx, masks, tol, q, g, gt, W[3:], auts,
                      M, MN, V, Gt)


def _prep(p: Any, t: Any, Np: Any, Nt: Any, mats: Any, kp: Any, l1_of: Any, l2_of: Any, c_of: Any,
          c_idx: Any, masks: Any, tol: float,
          MN: Any, V: Any, Gt: Any, scale: Any) -> None:
    """:func:`_prep_one` for a batch (n, 3, 3); ``scale`` (n,) gets the scales."""
    q = np.empty(kp.shape[0])
    g = np.empty(6)
    gt = np.empty(6)
    W = np.empty((8, 3, 3))
    auts = np.empty(mats.shape[0], np.int64)
    for i in range(p.shape[0]):
        scale[i] = _prep_one(p[i], t[i], Np[i], Nt[i], mats, kp, l1_of, l2_of, c_of, c_idx, masks,
                             tol, q, g, gt, W, auts, MN[i], V[i], Gt[i])


def _cannot_start(x: Any) -> bool:
    """As ``latticesym.torch._reduce._cannot_start`` for one lattice: non-finite or ``|det| <= 64 eps |a||b||c|``."""
    for i in range(3):
        for j in range(3):
            if not np.isfinite(x[i, j]):
                return True
    vol = abs(x[0, 0] * (x[1, 1] * x[2, 2] - x[1, 2] * x[2, 1]) - x[0, 1] * (x[1, 0] * x[2, 2] - x[1, 2] * x[2, 0])
              + x[0, 2] * (x[1, 0] * x[2, 1] - x[1, 1] * x[2, 0]))
    lengths = 1.0
    for i in range(3):
        lengths *= np.sqrt(x[i, 0] * x[i, 0] + x[i, 1] * x[i, 1] + x[i, 2] * x[i, 2])
    return not (vol > 1e-300) or not (vol > 64 * 2.220446049250313e-16 * lengths)


def _nb_finish(*args: Any) -> None:  # bound to latticesym.reduce._numba's compiled body in kernel()
    raise RuntimeError("_fused runs compiled only (see kernel())")


def _fused(p: Any, t: Any, eps: float, gram: bool, mats: Any, kp: Any, l1_of: Any, l2_of: Any, c_of: Any,
           c_idx: Any, masks: Any, tol: float, gscale: float,
           loss: Any, grad: Any) -> int:
    """Reduce, search and differentiate in one pass per lattice (the CPU fast path of both losses).

    Per lattice: reduce ``p[i]`` and ``t[i]`` with latticesym's compiled reducer (``N_p``, ``N_t``;
    ``N_p`` the identity where the prediction cannot start, as ``_reduce_core``), then the loss and its
    gradient in ``p``: lattice space ``|P - N_p^-1 N_t T|^2 / 9``, gradient ``2 (P - N_p^-1 N_t T) / 9``;
    Gram space ``|V (X X^T - G_t) V^T|^2 / (9 s^2)``, ``X = M N_p P`` (:func:`_prep_core`), gradient
    ``4 (M N_p)^T E X / (9 s^2)`` with ``E = V^T (V (X X^T - G_t) V^T) V``; the gradient is written
    multiplied by ``gscale`` (``1 / n`` for a mean).  Returns the number of targets whose reduction
    is not certified (the caller re-runs such a batch on the general path, which escalates).

    The reduced target ``N_t T`` and prediction ``N_p P`` are the reducer's own rows (formed by Dot2
    where they cancel, scaled back exactly) where it certifies them (a prediction it could not finish,
    whose rows may be NaN, takes the Dot2 product of the transform reached), not products recomputed
    here: a sheared cell's transform has entries past 1e12 and a plain product loses every digit (fuzz
    finding, issue 13), and Dot2 would cost a third of the search again.  ``X = M (N_p P)`` with ``M``
    small is then as accurate.
    """
    w = np.empty(WORK_SIZE)
    t1 = np.empty((1, 3, 3), np.int64)
    r1 = np.empty((1, 3, 3))
    g61 = np.empty((1, 6))
    st1 = np.empty(1, np.int8)
    it1 = np.empty(1, np.int64)
    tol1 = np.empty(1)
    Np = np.empty((3, 3))
    Nt = np.empty((3, 3))
    q = np.empty(kp.shape[0])
    g = np.empty(6)
    gt = np.empty(6)
    W = np.empty((5, 3, 3))
    auts = np.empty(mats.shape[0], np.int64)
    M = np.empty((3, 3))
    Xr = np.empty((3, 3))
    Tr = np.empty((3, 3))
    MN = np.empty((3, 3))
    V = np.empty((3, 3))
    Gt = np.empty((3, 3))
    X = np.empty((3, 3))
    R = np.empty((3, 3))
    E = np.empty((3, 3))
    F = np.empty((3, 3))
    n_bad = 0
    g2 = gscale * (2.0 / 9.0)
    g4 = gscale * 4.0
    for i in range(p.shape[0]):
        _nb_finish(t[i], w, eps, 1000, 0, 0, t1, r1, g61, st1, it1, tol1)
        if st1[0] != OK:
            n_bad += 1
        for a in range(3):
            for b in range(3):
                Nt[a, b] = float(t1[0, a, b])
                Tr[a, b] = r1[0, a, b]
        _nb_finish(p[i], w, eps, 1000, 0, 0, t1, r1, g61, st1, it1, tol1)
        done = st1[0] == OK
        reset = not done and _cannot_start(p[i])
        for a in range(3):
            for b in range(3):
                Np[a, b] = (1.0 if a == b else 0.0) if reset else float(t1[0, a, b])
                Xr[a, b] = r1[0, a, b]
        if not done:
            # the reducer's rows are NaN where it could not start (e.g. a subnormal entry it cannot
            # normalise exactly: fuzz finding): the product of the transform it reached, by Dot2
            _imatmul3(Np, p[i], Xr)
        if not gram:
            # t' = adj(N_p) (N_t T): the target carried into the prediction's basis
            _iadj3(Np, E)
            _imatmul3(E, Tr, F)
            acc = 0.0
            for a in range(3):
                for b in range(3):
                    d = p[i, a, b] - F[a, b]
                    acc += d * d
                    grad[i, a, b] = g2 * d
            loss[i] = acc / 9.0
            continue
        s = _prep_core(Xr, Tr, Np, Nt, mats, kp, l1_of, l2_of, c_of, c_idx, masks,
                       tol, q, g, gt, W, auts, M, MN, V, Gt)
        _matmul3(M, Xr, X)
        finite = True
        for a in range(3):
            for b in range(3):
                R[a, b] = (X[a, 0] * X[b, 0] + X[a, 1] * X[b, 1] + X[a, 2] * X[b, 2]) - Gt[a, b]
                finite = finite and np.isfinite(R[a, b])
        c9 = 9.0 * s * s
        eye = (V[0, 0] == 1.0 and V[1, 1] == 1.0 and V[2, 2] == 1.0 and V[0, 1] == 0.0 and V[0, 2] == 0.0
               and V[1, 0] == 0.0 and V[1, 2] == 0.0 and V[2, 0] == 0.0 and V[2, 1] == 0.0)
        if eye and finite:
            # V = I (term A, or a target given reduced): V R V^T and V^T E V are R and E exactly (1 x + 0 y
            # + 0 z == x for finite y, z; only the sign of a zero can differ), so the four products are skipped
            acc = 0.0
            for a in range(3):
                for b in range(3):
                    acc += R[a, b] * R[a, b]
            loss[i] = acc / c9
            _matmul3(R, X, F)
        else:
            _matmul3(V, R, F)  # F = V R
            acc = 0.0
            for a in range(3):
                for b in range(3):  # E <- V R V^T
                    E[a, b] = F[a, 0] * V[b, 0] + F[a, 1] * V[b, 1] + F[a, 2] * V[b, 2]
                    acc += E[a, b] * E[a, b]
            loss[i] = acc / c9
            # E <- V^T E V, F <- E X, grad = 4 MN^T F / (9 s^2)
            for a in range(3):
                for b in range(3):
                    R[a, b] = V[0, a] * E[0, b] + V[1, a] * E[1, b] + V[2, a] * E[2, b]
            for a in range(3):
                for b in range(3):
                    E[a, b] = R[a, 0] * V[0, b] + R[a, 1] * V[1, b] + R[a, 2] * V[2, b]
            _matmul3(E, X, F)
        for a in range(3):
            for b in range(3):
                grad[i, a, b] = g4 * (MN[0, a] * F[0, b] + MN[1, a] * F[1, b] + MN[2, a] * F[2, b]) / c9
    return n_bad


def search_numpy(g: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Exhaustive first minimiser of :func:`residual` over S for (n, 6) arrays (no pruning; for tests)."""
    mats = trie().mats.reshape(-1, 9)
    m = tuple(mats[None, :, k] for k in range(9))
    r = residual(tuple(g[:, k, None] for k in range(6)), tuple(gt[:, k, None] for k in range(6)), m)
    return np.argmin(r, axis=1)


# --------------------------------------------------------------------------- compilation
_lock = threading.Lock()
_compiled: dict[str, Any] = {}


def kernel() -> Any:
    """The compiled :func:`_prep` (numba, cached on disk); ``ImportError`` without numba."""
    got = _compiled.get("prep")
    if got is not None:
        return got
    with _lock:
        if "prep" in _compiled:
            return _compiled["prep"]
        import numba

        with warnings.catch_warnings():
            # numba's own notices (e.g. a read-only cache directory) are not errors of ours
            warnings.simplefilter("ignore", numba.NumbaWarning)
            env = dict(globals())
            jit = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
            for name in ("dot2", "two_product", "two_sum"):  # compiled in their own module (the splitter lives there)
                env[name] = jit(globals()[name])
            for name in _HELPERS:
                env[name] = jit(_rebound(globals()[name], env))
            fn = numba.njit(cache=True, nogil=True, error_model="numpy")(_rebound(_prep, env))
            _run(fn, *_warm_up())
            _reduce_numba.kernel("serial")  # compiles the reducer's per-lattice body _nb_finish
            env["_nb_finish"] = _reduce_numba._nb_finish
            fused = numba.njit(cache=True, nogil=True, error_model="numpy")(_rebound(_fused, env))
            fused_run(fused, np.eye(3)[None].repeat(2, 0), np.eye(3)[None].repeat(2, 0), 1e-5, True)
        _compiled["prep"] = fn
        _compiled["fused"] = fused
        return fn


def fused_kernel() -> Any:
    """The compiled :func:`_fused` (compiled with :func:`kernel`)."""
    kernel()
    return _compiled["fused"]


def fused_run(fn: Any, p: np.ndarray, t: np.ndarray, eps: float, gram: bool, tol: float = 1e-12,
              gscale: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
    """``loss`` (n,), ``gscale *`` its gradient (n, 3, 3) and the number of uncertified targets, by :func:`_fused`.

    ``p``, ``t``: float64 C-contiguous (n, 3, 3) arrays.
    """
    tr = trie()
    n = p.shape[0]
    loss = np.empty(n)
    grad = np.empty((n, 3, 3))
    bad = fn(p, t, float(eps), bool(gram), tr.mats, tr.kp, tr.l1_of, tr.l2_of, tr.c_of, tr.c_idx, tr.masks, float(tol),
             float(gscale), loss, grad)
    return loss, grad, int(bad)


_HELPERS = ("_low_index", "_pop_low", "form", "kform", "diag_term", "off_term", "last_terms", "residual",
            "_level_masks", "_g6_rows", "_matmul3", "_imatmul3", "_det2_exact", "_iadj3", "_target_basis_sq", "_best",
            "_automorphisms", "_prep_core", "_prep_one", "_cannot_start")


def _rebound(fn: Any, env: dict[str, Any]) -> Any:
    """``fn`` with its global names looked up in ``env`` (where the helpers are the compiled ones)."""
    out = types.FunctionType(fn.__code__, env, "nb_gram_" + fn.__name__, fn.__defaults__, fn.__closure__)
    out.__qualname__ = "nb_gram_" + fn.__name__
    return out


def _warm_up() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    eye = np.eye(3)[None].repeat(2, axis=0)
    return eye, eye.copy(), eye.copy(), eye.copy()


def _run(fn: Any, p: np.ndarray, t: np.ndarray, Np: np.ndarray, Nt: np.ndarray, tol: float = 1e-12
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tr = trie()
    n = p.shape[0]
    MN = np.empty((n, 3, 3))
    V = np.empty((n, 3, 3))
    Gt = np.empty((n, 3, 3))
    scale = np.empty(n)
    fn(p, t, Np, Nt, tr.mats, tr.kp, tr.l1_of, tr.l2_of, tr.c_of, tr.c_idx, tr.masks, float(tol), MN, V, Gt, scale)
    return MN, V, Gt, scale


def prep_numba(p: np.ndarray, t: np.ndarray, Np: np.ndarray, Nt: np.ndarray, tol: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the compiled :func:`_prep` on float64 C-contiguous (n, 3, 3) arrays: ``MN, V, G_t, scale``."""
    return _run(kernel(), p, t, Np, Nt, tol)


def prep_python(p: np.ndarray, t: np.ndarray, Np: np.ndarray, Nt: np.ndarray, tol: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_prep` interpreted (the same source, no numba; slow, for tests)."""
    return _run(_prep, p, t, Np, Nt, tol)


# --------------------------------------------------------------------------- the tensor path
def _mm3(a: Any, b: Any) -> Any:
    """``a @ b`` for broadcastable (..., 3, 3) tensors in the kernel's order (``sum_j a_ij b_jk``, left to
    right, no FMA)."""
    return (a[..., :, 0, None] * b[..., None, 0, :] + a[..., :, 1, None] * b[..., None, 1, :]
            + a[..., :, 2, None] * b[..., None, 2, :])


def _g6_t(x: Any) -> tuple[Any, ...]:
    out = []
    for k, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        v = x[:, i, 0] * x[:, j, 0] + x[:, i, 1] * x[:, j, 1] + x[:, i, 2] * x[:, j, 2]
        out.append(v if k < 3 else 2.0 * v)
    return tuple(out)


_TORCH_TABLES: dict[Any, Any] = {}
#: Rows of the target-basis term handled per tensor operation (bounds memory at |S| * 9 * 8 bytes each).
TORCH_CHUNK = 256


def prep_torch(p: Any, t: Any, Np: Any, Nt: Any, tol: float, _all: bool = False) -> tuple[Any, Any, Any, Any]:
    """:func:`_prep` on tensors of any device: the same residual, exhaustive over S, no host synchronisation.

    The trie's pruning is exact, so the exhaustive first minimiser here is the kernel's (tested bit for
    bit on the chosen candidate of term A).
    """
    import torch

    from latticesym.torch._reduce import _int_matmul, unimodular_inverse

    dev = p.device
    mats = _TORCH_TABLES.get(dev)
    if mats is None:
        mats = _TORCH_TABLES[dev] = torch.as_tensor(trie().mats, dtype=torch.float64, device=dev)
    m = tuple(mats.reshape(-1, 9)[None, :, k] for k in range(9))
    Tr = _int_matmul(Nt, t)
    gt6 = _g6_t(Tr)
    s = (gt6[0] + gt6[1] + gt6[2]) / 3
    Gt = _mm3(Tr, Tr.transpose(-1, -2))
    X = _int_matmul(Np, p)
    g6 = _g6_t(X)
    finite = torch.isfinite(torch.stack(g6, -1)).all(-1)
    zero = torch.zeros_like(s)
    g = tuple(torch.where(finite, v / s, zero)[:, None] for v in g6)
    gt = tuple((v / s)[:, None] for v in gt6)
    best = torch.argmin(residual(g, gt, m), dim=1)  # the first minimiser, as the kernel's walk
    M1 = mats[best]
    MN = M1 @ Np  # integer entries: exact in any order
    Vt = unimodular_inverse(Nt)
    need = (Vt.abs().sum(-1) != 1).any(-1)
    eye = torch.eye(3, dtype=p.dtype, device=dev)
    V = eye.expand(len(p), 3, 3)
    out_mn, out_v = [], []
    if dev.type == "cpu" and not _all:  # on the host a read costs nothing: only the rows that need the second term
        sub = need.nonzero().flatten()
        if len(sub) == 0:
            return MN, V.clone(), Gt, s
        MN_b, V_b, _, _ = prep_torch(p[sub], t[sub], Np[sub], Nt[sub], tol, _all=True)
        return MN.index_copy(0, sub, MN_b), V.clone().index_copy(0, sub, V_b), Gt, s
    for lo in range(0, len(p), TORCH_CHUNK):
        sl = slice(lo, lo + TORCH_CHUNK)
        aut = (residual(tuple(v[sl] for v in gt), tuple(v[sl] for v in gt), m) <= tol) & need[sl, None]
        H = mats[None] @ MN[sl, None]  # (k, |S|, 3, 3)
        Y1 = _mm3(M1[sl], X[sl])  # M1 N_p P, as the kernel's (M1 small: as accurate as X)
        Y = _mm3(mats[None], Y1[:, None])  # the bases A M1 N_p P, the kernel's order of operations
        R = Vt[sl, None] @ (Y @ Y.transpose(-1, -2) - Gt[sl, None]) @ Vt[sl, None].transpose(-1, -2)
        val = torch.where(aut, (R**2).sum((-1, -2)), torch.full_like(R[..., 0, 0], float("inf")))
        val = torch.where(torch.isnan(val), torch.full_like(val, float("inf")), val)
        best_b, arg = val.min(1)
        res_a = ((Y1 @ Y1.transpose(-1, -2) - Gt[sl]) ** 2).sum((-1, -2))
        res_a = torch.where(torch.isnan(res_a), torch.full_like(res_a, float("inf")), res_a)
        use_b = best_b < res_a
        out_mn.append(torch.where(use_b[:, None, None], H[torch.arange(len(arg), device=dev), arg], MN[sl]))
        out_v.append(torch.where(use_b[:, None, None], Vt[sl], V[sl]))
    return torch.cat(out_mn), torch.cat(out_v), Gt, s
