"""Compiled site search of :func:`latticesym.structure.match` (numba, compiled on first use).

:func:`scan` evaluates every (lattice mapping ``k``, anchor translation ``c``) candidate of one
pair in one compiled loop, with the semantics of the numpy path
(``latticesym.structure._match._site_search_numpy``), which it replaces where numba is installed:

- translation ``t = fa_k[q] - fb[p]`` for the anchor pair ``(p, q)``; the fractional
  displacement of site ``i`` of b to site ``j`` of a is ``w = fa_k[j] - fb[i] - t`` wrapped by
  ``w - rint(w)``; the pair is *allowed* when the species agree and ``|w_x| <= ftol_kx`` on each
  axis; a candidate whose b-site has no allowed partner is rejected at that site (this early exit
  is where the speed comes from: most translations fail on their first rows);
- the cost of an allowed pair is the smallest ``(w + n) G_k (w + n)`` over the 27 images
  ``n in {-1, 0, 1}^3`` (first minimum in ``_IMAGES`` order), as in the numpy path;
- when every row's cheapest allowed partner is distinct (first minimum in column order), that is
  the optimal assignment (each row at its own minimum) and the candidate is finished here: mean
  displacement removed, ``d_i = sqrt(v_i G_k v_i) / ell_k``, rms and max;
- otherwise the candidate is returned as a *conflict*, for an exact assignment by
  ``scipy.optimize.linear_sum_assignment`` in the caller.

The best finished candidate is the first strict minimum of rms in ``(k, c)`` order, the order
the caller merges conflicts in.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

__all__ = ["available", "bounds", "bounds_python", "costs", "costs_python", "finish", "finish_python", "hnf_keep",
           "hnf_keep_python", "mappings", "mappings_python", "scan", "scan_python", "setup", "setup_python",
           "translations", "translations_python"]

_lock = threading.Lock()
_compiled: dict[str, Any] = {}


def _image_table(G: Any, k: int, images: Any, ngn: Any) -> None:
    """``ngn[m] = n_m G_k n_m`` for the images ``n_m`` (the constant of the image offsets)."""
    for m in range(images.shape[0]):
        a = images[m, 0]
        b = images[m, 1]
        c = images[m, 2]
        ngn[m] = (G[k, 0, 0] * a * a + G[k, 1, 1] * b * b + G[k, 2, 2] * c * c
                  + 2.0 * (G[k, 0, 1] * a * b + G[k, 0, 2] * a * c + G[k, 1, 2] * b * c))


def scan_python(fa_k: Any, fb: Any, za: Any, zb: Any, P: Any, Q: Any, ftol: Any, G: Any, ell: Any,
                stol: float, images: Any, cost: Any, img: Any) -> Any:
    """The kernel's source (plain Python; compiled by :func:`scan`).

    ``cost`` (``(cap + 1, n, n)``) and ``img`` (same shape, int8) receive, for the first ``cap``
    conflicting candidates, the cost matrix (``1e20`` for an excluded pair) and the index of the
    cheapest image of each allowed pair (slot ``cap`` is scratch), so that the caller hands them to
    the assignment solver without computing them again.

    The cheapest image of a pair is found from ``d2(w + n) = d2(w) + 2 n.(G w) + n G n``: the
    offsets ``2 n.(G w) + n G n`` (``n G n`` tabulated per mapping) are compared, the first minimum
    in ``images`` order kept, and the cost is then evaluated at that image as
    ``u G u`` (``u = w + n``), the value the numpy path computes.

    Returns ``(best_rms, best_max, best_index, best_sigma, best_dist, any_fit, n_pass, conflicts,
    n_conflicts)``; ``best_index = k * A + c`` (-1 if no finished candidate), ``conflicts`` holds
    the indices ``k * A + c`` of the conflicting candidates in its first ``n_conflicts`` entries.
    """
    K = fa_k.shape[0]
    n = fb.shape[0]
    A = P.shape[0]
    n_img = images.shape[0]
    cap = cost.shape[0] - 1
    best_rms = np.inf
    best_max = np.nan
    best_index = -1
    best_sigma = np.zeros(n, dtype=np.int64)
    best_dist = np.zeros(n)
    any_fit = False
    n_pass = 0
    conflicts = np.empty(K * A, dtype=np.int64)
    n_conf = 0
    nearest = np.empty(n, dtype=np.int64)
    vec = np.empty((n, 3))
    used = np.zeros(n, dtype=np.bool_)
    dist = np.empty(n)
    ngn = np.empty(n_img)
    for k in range(K):
        g00, g01, g02 = G[k, 0, 0], G[k, 0, 1], G[k, 0, 2]
        g11, g12, g22 = G[k, 1, 1], G[k, 1, 2], G[k, 2, 2]
        t0x, t1x, t2x = ftol[k, 0], ftol[k, 1], ftol[k, 2]
        _image_table(G, k, images, ngn)
        for c in range(A):
            slot = n_conf if n_conf < cap else cap
            p = P[c]
            q = Q[c]
            tx = fa_k[k, q, 0] - fb[p, 0]
            ty = fa_k[k, q, 1] - fb[p, 1]
            tz = fa_k[k, q, 2] - fb[p, 2]
            ok = True
            for i in range(n):
                found = False
                best = np.inf
                bj = -1
                bx = 0.0
                by = 0.0
                bz = 0.0
                for j in range(n):
                    cost[slot, i, j] = 1e20
                    img[slot, i, j] = -1
                for j in range(n):
                    if za[j] != zb[i]:
                        continue
                    wx = fa_k[k, j, 0] - fb[i, 0] - tx
                    wx -= np.rint(wx)
                    if abs(wx) > t0x:
                        continue
                    wy = fa_k[k, j, 1] - fb[i, 1] - ty
                    wy -= np.rint(wy)
                    if abs(wy) > t1x:
                        continue
                    wz = fa_k[k, j, 2] - fb[i, 2] - tz
                    wz -= np.rint(wz)
                    if abs(wz) > t2x:
                        continue
                    found = True
                    hx = 2.0 * (g00 * wx + g01 * wy + g02 * wz)
                    hy = 2.0 * (g01 * wx + g11 * wy + g12 * wz)
                    hz = 2.0 * (g02 * wx + g12 * wy + g22 * wz)
                    omin = np.inf
                    bm = 0
                    for m in range(n_img):
                        o = images[m, 0] * hx + images[m, 1] * hy + images[m, 2] * hz + ngn[m]
                        if o < omin:
                            omin = o
                            bm = m
                    ux = wx + images[bm, 0]
                    uy = wy + images[bm, 1]
                    uz = wz + images[bm, 2]
                    dmin = (g00 * ux * ux + g11 * uy * uy + g22 * uz * uz
                            + 2.0 * (g01 * ux * uy + g02 * ux * uz + g12 * uy * uz))
                    cost[slot, i, j] = dmin
                    img[slot, i, j] = bm
                    if dmin < best:
                        best = dmin
                        bj = j
                        bx = ux
                        by = uy
                        bz = uz
                if not found:
                    ok = False
                    break
                nearest[i] = bj
                vec[i, 0] = bx
                vec[i, 1] = by
                vec[i, 2] = bz
            if not ok:
                continue
            n_pass += 1
            for j in range(n):
                used[j] = False
            distinct = True
            for i in range(n):
                if used[nearest[i]]:
                    distinct = False
                    break
                used[nearest[i]] = True
            if not distinct:
                conflicts[n_conf] = k * A + c
                n_conf += 1
                continue
            rms, dmax = _centred(vec, n, g00, g01, g02, g11, g12, g22, ell[k], dist)
            if dmax < stol:
                any_fit = True
            if rms < best_rms:
                best_rms = rms
                best_max = dmax
                best_index = k * A + c
                for i in range(n):
                    best_sigma[i] = nearest[i]
                    best_dist[i] = dist[i]
    return best_rms, best_max, best_index, best_sigma, best_dist, any_fit, n_pass, conflicts, n_conf


def _centred(vec: Any, n: int, g00: float, g01: float, g02: float, g11: float, g12: float, g22: float,
             ell: float, dist: Any) -> Any:
    """Mean displacement removed: ``dist_i = sqrt(v_i G v_i) / ell``; returns ``(rms, max)``."""
    mx = 0.0
    my = 0.0
    mz = 0.0
    for i in range(n):
        mx += vec[i, 0]
        my += vec[i, 1]
        mz += vec[i, 2]
    mx /= n
    my /= n
    mz /= n
    dmax = 0.0
    s2 = 0.0
    for i in range(n):
        ux = vec[i, 0] - mx
        uy = vec[i, 1] - my
        uz = vec[i, 2] - mz
        d2 = (g00 * ux * ux + g11 * uy * uy + g22 * uz * uz
              + 2.0 * (g01 * ux * uy + g02 * ux * uz + g12 * uy * uz))
        d = np.sqrt(max(d2, 0.0)) / ell
        dist[i] = d
        s2 += d * d
        if d > dmax:
            dmax = d
    return np.sqrt(s2 / n), dmax


def costs_python(fa_k: Any, fb: Any, za: Any, zb: Any, P: Any, Q: Any, ftol: Any, G: Any, images: Any,
                 conf: Any, A: int, cost: Any, img: Any) -> None:
    """Cost matrices of the conflicting candidates ``conf`` (indices ``k * A + c``) that did not fit
    into the scan's buffer, exactly as :func:`scan_python` builds them: ``cost[r, i, j]`` the
    squared distance at the cheapest image of an allowed pair (``1e20`` otherwise) and
    ``img[r, i, j]`` that image's index (compiled by :func:`costs`)."""
    n = fb.shape[0]
    n_img = images.shape[0]
    ngn = np.empty(n_img)
    for r in range(conf.shape[0]):
        k = conf[r] // A
        c = conf[r] % A
        g00, g01, g02 = G[k, 0, 0], G[k, 0, 1], G[k, 0, 2]
        g11, g12, g22 = G[k, 1, 1], G[k, 1, 2], G[k, 2, 2]
        _image_table(G, k, images, ngn)
        p = P[c]
        q = Q[c]
        tx = fa_k[k, q, 0] - fb[p, 0]
        ty = fa_k[k, q, 1] - fb[p, 1]
        tz = fa_k[k, q, 2] - fb[p, 2]
        for i in range(n):
            for j in range(n):
                cost[r, i, j] = 1e20
                img[r, i, j] = -1
                if za[j] != zb[i]:
                    continue
                wx = fa_k[k, j, 0] - fb[i, 0] - tx
                wx -= np.rint(wx)
                wy = fa_k[k, j, 1] - fb[i, 1] - ty
                wy -= np.rint(wy)
                wz = fa_k[k, j, 2] - fb[i, 2] - tz
                wz -= np.rint(wz)
                if abs(wx) > ftol[k, 0] or abs(wy) > ftol[k, 1] or abs(wz) > ftol[k, 2]:
                    continue
                hx = 2.0 * (g00 * wx + g01 * wy + g02 * wz)
                hy = 2.0 * (g01 * wx + g11 * wy + g12 * wz)
                hz = 2.0 * (g02 * wx + g12 * wy + g22 * wz)
                omin = np.inf
                bm = 0
                for m in range(n_img):
                    o = images[m, 0] * hx + images[m, 1] * hy + images[m, 2] * hz + ngn[m]
                    if o < omin:
                        omin = o
                        bm = m
                ux = wx + images[bm, 0]
                uy = wy + images[bm, 1]
                uz = wz + images[bm, 2]
                cost[r, i, j] = (g00 * ux * ux + g11 * uy * uy + g22 * uz * uz
                                 + 2.0 * (g01 * ux * uy + g02 * ux * uz + g12 * uy * uz))
                img[r, i, j] = bm


