"""Invariance checks for other repositories' tests: measure, then assert (e3nn's split).

A featurizer, model or loss of a crystal structure must not depend on the choice of unit
cell.  Changing the basis of the lattice with an integer matrix ``M`` (``det M = ±1``),

.. math:: L' = M L, \\qquad f' = \\operatorname{wrap}(f M^{-1}),

describes *the same crystal* (rows of ``L`` are basis vectors, ``f`` the fractional
coordinates, one row per atom).  :func:`invariance_error` applies random basis changes
(optionally with rotations ``L' = M L Q^T``, per-atom lattice translations and atom
permutations) and measures how much the function's output moves;
:func:`assert_basis_invariant` turns that measurement into a readable test failure.
:func:`equivariance_error` / :func:`assert_basis_equivariant` do the same for outputs that
must *transform* (a predicted lattice comes back as ``M @ out``; per-atom outputs permute
with the atoms).

Errors are computed in float64 whatever the function computes in, and compared with a
tolerance chosen from the least precise floating dtype among the inputs and outputs
(:data:`TOLERANCES`, relative to the size of the output; e3nn uses the same scheme).

Structures
----------
Every check also takes a structure object in place of ``(lattice, frac_coords, species)``, and a
model of structures in place of a function of arrays: ``assert_basis_invariant(model, structure)``
with a pymatgen ``Structure``, an ASE ``Atoms``, an spglib cell, a
:class:`latticesym.structure.CanonicalStructure` ...; ``model`` then receives the same crystal as an
object of the same kind in every trial (``call=`` in :func:`invariance_error`).

Wrapping
--------
``frac @ inv(M)`` is computed with the exact integer inverse of ``M`` and then wrapped into
[0, 1) by :func:`wrap_frac`, which first snaps coordinates lying within ``wrap_eps``
(default ``1e-10``) of an integer onto that integer.  Without the snap, an atom at 0 can
come back as ``0.9999999999999998`` (and one at ``-1e-17`` as ``1.0``) after rounding,
moving it by a whole lattice vector in the wrapped coordinates and producing a spurious
"non-invariance" in any function of wrapped positions.  The snap moves an atom by less
than ``wrap_eps`` (fractional), far below what any physical function resolves.

Examples
--------
>>> import numpy as np
>>> L = np.diag([3.0, 4.0, 5.0])
>>> frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
>>> species = [8, 26]
>>> def volume(lattice, frac_coords, species):
...     return abs(np.linalg.det(lattice))
>>> report = assert_basis_invariant(volume, L, frac, species)  # passes, returns the report
>>> def first_length(lattice, frac_coords, species):
...     return np.linalg.norm(lattice[0])
>>> report = invariance_error(first_length, L, frac, species)
>>> report.passed
False
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from latticesym.errors import LatticeError, LatticeShapeError, NonFiniteLatticeError, OptionError

__all__ = [
    "DEFAULT_MAX_ENTRY",
    "DEFAULT_TRIALS",
    "KINDS",
    "LATTICE_FAMILIES",
    "TOLERANCES",
    "BasisInvarianceError",
    "ExampleStructure",
    "FloatTolerance",
    "InvarianceReport",
    "assert_basis_equivariant",
    "assert_basis_invariant",
    "equivariance_error",
    "example_structure",
    "get_defaults",
    "integer_inverse",
    "invariance_error",
    "random_rotations",
    "random_transforms",
    "set_defaults",
    "transform_structure",
    "wrap_frac",
]

#: Default number of random basis changes per check (``--latticesym-trials`` overrides it).
DEFAULT_TRIALS = 20
#: Default bound on the entries of the random unimodular matrices.
DEFAULT_MAX_ENTRY = 3
#: Relative tolerance per floating dtype (errors are computed in float64).  float32 uses e3nn's
#: 1e-3: rounding a sheared basis to float32 alone moves ``|det L|`` by up to ~1e-4 relative
#: (measured on :func:`example_structure` "sheared" cells under random ``M``), so 1e-4 would flag
#: correct float32 code; non-invariance bugs give errors of order 1.
TOLERANCES: dict[str, float] = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-3, "float64": 1e-9}
#: Output kinds understood by :func:`equivariance_error`.
KINDS = ("invariant", "lattice", "per_atom", "per_atom_cartesian", "per_atom_fractional")
#: Example families of :func:`example_structure` (and of the pytest fixtures).
LATTICE_FAMILIES = ("cubic", "hexagonal", "triclinic", "sheared", "flat")

_PRECISION_ORDER = ("bfloat16", "float16", "float32", "float64")
_defaults: dict[str, int] = {"trials": DEFAULT_TRIALS, "seed": 0}

Kind = Literal["invariant", "lattice", "per_atom", "per_atom_cartesian", "per_atom_fractional"]
Det = Literal[1, -1, "either"]
Call = Literal["auto", "arrays", "structure"]


# --------------------------------------------------------------------------- defaults
def get_defaults() -> dict[str, int]:
    """The current default ``trials`` and ``seed`` of the checks (a copy).

    Examples
    --------
    >>> get_defaults()["trials"] >= 1
    True
    """
    return dict(_defaults)


def set_defaults(*, trials: int | None = None, seed: int | None = None) -> None:
    """Change the default ``trials`` / ``seed`` used when a check does not pass them.

    The pytest plugin calls this for ``--latticesym-trials`` / ``--latticesym-seed`` and
    restores the previous values at the end of the session.  ``None`` leaves a value as it is.
    """
    if trials is not None:
        if int(trials) < 1:
            raise OptionError(f"trials must be >= 1, got {trials}")
        _defaults["trials"] = int(trials)
    if seed is not None:
        _defaults["seed"] = int(seed)


# --------------------------------------------------------------------------- tolerances
@dataclass(frozen=True)
class FloatTolerance:
    """A floating dtype and the relative tolerance checks use for it.

    Attributes
    ----------
    name : str
        ``"float32"``, ``"float64"``, ...
    rtol : float
        Relative tolerance (see :data:`TOLERANCES`).

    Examples
    --------
    >>> t = FloatTolerance.for_dtype("float32")
    >>> t.rtol, t.dtype
    (0.001, dtype('float32'))
    """

    name: str
    rtol: float

    @classmethod
    def for_dtype(cls, dtype: Any) -> FloatTolerance:
        """Tolerance for a numpy / torch dtype or its name."""
        name = _dtype_name(dtype)
        if name not in TOLERANCES:
            raise OptionError(f"no tolerance for dtype {dtype!r}; known: {sorted(TOLERANCES)}")
        return cls(name, TOLERANCES[name])

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype (``bfloat16`` has none and raises)."""
        return np.dtype(self.name)

    @property
    def torch_dtype(self) -> Any:
        """The torch dtype (imports torch)."""
        import torch

        return getattr(torch, self.name)


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype.replace("torch.", "")
    text = str(dtype)
    if text.startswith("torch."):
        return text[len("torch.") :]
    return np.dtype(dtype).name


