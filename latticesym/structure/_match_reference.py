"""Brute-force reference for :func:`latticesym.structure.match` (small structures, no pruning).

The fast matcher prunes: it pre-selects lattice vectors per axis by length, takes one anchor atom,
solves the site assignment with a nearest-neighbour shortcut or scipy, and looks at 27 periodic
images.  This module decides the same question the slow, obvious way, so that the fast path is
tested against something that shares none of its search code:

- **lattice mappings**: every triple of lattice vectors inside the search sphere (radius
  ``(1 + ltol) * max(l_b)``, the largest length any mapped row may have) is formed and checked
  against all six parameter tolerances and ``|det| = 1`` -- no per-axis pre-selection;
- **translations**: every pair (site ``p`` of b, site ``q`` of a) of the least frequent species
  (the fast path's ``anchors="all"`` family; its default ``"one"`` is a subset);
- **images**: minimum-image distances over the 125 cells ``{-2..2}**3`` (not 27), computed from
  Cartesian vectors of an explicit averaged-lattice matrix;
- **assignment**: every permutation within each species block when their number is at most
  ``max_permutations`` (exhaustive), otherwise scipy's exact ``linear_sum_assignment`` (reported
  in ``ReferenceResult.assignment``).

The per-candidate acceptance rule (every site of b has a same-species partner within
``2 stol l / d_i`` along each reciprocal axis after the anchor translation; pairs outside it cannot
be assigned) is part of the matching semantics, so it is applied here too.  Preprocessing
(Niggli and primitive reduction, volume scaling) is shared with the fast path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations, product
from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.errors import MatchBudgetError
from latticesym.structure._match import _check_tol, _reduced_formula, prepare_structure

__all__ = ["ReferenceResult", "reference_match"]

_IMAGES5 = np.array(list(product(range(-2, 3), repeat=3)), dtype=np.float64)  # (125, 3)


@dataclass(frozen=True)
class ReferenceResult:
    """Answer of :func:`reference_match`.

    Attributes
    ----------
    matched, rms, max_dist, matched_by_rms, reason
        As in :class:`latticesym.structure.MatchResult`.
    n_lattice_mappings, n_candidates : int
    assignment : str
        ``"exhaustive"`` (every permutation tried) or ``"scipy"`` (too many permutations).
    """

    matched: bool
    rms: float
    max_dist: float
    matched_by_rms: bool
    reason: str
    n_lattice_mappings: int
    n_candidates: int
    assignment: str


def _lengths_angles(M: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a, b, c = M[..., 0, :], M[..., 1, :], M[..., 2, :]
    la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))

    def ang(u: NDArray[np.float64], v: NDArray[np.float64], lu: Any, lv: Any) -> NDArray[np.float64]:
        return np.degrees(np.arccos(np.clip(np.sum(u * v, axis=-1) / (lu * lv), -1.0, 1.0)))

    return np.stack([la, lb, lc], -1), np.stack([ang(b, c, lb, lc), ang(a, c, la, lc), ang(a, b, la, lb)], -1)


def _all_mappings(La: NDArray[np.float64], Lb: NDArray[np.float64], ltol: float, angle_tol: float,
                  max_triples: int) -> list[NDArray[np.int64]]:
    lb, angb = _lengths_angles(Lb)
    r = float(lb.max()) * (1 + ltol)
    # |n_i| <= r |b*_i| is necessary for |n @ La| <= r (Cauchy-Schwarz with the reciprocal vector)
    nmax = np.floor(r * np.linalg.norm(np.linalg.inv(La), axis=0) * (1 + 1e-12)).astype(int)
    pts = np.array([n for n in product(*(range(-k, k + 1) for k in nmax)) if any(n)], dtype=np.int64)
    cart = pts @ La
    pts = pts[np.linalg.norm(cart, axis=1) <= r * (1 + 1e-12)]
    P = len(pts)
    if max_triples < P**3:
        raise MatchBudgetError(f"reference: {P} lattice vectors, {P**3} triples > max_triples={max_triples}")
    out: list[NDArray[np.int64]] = []
    for i in range(P):  # every triple, checked on all criteria at once
        M = np.empty((P, P, 3, 3), dtype=np.int64)
        M[:, :, 0] = pts[i]
        M[:, :, 1] = pts[:, None, :]
        M[:, :, 2] = pts[None, :, :]
        C = M.astype(np.float64) @ La
        ln, ang = _lengths_angles(C)
        ratio = ln / lb
        ok = np.all((ratio < 1 + ltol) & (ratio > 1 / (1 + ltol)), axis=-1)
        ok &= np.all(np.abs(ang - angb) <= angle_tol, axis=-1)
        ok &= np.abs(np.rint(np.linalg.det(M.astype(np.float64)))) == 1
        out.extend(M[ok])
    return out


def _avg_matrix(Lm: NDArray[np.float64], Lb: NDArray[np.float64]) -> NDArray[np.float64]:
    """An explicit matrix with the mean lengths and angles of ``Lm`` and ``Lb`` (a along x, b in xy)."""
    l1, a1 = _lengths_angles(Lm)
    l2, a2 = _lengths_angles(Lb)
    (a, b, c), (al, be, ga) = (l1 + l2) / 2, np.radians((a1 + a2) / 2)
    cx = c * math.cos(be)
    cy = c * (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0.0, 0.0], [b * math.cos(ga), b * math.sin(ga), 0.0], [cx, cy, cz]])


def _best_assignment(cost: NDArray[np.float64], zb: NDArray[np.int64], za: NDArray[np.int64],
                     max_permutations: int) -> tuple[NDArray[np.int64] | None, str]:
    n = len(zb)
    blocks = [(np.flatnonzero(zb == s), np.flatnonzero(za == s)) for s in np.unique(zb)]
    n_perm = math.prod(math.factorial(len(rows)) for rows, _ in blocks)
    if n_perm > max_permutations:
        from scipy.optimize import linear_sum_assignment

        _, sigma = linear_sum_assignment(cost)
        sigma = np.asarray(sigma, dtype=np.int64)
        how = "scipy"
    else:
        sigma = np.zeros(n, dtype=np.int64)
        for rows, cols in blocks:
            best, arg = math.inf, None
            for perm in permutations(cols.tolist()):
                s = float(sum(cost[r, c] for r, c in zip(rows.tolist(), perm)))
                if s < best:
                    best, arg = s, perm
            sigma[rows] = np.asarray(arg, dtype=np.int64)
        how = "exhaustive"
    if np.any(cost[np.arange(n), sigma] >= 1e20):
        return None, how
    return sigma, how


def reference_match(
    a: Any,
    b: Any,
    *,
    ltol: float = 0.3,
    stol: float = 0.5,
    angle_tol: float = 10.0,
    primitive_cell: bool = True,
    scale: bool = True,
    max_permutations: int = 40320,
    max_triples: int = 200_000_000,
) -> ReferenceResult:
    """Decide the match of ``b`` onto ``a`` by exhaustive search (see the module docstring).

    Parameters are those of :func:`latticesym.structure.match`; ``max_permutations`` bounds the
    exhaustive assignment (beyond it scipy's exact solver is used), ``max_triples`` the lattice
    search (beyond it :class:`MatchBudgetError`).  Meant for small structures: the cost grows as
    (lattice vectors)**3 times (atoms)**2 times the permutations.
    """
    _check_tol(ltol, stol, angle_tol)
    A = prepare_structure(a, primitive_cell=primitive_cell, what="a")
    B = prepare_structure(b, primitive_cell=primitive_cell, what="b")

    def no(reason: str, k: int = 0, c: int = 0, how: str = "exhaustive") -> ReferenceResult:
        return ReferenceResult(False, math.nan, math.nan, False, reason, k, c, how)

    if A.num_sites == 0 or B.num_sites == 0:
        return no("empty")
    if _reduced_formula(A.species) != _reduced_formula(B.species):
        return no("composition")
    if A.num_sites != B.num_sites:
        return no("site count")
    La, Lb = A.lattice, B.lattice
    if scale:
        ratio = (abs(np.linalg.det(Lb)) / abs(np.linalg.det(La))) ** (1.0 / 6.0)
        La, Lb = La * ratio, Lb / ratio
    mappings = _all_mappings(La, Lb, ltol, angle_tol, max_triples)
    if not mappings:
        return no("no lattice mapping")
    n = B.num_sites
    za, zb = A.species, B.species
    species, counts = np.unique(zb, return_counts=True)
    s0 = zb[np.isin(zb, species[counts == counts.min()])][0]
    anchors = [(p, q) for p in np.flatnonzero(zb == s0) for q in np.flatnonzero(za == s0)]
    best_rms, best_max, any_fit, n_cand, how_used = math.inf, math.nan, False, 0, "exhaustive"
    for M in mappings:
        Mf = M.astype(np.float64)
        fa = A.frac @ np.linalg.inv(Mf)
        fa = fa - np.floor(fa)
        avg = _avg_matrix(Mf @ La, Lb)
        ell = (abs(np.linalg.det(avg)) / n) ** (1.0 / 3.0)
        d_spacing = 1.0 / np.linalg.norm(np.linalg.inv(avg), axis=0)
        ftol = 2.0 * stol * ell / d_spacing
        for p, q in anchors:
            t = fa[q] - B.frac[p]
            allowed = np.zeros((n, n), dtype=bool)
            cost = np.full((n, n), 1e20)
            vec = np.zeros((n, n, 3))
            for i in range(n):
                for j in range(n):
                    if za[j] != zb[i]:
                        continue
                    w = fa[j] - (B.frac[i] + t)
                    if np.any(np.abs(w - np.round(w)) > ftol):
                        continue
                    allowed[i, j] = True
                    carts = (w - np.round(w) + _IMAGES5) @ avg
                    d2 = np.sum(carts**2, axis=1)
                    k = int(np.argmin(d2))
                    cost[i, j], vec[i, j] = d2[k], carts[k]
            if not np.all(np.any(allowed, axis=1)):
                continue
            n_cand += 1
            sigma, how = _best_assignment(cost, zb, za, max_permutations)
            if how == "scipy":
                how_used = "scipy"
            if sigma is None:
                continue
            v = vec[np.arange(n), sigma]
            v = v - v.mean(axis=0)
            dist = np.linalg.norm(v, axis=1) / ell
            rms = float(np.sqrt(np.mean(dist**2)))
            any_fit |= bool(dist.max() < stol)
            if rms < best_rms:
                best_rms, best_max = rms, float(dist.max())
    if not math.isfinite(best_rms):
        return no("sites", len(mappings), n_cand, how_used)
    rms_ok = best_rms < stol
    reason = "matched" if any_fit else ("rms only" if rms_ok else "sites")
    return ReferenceResult(any_fit, best_rms, best_max, rms_ok, reason, len(mappings), n_cand, how_used)
