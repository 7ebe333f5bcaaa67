r"""Derive the boundary-map set :math:`S` of the closed Niggli cone and write ``niggli_neighbours.txt``.

Usage::

    python -m latticesym._tables.niggli_neighbours.derive            # derive, print |S|
    python -m latticesym._tables.niggli_neighbours.derive --check    # re-derive, compare with the shipped file
    python -m latticesym._tables.niggli_neighbours.derive --write    # re-derive, overwrite the shipped file

The argument is proof 08 (``proofs/08_boundary_maps.md``).  With the G6 vector
:math:`g = (A, B, C, \xi, \eta, \zeta)` the closed cone is the union of two polyhedral pieces
:math:`P_\mathrm{I}` (:math:`\xi, \eta, \zeta \ge 0`) and :math:`P_\mathrm{II}`
(:math:`\xi, \eta, \zeta \le 0`, :math:`A + B + \xi + \eta + \zeta \ge 0`), each with
:math:`A \le B \le C`, :math:`|\xi| \le B`, :math:`|\eta| \le A`, :math:`|\zeta| \le A`.  The proof
bounds every row of a member :math:`M` (and of :math:`M^{-1}`) to a finite box of coefficient vectors;
this module tries every unimodular :math:`M` with all rows of :math:`M` and :math:`M^{-1}` in the box
(12912 candidates) and decides each one **exactly**:

* member: a rational witness :math:`g` with :math:`A > 0`, :math:`g \in P_s` and
  :math:`T_M g \in P_t` (:math:`T_M` the integer :math:`6\times 6` action of :math:`M` on G6), checked
  in integers / :class:`fractions.Fraction`;
* non-member: for every pair of pieces :math:`(s, t)` either an empty face (every witness must make
  the functionals :math:`x G x^T - G_{jj}` of the rows vanish, and no extreme ray with :math:`A > 0`
  does) or a Farkas vector :math:`y \ge 0`, :math:`y^T H = -e_A`, which makes
  :math:`\{H g \ge 0, A \ge 1\}` infeasible.

Floating-point LPs (``scipy.optimize.linprog``, imported only when a candidate needs one) merely
*propose* witnesses and Farkas vectors; each proposal is rationalised and re-checked exactly, and the
derivation fails loudly when a proposal does not check.  ``proofs/test_08_boundary_maps.py``
re-verifies every certificate with the independent exact helpers of ``proofs/_exact.py``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from typing import Any

import numpy as np

__all__ = [
    "BOX_ROWS",
    "CLOSED_CONE",
    "PIECES",
    "Decision",
    "candidate_transforms",
    "decide",
    "enumerate_neighbours",
    "g6_action",
    "main",
    "render_table",
]

IntMatrix = tuple[tuple[int, ...], ...]
PIECES = ("I", "II")

# Rows h of the two closed pieces, h . g6 >= 0.
CLOSED_CONE: dict[str, tuple[tuple[int, ...], ...]] = {
    "I": (
        (-1, 1, 0, 0, 0, 0), (0, -1, 1, 0, 0, 0),  # A <= B <= C
        (0, 0, 0, 1, 0, 0), (0, 1, 0, -1, 0, 0),  # 0 <= xi <= B
        (0, 0, 0, 0, 1, 0), (1, 0, 0, 0, -1, 0),  # 0 <= eta <= A
        (0, 0, 0, 0, 0, 1), (1, 0, 0, 0, 0, -1),  # 0 <= zeta <= A
    ),
    "II": (
        (-1, 1, 0, 0, 0, 0), (0, -1, 1, 0, 0, 0),  # A <= B <= C
        (0, 0, 0, -1, 0, 0), (0, 1, 0, 1, 0, 0),  # -B <= xi <= 0
        (0, 0, 0, 0, -1, 0), (1, 0, 0, 0, 1, 0),  # -A <= eta <= 0
        (0, 0, 0, 0, 0, -1), (1, 0, 0, 0, 0, 1),  # -A <= zeta <= 0
        (1, 1, 0, 1, 1, 1),  # A + B + xi + eta + zeta >= 0
    ),
}

# Lemma E of proof 08: the rows x a member can have (x G x^T = G_jj, j the last nonzero index of x).
BOX_ROWS: tuple[tuple[int, int, int], ...] = (
    tuple((s, 0, 0) for s in (1, -1))
    + tuple((x1, s, 0) for x1 in (-1, 0, 1) for s in (1, -1))
    + tuple((x1, x2, s) for x1 in range(-2, 3) for x2 in range(-2, 3) for s in (1, -1))
)

_G6_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


# ---------------------------------------------------------------------------------------------
# exact integer / rational helpers
# ---------------------------------------------------------------------------------------------
def _dot(h: Sequence[Any], g: Sequence[Any]) -> Any:
    return sum(a * b for a, b in zip(h, g))


def _det3(m: Sequence[Sequence[int]]) -> int:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def _unimodular_inverse(m: Sequence[Sequence[int]]) -> IntMatrix:
    """``inv(m)`` for ``det m = +-1``: the adjugate times the determinant (stays integer)."""
    d = _det3(m)

    def cof(i: int, j: int) -> int:
        r = [k for k in range(3) if k != i]
        c = [k for k in range(3) if k != j]
        minor = m[r[0]][c[0]] * m[r[1]][c[1]] - m[r[0]][c[1]] * m[r[1]][c[0]]
        return minor if (i + j) % 2 == 0 else -minor

    return tuple(tuple(cof(j, i) * d for j in range(3)) for i in range(3))


def g6_action(m: Sequence[Sequence[int]]) -> IntMatrix:
    r"""The integer :math:`6\times 6` matrix :math:`T` with :math:`g6(M G M^T) = T\, g6(G)`.

    Entry ``(r, s)`` with ``(p, q) = pair(r)``, ``(k, l) = pair(s)``: :math:`f_r M_{pk} M_{qk}` for a
    diagonal ``s``, :math:`f_r (M_{pk} M_{ql} + M_{pl} M_{qk}) / 2` otherwise, :math:`f_r = 1` for a
    diagonal ``r`` and 2 for an off-diagonal one (the G6 off-diagonals are :math:`2 G_{ij}`).

    >>> g6_action(((1, 0, 0), (0, 1, 0), (0, 0, 1))) == tuple(tuple(int(i == j) for j in range(6)) for i in range(6))
    True
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


