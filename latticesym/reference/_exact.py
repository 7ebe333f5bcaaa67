"""Exact input handling for the oracle: entries to Fractions, Gram matrices to integers.

Every value the oracle compares is an exact rational.  Floats are converted with
``fractions.Fraction(x)``, which is exact (a float is a dyadic rational), so the oracle
reduces *the lattice the float denotes*, not a rounded neighbour of it.
"""

from __future__ import annotations

import decimal
import math
import numbers
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from latticesym.errors import (
    LatticeShapeError,
    NonFiniteLatticeError,
    NotExactError,
    SingularLatticeError,
)

Matrix = tuple[tuple[Any, ...], ...]


def _is_sympy(x: Any) -> bool:
    return type(x).__module__.startswith("sympy")


def to_exact_scalar(x: Any) -> Any:
    """Convert one entry to a ``Fraction``, or keep an irrational sympy expression.

    Raises
    ------
    TypeError
        For values that are not real numbers (strings, complex, None, bool).
    NonFiniteLatticeError
        For NaN or infinite floats.
    """
    if isinstance(x, bool | np.bool_):
        raise TypeError(f"lattice entries must be numbers, got bool {x!r}")
    if isinstance(x, Fraction):
        return x
    if isinstance(x, numbers.Integral):
        return Fraction(int(x))
    if isinstance(x, float | np.floating):
        xf = float(x)
        if not math.isfinite(xf):
            raise NonFiniteLatticeError(f"lattice entry {xf!r} is not finite")
        return Fraction(xf)
    if isinstance(x, Decimal):
        if not x.is_finite():
            raise NonFiniteLatticeError(f"lattice entry {x!r} is not finite")
        return Fraction(x)
    if _is_sympy(x):
        import sympy

        expr = sympy.sympify(x)
        if expr.is_Rational:
            return Fraction(int(expr.p), int(expr.q))
        if expr.is_Float:  # always finite: sympy turns Float("inf") into oo, Float("nan") into nan
            return Fraction(str(expr))
        if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
            raise NonFiniteLatticeError(f"lattice entry {expr} is not finite")
        if expr.is_real is False:
            raise TypeError(f"lattice entries must be real, got {expr}")
        return expr
    if isinstance(x, numbers.Rational):
        return Fraction(int(x.numerator), int(x.denominator))
    if isinstance(x, complex | np.complexfloating):
        raise TypeError(f"lattice entries must be real, got complex {x!r}")
    raise TypeError(f"lattice entries must be ints, floats, Fractions or sympy numbers, got {type(x).__name__}")


def to_exact_lattice(lattice: Any) -> Matrix:
    """Return the 3x3 lattice as a tuple of row tuples of exact entries.

    Accepts nested sequences, numpy arrays (numeric or object dtype) and sympy matrices.
    """
    if isinstance(lattice, str | bytes):
        raise TypeError("lattice must be a 3x3 array of numbers, got a string")
    arr = np.asarray(lattice, dtype=object)  # numpy arrays give Python scalars; sympy matrices convert too
    if arr.shape != (3, 3):
        raise LatticeShapeError(f"the exact oracle reduces one lattice of shape (3, 3), got shape {arr.shape}")
    return tuple(tuple(to_exact_scalar(arr[i, j]) for j in range(3)) for i in range(3))


def is_rational_matrix(m: Matrix) -> bool:
    """True when every entry is a ``Fraction`` (no irrational sympy expressions)."""
    return all(isinstance(x, Fraction) for row in m for x in row)


