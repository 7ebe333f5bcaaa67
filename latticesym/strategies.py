"""Hypothesis strategies for lattices, unimodular basis changes and rotations.

Every strategy takes keyword-only arguments that are validated when the strategy is built
(``hypothesis.errors.InvalidArgument``, as Hypothesis' own strategies do), and every
docstring says what failing examples shrink towards.  Conventions follow ``CONVENTIONS.md``:
rows of a lattice are its basis vectors, a basis change is ``M @ L``, a rotation is
``L @ Q.T``.

Output types
------------
- float lattices: ``numpy.ndarray`` of shape ``(3, 3)``, dtype ``float64``;
- exact lattices (``exact=True`` or ``kind="exact"``): ``numpy.ndarray`` of shape ``(3, 3)``,
  dtype ``object``, every entry a ``fractions.Fraction`` (small denominators), accepted as
  is by :mod:`latticesym.reference`;
- unimodular matrices: ``(3, 3)`` ``int64`` arrays;
- rotations: ``(3, 3)`` ``float64``, or ``object`` arrays of ``Fraction`` when exact.

Examples
--------
>>> from hypothesis import given, settings
>>> from latticesym.groups import exact_det
>>> @settings(max_examples=20)
... @given(lattices(exact=True), unimodular_matrices(max_entry=2, det="either"))
... def test_volume_is_basis_invariant(lattice, m):
...     assert abs(exact_det(m @ lattice)) == abs(exact_det(lattice)) != 0
>>> test_volume_is_basis_invariant()
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from numpy.typing import NDArray

from latticesym import groups, metric

__all__ = [
    "BOUNDARY_FAMILIES",
    "KINDS",
    "NEAR_SINGULAR_RANGE",
    "boundary_lattices",
    "g6_vectors",
    "lattices",
    "rotations",
    "unimodular_matrices",
]

#: Kinds accepted by :func:`lattices`.
KINDS = ("physical", "sheared", "near_singular", "boundary", "exact", "any")

#: Bravais-lattice families of :func:`boundary_lattices` (primitive cells, rational coordinates).
BOUNDARY_FAMILIES = (
    "cubic_P",
    "cubic_F",
    "cubic_I",
    "tetragonal_P",
    "tetragonal_I",
    "orthorhombic_P",
    "orthorhombic_C",
    "orthorhombic_I",
    "orthorhombic_F",
    "hexagonal_P",
    "rhombohedral_R",
    "monoclinic_P",
    "monoclinic_C",
)

#: Range of the relative volume ``V / (|a| |b| |c|)`` of ``kind="near_singular"`` lattices.
NEAR_SINGULAR_RANGE = (1e-12, 1e-3)

_MIN_LENGTH_FLOOR = 0.01
_MAX_LENGTH_CEIL = 1000.0
_MAX_SHEAR_ENTRY = 10**9
_DENOM = 16  # exact lengths are multiples of 1/16 Angstrom
_SHEAR_MAX = 0.7  # |off-diagonal / diagonal| of the triangular cell (angles about 55-125 degrees)
_PAIRS = ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1))
_RHOMBOHEDRAL_PQ = tuple(
    sorted(
        ((p, q) for p in range(1, 7) for q in range(-3, 4) if q != 0 and (p - q) * (p + 2 * q) != 0),
        key=lambda pq: (abs(pq[1]), pq[0], pq[1] < 0),
    )
)


# --------------------------------------------------------------------------- validation
def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgument(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{name} must be an int in [{lo}, {hi}], got {type(value).__name__} {value!r}")
    if not lo <= int(value) <= hi:
        raise InvalidArgument(f"{name} must be an int in [{lo}, {hi}], got {value}")
    return int(value)


def _check_det(det: Any) -> int | str:
    if isinstance(det, str) and det == "either":
        return det
    if isinstance(det, numbers.Integral) and not isinstance(det, bool | np.bool_) and det in (1, -1):
        return int(det)
    raise InvalidArgument(f"det must be 1, -1 or 'either', got {det!r}")


def _check_lengths(min_length: Any, max_length: Any) -> tuple[float, float]:
    for name, v in (("min_length", min_length), ("max_length", max_length)):
        if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise InvalidArgument(f"{name} must be a finite real number, got {v!r}")
    lo, hi = float(min_length), float(max_length)
    if not _MIN_LENGTH_FLOOR <= lo <= hi <= _MAX_LENGTH_CEIL:
        raise InvalidArgument(
            f"need {_MIN_LENGTH_FLOOR} <= min_length <= max_length <= {_MAX_LENGTH_CEIL} (Angstrom), "
            f"got min_length={min_length!r}, max_length={max_length!r}"
        )
    if math.floor(hi * _DENOM) < math.ceil(lo * _DENOM):
        raise InvalidArgument(
            f"[min_length, max_length] = [{lo}, {hi}] holds no multiple of 1/{_DENOM} Angstrom "
            "(needed for exact and boundary lattices)"
        )
    return lo, hi


# --------------------------------------------------------------------------- helpers
def _fraction_array(rows: Any) -> NDArray[Any]:
    arr = np.asarray(rows, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        x: Any = arr[idx]
        out[idx] = Fraction(int(x)) if isinstance(x, numbers.Integral) else Fraction(x)
    return out


def _admissible_q(ri: Sequence[int], rj: Sequence[int], k: int) -> tuple[int, int]:
    """Integers ``q`` with ``max |ri + q rj| <= k`` form ``[lo, hi]`` (containing 0)."""
    lo, hi = -(2**63), 2**63
    for a, b in zip(ri, rj):
        if b > 0:
            hi, lo = min(hi, (k - a) // b), max(lo, -((k + a) // b))
        elif b < 0:
            hi, lo = min(hi, (-k - a) // b), max(lo, -((a - k) // b))
    return lo, hi


def _signed_permutation(perm: Sequence[int], flips: Sequence[bool], det: int) -> list[list[int]]:
    signs = [-1 if flips[0] else 1, -1 if flips[1] else 1, 1]
    p = [[1 if j == perm[i] else 0 for j in range(3)] for i in range(3)]
    sign_perm = round(float(np.linalg.det(np.array(p, dtype=float))))
    signs[2] = det * sign_perm * signs[0] * signs[1]
    return [[signs[i] * p[i][j] for j in range(3)] for i in range(3)]


def _grid(draw: Callable[..., Any], lo: Fraction, hi: Fraction) -> Fraction:
    """A multiple of 1/16 in [lo, hi] (or the one just above lo if none), shrinking towards lo or 0."""
    a, b = math.ceil(lo * _DENOM), math.floor(hi * _DENOM)
    return Fraction(draw(st.integers(a, max(a, b))), _DENOM)


def _real(draw: Callable[..., Any], lo: Any, hi: Any, exact: bool) -> Any:
    if exact:
        return _grid(draw, Fraction(lo), Fraction(hi))
    return draw(st.floats(float(lo), max(float(lo), float(hi)), allow_nan=False, allow_infinity=False))


def _rodrigues(w: Sequence[float]) -> NDArray[np.float64]:
    """Rotation by the angle ``|w|`` about ``w`` (Rodrigues), stable for every ``|w|`` including 0."""
    w_arr = np.asarray(w, dtype=np.float64)
    theta = float(np.linalg.norm(w_arr))
    k = np.array([[0.0, -w_arr[2], w_arr[1]], [w_arr[2], 0.0, -w_arr[0]], [-w_arr[1], w_arr[0], 0.0]])
    sin_term = np.sinc(theta / np.pi)  # sin(t) / t
    cos_term = 0.5 * np.sinc(theta / (2 * np.pi)) ** 2  # (1 - cos t) / t**2
    return np.eye(3) + sin_term * k + cos_term * (k @ k)


def _exact_g6(lattice: NDArray[Any]) -> tuple[Fraction, ...]:
    rows = [[Fraction(x) for x in row] for row in lattice]

    def dot(u: list[Fraction], v: list[Fraction]) -> Fraction:
        return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]

    a, b, c = rows
    return (dot(a, a), dot(b, b), dot(c, c), 2 * dot(b, c), 2 * dot(a, c), 2 * dot(a, b))


# --------------------------------------------------------------------------- unimodular matrices
@st.composite
def _unimodular_word(draw: Callable[..., Any], k: int, det: int | str) -> NDArray[np.int64]:
    negative = draw(st.booleans()) if det == "either" else det == -1
    perm = draw(st.permutations([0, 1, 2]))
    flips = draw(st.tuples(st.booleans(), st.booleans()))
    ops = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(-k, k)), max_size=10))
    w = [[int(i == j) for j in range(3)] for i in range(3)]
    for pair, q in ops:
        i, j = _PAIRS[pair]
        lo, hi = _admissible_q(w[i], w[j], k)
        q = min(max(q, lo), hi)
        w[i] = [w[i][c] + q * w[j][c] for c in range(3)]
    p = _signed_permutation(perm, flips, -1 if negative else 1)
    return np.array(w, dtype=np.int64) @ np.array(p, dtype=np.int64)


def _sorted_ball(det: int | str) -> list[NDArray[np.int64]]:
    ball = groups.unimodular_ball(1, det)  # type: ignore[arg-type]
    base = np.eye(3, dtype=np.int64) if det in (1, "either") else np.diag([1, 1, -1])
    dist = np.abs(ball - base).sum(axis=(1, 2))
    return [ball[i].copy() for i in np.argsort(dist, kind="stable")]


def unimodular_matrices(*, max_entry: int = 3, det: int | str = 1) -> st.SearchStrategy[NDArray[np.int64]]:
    """Integer ``3 x 3`` matrices with :math:`\\det = \\pm 1` and every entry at most ``max_entry``.

    Two sources, mixed: (1) a Hypothesis-drawn word of up to 10 row operations
    :math:`r_i \\leftarrow r_i + q\\, r_j` (each ``q`` clamped so that no entry exceeds
    ``max_entry``) times a signed permutation matrix fixing the determinant; (2) a uniform
    element of the enumerated ball :math:`\\max|M_{ij}| \\le 1`
    (:func:`latticesym.groups.unimodular_ball`).  The determinant is exact by construction.

    Parameters
    ----------
    max_entry : int
        Bound on ``|M_ij|``, ``1 <= max_entry <= 2**53``.
    det : {1, -1, "either"}
        Requested determinant (``"either"``: GL(3, Z)).

    Shrinks towards
    ---------------
    The identity (``det`` 1 or ``"either"``) or ``diag(1, 1, -1)`` (``det = -1``): fewer
    operations, multipliers towards 0, the identity permutation, no sign flips.
    """
    k = _check_int("max_entry", max_entry, 1, groups.MAX_ENTRY_LIMIT)
    d = _check_det(det)
    return st.one_of(_unimodular_word(k, d), st.sampled_from(_sorted_ball(d)).map(np.copy))


# --------------------------------------------------------------------------- rotations
@st.composite
def _rotation(draw: Callable[..., Any], exact: bool) -> NDArray[Any]:
    if exact:
        # w_i = num / den with den in [1, 6], |w_i| <= 4; integer draws shrink fast (to w = 0)
        dens = [draw(st.integers(1, 6)) for _ in range(3)]
        return groups.cayley_rotation([Fraction(draw(st.integers(-4 * d, 4 * d)), d) for d in dens])
    w = draw(st.tuples(*[st.floats(-math.pi, math.pi, allow_nan=False, allow_infinity=False)] * 3))
    return _rodrigues(w)


def rotations(*, exact: bool = False) -> st.SearchStrategy[NDArray[Any]]:
    """Proper rotations :math:`Q` (orthogonal, :math:`\\det Q = +1`); rotate a lattice as ``L @ Q.T``.

    ``exact=False``: float64, Rodrigues' formula :math:`Q = \\exp([w]_\\times)` of a drawn
    rotation vector :math:`w \\in [-\\pi, \\pi]^3` (orthogonal to about 1e-15).
    ``exact=True``: object array of ``Fraction``, the Cayley transform
    :math:`(I - S)(I + S)^{-1}` of :math:`S = [w]_\\times` with ``w`` rational (denominators
    at most 6, entries in ``[-4, 4]``): exactly orthogonal (:func:`latticesym.groups.cayley_rotation`).

    Shrinks towards
    ---------------
    The identity (``w = 0``).
    """
    return _rotation(_check_bool("exact", exact))


# --------------------------------------------------------------------------- lattices
@st.composite
def _physical(draw: Callable[..., Any], lo: float, hi: float, exact: bool) -> NDArray[Any]:
    flo: Any = Fraction(lo) if exact else lo
    fhi: Any = Fraction(hi) if exact else hi
    ratio = fhi / flo - 1
    xm = min(Fraction(_SHEAR_MAX) if exact else _SHEAR_MAX, ratio)
    ym = min(Fraction(_SHEAR_MAX) if exact else _SHEAR_MAX, ratio / 2)
    a1 = _real(draw, flo, fhi, exact)
    x = _real(draw, -xm, xm, exact)
    b2 = _real(draw, flo, fhi / (1 + abs(x)), exact)
    y = _real(draw, -ym, ym, exact)
    z = _real(draw, -ym, ym, exact)
    c3 = _real(draw, flo, fhi / (1 + abs(y) + abs(z)), exact)
    zero: Any = Fraction(0) if exact else 0.0
    rows = [[a1, zero, zero], [x * b2, b2, zero], [y * c3, z * c3, c3]]
    q = draw(_rotation(exact))
    if exact:
        return _fraction_array(_fraction_array(rows) @ q.T)
    return np.asarray(np.array(rows, dtype=np.float64) @ q.T, dtype=np.float64)


def _grid_bits(max_entry: int, max_length: float) -> int:
    """Fraction bits ``p`` such that ``M @ round(L * 2**p)`` stays below ``2**53`` (exact in float64)."""
    return min(40, math.floor(53 - math.log2(3 * max_entry * (max_length + 1))) - 1)


@st.composite
def _sheared(draw: Callable[..., Any], lo: float, hi: float, exact: bool, max_entry: int) -> NDArray[Any]:
    lattice = draw(_physical(lo, hi, exact))
    m = draw(_unimodular_word(max_entry, 1))
    if exact:
        return _fraction_array(m.astype(object) @ lattice)
    p = _grid_bits(max_entry, hi)
    scaled = np.rint(lattice * 2.0**p).astype(np.int64)
    return (m @ scaled).astype(np.float64) / 2.0**p


@st.composite
def _near_singular(draw: Callable[..., Any], lo: float, hi: float, exact: bool) -> NDArray[Any]:
    lattice = draw(_physical(lo, hi, exact))
    n1, n2 = draw(st.integers(-3, 3)), draw(st.integers(-3, 3))
    if n1 == 0 and n2 == 0:
        n1 = 1
    # log10 of the target V / (|a||b||c|), kept 1 % (in the exponent) inside NEAR_SINGULAR_RANGE
    exponent = draw(st.floats(-11.99, -3.01))
    a, b = lattice[0], lattice[1]
    af, bf = a.astype(np.float64), b.astype(np.float64)
    pf = n1 * af + n2 * bf
    nf = np.cross(af, bf)
    nn = float(np.linalg.norm(nf))
    # c = p + t n/|n| gives V = t |n| and |c|^2 = |p|^2 + t^2, so V/(|a||b||c|) = r exactly when
    # t = s |p| / sqrt(1 - s^2) with s = r |a||b| / |n|.
    s = 10.0**exponent * float(np.linalg.norm(af) * np.linalg.norm(bf)) / nn
    t = s * float(np.linalg.norm(pf)) / math.sqrt(1.0 - s * s)
    if exact:
        n_exact = np.array(
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], dtype=object
        )
        c: Any = n1 * a + n2 * b + Fraction(t / nn) * n_exact
        rows = np.array([a, b, c], dtype=object)
    else:
        rows = np.array([af, bf, pf + (t / nn) * nf], dtype=np.float64)
    order = draw(st.permutations([0, 1, 2]))
    out = rows[list(order)]
    return _fraction_array(out) if exact else out


def _boundary_template(family: str, u: Fraction, t: Fraction, w: Fraction, pq: tuple[int, int]) -> list[list[Any]]:
    p, q = pq
    templates: dict[str, list[list[Any]]] = {
        "cubic_P": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "cubic_F": [[0, 1, 1], [1, 0, 1], [1, 1, 0]],
        "cubic_I": [[-1, 1, 1], [1, -1, 1], [1, 1, -1]],
        "tetragonal_P": [[1, 0, 0], [0, 1, 0], [0, 0, t]],
        "tetragonal_I": [[-1, 1, t], [1, -1, t], [1, 1, -t]],
        "orthorhombic_P": [[1, 0, 0], [0, u, 0], [0, 0, t]],
        "orthorhombic_C": [[1, -u, 0], [1, u, 0], [0, 0, t]],
        "orthorhombic_I": [[-1, u, t], [1, -u, t], [1, u, -t]],
        "orthorhombic_F": [[0, u, t], [1, 0, t], [1, u, 0]],
        # the A2 (hexagonal) net in the plane x + y + z = 0, c along (1, 1, 1): rational coordinates
        "hexagonal_P": [[1, -1, 0], [0, 1, -1], [t, t, t]],
        "rhombohedral_R": [[p, q, q], [q, p, q], [q, q, p]],
        "monoclinic_P": [[1, 0, 0], [0, u, 0], [w, 0, t]],
        "monoclinic_C": [[1, -u, 0], [1, u, 0], [w, 0, t]],
    }
    return templates[family]


@st.composite
def _boundary(
    draw: Callable[..., Any], families: tuple[str, ...], lo: float, hi: float, exact: bool, max_entry: int
) -> NDArray[Any]:
    family = draw(st.sampled_from(families))
    scale = _grid(draw, Fraction(lo), Fraction(hi))
    u = Fraction(draw(st.integers(2, 12)), 4)
    t = Fraction(draw(st.integers(2, 12)), 4)
    w = Fraction(draw(st.integers(-6, 6)), 4)
    pq = draw(st.sampled_from(_RHOMBOHEDRAL_PQ))
    template = _fraction_array(_boundary_template(family, u, t, w, pq)) * scale
    m = draw(_unimodular_word(max_entry, 1))
    exact_lattice = _fraction_array(m.astype(object) @ template)
    if exact:
        return exact_lattice
    # every entry is a dyadic rational with few bits, so the float64 lattice is the exact one
    return np.array([[float(x) for x in row] for row in exact_lattice], dtype=np.float64)


def boundary_lattices(
    *,
    family: str | Sequence[str] | None = None,
    exact: bool = False,
    max_entry: int = 3,
    min_length: float = 1.0,
    max_length: float = 20.0,
) -> st.SearchStrategy[NDArray[Any]]:
    """Lattices that lie exactly on a boundary of the Niggli cone, in a random unimodular basis.

    Each is ``M @ (s * T)``: ``T`` the primitive cell of a family in :data:`BOUNDARY_FAMILIES`
    with rational coordinates (ratios ``u, t`` in ``{1/2, 3/4, ..., 3}``, monoclinic offset
    ``w`` in ``{-3/2, ..., 3/2}``, rhombohedral rows ``(p, q, q)``), ``s`` a multiple of 1/16
    in ``[min_length, max_length]``, ``M`` from :func:`unimodular_matrices` (``det = +1``).
    Their Niggli-reduced G6 satisfies at least one equality (``A = B``, ``B = C``, a zero
    angle term, ``|xi| = B``, ``|eta| = A``, ``|zeta| = A`` or ``|xi|+|eta|+|zeta| = A + B``).

    Every family has rational Cartesian coordinates, hexagonal included (the A2 net
    ``(1,-1,0), (0,1,-1)`` with ``c`` along ``(1,1,1)``), so no family is skipped when
    ``exact=True``.  The cells are **not rotated**: all entries are dyadic rationals with few
    bits, so the float64 lattice (``exact=False``) equals the exact one entry by entry and lies
    *exactly* on the boundary too.  Compose with :func:`rotations` to orient them.

    Parameters
    ----------
    family : str or sequence of str, optional
        Restrict to these families (default: all).
    exact : bool
        ``True``: object array of ``Fraction``; ``False``: float64.
    max_entry : int
        Entry bound of the basis change ``M``, ``1 <= max_entry <= 10**9``.
    min_length, max_length : float
        Range of the scale ``s`` in Angstrom.

    Shrinks towards
    ---------------
    The simple cubic cell of edge ``min_length`` (rounded up to a multiple of 1/16) in the
    identity basis.
    """
    families: tuple[str, ...]
    if family is None:
        families = BOUNDARY_FAMILIES
    else:
        families = (family,) if isinstance(family, str) else tuple(family)
        unknown = [f for f in families if f not in BOUNDARY_FAMILIES]
        if unknown or not families:
            raise InvalidArgument(f"family must be among {BOUNDARY_FAMILIES}, got {family!r}")
    ex = _check_bool("exact", exact)
    k = _check_int("max_entry", max_entry, 1, _MAX_SHEAR_ENTRY)
    lo, hi = _check_lengths(min_length, max_length)
    return _boundary(families, lo, hi, ex, k)


def lattices(
    *,
    kind: str = "physical",
    exact: bool = False,
    min_length: float = 1.0,
    max_length: float = 20.0,
    max_entry: int = 10**6,
) -> st.SearchStrategy[NDArray[Any]]:
    """Non-singular lattices (rows are basis vectors) of a chosen kind.

    Kinds
    -----
    ``"physical"``
        A triangular cell ``a = (a1, 0, 0)``, ``b = (x b2, b2, 0)``, ``c = (y c3, z c3, c3)``
        with ``a1, b2, c3`` in ``[min_length, max_length]`` and ``|x|, |y|, |z| <= 0.7``
        (bounded so that every length stays within ``[min_length, max_length]``), giving angles
        of about 55 to 125 degrees and :math:`V/(|a||b||c|) \\ge 0.58`, then rotated by
        :func:`rotations`.
    ``"sheared"``
        ``M @ L`` for a physical ``L`` and ``M`` from :func:`unimodular_matrices`
        (``det = +1``, entries up to ``max_entry``).  In float64 ``L`` is first rounded to a
        multiple of :math:`2^{-p}` (``p`` as large as keeps ``M @ L`` below :math:`2^{53}`;
        ``p = 26`` for the defaults), so that ``M @ L`` is computed **without rounding**: the
        float lattice is exactly equivalent to a physical one.
    ``"near_singular"``
        Rows ``a, b`` of a physical lattice and ``c = n1 a + n2 b + t n`` (small integers
        ``n1, n2``, ``n`` the unit normal of ``a, b``), with ``t`` solved so that
        :math:`V/(|a||b||c|) = r`, :math:`\\log_{10} r` uniform in ``[-11.99, -3.01]``; the
        rows are then permuted.  The relative volume lies in :data:`NEAR_SINGULAR_RANGE`
        (``[1e-12, 1e-3]``) to within rounding.
    ``"boundary"``
        :func:`boundary_lattices` with ``max_entry=3`` (exactly on a Niggli boundary, not rotated).
    ``"exact"``
        ``"physical"`` with ``exact=True`` (whatever ``exact`` says).
    ``"any"``
        A mixture of the four kinds above.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    exact : bool
        ``False``: float64 arrays of shape ``(3, 3)``.  ``True``: object arrays of shape
        ``(3, 3)`` holding ``fractions.Fraction`` (lengths on a 1/16 grid, rotations by the
        rational Cayley transform), for :mod:`latticesym.reference`.
    min_length, max_length : float
        Length range in Angstrom, ``0.01 <= min_length <= max_length <= 1000``.
    max_entry : int
        Entry bound of the basis change for ``kind="sheared"`` (``1 <= max_entry <= 10**9``).

    Shrinks towards
    ---------------
    A cubic cell in the standard orientation, ``diag(1, 1, 1)`` with the defaults: shears,
    rotation and basis change towards the identity, the edge towards the simplest length in
    range (for floats Hypothesis' simplest float, an integer when the range holds one; for
    ``exact=True`` the lowest multiple of 1/16 at or above ``min_length``).  Near-singular
    lattices shrink towards ``c = a + t n`` (``c`` nearly equal to ``a``).

    Examples
    --------
    >>> from hypothesis import find
    >>> find(lattices(), lambda lattice: True).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {KINDS}, got {kind!r}")
    ex = _check_bool("exact", exact)
    lo, hi = _check_lengths(min_length, max_length)
    k = _check_int("max_entry", max_entry, 1, _MAX_SHEAR_ENTRY)
    if kind == "exact":
        kind, ex = "physical", True
    builders: dict[str, Callable[[], st.SearchStrategy[NDArray[Any]]]] = {
        "physical": lambda: _physical(lo, hi, ex),
        "sheared": lambda: _sheared(lo, hi, ex, k),
        "near_singular": lambda: _near_singular(lo, hi, ex),
        "boundary": lambda: _boundary(BOUNDARY_FAMILIES, lo, hi, ex, 3),
    }
    if kind == "any":
        return st.one_of([build() for build in builders.values()])
    return builders[kind]()


def g6_vectors(
    *,
    kind: str = "physical",
    exact: bool = False,
    min_length: float = 1.0,
    max_length: float = 20.0,
    max_entry: int = 10**6,
) -> st.SearchStrategy[Any]:
    """G6 vectors ``(A, B, C, xi, eta, zeta)`` of :func:`lattices` (same arguments).

    Returns float64 arrays of shape ``(6,)``, or tuples of six ``Fraction`` when exact (the
    type of :attr:`latticesym.reference.ExactNiggliResult.g6`).

    Shrinks towards
    ---------------
    The G6 of the shrink target of :func:`lattices`: ``(1, 1, 1, 0, 0, 0)`` with the defaults.
    """
    strategy = lattices(kind=kind, exact=exact, min_length=min_length, max_length=max_length, max_entry=max_entry)
    if exact or kind == "exact":
        return strategy.map(_exact_g6)
    return strategy.map(lambda lattice: metric.g6(lattice))
