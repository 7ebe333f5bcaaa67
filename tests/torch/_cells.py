"""Shared ground-truth cells of the torch tests: lattices on Niggli boundaries and a triclinic one.

One definition for ``test_proxy_loss.py`` and ``test_gram_fast.py`` (rows are basis vectors,
conventional primitive settings).  :data:`PROXY` and :data:`FAST` name the selections each module
parametrizes over, so adding a cell here does not silently change either module's cases.
"""

from __future__ import annotations

import numpy as np

from latticesym.metric import lattice_from_parameters

__all__ = ["BOUNDARY", "FAST", "PROXY", "cells"]

#: The cells ``test_proxy_loss.py`` uses (the measured table of docs/experiments/mlp.md).
PROXY = ("cubic", "fcc", "bcc", "hexagonal", "rhombohedral", "rhombohedral_acute", "triclinic")
#: The cells ``test_gram_fast.py`` uses (adds a tetragonal cell: two equal lengths, not three).
FAST = ("cubic", "fcc", "bcc", "hexagonal", "rhombohedral", "tetragonal", "triclinic")
#: The cells on a Niggli boundary (all but the triclinic one).
BOUNDARY = ("cubic", "fcc", "bcc", "hexagonal", "rhombohedral", "rhombohedral_acute", "tetragonal")


def cells(names: tuple[str, ...] = PROXY) -> dict[str, np.ndarray]:
    """The named cells, ``(3, 3)`` float64 each, in the order of ``names``."""
    a = 4.0
    table = {
        "cubic": a * np.eye(3),
        "fcc": a / 2 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]]),
        "bcc": a / 2 * np.array([[-1.0, 1, 1], [1, -1, 1], [1, 1, -1]]),
        "hexagonal": lattice_from_parameters(3.0, 3.0, 5.0, 90, 90, 120),
        "rhombohedral": lattice_from_parameters(3.5, 3.5, 3.5, 75, 75, 75),
        "rhombohedral_acute": lattice_from_parameters(3.5, 3.5, 3.5, 40, 40, 40),
        "tetragonal": lattice_from_parameters(3.0, 3.0, 4.5, 90, 90, 90),
        "triclinic": lattice_from_parameters(3.1, 4.3, 5.2, 78, 83, 95),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise KeyError(f"unknown cells {unknown}; known: {sorted(table)}")
    return {n: np.asarray(table[n], dtype=np.float64) for n in names}