def exact_gram(lattice: Matrix) -> tuple[tuple[Fraction, ...], ...]:
    """Exact Gram matrix ``L @ L.T`` as Fractions.

    Raises
    ------
    NotExactError
        If an entry of the Gram matrix is irrational (e.g. rows ``(sqrt(2), 0, 0)`` and
        ``(1, 0, 0)`` give ``a.b = sqrt(2)``).
    """
    rows = lattice
    if is_rational_matrix(rows):
        return tuple(tuple(sum(x * y for x, y in zip(rows[i], rows[j])) for j in range(3))
                     for i in range(3))
    import sympy

    out = []
    for i in range(3):
        out_row = []
        for j in range(3):
            entry = sympy.nsimplify(sympy.radsimp(sympy.expand(sum(
                sympy.sympify(x) * sympy.sympify(y) for x, y in zip(rows[i], rows[j])))))
            if not entry.is_Rational:
                raise NotExactError(
                    f"Gram entry ({i}, {j}) = {entry} is not rational; the exact oracle needs a rational "
                    "metric L @ L.T (e.g. hexagonal cells with sqrt(3)/2 are fine, sqrt(2) next to 1 is not)"
                )
            out_row.append(Fraction(int(entry.p), int(entry.q)))
        out.append(tuple(out_row))
    return tuple(out)


def integer_gram(gram: tuple[tuple[Fraction, ...], ...]) -> tuple[list[list[int]], int]:
    """Scale a rational Gram matrix to integers: returns ``(K, d)`` with ``gram == K / d``."""
    d = math.lcm(*(x.denominator for row in gram for x in row))
    return [[int(x * d) for x in row] for row in gram], d


def det3(m: Any) -> Any:
    """Exact determinant of a 3x3 matrix given as nested sequences (ints/Fractions/sympy)."""
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


#: Decimal context for the approximate numbers in error messages: any exponent (an exact entry
#: of 1e300 has a Gram entry of 1e600, beyond float64), 28 digits, no traps but the usual ones.
_MESSAGE_CONTEXT = decimal.Context(prec=28, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_MESSAGE_CONTEXT_6 = decimal.Context(prec=6, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
#: Exact numbers whose numerator or denominator has more bits than this are printed rounded
#: (Python refuses ``str`` of ints above 4300 digits, about 14284 bits).
_MAX_EXACT_BITS = 14000


def approx_str(x: Any, *, sqrt: bool = False) -> str:
    """``x`` (or :math:`\\sqrt{x}`) to 6 significant digits, for any size of exact rational.

    Unlike ``float(x)`` this never overflows or underflows: ``approx_str(Fraction(10**600),
    sqrt=True) == "1e+300"``.  The square root of a negative number is printed with an ``i``.
    """
    if not isinstance(x, Fraction):
        return str(x)  # an irrational sympy expression: its exact form
    ctx = _MESSAGE_CONTEXT
    v = ctx.divide(Decimal(x.numerator), Decimal(x.denominator))
    suffix = ""
    if sqrt:
        if v < 0:
            v, suffix = -v, "i"
        v = ctx.sqrt(v)
    v = _MESSAGE_CONTEXT_6.normalize(v)
    if not v or Decimal("1e-300") < abs(v) < Decimal("1e300"):
        return f"{float(v):.6g}{suffix}"  # float64's own format where it can hold the value
    return f"{v:g}{suffix}"


def exact_str(x: Any) -> str:
    """``str(x)``, or ``~`` and 6 digits when ``x`` is a rational too long to print."""
    if isinstance(x, Fraction) and max(abs(x.numerator).bit_length(), x.denominator.bit_length()) > _MAX_EXACT_BITS:
        return "~" + approx_str(x)
    return str(x)


def check_nonsingular(lattice: Matrix, gram: tuple[tuple[Fraction, ...], ...]) -> None:
    """Raise :class:`SingularLatticeError` when ``det(G) == 0`` exactly.

    The message carries the exact determinant, the vector lengths :math:`\\sqrt{G_{ii}}` and
    the rows, formatted without passing through float64 (entries near ``1e300`` have Gram
    entries near ``1e600``, which ``float`` cannot hold).
    """
    det_g = det3(gram)
    if det_g <= 0:
        lengths = ", ".join(approx_str(gram[i][i], sqrt=True) for i in range(3))
        raise SingularLatticeError(
            f"basis is linearly dependent: det(L @ L.T) = {exact_str(det_g)} exactly (vector lengths {lengths}); "
            f"lattice = {[[exact_str(x) for x in row] for row in lattice]}"
        )
