r"""Canonical form of a periodic structure: Niggli lattice, carried coordinates, canonical order.

For a structure :math:`(L, F, Z)` (lattice rows a, b, c; fractional coordinates :math:`F`, one
row per atom; species :math:`Z`) the canonical form is

1. the Niggli reduction :math:`T L` of the lattice (:func:`latticesym.niggli_reduce`, integer
   :math:`T`, :math:`\det T = +1`), optionally re-expressed in the rotation-free parameters frame
   :math:`T L Q^T` (:mod:`latticesym.structure._frame`, :math:`Q` orthogonal);
2. the coordinates carried by the transform, :math:`F' = F T^{-1}` (:math:`T^{-1}` is the exact
   integer adjugate), wrapped to :math:`[0, 1)`: :math:`w = f - \lfloor f\rfloor`, then
   :math:`w \leftarrow 0` where :math:`w \ge 1 - \varepsilon_f` (an atom within ``frac_eps`` of the
   far cell face is put on the face at 0);
3. a canonical atom order: a stable lexicographic sort by atomic number, then wrapped x, y, z.

Cartesian positions are preserved up to lattice translations and :math:`Q`:
:math:`F'_i (T L Q^T) = (F_{o_i} L) Q^T + n_i (T L Q^T)` with integer :math:`n_i` (plus the
``frac_eps`` snap), where :math:`o` is the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from latticesym.errors import BatchReductionError, LatticeError, LatticeShapeError, OptionError
from latticesym.structure._frame import frame_from_g6
from latticesym.structure._layout import (
    check_frac,
    check_lattices,
    check_n_atoms,
    species_keys,
)

__all__ = ["CanonicalBatch", "CanonicalStructure", "canonicalize", "canonicalize_batch"]

Orientation = Literal["parameters", "keep"]


@dataclass(frozen=True)
class CanonicalStructure:
    """Canonical form of one structure (returned by :func:`canonicalize`).

    Attributes
    ----------
    lattice : ndarray, shape (3, 3)
        Niggli-reduced lattice (rows): ``transform @ lattice_in @ rotation.T``.
    frac : ndarray, shape (n, 3)
        ``frac_in[order] @ inv(transform)`` wrapped to ``[0, 1)``.
    species : ndarray, shape (n,)
        ``species_in[order]`` (dtype as given).
    transform : ndarray of int64, shape (3, 3)
        Integer, ``det == +1``; ``transform @ lattice_in`` is the reduced basis before rotation.
    rotation : ndarray, shape (3, 3)
        Orthogonal :math:`Q` (identity for ``orientation="keep"``); ``det Q = sign(det lattice_in)``.
    order : ndarray of int64, shape (n,)
        Output atom ``i`` is input atom ``order[i]``.
    g6 : ndarray, shape (6,)
        Niggli G6 ``(A, B, C, xi, eta, zeta)`` (Angstrom**2).
    near_boundary : bool
        The reduced G6 lies within the reducer's tolerance ``eps * V**(2/3)`` of a Niggli boundary,
        so another basis is reduced within that tolerance too.
    """

    lattice: NDArray[np.float64]
    frac: NDArray[np.float64]
    species: NDArray[Any]
    transform: NDArray[np.int64]
    rotation: NDArray[np.float64]
    order: NDArray[np.int64]
    g6: NDArray[np.float64]
    near_boundary: bool

    def to(self, kind: Literal["pymatgen", "ase", "spglib", "cell"] = "pymatgen") -> Any:
        """The canonical structure as a pymatgen ``Structure``, ASE ``Atoms``, spglib cell or ``Cell``.

        See :func:`latticesym.structure.to_structure`.
        """
        from latticesym.structure._adapters import to_structure

        return to_structure(self, kind)


@dataclass(frozen=True)
class CanonicalBatch:
    """Canonical forms of a ragged batch (returned by :func:`canonicalize_batch`).

    Attributes
    ----------
    lattices : ndarray, shape (B, 3, 3)
    frac : ndarray, shape (N, 3)
    species : ndarray, shape (N,)
    n_atoms : ndarray of int64, shape (B,)
        Unchanged from the input (atoms never move between structures).
    transforms : ndarray of int64, shape (B, 3, 3)
    rotations : ndarray, shape (B, 3, 3)
    order : ndarray of int64, shape (N,)
        Global row indices into the input: output row ``i`` is input row ``order[i]``.
    g6 : ndarray, shape (B, 6)
    near_boundary : ndarray of bool, shape (B,)

    The fields mean what they mean in :class:`CanonicalStructure`, per structure.
    """

    lattices: NDArray[np.float64]
    frac: NDArray[np.float64]
    species: NDArray[Any]
    n_atoms: NDArray[np.int64]
    transforms: NDArray[np.int64]
    rotations: NDArray[np.float64]
    order: NDArray[np.int64]
    g6: NDArray[np.float64]
    near_boundary: NDArray[np.bool_]

    def structures(self) -> list[CanonicalStructure]:
        """One :class:`CanonicalStructure` per structure (``order`` made local to the structure)."""
        bounds = np.concatenate([[0], np.cumsum(self.n_atoms)]).astype(np.int64)
        return [CanonicalStructure(
            lattice=self.lattices[k], frac=self.frac[bounds[k]:bounds[k + 1]],
            species=self.species[bounds[k]:bounds[k + 1]], transform=self.transforms[k],
            rotation=self.rotations[k], order=self.order[bounds[k]:bounds[k + 1]] - bounds[k], g6=self.g6[k],
            near_boundary=bool(self.near_boundary[k])) for k in range(self.n_atoms.shape[0])]

    def to_diffcsp(self, *, backend: Literal["numpy", "torch"] = "numpy", dtype: Any = None,
                   device: Any = None) -> dict[str, Any]:
        """The batch as a DiffCSP / CDVAE dict (see :func:`latticesym.structure.to_diffcsp_batch`)."""
        from latticesym.structure._adapters import to_diffcsp_batch

        return to_diffcsp_batch(self, backend=backend, dtype=dtype, device=device)


def integer_inverse(t: NDArray[np.int64]) -> NDArray[np.int64]:
    """Exact inverse of det +1 integer matrices ``(B, 3, 3)``: the adjugate."""
    adj = np.empty_like(t)
    for i in range(3):
        for j in range(3):
            r0, r1 = [k for k in range(3) if k != j]
            c0, c1 = [k for k in range(3) if k != i]
            adj[:, i, j] = (-1) ** (i + j) * (t[:, r0, c0] * t[:, r1, c1] - t[:, r0, c1] * t[:, r1, c0])
    return adj


def carry_frac(frac: NDArray[np.float64], minv: NDArray[np.float64], frac_eps: float) -> NDArray[np.float64]:
    """``wrap(frac @ minv)`` per row (``minv`` per row, ``(N, 3, 3)``), summed left to right."""
    f = frac[:, 0:1] * minv[:, 0, :] + frac[:, 1:2] * minv[:, 1, :] + frac[:, 2:3] * minv[:, 2, :]
    w = f - np.floor(f)
    w[w >= 1.0 - frac_eps] = 0.0
    return w


def boundary_margin_g6(g6: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Float distance of reduced G6 vectors ``(B, 6)`` from the nearest Niggli boundary.

    :math:`\min(B-A,\ C-B,\ B-|\xi|,\ A-|\eta|,\ A-|\zeta|,\ |\xi|,\ |\eta|,\ |\zeta|,\
    |A+B+\xi+\eta+\zeta|)` (the float twin of :func:`latticesym.peers.boundary_margin`).
    """
    A, B, C, xi, eta, zeta = (g6[:, k] for k in range(6))
    return np.min(np.stack([B - A, C - B, B - np.abs(xi), A - np.abs(eta), A - np.abs(zeta), np.abs(xi),
                            np.abs(eta), np.abs(zeta), np.abs(A + B + xi + eta + zeta)]), axis=0)