def bounds_python(cost: Any, nc: int, ell: Any, A: int, conf: Any, lb_rms: Any, lb_max: Any) -> None:
    """Lower bounds on the rms and the largest distance any assignment of a conflicting candidate
    can reach after its mean displacement is removed (compiled by :func:`bounds`).

    For candidate ``r`` (mapping ``k``) let ``sigma`` be the assignment the solver will return,
    ``u_i`` the displacement of pair ``(i, sigma_i)`` (``|u_i|^2 = cost[r, i, sigma_i]`` in the
    metric ``G_k``), ``C* = sum_i |u_i|^2`` the optimal cost and ``u_bar`` the mean displacement.
    The scored quantity is ``Z = sum_i |u_i - u_bar|^2 = C* - n |u_bar|^2``.

    - ``|u_i| >= m_i = sqrt(min_j cost[r, i, j])`` (the row minimum);
    - ``n |u_bar|^2 = C* - Z <= C* <= U`` for the cost ``U`` of any feasible assignment (here the
      greedy one: rows in order, each taking its cheapest free allowed column), and
      ``|u_bar| <= (1/n) sum_i |u_i| <= (1/n) sum_i sqrt(max_{allowed j} cost[r, i, j])``;
      so ``|u_bar| <= a``, the smaller of ``sqrt(U / n)`` and that mean;
    - by the triangle inequality ``|u_i - u_bar| >= |u_i| - |u_bar| >= m_i - a``, hence
      ``Z >= sum_i max(m_i - a, 0)^2`` and ``max_i |u_i - u_bar| >= max_i max(m_i - a, 0)``.

    Divided by ``n`` and ``ell_k`` (``rms = sqrt(Z / n) / ell_k``): ``lb_rms[r] <= rms`` and
    ``lb_max[r] <= max distance`` of whatever feasible assignment the solver returns (an infeasible
    one is dropped, so its bounds need not hold).  ``cost[r]`` holds ``1e20`` for excluded pairs.
    """
    n = cost.shape[1]
    used = np.zeros(n, dtype=np.bool_)
    m = np.empty(n)
    for r in range(nc):
        k = conf[r] // A
        greedy = 0.0
        feasible = True
        mean_max = 0.0
        for j in range(n):
            used[j] = False
        for i in range(n):
            rmin = np.inf
            rmax = 0.0
            gmin = np.inf
            gj = -1
            for j in range(n):
                x = cost[r, i, j]
                if x >= 1e20:
                    continue
                if x < rmin:
                    rmin = x
                if x > rmax:
                    rmax = x
                if not used[j] and x < gmin:
                    gmin = x
                    gj = j
            m[i] = np.sqrt(max(rmin, 0.0))
            mean_max += np.sqrt(max(rmax, 0.0))
            if gj < 0:
                feasible = False
            else:
                used[gj] = True
                greedy += gmin
        a = mean_max / n
        if feasible and np.sqrt(greedy / n) < a:
            a = np.sqrt(greedy / n)
        z = 0.0
        big = 0.0
        for i in range(n):
            d = m[i] - a
            if d > 0.0:
                z += d * d
                if d > big:
                    big = d
        lb_rms[r] = np.sqrt(z / n) / ell[k]
        lb_max[r] = big / ell[k]


