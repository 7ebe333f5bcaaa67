"""Exact helpers shared by the proofs: G6, Niggli conditions, an exact reducer, rotations, cones.

Everything here is written from the papers, independently of :mod:`latticesym.reference`, so
that the proofs stand on their own.  Numbers are :class:`fractions.Fraction` (or Python ints);
nothing is ever decided in floating point.

Conventions (``CONVENTIONS.md``): rows of a lattice are the basis vectors a, b, c; a basis
change is ``L' = M @ L``; the Gram matrix is ``G = L @ L.T`` and changes as ``G' = M G M^T``;
the G6 vector is ``(A, B, C, xi, eta, zeta) = (a.a, b.b, c.c, 2 b.c, 2 a.c, 2 a.b)``.

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
R. W. Grosse-Kunstleve, N. K. Sauter & P. D. Adams (2004). Acta Cryst. A60, 1-6.
https://doi.org/10.1107/S010876730302186X
International Tables for Crystallography Vol. A, section 3.1.3 and Table 9.2.5.1 (5th ed.).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

import sympy as sp

Matrix3 = tuple[tuple[Fraction, ...], ...]
IntMatrix3 = tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
G6 = tuple[Fraction, Fraction, Fraction, Fraction, Fraction, Fraction]

IDENTITY: IntMatrix3 = ((1, 0, 0), (0, 1, 0), (0, 0, 1))


# ---------------------------------------------------------------------------------------------
# small exact linear algebra on 3x3 nested tuples
# ---------------------------------------------------------------------------------------------
def frac(x: object) -> Fraction:
    """Convert an int, Fraction or sympy rational to a Fraction; refuse anything inexact.

    >>> frac(sp.Rational(3, 4))
    Fraction(3, 4)
    """
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    if isinstance(x, sp.Basic):
        x = sp.expand(x)
        if not x.is_Rational:
            raise ValueError(f"not rational: {x}")
        return Fraction(int(x.p), int(x.q))
    raise TypeError(f"refusing inexact value {x!r} of type {type(x).__name__}")


def as_matrix(rows: Iterable[Iterable[object]]) -> Matrix3:
    """A 3x3 nested tuple of Fractions."""
    out = tuple(tuple(frac(v) for v in row) for row in rows)
    if len(out) != 3 or any(len(r) != 3 for r in out):
        raise ValueError("expected a 3x3 matrix")
    return out


def matmul(x: Sequence[Sequence], y: Sequence[Sequence]) -> tuple:
    """Product of two 3x3 nested sequences (ints or Fractions)."""
    return tuple(tuple(sum(x[i][k] * y[k][j] for k in range(3)) for j in range(3)) for i in range(3))


def transpose(x: Sequence[Sequence]) -> tuple:
    return tuple(tuple(x[j][i] for j in range(3)) for i in range(3))


def det3(m: Sequence[Sequence]) -> int | Fraction:
    """Determinant of a 3x3 matrix by cofactor expansion (exact for ints and Fractions)."""
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def adjugate(m: Sequence[Sequence]) -> tuple:
    """Adjugate (transpose of the cofactor matrix): ``adj(m) @ m == det(m) * I``."""

    def cof(i: int, j: int):
        r = [k for k in range(3) if k != i]
        c = [k for k in range(3) if k != j]
        minor = m[r[0]][c[0]] * m[r[1]][c[1]] - m[r[0]][c[1]] * m[r[1]][c[0]]
        return minor if (i + j) % 2 == 0 else -minor

    return tuple(tuple(cof(j, i) for j in range(3)) for i in range(3))


def inverse(m: Sequence[Sequence]) -> tuple:
    """Exact inverse; integer entries stay ints when ``det == +-1``."""
    d = det3(m)
    if d == 0:
        raise ZeroDivisionError("singular matrix")
    adj = adjugate(m)
    if d in (1, -1):
        return tuple(tuple(v * d for v in row) for row in adj)
    return tuple(tuple(Fraction(v) / d for v in row) for row in adj)


def frobenius_sq(x: Sequence[Sequence]) -> Fraction:
    return sum((Fraction(v) ** 2 for row in x for v in row), Fraction(0))


def sub(x: Sequence[Sequence], y: Sequence[Sequence]) -> tuple:
    return tuple(tuple(x[i][j] - y[i][j] for j in range(3)) for i in range(3))


def mse(x: Sequence[Sequence], y: Sequence[Sequence]) -> Fraction:
    """Mean squared entry difference over the 9 entries (the research note's loss)."""
    return frobenius_sq(sub(x, y)) / 9


# ---------------------------------------------------------------------------------------------
# metric: Gram matrix and G6
# ---------------------------------------------------------------------------------------------
def gram(lattice: Sequence[Sequence]) -> tuple:
    """``G = L @ L.T`` (rows of ``L`` are basis vectors)."""
    return matmul(lattice, transpose(lattice))


def congruent(m: Sequence[Sequence], g: Sequence[Sequence]) -> tuple:
    """``M G M^T``: the Gram matrix of the basis ``M @ L`` when ``g`` is that of ``L``."""
    return matmul(matmul(m, g), transpose(m))


def g6_of_gram(g: Sequence[Sequence]) -> G6:
    """``(A, B, C, xi, eta, zeta)`` of a Gram matrix.

    >>> g6_of_gram(((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    (Fraction(1, 1), Fraction(1, 1), Fraction(1, 1), Fraction(0, 1), Fraction(0, 1), Fraction(0, 1))
    """
    return (
        frac(g[0][0]),
        frac(g[1][1]),
        frac(g[2][2]),
        2 * frac(g[1][2]),
        2 * frac(g[0][2]),
        2 * frac(g[0][1]),
    )


def gram_of_g6(v: Sequence) -> Matrix3:
    a, b, c, xi, eta, zeta = (frac(x) for x in v)
    return ((a, zeta / 2, eta / 2), (zeta / 2, b, xi / 2), (eta / 2, xi / 2, c))


def g6_of_lattice(lattice: Sequence[Sequence]) -> G6:
    return g6_of_gram(gram(lattice))


def g6_matrix(m: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """The 6x6 integer matrix ``T`` with ``g6(M G M^T) == T @ g6(G)`` for every symmetric ``G``.

    Column ``k`` is the G6 of ``M E_k M^T`` where ``E_k`` is the Gram matrix whose G6 is the
    k-th unit vector.
    """
    cols = []
    for k in range(6):
        unit = [0] * 6
        unit[k] = 1
        cols.append(g6_of_gram(congruent(m, gram_of_g6(unit))))
    out = tuple(tuple(cols[k][i] for k in range(6)) for i in range(6))
    assert all(v.denominator == 1 for row in out for v in row)
    return tuple(tuple(int(v) for v in row) for row in out)


def apply6(t: Sequence[Sequence[int]], v: Sequence) -> tuple:
    return tuple(sum(t[i][k] * v[k] for k in range(6)) for i in range(6))


def quad(g: Sequence[Sequence], x: Sequence) -> Fraction:
    """``x G x^T`` for a row vector of integer coefficients ``x``."""
    return sum((g[i][j] * x[i] * x[j] for i in range(3) for j in range(3)), Fraction(0))


def quad_g6_coefficients(x: Sequence[int]) -> tuple[int, ...]:
    """Integer 6-vector ``h`` with ``x G x^T == h . g6(G)`` (linear in G6 for fixed ``x``)."""
    x1, x2, x3 = x
    return (x1 * x1, x2 * x2, x3 * x3, x2 * x3, x1 * x3, x1 * x2)


# ---------------------------------------------------------------------------------------------
# Niggli conditions, written from ITA A section 3.1.3 / Table 9.2.5.1 (G6 form)
# ---------------------------------------------------------------------------------------------
def niggli_type(v: Sequence) -> str | None:
    """'I' if xi, eta, zeta > 0; 'II' if all <= 0; None for a mixed sign pattern."""
    xi, eta, zeta = v[3], v[4], v[5]
    if xi > 0 and eta > 0 and zeta > 0:
        return "I"
    if xi <= 0 and eta <= 0 and zeta <= 0:
        return "II"
    return None


def is_niggli_reduced(v: Sequence) -> bool:
    """Exact test of the main and special Niggli conditions on a G6 vector.

    >>> is_niggli_reduced((1, 1, 4, 0, 0, -1))     # hexagonal, gamma = 120 deg
    True
    >>> is_niggli_reduced((1, 1, 4, 0, 0, 1))      # the same lattice with gamma = 60 deg
    False
    """
    a, b, c, xi, eta, zeta = (frac(x) for x in v)
    kind = niggli_type((a, b, c, xi, eta, zeta))
    if a <= 0 or kind is None:
        return False
    # main conditions
    if not (a <= b <= c and abs(xi) <= b and abs(eta) <= a and abs(zeta) <= a):
        return False
    if kind == "II" and xi + eta + zeta + a + b < 0:
        return False
    # special conditions
    if a == b and abs(xi) > abs(eta):
        return False
    if b == c and abs(eta) > abs(zeta):
        return False
    if kind == "I":
        if xi == b and zeta > 2 * eta:
            return False
        if eta == a and zeta > 2 * xi:
            return False
        if zeta == a and eta > 2 * xi:
            return False
    else:
        if xi == -b and zeta != 0:
            return False
        if eta == -a and zeta != 0:
            return False
        if zeta == -a and eta != 0:
            return False
        if xi + eta + zeta + a + b == 0 and 2 * (a + eta) + zeta > 0:
            return False
    return True


# Linear inequalities h . g6 >= 0 of the two closed pieces of the Niggli cone (the closures of
# the type-I and type-II parts of the set of reduced G6 vectors).
CLOSED_CONE: dict[str, tuple[tuple[int, ...], ...]] = {
    "I": (
        (-1, 1, 0, 0, 0, 0),  # B - A >= 0
        (0, -1, 1, 0, 0, 0),  # C - B >= 0
        (0, 0, 0, 1, 0, 0),  # xi >= 0
        (0, 1, 0, -1, 0, 0),  # B - xi >= 0
        (0, 0, 0, 0, 1, 0),  # eta >= 0
        (1, 0, 0, 0, -1, 0),  # A - eta >= 0
        (0, 0, 0, 0, 0, 1),  # zeta >= 0
        (1, 0, 0, 0, 0, -1),  # A - zeta >= 0
    ),
    "II": (
        (-1, 1, 0, 0, 0, 0),  # B - A >= 0
        (0, -1, 1, 0, 0, 0),  # C - B >= 0
        (0, 0, 0, -1, 0, 0),  # -xi >= 0
        (0, 1, 0, 1, 0, 0),  # B + xi >= 0
        (0, 0, 0, 0, -1, 0),  # -eta >= 0
        (1, 0, 0, 0, 1, 0),  # A + eta >= 0
        (0, 0, 0, 0, 0, -1),  # -zeta >= 0
        (1, 0, 0, 0, 0, 1),  # A + zeta >= 0
        (1, 1, 0, 1, 1, 1),  # A + B + xi + eta + zeta >= 0
    ),
}


def in_closed_cone(v: Sequence, piece: str) -> bool:
    return all(sum(h[k] * v[k] for k in range(6)) >= 0 for h in CLOSED_CONE[piece])


# ---------------------------------------------------------------------------------------------
# exact rational linear algebra for cones
# ---------------------------------------------------------------------------------------------
def nullspace(rows: Sequence[Sequence]) -> list[list[Fraction]]:
    """Exact basis of ``{x : rows @ x == 0}`` by Gauss-Jordan elimination over Fractions."""
    m = [[Fraction(v) for v in r] for r in rows]
    ncols = len(m[0]) if m else 0
    pivots: list[int] = []
    r = 0
    for col in range(ncols):
        piv = next((i for i in range(r, len(m)) if m[i][col] != 0), None)
        if piv is None:
            continue
        m[r], m[piv] = m[piv], m[r]
        p = m[r][col]
        m[r] = [v / p for v in m[r]]
        for i in range(len(m)):
            if i != r and m[i][col] != 0:
                f = m[i][col]
                m[i] = [a - f * b for a, b in zip(m[i], m[r])]
        pivots.append(col)
        r += 1
        if r == len(m):
            break
    free = [c for c in range(ncols) if c not in pivots]
    basis = []
    for fc in free:
        x = [Fraction(0)] * ncols
        x[fc] = Fraction(1)
        for i, pc in enumerate(pivots):
            x[pc] = -m[i][fc]
        basis.append(x)
    return basis


def primitive_integer(v: Sequence[Fraction]) -> tuple[int, ...]:
    """Scale a rational vector to the primitive integer vector with the same direction."""
    lcm = 1
    for x in v:
        lcm = lcm * Fraction(x).denominator // math.gcd(lcm, Fraction(x).denominator)
    ints = [int(Fraction(x) * lcm) for x in v]
    g = 0
    for x in ints:
        g = math.gcd(g, x)
    return tuple(x // g for x in ints) if g else tuple(ints)


def extreme_rays(rows: Sequence[Sequence[int]], dim: int = 6) -> list[tuple[int, ...]]:
    """Extreme rays of the pointed cone ``{g : h . g >= 0 for h in rows}`` (exact).

    A ray is extreme iff it lies in the cone and the constraints tight on it have rank
    ``dim - 1``; every such ray is the 1-D null space of some ``dim - 1`` tight rows, so trying
    all subsets of that size is complete.
    """
    rays: set[tuple[int, ...]] = set()
    for subset in itertools.combinations(rows, dim - 1):
        ns = nullspace(subset)
        if len(ns) != 1:
            continue
        for sign in (1, -1):
            r = primitive_integer([sign * x for x in ns[0]])
            if all(sum(h[k] * r[k] for k in range(dim)) >= 0 for h in rows):
                rays.add(r)
    return sorted(rays)


def is_psd(m: Sequence[Sequence]) -> bool:
    """Exact positive semi-definiteness of a symmetric 3x3 matrix (all principal minors >= 0)."""
    idx = range(3)
    for size in (1, 2, 3):
        for sel in itertools.combinations(idx, size):
            sub_m = [[m[i][j] for j in sel] for i in sel]
            if size == 1:
                d = sub_m[0][0]
            elif size == 2:
                d = sub_m[0][0] * sub_m[1][1] - sub_m[0][1] * sub_m[1][0]
            else:
                d = det3(sub_m)
            if d < 0:
                return False
    return True


# ---------------------------------------------------------------------------------------------
# exact rotations (Cayley transform of a rational skew matrix)
# ---------------------------------------------------------------------------------------------
def cayley_rotation(p: object, q: object, r: object) -> Matrix3:
    """Exact rational rotation ``Q = (I - S)^-1 (I + S)``, ``S`` the skew matrix of ``(p, q, r)``.

    >>> Q = cayley_rotation(1, 2, 3)
    >>> matmul(Q, transpose(Q)) == ((1, 0, 0), (0, 1, 0), (0, 0, 1)), det3(Q)
    (True, Fraction(1, 1))
    """
    s = sp.Matrix([[0, -r, q], [r, 0, -p], [-q, p, 0]])
    eye = sp.eye(3)
    q_mat = (eye - s).inv() * (eye + s)
    return as_matrix(q_mat.tolist())


# ---------------------------------------------------------------------------------------------
# Krivy-Gruber step matrices (rows convention: new_basis = M @ old_basis)
# ---------------------------------------------------------------------------------------------
STEP_A1: IntMatrix3 = ((0, -1, 0), (-1, 0, 0), (0, 0, -1))  # (a,b,c) -> (-b,-a,-c)
STEP_A2: IntMatrix3 = ((-1, 0, 0), (0, 0, -1), (0, -1, 0))  # (a,b,c) -> (-a,-c,-b)
STEP_A8: IntMatrix3 = ((1, 0, 0), (0, 1, 0), (1, 1, 1))  # c -> c + a + b


def step_a5(n: int) -> IntMatrix3:
    """c -> c - n b (A5 uses n = sign(xi))."""
    return ((1, 0, 0), (0, 1, 0), (0, -n, 1))


def step_a6(n: int) -> IntMatrix3:
    """c -> c - n a (A6 uses n = sign(eta))."""
    return ((1, 0, 0), (0, 1, 0), (-n, 0, 1))


def step_a7(n: int) -> IntMatrix3:
    """b -> b - n a (A7 uses n = sign(zeta))."""
    return ((1, 0, 0), (-n, 1, 0), (0, 0, 1))


def sign(x: Fraction | int) -> int:
    return (x > 0) - (x < 0)


def sign_step_a3(l: int, m: int, n: int) -> IntMatrix3:
    """A3 (l*m*n == 1): diag(i, j, k) with i = -1 iff l == -1 (makes all three positive)."""
    i, j, k = (-1 if s == -1 else 1 for s in (l, m, n))
    return ((i, 0, 0), (0, j, 0), (0, 0, k))


def sign_step_a4(l: int, m: int, n: int) -> IntMatrix3:
    """A4 (l*m*n in {0, -1}): diag(i, j, k), i = -1 iff l == 1; if i*j*k == -1 flip a free one.

    The free indices are those whose entry is zero (Grosse-Kunstleve et al. 2004 fix of the
    original A4, which could produce det == -1).
    """
    signs = [l, m, n]
    d = [-1 if s == 1 else 1 for s in signs]
    if d[0] * d[1] * d[2] == -1:
        free = [t for t in range(3) if signs[t] == 0]
        if not free:
            raise AssertionError("A4: product -1 with no zero entry; impossible when l*m*n <= 0")
        d[free[0]] = -d[free[0]]
    return ((d[0], 0, 0), (0, d[1], 0), (0, 0, d[2]))


# ---------------------------------------------------------------------------------------------
# exact reducer: rounded-multiple pre-reduction, then Krivy-Gruber steps A1-A8
# ---------------------------------------------------------------------------------------------
def _round_half_away(x: Fraction) -> int:
    fl = math.floor(x)
    rem = x - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and x > 0):
        return fl + 1
    return fl


def niggli_reduce_gram(g: Sequence[Sequence], max_iter: int = 10_000) -> tuple[IntMatrix3, Matrix3, int]:
    """Exact Niggli reduction of a positive-definite rational Gram matrix.

    Returns ``(N, G_red, iterations)`` with ``N`` integer, ``det N == 1`` and
    ``G_red == N g N^T`` Niggli reduced (checked against :func:`is_niggli_reduced`).

    Phase 1 applies Gauss-Lagrange steps ``v_i -= q v_j`` with a rounded multiple ``q`` and
    sorts by length, but only when a step strictly shortens a vector (so a reduced input is
    left untouched).  Phase 2 is Krivy & Gruber (1976) steps A1-A8 with exact comparisons and
    the Grosse-Kunstleve et al. (2004) A4.
    """
    cur = as_matrix(g)
    t: tuple = IDENTITY
    it = 0

    def apply(m: Sequence[Sequence[int]]) -> None:
        nonlocal cur, t, it
        cur = congruent(m, cur)
        t = matmul(m, t)
        it += 1
        if it > max_iter:
            raise RuntimeError(f"no convergence after {max_iter} steps; g6={g6_of_gram(cur)}")

    # phase 1: pre-reduction with rounded multiples
    changed = True
    while changed:
        changed = False
        order = sorted(range(3), key=lambda i: cur[i][i])
        if order != [0, 1, 2]:
            p = [[1 if j == order[i] else 0 for j in range(3)] for i in range(3)]
            if det3(p) == -1:
                p = [[-v for v in row] for row in p]
            apply(p)
            changed = True
        for i, j in ((1, 0), (2, 0), (2, 1)):
            q = _round_half_away(cur[i][j] / cur[j][j])
            if q != 0 and q * q * cur[j][j] - 2 * q * cur[i][j] < 0:
                m = [list(r) for r in IDENTITY]
                m[i][j] = -q
                apply(m)
                changed = True
    # phase 2: Krivy-Gruber
    while True:
        a, b, c, xi, eta, zeta = g6_of_gram(cur)
        if a > b or (a == b and abs(xi) > abs(eta)):  # A1
            apply(STEP_A1)
            a, b, c, xi, eta, zeta = g6_of_gram(cur)
        if b > c or (b == c and abs(eta) > abs(zeta)):  # A2
            apply(STEP_A2)
            continue
        l, m_, n = sign(xi), sign(eta), sign(zeta)
        d = sign_step_a3(l, m_, n) if l * m_ * n == 1 else sign_step_a4(l, m_, n)  # A3 / A4
        if d != IDENTITY:
            apply(d)
            a, b, c, xi, eta, zeta = g6_of_gram(cur)
        if abs(xi) > b or (xi == b and 2 * eta < zeta) or (xi == -b and zeta < 0):  # A5
            apply(step_a5(sign(xi)))
            continue
        if abs(eta) > a or (eta == a and 2 * xi < zeta) or (eta == -a and zeta < 0):  # A6
            apply(step_a6(sign(eta)))
            continue
        if abs(zeta) > a or (zeta == a and 2 * xi < eta) or (zeta == -a and eta < 0):  # A7
            apply(step_a7(sign(zeta)))
            continue
        if xi + eta + zeta + a + b < 0 or (xi + eta + zeta + a + b == 0 and 2 * (a + eta) + zeta > 0):
            apply(STEP_A8)  # A8
            continue
        break
    t_int = tuple(tuple(int(v) for v in row) for row in t)
    if det3(t_int) != 1 or not is_niggli_reduced(g6_of_gram(cur)):
        raise AssertionError("exact reducer post-condition failed")
    return t_int, cur, it


# ---------------------------------------------------------------------------------------------
# enumeration helpers
# ---------------------------------------------------------------------------------------------
def automorphisms(g: Sequence[Sequence], bounds: Sequence[int]) -> list[IntMatrix3]:
    """All integer ``M`` with ``M g M^T == g`` whose entries satisfy ``|M[k][i]| <= bounds[i]``.

    Row ``k`` of such an ``M`` is a coefficient vector ``x`` with ``x g x^T == g[k][k]``, so the
    rows are drawn from those vectors only; completeness rests on the caller's bounds.
    """
    gm = as_matrix(g)
    rngs = [range(-b, b + 1) for b in bounds]
    rows_by_norm: dict[Fraction, list[tuple[int, int, int]]] = {}
    for x in itertools.product(*rngs):
        rows_by_norm.setdefault(quad(gm, x), []).append(x)
    cands = [rows_by_norm.get(gm[k][k], []) for k in range(3)]
    out = []
    for rows in itertools.product(*cands):
        if abs(det3(rows)) == 1 and congruent(rows, gm) == gm:
            out.append(rows)
    return sorted(out)


_G6_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def g6_matrix_int(m: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Fast integer formula for :func:`g6_matrix` (the two are compared in the proofs).

    Entry ``(r, s)``: with ``(p, q) = pair(r)`` and ``(k, l) = pair(s)``, the coefficient of
    ``g6[s]`` in ``g6'[r]`` is ``f_r * M[p][k] M[q][k]`` for a diagonal ``s`` and
    ``f_r * (M[p][k] M[q][l] + M[p][l] M[q][k]) / 2`` otherwise, ``f_r`` = 1 (diagonal ``r``)
    or 2 (off-diagonal ``r``).
    """
    out = []
    for r, (p, q) in enumerate(_G6_PAIRS):
        f = 1 if r < 3 else 2
        row = []
        for s, (k, l) in enumerate(_G6_PAIRS):
            if s < 3:
                row.append(f * m[p][k] * m[q][k])
            else:
                row.append(f * (m[p][k] * m[q][l] + m[p][l] * m[q][k]) // 2)
        out.append(tuple(row))
    return tuple(out)


def _lattice(rows: Iterable[Iterable[object]]) -> Matrix3:
    return tuple(tuple(Fraction(v) for v in row) for row in rows)


_F = Fraction
#: Exact example lattices (rows are basis vectors), rational coordinates throughout.
EXAMPLE_LATTICES: dict[str, Matrix3] = {
    "cubic": _lattice(IDENTITY),
    # a triangular net in the plane x + y + z = 0 plus the normal: G6 (2, 2, 3, 0, 0, -2)
    "hexagonal": _lattice(((1, -1, 0), (0, 1, -1), (1, 1, 1))),
    "fcc": _lattice(((0, 1, 1), (1, 0, 1), (1, 1, 0))),
    "bcc": _lattice(((-1, 1, 1), (1, -1, 1), (1, 1, -1))),
    "rhombohedral": _lattice(((2, 1, 1), (1, 2, 1), (1, 1, 2))),
    "monoclinic": _lattice(((1, 0, 0), (0, _F(3, 2), 0), (_F(1, 3), 0, 2))),
    # type I, strictly inside the cone: G6 (1, 37/25, 349/144, 9/10, 1/2, 2/5)
    "triclinic": _lattice(((1, 0, 0), (_F(1, 5), _F(6, 5), 0), (_F(1, 4), _F(1, 3), _F(3, 2)))),
}


def reduced_gram(lattice: Sequence[Sequence]) -> tuple[IntMatrix3, Matrix3]:
    """``(N, N G N^T)`` with ``N @ lattice`` Niggli reduced (exact)."""
    n, g_red, _ = niggli_reduce_gram(gram(lattice))
    return n, g_red


def gram_space_loss(pred: Sequence[Sequence], target: Sequence[Sequence], transforms: Iterable) -> Fraction:
    """The Gram-space loss: ``min over M in transforms of |M G_p M^T - G_t|_F^2 / 9``.

    ``G_p``, ``G_t`` are the Niggli-reduced Gram matrices of ``pred`` and ``target`` (exact
    reducer).  Stops early at an exact zero.
    """
    _, g_p = reduced_gram(pred)
    _, g_t = reduced_gram(target)
    best: Fraction | None = None
    for m in transforms:
        value = frobenius_sq(sub(congruent(m, g_p), g_t)) / 9
        if best is None or value < best:
            best = value
            if best == 0:
                break
    if best is None:
        raise ValueError("empty transform set")
    return best
