r"""The rotation-free "parameters" frame of CDVAE / DiffCSP, built from the Gram matrix.

For a basis with lengths :math:`a, b, c` and angles :math:`\alpha, \beta, \gamma` (read off the
Gram matrix :math:`G = L L^T`: :math:`a^2 = G_{00}`, :math:`\cos\alpha = G_{12}/(bc)`, ...) the frame
is the one of pymatgen ``Lattice.from_parameters`` and CDVAE ``lattice_params_to_matrix``:

.. math::

    \cos\gamma^* = \frac{\cos\alpha\cos\beta - \cos\gamma}{\sin\alpha\sin\beta},\quad
    \mathbf a = (a\sin\beta,\ 0,\ a\cos\beta),\quad
    \mathbf b = (-b\sin\alpha\cos\gamma^*,\ b\sin\alpha\sin\gamma^*,\ b\cos\alpha),\quad
    \mathbf c = (0,\ 0,\ c).

It depends on :math:`G` only, so it is invariant under every rotation of the input; its
determinant is positive (a right-handed frame).  Note :func:`latticesym.metric.lattice_from_parameters`
uses another frame (``a`` along x).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__: list[str] = []


def frame_from_g6(g6: NDArray[np.float64]) -> NDArray[np.float64]:
    """Parameters-frame lattices ``(B, 3, 3)`` from G6 vectors ``(B, 6)`` (A, B, C, xi, eta, zeta)."""
    g6 = np.asarray(g6, dtype=np.float64)
    a, b, c = np.sqrt(g6[:, 0]), np.sqrt(g6[:, 1]), np.sqrt(g6[:, 2])
    cos_al = np.clip(g6[:, 3] / (2.0 * b * c), -1.0, 1.0)
    cos_be = np.clip(g6[:, 4] / (2.0 * a * c), -1.0, 1.0)
    cos_ga = np.clip(g6[:, 5] / (2.0 * a * b), -1.0, 1.0)
    sin_al = np.sqrt(1.0 - cos_al * cos_al)
    sin_be = np.sqrt(1.0 - cos_be * cos_be)
    cos_gs = np.clip((cos_al * cos_be - cos_ga) / (sin_al * sin_be), -1.0, 1.0)
    sin_gs = np.sqrt(1.0 - cos_gs * cos_gs)
    out = np.zeros((g6.shape[0], 3, 3), dtype=np.float64)
    out[:, 0, 0] = a * sin_be
    out[:, 0, 2] = a * cos_be
    out[:, 1, 0] = -b * sin_al * cos_gs
    out[:, 1, 1] = b * sin_al * sin_gs
    out[:, 1, 2] = b * cos_al
    out[:, 2, 2] = c
    return out