def finish_python(fa_k: Any, fb: Any, P: Any, Q: Any, G: Any, ell: Any, images: Any, stol: float, A: int,
                  conf: Any, img: Any, sigma: Any, best: Any, best_sigma: Any, best_dist: Any) -> bool:
    """Score the assigned conflicting candidates (compiled by :func:`finish`).

    ``sigma[r]`` is the assignment of candidate ``conf[r]`` (from the solver); a candidate whose
    assignment uses an excluded pair (``img == -1``) is dropped.  The displacement of pair
    ``(i, sigma_i)`` is rebuilt from the translation and the stored image index (the same
    floating-point operations as in the scan), the mean removed, and the candidate merged into
    ``best = [rms, max, index]`` (with ``best_sigma``, ``best_dist``): it replaces the best when its
    rms is smaller, or equal with a smaller index -- the first strict minimum in ``(k, c)`` order.
    Returns whether some candidate has ``max < stol``.
    """
    n = fb.shape[0]
    vec = np.empty((n, 3))
    dist = np.empty(n)
    any_fit = False
    for r in range(conf.shape[0]):
        k = conf[r] // A
        c = conf[r] % A
        p = P[c]
        q = Q[c]
        tx = fa_k[k, q, 0] - fb[p, 0]
        ty = fa_k[k, q, 1] - fb[p, 1]
        tz = fa_k[k, q, 2] - fb[p, 2]
        ok = True
        for i in range(n):
            j = sigma[r, i]
            m = img[r, i, j]
            if m < 0:
                ok = False
                break
            wx = fa_k[k, j, 0] - fb[i, 0] - tx
            wx -= np.rint(wx)
            wy = fa_k[k, j, 1] - fb[i, 1] - ty
            wy -= np.rint(wy)
            wz = fa_k[k, j, 2] - fb[i, 2] - tz
            wz -= np.rint(wz)
            vec[i, 0] = wx + images[m, 0]
            vec[i, 1] = wy + images[m, 1]
            vec[i, 2] = wz + images[m, 2]
        if not ok:
            continue
        rms, dmax = _centred(vec, n, G[k, 0, 0], G[k, 0, 1], G[k, 0, 2], G[k, 1, 1], G[k, 1, 2], G[k, 2, 2],
                             ell[k], dist)
        if dmax < stol:
            any_fit = True
        idx = conf[r]
        if rms < best[0] or (rms == best[0] and idx < best[2]):
            best[0] = rms
            best[1] = dmax
            best[2] = idx
            for i in range(n):
                best_sigma[i] = sigma[r, i]
                best_dist[i] = dist[i]
    return any_fit