# --------------------------------------------------------------------------- random elements
def random_transforms(
    n: int, *, max_entry: int = DEFAULT_MAX_ENTRY, det: Det = "either", rng: Any = None
) -> NDArray[np.int64]:
    """``n`` random unimodular matrices, shape ``(n, 3, 3)`` int64.

    Draws from :func:`latticesym.groups.random_unimodular` (``det`` = +1: SL(3, Z);
    -1 or ``"either"``: GL(3, Z)).

    Examples
    --------
    >>> M = random_transforms(4, rng=0)
    >>> M.shape, sorted(set(np.rint(np.linalg.det(M)).astype(int).tolist())) <= [-1, 1]
    ((4, 3, 3), True)
    """
    from latticesym.groups import random_unimodular

    out = np.asarray(random_unimodular(n, max_entry=max_entry, det=det, rng=np.random.default_rng(rng)))
    return out.astype(np.int64).reshape(n, 3, 3)


def random_rotations(n: int, *, rng: Any = None) -> NDArray[np.float64]:
    """``n`` random proper rotations (Haar), shape ``(n, 3, 3)``; rotate a lattice as ``L @ Q.T``."""
    from latticesym.groups import random_rotation

    return np.asarray(random_rotation(n, rng=np.random.default_rng(rng)), dtype=np.float64).reshape(n, 3, 3)


def _real_array(x: Any, name: str) -> NDArray[Any]:
    """``np.asarray(x)`` of real numbers: ragged input is a :class:`LatticeShapeError`, strings,
    complex numbers, ``None`` and other non-numbers a ``TypeError`` (both name the input)."""
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        raise LatticeShapeError(f"{name} is a ragged sequence ({exc})") from exc
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind == "O" and all(isinstance(v, Real) for v in arr.reshape(-1).tolist()):
        return arr
    raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}: {_short(arr)}")


def _short(a: Any) -> str:
    text = np.array2string(np.asarray(a), threshold=12, edgeitems=2)
    return text if len(text) <= 300 else text[:300] + "..."


def _as_float64(x: Any, name: str) -> NDArray[np.float64]:
    arr = _real_array(x, name)
    try:
        return arr.astype(np.float64)
    except OverflowError as exc:  # Python ints beyond float64
        raise NonFiniteLatticeError(f"{name} has entries beyond the float64 range: {_short(arr)}") from exc


def integer_inverse(transform: ArrayLike) -> NDArray[np.int64]:
    """Exact inverse of a unimodular integer matrix (the adjugate times ``det = ±1``).

    The adjugate and the determinant are computed with Python integers, so entries up to the
    int64 range give the exact inverse (or a typed error when the inverse leaves int64).

    Raises
    ------
    LatticeShapeError
        If the input is not a 3x3 matrix (or ragged), or not integral.
    LatticeError
        If its determinant is not ±1, or its inverse does not fit int64.
    TypeError
        If the entries are not real numbers (strings, complex, ``None``).

    Examples
    --------
    >>> integer_inverse([[1, 2, 0], [0, 1, 0], [0, 0, 1]]).tolist()
    [[1, -2, 0], [0, 1, 0], [0, 0, 1]]
    """
    m = _real_array(transform, "transform")
    if m.shape != (3, 3):
        raise LatticeShapeError(f"transform must be a 3x3 integer matrix, got shape {m.shape}")
    rows: list[list[int]] = []
    for row in m.tolist():
        ints = []
        for v in row:
            try:
                iv = int(v)
            except (ValueError, OverflowError):  # NaN, inf
                iv = None
            if iv is None or iv != v:
                raise LatticeShapeError(f"transform must be a 3x3 integer matrix, got {_short(m)}")
            ints.append(iv)
        rows.append(ints)
    (a, b, c), (d, e, f), (g, h, i) = rows
    adj = [
        [e * i - f * h, c * h - b * i, b * f - c * e],
        [f * g - d * i, a * i - c * g, c * d - a * f],
        [d * h - e * g, b * g - a * h, a * e - b * d],
    ]
    det = a * adj[0][0] + b * adj[1][0] + c * adj[2][0]
    if det not in (1, -1):
        raise LatticeError(f"transform must have determinant +1 or -1, got {det}")
    top = max(abs(v) for r in adj for v in r)
    if top > np.iinfo(np.int64).max:
        raise LatticeError(f"the inverse of transform has an entry {top} beyond int64: {rows}")
    return np.array(adj, dtype=np.int64) * det


# --------------------------------------------------------------------------- structures
def wrap_frac(frac_coords: ArrayLike, *, eps: float = 1e-10) -> NDArray[np.float64]:
    """Wrap fractional coordinates into [0, 1), snapping values within ``eps`` of an integer.

    Parameters
    ----------
    frac_coords : array_like
        Any shape.
    eps : float
        Coordinates closer than ``eps`` to an integer are set to that integer before
        wrapping, so rounding noise never turns 0 into 0.9999999999999998 (or ``-1e-17``
        into 1.0).  ``eps=0`` wraps without snapping (values equal to 1.0 after rounding
        still map to 0).

    Raises
    ------
    LatticeShapeError
        If ``frac_coords`` is a ragged sequence.
    TypeError
        If its entries are not real numbers.

    Examples
    --------
    >>> wrap_frac([1.25, -0.25, 0.9999999999999998, -1e-17]).tolist()
    [0.25, 0.75, 0.0, 0.0]
    """
    x = _as_float64(frac_coords, "frac_coords")
    if eps > 0:
        r = np.rint(x)
        x = np.where(np.abs(x - r) <= eps, r, x)
    y = np.asarray(x - np.floor(x))
    y[y >= 1.0] = 0.0
    return y


