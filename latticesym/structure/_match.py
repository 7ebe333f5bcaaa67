"""Structure matching with StructureMatcher's tolerance semantics, on latticesym's Niggli reducer.

:func:`match` decides whether two periodic structures are the same crystal and how far apart
their sites are, with the tolerances CSP papers use (pymatgen's ``StructureMatcher(ltol=0.3,
stol=0.5, angle_tol=10)``, Ong et al. 2013).  The semantics are pymatgen's (facts read from its
documentation and source, re-implemented here; see ``docs/matching.md``):

1. Different reduced formulas (or an empty structure) mean *no match* -- a verdict, not an
   error, decided before any reduction.  Both structures are Niggli reduced (our float reducer,
   ``eps=1e-5``), optionally reduced to a primitive cell (pure lattice translations found with a
   0.25 Angstrom per-coordinate tolerance, merged sites averaged; like pymatgen, the search
   recurses on the unreduced primitive cell) and Niggli reduced once more.  Different site counts
   after this also mean no match.
2. ``scale=True`` rescales both lattices to the common volume ``sqrt(V_a V_b)``.
3. Lattice mappings: every integer ``M`` with ``|det M| = 1`` whose rows, as vectors of
   lattice ``a``, have lengths ``l`` with ``1/(1+ltol) < l / l_b < 1 + ltol`` (strict) against the
   corresponding lengths of ``b`` and angles within ``angle_tol`` degrees (inclusive) of b's.
   Mirror bases (``det M = -1``) count: lengths and angles do not see handedness, so a structure
   matches its mirror image.
4. Sites are compared on the *averaged* lattice (mean lengths and mean angles of ``M @ L_a`` and
   ``L_b``), in units of ``l = (V / N) ** (1/3)``.  Candidate translations put one atom of the
   least frequent species of ``b`` (the first in b's order) onto each atom of ``a`` of that species
   (``anchors="all"``: every atom of that species of ``b``).  A candidate survives when every
   site of ``b`` has a same-species site of ``a`` within ``2 stol l / d_i`` along each reciprocal
   axis ``i`` (``d_i`` the interplanar spacing); pairs beyond that are excluded from the
   assignment.  Sites are paired by a linear assignment on squared minimum-image distances
   (``scipy.optimize.linear_sum_assignment``), the mean displacement is removed, and the
   normalised site distances ``d_k`` follow.
5. ``matched`` (pymatgen's ``fit``): some candidate has ``max_k d_k < stol``.  ``rms`` (pymatgen's
   ``get_rms_dist``): the smallest ``sqrt(mean_k d_k**2)`` over all candidates;
   ``matched_by_rms``: ``rms < stol`` -- the criterion DiffCSP's evaluation counts as a match.

Speed: the lattice-mapping search, the per-mapping setup and the scan over all (mapping,
translation) candidates run in numba kernels (:mod:`latticesym.structure._match_kernel`; a
candidate is rejected at its first b-site without a partner, and one whose nearest partners are
distinct is finished in the kernel, that being the optimal assignment); only candidates whose
nearest partners collide go to ``scipy.optimize.linear_sum_assignment``, on the cost matrices the
scan kept, and only when their provable lower bounds on the centred rms and largest distance
(:func:`latticesym.structure._match_kernel.bounds_python`) leave them a chance to beat the best
rms so far or to fit.  ``SITE_BACKEND =
"numpy"`` selects the all-numpy path, which gives the same answers (tested).  In
:func:`match_batch`, each distinct input structure is prepared once per chunk.

References
----------
Ong, S. P. et al. Python Materials Genomics (pymatgen). Comput. Mater. Sci. 68, 314 (2013),
doi:10.1016/j.commatsci.2012.10.028 (StructureMatcher).
Jiao, R. et al. Crystal Structure Prediction by Joint Equivariant Diffusion. NeurIPS 2023
(DiffCSP; match rate and RMSE).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial, reduce
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.errors import (
    LatticeError,
    LatticeShapeError,
    MatchBudgetError,
    NonFiniteLatticeError,
    SingularLatticeError,
)
from latticesym.structure._canonical import integer_inverse

__all__ = [
    "MatchBatch",
    "MatchResult",
    "PreparedStructure",
    "match",
    "match_batch",
    "prepare_structure",
    "structures_from_ragged",
]

#: Per-pair work bounds (never a hang): lattice points enumerated, (a, b, c) triples examined,
#: lattice mappings kept, and (mapping, translation) candidates assigned.
MAX_POINTS = 200_000
MAX_TRIPLES = 20_000_000
MAX_MAPPINGS = 20_000
MAX_CANDIDATES = 200_000

_IMAGES = np.array(list(product((-1, 0, 1), repeat=3)), dtype=np.float64)  # (27, 3)
_EXCLUDED = 1e20  # cost of a pair the assignment may not use (pymatgen uses the same sentinel)
_CONFLICT_BUFFER = 1 << 19  # cost-matrix entries the compiled scan keeps for the assignment solver
_ASSIGN_BATCH = 8  # conflicting candidates assigned between two updates of the pruning threshold
_BOUND_MARGIN = 1e-9  # relative slack: a candidate is pruned only when its bound clears the threshold by more
_BOUND_SCALE = 1.0  # the bounds are used as proved (tests set it > 1 to show a bound too large is caught)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MatchResult:
    """Outcome of :func:`match` for one pair ``(a, b)``.

    Attributes
    ----------
    matched : bool
        StructureMatcher ``fit`` verdict: some lattice mapping and candidate translation put every
        site within ``stol`` (normalised distance, strict).
    rms : float
        ``get_rms_dist`` semantics: the smallest normalised rms site distance over all candidates
        (NaN when no candidate exists: no lattice mapping, different compositions, ...).
    max_dist : float
        Largest normalised site distance of the candidate that gave ``rms`` (NaN if none).
    matched_by_rms : bool
        ``rms < stol`` (DiffCSP's match criterion: ``get_rms_dist`` returned a value).
    reason : str
        ``"matched"``, ``"rms only"`` (``matched_by_rms`` but not ``matched``), ``"sites"`` (lattice
        mappings exist, no candidate within ``stol``), ``"no lattice mapping"``, ``"composition"``,
        ``"site count"`` (same formula, different number of sites after the primitive reduction)
        or ``"empty"`` (a structure without atoms: nothing to match).
    transform : ndarray of int64, shape (3, 3)
        ``det = +-1``: ``length_scale * transform @ lattice_a @ rotation.T ~ lattice_b`` (within
        ``ltol``/``angle_tol``) for the best candidate; all zero when there is none.
    rotation : ndarray, shape (3, 3)
        Orthogonal (det -1 for a mirror match), the Procrustes fit of that relation.
    mapping : ndarray of int64, shape (n_b,)
        Site ``i`` of ``b`` pairs with site ``mapping[i]`` of ``a`` (indices into the inputs); empty
        when there is no candidate.
    distances : ndarray, shape (n_b,)
        Normalised distance of each pair (units of ``(V/N)**(1/3)``).
    lattice_a, lattice_b : ndarray, shape (3, 3)
        The cells ``transform`` refers to: the inputs when no primitive reduction changed a cell
        (``primitive_reduced`` False), else the reduced primitive cells.
    length_scale : float
        ``(V_b / V_a) ** (1/3)`` of those cells with ``scale=True``, else 1.
    primitive_reduced : bool
        A primitive reduction shrank ``a`` or ``b``.
    n_lattice_mappings, n_candidates : int
        Lattice mappings found; (mapping, translation) candidates that passed the site prefilter.
    """

    matched: bool
    rms: float
    max_dist: float
    matched_by_rms: bool
    reason: str
    transform: NDArray[np.int64] = field(repr=False)
    rotation: NDArray[np.float64] = field(repr=False)
    mapping: NDArray[np.int64] = field(repr=False)
    distances: NDArray[np.float64] = field(repr=False)
    lattice_a: NDArray[np.float64] = field(repr=False)
    lattice_b: NDArray[np.float64] = field(repr=False)
    length_scale: float = 1.0
    primitive_reduced: bool = False
    n_lattice_mappings: int = 0
    n_candidates: int = 0


@dataclass(frozen=True)
class MatchBatch:
    """Outcomes of :func:`match_batch`, one entry per pair (arrays of length ``B``).

    ``reason[k]`` is ``"error: <message>"`` when pair ``k`` raised a :class:`LatticeError` (bad
    input, or a per-pair work bound); such pairs have ``matched = matched_by_rms = False`` and
    ``rms = NaN``, the way DiffCSP's evaluation counts a failed ``get_rms_dist`` as no match.
    """

    matched: NDArray[np.bool_]
    rms: NDArray[np.float64]
    max_dist: NDArray[np.float64]
    matched_by_rms: NDArray[np.bool_]
    reason: tuple[str, ...]
    n_lattice_mappings: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.reason)

    @property
    def errors(self) -> list[int]:
        """Indices of the pairs that raised."""
        return [i for i, r in enumerate(self.reason) if r.startswith("error")]


# --------------------------------------------------------------------------- input
@dataclass(frozen=True)
class PreparedStructure:
    """A structure after the matcher's preprocessing (Niggli cell, optionally primitive).

    Attributes
    ----------
    lattice : ndarray (3, 3)
        Reduced lattice (rows).
    frac : ndarray (n, 3)
        Fractional coordinates in ``lattice``, wrapped into [0, 1).
    species : ndarray of int64 (n,)
        Species codes (atomic numbers, or codes of the symbols given).
    index : ndarray of int64 (n,)
        Input atom of each site (the first atom of a merged group after a primitive reduction).
    input_lattice : ndarray (3, 3)
    transform : ndarray of int64 (3, 3)
        ``transform @ input_lattice == lattice`` (to rounding) when ``primitive_reduced`` is False.
    primitive_reduced : bool
    """

    lattice: NDArray[np.float64]
    frac: NDArray[np.float64]
    species: NDArray[np.int64]
    index: NDArray[np.int64]
    input_lattice: NDArray[np.float64]
    transform: NDArray[np.int64]
    primitive_reduced: bool

    @property
    def num_sites(self) -> int:
        return len(self.species)


_SYMBOL_TEXT = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
)
_SYMBOLS = tuple(_SYMBOL_TEXT.split())
_NUMBER = {s: i + 1 for i, s in enumerate(_SYMBOLS)}


def _symbol_number(symbol: str) -> int:
    try:
        return _NUMBER[symbol.strip()]
    except KeyError:
        raise LatticeShapeError(f"unknown element symbol {symbol!r}") from None


def _as_arrays(s: Any, what: str) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """``(lattice, frac, species)`` of a tuple, a latticesym / pymatgen structure or ASE Atoms."""
    if isinstance(s, (tuple, list)) and len(s) == 3:
        lattice, frac, species = s
    elif hasattr(s, "get_scaled_positions") and hasattr(s, "cell"):  # ASE Atoms
        lattice, frac, species = np.asarray(s.cell), s.get_scaled_positions(wrap=False), s.numbers
    elif hasattr(s, "frac_coords") and hasattr(s, "lattice") and hasattr(s.lattice, "matrix"):
        lattice, frac, species = s.lattice.matrix, s.frac_coords, [site.specie.Z for site in s]  # pymatgen
    elif hasattr(s, "lattice") and (hasattr(s, "frac_coords") or hasattr(s, "frac")) and hasattr(s, "species"):
        lattice = s.lattice
        frac = s.frac_coords if hasattr(s, "frac_coords") else s.frac
        species = s.species
    else:
        raise LatticeShapeError(
            f"structure {what}: expected (lattice, frac, species), a latticesym/pymatgen structure or ASE "
            f"Atoms, got {type(s).__name__}"
        )
    try:
        L = np.asarray(lattice, dtype=np.float64)
        f = np.asarray(frac, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LatticeShapeError(f"structure {what}: lattice/frac not numeric ({exc})") from exc
    if L.shape != (3, 3):
        raise LatticeShapeError(f"structure {what}: lattice has shape {L.shape}, expected (3, 3)")
    if f.ndim == 1 and f.size == 0:
        f = f.reshape(0, 3)
    if f.ndim != 2 or f.shape[1] != 3:
        raise LatticeShapeError(f"structure {what}: frac has shape {f.shape}, expected (n, 3)")
    sp = np.asarray(species)
    if sp.ndim != 1 or len(sp) != len(f):
        raise LatticeShapeError(f"structure {what}: {sp.size} species for {len(f)} sites")
    if sp.size and sp.dtype.kind in "USO":
        try:
            z = np.array([_symbol_number(x) if isinstance(x, str) else int(x) for x in sp.tolist()], dtype=np.int64)
        except (LatticeShapeError, TypeError, ValueError) as exc:
            raise LatticeShapeError(f"structure {what}: {exc}") from None
    else:
        try:
            z = sp.astype(np.int64) if sp.size else np.zeros(0, dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise LatticeShapeError(f"structure {what}: species not atomic numbers or symbols ({exc})") from exc
        if sp.size and not np.array_equal(z, sp):
            raise LatticeShapeError(f"structure {what}: species {sp[:5]} are not integers")
    if not np.all(np.isfinite(L)):
        raise NonFiniteLatticeError(f"structure {what}: lattice has non-finite entries {L.tolist()}")
    if not np.all(np.isfinite(f)):
        bad = np.argwhere(~np.isfinite(f))[:, 0]
        raise NonFiniteLatticeError(f"structure {what}: frac of sites {sorted(set(bad.tolist()))[:10]} not finite")
    vol = abs(float(np.linalg.det(L)))
    scale = float(np.prod(np.linalg.norm(L, axis=1)))
    if not vol > 1e-12 * scale or scale == 0.0:
        raise SingularLatticeError(
            f"structure {what}: singular lattice, |det| = {vol:.3e} for row-norm product {scale:.3e}"
        )
    return L, f, z


def _wrap(f: NDArray[np.float64]) -> NDArray[np.float64]:
    w = f - np.floor(f)
    w[w >= 1.0] = 0.0  # -1e-17 - floor(-1e-17) rounds to 1.0
    return w


def _niggli(L: NDArray[np.float64], what: str) -> NDArray[np.int64]:
    from latticesym import niggli_reduce

    try:
        return np.asarray(niggli_reduce(L, eps=1e-5).transform, dtype=np.int64)
    except LatticeError as exc:
        raise type(exc)(f"structure {what}: {exc}") from exc


def _translations_numpy(
    f: NDArray[np.float64], groups: list[NDArray[np.int64]], rare: NDArray[np.int64], ftol: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Translations ``f_j - f_rare[0]`` (``j`` in ``rare``) that map every site of each group onto a
    site of the same group within ``2 ftol`` per axis (mod 1); groups taken smallest first."""
    vecs = f[rare] - f[rare[0]]
    for g in sorted(groups, key=len):  # keep the translations that map every site of g onto g
        if not len(vecs):
            break
        rel = f[g][None, :, :] - f[g][:, None, :]  # (j, k): f_k - f_j
        if len(vecs) * rel.size > 6_000_000:  # bounded memory: one site j at a time
            for r in rel:
                d = vecs[:, None, :] - r[None, :, :]
                d = np.abs(d - np.round(d))
                vecs = vecs[np.any(np.all(d <= 2 * ftol, axis=-1), axis=-1)]
            continue
        d = vecs[:, None, None, :] - rel[None]
        d = np.abs(d - np.round(d))
        vecs = vecs[np.all(np.any(np.all(d <= 2 * ftol, axis=-1), axis=-1), axis=-1)]
    return vecs


def _primitive(
    L: NDArray[np.float64], f: NDArray[np.float64], z: NDArray[np.int64], idx: NDArray[np.int64], tol: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]] | None:
    """One step of the primitive-cell search (pymatgen's semantics); None when ``L`` is primitive.

    A cell of index ``m`` is looked for among the lattices ``inv(H) @ L`` with ``H`` in Hermite
    normal form, ``det H = m`` dividing the gcd of the species counts (smallest ``m`` first): all
    rows of ``inv(H)`` must be (within ``tol / |a_i|`` per fractional coordinate) translations
    ``f_j - f_0`` of the least frequent species that map every site onto a same-species site
    (within twice that), and in the new cell every site must fall into a clique of exactly ``m``
    mutually close sites (within ``tol / |a'_i|``), which are merged into their mean position.
    """
    species, counts = np.unique(z, return_counts=True)
    num_fu = reduce(math.gcd, counts.tolist())
    if num_fu <= 1:
        return None
    groups = [np.flatnonzero(z == s) for s in species]
    ftol = tol / np.linalg.norm(L, axis=1)
    rare = groups[int(np.argmin(counts))]
    compiled = _use_kernels()
    if compiled:  # the same filter, compiled (the primitive search of a sample ran 0.2 ms in numpy)
        from latticesym.structure import _match_kernel

        by_size = sorted(groups, key=len)
        order = np.ascontiguousarray(np.concatenate(by_size), dtype=np.int64)
        starts = np.cumsum([0] + [len(g) for g in by_size]).astype(np.int64)
        fc = np.ascontiguousarray(f, dtype=np.float64)
        buf = np.empty((len(rare), 3))
        nv = _match_kernel.translations()(fc, order, starts, np.ascontiguousarray(rare, dtype=np.int64),
                                          np.ascontiguousarray(ftol), buf)
        vecs = buf[:nv]
    else:
        vecs = _translations_numpy(f, groups, rare, ftol)
    non_nbrs: list[NDArray[np.bool_]] = []
    for det in [m for m in range(2, num_fu + 1) if num_fu % m == 0]:
        Hs, Hinvs = _hnf(det)
        # every row of inv(H) must be one of the translations (all H of this index at once)
        if compiled:
            keep = np.empty(len(Hs), dtype=np.bool_)
            _match_kernel.hnf_keep()(Hinvs, np.ascontiguousarray(vecs), np.ascontiguousarray(ftol), keep)
        else:
            d = Hinvs[:, :, None, :] - vecs[None, None, :, :]
            d = np.abs(d - np.round(d))
            keep = np.all(np.any(np.all(d < ftol, axis=-1), axis=-1), axis=-1)
        if not keep.any():
            continue
        if keep.any() and not non_nbrs:  # sites may not merge with their neighbours in L
            for g in groups:
                d = f[g][None, :, :] - f[g][:, None, :]
                d = np.abs(d - np.round(d))
                nn = np.any(d > 2 * ftol, axis=-1)
                np.fill_diagonal(nn, True)
                non_nbrs.append(nn)
        for H, Hinv in zip(Hs[keep], Hinvs[keep]):
            new_L = Hinv @ L
            ntol = tol / np.linalg.norm(new_L, axis=1)
            out_f, out_z, out_i = [], [], []
            ok = True
            for g, nn in zip(groups, non_nbrs):
                nf = f[g] @ H.astype(np.float64)
                d = nf[None, :, :] - nf[:, None, :]
                d = np.abs(d - np.round(d))
                close = np.all(d < ntol, axis=-1) & nn
                if not np.all(close.sum(axis=0) == det):
                    ok = False
                    break
                ci = close.astype(np.int64)  # cliques: i, j sharing a row r must be close themselves
                if not np.all(close | ((ci.T @ ci) == 0)):
                    ok = False
                    break
                nf = nf - np.floor(nf)
                done = np.zeros(len(g), dtype=bool)
                for r in range(len(g)):
                    if done[r]:
                        continue
                    members = np.flatnonzero(close[r])
                    done[members] = True
                    c = nf[members[0]].copy()  # pymatgen's running mean of minimum-image offsets
                    for t, m_ in enumerate(members[1:]):
                        off = nf[m_] - c
                        c += (off - np.round(off)) / (t + 2)
                    out_f.append(c)
                    out_z.append(z[g[members[0]]])
                    out_i.append(idx[g[members[0]]])
            if ok:
                return new_L, np.array(out_f), np.array(out_z, dtype=np.int64), np.array(out_i, dtype=np.int64)
    return None