def mappings_python(La: Any, lb: Any, pb_ang: Any, ltol: float, angle_tol: float, nmax: Any, r: float,
                    max_triples: int, out: Any) -> Any:
    """Lattice mappings of :func:`latticesym.structure._match.lattice_mappings`, compiled by
    :func:`mappings`: the points ``n @ La`` (``n`` in the box ``|n_i| <= nmax_i``, ``0 < |n @ La| <=
    r (1 + 1e-12)``, box order), per axis those with ``1/(1 + ltol) < l / l_b < 1 + ltol``, and
    every triple (in that order) whose three angles are within ``angle_tol`` of ``pb_ang`` (alpha,
    beta, gamma) and whose determinant is +-1.  Writes up to ``len(out)`` of them into ``out``;
    returns ``(count, n_a, n_b, n_c)`` (``count = -1`` when the triples exceed ``max_triples``)."""
    nx, ny, nz = nmax[0], nmax[1], nmax[2]
    total = (2 * nx + 1) * (2 * ny + 1) * (2 * nz + 1)
    coef = np.empty((total, 3), dtype=np.int64)
    cart = np.empty((total, 3))
    dd = np.empty(total)
    n_pts = 0
    rr = r * (1 + 1e-12)
    for i in range(-nx, nx + 1):
        for j in range(-ny, ny + 1):
            for k in range(-nz, nz + 1):
                x = i * La[0, 0] + j * La[1, 0] + k * La[2, 0]
                y = i * La[0, 1] + j * La[1, 1] + k * La[2, 1]
                z = i * La[0, 2] + j * La[1, 2] + k * La[2, 2]
                d = np.sqrt(x * x + y * y + z * z)
                if d <= rr and d > 0:
                    coef[n_pts, 0] = i
                    coef[n_pts, 1] = j
                    coef[n_pts, 2] = k
                    cart[n_pts, 0] = x / d
                    cart[n_pts, 1] = y / d
                    cart[n_pts, 2] = z / d
                    dd[n_pts] = d
                    n_pts += 1
    cand = np.empty((3, n_pts), dtype=np.int64)
    nc = np.zeros(3, dtype=np.int64)
    for ax in range(3):
        for t in range(n_pts):
            ratio = dd[t] / lb[ax]
            if ratio < 1 + ltol and ratio > 1 / (1 + ltol):
                cand[ax, nc[ax]] = t
                nc[ax] += 1
    if nc[0] * nc[1] * nc[2] > max_triples:
        return -1, nc[0], nc[1], nc[2]
    count = 0
    for ia in range(nc[0]):
        a = cand[0, ia]
        for ib in range(nc[1]):
            b = cand[1, ib]
            c_ab = cart[a, 0] * cart[b, 0] + cart[a, 1] * cart[b, 1] + cart[a, 2] * cart[b, 2]
            if abs(np.degrees(np.arccos(min(max(c_ab, -1.0), 1.0))) - pb_ang[2]) > angle_tol:
                continue
            for ic in range(nc[2]):
                c = cand[2, ic]
                c_bc = cart[b, 0] * cart[c, 0] + cart[b, 1] * cart[c, 1] + cart[b, 2] * cart[c, 2]
                if abs(np.degrees(np.arccos(min(max(c_bc, -1.0), 1.0))) - pb_ang[0]) > angle_tol:
                    continue
                c_ac = cart[a, 0] * cart[c, 0] + cart[a, 1] * cart[c, 1] + cart[a, 2] * cart[c, 2]
                if abs(np.degrees(np.arccos(min(max(c_ac, -1.0), 1.0))) - pb_ang[1]) > angle_tol:
                    continue
                m00, m01, m02 = coef[a, 0], coef[a, 1], coef[a, 2]
                m10, m11, m12 = coef[b, 0], coef[b, 1], coef[b, 2]
                m20, m21, m22 = coef[c, 0], coef[c, 1], coef[c, 2]
                det = (m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20)
                       + m02 * (m10 * m21 - m11 * m20))
                if det != 1 and det != -1:
                    continue
                if count < out.shape[0]:
                    for q in range(3):
                        out[count, 0, q] = coef[a, q]
                        out[count, 1, q] = coef[b, q]
                        out[count, 2, q] = coef[c, q]
                count += 1
    return count, nc[0], nc[1], nc[2]


