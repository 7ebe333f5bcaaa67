r"""CSP metrics: match rate and RMSE the way DiffCSP's evaluation computes them, plus lattice errors.

Every CSP paper (CDVAE, DiffCSP, EquiCSP, FlowMM) reports two numbers for a set of ``n`` test
structures (references) and the structures a model predicted for them.  DiffCSP's
``scripts/compute_metrics.py`` (``RecEval``, one sample; ``RecEvalBatch``, best of ``k``) defines
them with pymatgen's ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``; here each pair goes
through :func:`latticesym.structure.match` (the same tolerance semantics, on latticesym's Niggli
reducer), batched through :func:`latticesym.structure.match_batch`:

.. math::

    r_{ji} = \begin{cases} \mathrm{rms}(P_{ji}, R_i) & P_{ji}\ \text{valid and}\ \mathrm{rms} < \mathrm{stol}\\
             \varnothing & \text{otherwise} \end{cases}
    \qquad
    r_i = \min_{j < k} r_{ji}, \qquad
    \text{match rate} = \frac{|\{i : r_i \ne \varnothing\}|}{n}, \qquad
    \text{RMSE} = \operatorname{mean}_{i : r_i \ne \varnothing} r_i ,

with :math:`P_{ji}` the ``j``-th sample for reference :math:`R_i` and ``rms`` pymatgen's
``get_rms_dist`` (site distances in units of :math:`(V/N)^{1/3}` of the averaged lattice).  The
match rate divides by *all* references; the RMSE averages over the *matched* ones only.
A prediction is *valid* as in DiffCSP's ``structure_validity``: finite, non-singular lattice, volume
:math:`\ge 0.1\ \text{\AA}^3`, every distance between two distinct sites (minimum image)
:math:`\ge 0.5` Angstrom; an invalid prediction, a pair that raises, or ``rms >= stol`` counts as no
match (DiffCSP's ``None``).  DiffCSP's single-sample ``RecEval`` also requires the reference to be
valid, its ``RecEvalBatch`` does not (``check_references=None`` follows both).  DiffCSP's SMACT
composition check is not applied: in CSP the prediction has the reference's composition, so it
only removes references whose composition SMACT rejects (pass ``reference_mask`` to do that).

The basis-free lattice errors compare the Niggli-reduced cells (unique G6, so no basis or
orientation enters): with :math:`g_R = \mathrm{G6}(\mathrm{niggli}(L_R))` and :math:`g_P` the G6 of
the prediction's reduced cell aligned with the reference's (the closest of
:math:`M\,\mathrm{niggli}(L_P)`, :math:`M` integer with entries in :math:`\{-1, 0, 1\}`,
:math:`\det M = \pm 1`)

.. math::

    e_{\mathrm{G6}} = \frac{\lVert g_P - g_R \rVert_2}{\lVert g_R \rVert_2}, \qquad
    \rho_V = \frac{V_P}{V_R}, \qquad
    e_{a} = \frac{|a_P - a_R|}{a_R}\ (a, b, c), \qquad
    e_{\alpha} = |\alpha_P - \alpha_R|\ (\alpha, \beta, \gamma;\ \text{degrees})

of the aligned cells, for every prediction whose lattice is finite and non-singular.  The
alignment matters: near a Niggli boundary the reduced G6 of two nearby lattices can differ
discontinuously (Andrews & Bernstein 2014); ``g6_rel_reduced`` keeps the unaligned difference.

References
----------
Jiao, R. et al. Crystal Structure Prediction by Joint Equivariant Diffusion. NeurIPS 2023 (DiffCSP),
``scripts/compute_metrics.py``.
Xie, T. et al. Crystal Diffusion Variational Autoencoder. ICLR 2022 (CDVAE), ``eval_utils.py``.
Ong, S. P. et al. pymatgen. Comput. Mater. Sci. 68, 314 (2013) (StructureMatcher).
Andrews, L. C. & Bernstein, H. J. J. Appl. Cryst. 47, 346 (2014) (G6 boundaries, NCDist).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.errors import LatticeError, LatticeShapeError

__all__ = [
    "CSPMetrics",
    "LatticeErrors",
    "csp_metrics",
    "lattice_errors",
    "ragged_to_structures",
    "structure_validity",
]

#: DiffCSP's ``structure_validity`` thresholds: minimum distance between sites (Angstrom), volume (A^3).
MIN_DISTANCE = 0.5
MIN_VOLUME = 0.1

_IMAGES = np.array(list(product((-1, 0, 1), repeat=3)), dtype=np.float64)


# --------------------------------------------------------------------------- input
def _is_structure(x: Any) -> bool:
    """A single structure (tuple / Cell / object with a lattice), not a sequence of structures."""
    if hasattr(x, "lattice") or hasattr(x, "cell") or isinstance(x, Mapping):
        return True
    if isinstance(x, (tuple, list)) and len(x) in (3, 4):
        first = np.asarray(x[0], dtype=object)
        return first.shape == (3, 3)
    return False


def _cell(x: Any, what: str) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """``(lattice, frac, species)`` of any structure :func:`latticesym.adapters.as_cell` accepts."""
    from latticesym.adapters import as_cell

    if isinstance(x, (tuple, list)) and len(x) == 3 and np.asarray(x[2]).dtype.kind in "USO":
        from latticesym.structure._layout import species_keys  # element symbols -> atomic numbers

        try:
            x = (x[0], x[1], species_keys(x[2], len(np.asarray(x[2])))[1])
        except (LatticeError, TypeError) as exc:
            raise LatticeShapeError(f"{what}: species {exc}") from exc
    try:
        c = as_cell(x)
    except (TypeError, KeyError, IndexError) as exc:
        raise LatticeShapeError(f"{what}: not a structure ({type(x).__name__}: {exc})") from exc
    except LatticeError as exc:
        raise type(exc)(f"{what}: {exc}") from exc
    return np.asarray(c.lattice, np.float64), np.asarray(c.frac_coords, np.float64), np.asarray(c.species, np.int64)


def ragged_to_structures(arrays: Mapping[str, Any]) -> list[list[tuple[Any, Any, Any]]]:
    """DiffCSP-style tensors to ``k`` lists of ``n`` structures ``(lattice, frac, species)``.

    Parameters
    ----------
    arrays : mapping
        ``frac_coords (N, 3)``, ``atom_types (N,)`` (atomic numbers, or one-hot / logits
        ``(N, T)`` turned into ``argmax + 1`` as DiffCSP does), ``num_atoms (n,)`` and either
        ``lattices (n, 3, 3)`` (rows) or ``lengths``/``angles (n, 3)`` (Angstrom, degrees;
        pymatgen's ``Lattice.from_parameters`` frame).  A leading sample axis ``k`` on every array
        (``frac_coords (k, N, 3)``, ...) holds ``k`` samples per structure (DiffCSP's
        ``--multi_eval`` layout).  Torch tensors are accepted.

    Returns
    -------
    list of k lists of n tuples
        Non-finite entries are kept (they make the prediction invalid, not the call fail).
    """
    from latticesym.adapters import _numpy

    def get(name: str) -> Any:
        v = arrays.get(name) if isinstance(arrays, Mapping) else getattr(arrays, name, None)
        return None if v is None else np.asarray(_numpy(v))

    frac, types, counts = get("frac_coords"), get("atom_types"), get("num_atoms")
    lattices, lengths, angles = get("lattices"), get("lengths"), get("angles")
    if frac is None or types is None or counts is None:
        raise LatticeShapeError("DiffCSP arrays need frac_coords, atom_types and num_atoms")
    if lattices is None and (lengths is None or angles is None):
        raise LatticeShapeError("DiffCSP arrays need lattices, or lengths and angles")
    batched = frac.ndim == 3
    if not batched:
        frac, counts = frac[None], counts[None]
        types = types[None]
        lattices = None if lattices is None else lattices[None]
        lengths = None if lengths is None else lengths[None]
        angles = None if angles is None else angles[None]
    k = frac.shape[0]
    out: list[list[tuple[Any, Any, Any]]] = []
    for j in range(k):
        f = np.asarray(frac[j], dtype=np.float64)
        t = np.asarray(types[j])
        if t.ndim == 2:  # one-hot / logits over element types, as DiffCSP's Crystal reads them
            t = np.argmax(t, axis=-1) + 1
        n = np.asarray(counts[j]).astype(np.int64).reshape(-1)
        if lattices is not None:
            L = np.asarray(lattices[j], dtype=np.float64).reshape(-1, 3, 3)
        else:
            assert lengths is not None and angles is not None
            L = _lattice_from_parameters(np.asarray(lengths[j], np.float64).reshape(-1, 3),
                                         np.asarray(angles[j], np.float64).reshape(-1, 3))
        if f.ndim != 2 or f.shape[1] != 3 or len(t) != len(f) or len(L) != len(n) or int(n.sum()) != len(f) \
                or np.any(n < 0):
            raise LatticeShapeError(
                f"sample {j}: ragged layout does not add up: {len(L)} lattices, num_atoms {n.shape} summing to "
                f"{int(n.sum())}, frac_coords {f.shape}, atom_types {t.shape}")
        off = np.concatenate([[0], np.cumsum(n)])
        out.append([(L[i], f[off[i]:off[i + 1]], t[off[i]:off[i + 1]].astype(np.int64)) for i in range(len(n))])
    return out


def _lattice_from_parameters(lengths: NDArray[np.float64], angles: NDArray[np.float64]) -> NDArray[np.float64]:
    """pymatgen's ``Lattice.from_parameters`` frame; NaN rows where the parameters give no lattice."""
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b, c = lengths.T
        al, be, ga = np.radians(angles).T
        ca, cb, cg = np.cos(al), np.cos(be), np.cos(ga)
        sa, sb = np.sin(al), np.sin(be)
        val = np.clip((ca * cb - cg) / (sa * sb), -1.0, 1.0)
        gs = np.arccos(val)
        L = np.zeros((len(a), 3, 3))
        L[:, 0] = np.stack([a * sb, np.zeros_like(a), a * cb], axis=-1)
        L[:, 1] = np.stack([-b * sa * np.cos(gs), b * sa * np.sin(gs), b * ca], axis=-1)
        L[:, 2] = np.stack([np.zeros_like(c), np.zeros_like(c), c], axis=-1)
    return L


def _samples(predictions: Any) -> list[list[Any]]:
    """Predictions as ``k`` lists of ``n`` structures."""
    if isinstance(predictions, Mapping) or hasattr(predictions, "num_atoms"):
        return ragged_to_structures(predictions)
    preds = list(predictions)
    if not preds:
        return [[]]
    if all(_is_structure(p) for p in preds):
        return [preds]
    if all(isinstance(p, Sequence) and not _is_structure(p) for p in preds):
        return [list(p) for p in preds]
    raise LatticeShapeError(
        "predictions must be a sequence of structures, a sequence of k sequences of structures "
        "(samples x references) or DiffCSP-style arrays")


# --------------------------------------------------------------------------- per-structure checks
@dataclass(frozen=True)
class _Prepared:
    valid: bool
    reason: str
    g6: NDArray[np.float64]  # reduced G6 (NaN if the lattice cannot be reduced)
    structure: tuple[Any, Any, Any] | None


def _prepare(x: Any, what: str, *, strict: bool) -> _Prepared:
    """Reduced G6 and DiffCSP validity of one structure; ``strict`` raises on unreadable input."""
    from latticesym import niggli_reduce

    nan6 = np.full(6, np.nan)
    if x is None and not strict:  # no prediction for this reference (e.g. a CIF file left out)
        return _Prepared(False, "missing", nan6, None)
    try:
        L, f, z = _cell(x, what)
    except LatticeError:
        if strict:
            raise
        return _Prepared(False, "unreadable", nan6, None)
    if not (np.all(np.isfinite(L)) and np.all(np.isfinite(f))):
        if strict:
            from latticesym.errors import NonFiniteLatticeError

            raise NonFiniteLatticeError(f"{what}: non-finite lattice or coordinates")
        return _Prepared(False, "non-finite", nan6, None)
    r = niggli_reduce(L[None], eps=1e-5, errors="mask")
    if not bool(np.asarray(r.ok)[0]):
        if strict:
            niggli_reduce(L, eps=1e-5)  # raises the typed error
        return _Prepared(False, "singular lattice", nan6, None)
    g6 = np.asarray(r.g6, np.float64)[0]
    ok, reason = structure_validity(np.asarray(r.lattice, np.float64)[0],
                                    f @ _inverse_transform(r.transform), reduced=True)
    return _Prepared(ok, reason, g6, (L, f, z))


def _numbers(x: Any, what: str) -> NDArray[np.float64]:
    """``x`` as a float64 array, or a :class:`LatticeShapeError` naming what it is (ragged, strings)."""
    try:
        return np.asarray(x, np.float64)
    except (TypeError, ValueError) as err:
        raise LatticeShapeError(f"{what} is not an array of numbers ({type(x).__name__}): {err}") from None


def _inverse_transform(transform: Any) -> NDArray[np.float64]:
    r"""Exact inverse of the reducer's det +1 transform ``(1, 3, 3)``, as floats.

    The adjugate in int64 (its products wrap modulo :math:`2^{64}`, but the entries of the inverse,
    which maps the reduced basis back to the given one, fit): a float ``inv`` of a sheared cell's
    transform (entries near 1e11) is numerically singular (fuzz finding, issue 13).
    """
    from latticesym.structure._canonical import integer_inverse

    with np.errstate(over="ignore"):
        return integer_inverse(np.asarray(transform, np.int64).reshape(1, 3, 3))[0].astype(np.float64)


def structure_validity(lattice: Any, frac: Any, *, reduced: bool = False,
                       min_distance: float = MIN_DISTANCE, min_volume: float = MIN_VOLUME) -> tuple[bool, str]:
    r"""DiffCSP / CDVAE ``structure_validity``: volume and smallest distance between distinct sites.

    Valid when :math:`|\det L| \ge` ``min_volume`` (0.1 A^3) and every pair of distinct sites is at
    least ``min_distance`` (0.5 A) apart, minimum image over the 27 neighbouring cells of the
    Niggli-reduced basis (so the answer does not depend on the basis the cell is given in).

    Parameters
    ----------
    lattice : array (3, 3)
        Rows are basis vectors (Angstrom).
    frac : array (n, 3)
        Fractional coordinates in ``lattice``.
    reduced : bool
        ``lattice`` is already Niggli reduced (skip the reduction).

    Returns
    -------
    (bool, str)
        The verdict and ``"valid"``, ``"small volume"``, ``"close sites"``, ``"singular lattice"`` or
        ``"non-finite"`` (NaN or inf in the lattice or the coordinates).

    Raises
    ------
    LatticeShapeError
        ``lattice`` not ``(3, 3)``, ``frac`` not ``(n, 3)``, or entries that are not numbers.

    Examples
    --------
    >>> structure_validity(np.eye(3) * 3.0, [[0, 0, 0], [0.5, 0.5, 0.5]])
    (True, 'valid')
    >>> structure_validity(np.eye(3) * 3.0, [[0, 0, 0], [0.1, 0.0, 0.0]])
    (False, 'close sites')
    """
    L = _numbers(lattice, "lattice")
    f = _numbers(frac, "frac")
    if L.shape != (3, 3):
        raise LatticeShapeError(f"lattice must have shape (3, 3), got {L.shape}")
    if f.size == 0:
        f = f.reshape(0, 3)
    elif f.ndim != 2 or f.shape[1] != 3:
        raise LatticeShapeError(f"frac must have shape (n, 3), got {f.shape}")
    if not (np.all(np.isfinite(L)) and np.all(np.isfinite(f))):
        return False, "non-finite"
    if not reduced:
        from latticesym import niggli_reduce

        r = niggli_reduce(L[None], eps=1e-5, errors="mask")
        if not bool(np.asarray(r.ok)[0]):
            return False, "singular lattice"
        L, f = np.asarray(r.lattice, np.float64)[0], f @ _inverse_transform(r.transform)
    if abs(float(np.linalg.det(L))) < min_volume:
        return False, "small volume"
    n = len(f)
    if n > 1:
        d = f[:, None, :] - f[None, :, :]
        d = d - np.round(d)
        iu = np.triu_indices(n, 1)
        cart = (d[iu][:, None, :] + _IMAGES[None]) @ L  # (pairs, 27, 3)
        if float(np.sqrt(np.min(np.einsum("pki,pki->pk", cart, cart)))) < min_distance:
            return False, "close sites"
    return True, "valid"


# --------------------------------------------------------------------------- lattice errors
@dataclass(frozen=True)
class LatticeErrors:
    r"""Basis-free lattice errors of each prediction against its reference (arrays ``(k, n)``).

    Attributes
    ----------
    g6_rel : ndarray (k, n)
        :math:`\lVert g_P - g_R\rVert / \lVert g_R\rVert`, :math:`g_R` the reference's Niggli-reduced G6
        and :math:`g_P` the prediction's reduced cell aligned with it (:func:`lattice_errors`).
    volume_ratio : ndarray (k, n)
        :math:`V_P / V_R`.
    length_rel : ndarray (k, n, 3)
        :math:`|l_P - l_R| / l_R` of the reduced lengths a, b, c.
    angle_abs : ndarray (k, n, 3)
        :math:`|\theta_P - \theta_R|` of the reduced angles alpha, beta, gamma (degrees).
    g6_rel_reduced : ndarray (k, n)
        The same as ``g6_rel`` without the alignment (discontinuous at Niggli boundaries).

    NaN where the prediction's lattice is non-finite or singular.
    """

    g6_rel: NDArray[np.float64]
    volume_ratio: NDArray[np.float64]
    length_rel: NDArray[np.float64]
    angle_abs: NDArray[np.float64]
    g6_rel_reduced: NDArray[np.float64]

    def summary(self) -> dict[str, float]:
        """Means (and the G6 median) over the predictions with a finite error."""
        def stat(x: NDArray[np.float64], fn: Any) -> float:
            x = x[np.isfinite(x)]
            return float(fn(x)) if x.size else math.nan

        return {
            "n": int(np.isfinite(self.g6_rel).sum()),
            "g6_rel_mean": stat(self.g6_rel, np.mean),
            "g6_rel_median": stat(self.g6_rel, np.median),
            "g6_rel_reduced_mean": stat(self.g6_rel_reduced, np.mean),
            "volume_ratio_mean": stat(self.volume_ratio, np.mean),
            "length_rel_mean": stat(self.length_rel, np.mean),
            "angle_abs_mean_deg": stat(self.angle_abs, np.mean),
        }


def _params(g6: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Reduced lengths, angles (degrees) and volume from G6 vectors ``(..., 6)``."""
    A, B, C, xi, eta, zeta = np.moveaxis(g6, -1, 0)
    with np.errstate(invalid="ignore"):
        lengths = np.sqrt(np.stack([A, B, C], axis=-1))
        a, b, c = np.moveaxis(lengths, -1, 0)
        cos = np.stack([xi / (2 * b * c), eta / (2 * a * c), zeta / (2 * a * b)], axis=-1)
        angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        G = np.stack([np.stack([A, zeta / 2, eta / 2], -1), np.stack([zeta / 2, B, xi / 2], -1),
                      np.stack([eta / 2, xi / 2, C], -1)], -2)
        volume = np.sqrt(np.maximum(np.linalg.det(np.nan_to_num(G)), 0.0))
    volume = np.where(np.isfinite(A), volume, np.nan)
    return lengths, angles, volume


@functools.cache
def _near_transforms() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The 26 non-zero vectors of {-1, 0, 1}^3 and, as index triples into them, the rows of the
    3480 integer matrices with entries in {-1, 0, 1}, ``det = +-1`` and a positive first non-zero
    entry (``M`` and ``-M`` give the same Gram matrix; the 6960 matrices come in such pairs)."""
    V = np.array([v for v in product((-1, 0, 1), repeat=3) if any(v)], dtype=np.float64)
    ijk = np.array(list(product(range(len(V)), repeat=3)), dtype=np.int64)
    M = V[ijk].reshape(-1, 9)
    first = M[np.arange(len(M)), np.argmax(M != 0, axis=1)]
    keep = (np.abs(np.rint(np.linalg.det(V[ijk]))) == 1) & (first > 0)
    return V, ijk[keep]


def _gram(g6: NDArray[np.float64]) -> NDArray[np.float64]:
    A, B, C, xi, eta, zeta = np.moveaxis(g6, -1, 0)
    return np.stack([np.stack([A, zeta / 2, eta / 2], -1), np.stack([zeta / 2, B, xi / 2], -1),
                     np.stack([eta / 2, xi / 2, C], -1)], -2)


def _aligned_g6(P: NDArray[np.float64], R: NDArray[np.float64], chunk: int = 256) -> NDArray[np.float64]:
    r"""For each pair, the G6 of ``M G_P M^T`` closest to ``R`` over the near transforms ``M``.

    Vectorised through the 26 x 26 table :math:`Q_{ab} = v_a^T G_P v_b` of the non-zero vectors
    of :math:`\{-1,0,1\}^3`: the G6 of ``M G M^T`` with rows ``(v_i, v_j, v_k)`` is
    ``(Q_ii, Q_jj, Q_kk, 2 Q_jk, 2 Q_ik, 2 Q_ij)``, so the squared distance to ``R`` is a sum of
    six gathered tables.  Equally close distinct candidates (to ``1e-12`` relative) are resolved
    by the lexicographically smallest G6, so the choice does not depend on the order the
    candidates come in (the basis of the prediction).
    """
    V, ijk = _near_transforms()
    i, j, k = ijk.T
    out = np.full(P.shape, np.nan)
    flat_p, flat_r = P.reshape(-1, 6), np.broadcast_to(R, P.shape).reshape(-1, 6)
    flat_o = out.reshape(-1, 6)
    todo = np.flatnonzero(np.all(np.isfinite(flat_p), axis=1) & np.all(np.isfinite(flat_r), axis=1))
    for start in range(0, len(todo), chunk):
        t = todo[start:start + chunk]
        r = flat_r[t]
        Q = np.einsum("ai,pij,bj->pab", V, _gram(flat_p[t]), V, optimize=True)  # (c, 26, 26)
        q = np.diagonal(Q, axis1=1, axis2=2)
        d2 = ((q - r[:, 0:1]) ** 2)[:, i] + ((q - r[:, 1:2]) ** 2)[:, j] + ((q - r[:, 2:3]) ** 2)[:, k]
        d2 += ((2 * Q - r[:, 3, None, None]) ** 2)[:, j, k]
        d2 += ((2 * Q - r[:, 4, None, None]) ** 2)[:, i, k]
        d2 += ((2 * Q - r[:, 5, None, None]) ** 2)[:, i, j]
        best = np.argmin(d2, axis=1)
        rows = np.arange(len(t))
        near = d2 <= (d2[rows, best] * (1 + 2e-12) + 1e-300)[:, None]
        for c in np.flatnonzero(near.sum(axis=1) > 1):
            n_i, n_j, n_k = ijk[near[c]].T
            Qc = Q[c]
            options = np.stack([Qc[n_i, n_i], Qc[n_j, n_j], Qc[n_k, n_k], 2 * Qc[n_j, n_k], 2 * Qc[n_i, n_k],
                                2 * Qc[n_i, n_j]], axis=-1)
            if np.ptp(options, axis=0).max() > 0:  # distinct candidates tie: lexicographic minimum
                best[c] = np.flatnonzero(near[c])[np.lexsort(options.T[::-1])[0]]
        bi, bj, bk = ijk[best].T
        flat_o[t] = np.stack([Q[rows, bi, bi], Q[rows, bj, bj], Q[rows, bk, bk], 2 * Q[rows, bj, bk],
                              2 * Q[rows, bi, bk], 2 * Q[rows, bi, bj]], axis=-1)
    return out


def lattice_errors(pred_g6: Any, ref_g6: Any) -> LatticeErrors:
    r""":class:`LatticeErrors` from Niggli-reduced G6 vectors ``(k, n, 6)`` (or ``(n, 6)``, k = 1) and ``(n, 6)``.

    The prediction's reduced cell is first aligned with the reference's: of the bases
    :math:`M P` with :math:`M` integer, entries in :math:`\{-1, 0, 1\}`, :math:`\det M = \pm 1`
    (6960 matrices, 3480 up to sign), the one whose G6 is closest to the reference's (ties: the lexicographically
    smallest G6).  Two lattices on either side
    of a Niggli boundary have distant reduced G6 vectors but nearby aligned ones; the set of
    aligned Gram matrices :math:`M G_P M^T` does not depend on which reduced basis (they differ by
    an automorphism) the reduction returned.  ``g6_rel_reduced`` keeps the plain difference.

    Examples
    --------
    >>> import latticesym
    >>> g = np.asarray(latticesym.niggli_reduce(np.diag([3.0, 4.0, 5.0])).g6)
    >>> e = lattice_errors(1.21 * g[None, None], g[None])   # 10 % longer vectors
    >>> round(float(e.volume_ratio[0, 0]), 6), round(float(e.length_rel[0, 0, 0]), 6)
    (1.331, 0.1)
    """
    P0 = _numbers(pred_g6, "pred_g6")
    R = _numbers(ref_g6, "ref_g6")
    if R.ndim != 2 or R.shape[1] != 6 or P0.ndim not in (2, 3) or P0.shape[-2:] != R.shape:
        raise LatticeShapeError(f"lattice_errors needs G6 arrays (k, n, 6) or (n, 6) and (n, 6), got "
                                f"{P0.shape} and {R.shape}")
    P0 = P0 if P0.ndim == 3 else P0[None]  # one sample: k = 1
    R = R[None]
    P = _aligned_g6(P0, R)
    lp, ap, vp = _params(P)
    lr, ar, vr = _params(R)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.linalg.norm(R, axis=-1)
        return LatticeErrors(
            g6_rel=np.linalg.norm(P - R, axis=-1) / norm,
            volume_ratio=vp / vr,
            length_rel=np.abs(lp - lr) / lr,
            angle_abs=np.abs(ap - ar),
            g6_rel_reduced=np.linalg.norm(P0 - R, axis=-1) / norm,
        )


# --------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class CSPMetrics:
    r"""Result of :func:`csp_metrics`.

    Attributes
    ----------
    match_rate : float
        Matched references / all references (DiffCSP's ``match_rate``).
    rmse : float
        Mean of the best rms over the matched references (DiffCSP's ``rms_dist``); NaN if none matched.
    n_references, n_matched, k : int
    matched : ndarray of bool (n,)
    rms : ndarray (n,)
        Best rms per reference (NaN when unmatched).
    best_sample : ndarray of int64 (n,)
        Sample giving ``rms`` (-1 when unmatched).
    pair_rms : ndarray (k, n)
        rms of each (sample, reference) pair counted as a match, NaN for DiffCSP's ``None``.
    raw_rms : ndarray (k, n)
        The matcher's smallest rms whether or not it is below ``stol`` (NaN: not matched at all).
    valid : ndarray of bool (k, n)
        Prediction validity (DiffCSP's ``structure_validity``).
    reference_valid : ndarray of bool (n,)
    reasons : tuple of tuples of str (k, n)
        Why each pair did or did not match (``"matched"``, ``"invalid: close sites"``, the matcher's
        reason, ``"error: ..."``).
    lattice : LatticeErrors
    settings : dict
        The tolerances and options used (compared by the gate).
    """

    match_rate: float
    rmse: float
    n_references: int
    n_matched: int
    k: int
    matched: NDArray[np.bool_] = field(repr=False)
    rms: NDArray[np.float64] = field(repr=False)
    best_sample: NDArray[np.int64] = field(repr=False)
    pair_rms: NDArray[np.float64] = field(repr=False)
    raw_rms: NDArray[np.float64] = field(repr=False)
    valid: NDArray[np.bool_] = field(repr=False)
    reference_valid: NDArray[np.bool_] = field(repr=False)
    reasons: tuple[tuple[str, ...], ...] = field(repr=False)
    lattice: LatticeErrors = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: the two CSP metrics, counts, lattice-error summary, settings."""
        return {
            "match_rate": self.match_rate,
            "rmse": None if math.isnan(self.rmse) else self.rmse,
            "n_references": self.n_references,
            "n_matched": self.n_matched,
            "k": self.k,
            "n_invalid_predictions": int((~self.valid).sum()),
            "n_invalid_references": int((~self.reference_valid).sum()),
            "n_errors": sum(r.startswith("error") for row in self.reasons for r in row),
            "lattice": self.lattice.summary(),
            "settings": dict(self.settings),
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`summary` as JSON (NaN written as ``null``)."""
        def clean(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, float) and not math.isfinite(x):
                return None
            return x

        return json.dumps(clean(self.summary()), **kwargs)

    def table(self) -> str:
        """Human-readable summary (match rate in % to 2 decimals, RMSE to 4, as the papers print)."""
        s = self.settings
        lat = self.lattice.summary()
        rows = [
            f"CSP metrics: {self.n_references} references, {'best of ' + str(self.k) if self.k > 1 else '1 sample'}"
            f" (StructureMatcher ltol={s.get('ltol')}, stol={s.get('stol')}, angle_tol={s.get('angle_tol')})",
            f"  match rate        {100 * self.match_rate:7.2f} %   ({self.n_matched} / {self.n_references})",
            f"  RMSE              {_fmt(self.rmse, 4):>9}   (mean over matched, units of (V/N)^(1/3))",
            f"  invalid preds     {int((~self.valid).sum()):>9}   (of {self.valid.size})",
            f"  lattice G6 error  {_fmt(lat['g6_rel_mean'], 4):>9}   (mean relative, reduced cells; median "
            f"{_fmt(lat['g6_rel_median'], 4)})",
            f"  volume ratio      {_fmt(lat['volume_ratio_mean'], 4):>9}   (mean V_pred / V_ref)",
            f"  length error      {_fmt(lat['length_rel_mean'], 4):>9}   (mean relative, reduced a, b, c)",
            f"  angle error       {_fmt(lat['angle_abs_mean_deg'], 3):>9}   (mean degrees, reduced alpha, beta, gamma)",
        ]
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


def _fmt(x: float, digits: int) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _aggregate(
    pair_rms: NDArray[np.float64], raw_rms: NDArray[np.float64]
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.int64], float]:
    """DiffCSP's reduction of the ``(k, n)`` pair results: ``(matched, best rms, best sample, RMSE)``.

    Per reference the smallest rms over the samples that matched (``pair_rms`` finite); the RMSE is
    the mean of those over the matched references only.  (``raw_rms``, the matcher's rms whether
    below ``stol`` or not, does not enter: it is an argument so that the tests can pass this
    function's deliberately broken variants the same inputs.)
    """
    del raw_rms
    k, n = pair_rms.shape
    matched = np.any(np.isfinite(pair_rms), axis=0)
    filled = np.where(np.isfinite(pair_rms), pair_rms, np.inf)
    best = np.argmin(filled, axis=0) if k else np.zeros(n, np.int64)
    rms = np.where(matched, np.take_along_axis(filled, best[None], axis=0)[0] if k else np.inf, np.nan)
    rmse = float(np.mean(rms[matched])) if matched.any() else math.nan
    return matched, rms, np.where(matched, best, -1).astype(np.int64), rmse


def csp_metrics(
    predictions: Any,
    references: Sequence[Any],
    *,
    ltol: float = 0.3,
    stol: float = 0.5,
    angle_tol: float = 10.0,
    k: int | None = None,
    primitive_cell: bool = True,
    check_references: bool | None = None,
    reference_mask: Any = None,
    workers: int | None = 1,
    dask_client: Any = None,
    chunk_size: int = 64,
) -> CSPMetrics:
    r"""Match rate, RMSE and basis-free lattice errors of CSP predictions (DiffCSP's evaluation).

    See the guide *CSP metrics and their gate* (``docs/metrics.md``) for the definitions and the
    line-by-line correspondence with DiffCSP's ``compute_metrics.py``.

    Parameters
    ----------
    predictions : structures
        One sample per reference: a sequence of ``n`` structures (``(lattice, frac, species)``
        tuples, :class:`latticesym.datasets.Structure`, pymatgen ``Structure``, ASE ``Atoms``).
        ``k`` samples: a sequence of ``k`` such sequences (``predictions[j][i]`` is sample ``j`` of
        reference ``i``, DiffCSP's layout), or DiffCSP-style arrays (:func:`ragged_to_structures`).
    references : sequence of n structures
        The ground truth.  An unreadable or non-finite reference raises (it is a data error).
    ltol, stol, angle_tol : float
        StructureMatcher tolerances (CSP papers: 0.3, 0.5, 10 degrees).
    k : int, optional
        Use the first ``k`` samples (default: all given).  ``k = 1`` is DiffCSP's ``RecEval``,
        ``k > 1`` its ``RecEvalBatch`` (best of ``k``).
    primitive_cell : bool
        Passed to the matcher (pymatgen's default ``True``).
    check_references : bool, optional
        Require the reference to pass the validity check as well.  Default: as DiffCSP, for
        ``k = 1`` only.
    reference_mask : array of bool (n,), optional
        References to treat as invalid (e.g. those DiffCSP's SMACT check rejects); they count as
        unmatched, still in the denominator.
    workers, dask_client, chunk_size
        Passed to :func:`latticesym.structure.match_batch` (default: this process).

    Returns
    -------
    CSPMetrics

    Raises
    ------
    LatticeShapeError
        No references, sample lists of a length other than ``n``, ``k`` larger than the samples
        given, or an unreadable reference.
    NonFiniteLatticeError, SingularLatticeError
        A reference with a non-finite or singular lattice.

    Examples
    --------
    >>> L = np.diag([3.0, 4.0, 5.0]); f = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    >>> ref = (L, f, [11, 17])
    >>> M = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])             # same crystal, another basis
    >>> good = (M @ L, f @ np.linalg.inv(M), [11, 17])
    >>> bad = (np.diag([3.0, 4.0, 9.0]), f, [11, 17])                 # c stretched past ltol
    >>> m = csp_metrics([good, bad], [ref, ref])
    >>> m.match_rate, round(m.rmse, 6)
    (0.5, 0.0)
    """
    from latticesym.structure._match import match_batch

    samples = _samples(predictions)
    refs = list(references)
    n = len(refs)
    if n == 0:
        raise LatticeShapeError("csp_metrics: no references (a match rate over none is undefined)")
    if k is not None:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise LatticeShapeError(f"k must be an integer >= 1, got {k!r}")
        if k > len(samples):
            raise LatticeShapeError(f"k={k} but only {len(samples)} sample(s) per reference were given")
        samples = samples[:k]
    kk = len(samples)
    for j, s in enumerate(samples):
        if len(s) != n:
            raise LatticeShapeError(f"sample {j} has {len(s)} predictions for {n} references")
    if check_references is None:
        check_references = kk == 1
    ref_prep = [_prepare(r, f"reference {i}", strict=True) for i, r in enumerate(refs)]
    ref_ok = np.array([p.valid for p in ref_prep], dtype=bool).reshape(n)
    mask = np.ones(n, dtype=bool)
    if reference_mask is not None:
        mask = np.asarray(reference_mask, dtype=bool).reshape(-1)
        if mask.shape != (n,):
            raise LatticeShapeError(f"reference_mask has shape {mask.shape}, expected ({n},)")
    use_ref = mask & (ref_ok if check_references else True)
    pred_prep = [[_prepare(p, f"sample {j} prediction {i}", strict=False) for i, p in enumerate(s)]
                 for j, s in enumerate(samples)]
    valid = np.array([[p.valid for p in row] for row in pred_prep], dtype=bool).reshape(kk, n)
    reasons = [["" for _ in range(n)] for _ in range(kk)]
    todo = []
    for j in range(kk):
        for i in range(n):
            if not valid[j, i]:
                reasons[j][i] = f"invalid: {pred_prep[j][i].reason}"
            elif not mask[i]:
                reasons[j][i] = "reference masked"
            elif not use_ref[i]:
                reasons[j][i] = f"invalid reference: {ref_prep[i].reason}"
            else:
                todo.append((j, i))
    pair_rms = np.full((kk, n), np.nan)
    raw_rms = np.full((kk, n), np.nan)
    if todo:
        a = [pred_prep[j][i].structure for j, i in todo]
        b = [ref_prep[i].structure for _, i in todo]
        res = match_batch(a, b, ltol=ltol, stol=stol, angle_tol=angle_tol, primitive_cell=primitive_cell,
                          workers=workers, dask_client=dask_client, chunk_size=chunk_size)
        for t, (j, i) in enumerate(todo):
            raw_rms[j, i] = res.rms[t]
            if res.matched_by_rms[t]:
                pair_rms[j, i] = res.rms[t]
                reasons[j][i] = "matched"
            else:
                reasons[j][i] = res.reason[t]
    matched, best_rms, best, rmse = _aggregate(pair_rms, raw_rms)
    n_matched = int(matched.sum())
    pred_g6 = np.array([[p.g6 for p in row] for row in pred_prep], dtype=np.float64).reshape(kk, n, 6)
    ref_g6 = np.array([p.g6 for p in ref_prep], dtype=np.float64).reshape(n, 6)
    return CSPMetrics(
        match_rate=n_matched / n if n else math.nan,
        rmse=rmse,
        n_references=n,
        n_matched=n_matched,
        k=kk,
        matched=matched,
        rms=best_rms,
        best_sample=best,
        pair_rms=pair_rms,
        raw_rms=raw_rms,
        valid=valid,
        reference_valid=ref_ok,
        reasons=tuple(tuple(r) for r in reasons),
        lattice=lattice_errors(pred_g6, ref_g6),
        settings={"ltol": ltol, "stol": stol, "angle_tol": angle_tol, "k": kk, "primitive_cell": primitive_cell,
                  "check_references": bool(check_references)},
    )