def _check_options(eps: Any, frac_eps: Any, orientation: Any, sort: Any) -> float:
    if orientation not in ("parameters", "keep"):
        raise OptionError(f"orientation must be 'parameters' or 'keep', got {orientation!r}")
    if not isinstance(sort, bool):
        raise TypeError(f"sort must be a bool, got {type(sort).__name__}")
    if isinstance(frac_eps, bool) or not isinstance(frac_eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"frac_eps must be a real number, got {type(frac_eps).__name__}")
    fe = float(frac_eps)
    if not (0.0 <= fe < 0.5):
        raise OptionError(f"frac_eps must be in [0, 0.5), got {fe!r}")
    return fe


def canonicalize_batch(lattices: Any, frac: ArrayLike | None = None, species: ArrayLike | None = None,
                       n_atoms: ArrayLike | None = None, *, eps: float = 1e-5, frac_eps: float = 1e-8,
                       orientation: Orientation = "parameters", sort: bool = True) -> CanonicalBatch:
    r"""Canonicalize a ragged batch of structures with one batched Niggli reduction.

    Parameters
    ----------
    lattices : array_like, shape (B, 3, 3), or a batch object
        Rows are the basis vectors a, b, c (Angstrom) of each structure.  With ``frac``,
        ``species`` and ``n_atoms`` omitted: a DiffCSP / CDVAE batch (dict or
        ``torch_geometric`` ``Batch``) or a sequence of pymatgen ``Structure`` / ASE ``Atoms`` /
        spglib cells (read by :func:`latticesym.structure.as_batch`).
    frac : array_like, shape (N, 3)
        Fractional coordinates of all atoms, structure after structure.
    species : array_like, shape (N,)
        Atomic numbers (ints) or element symbols.
    n_atoms : array_like of int, shape (B,)
        Atoms per structure, non-negative, summing to ``N`` (a structure with no atoms is allowed:
        its lattice is canonicalized alone).
    eps : float, keyword-only
        Relative tolerance of the reducer (absolute :math:`e = \mathrm{eps}\, V^{2/3}`).
    frac_eps : float, keyword-only
        Wrapped coordinates :math:`w \ge 1 - \mathrm{frac\_eps}` become 0 (in ``[0, 0.5)``).
    orientation : {"parameters", "keep"}, keyword-only
        ``"parameters"``: the rotation-free CDVAE/DiffCSP frame built from the reduced Gram matrix;
        ``"keep"``: ``transform @ lattice`` in the input orientation.
    sort : bool, keyword-only
        Sort atoms by (atomic number, x, y, z) of the wrapped coordinates (stable); else keep order.

    Returns
    -------
    CanonicalBatch

    Raises
    ------
    LatticeShapeError
        Shapes that do not fit the ragged layout (the message gives the shapes and sums).
    NonFiniteLatticeError
        NaN or inf in a lattice or coordinate (the message names the first one).
    BatchReductionError
        A lattice could not be reduced (singular, ...): ``.failed`` and ``.errors`` per structure.
    TypeError
        Non-numeric lattices or coordinates, or species that are neither ints nor symbols.

    Examples
    --------
    >>> b = canonicalize_batch([[[1.0, 0, 0], [5, 1, 0], [0, 0, 2]]] * 2, [[0.0, 0.5, 0], [0.25, 0, 0.5]],
    ...                        [6, 8], [1, 1], orientation="keep")
    >>> b.transforms[0].tolist(), b.frac.tolist()
    ([[1, 0, 0], [-5, 1, 0], [0, 0, 1]], [[0.5, 0.5, 0.0], [0.25, 0.0, 0.5]])
    """
    fe = _check_options(eps, frac_eps, orientation, sort)
    if frac is None and species is None and n_atoms is None:
        from latticesym.structure._adapters import as_batch

        lattices, frac, species, n_atoms = as_batch(lattices)
    elif frac is None or species is None or n_atoms is None:
        raise LatticeShapeError("give lattices, frac, species and n_atoms, or one batch object alone")
    lat = check_lattices(lattices, batched=True)
    f_in = check_frac(frac)
    counts = check_n_atoms(n_atoms, lat.shape[0], f_in.shape[0])
    spec, z = species_keys(species, f_in.shape[0])
    from latticesym import niggli_reduce

    nb = lat.shape[0]
    if nb == 0:
        red_lat = np.zeros((0, 3, 3))
        tf = np.zeros((0, 3, 3), dtype=np.int64)
        g6 = np.zeros((0, 6))
        tol = np.zeros(0)
    else:
        res = niggli_reduce(lat, eps=eps, errors="raise")
        red_lat = np.array(res.lattice, dtype=np.float64)
        tf = np.array(res.transform, dtype=np.int64)
        g6 = np.array(res.g6, dtype=np.float64)
        tol = np.broadcast_to(np.asarray(res.tolerance, dtype=np.float64), (nb,))
    owner = np.repeat(np.arange(nb, dtype=np.int64), counts)
    minv = integer_inverse(tf).astype(np.float64)
    wrapped = carry_frac(f_in, minv[owner], fe)
    if sort:
        order = np.lexsort((wrapped[:, 2], wrapped[:, 1], wrapped[:, 0], z, owner)).astype(np.int64)
    else:
        order = np.arange(f_in.shape[0], dtype=np.int64)
    if orientation == "parameters" and nb:
        out_lat = frame_from_g6(g6)
        # Q^T = R^{-1} P  with  R = T L (reducer's basis), P the parameters frame:  P = R Q^T.
        rot = np.ascontiguousarray(np.swapaxes(np.linalg.solve(red_lat, out_lat), 1, 2))
    else:
        out_lat = red_lat
        rot = np.broadcast_to(np.eye(3), (nb, 3, 3)).copy()
    return CanonicalBatch(
        lattices=out_lat, frac=wrapped[order], species=spec[order], n_atoms=counts, transforms=tf,
        rotations=rot, order=order, g6=g6, near_boundary=boundary_margin_g6(g6) <= tol)