def setup_python(fa: Any, M: Any, La: Any, pb: Any, stol: float, fa_k: Any, G: Any, ell: Any, ftol: Any) -> None:
    """Per lattice mapping ``M_k``: a's sites in the basis ``M_k @ La`` (wrapped into [0, 1)), the
    Gram matrix ``G_k`` of the averaged lattice (mean lengths and angles of ``M_k @ La`` and b,
    parameters ``pb``), ``ell_k = (sqrt(det G_k) / n) ** (1/3)`` and the per-axis acceptance
    ``2 stol ell_k sqrt(inv(G_k)_ii)`` (compiled by :func:`setup`)."""
    K = M.shape[0]
    n = fa.shape[0]
    L = np.empty((3, 3))
    Mi = np.empty((3, 3))
    p = np.empty(6)
    for k in range(K):
        for i in range(3):
            for j in range(3):
                L[i, j] = M[k, i, 0] * La[0, j] + M[k, i, 1] * La[1, j] + M[k, i, 2] * La[2, j]
        m = M[k]
        det = (m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
               + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))
        for i in range(3):  # integer adjugate / det (det = +-1): exact
            for j in range(3):
                i1, i2 = (j + 1) % 3, (j + 2) % 3
                j1, j2 = (i + 1) % 3, (i + 2) % 3
                Mi[i, j] = (m[i1, j1] * m[i2, j2] - m[i1, j2] * m[i2, j1]) / det
        for s in range(n):
            for j in range(3):
                v = fa[s, 0] * Mi[0, j] + fa[s, 1] * Mi[1, j] + fa[s, 2] * Mi[2, j]
                w = v - np.floor(v)
                if w >= 1.0:
                    w = 0.0
                fa_k[k, s, j] = w
        for i in range(3):
            p[i] = np.sqrt(L[i, 0] ** 2 + L[i, 1] ** 2 + L[i, 2] ** 2)
        for t, (i, j) in enumerate(((1, 2), (0, 2), (0, 1))):
            c = (L[i, 0] * L[j, 0] + L[i, 1] * L[j, 1] + L[i, 2] * L[j, 2]) / (p[i] * p[j])
            p[3 + t] = np.degrees(np.arccos(min(max(c, -1.0), 1.0)))
        a_ = (p[0] + pb[0]) / 2
        b_ = (p[1] + pb[1]) / 2
        c_ = (p[2] + pb[2]) / 2
        ca = np.cos(np.radians((p[3] + pb[3]) / 2))
        cb = np.cos(np.radians((p[4] + pb[4]) / 2))
        cg = np.cos(np.radians((p[5] + pb[5]) / 2))
        G[k, 0, 0] = a_ * a_
        G[k, 1, 1] = b_ * b_
        G[k, 2, 2] = c_ * c_
        G[k, 1, 2] = G[k, 2, 1] = b_ * c_ * ca
        G[k, 0, 2] = G[k, 2, 0] = a_ * c_ * cb
        G[k, 0, 1] = G[k, 1, 0] = a_ * b_ * cg
        g = G[k]
        c00 = g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1]
        c11 = g[0, 0] * g[2, 2] - g[0, 2] * g[2, 0]
        c22 = g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]
        dg = g[0, 0] * c00 - g[0, 1] * (g[1, 0] * g[2, 2] - g[1, 2] * g[2, 0]) + g[0, 2] * (
            g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0])
        ell[k] = (np.sqrt(dg) / n) ** (1.0 / 3.0)
        ftol[k, 0] = 2.0 * stol * ell[k] * np.sqrt(c00 / dg)
        ftol[k, 1] = 2.0 * stol * ell[k] * np.sqrt(c11 / dg)
        ftol[k, 2] = 2.0 * stol * ell[k] * np.sqrt(c22 / dg)


