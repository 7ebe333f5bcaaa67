"""Metric quantities of lattices: Gram matrix, G6 vector, volume, cell parameters.

Conventions (``CONVENTIONS.md``): the rows of ``lattice`` are the basis vectors
a, b, c, so the Gram (metric) matrix is :math:`G = L L^T`, and a basis change
``L' = M @ L`` acts as :math:`G' = M G M^T`.  The G6 vector is in Andrews &
Bernstein / Krivy & Gruber order

.. math:: (A, B, C, \\xi, \\eta, \\zeta) = (a\\cdot a,\\ b\\cdot b,\\ c\\cdot c,\\
          2\\,b\\cdot c,\\ 2\\,a\\cdot c,\\ 2\\,a\\cdot b).

All functions here work on float arrays of shape ``(3, 3)`` or ``(..., 3, 3)``;
the exact counterparts live in :mod:`latticesym.reference`.  Public cell
parameters are in Angstrom and degrees.

References
----------
Andrews, L. C. & Bernstein, H. J. (1988). Acta Cryst. A44, 1009-1018.
https://doi.org/10.1107/S0108767388006427
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from latticesym.errors import LatticeShapeError, NonFiniteLatticeError

__all__ = [
    "as_lattice_array",
    "cell_parameters",
    "g6",
    "g6_to_gram",
    "gram",
    "gram_to_g6",
    "lattice_from_parameters",
    "volume",
]


def as_lattice_array(lattice: ArrayLike, *, batched: bool = True) -> NDArray[np.float64]:
    """Return ``lattice`` as a float64 array of shape ``(..., 3, 3)``, checking it.

    Parameters
    ----------
    lattice : array_like
        Rows are basis vectors.  Shape ``(3, 3)``, or ``(..., 3, 3)`` if ``batched``.
    batched : bool
        Allow leading batch dimensions.

    Raises
    ------
    TypeError
        If the input cannot be read as real numbers (strings, objects, complex).
    LatticeShapeError
        If the trailing shape is not ``(3, 3)``.
    NonFiniteLatticeError
        If any entry is NaN or infinite.
    """
    arr = np.asarray(lattice)
    if arr.dtype.kind == "c":
        raise TypeError(f"lattice must be real, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"lattice must be real numbers, got dtype {arr.dtype}") from exc
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim < 2 or arr.shape[-2:] != (3, 3) or (not batched and arr.ndim != 2):
        want = "(..., 3, 3)" if batched else "(3, 3)"
        raise LatticeShapeError(f"lattice must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        raise NonFiniteLatticeError(
            f"lattice has {len(bad)} non-finite entries, first at index {tuple(int(i) for i in bad[0])}"
        )
    return arr


def gram(lattice: ArrayLike) -> NDArray[np.float64]:
    """Gram (metric) matrix :math:`G = L L^T` of one lattice or a batch.

    Examples
    --------
    >>> gram([[2, 0, 0], [0, 3, 0], [1, 0, 1]])
    array([[4., 0., 2.],
           [0., 9., 0.],
           [2., 0., 2.]])
    """
    arr = as_lattice_array(lattice)
    return np.einsum("...ik,...jk->...ij", arr, arr)


def gram_to_g6(gram_matrix: ArrayLike) -> NDArray[np.float64]:
    """G6 vector ``(A, B, C, xi, eta, zeta)`` of a Gram matrix (or batch)."""
    g = np.asarray(gram_matrix, dtype=np.float64)
    if g.shape[-2:] != (3, 3):
        raise LatticeShapeError(f"Gram matrix must have shape (..., 3, 3), got {g.shape}")
    return np.stack(
        [g[..., 0, 0], g[..., 1, 1], g[..., 2, 2], 2 * g[..., 1, 2], 2 * g[..., 0, 2], 2 * g[..., 0, 1]],
        axis=-1,
    )


def g6(lattice: ArrayLike) -> NDArray[np.float64]:
    """G6 vector of a lattice (rows are basis vectors), shape ``(..., 6)``.

    Examples
    --------
    >>> g6([[1, 0, 0], [0, 2, 0], [0, 0, 3]])
    array([1., 4., 9., 0., 0., 0.])
    """
    return gram_to_g6(gram(lattice))


def g6_to_gram(g6_vector: ArrayLike) -> NDArray[np.float64]:
    """Inverse of :func:`gram_to_g6`: the symmetric Gram matrix of a G6 vector."""
    v = np.asarray(g6_vector, dtype=np.float64)
    if v.shape[-1:] != (6,):
        raise LatticeShapeError(f"G6 vector must have shape (..., 6), got {v.shape}")
    a, b, c, xi, eta, zeta = (v[..., i] for i in range(6))
    rows = [
        np.stack([a, zeta / 2, eta / 2], axis=-1),
        np.stack([zeta / 2, b, xi / 2], axis=-1),
        np.stack([eta / 2, xi / 2, c], axis=-1),
    ]
    return np.stack(rows, axis=-2)


def volume(lattice: ArrayLike) -> NDArray[np.float64]:
    """Signed volume :math:`\\det L` (positive for a right-handed basis)."""
    return np.asarray(np.linalg.det(as_lattice_array(lattice)))


def cell_parameters(lattice: ArrayLike) -> NDArray[np.float64]:
    """Cell parameters ``(a, b, c, alpha, beta, gamma)``, lengths in Angstrom, angles in degrees.

    :math:`\\alpha = \\angle(b, c)`, :math:`\\beta = \\angle(a, c)`, :math:`\\gamma = \\angle(a, b)`.
    """
    g = gram(lattice)
    lengths = np.sqrt(np.stack([g[..., 0, 0], g[..., 1, 1], g[..., 2, 2]], axis=-1))
    cos_al = g[..., 1, 2] / (lengths[..., 1] * lengths[..., 2])
    cos_be = g[..., 0, 2] / (lengths[..., 0] * lengths[..., 2])
    cos_ga = g[..., 0, 1] / (lengths[..., 0] * lengths[..., 1])
    angles = np.degrees(np.arccos(np.clip(np.stack([cos_al, cos_be, cos_ga], axis=-1), -1.0, 1.0)))
    return np.concatenate([lengths, angles], axis=-1)


def lattice_from_parameters(
    a: float, b: float, c: float, alpha: float, beta: float, gamma: float
) -> NDArray[np.float64]:
    """Lattice (rows a, b, c) with the given parameters, in the standard orientation.

    ``a`` along x, ``b`` in the xy-plane (the orientation of pymatgen and ASE).
    Angles in degrees.

    Examples
    --------
    >>> import numpy as np
    >>> L = lattice_from_parameters(3, 4, 5, 90, 90, 120)
    >>> np.allclose(cell_parameters(L), [3, 4, 5, 90, 90, 120])
    True
    """
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz2 = c * c - cx * cx - cy * cy
    if not cz2 > 0:
        from latticesym.errors import SingularLatticeError

        raise SingularLatticeError(
            f"cell parameters ({a}, {b}, {c}, {alpha}, {beta}, {gamma}) give no 3-D cell (c_z^2 = {cz2:.3g})"
        )
    return np.array(
        [[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [cx, cy, np.sqrt(cz2)]],
        dtype=np.float64,
    )
