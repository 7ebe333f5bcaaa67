"""A tiny featurizer of a user's CSP repository: density and neighbour statistics within a cutoff.

Two versions of the same features:

``neighbour_features_fixed_shift``
    Searches periodic images with a *fixed* range of -2..2 lattice shifts along each basis
    vector.  In a Niggli-reduced cell that is enough for a 3 Å cutoff, so every unit test
    written on textbook cells passes; in a sheared (but equally valid) basis of the same
    crystal some neighbours lie further than 2 cells away and are silently missed.
``neighbour_features``
    Niggli-reduces the cell first (``latticesym.niggli_reduce``), moves the atoms into the
    reduced basis and derives the shift range from the cutoff and the cell's layer spacings,
    so it returns the same features in every basis.

Both return ``[atoms per Å^3, mean neighbours within the cutoff, mean nearest-neighbour
distance]`` for ``fn(lattice, frac_coords, species)`` with rows of ``lattice`` the basis
vectors (latticesym's convention).
"""

from __future__ import annotations

import numpy as np

import latticesym
from latticesym.testing import integer_inverse, wrap_frac

CUTOFF = 3.0


def _features(lattice, frac, reach, cutoff):
    r = [np.arange(-k, k + 1) for k in reach]
    shifts = np.stack(np.meshgrid(*r, indexing="ij"), -1).reshape(-1, 3)
    diff = frac[None, :, None, :] - frac[:, None, None, :] + shifts[None, None, :, :]
    dist = np.linalg.norm(diff @ lattice, axis=-1).reshape(len(frac), -1)
    dist = np.where(dist < 1e-8, np.inf, dist)  # an atom is not its own neighbour
    count = np.sum(dist < cutoff, axis=1)
    density = len(frac) / abs(np.linalg.det(lattice))
    return np.array([density, count.mean(), dist.min(axis=1).mean()])


def neighbour_features_fixed_shift(lattice, frac_coords, species, cutoff=CUTOFF):
    """The buggy version: images -2..2 along each basis vector, whatever the basis."""
    lattice = np.asarray(lattice, dtype=np.float64)
    frac = np.asarray(frac_coords, dtype=np.float64) % 1.0
    return _features(lattice, frac, (2, 2, 2), cutoff)


def neighbour_features(lattice, frac_coords, species, cutoff=CUTOFF):
    """The fixed version: reduce first, then search as many images as the cutoff needs."""
    lattice = np.asarray(lattice, dtype=np.float64)
    reduced = latticesym.niggli_reduce(lattice)
    T = np.asarray(reduced.transform, dtype=np.int64)
    L = np.asarray(reduced.lattice, dtype=np.float64)
    frac = wrap_frac(np.asarray(frac_coords, dtype=np.float64) @ integer_inverse(T))
    # Layer spacing h_i = V / |b_j x b_k|: an image more than cutoff / h_i + 1 cells away
    # along basis vector i is further than the cutoff.
    volume = abs(np.linalg.det(L))
    spacing = volume / np.linalg.norm(np.cross(L[[1, 2, 0]], L[[2, 0, 1]]), axis=1)
    reach = tuple(int(np.floor(cutoff / h)) + 1 for h in spacing)
    return _features(L, frac, reach, cutoff)