def translations_python(f: Any, order: Any, starts: Any, rare: Any, ftol: Any, out: Any) -> int:
    """Candidate lattice translations of the primitive-cell search (compiled by :func:`translations`).

    Starts from ``f[rare] - f[rare[0]]`` and keeps, group after group (``order[starts[g]:
    starts[g + 1]]``: the site indices of group ``g``, groups in the caller's order), the vectors
    ``v`` that map every site ``j`` of the group onto some site ``k`` of it:
    ``|v - (f_k - f_j)|`` reduced mod 1 is ``<= 2 ftol`` on every axis.  Writes them, in order, into
    ``out``; returns their number.  (``latticesym.structure._match._primitive`` in numpy.)
    """
    nv = rare.shape[0]
    for r in range(nv):
        for x in range(3):
            out[r, x] = f[rare[r], x] - f[rare[0], x]
    for g in range(starts.shape[0] - 1):
        if nv == 0:
            break
        lo = starts[g]
        hi = starts[g + 1]
        kept = 0
        for r in range(nv):
            good = True
            for jj in range(lo, hi):
                j = order[jj]
                hit = False
                for kk in range(lo, hi):
                    k = order[kk]
                    close = True
                    for x in range(3):
                        d = out[r, x] - (f[k, x] - f[j, x])
                        d = abs(d - np.rint(d))
                        if not d <= 2 * ftol[x]:
                            close = False
                            break
                    if close:
                        hit = True
                        break
                if not hit:
                    good = False
                    break
            if good:
                for x in range(3):
                    out[kept, x] = out[r, x]
                kept += 1
        nv = kept
    return nv