def transform_structure(
    lattice: ArrayLike,
    frac_coords: ArrayLike,
    species: Any,
    transform: ArrayLike,
    *,
    rotation: ArrayLike | None = None,
    shifts: ArrayLike | None = None,
    permutation: ArrayLike | None = None,
    wrap: bool = True,
    wrap_eps: float = 1e-10,
) -> tuple[NDArray[np.float64], NDArray[np.float64], Any]:
    """The same crystal in another basis: ``(M @ L [@ Q.T], wrap(frac @ inv(M)) [+ shifts], species)``.

    Parameters
    ----------
    lattice : array_like, shape (3, 3)
        Rows are basis vectors.
    frac_coords : array_like, shape (n, 3)
    species : sequence of length n (returned permuted, same container type where possible)
    transform : array_like, shape (3, 3)
        Integer matrix ``M`` with ``det M = ±1``.
    rotation : array_like, shape (3, 3), optional
        Orthogonal ``Q``; the lattice becomes ``M @ L @ Q.T`` (fractional coordinates do not change).
    shifts : array_like of int, shape (n, 3), optional
        Lattice translations added to each atom's fractional coordinates *after* wrapping,
        in the new basis (the atoms are then outside [0, 1); a periodic function must not care).
    permutation : array_like of int, shape (n,), optional
        Atom ``i`` of the result is atom ``permutation[i]`` of the input.
    wrap : bool
        Wrap the new fractional coordinates into [0, 1) with :func:`wrap_frac`.
    wrap_eps : float
        Snapping tolerance of :func:`wrap_frac`.

    Raises
    ------
    LatticeShapeError
        If an argument has the wrong shape (or is ragged), or ``transform`` is not integral.
    LatticeError
        If ``det transform != ±1``, or ``permutation`` is not a permutation of the atoms.
    TypeError
        If an argument is not real numbers.

    Examples
    --------
    >>> M = [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    >>> L2, f2, s2 = transform_structure(np.eye(3), [[0.25, 0.5, 0.0]], [6], M)
    >>> L2.tolist(), f2.tolist()
    ([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[0.25, 0.25, 0.0]])
    """
    L = _as_float64(lattice, "lattice")
    if L.shape != (3, 3):
        raise LatticeShapeError(f"lattice must have shape (3, 3), got {L.shape}")
    f = _as_float64(frac_coords, "frac_coords")
    if f.ndim not in (1, 2) or f.shape[-1] != 3:
        raise LatticeShapeError(f"frac_coords must have shape (n, 3), got {f.shape}")
    f = f.reshape(-1, 3)
    Minv = integer_inverse(transform)
    L2 = _as_float64(transform, "transform") @ L
    if rotation is not None:
        Q = _as_float64(rotation, "rotation")
        if Q.shape != (3, 3):
            raise LatticeShapeError(f"rotation must have shape (3, 3), got {Q.shape}")
        L2 = L2 @ Q.T
    f2 = f @ Minv.astype(np.float64)
    if wrap:
        f2 = wrap_frac(f2, eps=wrap_eps)
    s2 = species
    if permutation is not None:
        p = _real_array(permutation, "permutation")
        n = f2.shape[0]
        if p.shape != (n,) or sorted(p.tolist()) != list(range(n)):
            raise LatticeError(f"permutation must be a permutation of range({n}), got {_short(p)}")
        p = p.astype(np.int64)
        try:
            n_species = len(species)
        except TypeError as exc:
            raise TypeError(f"species must be a sequence to permute, got {type(species).__name__}") from exc
        if n_species != n:
            raise LatticeShapeError(f"{n_species} species for {n} atoms")
        f2 = f2[p]
        s2 = _permute_species(species, p)
    if shifts is not None:
        sh = _as_float64(shifts, "shifts")
        if sh.size != f2.size:
            raise LatticeShapeError(f"shifts must have shape {f2.shape}, got {sh.shape}")
        f2 = f2 + sh.reshape(f2.shape)
    return L2, f2, s2


def _permute_species(species: Any, p: NDArray[np.int64]) -> Any:
    if _is_torch(species):
        import torch

        return species[torch.as_tensor(p, device=species.device)]
    if isinstance(species, np.ndarray):
        return species[p]
    if isinstance(species, tuple):
        return tuple(species[int(i)] for i in p)
    if isinstance(species, Sequence) and not isinstance(species, str):
        return [species[int(i)] for i in p]
    return np.asarray(species)[p]


class ExampleStructure(NamedTuple):
    """A small structure that unpacks into :func:`assert_basis_invariant` (``*structure``)."""

    lattice: NDArray[np.float64]
    frac_coords: NDArray[np.float64]
    species: NDArray[np.int64]


def example_structure(kind: str = "triclinic", *, n_atoms: int = 4, rng: Any = None) -> ExampleStructure:
    """A random small structure of one family (used by the pytest fixtures).

    Families (:data:`LATTICE_FAMILIES`): ``cubic`` (a = 3-6 Å), ``hexagonal``,
    ``triclinic`` (a Niggli-like cell, angles 70-110°), ``sheared`` (a triclinic cell
    written in a non-reduced basis, ``M @ L`` with entries up to 3), ``flat``
    (a slab-like cell, c ≈ 8 a).  Positions are uniform in [0, 1); species from
    {1, 6, 8, 14, 26}.

    Examples
    --------
    >>> s = example_structure("sheared", rng=1)
    >>> s.lattice.shape, s.frac_coords.shape, s.species.shape
    ((3, 3), (4, 3), (4,))
    """
    from latticesym.metric import lattice_from_parameters

    g = np.random.default_rng(rng)
    a = g.uniform(3.0, 6.0)
    if kind == "cubic":
        L = np.eye(3) * a
    elif kind == "hexagonal":
        L = lattice_from_parameters(a, a, g.uniform(3.0, 8.0), 90, 90, 120)
    elif kind in ("triclinic", "sheared"):
        b, c = g.uniform(3.0, 6.0, size=2)
        angles = g.uniform(70.0, 110.0, size=3)
        L = lattice_from_parameters(a, b, c, *angles)
        if kind == "sheared":
            L = np.array([[3, 2, 0], [1, 3, -1], [0, -2, 1]], dtype=np.float64) @ L
    elif kind == "flat":
        L = lattice_from_parameters(a, a * g.uniform(0.9, 1.2), 8.0 * a, 90, 90, g.uniform(60.0, 120.0))
    else:
        raise OptionError(f"unknown family {kind!r}; choose one of {LATTICE_FAMILIES}")
    frac = g.uniform(0.0, 1.0, size=(n_atoms, 3))
    species = g.choice(np.array([1, 6, 8, 14, 26]), size=n_atoms)
    return ExampleStructure(L, frac, species.astype(np.int64))


