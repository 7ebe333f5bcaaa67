"""Krivy-Gruber step logic with tolerance, written once for every arithmetic (docs/algorithm.md).

:func:`kg_decide` is the single place where the Niggli conditions live.  It uses only arithmetic
operators, ``abs`` and the bitwise ``&``, ``|``, ``^`` on booleans, so the same function runs on

- Python floats, ``mpmath`` numbers and ``Fraction`` (the context-generic reducer
  :func:`reduce_with_context`, used for single lattices, the mpmath reducer and escalation),
- numpy arrays, elementwise (the vectorised batch of :mod:`latticesym.reduce._batch`),
- numba, compiled from this very source (:mod:`latticesym.reduce._numba`),

and :func:`latticesym.reduce.is_niggli_reduced` is ``kg_decide(...) == 0``: the predicate and the
reducers cannot drift apart (gemmi's ``cellred.hpp`` does the same).

Tolerant comparisons (Grosse-Kunstleve, Sauter & Adams 2004), with ``e = eps * V**(2/3)``:
``x < y`` means ``x < y - e``, ``x > y`` means ``y < x - e``, ``x == y`` means neither.  Each
comparison also reports whether it is *unsure*: whether the rounding-error bounds ``dx, dy`` of its
operands could flip it.  A final state is certified only when no comparison is unsure.

References
----------
I. Krivy & B. Gruber (1976). Acta Cryst. A32, 297-298. https://doi.org/10.1107/S0567739476000636
R. W. Grosse-Kunstleve, N. K. Sauter & P. D. Adams (2004). Acta Cryst. A60, 1-6.
https://doi.org/10.1107/S010876730302186X
"""

from __future__ import annotations

import types
from typing import Any

__all__ = [
    "A1",
    "A2",
    "A3",
    "A4",
    "A5",
    "A6",
    "A7",
    "A8",
    "REDUCED",
    "STEP_NAMES",
    "TAU_A",
    "g6_error_bounds",
    "kg_decide",
    "kg_decide_fast",
    "lt_checked",
    "lt_fast",
    "rebind",
]

REDUCED, A1, A2, A3, A4, A5, A6, A7, A8 = range(9)
#: The tolerance is capped at this fraction of ``A`` (a power of two: ``TAU_A * A`` is exact).
TAU_A = 0.0625
STEP_NAMES = ("reduced", "A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8")


def lt_checked(x: Any, dx: Any, y: Any, dy: Any, e: Any, u: Any) -> tuple[Any, Any]:
    """Tolerant ``x < y`` (``x < y - e``) and whether error bounds ``dx, dy`` could flip it.

    With zero bounds (exact arithmetic) nothing is unsure, not even an exact tie.
    """
    m = y - e - x
    return m > 0, abs(m) < dx + dy + 4 * u * (abs(x) + abs(y) + e)


# The comparison primitive that kg_decide calls by this global name; rebind() compiles the same
# source against lt_fast (see kg_decide_fast).
lt = lt_checked


def lt_fast(x: Any, dx: Any, y: Any, dy: Any, e: Any, u: Any) -> tuple[Any, bool]:
    """:func:`lt_checked` without the error analysis (for the steps between certifications)."""
    return x < y - e, False


