"""Arithmetic contexts for the one Niggli reducer of :func:`latticesym.reduce._kg.reduce_with_context`.

A context supplies the arithmetic and nothing else: how a row of ``T @ L`` is formed, dot
products, rounding of a quotient, the volume and tolerance, error bounds and the range limit of
transform entries.  The decisions themselves live in :func:`latticesym.reduce._kg.kg_decide`.

- :class:`FloatContext`: float64, the same operations in the same order as the numba kernel and
  the numpy batch (rows by a plain product, or Dot2 when it cancels; see ``_accurate``).
- :class:`MPContext`: ``mpmath`` at an explicit binary precision, through a private
  ``mpmath.MPContext`` instance (the global ``mpmath.mp`` precision is never touched).  Rows are
  computed exactly and rounded once.
- :class:`ExactContext`: ``fractions.Fraction``; every comparison exact, error bounds zero.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

from latticesym.errors import OptionError
from latticesym.reduce._accurate import UNIT_ROUNDOFF, cbrt_squared, det3_with_bound, dot2, split
from latticesym.reduce._kg import VOLUME_RTOL, g6_error_bounds

__all__ = ["ExactContext", "FloatContext", "MPContext", "exact_entries"]

#: Largest transform entry (in absolute value) the float reducers allow: integers below this
#: are exact in float64 and their products with an entry stay exact after the Veltkamp split.
MAX_TRANSFORM = 2.0**52
#: Rows whose cancellation ratio ``|T_i| |L| / |row|`` exceeds ``2**20`` are formed with Dot2.
CANCEL_RATIO_SQ = 2.0**40
#: Absolute error allowance for underflow in float64 products.
FLOAT_TINY = 2.0**-1020


class FloatData:
    """A (normalised) float64 lattice with its Veltkamp halves and row norms."""

    __slots__ = ("hi", "lo", "norms", "x")

    def __init__(self, lattice: Any):
        self.x = [[float(v) for v in row] for row in lattice]
        self.hi = [[split(v)[0] for v in row] for row in self.x]
        self.lo = [[split(v)[1] for v in row] for row in self.x]
        self.norms = [math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]) * (1.0 + 8.0 * UNIT_ROUNDOFF)
                      for r in self.x]


class FloatContext:
    """float64 arithmetic, bit-identical to the numba kernel and the numpy batch."""

    has_fast_rows = True
    u = UNIT_ROUNDOFF
    zero = 0.0
    tiny = FLOAT_TINY
    name = "float64"

    @staticmethod
    def prepare(lattice: Any) -> FloatData:
        return FloatData(lattice)

    @staticmethod
    def row(t: list[int], d: FloatData, accurate: bool) -> list[float]:
        t0, t1, t2 = float(t[0]), float(t[1]), float(t[2])
        x = d.x
        if not accurate:
            r = [t0 * x[0][j] + t1 * x[1][j] + t2 * x[2][j] for j in range(3)]
            s = abs(t0) * d.norms[0] + abs(t1) * d.norms[1] + abs(t2) * d.norms[2]
            if not s * s > CANCEL_RATIO_SQ * (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]):
                return r
        h, lo = d.hi, d.lo
        return [dot2(t0, t1, t2, x[0][j], h[0][j], lo[0][j], x[1][j], h[1][j], lo[1][j],
                     x[2][j], h[2][j], lo[2][j]) for j in range(3)]

    @staticmethod
    def dot(a: list[float], b: list[float]) -> float:
        return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]

    @staticmethod
    def volume(rows: list[list[float]], d: FloatData) -> tuple[float, bool]:
        det, bound = det3_with_bound(*rows[0], *rows[1], *rows[2])
        v = abs(det)
        return v, bool(bound + FLOAT_TINY < VOLUME_RTOL * v)

    @staticmethod
    def tolerance(v: float, eps: float) -> float:
        return eps * cbrt_squared(v, math.frexp, math.ldexp)

    @staticmethod
    def round_half_away(x: float) -> float:
        n = math.floor(abs(x) + 0.5)
        return float(n) if x >= 0 else -float(n)

    @staticmethod
    def shear_fits(ti: list[int], tj: list[int], q: float) -> bool:
        aq = abs(float(q))
        return all(abs(float(a)) + aq * abs(float(b)) <= MAX_TRANSFORM for a, b in zip(ti, tj))

    @staticmethod
    def sum_fits(a: list[int], b: list[int], c: list[int]) -> bool:
        return all(abs(float(x)) + abs(float(y)) + abs(float(z)) <= MAX_TRANSFORM for x, y, z in zip(a, b, c))

    @staticmethod
    def g6_errors(rows: list[list[float]], g: list[list[float]], t: list[list[int]], d: FloatData
                  ) -> tuple[float, ...]:
        nb = [math.sqrt(g[i][i]) * (1.0 + 8.0 * UNIT_ROUNDOFF) for i in range(3)]
        s = [abs(float(t[i][0])) * d.norms[0] + abs(float(t[i][1])) * d.norms[1] + abs(float(t[i][2])) * d.norms[2]
             for i in range(3)]
        return g6_error_bounds(nb[0], nb[1], nb[2], s[0], s[1], s[2], UNIT_ROUNDOFF, FLOAT_TINY)


# --------------------------------------------------------------------------- exact helpers
def exact_entries(lattice: Any) -> tuple[tuple[Fraction, ...], ...]:
    """The 3x3 lattice as exact Fractions (floats exactly, mpmath numbers exactly).

    Raises
    ------
    TypeError, LatticeShapeError, NonFiniteLatticeError
        As :func:`latticesym.reference.to_exact_lattice`; irrational sympy entries raise
        :class:`~latticesym.errors.NotExactError` (give floats or mpmath numbers instead).
    """
    from latticesym.errors import NotExactError
    from latticesym.reference import to_exact_lattice

    rows = [[_mpf_to_fraction(v) for v in row] for row in lattice] if _has_mpf(lattice) else lattice
    out = to_exact_lattice(rows)
    if not all(isinstance(v, Fraction) for row in out for v in row):
        raise NotExactError("the mpmath and exact reducers need rational entries (floats, ints, Fractions, "
                            "mpmath numbers or sympy rationals), got an irrational sympy expression")
    return out


def _has_mpf(lattice: Any) -> bool:
    try:
        return any(hasattr(v, "_mpf_") for row in lattice for v in row)
    except TypeError:
        return False


def _mpf_to_fraction(v: Any) -> Any:
    """An mpmath number as the exact Fraction it holds (anything else unchanged; inf/nan as floats)."""
    if not hasattr(v, "_mpf_"):
        return v
    import mpmath

    if not mpmath.isfinite(v):
        return float(v)  # inf / nan: rejected downstream with NonFiniteLatticeError
    # the raw (sign, mantissa, exponent, bitcount) tuple, read as it is: value = (-1)**sign * man * 2**exp.
    # Not ``mpmath.mpf(v).man_exp``: that re-rounds to the global precision and its mantissa is unsigned.
    sign, man, exp, _ = v._mpf_
    return (-1) ** int(sign) * Fraction(int(man)) * (Fraction(2) ** int(exp))


def _exact_det(x: tuple[tuple[Fraction, ...], ...]) -> Fraction:
    return (x[0][0] * (x[1][1] * x[2][2] - x[1][2] * x[2][1]) - x[0][1] * (x[1][0] * x[2][2] - x[1][2] * x[2][0])
            + x[0][2] * (x[1][0] * x[2][1] - x[1][1] * x[2][0]))


class _UnboundedTransforms:
    """Transform-size guards of arithmetics whose integers never overflow (Fraction, mpmath)."""

    @staticmethod
    def shear_fits(ti: Any, tj: Any, q: Any) -> bool:
        return True

    @staticmethod
    def sum_fits(a: Any, b: Any, c: Any) -> bool:
        return True


class ExactData:
    __slots__ = ("det", "x")

    def __init__(self, x: tuple[tuple[Fraction, ...], ...]):
        self.x = x
        self.det = _exact_det(x)


def _exact_row(t: list[int], x: tuple[tuple[Fraction, ...], ...]) -> list[Fraction]:
    return [t[0] * x[0][j] + t[1] * x[1][j] + t[2] * x[2][j] for j in range(3)]


class ExactContext(_UnboundedTransforms):
    """Exact rational arithmetic (``Fraction``): no rounding, error bounds zero."""

    has_fast_rows = False
    u = Fraction(0)
    zero = Fraction(0)
    name = "exact"

    @staticmethod
    def prepare(lattice: Any) -> ExactData:
        return ExactData(exact_entries(lattice))

    @staticmethod
    def row(t: list[int], d: ExactData, accurate: bool) -> list[Fraction]:
        return _exact_row(t, d.x)

    @staticmethod
    def dot(a: list[Fraction], b: list[Fraction]) -> Fraction:
        return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]

    @staticmethod
    def volume(rows: Any, d: ExactData) -> tuple[Fraction, bool]:
        return abs(d.det), True

    @staticmethod
    def tolerance(v: Fraction, eps: Any) -> Fraction:
        return Fraction(float(eps) * cbrt_squared(float(v), math.frexp, math.ldexp))

    @staticmethod
    def round_half_away(x: Fraction) -> int:
        n = math.floor(abs(x) + Fraction(1, 2))
        return n if x >= 0 else -n

    @staticmethod
    def g6_errors(rows: Any, g: Any, t: Any, d: Any) -> tuple[Fraction, ...]:
        return (Fraction(0),) * 6


@functools.lru_cache(maxsize=16)
def _mp_instance(prec: int) -> Any:
    import mpmath

    ctx = mpmath.MPContext()
    ctx.prec = prec
    return ctx


class MPContext(_UnboundedTransforms):
    """``mpmath`` arithmetic at ``prec`` bits, on a private ``mpmath.MPContext`` instance.

    Rows of ``T @ L`` are computed exactly and rounded once to ``prec`` bits (correctly rounded);
    dot products, the tolerance and all comparisons run at ``prec`` bits, and the certification
    uses the error bounds with :math:`u = 2^{-prec}`.
    """

    has_fast_rows = False
    tiny = 0

    def __init__(self, prec: int):
        if not isinstance(prec, int) or isinstance(prec, bool) or prec < 53:
            raise OptionError(f"prec must be an int >= 53 (bits), got {prec!r}")
        self.prec = prec
        self.mp = _mp_instance(prec)
        self.u = self.mp.mpf(2) ** (-prec)
        self.zero = self.mp.mpf(0)
        self.name = f"mpmath({prec} bits)"

    def to_mp(self, x: Fraction) -> Any:
        from mpmath.libmp import from_rational

        return self.mp.make_mpf(from_rational(x.numerator, x.denominator, self.prec, "n"))

    def prepare(self, lattice: Any) -> ExactData:
        return ExactData(exact_entries(lattice))

    def row(self, t: list[int], d: ExactData, accurate: bool) -> list[Any]:
        return [self.to_mp(v) for v in _exact_row(t, d.x)]

    @staticmethod
    def dot(a: list[Any], b: list[Any]) -> Any:
        return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]

    def volume(self, rows: Any, d: ExactData) -> tuple[Any, bool]:
        return self.to_mp(abs(d.det)), True

    def tolerance(self, v: Any, eps: Any) -> Any:
        return self.to_mp(Fraction(eps)) * self.mp.cbrt(v) ** 2

    def round_half_away(self, x: Any) -> Any:
        n = self.mp.floor(abs(x) + self.mp.mpf(0.5))
        return n if x >= 0 else -n

    def g6_errors(self, rows: Any, g: Any, t: Any, d: Any) -> tuple[Any, ...]:
        one = 1 + 8 * self.u
        nb = [self.mp.sqrt(g[i][i]) * one for i in range(3)]
        return g6_error_bounds(nb[0], nb[1], nb[2], 0, 0, 0, self.u, 0)
