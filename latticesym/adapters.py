"""Converters between latticesym's ``(lattice, frac_coords, species)`` and other libraries' types.

Every adapter works in both directions and keeps the row convention (rows of ``lattice``
are the basis vectors a, b, c in Angstrom; ``cart = frac @ lattice``):

=====================  =====================================  ==================================
library                to latticesym                          from latticesym
=====================  =====================================  ==================================
pymatgen ``Structure``  :func:`from_pymatgen`                   :func:`to_pymatgen`
ASE ``Atoms``           :func:`from_ase`                        :func:`to_ase`
spglib cell tuple       :func:`from_spglib`                     :func:`to_spglib`
DiffCSP / CDVAE batch   :func:`from_diffcsp` (list of cells)    :func:`to_diffcsp` (dict of arrays)
=====================  =====================================  ==================================

pymatgen, ASE and torch are imported only inside the functions that need them.
:func:`as_cell` accepts any of these types (and :class:`latticesym.datasets.Structure`).

Examples
--------
>>> import numpy as np
>>> cell = Cell(np.diag([3.0, 3.0, 3.0]), np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), np.array([55, 17]))
>>> lattice, positions, numbers = to_spglib(*cell)
>>> from_spglib((lattice, positions, numbers)).species.tolist()
[55, 17]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from latticesym.errors import LatticeError, LatticeShapeError, SingularLatticeError

__all__ = [
    "Cell",
    "as_cell",
    "diffcsp_lattice_from_parameters",
    "from_ase",
    "from_diffcsp",
    "from_pymatgen",
    "from_spglib",
    "lattice_to_parameters",
    "to_ase",
    "to_diffcsp",
    "to_pymatgen",
    "to_spglib",
]


class Cell(NamedTuple):
    """A periodic structure in latticesym's convention; unpacks as ``lattice, frac_coords, species``.

    Attributes
    ----------
    lattice : ndarray, shape (3, 3), float64
        Rows are basis vectors (Angstrom).
    frac_coords : ndarray, shape (n, 3), float64
        Fractional coordinates, one row per atom (not wrapped by the adapters).
    species : ndarray, shape (n,), int64
        Atomic numbers.
    """

    lattice: NDArray[np.float64]
    frac_coords: NDArray[np.float64]
    species: NDArray[np.int64]


def _array(x: Any, name: str) -> NDArray[Any]:
    """``np.array(x)`` (a copy), with a typed error for ragged nested sequences."""
    try:
        return np.array(_numpy(x))
    except ValueError as exc:
        raise LatticeShapeError(f"{name} is a ragged sequence ({exc})") from exc


def _as_float(arr: NDArray[Any], name: str) -> NDArray[np.float64]:
    try:
        return arr.astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype} ({exc})") from exc


def _cell(lattice: ArrayLike, frac_coords: ArrayLike, species: ArrayLike) -> Cell:
    L = _as_float(_array(lattice, "lattice"), "lattice")
    f = _as_float(_array(frac_coords, "frac_coords"), "frac_coords")
    s = _array(species, "species").reshape(-1)
    if L.shape != (3, 3):
        raise LatticeShapeError(f"lattice must have shape (3, 3), got {L.shape}")
    if f.size % 3:
        raise LatticeShapeError(f"frac_coords must have shape (n, 3), got {f.shape}")
    f = f.reshape(-1, 3)
    if s.shape[0] != f.shape[0]:
        raise LatticeShapeError(f"{s.shape[0]} species for {f.shape[0]} atoms")
    if s.size and s.dtype.kind in "USO":  # element symbols, as match() and canonicalize() take them
        from latticesym.structure._layout import species_keys

        s = species_keys(s, s.shape[0])[1]
    if s.size and s.dtype.kind not in "iu":
        if s.dtype.kind == "f" and np.array_equal(s, np.rint(s)):
            s = np.rint(s)
        else:
            raise LatticeError(f"species must be atomic numbers (integers), got dtype {s.dtype}")
    return Cell(L, f, s.astype(np.int64))


def _numpy(x: Any) -> Any:
    if type(x).__module__.split(".")[0] == "torch":
        return x.detach().cpu().numpy()
    return x


# --------------------------------------------------------------------------- generic
def as_cell(obj: Any) -> Cell:
    """Convert any supported structure object to a :class:`Cell`.

    Accepts a :class:`Cell` or ``(lattice, frac_coords, species)`` tuple (also spglib's
    ``(lattice, positions, numbers[, magmoms])``), a pymatgen ``Structure``, an ASE
    ``Atoms``, a :class:`latticesym.datasets.Structure` (anything with ``lattice``,
    ``frac_coords`` and ``species`` attributes) or a mapping with those keys.  Species are
    atomic numbers or element symbols (``"Si"``); the cell holds atomic numbers.

    Examples
    --------
    >>> as_cell({"lattice": np.eye(3), "frac_coords": [[0, 0, 0]], "species": [1]}).species.tolist()
    [1]
    >>> as_cell((np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Si", "O"])).species.tolist()
    [14, 8]
    """
    if isinstance(obj, Cell):
        return obj
    module = type(obj).__module__.split(".")[0]
    if module == "pymatgen":
        return from_pymatgen(obj)
    if module == "ase":
        return from_ase(obj)
    if isinstance(obj, Mapping):
        return _cell(obj["lattice"], obj["frac_coords"], obj["species"])
    if all(hasattr(obj, name) for name in ("lattice", "frac_coords", "species")):
        return _cell(obj.lattice, obj.frac_coords, obj.species)
    if isinstance(obj, Sequence) and len(obj) in (3, 4):
        return from_spglib(obj)
    raise TypeError(f"cannot convert {type(obj).__name__} to a latticesym Cell")


# --------------------------------------------------------------------------- pymatgen
def from_pymatgen(structure: Any) -> Cell:
    """A pymatgen ``Structure`` as a :class:`Cell` (``lattice.matrix`` rows, ``frac_coords``, ``Z``).

    Raises
    ------
    LatticeError
        For disordered sites (partial occupancies), which have no single atomic number.
    """
    if not structure.is_ordered:
        raise LatticeError("disordered pymatgen structures (partial occupancies) are not supported")
    species = [site.specie.Z for site in structure]
    return _cell(structure.lattice.matrix, structure.frac_coords, species)


def to_pymatgen(
    lattice: ArrayLike,
    frac_coords: ArrayLike,
    species: ArrayLike,
    *,
    properties: Mapping[str, Any] | None = None,
) -> Any:
    """A pymatgen ``Structure`` with this lattice (rows), fractional coordinates and atomic numbers.

    Coordinates are not wrapped (``to_unit_cell=False``).
    """
    from pymatgen.core import Lattice, Structure

    cell = _cell(lattice, frac_coords, species)
    return Structure(
        Lattice(cell.lattice),
        [int(z) for z in cell.species],  # type: ignore[misc]  # pymatgen accepts atomic numbers
        cell.frac_coords,
        coords_are_cartesian=False,
        to_unit_cell=False,
        properties=dict(properties or {}),
    )


# --------------------------------------------------------------------------- ASE
def from_ase(atoms: Any) -> Cell:
    """An ASE ``Atoms`` as a :class:`Cell` (``cell`` rows, unwrapped scaled positions, numbers).

    Raises
    ------
    SingularLatticeError
        If the cell is not fully periodic-capable (zero cell vectors).
    """
    lattice = np.asarray(atoms.cell.array, dtype=np.float64)
    if abs(np.linalg.det(lattice)) == 0.0:
        raise SingularLatticeError("ASE Atoms has a singular or incomplete cell")
    return _cell(lattice, atoms.get_scaled_positions(wrap=False), atoms.numbers)


def to_ase(lattice: ArrayLike, frac_coords: ArrayLike, species: ArrayLike, *, pbc: bool = True) -> Any:
    """An ASE ``Atoms`` with ``cell = lattice`` (rows) and ``scaled_positions = frac_coords``."""
    from ase import Atoms

    cell = _cell(lattice, frac_coords, species)
    return Atoms(numbers=cell.species, cell=cell.lattice, scaled_positions=cell.frac_coords, pbc=pbc)


# --------------------------------------------------------------------------- spglib
def from_spglib(cell: Sequence[Any]) -> Cell:
    """An spglib cell tuple ``(lattice, positions, numbers[, magmoms])`` as a :class:`Cell`.

    spglib's Python API uses rows for basis vectors and fractional ``positions``, as here.
    Magnetic moments, if present, are dropped.
    """
    if len(cell) not in (3, 4):
        raise LatticeShapeError(f"an spglib cell is (lattice, positions, numbers[, magmoms]), got {len(cell)} items")
    return _cell(cell[0], cell[1], cell[2])


def to_spglib(
    lattice: ArrayLike, frac_coords: ArrayLike, species: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """The spglib cell tuple ``(lattice, positions, numbers)``; contiguous float64 / int arrays."""
    cell = _cell(lattice, frac_coords, species)
    return (
        np.ascontiguousarray(cell.lattice),
        np.ascontiguousarray(cell.frac_coords),
        np.ascontiguousarray(cell.species.astype(np.intc)),
    )


# --------------------------------------------------------------------------- DiffCSP / CDVAE
def _float_array(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """``x`` as a float64 array of shape ``(..., 3)``; typed errors for ragged or non-numeric input."""
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        raise LatticeShapeError(f"{name} must have shape (..., 3), got a ragged sequence ({exc})") from exc
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise LatticeShapeError(f"{name} must have shape (..., 3), got shape {arr.shape}")
    try:
        return arr.astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype} ({exc})") from exc


def diffcsp_lattice_from_parameters(lengths: ArrayLike, angles: ArrayLike) -> NDArray[np.float64]:
    r"""Lattices from lengths (Å) and angles (degrees) in CDVAE/DiffCSP's orientation, batched.

    This is the orientation of CDVAE's ``lattice_params_to_matrix`` (and pymatgen's
    ``Lattice.from_parameters``): c along z, a in the xz-plane, so fractional
    coordinates of a DiffCSP batch give the same Cartesian positions as in DiffCSP.

    Parameters
    ----------
    lengths, angles : array_like, shape (..., 3)
        ``(a, b, c)`` and ``(alpha, beta, gamma)``.

        The leading dimensions broadcast against each other (one set of angles for a batch
        of lengths is fine); the last axis must have length 3 in both.

    Returns
    -------
    ndarray, shape (..., 3, 3)
        Rows are basis vectors.

    Raises
    ------
    LatticeShapeError
        A last axis that is not of length 3 (a scalar included), or leading dimensions that do
        not broadcast.

    Notes
    -----
    Like CDVAE's ``lattice_params_to_matrix`` and pymatgen's ``from_parameters``, the values are
    not validated, so a model's raw outputs map the same way they do in DiffCSP's own code: a
    negative length gives the reversed vector, and angles that no cell has (say ``alpha + beta <
    gamma``) make :math:`\cos\gamma^* = (\cos\alpha\cos\beta - \cos\gamma) / (\sin\alpha\sin\beta)`
    leave ``[-1, 1]``; it is clipped, which gives a flat (singular) cell rather than NaN.  Check
    such cells downstream (the reducers raise :class:`~latticesym.errors.SingularLatticeError`)
    or with :func:`latticesym.structure.structure_validity`.  NaN and inf propagate.

    Examples
    --------
    >>> L = diffcsp_lattice_from_parameters([2.0, 3.0, 4.0], [90.0, 90.0, 90.0])
    >>> np.round(L, 12).tolist()
    [[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]]
    """
    lengths = _float_array(lengths, "lengths")
    angles = _float_array(angles, "angles")
    try:
        lengths, angles = np.broadcast_arrays(lengths, angles)
    except ValueError:
        raise LatticeShapeError(
            f"lengths of shape {lengths.shape} and angles of shape {angles.shape} do not broadcast"
        ) from None
    al, be, ga = np.moveaxis(np.radians(angles), -1, 0)
    a, b, c = np.moveaxis(lengths, -1, 0)
    val = np.clip((np.cos(al) * np.cos(be) - np.cos(ga)) / (np.sin(al) * np.sin(be)), -1.0, 1.0)
    gamma_star = np.arccos(val)
    zero = np.zeros_like(a)
    va = np.stack([a * np.sin(be), zero, a * np.cos(be)], axis=-1)
    vb = np.stack([-b * np.sin(al) * np.cos(gamma_star), b * np.sin(al) * np.sin(gamma_star), b * np.cos(al)], axis=-1)
    vc = np.stack([zero, zero, c], axis=-1)
    return np.stack([va, vb, vc], axis=-2)


def lattice_to_parameters(lattices: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(lengths, angles)`` of lattices, shapes ``(..., 3)`` each; angles in degrees.

    Examples
    --------
    >>> lengths, angles = lattice_to_parameters(np.diag([2.0, 3.0, 4.0]))
    >>> lengths.tolist(), angles.tolist()
    ([2.0, 3.0, 4.0], [90.0, 90.0, 90.0])
    """
    from latticesym.metric import cell_parameters

    arr = _as_float(_array(lattices, "lattices"), "lattices")
    if arr.ndim < 2 or arr.shape[-2:] != (3, 3):
        raise LatticeShapeError(f"lattices must have shape (..., 3, 3), got {arr.shape}")
    params = cell_parameters(arr)
    return params[..., :3], params[..., 3:]


def _field(batch: Any, name: str) -> Any:
    if batch is None:
        return None
    if isinstance(batch, Mapping):
        return batch.get(name)
    return getattr(batch, name, None)


def from_diffcsp(
    batch: Any = None,
    *,
    frac_coords: Any = None,
    atom_types: Any = None,
    num_atoms: Any = None,
    lattices: Any = None,
    lengths: Any = None,
    angles: Any = None,
) -> list[Cell]:
    """Split a DiffCSP/CDVAE-style batch into one :class:`Cell` per crystal.

    Parameters
    ----------
    batch : mapping or object, optional
        Anything with the fields below as keys or attributes (a ``torch_geometric`` Batch,
        a dict of tensors, the output of :func:`to_diffcsp`).  Keyword arguments override it.
    frac_coords : array or tensor, shape (N, 3)
        Fractional coordinates of all atoms, crystal after crystal.
    atom_types : shape (N,)
        Atomic numbers.
    num_atoms : shape (B,)
        Atoms per crystal.
    lattices : shape (B, 3, 3), optional
        Rows are basis vectors.  Used when given; otherwise ``lengths`` and ``angles``.
    lengths, angles : shape (B, 3), optional
        Å and degrees; converted with :func:`diffcsp_lattice_from_parameters`.

    Examples
    --------
    >>> cells = from_diffcsp(frac_coords=np.zeros((3, 3)), atom_types=[6, 6, 8], num_atoms=[2, 1],
    ...                      lengths=[[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]], angles=[[90.0] * 3] * 2)
    >>> [c.species.tolist() for c in cells]
    [[6, 6], [8]]
    """
    frac_coords = frac_coords if frac_coords is not None else _field(batch, "frac_coords")
    atom_types = atom_types if atom_types is not None else _field(batch, "atom_types")
    num_atoms = num_atoms if num_atoms is not None else _field(batch, "num_atoms")
    lattices = lattices if lattices is not None else _field(batch, "lattices")
    lengths = lengths if lengths is not None else _field(batch, "lengths")
    angles = angles if angles is not None else _field(batch, "angles")
    if frac_coords is None or atom_types is None or num_atoms is None:
        raise LatticeError("a DiffCSP batch needs frac_coords, atom_types and num_atoms")
    counts = np.asarray(_numpy(num_atoms)).astype(np.int64).reshape(-1)
    if lattices is not None:
        L = np.asarray(_numpy(lattices), dtype=np.float64).reshape(-1, 3, 3)
    elif lengths is not None and angles is not None:
        L = diffcsp_lattice_from_parameters(
            np.asarray(_numpy(lengths), dtype=np.float64).reshape(-1, 3),
            np.asarray(_numpy(angles), dtype=np.float64).reshape(-1, 3),
        )
    else:
        raise LatticeError("a DiffCSP batch needs lattices, or lengths and angles")
    f = np.asarray(_numpy(frac_coords), dtype=np.float64).reshape(-1, 3)
    z = np.asarray(_numpy(atom_types)).reshape(-1)
    if len(L) != len(counts):
        raise LatticeShapeError(f"{len(L)} lattices for {len(counts)} crystals (num_atoms)")
    if counts.sum() != len(f) or len(z) != len(f):
        raise LatticeShapeError(f"num_atoms sums to {counts.sum()} but there are {len(f)} coordinates, {len(z)} types")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [_cell(L[i], f[bounds[i] : bounds[i + 1]], z[bounds[i] : bounds[i + 1]]) for i in range(len(counts))]


def to_diffcsp(cells: Sequence[Any], *, backend: str = "numpy", dtype: Any = None) -> dict[str, Any]:
    """A DiffCSP/CDVAE-style batch (dict) from structures (anything :func:`as_cell` accepts).

    Parameters
    ----------
    cells : sequence
        The crystals.
    backend : {"numpy", "torch"}
        Array type of the result.
    dtype : optional
        Float dtype (default float64 for numpy, ``torch.get_default_dtype()`` for torch).

    Returns
    -------
    dict
        ``frac_coords`` (N, 3), ``atom_types`` (N,), ``num_atoms`` (B,), ``batch`` (N,) crystal
        index of each atom, ``lattices`` (B, 3, 3) as given, ``lengths`` (B, 3) and
        ``angles`` (B, 3, degrees).  The lattices are kept as given; rebuilding them from
        ``lengths``/``angles`` gives the same metric in DiffCSP's orientation.

    Examples
    --------
    >>> b = to_diffcsp([(np.eye(3), [[0.0, 0.0, 0.0]], [1]), (2 * np.eye(3), [[0.5, 0.5, 0.5]] * 2, [8, 8])])
    >>> b["num_atoms"].tolist(), b["batch"].tolist(), b["lengths"][1].tolist()
    ([1, 2], [0, 1, 1], [2.0, 2.0, 2.0])
    """
    cs = [as_cell(c) for c in cells]
    if not cs:
        raise LatticeError("to_diffcsp needs at least one structure")
    lattices = np.stack([c.lattice for c in cs])
    lengths, angles = lattice_to_parameters(lattices)
    num_atoms = np.array([len(c.species) for c in cs], dtype=np.int64)
    out: dict[str, Any] = {
        "frac_coords": np.concatenate([c.frac_coords for c in cs]).reshape(-1, 3),
        "atom_types": np.concatenate([c.species for c in cs]).astype(np.int64),
        "num_atoms": num_atoms,
        "batch": np.repeat(np.arange(len(cs), dtype=np.int64), num_atoms),
        "lattices": lattices,
        "lengths": lengths,
        "angles": angles,
    }
    if backend == "numpy":
        if dtype is not None:
            for key in ("frac_coords", "lattices", "lengths", "angles"):
                out[key] = out[key].astype(dtype)
        return out
    if backend != "torch":
        raise LatticeError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    import torch

    fdt = dtype if dtype is not None else torch.get_default_dtype()
    return {
        key: torch.as_tensor(value, dtype=fdt if value.dtype.kind == "f" else torch.long) for key, value in out.items()
    }
