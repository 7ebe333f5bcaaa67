r"""Structure adapters: pymatgen, ASE, spglib and DiffCSP batches in and out of the structure layer.

The structure layer works on arrays: one structure is ``(lattice (3, 3), frac (n, 3), species (n,))``
and a batch is the ragged DiffCSP layout ``(lattices (B, 3, 3), frac (N, 3), species (N,),
n_atoms (B,))``.  This module turns the objects a CSP code holds into those arrays and back:

=================================  ===========================  ==================================
object                             in                           out
=================================  ===========================  ==================================
pymatgen ``Structure``             :func:`as_structure`         ``to_structure(x, "pymatgen")``
ASE ``Atoms``                      :func:`as_structure`         ``to_structure(x, "ase")``
spglib ``(lattice, positions,      :func:`as_structure`         ``to_structure(x, "spglib")``
numbers)``
DiffCSP / CDVAE batch (dict,       :func:`as_batch`             :func:`to_diffcsp_batch`
``torch_geometric`` ``Batch``,
any object with the fields)
a list of any of the above         :func:`as_batch`             :func:`split_batch`
=================================  ===========================  ==================================

:class:`~latticesym.structure.CanonicalStructure` / :class:`~latticesym.structure.CanonicalBatch`
results are accepted everywhere a structure / batch is.  Conventions (``/work/shared`` conventions):
rows of a lattice are the basis vectors a, b, c (Angstrom), :math:`\mathrm{cart} = F L`; the
adapters copy coordinates as they are (no wrapping) and species become atomic numbers (int64).

The per-structure conversions are :mod:`latticesym.adapters` (``Cell``, ``as_cell``,
``to_pymatgen`` ...); this module adds the ragged batch layout, the canonical results and the
structure-layer errors.  A DiffCSP batch is read without a per-crystal Python loop.

Examples
--------
>>> b = as_batch({"frac_coords": [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.25, 0.0, 0.0]],
...               "atom_types": [11, 17, 6], "num_atoms": [2, 1],
...               "lengths": [[4.0, 4.0, 4.0], [2.0, 3.0, 4.0]], "angles": [[90.0] * 3] * 2})
>>> b.n_atoms.tolist(), [s.species.tolist() for s in split_batch(b)]
([2, 1], [[11, 17], [6]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from latticesym import adapters as _ad
from latticesym.adapters import Cell
from latticesym.errors import LatticeError, LatticeShapeError
from latticesym.structure._layout import check_frac, check_lattices, check_n_atoms, species_keys

__all__ = [
    "RaggedBatch",
    "StructureAdapterError",
    "as_batch",
    "as_structure",
    "split_batch",
    "to_diffcsp_batch",
    "to_structure",
]

Kind = Literal["pymatgen", "ase", "spglib", "cell"]
_KINDS = ("pymatgen", "ase", "spglib", "cell")


class StructureAdapterError(LatticeError):
    """An object cannot be read as a structure or a batch (the message says what is missing).

    A :class:`~latticesym.errors.LatticeError` (hence a ``ValueError``).
    """


class RaggedBatch(NamedTuple):
    """A batch in the ragged DiffCSP layout; unpacks as ``lattices, frac, species, n_atoms``.

    Attributes
    ----------
    lattices : ndarray, shape (B, 3, 3), float64
        Rows a, b, c of each structure.
    frac : ndarray, shape (N, 3), float64
        Fractional coordinates, structure after structure.
    species : ndarray, shape (N,), int64
        Atomic numbers.
    n_atoms : ndarray, shape (B,), int64
        Atoms per structure, summing to ``N``.
    """

    lattices: NDArray[np.float64]
    frac: NDArray[np.float64]
    species: NDArray[np.int64]
    n_atoms: NDArray[np.int64]


def _host(x: Any) -> Any:
    """A torch tensor as a detached CPU numpy array (other objects unchanged)."""
    if type(x).__module__.split(".")[0] == "torch":
        return x.detach().cpu().numpy()
    return x


def _z(species: Any, n: int) -> NDArray[np.int64]:
    """Atomic numbers from atomic numbers or element symbols (typed errors from ``species_keys``)."""
    try:
        arr = np.asarray(_host(species))
    except ValueError as exc:
        raise LatticeShapeError(f"species is a ragged sequence ({exc})") from None
    if arr.dtype.kind == "f" and arr.size and np.array_equal(arr, np.rint(arr)):
        arr = arr.astype(np.int64)  # DiffCSP stores atom types in float tensors at times
    return species_keys(arr.reshape(-1) if arr.ndim > 1 else arr, n)[1]


def _is_canonical_structure(obj: Any) -> bool:
    from latticesym.structure._canonical import CanonicalStructure

    return isinstance(obj, CanonicalStructure)


def as_structure(obj: Any) -> Cell:
    """Any supported single-structure object as a :class:`latticesym.adapters.Cell`.

    Parameters
    ----------
    obj
        A pymatgen ``Structure`` (ordered), an ASE ``Atoms`` (with a full 3-d cell), an spglib
        cell ``(lattice, positions, numbers[, magmoms])`` or any ``(lattice, frac, species)``
        triple, a :class:`~latticesym.adapters.Cell`, a :class:`latticesym.datasets.Structure`, a
        :class:`~latticesym.structure.CanonicalStructure`, or a mapping / object with
        ``lattice``, ``frac_coords`` (or ``frac``) and ``species`` fields.  Species may be atomic
        numbers or element symbols.

    Returns
    -------
    Cell
        ``lattice`` (3, 3) float64 rows, ``frac_coords`` (n, 3) float64 as given (not wrapped),
        ``species`` (n,) int64 atomic numbers.

    Raises
    ------
    StructureAdapterError
        An object of an unsupported type, or one missing a field.
    LatticeShapeError, NonFiniteLatticeError
        Fields of the wrong shape (numbers in the message) or with NaN / inf.
    LatticeError
        A disordered pymatgen structure (partial occupancies).

    Examples
    --------
    >>> as_structure((np.eye(3), [[0.0, 0.0, 0.0]], ["Si"])).species.tolist()
    [14]
    """
    lattice, frac, species = _raw(obj)
    lat = check_lattices(_host(lattice), batched=False)
    f = check_frac(_host(frac))
    return Cell(lat, f, _z(species, f.shape[0]))


def _pymatgen_raw(obj: Any) -> tuple[Any, Any, Any]:
    """``(lattice rows, frac, atomic numbers)`` of a pymatgen Structure, one pass over the sites."""
    try:
        z = [site.specie.Z for site in obj]
    except AttributeError:  # Site.specie exists only for ordered sites
        raise LatticeError("disordered pymatgen structures (partial occupancies) are not supported") from None
    bad = [x for x in z if not 1 <= x <= 118]
    if bad:  # pymatgen's DummySpecies have a hash-like Z, of either sign
        raise StructureAdapterError(f"pymatgen structure has a dummy species (Z = {bad[0]}), not an element")
    return obj.lattice.matrix, obj.frac_coords, np.array(z, dtype=np.int64)


def _raw(obj: Any) -> tuple[Any, Any, Any]:
    """``(lattice, frac, species)`` of a structure object, not yet validated (see :func:`as_structure`)."""
    if _is_canonical_structure(obj):
        return obj.lattice, obj.frac, obj.species
    if isinstance(obj, Cell):
        return obj.lattice, obj.frac_coords, obj.species
    module = type(obj).__module__.split(".")[0]
    if module == "pymatgen" and hasattr(obj, "frac_coords") and hasattr(obj, "lattice"):
        return _pymatgen_raw(obj)
    if module in ("pymatgen", "ase"):
        return tuple(_ad.as_cell(obj))  # type: ignore[return-value]
    if isinstance(obj, Mapping) or hasattr(obj, "lattice"):
        get = obj.get if isinstance(obj, Mapping) else (lambda k: getattr(obj, k, None))
        lattice = get("lattice")
        frac = get("frac_coords")
        frac = get("frac") if frac is None else frac
        species = get("species")
        missing = [k for k, v in (("lattice", lattice), ("frac_coords", frac), ("species", species)) if v is None]
        if missing:
            raise StructureAdapterError(f"{type(obj).__name__} has no field(s) {', '.join(missing)}")
        if lattice is not None and type(lattice).__module__.split(".")[0] == "pymatgen":
            lattice = lattice.matrix  # a pymatgen Lattice
        return lattice, frac, species
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)) and len(obj) in (3, 4):
        return obj[0], obj[1], obj[2]
    raise StructureAdapterError(
        f"cannot read a {type(obj).__name__} as a structure: expected a pymatgen Structure, an ASE "
        "Atoms, an spglib (lattice, positions, numbers) tuple or an object with lattice, frac_coords "
        "and species")


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _is_diffcsp(obj: Any) -> bool:
    return _field(obj, "num_atoms") is not None and _field(obj, "frac_coords") is not None


def _batch_from_diffcsp(obj: Any) -> RaggedBatch:
    frac = check_frac(_host(_field(obj, "frac_coords")))
    counts_raw = np.asarray(_host(_field(obj, "num_atoms"))).reshape(-1)
    if counts_raw.size and counts_raw.dtype.kind == "f" and np.array_equal(counts_raw, np.rint(counts_raw)):
        counts_raw = counts_raw.astype(np.int64)
    types = _field(obj, "atom_types", "species")
    if types is None:
        raise StructureAdapterError("a DiffCSP batch needs atom_types (or species) next to frac_coords and num_atoms")
    lattices = _field(obj, "lattices", "lattice")
    if lattices is not None:
        lat = np.asarray(_host(lattices))
        if lat.ndim == 2 and lat.shape == (3, 3):
            lat = lat[None]
        lat = check_lattices(lat, batched=True)
    else:
        lengths, angles = _field(obj, "lengths"), _field(obj, "angles")
        if lengths is None or angles is None:
            raise StructureAdapterError("a DiffCSP batch needs lattices, or lengths and angles")
        ln = np.asarray(_host(lengths), dtype=np.float64)
        an = np.asarray(_host(angles), dtype=np.float64)
        if ln.shape != an.shape or ln.ndim != 2 or ln.shape[1] != 3:
            raise LatticeShapeError(f"lengths and angles must both have shape (B, 3), got {ln.shape} and {an.shape}")
        lat = check_lattices(_ad.diffcsp_lattice_from_parameters(ln, an), batched=True)
    counts = check_n_atoms(counts_raw, lat.shape[0], frac.shape[0])
    return RaggedBatch(lat, frac, _z(types, frac.shape[0]), counts)


def _is_canonical_batch(obj: Any) -> bool:
    from latticesym.structure._canonical import CanonicalBatch

    return isinstance(obj, CanonicalBatch)


def as_batch(obj: Any) -> RaggedBatch:
    """Any supported batch, or a sequence of structures, as a :class:`RaggedBatch`.

    Parameters
    ----------
    obj
        A DiffCSP / CDVAE batch: a mapping or an object (a ``torch_geometric`` ``Batch``) with
        ``frac_coords`` (N, 3), ``atom_types`` (N,), ``num_atoms`` (B,) and either ``lattices``
        (B, 3, 3) or ``lengths`` and ``angles`` (B, 3; Angstrom, degrees, rebuilt in DiffCSP's
        orientation by :func:`latticesym.adapters.diffcsp_lattice_from_parameters`); numpy arrays
        or tensors on any device.  Or a :class:`RaggedBatch`, a
        :class:`~latticesym.structure.CanonicalBatch`, or a sequence of objects that
        :func:`as_structure` reads.

    Returns
    -------
    RaggedBatch

    Raises
    ------
    StructureAdapterError
        Unsupported object or missing fields.
    LatticeShapeError, NonFiniteLatticeError
        Ragged fields that do not fit (``num_atoms`` not summing to ``N``, ...), NaN / inf.

    Examples
    --------
    >>> b = as_batch([(np.eye(3), [[0.0, 0.0, 0.0]], [1]), (2 * np.eye(3), [[0.5, 0.5, 0.5]] * 2, [8, 8])])
    >>> b.n_atoms.tolist(), b.species.tolist()
    ([1, 2], [1, 8, 8])
    """
    if isinstance(obj, RaggedBatch):
        return obj
    if _is_canonical_batch(obj):
        return RaggedBatch(obj.lattices, obj.frac, _z(obj.species, obj.frac.shape[0]), obj.n_atoms)
    if _is_diffcsp(obj):
        return _batch_from_diffcsp(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        if not obj:
            return RaggedBatch(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64),
                               np.zeros(0, dtype=np.int64))
        try:  # fast path: read every object, validate the concatenated arrays once
            return _stack_raw([_raw(item) for item in obj])
        except (LatticeError, ValueError, TypeError):
            pass
        cells = []  # slow path: one structure at a time, so an error names its structure
        for k, item in enumerate(obj):
            try:
                cells.append(as_structure(item))
            except LatticeError as exc:
                raise type(exc)(f"structure {k}: {exc}") from exc
        return RaggedBatch(np.stack([c.lattice for c in cells]), np.concatenate([c.frac_coords for c in cells]),
                           np.concatenate([c.species for c in cells]).astype(np.int64),
                           np.array([len(c.species) for c in cells], dtype=np.int64))
    raise StructureAdapterError(
        f"cannot read a {type(obj).__name__} as a batch: expected a DiffCSP batch (frac_coords, atom_types, "
        "num_atoms, lattices or lengths + angles) or a sequence of structures")


def _stack_raw(raws: list[tuple[Any, Any, Any]]) -> RaggedBatch:
    """Validate and stack raw ``(lattice, frac, species)`` triples (raises on the first problem)."""
    lat = check_lattices(np.array([_host(r[0]) for r in raws], dtype=np.float64), batched=True)
    fracs = [np.asarray(_host(r[1]), dtype=np.float64) for r in raws]
    fracs = [f.reshape(0, 3) if f.size == 0 else f for f in fracs]
    species = [np.asarray(_host(r[2])).reshape(-1) for r in raws]
    counts = np.array([f.shape[0] for f in fracs], dtype=np.int64)
    if any(f.ndim != 2 or f.shape[1] != 3 for f in fracs) or any(z.shape[0] != n for z, n in zip(species, counts)):
        raise LatticeShapeError("shapes differ between structures")  # the slow path names the structure
    frac = check_frac(np.concatenate(fracs))
    return RaggedBatch(lat, frac, _z(np.concatenate(species), frac.shape[0]), counts)


def split_batch(batch: Any) -> list[Cell]:
    """The structures of a batch (anything :func:`as_batch` reads), one :class:`Cell` each.

    The inverse of :func:`as_batch` on a list: ``as_batch(split_batch(b))`` equals ``b``.
    """
    b = as_batch(batch)
    bounds = np.concatenate([[0], np.cumsum(b.n_atoms)])
    return [Cell(b.lattices[k].copy(), b.frac[bounds[k]:bounds[k + 1]].copy(),
                 b.species[bounds[k]:bounds[k + 1]].copy()) for k in range(b.n_atoms.shape[0])]


def to_structure(obj: Any, kind: Kind = "pymatgen") -> Any:
    """A structure (anything :func:`as_structure` reads) as a pymatgen, ASE, spglib or Cell object.

    Parameters
    ----------
    obj
        The structure, e.g. a :class:`~latticesym.structure.CanonicalStructure`.
    kind : {"pymatgen", "ase", "spglib", "cell"}
        ``"pymatgen"``: ``Structure`` (``to_unit_cell=False``); ``"ase"``: ``Atoms`` with
        ``pbc=True``; ``"spglib"``: the tuple ``(lattice, positions, numbers)``; ``"cell"``: a
        :class:`Cell`.  The lattice rows and fractional coordinates are passed unchanged.

    Raises
    ------
    StructureAdapterError
        An unknown ``kind``.

    Examples
    --------
    >>> lat, pos, num = to_structure((np.eye(3), [[0.0, 0.0, 0.0]], ["Cu"]), "spglib")
    >>> num.tolist()
    [29]
    """
    if kind not in _KINDS:
        raise StructureAdapterError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
    cell = as_structure(obj)
    if kind == "cell":
        return cell
    if kind == "pymatgen":
        return _ad.to_pymatgen(*cell)
    if kind == "ase":
        return _ad.to_ase(*cell)
    return _ad.to_spglib(*cell)


def to_diffcsp_batch(batch: Any, *, backend: Literal["numpy", "torch"] = "numpy", dtype: Any = None,
                     device: Any = None) -> dict[str, Any]:
    """A DiffCSP / CDVAE batch dict from a batch or a sequence of structures (see :func:`as_batch`).

    Parameters
    ----------
    batch
        Anything :func:`as_batch` reads (a :class:`~latticesym.structure.CanonicalBatch`, a list
        of pymatgen structures, ...).
    backend : {"numpy", "torch"}
    dtype, device : optional
        Float dtype (default float64 for numpy, ``torch.get_default_dtype()`` for torch) and, for
        torch, the device.

    Returns
    -------
    dict
        ``frac_coords`` (N, 3), ``atom_types`` (N,), ``num_atoms`` (B,), ``batch`` (N,) structure
        index of each atom, ``lattices`` (B, 3, 3) as given, ``lengths`` (B, 3) and ``angles``
        (B, 3, degrees).  For a canonical batch in the ``"parameters"`` orientation the lattices
        are exactly DiffCSP's matrices of ``lengths`` / ``angles`` (up to rounding).

    Raises
    ------
    StructureAdapterError
        An unknown backend.
    """
    if backend not in ("numpy", "torch"):
        raise StructureAdapterError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    b = as_batch(batch)
    lengths, angles = _ad.lattice_to_parameters(b.lattices) if b.lattices.shape[0] else (np.zeros((0, 3)),) * 2
    out: dict[str, Any] = {
        "frac_coords": b.frac, "atom_types": b.species, "num_atoms": b.n_atoms,
        "batch": np.repeat(np.arange(b.n_atoms.shape[0], dtype=np.int64), b.n_atoms),
        "lattices": b.lattices, "lengths": lengths, "angles": angles,
    }
    if backend == "numpy":
        fdt = np.float64 if dtype is None else dtype
        return {k: (v.astype(fdt) if v.dtype.kind == "f" else v.copy()) for k, v in out.items()}
    import torch

    tdt = dtype if dtype is not None else torch.get_default_dtype()
    return {k: torch.as_tensor(v, dtype=tdt if v.dtype.kind == "f" else torch.long, device=device)
            for k, v in out.items()}