@lru_cache(maxsize=64)
def _hnf(det: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Upper-triangular Hermite normal forms ``[[a, b, c], [0, e, f], [0, 0, g]]`` of determinant
    ``det`` (pymatgen's order) and their inverses, stacked: ``(h, 3, 3)`` each (read-only)."""
    out = []
    for a in range(1, det + 1):
        if det % a:
            continue
        for e in range(1, det // a + 1):
            if (det // a) % e:
                continue
            g = det // a // e
            for b, c, f_ in product(range(a), range(a), range(e)):
                out.append(np.array([[a, b, c], [0, e, f_], [0, 0, g]], dtype=np.int64))
    H = np.stack(out)
    Hinv = np.linalg.inv(H.astype(np.float64))
    H.setflags(write=False)
    Hinv.setflags(write=False)
    return H, Hinv


def prepare_structure(
    s: Any, *, primitive_cell: bool = True, primitive_tol: float = 0.25, what: str = "a"
) -> PreparedStructure:
    """Validate a structure and bring it to the matcher's reduced (primitive) cell.

    Parameters
    ----------
    s : structure
        ``(lattice, frac, species)``, a :class:`latticesym.datasets.Structure`, a pymatgen
        ``Structure`` or ASE ``Atoms``.
    primitive_cell : bool
        Also reduce to a primitive cell (pymatgen's ``get_primitive_structure`` semantics,
        ``tolerance=primitive_tol`` Angstrom per coordinate).

    Raises
    ------
    LatticeShapeError, NonFiniteLatticeError, SingularLatticeError
        Bad shapes, NaN/inf in lattice or frac, a singular lattice (the message names the side).
    """
    L, f, z = _as_arrays(s, what)
    return _prepare_arrays(L, f, z, primitive_cell=primitive_cell, primitive_tol=primitive_tol, what=what)


def _prepare_arrays(
    L: NDArray[np.float64], f: NDArray[np.float64], z: NDArray[np.int64], *, primitive_cell: bool,
    primitive_tol: float, what: str,
) -> PreparedStructure:
    idx = np.arange(len(z), dtype=np.int64)
    T = _niggli(L, what)
    Lr = T.astype(np.float64) @ L
    fr = _wrap(f @ _unimodular_inverse(T).astype(np.float64))
    reduced = False
    if primitive_cell and len(z) > 1:
        # pymatgen's order: the search recurses on the *unreduced* primitive cell ``inv(H) @ L``
        # (its per-axis tolerances ``tol / |a_i|`` depend on that basis) and Niggli-reduces once at
        # the end; reducing between steps loses noisy cells (a Carbon-24 cell stopped at 4 of 2 sites)
        Lp, fp = Lr, fr
        for _ in range(64):  # each step divides the site count by >= 2
            step = _primitive(Lp, fp, z, idx, primitive_tol)
            if step is None:
                break
            reduced = True
            Lp, fp, z, idx = step
        if reduced:
            Tp = _niggli(Lp, what)
            Lr = Tp.astype(np.float64) @ Lp
            fr = _wrap(fp @ _unimodular_inverse(Tp).astype(np.float64))
    return PreparedStructure(Lr, fr, z, idx, L, T, reduced)


def _unimodular_inverse(t: NDArray[Any]) -> NDArray[np.int64]:
    """Exact inverse of a reducer transform (``det == +1`` by the conventions): the shared int64 adjugate.

    ``np.linalg.inv`` of a transform with entries near 1e8 (sheared cells) is off by whole units
    (its condition number is about ``|T|**2``), so the sites carried by it moved by fractions of the
    cell and a re-based copy failed to match itself (fuzz finding).
    """
    return integer_inverse(np.asarray(t, dtype=np.int64)[None])[0]


# --------------------------------------------------------------------------- lattice mappings
def _params(L: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(..., 6)``: lengths and angles (degrees, alpha = b^c, beta = a^c, gamma = a^b)."""
    if L.shape == (3, 3):  # one cell: scalar math is several times faster than the array path
        r = L.tolist()
        g = [[sum(x * y for x, y in zip(r[i], r[j])) for j in range(3)] for i in range(3)]
        lens = [math.sqrt(g[i][i]) for i in range(3)]
        angles = [math.degrees(math.acos(min(1.0, max(-1.0, g[i][j] / (lens[i] * lens[j])))))
                  for i, j in ((1, 2), (0, 2), (0, 1))]
        return np.array(lens + angles)
    G = L @ np.swapaxes(L, -1, -2)
    ln = np.sqrt(np.diagonal(G, axis1=-2, axis2=-1))

    def ang(i: int, j: int) -> NDArray[np.float64]:
        return np.degrees(np.arccos(np.clip(G[..., i, j] / (ln[..., i] * ln[..., j]), -1.0, 1.0)))

    return np.concatenate([ln, np.stack([ang(1, 2), ang(0, 2), ang(0, 1)], axis=-1)], axis=-1)


def _gram_from_params(p: NDArray[np.float64]) -> NDArray[np.float64]:
    ln, ang = p[..., :3], np.radians(p[..., 3:])
    cos = np.cos(ang)  # alpha (b,c), beta (a,c), gamma (a,b)
    G = np.empty((*p.shape[:-1], 3, 3))
    G[..., 0, 0], G[..., 1, 1], G[..., 2, 2] = ln[..., 0] ** 2, ln[..., 1] ** 2, ln[..., 2] ** 2
    G[..., 1, 2] = G[..., 2, 1] = ln[..., 1] * ln[..., 2] * cos[..., 0]
    G[..., 0, 2] = G[..., 2, 0] = ln[..., 0] * ln[..., 2] * cos[..., 1]
    G[..., 0, 1] = G[..., 1, 0] = ln[..., 0] * ln[..., 1] * cos[..., 2]
    return G


def _point_box(L: NDArray[np.float64], r: float, max_points: int) -> NDArray[np.int64]:
    """Half-widths of the coefficient box holding every ``n`` with ``|n @ L| <= r``: ``|n_i| <= r |b*_i|``.

    The point count is checked in floats before any integer conversion: on a needle cell the box
    overflows int64 and went negative past the bound (fuzz finding, issue 13).
    """
    recip = np.linalg.norm(np.linalg.inv(L), axis=0)  # |b*_i| (no 2 pi)
    box = np.floor(r * recip * (1 + 1e-12))
    total = float(np.prod(2 * box + 1))
    if not np.isfinite(total) or total > max_points:
        raise MatchBudgetError(
            f"lattice-point search needs {total:.6g} points (box {box.tolist()}, radius {r:.4g}) > "
            f"max_points={max_points}"
        )
    return box.astype(np.int64)


def _lattice_points(L: NDArray[np.float64], r: float, max_points: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Integer coefficient vectors ``n != 0`` with ``|n @ L| <= r`` and their Cartesian vectors."""
    nmax = _point_box(L, r, max_points)
    axes = [np.arange(-k, k + 1) for k in nmax]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    cart = grid @ L
    d = np.sqrt(np.einsum("ij,ij->i", cart, cart))
    keep = (d <= r * (1 + 1e-12)) & (d > 0)
    return grid[keep], cart[keep]


def lattice_mappings(
    La: NDArray[np.float64],
    Lb: NDArray[np.float64],
    *,
    ltol: float,
    angle_tol: float,
    max_points: int = MAX_POINTS,
    max_triples: int = MAX_TRIPLES,
    max_mappings: int = MAX_MAPPINGS,
) -> NDArray[np.int64]:
    """All integer ``M`` (``|det| = 1``) with ``M @ La`` within ``ltol``/``angle_tol`` of ``Lb``'s parameters.

    Returns an array of shape ``(K, 3, 3)``.  Raises :class:`MatchBudgetError` past the work bounds.
    """
    pb = _params(Lb)
    lb = pb[:3]
    if _use_kernels():
        return _lattice_mappings_compiled(La, pb, ltol=ltol, angle_tol=angle_tol, max_points=max_points,
                                          max_triples=max_triples, max_mappings=max_mappings)
    coef, cart = _lattice_points(La, float(lb.max() * (1 + ltol)), max_points)
    d = np.sqrt(np.einsum("ij,ij->i", cart, cart))
    cand = []
    for k in range(3):
        ratio = d / lb[k]
        cand.append(np.flatnonzero((ratio < 1 + ltol) & (ratio > 1 / (1 + ltol))))
    ia, ib, ic = cand
    n_triples = len(ia) * len(ib) * len(ic)
    if n_triples == 0:
        return np.zeros((0, 3, 3), dtype=np.int64)
    if n_triples > max_triples:
        raise MatchBudgetError(
            f"lattice-mapping search: {len(ia)} x {len(ib)} x {len(ic)} = {n_triples} vector triples "
            f"> max_triples={max_triples}"
        )
    ua = cart / d[:, None]

    def ok(i: NDArray[np.int64], j: NDArray[np.int64], target: float) -> NDArray[np.bool_]:
        c = np.clip(ua[i] @ ua[j].T, -1.0, 1.0)
        return np.abs(np.degrees(np.arccos(c)) - target) <= angle_tol

    gamma, alpha, beta = ok(ia, ib, pb[5]), ok(ib, ic, pb[3]), ok(ia, ic, pb[4])
    hit = np.argwhere(gamma[:, :, None] & alpha[None, :, :] & beta[:, None, :])
    M = np.stack([coef[ia[hit[:, 0]]], coef[ib[hit[:, 1]]], coef[ic[hit[:, 2]]]], axis=1)
    det = np.rint(np.linalg.det(M.astype(np.float64))).astype(np.int64) if len(M) else np.zeros(0, np.int64)
    M = M[np.abs(det) == 1]
    if len(M) > max_mappings:
        raise MatchBudgetError(f"{len(M)} lattice mappings > max_mappings={max_mappings}")
    return M


def _use_kernels() -> bool:
    from latticesym.structure import _match_kernel

    return SITE_BACKEND == "numba" and _match_kernel.available()


def _lattice_mappings_compiled(
    La: NDArray[np.float64], pb: NDArray[np.float64], *, ltol: float, angle_tol: float, max_points: int,
    max_triples: int, max_mappings: int,
) -> NDArray[np.int64]:
    """:func:`lattice_mappings` through the compiled kernel (same points, order and bounds)."""
    from latticesym.structure import _match_kernel

    r = float(pb[:3].max() * (1 + ltol))
    nmax = _point_box(La, r, max_points)
    out = np.empty((min(max_mappings + 1, 4096), 3, 3), dtype=np.int64)
    args = (np.ascontiguousarray(La, dtype=np.float64), np.ascontiguousarray(pb[:3]), np.ascontiguousarray(pb[3:]),
            float(ltol), float(angle_tol), nmax, r, int(max_triples))
    count, na, nb, nc = _match_kernel.mappings()(*args, out)
    if count < 0:
        raise MatchBudgetError(
            f"lattice-mapping search: {na} x {nb} x {nc} = {na * nb * nc} vector triples > max_triples={max_triples}"
        )
    if count > max_mappings:
        raise MatchBudgetError(f"{count} lattice mappings > max_mappings={max_mappings}")
    if count > len(out):  # more than the first buffer held: run again with room for all
        out = np.empty((count, 3, 3), dtype=np.int64)
        _match_kernel.mappings()(*args, out)
    return out[:count].copy()


# --------------------------------------------------------------------------- site matching
@dataclass
class _Best:
    rms: float = math.inf
    max_dist: float = math.nan
    any_fit: bool = False
    k: int = -1
    sigma: NDArray[np.int64] | None = None
    dist: NDArray[np.float64] | None = None
    n_candidates: int = 0


def _assign(C: NDArray[np.float64]) -> NDArray[np.int64] | None:
    """Minimum-cost perfect assignment of rows to columns; None if it must use an excluded pair."""
    nearest = np.argmin(C, axis=1)
    if len(np.unique(nearest)) == len(nearest):  # every row at its minimum: optimal
        sigma = nearest
    else:
        from scipy.optimize import linear_sum_assignment

        _, sigma = linear_sum_assignment(C)
    if np.any(C[np.arange(len(sigma)), sigma] >= _EXCLUDED):
        return None
    return np.asarray(sigma, dtype=np.int64)


@dataclass
class _Setup:
    """What every candidate of one pair shares (lattice mappings ``k``, anchor pairs ``(P, Q)``)."""

    fa_k: NDArray[np.float64]  # (K, n, 3) a's sites in the basis M_k @ La, wrapped
    G: NDArray[np.float64]  # (K, 3, 3) Gram matrix of the averaged lattice
    ell: NDArray[np.float64]  # (K,) (V / N) ** (1/3) of the averaged lattice
    ftol: NDArray[np.float64]  # (K, 3) per-axis fractional acceptance
    P: NDArray[np.int64]
    Q: NDArray[np.int64]


def _setup(
    fa: NDArray[np.float64], za: NDArray[np.int64], zb: NDArray[np.int64], M: NDArray[np.int64],
    La: NDArray[np.float64], Lb: NDArray[np.float64], *, stol: float, anchors: str, max_candidates: int,
) -> _Setup:
    n = len(zb)
    K = len(M)
    Mf = M.astype(np.float64)
    latt = Mf @ La  # (K, 3, 3)
    fa_k = _wrap(np.einsum("nj,kji->kni", fa, np.linalg.inv(Mf)))  # (K, n, 3)
    G = _gram_from_params((_params(latt) + _params(Lb)[None, :]) / 2)  # averaged lattice (K, 3, 3)
    vol = np.sqrt(np.linalg.det(G))
    ell = (vol / n) ** (1.0 / 3.0)
    ftol = 2.0 * stol * ell[:, None] * np.sqrt(np.diagonal(np.linalg.inv(G), axis1=-2, axis2=-1))  # (K, 3)
    P, Q = _anchors(za, zb, anchors, K, max_candidates)
    return _Setup(np.ascontiguousarray(fa_k), G, ell, ftol, P, Q)


def _anchors(za: NDArray[np.int64], zb: NDArray[np.int64], anchors: str, K: int,
             max_candidates: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Anchor pairs ``(P, Q)``: the first (``"one"``) or every (``"all"``) site of b's least frequent
    species (the first such species in b's order) against every site of a of that species."""
    if int(zb.min()) >= 0 and int(zb.max()) < 256:
        cnt = np.bincount(zb)[zb]  # count of each site's species
        p_all = np.flatnonzero(cnt == cnt.min())
    else:
        species, counts = np.unique(zb, return_counts=True)
        p_all = np.flatnonzero(np.isin(zb, species[counts == counts.min()]))
    p_first = p_all[:1] if anchors == "one" else p_all[zb[p_all] == zb[p_all[0]]]
    Q1 = np.flatnonzero(za == zb[p_all[0]])
    n_anchor = len(p_first) * len(Q1)
    if K * n_anchor > max_candidates:
        raise MatchBudgetError(
            f"{K} lattice mappings x {n_anchor} translations = {K * n_anchor} > max_candidates={max_candidates}"
        )
    return np.repeat(p_first, len(Q1)).astype(np.int64), np.tile(Q1, len(p_first)).astype(np.int64)


def _setup_compiled(
    fa: NDArray[np.float64], za: NDArray[np.int64], zb: NDArray[np.int64], M: NDArray[np.int64],
    La: NDArray[np.float64], Lb: NDArray[np.float64], *, stol: float, anchors: str, max_candidates: int,
) -> _Setup:
    """:func:`_setup` through the compiled kernel."""
    from latticesym.structure import _match_kernel

    K, n = len(M), len(zb)
    P, Q = _anchors(za, zb, anchors, K, max_candidates)
    fa_k = np.empty((K, n, 3))
    G = np.empty((K, 3, 3))
    ell = np.empty(K)
    ftol = np.empty((K, 3))
    _match_kernel.setup()(np.ascontiguousarray(fa, dtype=np.float64), np.ascontiguousarray(M, dtype=np.int64),
                          np.ascontiguousarray(La, dtype=np.float64), _params(Lb), float(stol), fa_k, G, ell, ftol)
    return _Setup(fa_k, G, ell, ftol, P, Q)


def _finish(best: _Best, k: int, sigma: NDArray[np.int64], v: NDArray[np.float64], S: _Setup, stol: float) -> None:
    """Score one assigned candidate (``v``: frac displacements b_i -> a_sigma(i)) into ``best``."""
    v = v - v.mean(axis=0)
    dist = np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", v, S.G[k], v), 0.0)) / S.ell[k]
    dmax = float(dist.max())
    rms = float(np.sqrt(np.mean(dist**2)))
    if dmax < stol:
        best.any_fit = True
    if rms < best.rms:
        best.rms, best.max_dist, best.k, best.sigma, best.dist = rms, dmax, k, sigma, dist


def _candidate_costs(
    S: _Setup, k: int, P: NDArray[np.int64], Q: NDArray[np.int64], fb: NDArray[np.float64],
    same: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """For mapping ``k`` and anchors ``(P, Q)``: wrapped displacements ``W`` (A, n_b, n_a, 3) and
    the allowed pairs (same species, within ``ftol`` on every axis)."""
    D = S.fa_k[k][None, :, :] - fb[:, None, :]  # (n_b, n_a, 3): b_i -> a_j
    T = D[None, :, :, :] - D[P, Q][:, None, None, :]  # (A, n_b, n_a, 3)
    W = T - np.round(T)
    allowed = np.all(np.abs(W) <= S.ftol[k], axis=-1) & same[None]
    return W, allowed


def _images_cost(W: NDArray[np.float64], allowed: NDArray[np.bool_], G: NDArray[np.float64]) -> tuple[
        NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    Wp = W[..., None, :] + _IMAGES  # (..., n_b, n_a, 27, 3)
    d2 = np.einsum("...i,ij,...j->...", Wp, G, Wp)
    kmin = np.argmin(d2, axis=-1)
    d2min = np.take_along_axis(d2, kmin[..., None], axis=-1)[..., 0]
    return np.where(allowed, d2min, _EXCLUDED), Wp, kmin


def _site_search_numpy(
    fa: NDArray[np.float64], za: NDArray[np.int64], fb: NDArray[np.float64], zb: NDArray[np.int64],
    M: NDArray[np.int64], La: NDArray[np.float64], Lb: NDArray[np.float64], *, stol: float, anchors: str,
    max_candidates: int,
) -> _Best:
    """Reference implementation of the site search in numpy (used where numba is missing)."""
    S = _setup(fa, za, zb, M, La, Lb, stol=stol, anchors=anchors, max_candidates=max_candidates)
    n = len(zb)
    same = za[None, :] == zb[:, None]  # (n_b, n_a)
    best = _Best()
    rows = np.arange(n)
    for k in range(len(M)):
        W, allowed = _candidate_costs(S, k, S.P, S.Q, fb, same)
        passing = np.flatnonzero(np.all(np.any(allowed, axis=-1), axis=-1))
        if not len(passing):
            continue
        best.n_candidates += len(passing)
        cost, Wp, kmin = _images_cost(W[passing], allowed[passing], S.G[k])
        for c in range(len(passing)):
            sigma = _assign(cost[c])
            if sigma is None:
                continue
            _finish(best, k, sigma, Wp[c, rows, sigma, kmin[c, rows, sigma]], S, stol)
    return best


#: ``"numba"`` (the compiled scan of :mod:`latticesym.structure._match_kernel`, when numba imports)
#: or ``"numpy"`` (:func:`_site_search_numpy`); the two agree (tested).
SITE_BACKEND = "numba"


def _site_search(
    fa: NDArray[np.float64], za: NDArray[np.int64], fb: NDArray[np.float64], zb: NDArray[np.int64],
    M: NDArray[np.int64], La: NDArray[np.float64], Lb: NDArray[np.float64], *, stol: float, anchors: str,
    max_candidates: int,
) -> _Best:
    """All (lattice mapping, anchor translation) candidates; the best by rms and the ``fit`` flag."""
    from latticesym.structure import _match_kernel

    if not _use_kernels():
        return _site_search_numpy(fa, za, fb, zb, M, La, Lb, stol=stol, anchors=anchors,
                                  max_candidates=max_candidates)
    S = _setup_compiled(fa, za, zb, M, La, Lb, stol=stol, anchors=anchors, max_candidates=max_candidates)
    fb = np.ascontiguousarray(fb, dtype=np.float64)
    za = np.ascontiguousarray(za, dtype=np.int64)
    zb = np.ascontiguousarray(zb, dtype=np.int64)
    A = len(S.P)
    n = len(zb)
    ftol, G = np.ascontiguousarray(S.ftol), np.ascontiguousarray(S.G)
    # the scan keeps the cost matrices of up to `cap` conflicting candidates (bounded memory)
    cap = max(1, min(len(M) * A, _CONFLICT_BUFFER // (n * n)))
    cost = np.empty((cap + 1, n, n))
    img = np.empty((cap + 1, n, n), dtype=np.int8)
    b_rms, b_max, b_idx, b_sigma, b_dist, any_fit, n_pass, conflicts, n_conf = _match_kernel.scan()(
        S.fa_k, fb, za, zb, S.P, S.Q, ftol, G, np.ascontiguousarray(S.ell), float(stol), _IMAGES, cost, img,
    )
    best_vals = np.array([b_rms, b_max, float(b_idx)])
    if n_conf:  # exact assignments (scipy) for the candidates whose nearest partners collide
        from scipy.optimize import linear_sum_assignment

        finish, bounds = _match_kernel.finish(), _match_kernel.bounds()
        for lo in range(0, n_conf, cap):
            part = np.ascontiguousarray(conflicts[lo:min(n_conf, lo + cap)])
            if lo:  # past the scan's buffer: build these cost matrices again
                _match_kernel.costs()(S.fa_k, fb, za, zb, S.P, S.Q, ftol, G, _IMAGES, part, A, cost, img)
            # provable lower bounds on each candidate's rms and largest distance (see
            # _match_kernel.bounds_python): a candidate that can neither beat the best rms so far
            # nor fit is never assigned; the most promising go first
            lb_rms = np.empty(len(part))
            lb_max = np.empty(len(part))
            bounds(cost, len(part), S.ell, A, part, lb_rms, lb_max)
            lb_rms *= _BOUND_SCALE
            lb_max *= _BOUND_SCALE
            order = np.argsort(lb_rms, kind="stable")
            for start in range(0, len(order), _ASSIGN_BATCH):
                todo = order[start:start + _ASSIGN_BATCH]
                rms_ok = lb_rms[todo] <= best_vals[0] * (1 + _BOUND_MARGIN)
                todo = todo[rms_ok | (False if any_fit else lb_max[todo] < stol * (1 + _BOUND_MARGIN))]
                if not len(todo):
                    if not rms_ok.all() and any_fit:  # sorted: no later candidate can beat the best
                        break
                    continue
                sig = np.empty((len(todo), n), dtype=np.int64)
                for r, t in enumerate(todo.tolist()):
                    sig[r] = linear_sum_assignment(cost[t])[1]
                any_fit |= finish(S.fa_k, fb, S.P, S.Q, G, S.ell, _IMAGES, float(stol), A, part[todo],
                                  img[todo], sig, best_vals, b_sigma, b_dist)
    best = _Best(n_candidates=int(n_pass), any_fit=bool(any_fit))
    if best_vals[2] >= 0:
        idx = int(best_vals[2])
        best.rms, best.max_dist, best.k, best.sigma, best.dist = (float(best_vals[0]), float(best_vals[1]), idx // A,
                                                                  b_sigma, b_dist)
    return best


def _procrustes(A: NDArray[np.float64], B: NDArray[np.float64]) -> NDArray[np.float64]:
    """Orthogonal ``Q`` minimising ``||A @ Q.T - B||``."""
    U, _, Vt = np.linalg.svd(A.T @ B)
    return (U @ Vt).T


def _empty_result(reason: str, La: NDArray[np.float64], Lb: NDArray[np.float64], **kw: Any) -> MatchResult:
    return MatchResult(
        matched=False, rms=math.nan, max_dist=math.nan, matched_by_rms=False, reason=reason,
        transform=np.zeros((3, 3), dtype=np.int64), rotation=np.zeros((3, 3)),
        mapping=np.zeros(0, dtype=np.int64), distances=np.zeros(0), lattice_a=La, lattice_b=Lb, **kw,
    )


def _reduced_formula(z: NDArray[np.int64]) -> tuple[tuple[int, int], ...]:
    if len(z) and int(z.min()) >= 0 and int(z.max()) < 256:
        cnt_all = np.bincount(z)
        sp = np.flatnonzero(cnt_all)
        cnt = cnt_all[sp]
    else:
        sp, cnt = np.unique(z, return_counts=True)
    g = reduce(math.gcd, cnt.tolist()) if len(cnt) else 1
    return tuple((int(s), int(c) // g) for s, c in zip(sp.tolist(), cnt.tolist()))


def _check_tol(ltol: float, stol: float, angle_tol: float) -> None:
    for name, v in (("ltol", ltol), ("stol", stol), ("angle_tol", angle_tol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise LatticeError(f"{name} must be a finite number > 0, got {v!r}")


def match_prepared(
    A: PreparedStructure,
    B: PreparedStructure,
    *,
    ltol: float = 0.3,
    stol: float = 0.5,
    angle_tol: float = 10.0,
    scale: bool = True,
    anchors: str = "one",
    max_points: int = MAX_POINTS,
    max_triples: int = MAX_TRIPLES,
    max_mappings: int = MAX_MAPPINGS,
    max_candidates: int = MAX_CANDIDATES,
    _formula_checked: bool = False,
) -> MatchResult:
    """:func:`match` on structures already passed through :func:`prepare_structure`."""
    prim = A.primitive_reduced or B.primitive_reduced
    out_a = A.lattice if prim else A.input_lattice
    out_b = B.lattice if prim else B.input_lattice
    if A.num_sites == 0 or B.num_sites == 0:
        return _empty_result("empty", out_a, out_b, primitive_reduced=prim)
    if not _formula_checked and _reduced_formula(A.species) != _reduced_formula(B.species):
        return _empty_result("composition", out_a, out_b, primitive_reduced=prim)
    if A.num_sites != B.num_sites:
        return _empty_result("site count", out_a, out_b, primitive_reduced=prim)
    La, Lb = A.lattice, B.lattice
    va, vb = abs(np.linalg.det(La)), abs(np.linalg.det(Lb))
    if scale:
        ratio = (vb / va) ** (1.0 / 6.0)
        La, Lb = La * ratio, Lb / ratio
    M = lattice_mappings(La, Lb, ltol=ltol, angle_tol=angle_tol, max_points=max_points,
                         max_triples=max_triples, max_mappings=max_mappings)
    length_scale = float((vb / va) ** (1.0 / 3.0)) if scale else 1.0
    if len(M) == 0:
        return _empty_result("no lattice mapping", out_a, out_b, length_scale=length_scale, primitive_reduced=prim)
    best = _site_search(A.frac, A.species, B.frac, B.species, M, La, Lb, stol=stol, anchors=anchors,
                        max_candidates=max_candidates)
    if best.sigma is None or best.dist is None:
        return _empty_result("sites", out_a, out_b, length_scale=length_scale, primitive_reduced=prim,
                             n_lattice_mappings=len(M), n_candidates=best.n_candidates)
    Mk = M[best.k]
    if prim:
        transform = Mk
    else:  # back to the input bases: inv(T_b) @ M @ T_a (unimodular, so exactly integer)
        Tb_inv = _unimodular_inverse(B.transform)
        transform = Tb_inv @ Mk @ A.transform
    rotation = _procrustes(length_scale * transform.astype(np.float64) @ out_a, out_b)
    rms_ok = best.rms < stol
    reason = "matched" if best.any_fit else ("rms only" if rms_ok else "sites")
    return MatchResult(
        matched=best.any_fit, rms=best.rms, max_dist=best.max_dist, matched_by_rms=rms_ok, reason=reason,
        transform=transform, rotation=rotation, mapping=A.index[best.sigma][np.argsort(B.index, kind="stable")]
        if prim else A.index[best.sigma], distances=best.dist, lattice_a=out_a, lattice_b=out_b,
        length_scale=length_scale, primitive_reduced=prim, n_lattice_mappings=len(M), n_candidates=best.n_candidates,
    )


_Arrays = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]


def _early_verdict(a: _Arrays, b: _Arrays) -> MatchResult | None:
    """``"empty"`` / ``"composition"`` before any reduction (the reduced formula is unchanged by the
    primitive reduction, which divides every species count by the same index)."""
    if len(a[2]) == 0 or len(b[2]) == 0:
        return _empty_result("empty", a[0], b[0])
    if _reduced_formula(a[2]) != _reduced_formula(b[2]):
        return _empty_result("composition", a[0], b[0])
    return None


def _converted(s: Any, what: str, seen: dict[tuple[int, str], tuple[Any, _Arrays]] | None) -> _Arrays:
    """:func:`_as_arrays`, once per input object of a batch chunk (``seen`` keeps the object alive,
    so its ``id`` is not reused while the chunk runs; an error is raised again on each use)."""
    if seen is None:
        return _as_arrays(s, what)
    key = (id(s), what)
    got = seen.get(key)
    if got is None or got[0] is not s:
        got = seen[key] = (s, _as_arrays(s, what))
    return got[1]


def _prepare_cached(
    arr: _Arrays, primitive_cell: bool, primitive_tol: float, what: str, cache: dict[bytes, PreparedStructure] | None
) -> PreparedStructure:
    """:func:`prepare_structure` once per distinct input (``cache`` keyed by the exact bytes)."""
    if cache is None:
        return _prepare_arrays(*arr, primitive_cell=primitive_cell, primitive_tol=primitive_tol, what=what)
    L, f, z = arr
    key = b"|".join((L.tobytes(), f.tobytes(), z.tobytes(), repr((primitive_cell, primitive_tol)).encode()))
    got = cache.get(key)
    if got is None:
        got = cache[key] = _prepare_arrays(L, f, z, primitive_cell=primitive_cell, primitive_tol=primitive_tol,
                                           what=what)
    return got


def match(
    a: Any,
    b: Any,
    *,
    ltol: float = 0.3,
    stol: float = 0.5,
    angle_tol: float = 10.0,
    primitive_cell: bool = True,
    scale: bool = True,
    anchors: str = "one",
    primitive_tol: float = 0.25,
    max_points: int = MAX_POINTS,
    max_triples: int = MAX_TRIPLES,
    max_mappings: int = MAX_MAPPINGS,
    max_candidates: int = MAX_CANDIDATES,
    _cache: dict[bytes, PreparedStructure] | None = None,
    _seen: dict[tuple[int, str], tuple[Any, _Arrays]] | None = None,
) -> MatchResult:
    """Match structure ``b`` onto structure ``a`` (StructureMatcher semantics, see the module doc).

    Parameters
    ----------
    a, b : structure
        ``(lattice, frac, species)`` with rows as basis vectors (Angstrom), fractional coordinates
        and atomic numbers or element symbols; or a :class:`latticesym.datasets.Structure`, a
        pymatgen ``Structure``, ASE ``Atoms``.
    ltol : float
        Fractional length tolerance: a mapped length ``l`` must satisfy
        ``1/(1+ltol) < l / l_b < 1 + ltol``.
    stol : float
        Site tolerance in units of the averaged free length per atom ``(V / N) ** (1/3)``.
    angle_tol : float
        Angle tolerance in degrees (``|angle - angle_b| <= angle_tol``).
    primitive_cell : bool
        Reduce both structures to primitive cells first (pymatgen's default).
    scale : bool
        Compare at the common volume ``sqrt(V_a V_b)``.
    anchors : {"one", "all"}
        Candidate translations from the first atom of b's least frequent species (pymatgen's
        choice) or from every atom of that species (independent of b's atom order; slower).
    primitive_tol : float
        Per-coordinate tolerance (Angstrom) of the primitive-cell search.
    max_points, max_triples, max_mappings, max_candidates : int
        Per-pair work bounds; past one a :class:`MatchBudgetError` is raised.

    Returns
    -------
    MatchResult

    Raises
    ------
    LatticeShapeError, NonFiniteLatticeError, SingularLatticeError
        Bad input (the message names the structure and the numbers).
    MatchBudgetError
        The pair needs more work than the bounds allow (e.g. a needle-like cell).

    Examples
    --------
    >>> import numpy as np
    >>> L = np.diag([3.0, 4.0, 5.0]); f = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    >>> M = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])          # another basis of the same lattice
    >>> r = match((L, f, [11, 17]), (M @ L, f @ np.linalg.inv(M), [11, 17]))
    >>> bool(r.matched), round(r.rms, 12)
    (True, 0.0)
    """
    _check_tol(ltol, stol, angle_tol)
    if anchors not in ("one", "all"):
        raise LatticeError(f"anchors must be 'one' or 'all', got {anchors!r}")
    arr_a, arr_b = _converted(a, "a", _seen), _converted(b, "b", _seen)
    early = _early_verdict(arr_a, arr_b)
    if early is not None:
        return early
    A = _prepare_cached(arr_a, primitive_cell, primitive_tol, "a", _cache)
    B = _prepare_cached(arr_b, primitive_cell, primitive_tol, "b", _cache)
    return match_prepared(A, B, ltol=ltol, stol=stol, angle_tol=angle_tol, scale=scale, anchors=anchors,
                          max_points=max_points, max_triples=max_triples, max_mappings=max_mappings,
                          max_candidates=max_candidates, _formula_checked=True)


# --------------------------------------------------------------------------- batches
def structures_from_ragged(
    lattices: Any, frac: Any, species: Any, n_atoms: Any
) -> list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[Any]]]:
    """Split DiffCSP-style ragged tensors (``(B,3,3)``, ``(N,3)``, ``(N,)``, ``(B,)``) into structures."""
    L = np.asarray(lattices, dtype=np.float64)
    f = np.asarray(frac, dtype=np.float64)
    z = np.asarray(species)
    n = np.asarray(n_atoms).astype(np.int64)
    if L.ndim != 3 or L.shape[1:] != (3, 3):
        raise LatticeShapeError(f"lattices have shape {L.shape}, expected (B, 3, 3)")
    if n.shape != (len(L),) or np.any(n < 0) or int(n.sum()) != len(f) or len(z) != len(f):
        raise LatticeShapeError(
            f"ragged layout: {len(L)} lattices, n_atoms shape {n.shape} summing to {int(n.sum())}, "
            f"{len(f)} frac rows, {len(z)} species"
        )
    off = np.concatenate([[0], np.cumsum(n)])
    return [(L[i], f[off[i]:off[i + 1]], z[off[i]:off[i + 1]]) for i in range(len(L))]


def _match_chunk(pairs: Sequence[tuple[Any, Any]], kwargs: dict[str, Any]) -> list[tuple[Any, ...]]:
    out = []
    cache: dict[bytes, PreparedStructure] = {}  # a reference shared by many pairs is prepared once
    seen: dict[tuple[int, str], tuple[Any, _Arrays]] = {}  # ... and validated once
    for a, b in pairs:
        try:
            r = match(a, b, _cache=cache, _seen=seen, **kwargs)
            out.append((r.matched, r.rms, r.max_dist, r.matched_by_rms, r.reason, r.n_lattice_mappings))
        except LatticeError as exc:
            out.append((False, math.nan, math.nan, False, f"error: {type(exc).__name__}: {exc}", 0))
    return out


_WARM: list[bool] = []


def _warm_kernels() -> None:
    """Load every compiled kernel of the match path in this process (once): a small pair whose
    candidates collide runs the primitive search, mappings, setup, scan, bounds and finish."""
    if _WARM or not _use_kernels():
        return
    L = np.array([[3.1, 0.0, 0.0], [0.4, 3.7, 0.0], [0.3, -0.5, 4.3]])
    f = np.array([[0.0, 0.0, 0.0], [0.31, 0.42, 0.23], [0.61, 0.17, 0.72], [0.12, 0.77, 0.52]])
    g = f + np.array([[0.05, -0.04, 0.03], [-0.06, 0.05, 0.02], [0.04, 0.03, -0.05], [-0.03, -0.06, 0.04]])
    z = np.full(4, 6)
    match((L, f, z), (L, g, z))
    _WARM.append(True)


def match_batch(
    a: Sequence[Any],
    b: Sequence[Any],
    *,
    workers: int | None = None,
    dask_client: Any = None,
    chunk_size: int = 64,
    **kwargs: Any,
) -> MatchBatch:
    """:func:`match` over many pairs ``(a[k], b[k])`` (ragged structures), on all cores or Dask.

    Parameters
    ----------
    a, b : sequences of structures
        Equal lengths (use :func:`structures_from_ragged` for DiffCSP-style tensors).
    workers : int, optional
        Processes (default: the machine's CPU count; 1 runs in this process).
    dask_client : distributed.Client, optional
        Run the chunks on this Dask cluster instead (the executor ``latticesym.audit`` uses).
    chunk_size : int
        Pairs per task.
    **kwargs
        Passed to :func:`match` (``ltol``, ``stol``, ``angle_tol``, ``primitive_cell``, ...).

    Returns
    -------
    MatchBatch
        A pair whose input is invalid (or exceeds a work bound) is recorded as an error, not raised.
    """
    from latticesym.audit import map_chunks

    if len(a) != len(b):
        raise LatticeShapeError(f"match_batch: {len(a)} structures a but {len(b)} structures b")
    pairs = list(zip(a, b))
    chunks = [pairs[i:i + chunk_size] for i in range(0, len(pairs), chunk_size)]
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    func: Callable[[Any], Any] = partial(_match_chunk, kwargs=kwargs)
    if dask_client is None and (workers <= 1 or len(chunks) <= 1):
        parts = [func(c) for c in chunks]
    else:
        if dask_client is None:
            _warm_kernels()  # forked workers inherit the loaded kernels (each would load them: ~1 s)
        parts = map_chunks(func, chunks, workers=workers, dask_client=dask_client, sizes=[len(c) for c in chunks])
    rows = [r for part in parts for r in part]
    return MatchBatch(
        matched=np.array([r[0] for r in rows], dtype=bool),
        rms=np.array([r[1] for r in rows], dtype=np.float64),
        max_dist=np.array([r[2] for r in rows], dtype=np.float64),
        matched_by_rms=np.array([r[3] for r in rows], dtype=bool),
        reason=tuple(r[4] for r in rows),
        n_lattice_mappings=np.array([r[5] for r in rows], dtype=np.int64),
    )
