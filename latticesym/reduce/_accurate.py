"""Accurate products ``transform @ lattice`` and volumes: error-free transformations and exact fallbacks.

A Niggli transform of a near-singular or heavily sheared basis has large integer entries, and the
reduced basis ``T @ L`` is then a sum of large terms that cancel.  A plain float product loses
``log2(|T| |L| / |T @ L|)`` bits there.  This module computes each entry with Dot2 of Ogita, Rump
& Oishi (2005): every product ``t * x`` is split error-free (Dekker's TwoProduct with Veltkamp's
splitting), the sum is accumulated with Knuth's TwoSum, so the result is as accurate as if it had
been computed in twice the working precision and then rounded,

.. math:: |\\mathrm{dot2}(t, x) - t^T x| \\le u\\,|t^T x| + \\gamma_3^2\\, |t|^T |x|,
          \\qquad u = 2^{-53},\\ \\gamma_3 = 3u / (1 - 3u),

i.e. faithfully rounded unless the cancellation ratio :math:`|t|^T|x| / |t^T x|` exceeds about
:math:`1/u \\approx 10^{16}`; the reducer checks that ratio through the error bounds of
:func:`latticesym.reduce._kg.g6_error_bounds` and escalates when it is too large.

Every function here is written with arithmetic operators only, so one definition serves Python
floats, numpy arrays (elementwise, identical rounding) and numba (compiled from the same source):
the batched, single and compiled reducers therefore produce bit-identical lattices.

References
----------
T. Ogita, S. M. Rump & S. Oishi (2005). Accurate sum and dot product. SIAM J. Sci. Comput. 26(6),
1955-1988. https://doi.org/10.1137/030601818
T. J. Dekker (1971). A floating-point technique for extending the available precision.
Numer. Math. 18, 224-242. https://doi.org/10.1007/BF01397083
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "UNIT_ROUNDOFF",
    "accurate_matmul",
    "cbrt_squared",
    "cbrt_squared_mantissa",
    "det3_with_bound",
    "dot2",
    "exact_det",
    "exact_matmul",
    "split",
    "two_product",
    "two_sum",
]

#: Unit roundoff of float64, :math:`u = 2^{-53}`.
UNIT_ROUNDOFF = 2.0**-53
_SPLITTER = 134217729.0  # 2**27 + 1, Veltkamp splitting of a float64 into two 26-bit halves


def split(a: Any) -> tuple[Any, Any]:
    """Veltkamp split ``a == hi + lo`` exactly, each half with at most 26 significant bits.

    Valid for ``|a| < 2**996`` (no overflow in ``2**27 * a``).
    """
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_product(x: Any, y: Any) -> tuple[Any, Any]:
    """Dekker's TwoProduct with Veltkamp's split: ``p + e == x * y`` exactly (no overflow, ``|x|, |y| < 2**996``).

    Operators only (floats, numpy arrays, tensors, numba; the split inlined, as numba compiles it
    without calls).
    """
    p = x * y
    cx, cy = x * _SPLITTER, y * _SPLITTER
    xh, yh = cx - (cx - x), cy - (cy - y)
    xl, yl = x - xh, y - yh
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """Knuth's TwoSum: ``s + t == a + b`` exactly.  Operators only."""
    s = a + b
    r = s - a
    return s, (a - (s - r)) + (b - r)


def dot2(t0: Any, t1: Any, t2: Any, x0: Any, x0h: Any, x0l: Any, x1: Any, x1h: Any, x1l: Any,
         x2: Any, x2h: Any, x2l: Any) -> Any:
    """Dot2 (Ogita, Rump & Oishi 2005) of ``(t0, t1, t2)`` with ``(x0, x1, x2)``.

    ``xkh, xkl`` are the Veltkamp halves of ``xk`` (see :func:`split`), precomputed because the
    same lattice column enters every row of the product.  The ``t`` are integers below ``2**53``
    held as floats.  Operators only: works on floats, numpy arrays and inside numba.

    Examples
    --------
    >>> x = [1e16, 1.0, -1e16]
    >>> parts = [v for xi in x for v in (xi, *split(xi))]
    >>> dot2(1.0, 1.0, 1.0, *parts)   # the naive sum gives 0.0
    1.0
    """
    # TwoProduct(t0, x0), Dekker 1971
    c = _SPLITTER * t0
    th = c - (c - t0)
    tl = t0 - th
    p = t0 * x0
    s = ((th * x0h - p) + th * x0l + tl * x0h) + tl * x0l
    # TwoProduct(t1, x1) then TwoSum(p, h), Knuth
    c = _SPLITTER * t1
    th = c - (c - t1)
    tl = t1 - th
    h = t1 * x1
    r = ((th * x1h - h) + th * x1l + tl * x1h) + tl * x1l
    q = p + h
    z = q - p
    s = s + (((p - (q - z)) + (h - z)) + r)
    p = q
    # TwoProduct(t2, x2) then TwoSum(p, h)
    c = _SPLITTER * t2
    th = c - (c - t2)
    tl = t2 - th
    h = t2 * x2
    r = ((th * x2h - h) + th * x2l + tl * x2h) + tl * x2l
    q = p + h
    z = q - p
    s = s + (((p - (q - z)) + (h - z)) + r)
    return q + s