def _apply6(t: Sequence[Sequence[int]], v: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(sum(t[i][k] * v[k] for k in range(6)) for i in range(6))


def _quad_coefficients(x: Sequence[int]) -> tuple[int, ...]:
    """``h`` with ``x G x^T == h . g6(G)``."""
    x1, x2, x3 = x
    return (x1 * x1, x2 * x2, x3 * x3, x2 * x3, x1 * x3, x1 * x2)


def _in_piece(v: Sequence[Any], piece: str) -> bool:
    return all(_dot(h, v) >= 0 for h in CLOSED_CONE[piece])


def _nullspace(rows: Sequence[Sequence[int]]) -> list[list[Fraction]]:
    """Exact basis of ``{x : rows @ x == 0}`` (Gauss-Jordan over Fractions)."""
    m = [[Fraction(v) for v in r] for r in rows]
    ncols = len(m[0])
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
    basis = []
    for fc in (c for c in range(ncols) if c not in pivots):
        x = [Fraction(0)] * ncols
        x[fc] = Fraction(1)
        for i, pc in enumerate(pivots):
            x[pc] = -m[i][fc]
        basis.append(x)
    return basis


def _primitive(v: Sequence[Fraction]) -> tuple[int, ...]:
    lcm = 1
    for x in v:
        lcm = lcm * x.denominator // math.gcd(lcm, x.denominator)
    ints = [int(x * lcm) for x in v]
    g = 0
    for n in ints:
        g = math.gcd(g, n)
    return tuple(n // g for n in ints) if g else tuple(ints)


def _extreme_rays(rows: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Extreme rays of the pointed cone ``{g : h . g >= 0}`` in R^6: every 1-D null space of five rows
    that lies in the cone (complete, since an extreme ray has five independent tight rows)."""
    rays: set[tuple[int, ...]] = set()
    for subset in itertools.combinations(rows, 5):
        ns = _nullspace(subset)
        if len(ns) != 1:
            continue
        for sign in (1, -1):
            r = _primitive([sign * x for x in ns[0]])
            if all(_dot(h, r) >= 0 for h in rows):
                rays.add(r)
    return sorted(rays)


@functools.cache
def _rays(piece: str) -> tuple[tuple[int, ...], ...]:
    return tuple(_extreme_rays(CLOSED_CONE[piece]))


# ---------------------------------------------------------------------------------------------
# the enumeration
# ---------------------------------------------------------------------------------------------
def candidate_transforms() -> list[IntMatrix]:
    """Integer ``M`` with ``det M = +-1``, all rows of ``M`` and of ``inv(M)`` in :data:`BOX_ROWS`
    (``M^-1`` is in :math:`S` whenever ``M`` is), in :func:`itertools.product` order."""
    rowset = set(BOX_ROWS)
    out: list[IntMatrix] = []
    for m in itertools.product(BOX_ROWS, repeat=3):
        if _det3(m) in (1, -1) and all(tuple(r) in rowset for r in _unimodular_inverse(m)):
            out.append(tuple(m))
    return out


def _last_index(x: Sequence[int]) -> int:
    return max(i for i in range(3) if x[i] != 0)


def _face_functionals(m: Sequence[Sequence[int]]) -> list[list[int]]:
    """Linear forms that vanish on every witness: ``Q(M_k) - G_jj`` and ``G_jj - G_kk`` (``j`` the last
    index of row ``k``); each is of one sign on the closed cone (proof 08)."""
    out = []
    for k in range(3):
        x = m[k]
        j = _last_index(x)
        h = list(_quad_coefficients(x))
        h[j] -= 1
        out.append(h)
        out.append([int(a == j) - int(a == k) for a in range(6)])
    return out


def _face_rays(m: Sequence[Sequence[int]], piece: str) -> list[tuple[int, ...]]:
    fs = _face_functionals(m)
    return [r for r in _rays(piece) if all(_dot(f, r) == 0 for f in fs)]


def _pair_constraints(t6: IntMatrix, s: str, t: str) -> list[tuple[int, ...]]:
    """Rows ``H`` with ``H g >= 0`` iff ``g`` in ``P_s`` and ``T g`` in ``P_t``."""
    mapped = [tuple(sum(h[k] * t6[k][c] for k in range(6)) for c in range(6)) for h in CLOSED_CONE[t]]
    return list(CLOSED_CONE[s]) + mapped


def _rationalise(
    values: Sequence[float] | np.ndarray, check: Callable[[list[Fraction]], bool]
) -> list[Fraction] | None:
    for bound in (10, 100, 10**4, 10**6, 10**8):
        cand = [Fraction(float(x)).limit_denominator(bound) for x in values]
        if check(cand):
            return cand
    return None


def _witness_ok(m: IntMatrix, s: str, t: str, g: Sequence[Any]) -> bool:
    """Exact: ``A > 0``, ``g`` in ``P_s``, ``T_M g`` in ``P_t`` (``A > 0`` on the cone => positive definite)."""
    return g[0] > 0 and _in_piece(g, s) and _in_piece(_apply6(g6_action(m), g), t)


def _farkas_ok(m: IntMatrix, s: str, t: str, y: Sequence[Fraction]) -> bool:
    """Exact: ``y >= 0`` and ``y^T H = -e_A``."""
    h = _pair_constraints(g6_action(m), s, t)
    return all(v >= 0 for v in y) and all(
        sum((y[i] * h[i][c] for i in range(len(h))), Fraction(0)) == (-1 if c == 0 else 0) for c in range(6)
    )


def _lp_feasible_point(h_rows: Sequence[Sequence[int]]) -> np.ndarray | None:
    from scipy.optimize import linprog

    h = np.array(h_rows, dtype=float)
    a_ub = np.vstack([-h, [[-1, 0, 0, 0, 0, 0]]])
    b_ub = np.zeros(len(a_ub))
    b_ub[-1] = -1.0
    res = linprog(np.zeros(6), A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * 6, method="highs")
    return res.x if res.status == 0 else None


def _lp_farkas(h_rows: Sequence[Sequence[int]]) -> np.ndarray | None:
    from scipy.optimize import linprog

    h = np.array(h_rows, dtype=float)
    res = linprog(np.zeros(len(h)), A_eq=h.T, b_eq=-np.eye(6)[0], bounds=[(0, None)] * len(h), method="highs")
    return res.x if res.status == 0 else None


@dataclass
class Decision:
    """Exact membership decision of one candidate with its certificate(s).

    ``witness`` is ``(s, t, g6)`` for a member; ``certificates`` holds, per pair of pieces, one of
    ``("empty face of G", s)``, ``("empty face of G'", s, t)`` or ``("farkas", s, t, y)`` for a
    non-member.
    """

    member: bool
    witness: tuple[Any, ...] | None = None
    certificates: list[tuple[Any, ...]] = field(default_factory=list)


def decide(m: IntMatrix) -> Decision:
    """Exact membership decision for one candidate (float LPs only propose certificates).

    Raises
    ------
    AssertionError
        An LP proposal that does not rationalise to an exact certificate (the derivation is then
        incomplete and must not be written).
    """
    m_inv = _unimodular_inverse(m)
    t6, t6_inv = g6_action(m), g6_action(m_inv)
    certs: list[tuple[Any, ...]] = []
    for s in PIECES:
        face_s = _face_rays(m, s)
        if not any(r[0] > 0 for r in face_s):
            certs.append(("empty face of G", s))
            continue
        for t in PIECES:
            face_t = _face_rays(m_inv, t)
            if not any(r[0] > 0 for r in face_t):
                certs.append(("empty face of G'", s, t))
                continue
            # cheap exact witnesses first: the centre of each face
            g0 = [sum(r[i] for r in face_s) for i in range(6)]
            if _witness_ok(m, s, t, g0):
                return Decision(True, (s, t, tuple(g0)))
            g1 = _apply6(t6_inv, [sum(r[i] for r in face_t) for i in range(6)])
            if _witness_ok(m, s, t, g1):
                return Decision(True, (s, t, tuple(g1)))
            h_rows = _pair_constraints(t6, s, t)
            x = _lp_feasible_point(h_rows)
            if x is not None:
                g = _rationalise(x, functools.partial(_witness_ok, m, s, t))
                if g is None:
                    raise AssertionError(f"LP found a point for {m} ({s},{t}) but no exact witness")
                return Decision(True, (s, t, tuple(g)))
            y = _lp_farkas(h_rows)
            cert = None if y is None else _rationalise(y, functools.partial(_farkas_ok, m, s, t))
            if cert is None:
                raise AssertionError(f"no exact infeasibility certificate for {m} ({s},{t})")
            certs.append(("farkas", s, t, tuple(cert)))
    return Decision(False, certificates=certs)


@functools.lru_cache(maxsize=1)
def enumerate_neighbours() -> tuple[tuple[IntMatrix, ...], dict[IntMatrix, Decision]]:
    """All candidates decided: ``(members sorted lexicographically, {candidate: Decision})``."""
    decisions = {m: decide(m) for m in candidate_transforms()}
    members = tuple(sorted(m for m, d in decisions.items() if d.member))
    return members, decisions


def render_table(members: Sequence[Sequence[Sequence[int]]]) -> str:
    """The exact text of ``niggli_neighbours.txt`` for the given (sorted) members."""
    lines = [
        "# Boundary maps of the Niggli cone: the finite candidate set S of the Gram-space loss.",
        "# S = {M in GL(3, Z): some positive-definite G has G and M G M^T in the closed Niggli cone}.",
        "# Rows convention: L' = M @ L, G' = M @ G @ M.T.  One matrix a line, entries row by row,",
        f"# sorted lexicographically; |S| = {len(members)}.  Certified by proofs/test_08_boundary_maps.py.",
        "# Generated by `python -m latticesym._tables.niggli_neighbours.derive --write`; do not edit by hand.",
    ]
    lines += [" ".join(str(v) for row in m for v in row) for m in members]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: derive S; ``--check`` compares with the shipped file, ``--write`` overwrites it."""
    parser = argparse.ArgumentParser(prog="python -m latticesym._tables.niggli_neighbours.derive")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="overwrite the shipped niggli_neighbours.txt")
    mode.add_argument("--check", action="store_true", help="fail unless the shipped file matches byte for byte")
    args = parser.parse_args(argv)
    members, decisions = enumerate_neighbours()
    text = render_table(members)
    target = resources.files("latticesym._tables.niggli_neighbours").joinpath("niggli_neighbours.txt")
    print(f"{len(decisions)} candidates, |S| = {len(members)}")
    if args.write:
        with resources.as_file(target) as path:
            path.write_text(text, encoding="ascii")
            print(f"wrote {path}")
    elif args.check:
        shipped = target.read_text(encoding="ascii")
        if shipped != text:
            print("shipped niggli_neighbours.txt differs from the derivation", file=sys.stderr)
            return 1
        print("shipped niggli_neighbours.txt matches the derivation")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
