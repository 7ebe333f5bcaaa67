"""Input validation and the ragged (DiffCSP-style) batch layout of the structure layer.

A batch of ``B`` structures is four arrays: ``lattices (B, 3, 3)`` (rows a, b, c), ``frac (N, 3)``,
``species (N,)`` and ``n_atoms (B,)`` with ``sum(n_atoms) == N``; structure ``k`` owns the rows
``offsets[k] : offsets[k] + n_atoms[k]`` of ``frac`` and ``species``.  Every check raises a typed
:class:`~latticesym.errors.LatticeError` whose message carries the offending shapes and numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym.errors import LatticeShapeError, NonFiniteLatticeError

__all__: list[str] = []

# Element symbols by atomic number (index 0 is a placeholder), IUPAC 2016.
_SYMBOLS = [
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe",
    "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu",
    "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra",
    "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db",
    "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
]
_Z_OF = {s: z for z, s in enumerate(_SYMBOLS) if z}


def _asarray(x: Any, what: str) -> NDArray[Any]:
    """``np.asarray(x)``, with a typed error for ragged nested sequences (numpy's is a plain ValueError)."""
    try:
        return np.asarray(x)
    except ValueError as exc:
        raise LatticeShapeError(f"{what} is a ragged sequence ({exc})") from None


def _float_array(x: Any, what: str) -> NDArray[np.float64]:
    arr = _asarray(x, what)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{what} must be a real numeric array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_lattices(lattices: Any, *, batched: bool) -> NDArray[np.float64]:
    """Float64 copy of ``lattices``: shape ``(3, 3)`` (``batched=False``) or ``(B, 3, 3)``, finite."""
    arr = _float_array(lattices, "lattice")
    want = "(B, 3, 3)" if batched else "(3, 3)"
    if (batched and (arr.ndim != 3 or arr.shape[1:] != (3, 3))) or (not batched and arr.shape != (3, 3)):
        raise LatticeShapeError(f"lattice must have shape {want}, got {arr.shape}")
    bad = ~np.isfinite(arr).reshape(-1, 9).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise NonFiniteLatticeError(
            f"{int(bad.sum())} lattice(s) contain NaN or inf; first is structure {k}: "
            f"{arr.reshape(-1, 3, 3)[k].tolist()}")
    return arr


def check_frac(frac: Any, n: int | None = None) -> NDArray[np.float64]:
    """Float64 copy of ``frac``, shape ``(n, 3)``, finite (``n`` is checked when given)."""
    arr = _float_array(frac, "frac")
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 3)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise LatticeShapeError(f"frac must have shape (n, 3), got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise LatticeShapeError(f"frac has {arr.shape[0]} rows but n_atoms sums to {n}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NonFiniteLatticeError(
            f"{int(bad.sum())} fractional coordinate row(s) contain NaN or inf; first is atom {i}: {arr[i].tolist()}")
    return arr


def species_keys(species: Any, n: int) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """``(species as an array, atomic numbers)``; species are atomic numbers or element symbols."""
    arr = _asarray(species, "species")
    if arr.ndim == 0 or arr.ndim > 1:
        raise LatticeShapeError(f"species must have shape (n,), got {arr.shape}")
    if arr.shape[0] != n:
        raise LatticeShapeError(f"species has length {arr.shape[0]} but frac has {n} rows")
    if n == 0:
        return arr, np.zeros(0, dtype=np.int64)
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        z = arr.astype(np.int64)
        if (z < 0).any():
            raise LatticeShapeError(f"atomic numbers must be >= 0, got {int(z.min())}")
        return arr, z
    if arr.dtype.kind in "US" or arr.dtype == object:
        try:
            z = np.array([_Z_OF[str(s.decode() if isinstance(s, bytes) else s)] for s in arr.tolist()],
                         dtype=np.int64)
        except KeyError as exc:
            raise LatticeShapeError(f"unknown element symbol {exc.args[0]!r} in species") from None
        return arr, z
    raise TypeError(f"species must be atomic numbers (ints) or element symbols, got dtype {arr.dtype}")


def check_n_atoms(n_atoms: Any, n_structures: int, n_rows: int) -> NDArray[np.int64]:
    """``n_atoms`` as int64 ``(B,)``: non-negative, one per structure, summing to ``n_rows``."""
    arr = _asarray(n_atoms, "n_atoms")
    if arr.ndim != 1 or arr.shape[0] != n_structures:
        raise LatticeShapeError(f"n_atoms must have shape ({n_structures},), got {arr.shape}")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise TypeError(f"n_atoms must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        k = int(np.flatnonzero(arr < 0)[0])
        raise LatticeShapeError(f"n_atoms must be >= 0; structure {k} has {int(arr[k])}")
    total = int(arr.sum())
    if total != n_rows:
        raise LatticeShapeError(f"n_atoms sums to {total} but frac has {n_rows} rows")
    return arr