# --------------------------------------------------------------------------- backends
def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class _Backend:
    """Converts the float64 numpy inputs back to what the user passed (numpy / torch, dtype, device)."""

    def __init__(self, lattice: Any, frac_coords: Any, dtype: Any):
        self.torch = _is_torch(lattice) or _is_torch(frac_coords)
        if self.torch:
            ref = lattice if _is_torch(lattice) else frac_coords
            self.device = ref.device
            self.torch_dtype = ref.dtype if dtype is None else _torch_dtype(dtype)
            self.name = _dtype_name(self.torch_dtype)
        else:
            self.device = None
            if dtype is not None:
                self.name = _dtype_name(dtype)
            else:
                arr = np.asarray(lattice)
                self.name = arr.dtype.name if arr.dtype.kind == "f" else "float64"

    def arrays(self, lattice: NDArray[np.float64], frac: NDArray[np.float64]) -> tuple[Any, Any]:
        if self.torch:
            import torch

            cast = np.dtype(self.name) if self.name in ("float16", "float32", "float64") else np.float64
            return (
                torch.as_tensor(lattice, dtype=self.torch_dtype, device=self.device),
                torch.as_tensor(_wrap_cast(frac, cast), dtype=self.torch_dtype, device=self.device),
            )
        dt = np.dtype(self.name)
        return lattice.astype(dt), _wrap_cast(frac, dt)


def _torch_dtype(dtype: Any) -> Any:
    import torch

    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, _dtype_name(dtype))


def _wrap_cast(frac: NDArray[np.float64], dt: Any) -> NDArray[Any]:
    # Casting 0.99999999997 to float32 rounds it to 1.0; keep wrapped coordinates in [0, 1).
    out = frac.astype(dt)
    inside = (frac >= 0) & (frac < 1)
    out[inside & (out >= 1)] = 0
    return out


def _to_float64(out: Any) -> tuple[NDArray[np.float64], str | None]:
    """Flatten-free conversion of a function output to float64, with its least precise float dtype."""
    if _is_torch(out):
        torch_name = _dtype_name(out.dtype)
        return out.detach().cpu().double().numpy(), (torch_name if out.is_floating_point() else None)
    if isinstance(out, Mapping):
        parts = [_to_float64(out[k]) for k in sorted(out, key=str)]
        return _concat(parts)
    if isinstance(out, list | tuple):
        return _concat([_to_float64(x) for x in out])
    arr = np.asarray(out)
    if arr.dtype.kind == "c":
        raise TypeError("complex outputs are not supported; return real and imaginary parts")
    name = arr.dtype.name if arr.dtype.kind == "f" else None
    return arr.astype(np.float64), name


def _concat(parts: list[tuple[NDArray[np.float64], str | None]]) -> tuple[NDArray[np.float64], str | None]:
    if not parts:
        return np.zeros(0), None
    arrays = [p[0].ravel() for p in parts]
    names = [p[1] for p in parts if p[1] is not None]
    return np.concatenate(arrays), _least_precise(names)


def _least_precise(names: Sequence[str | None]) -> str | None:
    known = [n for n in names if n in _PRECISION_ORDER]
    if not known:
        return None
    return min(known, key=_PRECISION_ORDER.index)