def kg_decide(A: Any, B: Any, C: Any, xi: Any, eta: Any, zeta: Any,
              dA: Any, dB: Any, dC: Any, dxi: Any, deta: Any, dzeta: Any,
              e: Any, u: Any, skip: int = 0) -> tuple[Any, Any, Any, Any, Any]:
    """The first Krivy-Gruber step that applies to a G6 vector, with tolerance ``e``.

    Parameters
    ----------
    A, B, C, xi, eta, zeta
        The G6 vector :math:`(a\\cdot a, b\\cdot b, c\\cdot c, 2b\\cdot c, 2a\\cdot c, 2a\\cdot b)`.
    dA, ..., dzeta
        Bounds on the rounding errors of the six entries (zeros for exact values).
    e
        Tolerance in the units of G6 (Angstrom**2); ``e = 0`` gives exact comparisons.
    u
        Unit roundoff of the arithmetic (``2**-53`` for float64, ``0`` for exact), used to bound
        the rounding of the expressions formed here.
    skip
        Bit mask of steps to leave out (``1 << A5`` ...): only for tests that build a broken
        reducer on purpose and check that the certification catches it.

    Returns
    -------
    code : int (or int array)
        ``0`` if no step applies (the G6 is Niggli reduced within ``e``), else the step
        ``A1 .. A8`` (1 .. 8) to apply.
    unsure : bool (or bool array)
        Some comparison was within its error bound of flipping; a ``code == 0`` answer with
        ``unsure`` set is not certified.
    i, j, k : int
        For A3 / A4 (``code`` 3, 4) the sign matrix ``diag(i, j, k)``, det +1; for A5-A7, ``i``
        is the sign of the multiple to use when the rounded one is zero (the ``x == B`` /
        ``x == -B`` branches).

    Notes
    -----
    The comparisons go through the module global ``lt`` (:func:`lt_checked`);
    :data:`kg_decide_fast` is this source bound to :func:`lt_fast`, used between certifications
    (numba then drops the dead error analysis).

    The tolerance is capped at :data:`TAU_A` times ``A``, the current shortest squared length:
    ``e_eff = min(e, A / 16)``.  With ``e`` comparable to ``A`` (a vector much shorter than
    :math:`V^{1/3}`, "needle" cells) the special cases ``eta == A`` and ``eta == -A`` would both hold
    for every small ``eta`` and the steps would cycle; the tolerance band would also leave ``C``
    up to :math:`e^2 / 4A \\gg e` above its reduced value, so the result would depend on the input
    basis (docs/algorithm.md).

    Examples
    --------
    >>> kg_decide(9, 4, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)[0]    # A > B: step A1 swaps a, b
    1
    >>> kg_decide(4, 9, 9, 9, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0)[:2]    # Krivy & Gruber's result
    (0, False)
    """
    four_u = 4 * u
    # the tolerance never exceeds TAU_A = 1/16 of the shortest squared length A (needle cells)
    capped = e > A / 16  # TAU_A = 1/16, written as a division so that Fractions stay exact
    de = capped * (dA / 16)
    e = capped * (A / 16) + (capped ^ True) * e
    dA, dB, dC, dxi, deta, dzeta = dA + de, dB + de, dC + de, dxi + de, deta + de, dzeta + de
    aa, uaa = lt(B, dB, A, dA, e, u)  # A > B
    ab, uab = lt(A, dA, B, dB, e, u)  # A < B
    bb, ubb = lt(C, dC, B, dB, e, u)  # B > C
    bc, ubc = lt(B, dB, C, dC, e, u)  # B < C
    axi, aeta, azeta = abs(xi), abs(eta), abs(zeta)
    xe, uxe = lt(aeta, deta, axi, dxi, e, u)  # |xi| > |eta|
    ez, uez = lt(azeta, dzeta, aeta, deta, e, u)  # |eta| > |zeta|
    # A1, Krivy & Gruber 1976: A > B or (A == B and |xi| > |eta|)
    c1 = aa | (((aa | ab) ^ True) & xe)
    # A2: B > C or (B == C and |eta| > |zeta|)
    c2 = bb | (((bb | bc) ^ True) & ez)
    unsure = uaa | uab | ubb | ubc | uxe | uez

    # tolerant signs l, m, n of xi, eta, zeta
    lp, ulp = lt(0, 0, xi, dxi, e, u)
    ln, uln = lt(xi, dxi, 0, 0, e, u)
    mp, ump = lt(0, 0, eta, deta, e, u)
    mn, umn = lt(eta, deta, 0, 0, e, u)
    np_, unp = lt(0, 0, zeta, dzeta, e, u)
    nn, unn = lt(zeta, dzeta, 0, 0, e, u)
    unsure = unsure | ulp | uln | ump | umn | unp | unn
    lz, mz, nz = (lp | ln) ^ True, (mp | mn) ^ True, (np_ | nn) ^ True
    type_one = ((lz | mz | nz) ^ True) & ((ln ^ mn ^ nn) ^ True)  # l*m*n == 1
    # A3: l*m*n == 1 and some sign negative -> diag(i, j, k), i = -1 where l == -1
    c3 = type_one & (ln | mn | nn)
    # A4: l*m*n in (0, -1) and some sign positive -> flip the positives; if that is an odd number
    # of flips, also flip the first zero entry so that det = +1
    c4 = (type_one ^ True) & (lp | mp | np_)
    odd = lp ^ mp ^ np_
    fl = odd & lz
    fm = odd & (lz ^ True) & mz
    fn = odd & (lz ^ True) & (mz ^ True) & nz
    i4 = (1 - 2 * lp) * (1 - 2 * fl)
    j4 = (1 - 2 * mp) * (1 - 2 * fm)
    k4 = (1 - 2 * np_) * (1 - 2 * fn)
    si = c3 * (1 - 2 * ln) + (c3 ^ True) * i4
    sj = c3 * (1 - 2 * mn) + (c3 ^ True) * j4
    sk = c3 * (1 - 2 * nn) + (c3 ^ True) * k4

    # A5: |xi| > B or (xi == B and 2 eta < zeta) or (xi == -B and zeta < 0)
    g5, u1 = lt(B, dB, axi, dxi, e, u)
    p5, u2 = lt(xi, dxi, B, dB, e, u)
    q5, u3 = lt(B, dB, xi, dxi, e, u)
    r5, u4 = lt(2 * eta, 2 * deta, zeta, dzeta, e, u)
    s5, u5 = lt(xi, dxi, -B, dB, e, u)
    t5, u6 = lt(-B, dB, xi, dxi, e, u)
    z5, u7 = lt(zeta, dzeta, 0, 0, e, u)
    c5 = g5 | (((p5 | q5) ^ True) & r5) | (((s5 | t5) ^ True) & z5)
    unsure = unsure | u1 | u2 | u3 | u4 | u5 | u6 | u7
    # A6: |eta| > A or (eta == A and 2 xi < zeta) or (eta == -A and zeta < 0)
    g6, u1 = lt(A, dA, aeta, deta, e, u)
    p6, u2 = lt(eta, deta, A, dA, e, u)
    q6, u3 = lt(A, dA, eta, deta, e, u)
    r6, u4 = lt(2 * xi, 2 * dxi, zeta, dzeta, e, u)
    s6, u5 = lt(eta, deta, -A, dA, e, u)
    t6, u6 = lt(-A, dA, eta, deta, e, u)
    c6 = g6 | (((p6 | q6) ^ True) & r6) | (((s6 | t6) ^ True) & z5)
    unsure = unsure | u1 | u2 | u3 | u4 | u5 | u6
    # A7: |zeta| > A or (zeta == A and 2 xi < eta) or (zeta == -A and eta < 0)
    g7, u1 = lt(A, dA, azeta, dzeta, e, u)
    p7, u2 = lt(zeta, dzeta, A, dA, e, u)
    q7, u3 = lt(A, dA, zeta, dzeta, e, u)
    r7, u4 = lt(2 * xi, 2 * dxi, eta, deta, e, u)
    s7, u5 = lt(zeta, dzeta, -A, dA, e, u)
    t7, u6 = lt(-A, dA, zeta, dzeta, e, u)
    c7 = g7 | (((p7 | q7) ^ True) & r7) | (((s7 | t7) ^ True) & mn)
    unsure = unsure | u1 | u2 | u3 | u4 | u5 | u6
    # A8: xi + eta + zeta + A + B < 0 or (== 0 and 2 (A + eta) + zeta > 0)
    mag = axi + aeta + azeta + A + B
    s = xi + eta + zeta + A + B
    ds = dxi + deta + dzeta + dA + dB + four_u * mag
    n8, u1 = lt(s, ds, 0, 0, e, u)
    p8, u2 = lt(0, 0, s, ds, e, u)
    w = 2 * (A + eta) + zeta
    g8, u3 = lt(0, 0, w, 2 * dA + 2 * deta + dzeta + four_u * (2 * A + 2 * aeta + azeta), e, u)
    c8 = n8 | (((n8 | p8) ^ True) & g8)
    unsure = unsure | u1 | u2 | u3

    if skip:  # test hook only: build a deliberately broken reducer
        c1 = c1 & (((skip >> A1) & 1) == 0)
        c2 = c2 & (((skip >> A2) & 1) == 0)
        c3 = c3 & (((skip >> A3) & 1) == 0)
        c4 = c4 & (((skip >> A4) & 1) == 0)
        c5 = c5 & (((skip >> A5) & 1) == 0)
        c6 = c6 & (((skip >> A6) & 1) == 0)
        c7 = c7 & (((skip >> A7) & 1) == 0)
        c8 = c8 & (((skip >> A8) & 1) == 0)

    # the first step that fires, in the order A1 .. A8
    free = c1 ^ True
    code = c1 * A1 + (free & c2) * A2
    free = free & (c2 ^ True)
    code = code + (free & c3) * A3
    free = free & (c3 ^ True)
    code = code + (free & c4) * A4
    free = free & (c4 ^ True)
    code = code + (free & c5) * A5
    free = free & (c5 ^ True)
    code = code + (free & c6) * A6
    free = free & (c6 ^ True)
    code = code + (free & c7) * A7
    free = free & (c7 ^ True)
    code = code + (free & c8) * A8
    # sign of the multiple in A5-A7 when the rounded one is zero: +1 for the x == +bound branch
    neg5 = (g5 & (xi < 0)) | (((g5 | (((p5 | q5) ^ True) & r5)) ^ True) & (((s5 | t5) ^ True) & z5))
    neg6 = (g6 & (eta < 0)) | (((g6 | (((p6 | q6) ^ True) & r6)) ^ True) & (((s6 | t6) ^ True) & z5))
    neg7 = (g7 & (zeta < 0)) | (((g7 | (((p7 | q7) ^ True) & r7)) ^ True) & (((s7 | t7) ^ True) & mn))
    si = ((code == A5) * (1 - 2 * neg5) + (code == A6) * (1 - 2 * neg6) + (code == A7) * (1 - 2 * neg7)
          + (code < A5) * si)
    return code, unsure, si, sj, sk