def canonicalize(lattice: Any, frac: ArrayLike | None = None, species: ArrayLike | None = None, *,
                 eps: float = 1e-5,
                 frac_eps: float = 1e-8, orientation: Orientation = "parameters",
                 sort: bool = True) -> CanonicalStructure:
    r"""Canonical form of one structure: Niggli lattice, carried and wrapped coordinates, order.

    Parameters
    ----------
    lattice : array_like, shape (3, 3), or a structure object
        Rows are the basis vectors a, b, c (Angstrom).  With ``frac`` and ``species`` omitted: a
        pymatgen ``Structure``, an ASE ``Atoms``, an spglib cell ``(lattice, positions, numbers)``
        or any object :func:`latticesym.structure.as_structure` reads.
    frac : array_like, shape (n, 3)
        Fractional coordinates (``n = 0`` is allowed).
    species : array_like, shape (n,)
        Atomic numbers (ints) or element symbols; returned with the same dtype.
    eps, frac_eps, orientation, sort
        As in :func:`canonicalize_batch`.

    Returns
    -------
    CanonicalStructure
        With :math:`T` = ``transform``, :math:`Q` = ``rotation``: ``lattice == T @ lattice_in @ Q.T``
        (to rounding), ``frac == wrap(frac_in[order] @ inv(T))``, and Cartesian positions
        ``frac @ lattice`` equal ``(frac_in[order] @ lattice_in) @ Q.T`` up to lattice translations.

    Raises
    ------
    LatticeShapeError, NonFiniteLatticeError, SingularLatticeError, ReductionError, TypeError
        Typed errors rooted at :class:`~latticesym.errors.LatticeError`, numbers in the message.

    Examples
    --------
    >>> r = canonicalize([[1.0, 0, 0], [1000, 1, 0], [0, 0, 1]], [[0.5, 0.0, 0.0]], ["C"],
    ...                  orientation="keep")
    >>> r.transform.tolist(), r.frac.tolist(), r.lattice.tolist()
    ([[1, 0, 0], [-1000, 1, 0], [0, 0, 1]], [[0.5, 0.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    """
    if frac is None and species is None:
        from latticesym.structure._adapters import as_structure

        lattice, frac, species = as_structure(lattice)
    elif frac is None or species is None:
        raise LatticeShapeError("give lattice, frac and species, or one structure object alone")
    lat = check_lattices(lattice, batched=False)
    f_in = check_frac(frac)
    try:
        b = canonicalize_batch(lat[None], f_in, species, [f_in.shape[0]], eps=eps, frac_eps=frac_eps,
                               orientation=orientation, sort=sort)
    except BatchReductionError as exc:
        first: LatticeError = exc.errors[0]
        raise first from None
    return CanonicalStructure(
        lattice=b.lattices[0], frac=b.frac, species=b.species, transform=b.transforms[0],
        rotation=b.rotations[0], order=b.order, g6=b.g6[0], near_boundary=bool(b.near_boundary[0]))
