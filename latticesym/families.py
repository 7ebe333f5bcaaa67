"""Deterministic generators of the stress-test lattice families (issue 3, item 6).

Every valid family is a function ``family(n, *, rng, **params) -> ndarray`` of shape
``(n, 3, 3)`` (float64, rows are basis vectors a, b, c, see ``CONVENTIONS.md``) that draws
only from the ``numpy.random.Generator`` it is given, so a seed reproduces a case exactly.
:data:`FAMILIES` maps the family names to the functions and :func:`generate` calls one by
name.  Invalid inputs (NaN, inf, singular, wrong shapes) are kept apart, in
:func:`invalid` and :func:`invalid_shapes`, so that no test mixes them up with valid ones.

========================  =============================================================
family                    what a lattice looks like
========================  =============================================================
``physical``              random cell parameters (2-15 A, angles 40-140 deg), rotated
``sheared``               a physical lattice in a basis ``M @ L``, ``max |M|`` 10 .. 1e6
``near_singular``         a basis with ``V / (|a||b||c|)`` from 1e-12 to 1e-3
``extreme_aspect``        longest / shortest vector from 1e3 to 1e8
``boundary``              cubic, hexagonal, rhombohedral, cF, cI, tP, oP: exact or 1e-9 off
``untrained``             i.i.d. Gaussian entries (what an untrained model emits)
``scaled``                physical lattices times 1e-8 or 1e8
========================  =============================================================

Examples
--------
>>> import numpy as np
>>> from latticesym.families import FAMILIES, generate
>>> sorted(FAMILIES)
['boundary', 'extreme_aspect', 'near_singular', 'physical', 'scaled', 'sheared', 'untrained']
>>> generate("physical", 4, np.random.default_rng(0)).shape
(4, 3, 3)
>>> np.array_equal(generate("scaled", 3, np.random.default_rng(1)),
...                generate("scaled", 3, np.random.default_rng(1)))
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from latticesym import groups
from latticesym.errors import LatticeError, NonFiniteLatticeError, OptionError, SingularLatticeError
from latticesym.metric import volume

__all__ = [
    "BOUNDARY_KINDS",
    "EXTREME_SHAPES",
    "FAMILIES",
    "INVALID_EXPECTED_ERROR",
    "INVALID_KINDS",
    "boundary",
    "boundary_labels",
    "extreme_aspect",
    "generate",
    "invalid",
    "invalid_labels",
    "invalid_shapes",
    "near_singular",
    "physical",
    "random_rotations",
    "relative_volume",
    "scaled",
    "sheared",
    "untrained",
]

Array = NDArray[np.float64]

BOUNDARY_KINDS: tuple[str, ...] = (
    "cubic",
    "hexagonal",
    "rhombohedral",
    "fcc",
    "bcc",
    "tetragonal",
    "orthorhombic",
)
"""Lattice kinds of the :func:`boundary` family, in the order the family cycles through them."""

EXTREME_SHAPES: tuple[str, ...] = ("needle", "plate", "graded")
"""Length patterns of :func:`extreme_aspect`: ``(1, 1, r)``, ``(1, r, r)``, ``(1, sqrt r, r)``."""

INVALID_KINDS: tuple[str, ...] = ("nan", "inf", "neg_inf", "zero", "rank1", "rank2", "duplicate_row")
"""Kinds of :func:`invalid` ``(3, 3)`` inputs, in the order the family cycles through them."""

INVALID_EXPECTED_ERROR: dict[str, type[LatticeError]] = {
    "nan": NonFiniteLatticeError,
    "inf": NonFiniteLatticeError,
    "neg_inf": NonFiniteLatticeError,
    "zero": SingularLatticeError,
    "rank1": SingularLatticeError,
    "rank2": SingularLatticeError,
    "duplicate_row": SingularLatticeError,
}
"""The :class:`~latticesym.errors.LatticeError` subclass each invalid kind must raise."""


# --------------------------------------------------------------------------- helpers
def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        raise OptionError(f"n must be >= 0, got {n}")
    return int(n)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_range(name: str, value: Any, *, low: float = 0.0) -> tuple[float, float]:
    """Read a scalar or a ``(lo, hi)`` pair as a closed range with ``low < lo <= hi``."""
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and low < lo <= hi):
        raise OptionError(f"{name} must be a number or a (lo, hi) pair with {low} < lo <= hi, got {value!r}")
    return lo, hi


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> Array:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))


def random_rotations(n: int, *, rng: np.random.Generator) -> Array:
    """``n`` proper rotations drawn from the Haar measure on SO(3), shape ``(n, 3, 3)``.

    Apply one to a lattice as ``L @ Q.T`` (``CONVENTIONS.md``).

    Examples
    --------
    >>> Q = random_rotations(5, rng=np.random.default_rng(0))
    >>> bool(np.allclose(Q @ Q.transpose(0, 2, 1), np.eye(3))), bool(np.allclose(np.linalg.det(Q), 1))
    (True, True)
    """
    n = _check_n(n)
    _check_rng(rng)
    z = rng.standard_normal((n, 3, 3))
    q, r = np.linalg.qr(z)
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    flip = np.linalg.det(q) < 0
    q[flip, :, 0] *= -1.0
    return q


def _rotate(lattices: Array, rotations: Array) -> Array:
    return np.einsum("nij,nkj->nik", lattices, rotations)


def relative_volume(lattices: Any) -> NDArray[np.float64]:
    """``|det L| / (|a| |b| |c|)``: 1 for an orthogonal basis, 0 for a singular one.

    Examples
    --------
    >>> float(relative_volume([[1, 0, 0], [1, 1, 0], [0, 0, 2]]).round(6))
    0.707107
    """
    arr = np.asarray(lattices, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=-1).prod(axis=-1)
    return np.abs(volume(arr)) / norms


def _cells_from_parameters(lengths: Array, angles_deg: Array) -> Array:
    """Vectorised ``lattice_from_parameters``: ``lengths`` and ``angles_deg`` of shape (n, 3)."""
    a, b, c = lengths[:, 0], lengths[:, 1], lengths[:, 2]
    al, be, ga = np.radians(angles_deg).T
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(np.maximum(c * c - cx * cx - cy * cy, 0.0))
    out = np.zeros((len(a), 3, 3))
    out[:, 0, 0] = a
    out[:, 1, 0] = b * np.cos(ga)
    out[:, 1, 1] = b * np.sin(ga)
    out[:, 2] = np.stack([cx, cy, cz], axis=-1)
    return out


def _angle_volume_factor(angles_deg: Array) -> Array:
    """``V / (abc)`` of a cell with these angles (NaN-free; <= 0 means no cell)."""
    ca, cb, cg = np.cos(np.radians(angles_deg)).T
    return 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg


def _random_angles(
    n: int, rng: np.random.Generator, lo: float, hi: float, min_relative_volume: float
) -> Array:
    """Angles uniform in ``[lo, hi]`` degrees, rejecting cells flatter than ``min_relative_volume``."""
    out = np.empty((0, 3))
    while len(out) < n:
        draw = rng.uniform(lo, hi, size=(max(2 * (n - len(out)), 8), 3))
        f = _angle_volume_factor(draw)
        ok = f > min_relative_volume**2
        out = np.concatenate([out, draw[ok]])
    return out[:n]


def _unimodular(n: int, max_entry: int, rng: np.random.Generator) -> NDArray[np.int64]:
    if n == 0:
        return np.zeros((0, 3, 3), dtype=np.int64)
    return np.asarray(groups.random_unimodular(n, max_entry=int(max_entry), det=1, rng=rng), dtype=np.int64)


def _unimodular_decades(n: int, lo: float, hi: float, rng: np.random.Generator) -> NDArray[np.int64]:
    """Unimodular matrices whose entry bound is a power of ten drawn uniformly in ``[lo, hi]``."""
    k_lo, k_hi = int(np.ceil(np.log10(lo) - 1e-9)), int(np.floor(np.log10(hi) + 1e-9))
    bounds = np.full(n, round(hi)) if k_hi < k_lo else 10 ** rng.integers(k_lo, k_hi + 1, size=n)
    out = np.zeros((n, 3, 3), dtype=np.int64)
    for bound in np.unique(bounds):
        idx = np.nonzero(bounds == bound)[0]
        out[idx] = _unimodular(len(idx), int(bound), rng)
    return out


def _apply_basis(transforms: NDArray[np.int64], lattices: Array) -> Array:
    return np.einsum("nij,njk->nik", transforms.astype(np.float64), lattices)


# --------------------------------------------------------------------------- families
def physical(
    n: int,
    *,
    rng: np.random.Generator,
    lengths: tuple[float, float] = (2.0, 15.0),
    angles: tuple[float, float] = (40.0, 140.0),
    min_relative_volume: float = 0.2,
) -> Array:
    """Random physical cells in a random orientation.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    lengths : (float, float)
        Range of the three lengths ``a, b, c`` in Angstrom (uniform).
    angles : (float, float)
        Range of ``alpha, beta, gamma`` in degrees (uniform, then rejected as below).
    min_relative_volume : float
        Cells with ``V / (abc)`` below this are redrawn (keeps the family away from flat cells).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
        Rows are basis vectors; rotated by a Haar-random proper rotation.
    """
    n = _check_n(n)
    _check_rng(rng)
    lo, hi = _check_range("lengths", lengths)
    alo, ahi = _check_range("angles", angles)
    if ahi >= 180.0:
        raise OptionError(f"angles must lie in (0, 180) degrees, got {angles!r}")
    if not 0.0 <= min_relative_volume < 1.0:
        raise OptionError(f"min_relative_volume must be in [0, 1), got {min_relative_volume}")
    abc = rng.uniform(lo, hi, size=(n, 3))
    ang = _random_angles(n, rng, alo, ahi, min_relative_volume)
    return _rotate(_cells_from_parameters(abc, ang), random_rotations(n, rng=rng))


def sheared(
    n: int,
    *,
    rng: np.random.Generator,
    max_entry: int | tuple[int, int] = (10, 10**6),
) -> Array:
    """Physical lattices given in a badly sheared basis ``M @ L``.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    max_entry : int or (int, int)
        Entry bound of the unimodular ``M`` (``det M = +1``) from
        :func:`latticesym.groups.random_unimodular`.  A pair ``(lo, hi)`` draws, per lattice, a
        power of ten uniformly among those in ``[lo, hi]`` (default: 10, 100, ..., 1e6).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
        ``M @ L`` rounded to float64 (the float result *is* the lattice: the oracle and the
        peers all see the same numbers).
    """
    n = _check_n(n)
    _check_rng(rng)
    lo, hi = _check_range("max_entry", max_entry, low=0.5)
    base = physical(n, rng=rng)
    return _apply_basis(_unimodular_decades(n, lo, hi, rng), base)


def near_singular(
    n: int,
    *,
    rng: np.random.Generator,
    relative_volume: float | tuple[float, float] = (1e-12, 1e-3),
    max_coefficient: int = 3,
    max_entry: int = 4,
) -> Array:
    """Bases whose third vector lies almost in the plane of the first two.

    Built as ``c = n1 a + n2 b + delta`` from a physical ``(a, b)`` with small integers
    ``(n1, n2) != (0, 0)`` and ``delta`` normal to the plane, then sheared by a unimodular ``M``
    (entries up to ``max_entry``); ``|delta|`` is chosen so that the *final* basis has the drawn
    relative volume ``V / (|a||b||c|)`` (to the rounding of the float entries).  The lattice
    itself contains the short vector ``delta``: a near-singular basis of a flat lattice.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    relative_volume : float or (float, float)
        Target ``V / (|a||b||c|)``, log-uniform in the range (default 1e-12 .. 1e-3).
    max_coefficient : int
        ``n1, n2`` are drawn from ``[-max_coefficient, max_coefficient]``, not both zero.
    max_entry : int
        Entry bound of the shearing unimodular matrix (``<= 1`` still permutes/shears mildly).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    n = _check_n(n)
    _check_rng(rng)
    lo, hi = _check_range("relative_volume", relative_volume)
    if hi >= 1.0:
        raise OptionError(f"relative_volume must be < 1, got {relative_volume!r}")
    if max_coefficient < 1:
        raise OptionError(f"max_coefficient must be >= 1, got {max_coefficient}")
    base = physical(n, rng=rng)
    a, b = base[:, 0], base[:, 1]
    coef = rng.integers(-max_coefficient, max_coefficient + 1, size=(n, 2))
    zero = (coef == 0).all(axis=1)
    coef[zero, 0] = 1
    c0 = coef[:, :1] * a + coef[:, 1:] * b
    normal = np.cross(a, b)
    area = np.linalg.norm(normal, axis=1)
    normal /= area[:, None]
    flat = np.stack([a, b, c0], axis=1)
    m = _unimodular(n, max(int(max_entry), 1), rng)
    short = 0.5 * np.minimum(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    # a row of M @ (a, b, c0) that vanishes would be a multiple of delta alone: redraw that M
    redo = (np.linalg.norm(_apply_basis(m, flat), axis=-1) < short[:, None]).any(axis=1)
    while redo.any():
        m[redo] = _unimodular(int(redo.sum()), max(int(max_entry), 1), rng)
        redo = (np.linalg.norm(_apply_basis(m, flat), axis=-1) < short[:, None]).any(axis=1)
    norms = np.linalg.norm(_apply_basis(m, flat), axis=-1).prod(axis=-1)
    target = _log_uniform(rng, lo, hi, n)
    # V = |delta| * area and V = target * prod(norms)  =>  |delta| = target * prod / area
    delta = (target * norms / area)[:, None] * normal
    basis = np.stack([a, b, c0 + delta], axis=1)
    return _apply_basis(m, basis)


def extreme_aspect(
    n: int,
    *,
    rng: np.random.Generator,
    ratio: float | tuple[float, float] = (1e3, 1e8),
    shortest: tuple[float, float] = (2.0, 15.0),
    angles: tuple[float, float] = (60.0, 120.0),
    shapes: tuple[str, ...] = EXTREME_SHAPES,
    shear: tuple[float, float] | None = None,
) -> Array:
    """Cells with a longest-to-shortest length ratio from 1e3 to 1e8.

    The shapes cycle through :data:`EXTREME_SHAPES` by index (``needle`` ``(1, 1, r)``, ``plate``
    ``(1, r, r)``, ``graded`` ``(1, sqrt r, r)`` times the shortest length); the rows are
    shuffled and the cell rotated, so the long vector is not always c.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    ratio : float or (float, float)
        Longest / shortest length, log-uniform in the range.
    shortest : (float, float)
        Range of the shortest length in Angstrom.
    angles : (float, float)
        Range of the cell angles in degrees (kept away from flat cells).
    shapes : tuple of str
        The shapes to cycle through (a subset of :data:`EXTREME_SHAPES`, e.g. ``("needle", "plate")``).
    shear : (float, float) or None
        If given, each cell is put in a random basis ``M @ L`` whose unimodular ``M`` has an entry
        bound that is a power of ten drawn in ``[lo, hi]`` (as :func:`sheared`); ``None``: no shear.

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)

    Examples
    --------
    >>> import numpy as np
    >>> extreme_aspect(4, rng=np.random.default_rng(0), shapes=("needle", "plate"), shear=(1, 1e3)).shape
    (4, 3, 3)
    """
    n = _check_n(n)
    _check_rng(rng)
    unknown = [s for s in shapes if s not in EXTREME_SHAPES]
    if not shapes or unknown:
        raise OptionError(f"shapes must be a non-empty subset of {EXTREME_SHAPES}, got {shapes!r}")
    rlo, rhi = _check_range("ratio", ratio, low=1.0)
    slo, shi = _check_range("shortest", shortest)
    alo, ahi = _check_range("angles", angles)
    r = _log_uniform(rng, rlo, rhi, n)
    s = rng.uniform(slo, shi, size=n)
    shape = np.array([EXTREME_SHAPES.index(s) for s in shapes])[np.arange(n) % len(shapes)]
    middle = np.where(shape == 0, 1.0, np.where(shape == 1, r, np.sqrt(r)))
    lengths = s[:, None] * np.stack([np.ones(n), middle, r], axis=1)
    ang = _random_angles(n, rng, alo, ahi, 0.3)
    cells = _cells_from_parameters(lengths, ang)
    perm = np.argsort(rng.random((n, 3)), axis=1)
    cells = np.take_along_axis(cells, perm[:, :, None], axis=1)
    cells = _rotate(cells, random_rotations(n, rng=rng))
    if shear is None:
        return cells
    lo, hi = _check_range("shear", shear, low=0.5)
    return _apply_basis(_unimodular_decades(n, lo, hi, rng), cells)


def boundary_labels(n: int) -> list[tuple[str, bool]]:
    """``(kind, exact)`` of each lattice of :func:`boundary` ``(n, ...)``, by index.

    Kinds cycle through :data:`BOUNDARY_KINDS`; each full cycle alternates between exact
    (unperturbed) and perturbed lattices.

    Examples
    --------
    >>> boundary_labels(9)[0], boundary_labels(9)[8]
    (('cubic', True), ('hexagonal', False))
    """
    k = len(BOUNDARY_KINDS)
    return [(BOUNDARY_KINDS[i % k], (i // k) % 2 == 0) for i in range(_check_n(n))]


def _boundary_cell(kind: str, rng: np.random.Generator, lengths: tuple[float, float]) -> Array:
    """One conventional primitive cell of ``kind``; lengths are multiples of 1/8 (exact in binary)."""

    def length() -> float:
        return float(np.round(rng.uniform(*lengths) * 8.0) / 8.0)

    a = length()
    if kind == "cubic":
        return np.diag([a, a, a])
    if kind == "tetragonal":
        c = length()
        while c == a:
            c = length()
        return np.diag([a, a, c])
    if kind == "orthorhombic":
        b, c = length(), length()
        while len({a, b, c}) < 3:
            b, c = length(), length()
        return np.diag([a, b, c])
    if kind == "fcc":
        return a / 2.0 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    if kind == "bcc":
        return a / 2.0 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    if kind == "hexagonal":
        c = length()
        return np.array([[a, 0.0, 0.0], [-a / 2.0, a * np.sqrt(3.0) / 2.0, 0.0], [0.0, 0.0, c]])
    if kind == "rhombohedral":
        alpha = rng.uniform(20.0, 115.0)
        return _cells_from_parameters(np.array([[a, a, a]]), np.array([[alpha, alpha, alpha]]))[0]
    raise OptionError(f"unknown boundary kind {kind!r}; choose from {BOUNDARY_KINDS}")


def _signed_permutations(n: int, rng: np.random.Generator) -> Array:
    """Random signed permutation matrices with det +1 (exact rotations)."""
    out = np.zeros((n, 3, 3))
    for i in range(n):
        p = rng.permutation(3)
        s = rng.choice([-1.0, 1.0], size=3)
        m = np.zeros((3, 3))
        m[np.arange(3), p] = s
        if np.linalg.det(m) < 0:
            m[0] *= -1.0
        out[i] = m
    return out


def boundary(
    n: int,
    *,
    rng: np.random.Generator,
    perturbation: float = 1e-9,
    max_entry: int = 3,
    lengths: tuple[float, float] = (2.0, 15.0),
) -> Array:
    """Lattices on (or 1e-9 off) Niggli boundaries, in a random basis and orientation.

    Kinds and exactness follow :func:`boundary_labels`.  Each cell is built in its standard
    primitive setting (cubic, hexagonal, rhombohedral, fcc and bcc primitive, tetragonal,
    orthorhombic), perturbed (non-exact ones only) by ``perturbation`` times its longest
    length times standard normals, written in a random unimodular basis (entries up to
    ``max_entry``) and rotated.  Exact cells are rotated by a signed permutation, so the
    dyadic kinds (all but hexagonal and rhombohedral) stay *exactly* on the boundary in
    float64; perturbed cells by a Haar-random rotation.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    perturbation : float
        Relative size of the perturbation of the non-exact lattices.
    max_entry : int
        Entry bound of the random unimodular basis change.
    lengths : (float, float)
        Range of the cell lengths in Angstrom (rounded to multiples of 1/8).

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    n = _check_n(n)
    _check_rng(rng)
    _check_range("lengths", lengths)
    if not perturbation >= 0:
        raise OptionError(f"perturbation must be >= 0, got {perturbation}")
    labels = boundary_labels(n)
    cells = np.stack([_boundary_cell(kind, rng, lengths) for kind, _ in labels]) if n else np.zeros((0, 3, 3))
    exact = np.array([e for _, e in labels], dtype=bool)
    scale = np.abs(cells).max(axis=(1, 2)) if n else np.zeros(0)
    noise = rng.standard_normal((n, 3, 3)) * (perturbation * scale)[:, None, None]
    cells = np.where(exact[:, None, None], cells, cells + noise)
    cells = _apply_basis(_unimodular(n, max_entry, rng), cells)
    rot = np.where(exact[:, None, None], _signed_permutations(n, rng), random_rotations(n, rng=rng))
    return _rotate(cells, rot)


def untrained(
    n: int,
    *,
    rng: np.random.Generator,
    scale: float = 1.0,
    min_relative_volume: float = 1e-12,
) -> Array:
    """What an untrained model emits: i.i.d. Gaussian entries ``N(0, scale**2)``.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    scale : float
        Standard deviation of the entries (Angstrom).
    min_relative_volume : float
        Draws with ``V / (|a||b||c|)`` at or below this are redrawn; they are the (measure-zero
        in exact arithmetic) singular draws, kept out of the valid family.

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    n = _check_n(n)
    _check_rng(rng)
    if not (np.isfinite(scale) and scale > 0):
        raise OptionError(f"scale must be a positive number, got {scale}")
    out = np.empty((0, 3, 3))
    while len(out) < n:
        draw = rng.standard_normal((n - len(out), 3, 3)) * scale
        out = np.concatenate([out, draw[relative_volume(draw) > min_relative_volume]])
    return out


def scaled(
    n: int,
    *,
    rng: np.random.Generator,
    factors: tuple[float, ...] = (1e-8, 1e8),
) -> Array:
    """Physical lattices multiplied by tiny or huge factors (alternating by index).

    A scale-relative reducer (tolerance ``eps * V**(2/3)``) must reduce them exactly as the
    unscaled cells; an absolute tolerance breaks on them.

    Parameters
    ----------
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    factors : tuple of float
        Lattice ``i`` is multiplied by ``factors[i % len(factors)]``.

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    n = _check_n(n)
    _check_rng(rng)
    f = np.asarray(factors, dtype=np.float64)
    if f.ndim != 1 or len(f) == 0 or not np.all(np.isfinite(f) & (f > 0)):
        raise OptionError(f"factors must be a non-empty sequence of positive numbers, got {factors!r}")
    return physical(n, rng=rng) * f[np.arange(n) % len(f)][:, None, None]


# --------------------------------------------------------------------------- invalid inputs
def invalid_labels(n: int) -> list[str]:
    """The :data:`INVALID_KINDS` entry of each lattice of :func:`invalid` ``(n, ...)``.

    Examples
    --------
    >>> invalid_labels(8)
    ['nan', 'inf', 'neg_inf', 'zero', 'rank1', 'rank2', 'duplicate_row', 'nan']
    """
    return [INVALID_KINDS[i % len(INVALID_KINDS)] for i in range(_check_n(n))]


def invalid(n: int, *, rng: np.random.Generator) -> Array:
    """Invalid ``(3, 3)`` inputs: non-finite entries or an exactly singular basis.

    Kinds cycle through :data:`INVALID_KINDS` (see :func:`invalid_labels`); the error each must
    raise is :data:`INVALID_EXPECTED_ERROR`.  Singular ones have small integer entries, so they
    are singular *exactly* (a float rank-2 basis would usually be merely near-singular).
    NaN/inf entries sit at random positions of an otherwise physical basis.

    Parameters
    ----------
    n : int
        Number of inputs.
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    n = _check_n(n)
    _check_rng(rng)
    out = np.empty((n, 3, 3))
    for i, kind in enumerate(invalid_labels(n)):
        v = rng.integers(-5, 6, size=3).astype(np.float64)
        while not v.any():
            v = rng.integers(-5, 6, size=3).astype(np.float64)
        w = np.cross(v, rng.integers(-5, 6, size=3).astype(np.float64))
        while not w.any():
            w = np.cross(v, rng.integers(-5, 6, size=3).astype(np.float64))
        k = rng.integers(-3, 4, size=3).astype(np.float64)
        if kind in ("nan", "inf", "neg_inf"):
            m = physical(1, rng=rng)[0]
            bad = {"nan": np.nan, "inf": np.inf, "neg_inf": -np.inf}[kind]
            m[tuple(rng.integers(0, 3, size=2))] = bad
        elif kind == "zero":
            m = np.zeros((3, 3))
        elif kind == "rank1":
            if not k.any():
                k[0] = 1.0
            m = k[:, None] * v[None, :]
        elif kind == "rank2":
            m = np.stack([v, w, k[0] * v + k[1] * w])
        else:  # duplicate_row
            m = np.stack([v, w, v])
        out[i] = m
    return out


def invalid_shapes(*, rng: np.random.Generator) -> list[tuple[str, NDArray[Any]]]:
    """Inputs of a wrong shape, with finite physical-looking numbers, labelled by shape.

    None of them is ``(3, 3)`` or ``(..., 3, 3)``; each must raise
    :class:`~latticesym.errors.LatticeShapeError`.

    Examples
    --------
    >>> [label for label, _ in invalid_shapes(rng=np.random.default_rng(0))][:4]
    ['()', '(0,)', '(3,)', '(9,)']
    """
    _check_rng(rng)
    shapes = [(), (0,), (3,), (9,), (1, 3), (2, 3), (3, 2), (3, 4), (4, 3), (4, 4), (2, 2), (3, 3, 2), (2, 3, 4)]
    return [(str(s), rng.uniform(1.0, 5.0, size=s)) for s in shapes]


FAMILIES: dict[str, Callable[..., Array]] = {
    "physical": physical,
    "sheared": sheared,
    "near_singular": near_singular,
    "extreme_aspect": extreme_aspect,
    "boundary": boundary,
    "untrained": untrained,
    "scaled": scaled,
}
"""The valid stress families by name (``invalid`` is deliberately not in here)."""


def generate(name: str, n: int, rng: np.random.Generator, **params: Any) -> Array:
    """Draw ``n`` lattices of family ``name`` (``FAMILIES`` key or ``"invalid"``).

    Parameters
    ----------
    name : str
        A key of :data:`FAMILIES`, or ``"invalid"`` for :func:`invalid`.
    n : int
        Number of lattices.
    rng : numpy.random.Generator
        The only source of randomness.
    **params
        Keyword parameters of the family function.

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    if name == "invalid":
        return invalid(n, rng=rng, **params)
    try:
        fn = FAMILIES[name]
    except KeyError:
        raise OptionError(f"unknown family {name!r}; choose from {sorted(FAMILIES)} or 'invalid'") from None
    return fn(n, rng=rng, **params)