def rebind(fn: Any, name: str, **names: Any) -> Any:
    """The function ``fn`` with some of its global names bound to other objects, under a new name.

    This compiles one source against other primitives: ``kg_decide`` with ``lt`` bound to the
    fast (or to a numba-compiled) comparison.  The new ``__qualname__`` keeps numba's on-disk
    cache entries apart.
    """
    env = dict(fn.__globals__)
    env.update(names)
    out = types.FunctionType(fn.__code__, env, name, fn.__defaults__, fn.__closure__)
    out.__qualname__ = name
    out.__doc__ = fn.__doc__
    return out


#: :func:`kg_decide` without the error analysis: the same source, compiled with :func:`lt_fast`.
kg_decide_fast = rebind(kg_decide, "kg_decide_fast", lt=lt_fast)


def g6_error_bounds(nb0: Any, nb1: Any, nb2: Any, s0: Any, s1: Any, s2: Any, u: Any, tiny: Any
                    ) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Rounding-error bounds of a G6 vector computed from a Dot2-rounded basis.

    Parameters
    ----------
    nb0, nb1, nb2
        Upper bounds of the row norms :math:`\\|b_i\\|` of the computed basis.
    s0, s1, s2
        :math:`\\sum_k |T_{ik}|\\,\\|l_k\\|`: bounds of :math:`\\| |T_i| |L| \\|`, the size of the
        terms that cancel in row ``i`` of ``T @ L``.
    u, tiny
        Unit roundoff and an absolute allowance for underflow.

    Notes
    -----
    Row ``i`` of the basis is off by at most
    :math:`\\beta_i = 2u\\|b_i\\| + 10u^2 s_i` (Dot2 bound, Ogita, Rump & Oishi 2005, Prop. 5.5,
    with :math:`\\gamma_3^2 \\le 10u^2`), and the float Gram entry
    :math:`g_{ij} = \\mathrm{fl}(b_i \\cdot b_j)` by at most
    :math:`4u\\|b_i\\|\\|b_j\\| + \\|b_i\\|\\beta_j + \\beta_i\\|b_j\\| + \\beta_i\\beta_j`; the bound
    returned is twice that plus ``tiny`` (slack for the rounding of the bound itself).
    """
    b0 = 2 * u * nb0 + 10 * u * u * s0
    b1 = 2 * u * nb1 + 10 * u * u * s1
    b2 = 2 * u * nb2 + 10 * u * u * s2
    four_u = 4 * u
    d00 = 2 * (four_u * nb0 * nb0 + 2 * nb0 * b0 + b0 * b0) + tiny
    d11 = 2 * (four_u * nb1 * nb1 + 2 * nb1 * b1 + b1 * b1) + tiny
    d22 = 2 * (four_u * nb2 * nb2 + 2 * nb2 * b2 + b2 * b2) + tiny
    d12 = 2 * (four_u * nb1 * nb2 + nb1 * b2 + b1 * nb2 + b1 * b2) + tiny
    d02 = 2 * (four_u * nb0 * nb2 + nb0 * b2 + b0 * nb2 + b0 * b2) + tiny
    d01 = 2 * (four_u * nb0 * nb1 + nb0 * b1 + b0 * nb1 + b0 * b1) + tiny
    return d00, d11, d22, 2 * d12, 2 * d02, 2 * d01


# --------------------------------------------------------------------------- the reducer, once
#: Status codes of one reduction (the values of :class:`latticesym.reduce.ReduceStatus`).
OK, NONFINITE, SINGULAR, PRECISION, NOT_CONVERGED, OVERFLOW, CYCLE = range(7)
#: Ordered pairs ``(i, j)`` tried by the pre-reduction ``v_i <- v_i - q v_j``; ties go to the first.
PRE_PAIRS = ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1))
#: A pre-reduction step must shorten ``|v_i|**2`` by more than this fraction of it; the pair with
#: the largest relative decrease is taken.
PRE_TAU = 2.0**-8
#: Relative agreement required between the volume the tolerance was computed from and the volume
#: of the final basis (both from accurate rows), and the relative rounding bound of a volume.
VOLUME_RTOL = 2.0**-30
#: Smallest reported ``A`` (the first G6 entry, in the input's units): below it the scaled-back G6
#: and the cap ``A / 16`` are subnormal (inexact) or zero, so the result is ``OVERFLOW`` (not
#: representable in float64; lattice vectors shorter than about 1.5e-154).
G6_MIN = 2.0**-1018
#: Smallest normal float64: a positive reported tolerance below it would be rounded (inexact).
NORMAL_MIN = 2.0**-1022


class KGRun:
    """Outcome of :func:`reduce_with_context` (plain attributes, no validation)."""

    __slots__ = ("e", "g6", "iterations", "rows", "status", "transform")

    def __init__(self, transform: list[list[int]], rows: list[list[Any]], g6: tuple[Any, ...],
                 iterations: int, status: int, e: Any):
        self.transform = transform
        self.rows = rows
        self.g6 = g6
        self.iterations = iterations
        self.status = status
        self.e = e


def _g6(g: list[list[Any]]) -> tuple[Any, ...]:
    return g[0][0], g[1][1], g[2][2], 2 * g[1][2], 2 * g[0][2], 2 * g[0][1]


def reduce_with_context(ctx: Any, data: Any, eps: Any, max_iter: int, *, e: Any = None,
                        transform: list[list[int]] | None = None, skip: int = 0) -> KGRun:
    """Niggli-reduce one lattice in the arithmetic of ``ctx`` (docs/algorithm.md, both phases).

    This is the reference implementation of the control flow; the numba kernel and the numpy
    batch mirror it step for step (and are tested to give bit-identical float results).

    Parameters
    ----------
    ctx
        An arithmetic context of :mod:`latticesym.reduce._context` (float64, mpmath, exact).
    data
        ``ctx.prepare(lattice)``.
    eps
        Relative tolerance; ``e = eps * V**(2/3)`` unless ``e`` is given.
    max_iter
        Cap on the Krivy-Gruber steps, and separately on the pre-reduction steps.
    e
        A fixed absolute tolerance (escalation passes the float path's ``e`` so that every
        arithmetic decides with the same one).
    transform
        Start from this integer basis change instead of the identity.
    skip
        Step mask for deliberately broken reducers in tests (see :func:`kg_decide`).
    """
    t = [list(map(int, row)) for row in transform] if transform is not None else [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    accurate = not ctx.has_fast_rows
    rows = [ctx.row(t[i], data, accurate) for i in range(3)]
    g = [[ctx.dot(rows[i], rows[j]) for j in range(3)] for i in range(3)]
    n_pre = n_kg = 0
    zero = ctx.zero
    fixed_e = e is not None

    def finish(status: int) -> KGRun:
        return KGRun(t, rows, _g6(g), n_pre + n_kg, status, e)

    if not (g[0][0] > 0 and g[1][1] > 0 and g[2][2] > 0):
        return finish(PRECISION)
    v_used, _ = ctx.volume(rows, data)
    if not fixed_e:
        e = ctx.tolerance(v_used, eps)
    if kg_decide_fast(*_g6(g), zero, zero, zero, zero, zero, zero, e, zero)[0] != REDUCED:
        # Phase 1: pre-reduction with rounded multiples, greedy on the largest relative decrease
        while True:
            best, bi, bj, bq = zero, -1, -1, 0
            for i, j in PRE_PAIRS:
                q = ctx.round_half_away(g[i][j] / g[j][j])
                dec = (2 * q * g[i][j] - q * q * g[j][j]) / g[i][i]  # relative decrease of |v_i|**2
                if dec > best:
                    best, bi, bj, bq = dec, i, j, q
            if not best > PRE_TAU:
                break
            if n_pre >= max_iter:
                return finish(NOT_CONVERGED)
            if not ctx.shear_fits(t[bi], t[bj], bq):
                return finish(OVERFLOW)
            qi = int(bq)
            t[bi] = [t[bi][k] - qi * t[bj][k] for k in range(3)]
            n_pre += 1
            rows[bi] = ctx.row(t[bi], data, accurate)
            for k in range(3):
                g[bi][k] = g[k][bi] = ctx.dot(rows[bi], rows[k])
            if not g[bi][bi] > 0:
                return finish(PRECISION)
        if not fixed_e:
            v_used, _ = ctx.volume([ctx.row(t[i], data, True) for i in range(3)], data)
            e = ctx.tolerance(v_used, eps)

    # Phase 2: Krivy-Gruber with tolerance; Brent's cycle detection on the transform
    saved = [row[:] for row in t]
    power, lam = 1, 0
    while True:
        code, _, si, sj, sk = kg_decide_fast(*_g6(g), zero, zero, zero, zero, zero, zero, e, zero, skip)
        if code == REDUCED:
            # certification: accurate rows, volume consistency, robust decision
            if not accurate:
                rows = [ctx.row(t[i], data, True) for i in range(3)]
                g = [[ctx.dot(rows[i], rows[j]) for j in range(3)] for i in range(3)]
            v_fin, reliable = ctx.volume(rows, data)
            if not reliable:
                return finish(PRECISION)
            if not fixed_e and abs(v_fin - v_used) > VOLUME_RTOL * v_fin:
                v_used = v_fin
                e = ctx.tolerance(v_used, eps)
                accurate = True
                continue
            d = ctx.g6_errors(rows, g, t, data)
            g6v = _g6(g)
            code2, unsure, _, _, _ = kg_decide(g6v[0], g6v[1], g6v[2], g6v[3], g6v[4], g6v[5],
                                               d[0], d[1], d[2], d[3], d[4], d[5], e, ctx.u, skip)
            if code2 != REDUCED:
                if accurate:
                    return finish(PRECISION)
                accurate = True
                saved, power, lam = [row[:] for row in t], 1, 0
                continue
            return finish(PRECISION if unsure else OK)
        if n_kg >= max_iter:
            return finish(NOT_CONVERGED)
        if code <= A2:
            perm = (1, 0, 2) if code == A1 else (0, 2, 1)
            t = [[-v for v in t[p]] for p in perm]
            rows = [[-v for v in rows[p]] for p in perm]
            g = [[g[perm[i]][perm[j]] for j in range(3)] for i in range(3)]
        elif code <= A4:
            sgn = (int(si), int(sj), int(sk))
            t = [[sgn[i] * v for v in t[i]] for i in range(3)]
            rows = [[sgn[i] * v for v in rows[i]] for i in range(3)]
            g = [[sgn[i] * sgn[j] * g[i][j] for j in range(3)] for i in range(3)]
        else:
            if code == A8:  # c <- c + a + b
                i, j, q = 2, -1, -1
            else:  # A5: c -= n b; A6: c -= n a; A7: b -= n a, n = round(x / 2 g_jj) or the branch sign
                i, j = ((2, 1), (2, 0), (1, 0))[code - A5]
                q = ctx.round_half_away(g[i][j] / g[j][j])
                if q == 0:
                    q = si
            if j < 0:
                if not ctx.sum_fits(t[2], t[0], t[1]):
                    return finish(OVERFLOW)
                new = [t[2][k] + t[0][k] + t[1][k] for k in range(3)]
            else:
                if not ctx.shear_fits(t[i], t[j], q):
                    return finish(OVERFLOW)
                qi = int(q)
                new = [t[i][k] - qi * t[j][k] for k in range(3)]
            t[i] = new
            rows[i] = ctx.row(t[i], data, accurate)
            for k in range(3):
                g[i][k] = g[k][i] = ctx.dot(rows[i], rows[k])
            if not g[i][i] > 0:
                n_kg += 1
                return finish(PRECISION)
        n_kg += 1
        if t == saved:
            return finish(CYCLE)
        lam += 1
        if lam == power:
            saved, power, lam = [row[:] for row in t], 2 * power, 0