def hnf_keep_python(Hinv: Any, vecs: Any, ftol: Any, keep: Any) -> None:
    """``keep[h]``: every row of ``Hinv[h]`` is, mod 1, within ``ftol`` (strict, per axis) of one
    of ``vecs`` (compiled by :func:`hnf_keep`)."""
    for h in range(Hinv.shape[0]):
        ok = True
        for row in range(3):
            hit = False
            for v in range(vecs.shape[0]):
                close = True
                for x in range(3):
                    d = Hinv[h, row, x] - vecs[v, x]
                    d = abs(d - np.rint(d))
                    if not d < ftol[x]:
                        close = False
                        break
                if close:
                    hit = True
                    break
            if not hit:
                ok = False
                break
        keep[h] = ok


def available() -> bool:
    """Whether numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


#: Helpers the kernels call; compiled (and bound to these module names) before the first kernel,
#: since a compiled kernel can only call compiled functions.
_HELPERS = ("_image_table", "_centred")


def _get(name: str, src: Any) -> Any:
    fn = _compiled.get(name)
    if fn is not None:
        return fn
    with _lock:
        if name not in _compiled:
            import numba

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", numba.NumbaWarning)
                jit = numba.njit(cache=True, nogil=True, error_model="numpy")
                if "_helpers" not in _compiled:
                    for h in _HELPERS:
                        globals()[h] = jit(globals()[h])
                    _compiled["_helpers"] = True
                _compiled[name] = jit(src)
        return _compiled[name]


def scan() -> Any:
    """The compiled :func:`scan_python` (compiled on first call, then loaded from numba's disk cache)."""
    return _get("scan", scan_python)


def costs() -> Any:
    """The compiled :func:`costs_python`."""
    return _get("costs", costs_python)


def bounds() -> Any:
    """The compiled :func:`bounds_python`."""
    return _get("bounds", bounds_python)


def finish() -> Any:
    """The compiled :func:`finish_python`."""
    return _get("finish", finish_python)


def translations() -> Any:
    """The compiled :func:`translations_python`."""
    return _get("translations", translations_python)


def hnf_keep() -> Any:
    """The compiled :func:`hnf_keep_python`."""
    return _get("hnf_keep", hnf_keep_python)


def mappings() -> Any:
    """The compiled :func:`mappings_python`."""
    return _get("mappings", mappings_python)


def setup() -> Any:
    """The compiled :func:`setup_python`."""
    return _get("setup", setup_python)