def det3_with_bound(a00: Any, a01: Any, a02: Any, a10: Any, a11: Any, a12: Any, a20: Any, a21: Any,
                    a22: Any) -> tuple[Any, Any]:
    """Float determinant of a 3x3 matrix and a bound on its rounding error.

    ``|det_float - det_exact| <= bound``, with ``bound = 8 u P`` where ``P`` is the permanent of
    the absolute values (each term of the expansion has at most 5 roundings).  Operators only.
    """
    m0 = a11 * a22 - a12 * a21
    m1 = a10 * a22 - a12 * a20
    m2 = a10 * a21 - a11 * a20
    det = a00 * m0 - a01 * m1 + a02 * m2
    perm = (abs(a00) * (abs(a11 * a22) + abs(a12 * a21)) + abs(a01) * (abs(a10 * a22) + abs(a12 * a20))
            + abs(a02) * (abs(a10 * a21) + abs(a11 * a20)))
    return det, 8.0 * UNIT_ROUNDOFF * perm


def cbrt_squared_mantissa(m: Any) -> Any:
    """:math:`m^{2/3}` for ``m`` in ``[0.5, 4)`` by Newton's method (operators only).

    The four IEEE operations only, so numpy arrays, Python floats and numba agree bit for bit
    (``numpy.power`` and ``math.pow`` differ in the last bit).  Relative error below ``4 u``.
    """
    y = 0.7 + 0.25 * m
    for _ in range(6):  # Newton for y**3 = m, quadratic from a 10 % start
        y = y - (y * y * y - m) / (3.0 * y * y)
    return y * y


def cbrt_squared(v: Any, frexp: Any, ldexp: Any) -> Any:
    """:math:`v^{2/3}` for ``v > 0``: exact scaling to ``[0.5, 4)`` and :func:`cbrt_squared_mantissa`.

    ``frexp``/``ldexp`` are ``math``'s or ``numpy``'s (exact operations either way).

    Examples
    --------
    >>> import math
    >>> cbrt_squared(8.0, math.frexp, math.ldexp)
    4.0
    """
    f, x = frexp(v)  # v = f 2**x, f in [0.5, 1)
    k = x // 3
    return ldexp(cbrt_squared_mantissa(ldexp(f, x - 3 * k)), 2 * k)


def exact_matmul(transform: Any, lattice: Any) -> list[list[Fraction]]:
    """Exact ``transform @ lattice`` as Fractions (integers times floats, no rounding)."""
    t = [[int(v) for v in row] for row in np.asarray(transform, dtype=object)]
    x = [[Fraction(float(v)) for v in row] for row in np.asarray(lattice, dtype=np.float64)]
    return [[sum((t[i][k] * x[k][j] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]


def exact_det(lattice: ArrayLike) -> Fraction:
    """Exact determinant of a float 3x3 matrix (its entries read as the rationals they denote)."""
    a = [[Fraction(float(v)) for v in row] for row in np.asarray(lattice, dtype=np.float64)]
    return (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))


def accurate_matmul(transform: ArrayLike, lattice: ArrayLike) -> NDArray[np.float64]:
    """``transform @ lattice`` with every entry computed by Dot2 (see the module docstring).

    Parameters
    ----------
    transform : array_like of int, shape (..., 3, 3)
        Integer entries below ``2**53`` in absolute value.
    lattice : array_like of float, shape (..., 3, 3)

    Examples
    --------
    >>> import numpy as np
    >>> T = np.array([[1, 0, 0], [-10**8, 1, 0], [0, 0, 1]])
    >>> L = np.array([[1.0, 0.0, 0.0], [1e8 + 0.25, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> accurate_matmul(T, L)[1]
    array([0.25, 1.  , 0.  ])
    """
    t = np.asarray(transform).astype(np.float64)
    x = np.asarray(lattice, dtype=np.float64)
    xh, xl = split(x)
    out = np.empty(np.broadcast_shapes(t.shape, x.shape), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            out[..., i, j] = dot2(t[..., i, 0], t[..., i, 1], t[..., i, 2],
                                  x[..., 0, j], xh[..., 0, j], xl[..., 0, j],
                                  x[..., 1, j], xh[..., 1, j], xl[..., 1, j],
                                  x[..., 2, j], xh[..., 2, j], xl[..., 2, j])
    return out