def _as_float64_input(x: Any) -> NDArray[np.float64]:
    if _is_torch(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- structure objects
def _positional_arity(fn: Callable[..., Any]) -> int | None:
    """Required positional parameters of ``fn`` (``None`` if it takes ``*args`` or has no signature)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = [p.kind for p in sig.parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return None
    return sum(1 for p in sig.parameters.values() if p.default is inspect.Parameter.empty
               and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))


def _structure_kind(obj: Any) -> str:
    module = type(obj).__module__.split(".")[0]
    if module == "pymatgen" and hasattr(obj, "lattice") and hasattr(obj, "frac_coords"):
        return "pymatgen"
    if module == "ase" and hasattr(obj, "get_scaled_positions"):
        return "ase"
    return "cell"


@dataclass(frozen=True)
class _StructureInput:
    """A structure object given in place of ``(lattice, frac_coords, species)`` (see :func:`invariance_error`).

    The checks move the atoms as indices ``0..n-1``; :meth:`rebuild` turns a transformed
    ``(lattice, frac, indices)`` back into an object of the input's kind, :meth:`species_of` into
    the species the array call receives.
    """

    obj: Any
    kind: str  # "pymatgen", "ase" or "cell"
    mode: str  # "structure" (fn(structure)) or "arrays" (fn(lattice, frac_coords, species))
    lattice: NDArray[np.float64]
    frac_coords: NDArray[np.float64]
    species: Any
    indices: NDArray[np.int64]

    @staticmethod
    def resolve(fn: Callable[..., Any], lattice: Any, frac_coords: Any, species: Any, call: str,
                dtype: Any) -> _StructureInput | None:
        if call not in ("auto", "arrays", "structure"):
            raise OptionError(f"call must be 'auto', 'arrays' or 'structure', got {call!r}")
        if frac_coords is None and species is None:
            obj = lattice
            if isinstance(obj, np.ndarray) or _is_torch(obj):
                raise TypeError(f"a lattice array of shape {tuple(obj.shape)} needs frac_coords and species; "
                                "pass them, or pass a structure object (pymatgen Structure, ASE Atoms, "
                                "(lattice, frac_coords, species) tuple)")
            kind = _structure_kind(obj)
            if kind == "pymatgen":
                L = np.asarray(obj.lattice.matrix, dtype=np.float64)
                f = np.asarray(obj.frac_coords, dtype=np.float64).reshape(-1, 3)
                spec: Any = (np.array([site.specie.Z for site in obj], dtype=np.int64) if obj.is_ordered
                             else [site.species for site in obj])
            elif kind == "ase":
                L = np.asarray(obj.cell.array, dtype=np.float64)
                f = np.asarray(obj.get_scaled_positions(wrap=False), dtype=np.float64).reshape(-1, 3)
                spec = np.asarray(obj.numbers, dtype=np.int64)
            else:
                fields = obj if isinstance(obj, Mapping) else None
                if fields is None and all(hasattr(obj, k) for k in ("lattice", "frac", "species")) \
                        and not hasattr(obj, "frac_coords"):  # latticesym.structure.CanonicalStructure
                    fields = {"lattice": obj.lattice, "frac_coords": obj.frac, "species": obj.species}
                from latticesym.adapters import as_cell

                try:
                    cell = as_cell(fields if fields is not None else obj)
                except (TypeError, KeyError) as exc:
                    raise TypeError(f"cannot read a {type(obj).__name__} as a structure ({exc}); pass "
                                    "(lattice, frac_coords, species) or a pymatgen Structure / ASE Atoms") from exc
                L, f, spec = cell.lattice, cell.frac_coords, cell.species
            if L.shape != (3, 3):
                raise LatticeShapeError(f"the structure's lattice must have shape (3, 3), got {L.shape}")
            arity = _positional_arity(fn)
            mode = call if call != "auto" else ("structure" if kind != "cell" and arity == 1 else "arrays")
            if mode == "arrays" and not isinstance(spec, np.ndarray):
                raise LatticeError("a disordered pymatgen structure (partial occupancies) has no atomic numbers "
                                   "to pass to fn(lattice, frac_coords, species); use call='structure'")
            if mode == "structure" and dtype is not None:
                raise OptionError(f"dtype={dtype!r} casts the arrays of fn(lattice, frac_coords, species); it does "
                                 "not apply to call='structure'")
            return _StructureInput(obj, kind, mode, L, f, spec, np.arange(f.shape[0], dtype=np.int64))
        if frac_coords is None or species is None:
            raise TypeError("pass both frac_coords and species with a lattice, or a structure object alone")
        if call != "structure":
            return None
        L = _as_float64_input(lattice)
        f = _as_float64_input(frac_coords).reshape(-1, 3)
        return _StructureInput((L, f, species), "cell", "structure", L, f, species,
                               np.arange(f.shape[0], dtype=np.int64))

    def species_of(self, idx: Any) -> Any:
        """The species of the atoms ``idx`` (indices into the input's atoms), in the input's container."""
        return _permute_species(self.species, np.asarray(idx, dtype=np.int64))

    def rebuild(self, lattice: NDArray[np.float64], frac: NDArray[np.float64], idx: Any) -> Any:
        """An object of the input's kind for the transformed structure (site data follow their atoms)."""
        idx = np.asarray(idx, dtype=np.int64)
        if self.kind == "pymatgen":
            from pymatgen.core import Lattice, Structure

            sites = [self.obj[int(i)] for i in idx]
            props = {k: [v[int(i)] for i in idx] for k, v in self.obj.site_properties.items()}
            return Structure(Lattice(lattice), [site.species for site in sites], frac, coords_are_cartesian=False,
                             site_properties=props, to_unit_cell=False, charge=getattr(self.obj, "charge", None))
        if self.kind == "ase":
            atoms = self.obj[idx]  # a copy with every per-atom array permuted
            atoms.set_cell(lattice, scale_atoms=False)
            atoms.set_scaled_positions(frac)
            return atoms
        from latticesym.adapters import Cell

        return Cell(lattice, frac, self.species_of(idx))


# --------------------------------------------------------------------------- report
@dataclass(frozen=True, repr=False)
class InvarianceReport:
    """What :func:`invariance_error` / :func:`equivariance_error` measured.

    Attributes
    ----------
    kind : str
        ``"invariant"`` or one of the equivariant kinds of :data:`KINDS`.
    max_error : float
        Largest error over the trials (``inf`` when an output changed shape or NaN-ness).
    tolerance : float
        The tolerance the error is compared with.
    dtype : str
        The dtype the tolerance was chosen for.
    errors : ndarray, shape (trials,)
        Error of each trial: ``max|actual - expected| / max|expected|`` (float64; see
        :func:`invariance_error`).
    worst : int
        Index of the worst trial.
    transforms : ndarray, shape (trials, 3, 3)
        The basis change ``M`` of every trial.
    rotation, shifts, permutation : ndarray or None
        The rotation / per-atom lattice translations / atom permutation of the worst trial.
    lattice, frac_coords, species
        The inputs (float64 numpy; species as given).
    transformed_lattice, transformed_frac_coords, transformed_species
        The worst trial's inputs to the function.
    expected, actual : ndarray
        Float64 outputs of the worst trial: what the function should have returned and
        what it did (for ``kind="invariant"``, ``expected`` is the output on the original
        structure).
    original : ndarray
        The output on the original structure.
    seed : int
        Seed of the random draws (re-run with it to reproduce).
    notes : tuple of str
        Extra diagnostics (shape changes, NaNs).
    """

    kind: str
    max_error: float
    tolerance: float
    dtype: str
    errors: NDArray[np.float64]
    worst: int
    transforms: NDArray[np.int64]
    rotation: NDArray[np.float64] | None
    shifts: NDArray[np.int64] | None
    permutation: NDArray[np.int64] | None
    lattice: NDArray[np.float64]
    frac_coords: NDArray[np.float64]
    species: Any
    transformed_lattice: NDArray[np.float64]
    transformed_frac_coords: NDArray[np.float64]
    transformed_species: Any
    expected: NDArray[np.float64]
    actual: NDArray[np.float64]
    original: NDArray[np.float64]
    seed: int
    function: str = "fn"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """Whether every trial's error is within the tolerance."""
        return bool(self.max_error <= self.tolerance)

    @property
    def trials(self) -> int:
        """Number of trials."""
        return len(self.errors)

    @property
    def n_failed(self) -> int:
        """Number of trials whose error exceeds the tolerance."""
        return int(np.sum(~(self.errors <= self.tolerance)))

    @property
    def transform(self) -> NDArray[np.int64]:
        """The worst trial's basis change ``M``."""
        return self.transforms[self.worst]

    def summary(self) -> str:
        """A readable multi-line description (the assertion message)."""
        what = "invariant" if self.kind == "invariant" else f"equivariant ({self.kind})"
        verdict = "is" if self.passed else "is NOT"
        lines = [
            f"{self.function} {verdict} {what} under a change of lattice basis: max error "
            f"{self.max_error:.3g} {'<=' if self.passed else '>'} tolerance {self.tolerance:.1g} "
            f"({self.dtype}); {self.n_failed} of {self.trials} trials failed (seed {self.seed}).",
        ]
        M = self.transform
        det = round(float(np.linalg.det(M)))
        lines.append(f"worst trial {self.worst}: L' = M @ L" + (" @ Q.T" if self.rotation is not None else ""))
        lines.append(_block(f"M (det {det:+d})", M))
        if self.rotation is not None:
            lines.append(_block("Q (rotation)", self.rotation))
        if self.permutation is not None:
            lines.append(f"  atom permutation: {_fmt(self.permutation)}")
        if self.shifts is not None:
            lines.append(_block("lattice translations of the atoms", self.shifts))
        lines.append(_block("input lattice (rows a, b, c)", self.lattice))
        lines.append(_block("transformed lattice", self.transformed_lattice))
        lines.append(_block("input frac_coords", self.frac_coords))
        lines.append(_block("transformed frac_coords", self.transformed_frac_coords))
        lines.append(f"  species: {_fmt(np.asarray(_as_list(self.species)))}")
        lines.append(_block("output on the input", self.original))
        if self.kind != "invariant":
            lines.append(_block(f"expected output ({_EXPECT[self.kind]})", self.expected))
        lines.append(_block("output on the transformed input", self.actual))
        if self.actual.shape == self.expected.shape and self.actual.size:
            diff = np.abs(self.actual - self.expected)
            lines.append(
                f"  largest difference {diff.max():.3g} at index "
                f"{tuple(int(i) for i in np.unravel_index(diff.argmax(), diff.shape))}"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.append(
            "  reproduce: latticesym.testing.transform_structure(lattice, frac_coords, species, M"
            + (", rotation=Q" if self.rotation is not None else "")
            + (", shifts=shifts" if self.shifts is not None else "")
            + (", permutation=perm" if self.permutation is not None else "")
            + ")"
        )
        return "\n".join(lines)

    __str__ = summary

    def __repr__(self) -> str:
        return (
            f"InvarianceReport(function={self.function!r}, kind={self.kind!r}, passed={self.passed}, "
            f"max_error={self.max_error:.3g}, tolerance={self.tolerance:.1g}, dtype={self.dtype!r}, "
            f"trials={self.trials}, seed={self.seed})"
        )


_EXPECT = {
    "lattice": "M @ out @ Q.T",
    "per_atom": "out[perm]",
    "per_atom_cartesian": "out[perm] @ Q.T",
    "per_atom_fractional": "out[perm] @ inv(M)",
}


def _as_list(species: Any) -> Any:
    if _is_torch(species):
        return species.detach().cpu().numpy()
    return species


def _fmt(a: Any) -> str:
    return np.array2string(np.asarray(a), precision=6, threshold=24, edgeitems=3, max_line_width=100)


def _block(title: str, a: Any) -> str:
    text = _fmt(a)
    if "\n" not in text:
        return f"  {title}: {text}"
    return f"  {title}:\n" + "\n".join("    " + ln for ln in text.splitlines())


class BasisInvarianceError(AssertionError):
    """Raised by :func:`assert_basis_invariant` / :func:`assert_basis_equivariant`.

    Attributes
    ----------
    report : InvarianceReport
        The measurement behind the failure.
    """

    def __init__(self, report: InvarianceReport):
        super().__init__(report.summary())
        self.report = report


# --------------------------------------------------------------------------- measuring
def invariance_error(
    fn: Callable[..., Any],
    lattice: Any,
    frac_coords: Any = None,
    species: Any = None,
    *,
    call: Call = "auto",
    trials: int | None = None,
    max_entry: int = DEFAULT_MAX_ENTRY,
    det: Det = "either",
    rotate: bool = False,
    translate: bool = False,
    permute: bool = False,
    wrap: bool = True,
    wrap_eps: float = 1e-10,
    seed: int | None = None,
    dtype: Any = None,
    tolerance: float | None = None,
    atol: float = 0.0,
) -> InvarianceReport:
    """Measure how much ``fn(lattice, frac_coords, species)`` changes under random basis changes.

    Each trial draws ``M`` (:func:`random_transforms`) and calls ``fn`` on
    ``transform_structure(lattice, frac_coords, species, M, ...)``.  The error of a trial is

    .. math:: \\frac{\\max_i |y'_i - y_i| - \\mathrm{atol}}{\\max_i |y_i|}

    (clipped at 0; if the original output is all zeros the denominator is that of the
    transformed one, and 1 if both are zero), computed in float64.  An output that changes
    shape, or has NaNs in different places, gives ``inf``.

    Parameters
    ----------
    fn : callable
        ``fn(lattice, frac_coords, species)`` returning a number, an array, a torch tensor,
        or a (nested) tuple / list / dict of them.
    lattice : array_like or torch.Tensor, shape (3, 3), or a structure object
        Rows are basis vectors.  ``fn`` receives lattices and coordinates of the same kind
        (numpy or torch, same float dtype and device) unless ``dtype`` is given.  Or, with
        ``frac_coords`` and ``species`` left out, a whole structure: a pymatgen ``Structure``
        (disordered ones too, with ``call="structure"``), an ASE ``Atoms``, a
        ``(lattice, frac_coords, species)`` tuple (spglib cells, :class:`ExampleStructure`), a
        :class:`latticesym.adapters.Cell`, a :class:`latticesym.structure.CanonicalStructure`,
        a :class:`latticesym.datasets.Structure` or a mapping with those keys (see ``call``).
    frac_coords : array_like or torch.Tensor, shape (n, 3), optional
        Required with a lattice array, left out with a structure object.
    species : sequence, ndarray or torch.Tensor of length n, optional
        Passed through unchanged (permuted when ``permute``); required with a lattice array.
    call : {"auto", "arrays", "structure"}
        How ``fn`` is called.  ``"arrays"``: ``fn(lattice, frac_coords, species)`` (a structure
        object is read into float64 arrays and atomic numbers).  ``"structure"``: ``fn(obj)``
        with ``obj`` an object of the input's kind for every transformed crystal: a pymatgen
        ``Structure`` (site species and ``site_properties`` follow their atoms, ``charge`` kept),
        an ASE ``Atoms`` (``atoms[perm]`` with the new cell and scaled positions, so every
        per-atom array, ``pbc`` and ``info`` follow), else a :class:`latticesym.adapters.Cell`.
        ``"auto"`` (default): ``"structure"`` for a pymatgen / ASE object and an ``fn`` with
        exactly one required positional parameter, ``"arrays"`` otherwise.
    trials : int, optional
        Number of random basis changes (default :data:`DEFAULT_TRIALS`, or
        ``--latticesym-trials``).
    max_entry : int
        Bound on the entries of ``M``; larger values give more sheared cells.  The new
        fractional coordinates ``frac @ inv(M)`` carry an absolute rounding error of about
        ``1e-16 * max|inv(M)|`` before wrapping, so keep it small (the default 3 loses
        nothing measurable).
    det : {1, -1, "either"}
        Draw ``M`` from SL(3, Z) (``1``), or GL(3, Z) (``"either"``, the default: a
        crystal's basis may be left-handed), or with ``det = -1`` only.
    rotate : bool
        Also rotate the lattice, ``L' = M @ L @ Q.T`` (checks rotation invariance too).
    translate : bool
        Move every atom by a random lattice vector (entries in {-1, 0, 1}) after wrapping.
    permute : bool
        Permute the atoms at random.
    wrap : bool
        Wrap the new fractional coordinates into [0, 1) (see :func:`wrap_frac`).
    wrap_eps : float
        Snapping tolerance of the wrap.
    seed : int, optional
        Seed of all random draws (default 0, or ``--latticesym-seed``).
    dtype : dtype or str, optional
        Cast the lattice and coordinates to this dtype before calling ``fn``.
    tolerance : float, optional
        Relative tolerance; default :data:`TOLERANCES` of the least precise float dtype
        among the (cast) inputs and the outputs.
    atol : float
        Absolute differences up to ``atol`` are ignored (for outputs that are zero up to noise).

    Returns
    -------
    InvarianceReport

    Raises
    ------
    TypeError
        A lattice array without ``frac_coords`` / ``species``, or an object that is not a structure.

    Examples
    --------
    >>> import numpy as np
    >>> def density(lattice, frac_coords, species):
    ...     return len(species) / abs(np.linalg.det(lattice))
    >>> r = invariance_error(density, 4.0 * np.eye(3), np.zeros((1, 3)), [6], trials=5)
    >>> r.passed, r.trials, r.max_error < 1e-12
    (True, 5, True)

    A structure object and a model of structures (here a pymatgen ``Structure`` and its volume):

    >>> from pymatgen.core import Lattice, Structure
    >>> nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> invariance_error(lambda s: s.volume, nacl, trials=5).passed
    True
    >>> invariance_error(lambda s: s.lattice.a, nacl, trials=5, det=1).passed   # a is basis-dependent
    False
    """
    return _measure(
        fn,
        lattice,
        frac_coords,
        species,
        kind="invariant",
        call_mode=call,
        trials=trials,
        max_entry=max_entry,
        det=det,
        rotate=rotate,
        translate=translate,
        permute=permute,
        wrap=wrap,
        wrap_eps=wrap_eps,
        seed=seed,
        dtype=dtype,
        tolerance=tolerance,
        atol=atol,
    )


def equivariance_error(
    fn: Callable[..., Any],
    lattice: Any,
    frac_coords: Any = None,
    species: Any = None,
    *,
    call: Call = "auto",
    kind: Kind = "lattice",
    trials: int | None = None,
    max_entry: int = DEFAULT_MAX_ENTRY,
    det: Det = "either",
    rotate: bool = False,
    translate: bool = False,
    permute: bool = False,
    wrap: bool = True,
    wrap_eps: float = 1e-10,
    seed: int | None = None,
    dtype: Any = None,
    tolerance: float | None = None,
    atol: float = 0.0,
) -> InvarianceReport:
    """Measure how far ``fn`` is from transforming with the basis change (see :func:`invariance_error`).

    ``kind`` says how the output ``out = fn(L, f, s)`` must transform when the input becomes
    ``(M @ L @ Q.T, wrap(f @ inv(M))[perm], s[perm])``:

    ``"lattice"``
        ``out`` has shape ``(..., 3, 3)`` (rows are vectors, e.g. a predicted lattice or a
        lattice update) and must come back as ``M @ out @ Q.T``.
    ``"per_atom"``
        ``out`` has one row per atom of invariant quantities (energies, coordination numbers)
        and must come back as ``out[perm]``.
    ``"per_atom_cartesian"``
        Per-atom Cartesian vectors, shape ``(n, 3)`` (forces): ``out[perm] @ Q.T``.
    ``"per_atom_fractional"``
        Per-atom fractional displacements, shape ``(n, 3)`` (scores on fractional
        coordinates): ``out[perm] @ inv(M)``.
    ``"invariant"``
        Same as :func:`invariance_error`.

    Examples
    --------
    >>> import numpy as np
    >>> def same_lattice(lattice, frac_coords, species):
    ...     return 2.0 * np.asarray(lattice)
    >>> equivariance_error(same_lattice, np.eye(3), np.zeros((1, 3)), [1], kind="lattice").passed
    True
    """
    if kind not in KINDS:
        raise OptionError(f"kind must be one of {KINDS}, got {kind!r}")
    return _measure(
        fn,
        lattice,
        frac_coords,
        species,
        kind=kind,
        call_mode=call,
        trials=trials,
        max_entry=max_entry,
        det=det,
        rotate=rotate,
        translate=translate,
        permute=permute,
        wrap=wrap,
        wrap_eps=wrap_eps,
        seed=seed,
        dtype=dtype,
        tolerance=tolerance,
        atol=atol,
    )


def _measure(
    fn: Callable[..., Any],
    lattice: Any,
    frac_coords: Any,
    species: Any,
    *,
    kind: str,
    call_mode: str,
    trials: int | None,
    max_entry: int,
    det: Det,
    rotate: bool,
    translate: bool,
    permute: bool,
    wrap: bool,
    wrap_eps: float,
    seed: int | None,
    dtype: Any,
    tolerance: float | None,
    atol: float,
) -> InvarianceReport:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    n_trials = _defaults["trials"] if trials is None else int(trials)
    if n_trials < 1:
        raise OptionError(f"trials must be >= 1, got {trials}")
    if int(max_entry) < 1:
        raise OptionError(f"max_entry must be >= 1, got {max_entry}")
    if det not in (1, -1, "either"):
        raise OptionError(f"det must be 1, -1 or 'either', got {det!r}")
    if tolerance is not None and not tolerance >= 0:
        raise OptionError(f"tolerance must be >= 0, got {tolerance}")
    seed_value = _defaults["seed"] if seed is None else int(seed)

    structure = _StructureInput.resolve(fn, lattice, frac_coords, species, call_mode, dtype)
    if structure is not None:  # the atoms travel as indices; species / objects are rebuilt from them
        lattice, frac_coords, species = structure.lattice, structure.frac_coords, structure.indices
    L = _as_float64_input(lattice)
    f = _as_float64_input(frac_coords).reshape(-1, 3)
    if L.shape != (3, 3):
        raise LatticeShapeError(f"lattice must have shape (3, 3), got {L.shape}")
    if not (np.all(np.isfinite(L)) and np.all(np.isfinite(f))):
        raise NonFiniteLatticeError(f"lattice and frac_coords must be finite; lattice = {L.tolist()}, "
                                    f"{int((~np.isfinite(f)).sum())} non-finite frac_coords entries")
    n_atoms = f.shape[0]
    if len(species) != n_atoms:
        raise LatticeShapeError(f"species has {len(species)} entries but frac_coords has {n_atoms} rows")
    backend = _Backend(lattice, frac_coords, dtype)

    rng = np.random.default_rng(seed_value)
    Ms = random_transforms(n_trials, max_entry=int(max_entry), det=det, rng=rng)
    Qs = random_rotations(n_trials, rng=rng) if rotate else None

    def call(L_: NDArray[np.float64], f_: NDArray[np.float64], s_: Any) -> tuple[NDArray[np.float64], str | None]:
        if structure is not None:
            if structure.mode == "structure":
                return _to_float64(fn(structure.rebuild(L_, f_, s_)))
            s_ = structure.species_of(s_)
        a, b = backend.arrays(L_, f_)
        return _to_float64(fn(a, b, s_))

    original, out_dtype = call(L, f, species)
    tol_name = _least_precise([backend.name, out_dtype]) or "float64"
    tol = TOLERANCES.get(tol_name, TOLERANCES["float64"]) if tolerance is None else float(tolerance)

    errors = np.zeros(n_trials)
    worst: dict[str, Any] = {}
    worst_err = -1.0
    notes_worst: tuple[str, ...] = ()
    for t in range(n_trials):
        M = Ms[t]
        Q = None if Qs is None else Qs[t]
        perm = rng.permutation(n_atoms) if permute else None
        shifts = rng.integers(-1, 2, size=(n_atoms, 3)) if translate else None
        L2, f2, s2 = transform_structure(
            L, f, species, M, rotation=Q, shifts=shifts, permutation=perm, wrap=wrap, wrap_eps=wrap_eps
        )
        try:
            actual, _ = call(L2, f2, s2)
        except Exception as exc:  # add the trial to the traceback, then let it propagate
            if hasattr(exc, "add_note"):
                exc.add_note(
                    f"latticesym: raised in trial {t} of {n_trials} (seed {seed_value}) on the same crystal "
                    f"in the basis M = {M.tolist()}"
                )
            raise
        expected = _expected(kind, original, M, Q, perm)
        err, notes = _error(actual, expected, atol)
        errors[t] = err
        if err > worst_err or t == 0:
            worst_err = err
            notes_worst = notes
            worst = dict(index=t, Q=Q, perm=perm, shifts=shifts, L2=L2, f2=f2, s2=s2, expected=expected, actual=actual)
    return InvarianceReport(
        kind=kind,
        max_error=float(errors.max()),
        tolerance=tol,
        dtype=tol_name,
        errors=errors,
        worst=int(worst["index"]),
        transforms=Ms,
        rotation=worst["Q"],
        shifts=worst["shifts"],
        permutation=worst["perm"],
        lattice=L,
        frac_coords=f,
        species=species if structure is None else structure.species,
        transformed_lattice=worst["L2"],
        transformed_frac_coords=worst["f2"],
        transformed_species=worst["s2"] if structure is None else structure.species_of(worst["s2"]),
        expected=worst["expected"],
        actual=worst["actual"],
        original=original,
        seed=seed_value,
        function=getattr(fn, "__qualname__", getattr(fn, "__name__", type(fn).__name__)),
        notes=notes_worst,
    )


def _expected(
    kind: str,
    out: NDArray[np.float64],
    M: NDArray[np.int64],
    Q: NDArray[np.float64] | None,
    perm: NDArray[np.int64] | None,
) -> NDArray[np.float64]:
    if kind == "invariant":
        return out
    if kind == "lattice":
        if out.shape[-2:] != (3, 3):
            raise LatticeShapeError(f"kind='lattice' needs outputs of shape (..., 3, 3), got {out.shape}")
        e = M.astype(np.float64) @ out
        return e @ Q.T if Q is not None else e
    e = out if perm is None else out[perm]
    if kind == "per_atom":
        return e
    if e.shape[-1] != 3:
        raise LatticeShapeError(f"kind={kind!r} needs outputs of shape (n, 3), got {out.shape}")
    if kind == "per_atom_cartesian":
        return e @ Q.T if Q is not None else e
    return e @ integer_inverse(M).astype(np.float64)  # per_atom_fractional


def _error(actual: NDArray[np.float64], expected: NDArray[np.float64], atol: float) -> tuple[float, tuple[str, ...]]:
    if actual.shape != expected.shape:
        return math.inf, (f"output shape changed from {expected.shape} to {actual.shape}",)
    if actual.size == 0:
        return 0.0, ()
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    if not np.array_equal(nan_a, nan_e):
        return math.inf, ("NaNs appear in different places",)
    ok = ~nan_e
    a, e = actual[ok], expected[ok]
    if a.size == 0:
        return 0.0, ()
    inf_a, inf_e = np.isinf(a), np.isinf(e)
    if not np.array_equal(inf_a, inf_e) or not np.array_equal(a[inf_a], e[inf_e]):
        return math.inf, ("infinities differ",)
    a, e = a[~inf_a], e[~inf_e]
    if a.size == 0:
        return 0.0, ()
    diff = max(float(np.max(np.abs(a - e))) - atol, 0.0)
    scale = float(np.max(np.abs(e)))
    if scale == 0.0:
        scale = float(np.max(np.abs(a))) or 1.0
    return diff / scale, ()


# --------------------------------------------------------------------------- asserting
def assert_basis_invariant(
    fn: Callable[..., Any], lattice: Any, frac_coords: Any = None, species: Any = None, **kwargs: Any
) -> InvarianceReport:
    """Fail with a readable report unless ``fn`` is invariant under changes of basis.

    Takes the keyword arguments of :func:`invariance_error`; returns its report on success.

    Raises
    ------
    BasisInvarianceError
        (an ``AssertionError``) carrying the :class:`InvarianceReport`: the worst basis
        change ``M``, the input and transformed structures, both outputs and the error.

    Examples
    --------
    >>> import numpy as np
    >>> def sorted_lengths(lattice, frac_coords, species):
    ...     return np.sort(np.linalg.norm(lattice, axis=1))
    >>> try:
    ...     assert_basis_invariant(sorted_lengths, np.diag([3.0, 4.0, 5.0]), np.zeros((1, 3)), [6])
    ... except AssertionError as exc:
    ...     print(str(exc).splitlines()[0][:60])
    sorted_lengths is NOT invariant under a change of lattice ba
    """
    __tracebackhide__ = True
    report = invariance_error(fn, lattice, frac_coords, species, **kwargs)
    if not report.passed:
        raise BasisInvarianceError(report)
    return report


def assert_basis_equivariant(
    fn: Callable[..., Any],
    lattice: Any,
    frac_coords: Any = None,
    species: Any = None,
    *,
    kind: Kind = "lattice",
    **kwargs: Any,
) -> InvarianceReport:
    """Fail unless ``fn``'s output transforms with the basis change as ``kind`` says.

    See :func:`equivariance_error` for the kinds and :func:`invariance_error` for the
    other keyword arguments.

    Raises
    ------
    BasisInvarianceError
        (an ``AssertionError``) with the worst trial's expected and actual outputs.

    Examples
    --------
    >>> import numpy as np
    >>> def per_atom_z(lattice, frac_coords, species):
    ...     return np.asarray(species, dtype=float)
    >>> _ = assert_basis_equivariant(per_atom_z, np.eye(3), np.random.default_rng(0).random((3, 3)),
    ...                              [1, 6, 8], kind="per_atom", permute=True)
    """
    __tracebackhide__ = True
    report = equivariance_error(fn, lattice, frac_coords, species, kind=kind, **kwargs)
    if not report.passed:
        raise BasisInvarianceError(report)
    return report
