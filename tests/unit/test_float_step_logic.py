"""The float reducer's step logic, tested without numba: ``_kg``, ``_context`` and ``_certify``.

These tests are the suite of the ``float`` mutation target (``scripts/run_mutation.py float``):
mutmut replaces every function by a trampoline that numba cannot compile, so nothing here may
reach the compiled kernel.  The reducers are called through ``niggli_reduce(..., backend="python")``,
``mp_niggli_reduce``, ``is_niggli_reduced`` and directly (``reduce_with_context`` with a float,
mpmath or exact context); the decisions are compared with an independent statement of the
Krivy-Gruber conditions (:func:`_spec`), the results with the exact oracle
:func:`latticesym.reference.niggli_reduce`.

Keep it fast (a few seconds): every mutant re-runs it.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest

from latticesym.errors import (
    LatticeShapeError,
    NonFiniteLatticeError,
    NotExactError,
    PrecisionError,
    ReductionCycleError,
    ReductionError,
    SingularLatticeError,
)
from latticesym.metric import g6_to_gram
from latticesym.reduce import Arithmetic, ReduceStatus, _kg, is_niggli_reduced, mp_niggli_reduce, niggli_reduce
from latticesym.reduce._accurate import UNIT_ROUNDOFF, cbrt_squared, split
from latticesym.reduce._certify import relaxed_niggli_violations, result_violations
from latticesym.reduce._context import (
    FLOAT_TINY,
    MAX_TRANSFORM,
    ExactContext,
    FloatContext,
    MPContext,
    _exact_det,
    _has_mpf,
    _mp_instance,
    _mpf_to_fraction,
    _UnboundedTransforms,
    exact_entries,
)
from latticesym.reduce._kg import (
    A1,
    A2,
    A3,
    A4,
    A5,
    A6,
    A7,
    A8,
    REDUCED,
    KGRun,
    g6_error_bounds,
    kg_decide,
    kg_decide_fast,
    lt_checked,
    lt_fast,
    rebind,
    reduce_with_context,
)
from latticesym.reference import niggli_reduce as exact_reduce

U = UNIT_ROUNDOFF
ID3 = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def _py(lattice: Any, **kw: Any) -> Any:
    """The float reducer without numba: the Python loop over ``reduce_with_context``."""
    return niggli_reduce(lattice, backend="python", **kw)


def _fr(lattice: Any) -> list[list[Fraction]]:
    return [[Fraction(v) if not isinstance(v, float | np.floating) else Fraction(float(v)) for v in row]
            for row in lattice]


def _times(t: Any, lattice: Any) -> list[list[Fraction]]:
    """Exact ``t @ lattice``."""
    x = _fr(lattice)
    ti = [[int(v) for v in row] for row in t]
    return [[sum((ti[i][k] * x[k][j] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]


def _det(t: Any) -> int:
    m = [[int(v) for v in row] for row in t]
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def _mp_fraction(v: Any) -> Fraction:
    sign, man, exp, _ = v._mpf_  # (mpf.man_exp drops the sign)
    return (-1 if sign else 1) * Fraction(int(man)) * Fraction(2) ** int(exp)


def _g6_exact(rows: Any) -> tuple[Fraction, ...]:
    r = _fr(rows)
    g = [[sum((r[i][k] * r[j][k] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]
    return g[0][0], g[1][1], g[2][2], 2 * g[1][2], 2 * g[0][2], 2 * g[0][1]


# --------------------------------------------------------------------------- an independent statement of KG
def _spec(g: tuple[Any, ...], e: Any, skip: int = 0) -> tuple[int, tuple[int, ...] | None, str]:
    """Krivy & Gruber (1976) with the tolerance of Grosse-Kunstleve et al. (2004), from the papers.

    ``x < y`` is ``x < y - e``; ``x == y`` is neither ``x < y`` nor ``y < x``; ``e`` is capped at
    ``A / 16``.  Returns ``(step, signs, branch)``: ``signs`` is ``diag(i, j, k)`` for A3 / A4 and
    ``(sign of the multiple,)`` for A5 - A7.
    """
    A, B, C, xi, eta, zeta = g
    if e > A / 16:
        e = A / 16

    def lt(x: Any, y: Any) -> bool:
        return bool(x < y - e)

    def eq(x: Any, y: Any) -> bool:
        return not lt(x, y) and not lt(y, x)

    def sign(x: Any) -> int:
        return 1 if lt(0, x) else -1 if lt(x, 0) else 0

    l, m, n = sign(xi), sign(eta), sign(zeta)
    s = xi + eta + zeta + A + B
    branches: dict[int, list[tuple[str, bool]]] = {
        A1: [("A>B", lt(B, A)), ("A=B", eq(A, B) and lt(abs(eta), abs(xi)))],
        A2: [("B>C", lt(C, B)), ("B=C", eq(B, C) and lt(abs(zeta), abs(eta)))],
        A3: [("lmn=1", l * m * n == 1 and -1 in (l, m, n))],
        A4: [("lmn<1", l * m * n != 1 and 1 in (l, m, n))],
        A5: [("|xi|>B", lt(B, abs(xi))), ("xi=B", eq(xi, B) and lt(2 * eta, zeta)),
             ("xi=-B", eq(xi, -B) and lt(zeta, 0))],
        A6: [("|eta|>A", lt(A, abs(eta))), ("eta=A", eq(eta, A) and lt(2 * xi, zeta)),
             ("eta=-A", eq(eta, -A) and lt(zeta, 0))],
        A7: [("|zeta|>A", lt(A, abs(zeta))), ("zeta=A", eq(zeta, A) and lt(2 * xi, eta)),
             ("zeta=-A", eq(zeta, -A) and lt(eta, 0))],
        A8: [("sum<0", lt(s, 0)), ("sum=0", eq(s, 0) and lt(0, 2 * (A + eta) + zeta))],
    }
    for step in range(A1, A8 + 1):
        if (skip >> step) & 1:
            continue
        fired = [name for name, cond in branches[step] if cond]
        if not fired:
            continue
        if step == A3:
            return step, tuple(-1 if v == -1 else 1 for v in (l, m, n)), fired[0]
        if step == A4:
            flip = [v == 1 for v in (l, m, n)]
            if sum(flip) % 2:
                flip[(l, m, n).index(0)] = True
            return step, tuple(-1 if f else 1 for f in flip), fired[0]
        if step in (A5, A6, A7):
            x = (xi, eta, zeta)[step - A5]
            first = branches[step][0][1]
            return step, ((-1 if x < 0 else 1) if first else (1 if fired[0].endswith("=B") or
                                                               fired[0].endswith("=A") else -1),), fired[0]
        return step, None, fired[0]
    return REDUCED, None, ""


def _comparisons(g: tuple[Any, ...], d: tuple[Any, ...], e: Any, u: Any) -> list[tuple[Any, Any, Any, Any]]:
    """Every tolerant comparison ``x < y`` of the decision, with the error bounds of its operands."""
    A, B, C, xi, eta, zeta = g
    dA, dB, dC, dxi, deta, dzeta = d
    if e > A / 16:  # the cap: e = A / 16 carries the error of A
        e = A / 16
        dA, dB, dC, dxi, deta, dzeta = (v + d[0] / 16 for v in d)
    ax, ae, az = abs(xi), abs(eta), abs(zeta)
    out = [(B, dB, A, dA), (A, dA, B, dB), (C, dC, B, dB), (B, dB, C, dC), (ae, deta, ax, dxi), (az, dzeta, ae, deta)]
    for x, dx in ((xi, dxi), (eta, deta), (zeta, dzeta)):
        out += [(0, 0, x, dx), (x, dx, 0, 0)]
    out += [(B, dB, ax, dxi), (xi, dxi, B, dB), (B, dB, xi, dxi), (2 * eta, 2 * deta, zeta, dzeta),
            (xi, dxi, -B, dB), (-B, dB, xi, dxi)]
    out += [(A, dA, ae, deta), (eta, deta, A, dA), (A, dA, eta, deta), (2 * xi, 2 * dxi, zeta, dzeta),
            (eta, deta, -A, dA), (-A, dA, eta, deta)]
    out += [(A, dA, az, dzeta), (zeta, dzeta, A, dA), (A, dA, zeta, dzeta), (2 * xi, 2 * dxi, eta, deta),
            (zeta, dzeta, -A, dA), (-A, dA, zeta, dzeta)]
    s, w = xi + eta + zeta + A + B, 2 * (A + eta) + zeta
    ds = dxi + deta + dzeta + dA + dB + 4 * u * (ax + ae + az + A + B)
    dw = 2 * dA + 2 * deta + dzeta + 4 * u * (2 * A + 2 * ae + az)
    out += [(s, ds, 0, 0), (0, 0, s, ds), (0, 0, w, dw)]
    return [(x, dx, y, dy) for x, dx, y, dy in out] + [(e, 0, 0, 0)]  # the last entry carries e


def _spec_unsure(g: tuple[Any, ...], d: tuple[Any, ...], e: Any, u: Any) -> bool:
    """Whether some comparison is within its rounding-error bound of flipping."""
    comps = _comparisons(g, d, e, u)
    e_eff = comps[-1][0]
    return any(abs(y - e_eff - x) < dx + dy + 4 * u * (abs(x) + abs(y) + e_eff) for x, dx, y, dy in comps[:-1])


def _boundary_g6(rng: np.random.Generator) -> tuple[tuple[float, ...], float]:
    """A G6 vector on or near the Niggli boundaries (entries dyadic: float arithmetic is exact).

    Each sample is built around one condition (or freely): the quantities it compares are put
    at offsets of ``0, +-e/2, +-e, +-3e/2, +-2e`` from each other, so that both sides of every
    tolerant comparison and its exact edge ``x == y - e`` occur.
    """
    A = 16.0 + float(rng.choice([0.0, 0.125]))
    e = float(rng.choice([0.0, 0.25, 0.25, 0.25, 0.5, 1.0, 1.0078125, 2.0]))  # 1.0078125 = (16 + 1/8) / 16
    h = min(e, A / 16) / 2 or 0.125
    offsets = [k * h for k in (-4, -3, -2, -1, 0, 0, 0, 1, 2, 3, 4)]

    def o() -> float:
        return float(rng.choice(offsets))

    def near(*anchors: float) -> float:
        return float(rng.choice(anchors)) + o()

    def small() -> float:
        return float(rng.choice([1.0, 2.0, 3.0]))

    signed = [lambda x: x, abs, lambda x: -abs(x)][int(rng.integers(3))]  # free, type I, type II
    sg = float(rng.choice([1.0, -1.0]))
    B, C = A + 4 + o(), A + 14 + o()
    kind = int(rng.integers(8))
    if kind == 0:  # free
        B = near(A, A, A + 8)
        C = near(B, B, B + 8)
        xi = signed(near(B, -B, 0.0, 0.0, B / 2, -B / 2))
        eta = signed(near(A, -A, 0.0, 0.0, abs(xi), -abs(xi), 2 * xi, A / 2, -A / 2))
        zeta = signed(near(A, -A, 0.0, 0.0, abs(eta), -abs(eta), 2 * eta, 2 * xi, -(xi + eta + A + B),
                           -2 * (A + eta), A / 2, -A / 2))
    elif kind == 1:  # A vs B, |xi| vs |eta|
        B = A + o()
        eta = small()
        xi, eta, zeta = signed(sg * (eta + o())), signed(eta), signed(small())
    elif kind == 2:  # B vs C, |eta| vs |zeta|
        C = B + o()
        zeta = small()
        xi, eta, zeta = signed(small()), signed(sg * (zeta + o())), signed(zeta)
    elif kind == 3:  # the tolerant signs
        xi, eta, zeta = (float(rng.choice([3.0, -3.0, 0.0])) + o() for _ in range(3))
    elif kind == 4:  # xi vs +-B
        xi = sg * B + o()
        eta = sg * small()
        zeta = 2 * eta + o() if sg > 0 else o() - h * float(rng.integers(2))
    elif kind == 5:  # eta vs +-A
        eta = sg * A + o()
        xi = sg * small()
        zeta = 2 * xi + o() if sg > 0 else o() - h * float(rng.integers(2))
    elif kind == 6:  # zeta vs +-A
        zeta = sg * A + o()
        xi = sg * small() / 2
        eta = 2 * xi + o() if sg > 0 else o() - h * float(rng.integers(2))
    else:  # xi + eta + zeta + A + B vs 0 and 2 (A + eta) + zeta vs 0 (B ~ A + 4: s = 0 and w = 0 at the base)
        xi, eta, zeta = -14.0 + o(), -10.0 + o(), -12.0 + o() + float(rng.choice([0.0, -1.0]))
    return (A, B, C, xi, eta, zeta), e


def _boundary_set(n: int, seed: int) -> tuple[list[tuple[float, ...]], list[float]]:
    rng = np.random.default_rng(seed)
    gs, es = [], []
    for _ in range(n):
        g, e = _boundary_g6(rng)
        gs.append(g)
        es.append(e)
    return gs, es


def _decide_arrays(gs: list[tuple[float, ...]], es: list[float], ds: Any = None, us: Any = None,
                   skip: int = 0) -> tuple[Any, ...]:
    g = np.array(gs).T
    d = np.zeros((6, len(gs))) if ds is None else np.array(ds).T
    u = np.zeros(len(gs)) if us is None else np.array(us)
    return kg_decide(*g, *d, np.array(es), u, skip)


# --------------------------------------------------------------------------- kg_decide against the spec
@pytest.mark.parametrize("scale", [1.0, 2.0**-6])  # 2**-6: B < 1, so the sign of x is not "x < 1"
def test_kg_decide_matches_spec_on_boundaries(scale: float) -> None:
    gs, es = _boundary_set(6000 if scale == 1 else 2000, 1)
    gs, es = [tuple(scale * v for v in g) for g in gs], [scale * e for e in es]
    code, unsure, si, sj, sk = _decide_arrays(gs, es)
    assert not np.any(unsure)  # zero error bounds: nothing is unsure, not even exact ties
    assert all(np.asarray(v).dtype.kind == "i" for v in (code, si, sj, sk))  # integer codes and signs
    branches: dict[str, int] = {}
    for k, (g, e) in enumerate(zip(gs, es)):
        step, signs, branch = _spec(g, e)
        branches[branch] = branches.get(branch, 0) + 1
        assert code[k] == step, (g, e, code[k], step, branch)
        if step in (A3, A4):
            assert (si[k], sj[k], sk[k]) == signs, (g, e, step)
        elif step in (A5, A6, A7):
            assert (si[k],) == signs, (g, e, step, branch)
    # the sample reaches every branch of every step (and reduced states)
    names = ["", "A>B", "A=B", "B>C", "B=C", "lmn=1", "lmn<1", "|xi|>B", "xi=B", "xi=-B", "|eta|>A", "eta=A",
             "eta=-A", "|zeta|>A", "zeta=A", "zeta=-A", "sum<0", "sum=0"]
    assert {name: branches.get(name, 0) >= 5 for name in names} == dict.fromkeys(names, True), branches


@pytest.mark.parametrize("broken", ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "no tolerance"])
def test_the_spec_comparison_catches_a_broken_decision(broken: str) -> None:
    """Test the tester: ``kg_decide`` with one step masked out, or with the tolerance ignored (``e = 0``),
    disagrees with the independent statement ``_spec`` on the boundary sample."""
    gs, es = _boundary_set(800, 1)
    if broken == "no tolerance":
        code = _decide_arrays(gs, [0.0] * len(es))[0]
    else:
        code = _decide_arrays(gs, es, skip=1 << {"A1": A1, "A2": A2, "A3": A3, "A4": A4, "A5": A5, "A6": A6,
                                                  "A7": A7, "A8": A8}[broken])[0]
    assert any(code[k] != _spec(g, e)[0] for k, (g, e) in enumerate(zip(gs, es)))


def test_kg_decide_scalars_floats_and_fractions_agree_with_arrays() -> None:
    gs, es = _boundary_set(240, 2)
    codes = _decide_arrays(gs, es)
    for k, (g, e) in enumerate(zip(gs, es)):
        zeros = (0.0,) * 6
        out = kg_decide(*g, *zeros, e, 0.0)
        assert all(type(v) is int for v in out[:1] + out[2:]), out  # documented: ints, not floats
        assert out[:1] + out[2:] == tuple(int(c[k]) for c in codes[:1] + codes[2:])
        assert out[1] is False or out[1] == 0
        if k % 3 == 0:
            fr = kg_decide(*(Fraction(v) for v in g), *(Fraction(0),) * 6, Fraction(e), Fraction(0))
            assert fr[0] == out[0] and fr[1] == out[1] and all(type(v) is int for v in fr[:1] + fr[2:])
            if fr[0] in (A3, A4):
                assert fr[2:] == out[2:]
            elif fr[0] in (A5, A6, A7):
                assert fr[2] == out[2]
        # (zero bounds only: under mutmut, rebind() copies kg_decide's trampoline, so kg_decide_fast
        # runs kg_decide with lt_checked; lt_fast itself is tested directly below)
        fast = kg_decide_fast(*g, *zeros, e, 0.0)
        assert fast[0] == out[0] and not fast[1]


def test_kg_decide_unsure_matches_error_analysis() -> None:
    rng = np.random.default_rng(3)
    gs, es = _boundary_set(5000, 4)
    ds, us = [], []
    for g, e in zip(gs, es):
        h = min(e, g[0] / 16) / 2 or 0.125
        ds.append(tuple(float(rng.uniform(0, 3 * h)) if rng.random() < 0.3 else 0.0 for _ in range(6)))
        us.append(float(rng.choice([0.0, 0.0, 2.0**-14, 2.0**-11])))
    code, unsure, _, _, _ = _decide_arrays(gs, es, ds, us)
    want = [_spec_unsure(g, d, e, u) for g, d, e, u in zip(gs, ds, es, us)]
    assert 0.2 < np.mean(want) < 0.8
    np.testing.assert_array_equal(unsure, want)
    # the decision itself ignores the bounds
    np.testing.assert_array_equal(code, _decide_arrays(gs, es)[0])


@pytest.mark.parametrize("skip", [1 << A1, 1 << A2, 1 << A3, 1 << A4, 1 << A5, 1 << A6, 1 << A7, 1 << A8,
                                  (1 << A1) | (1 << A5), 0b111111110])
def test_kg_decide_skip_mask(skip: int) -> None:
    gs, es = _boundary_set(800, 5)
    code, _, si, sj, sk = _decide_arrays(gs, es, skip=skip)
    for k, (g, e) in enumerate(zip(gs, es)):
        step, signs, _ = _spec(g, e, skip)
        assert code[k] == step
        if step in (A3, A4):
            assert (si[k], sj[k], sk[k]) == signs
        elif step in (A5, A6, A7):
            assert (si[k],) == signs


def test_kg_decide_documented_examples_and_cap() -> None:
    z = (0,) * 6
    assert kg_decide(9, 4, 16, 0, 0, 0, *z, 0, 0)[0] == A1
    assert kg_decide(4, 9, 9, 9, 3, 4, *z, 0, 0)[:2] == (0, False)
    # e far above A / 16 is capped: a needle cell (A = 1) with e = 10 still needs A6 for |eta| = 1.25
    zeta = -1 / 32  # zero within the capped tolerance: signs (-, -, 0)
    assert kg_decide(1.0, 100.0, 200.0, -2.0, -1.25, zeta, *z, 10.0, 0.0)[0] == A6
    assert kg_decide(1.0, 100.0, 200.0, -2.0, -1.0625, zeta, *z, 10.0, 0.0)[0] == REDUCED  # |eta| - A == A / 16
    assert kg_decide(1.0, 100.0, 200.0, -2.0, -1.0625, zeta, *z, 0.0625, 0.0)[0] == REDUCED
    assert kg_decide(1.0, 100.0, 200.0, -2.0, -1.0625, zeta, *z, 0.03125, 0.0)[0] == A6
    # with e == A / 16 exactly the cap does not apply: the error of A (dA / 16) is not added to the
    # bound of xi, whose sign comparison has |m| = 10 - 1 = 9 against dxi = 8.75 (+ 0.5 when capped)
    bounds = (8.0, 0.0, 0.0, 8.75, 0.0, 0.0)
    assert not kg_decide(16.0, 40.0, 60.0, 10.0, 0.0, 0.0, *bounds, 1.0, 0.0)[1]
    assert kg_decide(16.0, 40.0, 60.0, 10.0, 0.0, 0.0, *bounds, 1.0 + 2.0**-20, 0.0)[1]


def test_kg_decide_capped_bounds_carry_the_error_of_a() -> None:
    # e = 2 > A / 16 = 1: e = 1 and every bound gets dA / 16 = 0.25 (dA = 4).  The sign comparison of
    # zeta has |m| = 3 - 1 = 2 against dzeta + 0.25; B < C has |m| = 20 - 1 = 19 against 0.25 + dC + 0.25.
    g6 = (16.0, 40.0, 60.0, 20.0, 8.0, 3.0)
    assert kg_decide(*g6, 4.0, 0.0, 0.0, 0.0, 0.0, 1.755, 2.0, 0.0)[1]
    assert not kg_decide(*g6, 4.0, 0.0, 0.0, 0.0, 0.0, 1.745, 2.0, 0.0)[1]
    assert kg_decide(*g6, 4.0, 0.0, 18.7, 0.0, 0.0, 0.0, 2.0, 0.0)[1]
    assert not kg_decide(*g6, 4.0, 0.0, 18.3, 0.0, 0.0, 0.0, 2.0, 0.0)[1]
    assert not kg_decide(*g6, 4.0, 0.0, 18.7, 0.0, 0.0, 0.0, 1.0, 0.0)[1]  # e = A / 16: not capped


def test_kg_decide_rounding_bound_of_the_a8_tie_break() -> None:
    # w = 2 (A + eta) + zeta = 1.25 is the only comparison near its bound: |w - e| = 1 against
    # 4u (2A + 2|eta| + |zeta|) + 4u (|w| + e) = 257 u
    g6 = tuple(Fraction(v) for v in (16, 40, 60, -10, -12, Fraction(-27, 4)))
    z = (Fraction(0),) * 6
    assert kg_decide(*g6, *z, Fraction(1, 4), Fraction(1, 250))[1]
    assert not kg_decide(*g6, *z, Fraction(1, 4), Fraction(1, 290))[1]


# --------------------------------------------------------------------------- comparison primitives
def test_lt_checked_values_and_unsure_thresholds() -> None:
    assert lt_checked(1.0, 0.0, 2.0, 0.0, 0.5, 0.0) == (True, False)
    assert lt_checked(1.0, 0.0, 1.5, 0.0, 0.5, 0.0) == (False, False)  # x == y - e: not less, not unsure
    assert lt_checked(1.5, 0.0, 1.0, 0.0, 0.5, 0.0) == (False, False)
    assert lt_checked(-2.0, 0.0, -1.0, 0.0, 0.5, 0.0) == (True, False)
    # |m| = 0.5 against dx + dy (strict)
    assert lt_checked(1.0, 0.25, 2.0, 0.25, 0.5, 0.0) == (True, False)
    assert lt_checked(1.0, 0.25, 2.0, 0.25 + 2.0**-20, 0.5, 0.0) == (True, True)
    assert lt_checked(1.0, 0.25 + 2.0**-20, 2.0, 0.25, 0.5, 0.0) == (True, True)
    assert lt_checked(1.0, 0.5 + 2.0**-20, 2.0, 0.0, 0.5, 0.0) == (True, True)
    assert lt_checked(1.0, 0.0, 2.0, 0.5 + 2.0**-20, 0.5, 0.0) == (True, True)
    # the rounding of the comparison itself: 4 u (|x| + |y| + e)
    assert lt_checked(1.0, 0.0, 2.5, 0.0, 0.5, 1 / 16) == (True, False)  # |m| = 1 = 16 u
    assert lt_checked(1.0, 0.0, 2.5, 0.0, 0.5, 1 / 16 + 2.0**-20) == (True, True)
    assert lt_checked(-1.0, 0.0, 2.5, 0.0, 0.5, 3 / 16) == (True, False)  # |m| = 3, |x| + |y| + e = 4
    assert lt_checked(-1.0, 0.0, 2.5, 0.0, 0.5, 3 / 16 + 2.0**-20) == (True, True)
    assert lt_checked(1.0, 0.0, -2.5, 0.0, 0.5, 1 / 4) == (False, False)  # |m| = 4
    assert lt_checked(1.0, 0.0, -2.5, 0.0, 0.5, 1 / 4 + 2.0**-20) == (False, True)
    assert lt_checked(1.0, 0.0, 2.5, 0.0, 1.5, 0.0) == (False, False)  # m = 0 exactly
    assert lt_checked(0.0, 0.0, 0.0, 0.0, 0.0, 0.0) == (False, False)  # an exact tie is decided
    exact = lt_checked(Fraction(1, 3), 0, Fraction(1, 2), 0, Fraction(1, 6), 0)
    assert exact == (False, False)
    arr = lt_checked(np.array([1.0, 1.0]), 0.0, np.array([2.0, 1.25]), 0.0, 0.5, 0.0)
    assert arr[0].tolist() == [True, False]


def test_lt_fast_ignores_bounds() -> None:
    assert lt_fast(1.0, 9.0, 2.0, 9.0, 0.5, 9.0) == (True, False)
    assert lt_fast(1.0, 9.0, 1.5, 9.0, 0.5, 9.0) == (False, False)
    assert lt_fast(-1.0, 0, -1.0, 0, -0.25, 0) == (True, False)
    assert lt_fast(1.0, 0, 1.0, 0, 0.0, 0)[0] is False


def test_g6_error_bounds_formula() -> None:
    nb = (Fraction(3), Fraction(5), Fraction(7))
    s = (Fraction(11), Fraction(13), Fraction(17))
    u, tiny = Fraction(1, 64), Fraction(1, 1000)
    beta = [2 * u * nb[i] + 10 * u * u * s[i] for i in range(3)]

    def d(i: int, j: int) -> Fraction:
        return 2 * (4 * u * nb[i] * nb[j] + nb[i] * beta[j] + beta[i] * nb[j] + beta[i] * beta[j]) + tiny

    want = (d(0, 0), d(1, 1), d(2, 2), 2 * d(1, 2), 2 * d(0, 2), 2 * d(0, 1))
    assert g6_error_bounds(*nb, *s, u, tiny) == want
    # scale: doubling the norms at s = 0, tiny = 0 quadruples every bound
    b1 = g6_error_bounds(*nb, 0, 0, 0, u, 0)
    b2 = g6_error_bounds(*(2 * v for v in nb), 0, 0, 0, u, 0)
    assert b2 == tuple(4 * v for v in b1)


def test_rebind() -> None:
    def probe(x: int, y: int = 5) -> Any:
        """The probe."""
        return abs(x) + y

    twin = rebind(probe, "twin", abs=lambda v: 100 * v)
    assert twin(-2) == -195 and twin(-2, 1) == -199  # rebound global, default kept
    assert probe(-2) == 7  # the original is untouched
    assert twin.__name__ == "twin" and twin.__qualname__ == "twin" and twin.__doc__ == probe.__doc__
    assert twin.__defaults__ == (5,)

    k = 3

    def closure(x: int) -> int:
        return x * k

    assert rebind(closure, "c2")(2) == 6
    assert kg_decide_fast.__qualname__ == "kg_decide_fast"


# --------------------------------------------------------------------------- the reducer against the oracle
def _integer_lattices(n: int, seed: int) -> list[list[list[int]]]:
    """Small integer cells (many exact Niggli ties) in sheared bases."""
    rng = np.random.default_rng(seed)
    out: list[list[list[int]]] = []
    while len(out) < n:
        base = rng.integers(-3, 4, (3, 3))
        if round(np.linalg.det(base)) == 0:
            continue
        m = np.eye(3, dtype=np.int64)
        for _ in range(4):
            i, j = rng.choice(3, 2, replace=False)
            m[i] += int(rng.integers(-6, 7)) * m[j]
        out.append((m @ base).tolist())
    return out


def test_exact_float_and_mpmath_reducers_agree_with_oracle_on_ties() -> None:
    for lat in _integer_lattices(24, 6):
        ref = exact_reduce(lat)
        data = ExactContext.prepare(lat)
        ex = reduce_with_context(ExactContext, data, 0.0, 1000)
        assert ex.status == _kg.OK and ex.e == 0
        assert tuple(ex.g6) == tuple(ref.g6)
        assert _det(ex.transform) == 1 and [list(r) for r in ex.rows] == _times(ex.transform, lat)
        fl = _py(np.array(lat, dtype=float))
        assert fl.status == ReduceStatus.OK and fl.arithmetic == Arithmetic.FLOAT64
        assert [Fraction(float(v)) for v in fl.g6] == list(ref.g6)
        assert fl.transform.tolist() == ex.transform and fl.iterations == ex.iterations
        assert _times(fl.transform, lat) == _fr(fl.lattice)
        mp = mp_niggli_reduce(lat, prec=64)
        assert [_mp_fraction(v) for v in mp.g6] == list(ref.g6)
        assert mp.transform.tolist() == ex.transform and mp.iterations == ex.iterations


def _physical(rng: np.random.Generator) -> np.ndarray:
    while True:
        lat = rng.normal(size=(3, 3)) + 2.5 * np.eye(3)
        if abs(np.linalg.det(lat)) > 1.0:
            return lat


def test_float_and_mpmath_agree_with_oracle_on_generic_cells() -> None:
    rng = np.random.default_rng(7)
    for k in range(16):
        base = _physical(rng)
        m = np.array([[1, 0, 0], [int(rng.integers(-40, 40)), 1, 0], [int(rng.integers(-40, 40)), 3, 1]])
        lat = (m @ base) * (2.0 ** int(rng.integers(-30, 30)) if k % 4 == 0 else 1.0)
        ref = np.array([float(v) for v in exact_reduce(lat).g6])
        r = _py(lat)
        scale = float(np.max(ref[:3]))
        np.testing.assert_allclose(r.g6, ref, rtol=0, atol=1e-12 * scale)
        assert _det(r.transform) == 1
        exact_rows = _times(r.transform, lat)
        for i in range(3):
            for j in range(3):
                assert abs(Fraction(float(r.lattice[i, j])) - exact_rows[i][j]) <= 2 * U * abs(exact_rows[i][j])
        assert r.tolerance == pytest.approx(1e-5 * abs(np.linalg.det(lat)) ** (2 / 3), rel=1e-12)
        assert is_niggli_reduced(r.lattice) and not result_violations(lat, r.transform, r.lattice, r.g6,
                                                                        r.tolerance)
        if k % 4 == 1:
            mp = mp_niggli_reduce(lat, prec=80)
            assert mp.transform.tolist() == r.transform.tolist() and mp.iterations == r.iterations
            np.testing.assert_allclose([float(v) for v in mp.g6], ref, rtol=0, atol=1e-15 * scale)


# --------------------------------------------------------------------------- one step at a time
def _probe_lattice(g6: tuple[float, ...]) -> np.ndarray:
    return np.linalg.cholesky(g6_to_gram(np.array(g6, dtype=float)))


_E = 0.01  # the absolute tolerance the probes are built around (eps is derived from it)

# (G6 in units where the tolerance is _E, expected transform after exactly one Krivy-Gruber step)
_PROBES: dict[str, tuple[tuple[float, ...], list[list[int]]]] = {
    "A1 A>B": ((9, 4, 16, 1, 1, 1), [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]),
    "A1 A=B": ((4, 4 + _E / 2, 16, 1 + 2 * _E, 1, 1), [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]),
    "A2 B>C": ((4, 16, 9, 1, 1, 1), [[-1, 0, 0], [0, 0, -1], [0, -1, 0]]),
    "A2 B=C": ((4, 9, 9 - _E / 2, 1, 1 + 2 * _E, 1), [[-1, 0, 0], [0, 0, -1], [0, -1, 0]]),
    "A3 +--": ((4, 9, 16, 1, -1, -1), [[1, 0, 0], [0, -1, 0], [0, 0, -1]]),
    "A3 -+-": ((4, 9, 16, -1, 1, -1), [[-1, 0, 0], [0, 1, 0], [0, 0, -1]]),
    "A3 --+": ((4, 9, 16, -1, -1, 1), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "A4 ++-": ((4, 9, 16, 1, 1, -1), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "A4 ++0": ((4, 9, 16, 1, 1, -_E / 2), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "A4 +0-": ((4, 9, 16, 1, _E / 2, -1), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "A4 0+0": ((4, 9, 16, _E / 2, 1, 0), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "A4 00+": ((4, 9, 16, 0, 0, 1), [[-1, 0, 0], [0, 1, 0], [0, 0, -1]]),
    "A4 -0+": ((4, 9, 16, -1, 0, 1), [[1, 0, 0], [0, -1, 0], [0, 0, -1]]),
    "A4 +-0": ((4, 9, 16, 1, -1, 0), [[-1, 0, 0], [0, 1, 0], [0, 0, -1]]),
    "A4 -++": ((4, 9, 16, -1, 1, 1), [[1, 0, 0], [0, -1, 0], [0, 0, -1]]),
    "A5 xi>B": ((4, 9, 16, 9 + 2 * _E, 1, 1), [[1, 0, 0], [0, 1, 0], [0, -1, 1]]),
    "A5 xi<-B": ((4, 9, 16, -9 - 2 * _E, -1, -1), [[1, 0, 0], [0, 1, 0], [0, 1, 1]]),
    "A5 xi=B": ((4, 9, 16, 9 - _E / 2, 1, 2 + 2 * _E), [[1, 0, 0], [0, 1, 0], [0, -1, 1]]),
    "A5 xi=-B": ((4, 9, 16, -9 + _E / 2, -1, -1), [[1, 0, 0], [0, 1, 0], [0, 1, 1]]),
    "A6 eta>A": ((4, 9, 16, 1, 4 + 2 * _E, 1), [[1, 0, 0], [0, 1, 0], [-1, 0, 1]]),
    "A6 eta<-A": ((4, 9, 16, -1, -4 - 2 * _E, -1), [[1, 0, 0], [0, 1, 0], [1, 0, 1]]),
    "A6 eta=A": ((4, 9, 16, 1, 4 - _E / 2, 2 + 2 * _E), [[1, 0, 0], [0, 1, 0], [-1, 0, 1]]),
    "A6 eta=-A": ((4, 9, 16, -1, -4 + _E / 2, -1), [[1, 0, 0], [0, 1, 0], [1, 0, 1]]),
    "A7 zeta>A": ((4, 9, 16, 1, 1, 4 + 2 * _E), [[1, 0, 0], [-1, 1, 0], [0, 0, 1]]),
    "A7 zeta<-A": ((4, 9, 16, -1, -1, -4 - 2 * _E), [[1, 0, 0], [1, 1, 0], [0, 0, 1]]),
    "A7 zeta=A": ((4, 9, 16, 1, 2 + 2 * _E, 4 - _E / 2), [[1, 0, 0], [-1, 1, 0], [0, 0, 1]]),
    "A7 zeta=-A": ((4, 9, 16, -1, -1, -4 + _E / 2), [[1, 0, 0], [1, 1, 0], [0, 0, 1]]),
    "A8 sum<0": ((4, 9, 16, -8, -3, -3), [[1, 0, 0], [0, 1, 0], [1, 1, 1]]),
    "A8 sum=0": ((4, 9, 16, -8, -2, -3 + _E / 2), [[1, 0, 0], [0, 1, 0], [1, 1, 1]]),
    # on the other side of each tolerance: no step at all
    "A1 A=B, |xi|=|eta|": ((4, 4 + _E / 2, 16, 1 + _E / 2, 1, 1), ID3),
    "A2 B=C, |eta|=|zeta|": ((4, 9, 9 + _E / 2, 1, 1 + _E / 2, 1), ID3),
    "A4 000": ((4, 9, 16, _E / 2, -_E / 4, 0), ID3),
    "A5 xi=B, 2eta=zeta": ((4, 9, 16, 9 - _E / 2, 1, 2 + _E / 2), ID3),
    "A5 xi=-B, zeta=0": ((4, 9, 16, -9 + _E / 2, -1, -_E / 2), ID3),
    "A6 eta=A, 2xi=zeta": ((4, 9, 16, 1, 4 - _E / 2, 2 + _E / 2), ID3),
    "A7 zeta=A, 2xi=eta": ((4, 9, 16, 1, 2 + _E / 2, 4 - _E / 2), ID3),
    "A7 zeta=-A, eta=0": ((4, 9, 16, -1, -_E / 2, -4 + _E / 2), ID3),
    "A8 sum=0, 2(A+eta)+zeta=0": ((4, 9, 16, -8, -3, -2 + _E / 2), ID3),
}


def _probe_eps(g6: tuple[float, ...]) -> float:
    return _E / float(np.sqrt(np.linalg.det(g6_to_gram(np.array(g6, dtype=float))))) ** (2 / 3)


@pytest.mark.parametrize("name", sorted(_PROBES))
def test_one_step_in_every_arithmetic(name: str) -> None:
    g6, want = _PROBES[name]
    lat = _probe_lattice(g6)
    eps = _probe_eps(g6)
    ctx = FloatContext()
    run = reduce_with_context(ctx, ctx.prepare(lat), eps, 1)
    assert run.transform == want, name
    assert run.iterations == (0 if want == ID3 else 1)
    assert run.e == pytest.approx(_E, rel=1e-3)
    if want == ID3:
        assert run.status == _kg.OK and _py(lat, eps=eps).iterations == 0
    mp = MPContext(113)
    assert reduce_with_context(mp, mp.prepare(lat), eps, 1).transform == want, name
    data = ExactContext.prepare(lat)
    assert reduce_with_context(ExactContext, data, eps, 1, e=Fraction(_E)).transform == want, name


def test_needle_cell_tolerance_is_capped() -> None:
    # A = 1, eps * V**(2/3) = 0.5 > A / 16: the reported tolerance is A / 16
    lat = np.diag([1.0, 8.0, 8.0])
    r = _py(lat, eps=0.5 / 16.0)  # V = 64, V**(2/3) = 16
    assert r.tolerance == 1.0 / 16.0
    assert r.g6.tolist() == [1.0, 64.0, 64.0, 0.0, 0.0, 0.0]
    r2 = _py(lat, eps=0.5 / 16.0 / 16.0)  # e = 1/32 < A / 16
    assert r2.tolerance == 1.0 / 32.0


# --------------------------------------------------------------------------- iteration caps and statuses
def test_max_iter_counts_each_phase() -> None:
    # three Krivy-Gruber steps (A1, A2, A1), no pre-reduction
    lat = np.diag([4.0, 3.0, 2.0])
    assert _py(lat).iterations == 3 and _py(lat, max_iter=3).g6.tolist() == [4.0, 9.0, 16.0, 0.0, 0.0, 0.0]
    with pytest.raises(ReductionError, match=r"did not converge within max_iter after 2 steps") as info:
        _py(lat, max_iter=2)
    assert info.value.iterations == 2 and not isinstance(info.value, PrecisionError)
    ctx = FloatContext()
    assert reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 0).status == _kg.NOT_CONVERGED
    run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 2)
    assert run.status == _kg.NOT_CONVERGED and run.iterations == 2
    assert run.transform == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]  # A1 then A2: rows permuted and negated
    # two pre-reduction steps (b -= 1000 a, then c -= 500 a), then nothing
    sheared = np.array([[1.0, 0, 0], [1000.0, 1, 0], [500.0, 0, 1]])
    r = _py(sheared, max_iter=2)
    assert r.iterations == 2 and r.transform.tolist() == [[1, 0, 0], [-1000, 1, 0], [-500, 0, 1]]
    with pytest.raises(ReductionError, match=r"after 1 steps"):
        _py(sheared, max_iter=1)
    run = reduce_with_context(ctx, ctx.prepare(sheared), 1e-5, 1)
    assert run.status == _kg.NOT_CONVERGED and run.transform == [[1, 0, 0], [-1000, 1, 0], [0, 0, 1]]
    # pre-reduction and Krivy-Gruber have separate caps: 1 pre step + 1 KG step with max_iter = 1
    both = np.array([[2.0, 0, 0], [2000.0, 1, 0], [0, 0, 3]])
    r = _py(both, max_iter=1)
    assert r.iterations == 2 and r.transform.tolist() == [[1000, -1, 0], [-1, 0, 0], [0, 0, -1]]


def test_pre_reduction_is_greedy_on_relative_decrease() -> None:
    # pairs (2, 0), (1, 0) and (2, 1) all shorten; (2, 0) by the largest fraction (900/925) goes first
    lat = np.array([[1.0, 0, 0], [10.0, 3, 0], [30.0, 0, 5]])
    ctx = FloatContext()
    run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 1)
    assert run.status == _kg.NOT_CONVERGED and run.transform == [[1, 0, 0], [0, 1, 0], [-30, 0, 1]]
    run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 2)
    assert run.status == _kg.OK and run.transform == [[1, 0, 0], [-10, 1, 0], [-30, 0, 1]]
    assert run.iterations == 2 and run.g6 == (1.0, 9.0, 25.0, 0.0, 0.0, 0.0)
    # a step must shorten |v_i|**2 by more than 2**-8 of it: a -= b shortens |a|**2 = 4 by 2 delta;
    # taken, it leaves one Krivy-Gruber step (A1); not taken, Krivy-Gruber needs four
    for delta, pre in ((2.0**-7 * (1 + 2.0**-4), True), (2.0**-7 * (1 - 2.0**-4), False)):
        lat = np.array([[0.5 + delta, math.sqrt(4 - (0.5 + delta) ** 2), 0], [1.0, 0, 0], [0, 0, 3.0]])
        run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 1)
        if pre:
            assert run.status == _kg.OK and run.iterations == 2
            assert run.transform == [[0, -1, 0], [-1, 1, 0], [0, 0, -1]]
        else:
            assert run.status == _kg.NOT_CONVERGED and run.iterations == 1
            assert run.transform == [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]
            assert reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 100).iterations == 4


def test_cycle_is_detected_after_the_same_steps() -> None:
    """A near-singular cell (relative volume ~1e-19) whose tolerant float decisions contradict each other."""
    lattice = np.array([
        [64.79556341073034, 58.90622814620219, 24.282034632820555],
        [-24.04335989151296, -29.018694275138422, -1.4696218914921337],
        [-37.65345138565955, -68.60225874579592, 22.084256479677226],
    ])
    with pytest.raises(ReductionCycleError, match=r"reduction cycled after 13 steps") as info:
        _py(lattice, precision="float")
    assert info.value.iterations == 13
    ctx = FloatContext()
    run = reduce_with_context(ctx, ctx.prepare(lattice), 1e-5, 1000)
    assert run.status == _kg.CYCLE and run.iterations == 13
    assert run.transform == [[6, 24, -5], [-1, -4, 1], [-31293, -125173, 26078]]
    assert reduce_with_context(ctx, ctx.prepare(lattice), 1e-5, 6).status == _kg.NOT_CONVERGED
    masked = _py(np.stack([lattice, np.eye(3)]), precision="float", errors="mask")
    assert masked.status.tolist() == [ReduceStatus.CYCLE, ReduceStatus.OK]
    r = _py(lattice)  # "auto" escalates; certified, and the oracle's form up to the tolerant signs
    assert r.arithmetic == Arithmetic.MPMATH and r.status == ReduceStatus.OK and r.iterations == 12
    assert not result_violations(lattice, r.transform, r.lattice, r.g6, r.tolerance)
    ref = [float(v) for v in exact_reduce(lattice).g6]
    np.testing.assert_allclose(np.abs(r.g6), ref, rtol=0, atol=1e-9 * max(ref))


def test_precision_float_versus_auto() -> None:
    lat = np.array([[1.0, 0.0, 0.0], [3.0, 1.0, 0.0], [8.0, 8.0, 1e-20]])
    with pytest.raises(PrecisionError, match="float64 cannot decide"):
        _py(lat, precision="float")
    r = _py(lat)
    assert r.status == ReduceStatus.OK and r.arithmetic == Arithmetic.MPMATH
    ref = exact_reduce(lat)
    np.testing.assert_allclose(r.g6, [float(v) for v in ref.g6], rtol=1e-12)
    assert r.tolerance == pytest.approx(1e-5 * 1e-20 ** (2 / 3), rel=1e-9)
    # exact ties with eps = 0: no finite precision certifies them, the exact stage does
    r0 = _py(3.0 * np.eye(3), eps=0.0)
    assert r0.arithmetic == Arithmetic.EXACT and r0.g6.tolist() == [9.0, 9.0, 9.0, 0.0, 0.0, 0.0]
    assert r0.tolerance == 0.0 and r0.iterations == 0
    with pytest.raises(PrecisionError):
        _py(3.0 * np.eye(3), eps=0.0, precision="float")
    with pytest.raises(PrecisionError, match="raise prec"):
        mp_niggli_reduce(np.eye(3), eps=0.0, prec=64)


def test_transform_overflow_guard() -> None:
    at = np.array([[1.0, 0, 0], [2.0**52, 1, 0], [0, 0, 1]])
    r = _py(at)
    assert r.arithmetic == Arithmetic.FLOAT64 and r.transform[1].tolist() == [-(2**52), 1, 0]
    beyond = np.array([[1.0, 0, 0], [2.0**52 + 2, 1, 0], [0, 0, 1]])
    with pytest.raises(PrecisionError, match=r"beyond 2\*\*52"):
        _py(beyond, precision="float")
    r = _py(beyond)  # mpmath has no such limit
    assert r.arithmetic == Arithmetic.MPMATH and r.transform[1].tolist() == [-(2**52 + 2), 1, 0]
    ctx = FloatContext()
    assert reduce_with_context(ctx, ctx.prepare(beyond), 1e-5, 100).status == _kg.OVERFLOW
    mp = MPContext(64)
    assert reduce_with_context(mp, mp.prepare(beyond), 1e-5, 100).status == _kg.OK


def test_precision_statuses_of_the_context_reducer() -> None:
    ctx = FloatContext()
    for k in range(3):  # a zero row: no positive squared length
        lat = np.eye(3)
        lat[k] = 0.0
        run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 100)
        assert run.status == _kg.PRECISION and run.iterations == 0 and run.e is None
    # a volume below the float64 underflow allowance cannot be certified
    tiny = 2.0**-330 * np.eye(3)
    assert reduce_with_context(ctx, ctx.prepare(tiny), 1e-5, 100).status == _kg.PRECISION
    ok = reduce_with_context(ctx, ctx.prepare(2.0**-329 * np.eye(3)), 1e-5, 100)
    assert ok.status == _kg.OK and ok.e == 1e-5 * 2.0**-658
    # the python backend normalises by powers of two first, so the same cell is fine there
    assert _py(tiny).tolerance == 1e-5 * 2.0**-660


def test_fixed_tolerance_and_start_transform() -> None:
    lat = [[1, 0, 0], [0, Fraction(101, 100), 0], [0, 0, 1]]
    data = ExactContext.prepare(lat)
    tolerant = reduce_with_context(ExactContext, data, 0.1, 100)  # e ~ 0.1: 1 == 1.0201 within e
    assert tolerant.status == _kg.OK and tolerant.g6 == (1, Fraction(10201, 10000), 1, 0, 0, 0)
    assert tolerant.e == Fraction(0.1 * cbrt_squared(1.01, math.frexp, math.ldexp))
    fixed = reduce_with_context(ExactContext, data, 0.1, 100, e=Fraction(0))
    assert fixed.e == 0 and fixed.g6 == (1, 1, Fraction(10201, 10000), 0, 0, 0)
    start = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    again = reduce_with_context(ExactContext, data, 0.0, 100, transform=start)
    assert again.iterations == 0 and again.transform == start.tolist() and again.g6 == fixed.g6
    sheared = reduce_with_context(ExactContext, data, 0.0, 100, transform=[[1, 0, 0], [5, 1, 0], [0, 0, 1]])
    assert sheared.g6 == fixed.g6 and _det(sheared.transform) == 1
    assert [list(r) for r in sheared.rows] == _times(sheared.transform, lat)


def test_kgrun_and_g6_helpers() -> None:
    run = KGRun([[1]], [[2.0]], (1, 2), 7, _kg.CYCLE, 0.5)
    assert (run.transform, run.rows, run.g6, run.iterations, run.status, run.e) == ([[1]], [[2.0]], (1, 2), 7,
                                                                                     _kg.CYCLE, 0.5)
    g = [[1, 2, 3], [2, 5, 6], [3, 6, 9]]
    assert _kg._g6(g) == (1, 5, 9, 12, 6, 4)


# --------------------------------------------------------------------------- is_niggli_reduced
def test_is_niggli_reduced_edges() -> None:
    e = 1e-5  # about the unit cube: V ~ 1, e ~ eps
    assert not is_niggli_reduced(np.sqrt(np.diag([1.0 + 3 * e, 1.0, 1.0])))
    assert is_niggli_reduced(np.sqrt(np.diag([1.0 + 3 * e, 1.0, 1.0])), eps=4e-5)
    # undecidable in float64 (exact ties or a difference of one ulp, eps = 0): decided exactly
    assert is_niggli_reduced(np.eye(3), eps=0.0)
    assert not is_niggli_reduced(np.diag([1.0 + 2.0**-52, 1.0, 1.0]), eps=0.0)
    assert is_niggli_reduced(np.diag([1.0, 1.0, 1.0 + 2.0**-52]), eps=0.0)
    both = is_niggli_reduced(np.stack([np.eye(3), np.diag([2.0, 1.0, 1.0])]))
    assert both.tolist() == [True, False]


# --------------------------------------------------------------------------- FloatContext
def test_float_data_and_rows() -> None:
    x = np.array([[1.0, 0.1, 3.0], [1.0 / 3, -2.0, 0.5], [7.0, 0.0, 2.0**-40]])
    d = FloatContext.prepare(x)
    assert d.x == x.tolist()
    for i in range(3):
        for j in range(3):
            assert d.hi[i][j] + d.lo[i][j] == d.x[i][j] and d.hi[i][j] == split(d.x[i][j])[0]
        assert d.norms[i] == math.sqrt(sum(v * v for v in x[i])) * (1.0 + 8.0 * U)
    # plain product where it does not cancel; it rounds each term
    three = FloatContext.prepare([[1.0, 0, 0], [2.0**-53, 0, 0], [2.0**-53, 0, 0]])
    assert FloatContext.row([1, 1, 1], three, False) == [1.0, 0.0, 0.0]
    assert FloatContext.row([1, 1, 1], three, True) == [1.0 + 2.0**-52, 0.0, 0.0]
    # Dot2 where the cancellation ratio exceeds 2**20, plain below
    for k, dot2 in ((18, False), (19, False), (20, True), (21, True)):
        data = FloatContext.prepare([[1.0, 0, 0], [2.0**-53, 0, 0], [-(1.0 - 2.0**-k), 0, 0]])
        want = 2.0**-k + 2.0**-53 if dot2 else 2.0**-k
        assert FloatContext.row([1, 1, 1], data, False)[0] == want, k
    for k, dot2 in ((19, False), (20, True)):  # the same in the second and third columns
        for col in (1, 2):
            rows = np.zeros((3, 3))
            rows[:, col] = [1.0, 2.0**-53, -(1.0 - 2.0**-k)]
            rows[:, 3 - col] = [0.0, 0.0, 2.0**-60]
            got = FloatContext.row([1, 1, 1], FloatContext.prepare(rows), False)[col]
            assert got == (2.0**-k + 2.0**-53 if dot2 else 2.0**-k), (k, col)
    cancel = FloatContext.prepare([[0.1, 0, 0], [0.3, 0, 0], [0, 0, 1]])
    assert FloatContext.row([3, -1, 0], cancel, False) == [2.0**-55, 0.0, 0.0]  # plain: 2**-54
    assert FloatContext.row([0, 0, -2], cancel, False) == [0.0, 0.0, -2.0]
    assert FloatContext.dot([1.0, 2.0, 3.0], [4.0, -5.0, 6.0]) == 12.0


def test_float_volume_tolerance_rounding_and_guards() -> None:
    d = FloatContext.prepare(np.eye(3))
    assert FloatContext.volume([[2.0, 0, 0], [0, 3.0, 0], [1.0, 1.0, -4.0]], d) == (24.0, True)
    assert FloatContext.volume((2.0**-329 * np.eye(3)).tolist(), d)[1] is True
    assert FloatContext.volume((2.0**-330 * np.eye(3)).tolist(), d)[1] is False
    near = [[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 2.0**-30]]
    assert FloatContext.volume(near, d) == (2.0**-30, True)
    assert FloatContext.volume([[1.0, 1.0, 0], [1.0, 1.0 + 2.0**-40, 0], [0, 0, 1.0]], d)[1] is False
    assert FloatContext.tolerance(8.0, 0.5) == 2.0 and FloatContext.tolerance(1.0, 1e-5) == 1e-5
    r = FloatContext.round_half_away
    assert [r(v) for v in (0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49, -0.49, 3.2, -3.7)] == \
        [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.0, -0.0, 3.0, -4.0]
    assert isinstance(r(2.5), float) and math.copysign(1.0, r(0.0)) == 1.0 and math.copysign(1.0, r(-0.0)) == 1.0
    big = MAX_TRANSFORM
    assert FloatContext.shear_fits([big - 4, 0, 0], [2, 0, 0], 2.0)
    assert not FloatContext.shear_fits([big - 4, 0, 0], [2, 0, 0], 3.0)
    assert not FloatContext.shear_fits([0, big - 4, 0], [0, -2, 0], -3.0)
    assert not FloatContext.shear_fits([0, 0, -(big - 4)], [0, 0, 2], 3.0)
    assert FloatContext.shear_fits([0, 0, -(big - 4)], [0, 0, 2], -2.0)
    assert FloatContext.sum_fits([big - 2, 0, 0], [1, 0, 0], [-1, 0, 0])
    assert not FloatContext.sum_fits([big - 2, 0, 0], [1, 0, 0], [-2, 0, 0])
    assert not FloatContext.sum_fits([0, 1, 0], [0, big - 1, 0], [0, 1, 0])
    assert not FloatContext.sum_fits([0, 0, -1], [0, 0, -1], [0, 0, big - 1])
    assert (FloatContext.has_fast_rows, FloatContext.u, FloatContext.zero, FloatContext.tiny, FloatContext.name) == (
        True, 2.0**-53, 0.0, 2.0**-1020, "float64")
    assert FLOAT_TINY == 2.0**-1020


def test_float_g6_errors() -> None:
    lat = np.array([[3.0, 0.5, 0.25], [-1.0, 2.0, 0.0], [0.0, 0.125, 5.0]])
    d = FloatContext.prepare(lat)
    t = [[2, -1, 0], [0, 3, -1], [-4, 0, 1]]
    rows = [FloatContext.row(ti, d, True) for ti in t]
    g = [[FloatContext.dot(rows[i], rows[j]) for j in range(3)] for i in range(3)]
    nb = [math.sqrt(g[i][i]) * (1.0 + 8.0 * U) for i in range(3)]
    s = [sum(abs(t[i][k]) * d.norms[k] for k in range(3)) for i in range(3)]
    want = g6_error_bounds(*nb, *s, U, 2.0**-1020)
    assert FloatContext.g6_errors(rows, g, t, d) == want


# --------------------------------------------------------------------------- exact and mpmath contexts
def test_exact_context() -> None:
    lat = [[Fraction(1, 3), 0, 0], [2, Fraction(1, 2), 0], [0.25, 1, -3]]
    d = ExactContext.prepare(lat)
    assert d.x == ((Fraction(1, 3), 0, 0), (2, Fraction(1, 2), 0), (Fraction(1, 4), 1, -3))
    assert d.det == Fraction(-1, 2) and ExactContext.volume(None, d) == (Fraction(1, 2), True)
    assert ExactContext.row([1, -2, 3], d, False) == [Fraction(1, 3) - 4 + Fraction(3, 4), -1 + 3, -9]
    assert ExactContext.dot([Fraction(1, 2), 2, 3], [4, Fraction(1, 3), -1]) == Fraction(-1, 3)
    t = ExactContext.tolerance(Fraction(8), 0.5)
    assert t == 2 and isinstance(t, Fraction)
    r = ExactContext.round_half_away
    assert [r(Fraction(n, 2)) for n in (1, -1, 3, -3, 5, -5)] == [1, -1, 2, -2, 3, -3]
    assert [r(Fraction(7, 3)), r(Fraction(-1, 3)), r(Fraction(-8, 3))] == [2, 0, -3]
    assert ExactContext.g6_errors(None, None, None, None) == (0, 0, 0, 0, 0, 0)
    assert (ExactContext.has_fast_rows, ExactContext.u, ExactContext.zero, ExactContext.name) == (False, 0, 0, "exact")
    assert ExactContext.shear_fits([10**30], [10**30], 10**30) is True
    assert ExactContext.sum_fits([10**30], [10**30], [10**30]) is True
    assert _UnboundedTransforms.shear_fits(None, None, None) and _UnboundedTransforms.sum_fits(None, None, None)
    m = [[Fraction(2), Fraction(3), Fraction(5)], [Fraction(7), Fraction(11), Fraction(13)],
         [Fraction(17), Fraction(19), Fraction(23)]]
    assert _exact_det(tuple(tuple(r) for r in m)) == -78
    assert _exact_det(((0, 1, 0), (1, 0, 0), (0, 0, 1))) == -1


def test_mp_context() -> None:
    with pytest.raises(ValueError, match=re.escape("prec must be an int >= 53 (bits), got 52")):
        MPContext(52)
    with pytest.raises(ValueError, match="got True"):
        MPContext(True)
    with pytest.raises(ValueError, match=r"got 64\.0"):
        MPContext(64.0)  # type: ignore[arg-type]
    before = mpmath.mp.prec
    ctx = MPContext(53)
    assert ctx.prec == 53 and ctx.mp.prec == 53 and mpmath.mp.prec == before
    ctx = MPContext(113)
    assert ctx.u == mpmath.mpf(2) ** -113 and ctx.zero == 0 and ctx.name == "mpmath(113 bits)"
    assert ctx.mp is _mp_instance(113) and _mp_instance(200).prec == 200
    assert not ctx.has_fast_rows and ctx.tiny == 0
    third = ctx.to_mp(Fraction(1, 3))
    assert third == ctx.mp.mpf(1) / 3 and third.context.prec == 113
    assert ctx.to_mp(Fraction(-5, 7)) == ctx.mp.mpf(-5) / 7
    lat = [[Fraction(1, 3), 0, 0], [Fraction(1, 5), 1, 0], [0, 0, 1]]
    d = ctx.prepare(lat)
    row = ctx.row([1, 1, 0], d, False)
    assert row[0] == ctx.to_mp(Fraction(8, 15)) and row[1] == 1 and row[2] == 0
    assert ctx.volume(None, d) == (ctx.to_mp(Fraction(1, 3)), True)
    assert ctx.tolerance(ctx.mp.mpf(8), 0.5) == 2 and ctx.tolerance(ctx.mp.mpf(27), 0.5) == 4.5
    assert ctx.dot([1, 2, 3], [4, 5, 6]) == 32
    r = ctx.round_half_away
    assert [int(r(ctx.mp.mpf(v))) for v in (0.5, -0.5, 2.5, -2.5, 0.25, -0.75)] == [1, -1, 3, -3, 0, -1]
    g = [[ctx.mp.mpf(4), 0, 0], [0, ctx.mp.mpf(9), 0], [0, 0, ctx.mp.mpf(16)]]
    one = 1 + 8 * ctx.u
    assert ctx.g6_errors(None, g, None, None) == g6_error_bounds(2 * one, 3 * one, 4 * one, 0, 0, 0, ctx.u, 0)
    tiny = [[ctx.mp.mpf(2) ** -300, 0, 0], [0, ctx.mp.mpf(2) ** -300, 0], [0, 0, ctx.mp.mpf(2) ** -300]]
    nb = ctx.mp.mpf(2) ** -150 * one
    assert ctx.g6_errors(None, tiny, None, None) == g6_error_bounds(nb, nb, nb, 0, 0, 0, ctx.u, 0)


def test_exact_entries_and_mpf_conversion() -> None:
    assert exact_entries([[0.1, 0, 0], [0, 2, 0], [0, 0, 1]])[0][0] == Fraction(0.1)
    assert exact_entries([[mpmath.mpf("0.1"), 0, 0], [0, 1, 0], [0, 0, 1]])[0][0] == Fraction(0.1)
    third = mpmath.mpf(1) / 3  # 53 bits, the global precision
    f = _mpf_to_fraction(third)
    assert f == Fraction(1 / 3) and f.denominator == 2**54
    assert _mpf_to_fraction(third * 2**70) == f * 2**70
    assert _mpf_to_fraction(mpmath.mpf(0)) == 0
    assert _mpf_to_fraction(mpmath.mpf(3) * 2**70) == 3 * 2**70
    x = Fraction(2, 7)
    assert _mpf_to_fraction(x) is x
    assert _mpf_to_fraction(mpmath.inf) == math.inf and math.isnan(_mpf_to_fraction(mpmath.nan))
    assert _has_mpf([[mpmath.mpf(1)]]) and not _has_mpf([[1.0]]) and not _has_mpf(5)
    with pytest.raises(NonFiniteLatticeError):
        exact_entries([[mpmath.inf, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(LatticeShapeError):
        exact_entries([[1, 0], [0, 1]])
    with pytest.raises(LatticeShapeError):
        exact_entries(5)
    import sympy

    rational = exact_entries([[sympy.Rational(1, 3), 0, 0], [0, 1, 0], [0, 0, 1]])
    assert rational[0][0] == Fraction(1, 3)
    msg = ("the mpmath and exact reducers need rational entries (floats, ints, Fractions, mpmath numbers or "
           "sympy rationals), got an irrational sympy expression")
    with pytest.raises(NotExactError, match=re.escape(msg)):
        exact_entries([[sympy.sqrt(2), 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(SingularLatticeError):
        mp_niggli_reduce([[1, 0, 0], [2, 0, 0], [0, 0, 1]])


# --------------------------------------------------------------------------- the exact checker (_certify)
def test_relaxed_niggli_violations() -> None:
    assert relaxed_niggli_violations((4, 9, 16, 1, 1, 1), 0) == []
    assert relaxed_niggli_violations((4, 9, 16, -8, -3, -2), 0) == []
    assert relaxed_niggli_violations((0, 9, 16, 0, 0, 0), 0) == ["A, B, C > 0"]
    assert relaxed_niggli_violations((4, -9, 16, 0, 0, 0), 0)[0] == "A, B, C > 0"
    assert relaxed_niggli_violations((4, 9, 0, 0, 0, 0), 0)[0] == "A, B, C > 0"
    assert relaxed_niggli_violations((4, 0, 16, 0, 0, 0), 0)[0] == "A, B, C > 0"
    for g6, name in (((5, 4, 16, 1, 1, 1), "A <= B"), ((4, 17, 16, 1, 1, 1), "B <= C"),
                     ((4, 9, 16, 10, 1, 1), "|xi| <= B"), ((4, 9, 16, -10, -1, -1), "|xi| <= B"),
                     ((4, 9, 16, 1, 5, 1), "|eta| <= A"), ((4, 9, 16, -1, -5, -1), "|eta| <= A"),
                     ((4, 9, 16, 1, 1, 5), "|zeta| <= A"), ((4, 9, 16, -1, -1, -5), "|zeta| <= A")):
        assert relaxed_niggli_violations(g6, 0) == [name]
        assert relaxed_niggli_violations(g6, 1) == []  # exactly on the relaxed boundary
        assert relaxed_niggli_violations(g6, Fraction(99, 100)) == [name]
    signs = "signs: type I (all > -e) or type II (all <= e)"
    for g6 in ((4, 9, 16, 1, -1, 1), (4, 9, 16, -1, 1, 1), (4, 9, 16, 1, 1, -1), (4, 9, 16, 0, 1, 0)):
        assert relaxed_niggli_violations(g6, 0) == [signs]
    assert relaxed_niggli_violations((4, 9, 16, 1, -1, 1), 1) == []  # -1 > -1 fails, but all <= 1: type II
    for g6 in ((4, 9, 16, -1, 2, 2), (4, 9, 16, 2, -1, 2), (4, 9, 16, 2, 2, -1)):  # on -e: neither type
        assert relaxed_niggli_violations(g6, 1) == [signs]
    assert relaxed_niggli_violations((4, 9, 16, 0, 0, 0), 0) == []
    assert relaxed_niggli_violations((4, 9, 16, 1, 2, Fraction(-1, 2)), Fraction(1, 2)) == [signs]
    assert relaxed_niggli_violations((4, 9, 16, 1, 2, Fraction(-1, 2)), Fraction(3, 5)) == []
    total = "|xi| + |eta| + |zeta| <= A + B"
    assert relaxed_niggli_violations((4, 9, 16, -8, -3, -3), 0) == [total]
    assert relaxed_niggli_violations((4, 9, 16, -8, -3, -3), 1) == []
    assert relaxed_niggli_violations((4, 9, 16, -8, -3, -3), Fraction(1, 2)) == [total]
    assert relaxed_niggli_violations((4.0, 9.0, 16.0, 1.0, 1.0, 1.0), 0.0) == []


def test_result_violations() -> None:
    lat = np.array([[1.0, 0, 0], [3.0, 1, 0], [2.0, 5, 1]]) @ np.array([[2.0, 0.25, 0], [0, 3.0, 0.5], [0.125, 0, 4.0]])
    r = _py(lat)
    assert result_violations(lat, r.transform, r.lattice, r.g6, r.tolerance) == []
    assert result_violations(lat, r.transform.astype(float), r.lattice, r.g6, r.tolerance) == []
    bad_t = "transform is not a 3x3 integer matrix"
    assert result_violations(lat, r.transform[:2], r.lattice, r.g6, r.tolerance) == [bad_t]
    assert result_violations(lat, r.transform + 0.5, r.lattice, r.g6, r.tolerance) == [bad_t]
    inf_t = r.transform.astype(float)
    inf_t[0, 0] = np.inf
    assert result_violations(lat, inf_t, r.lattice, r.g6, r.tolerance) == [bad_t]
    neg = r.transform.copy()
    neg[[0, 1]] = neg[[1, 0]]
    out = neg @ lat
    bad = result_violations(lat, neg, out, r.g6[[1, 0, 2, 4, 3, 5]], r.tolerance)
    assert bad[0] == "det(transform) = -1, not +1"
    # the lattice must be transform @ input to 2u relative
    exact = _times(r.transform, lat)
    out = r.lattice.copy()
    i, j = 1, 1
    x = exact[i][j]
    out[i, j] = float(x + 2 * Fraction(U) * abs(x))
    if Fraction(out[i, j]) - x <= 2 * Fraction(U) * abs(x):
        assert result_violations(lat, r.transform, out, r.g6, r.tolerance) == []
    out[i, j] = float(x) * (1 + 2**-40)
    msgs = result_violations(lat, r.transform, out, np.array([float(v) for v in _g6_exact(out)]), r.tolerance)
    assert len(msgs) == 1 and msgs[0].startswith(f"lattice[{i}, {j}] = {float(out[i, j])!r} is not transform @ input")
    # the G6 must be the metric of the lattice to 16 u of the largest length
    g6 = r.g6.copy()
    g6[4] = g6[4] + 8 * U * max(r.g6[:3])
    assert result_violations(lat, r.transform, r.lattice, g6, r.tolerance) == []
    g6[4] = r.g6[4] + 64 * U * max(r.g6[:3])
    msgs = result_violations(lat, r.transform, r.lattice, g6, r.tolerance)
    assert len(msgs) == 1 and msgs[0].startswith(f"g6[4] = {float(g6[4])!r} is not the metric of the lattice")
    # the metric of transform @ input must be reduced within 5/4 e
    ident = np.eye(3, dtype=np.int64)
    g6_in = np.array([float(v) for v in _g6_exact(lat)])
    assert result_violations(lat, ident, lat, g6_in, r.tolerance) != []
    near = np.diag([1.0, 1.0, 1.0])
    near[1, 1] = math.sqrt(1 - 2e-5)  # B = 1 - 2e-5 < A by 2e-5
    g6n = np.array([float(v) for v in _g6_exact(near)])
    assert result_violations(near, ident, near, g6n, 1.7e-5) == []  # 5/4 * 1.7e-5 > 2e-5
    assert result_violations(near, ident, near, g6n, 1.5e-5) == ["A <= B"]


def test_mpf_inputs_beyond_the_global_precision_are_exact() -> None:
    """Regression: mpmath inputs were re-rounded to the global ``mpmath.mp.prec`` (53 bits)."""
    ctx = MPContext(113)
    third = ctx.mp.mpf(1) / 3  # 113 significant bits
    assert _mpf_to_fraction(third) == _mp_fraction(third)


def test_negative_mpf_inputs_keep_their_sign() -> None:
    """Regression: ``mpf.man_exp``'s mantissa is unsigned, so negative mpmath entries lost their sign and
    ``mp_niggli_reduce`` reduced a different lattice without any error."""
    assert _mpf_to_fraction(mpmath.mpf(-0.5)) == Fraction(-1, 2)
    assert _mpf_to_fraction(mpmath.mpf(0)) == 0
    lattice = [[3, 0, 0], [mpmath.mpf(-1), 2, mpmath.mpf(0.5)], [0.5, 0.75, 1.5]]
    exact = [[3, 0, 0], [-1, 2, Fraction(1, 2)], [Fraction(1, 2), Fraction(3, 4), Fraction(3, 2)]]
    expected = exact_reduce(exact)
    assert expected.g6 == (Fraction(49, 16), Fraction(77, 16), Fraction(77, 16), Fraction(-5, 8), Fraction(-3, 8),
                           Fraction(-21, 8))
    r = mp_niggli_reduce(lattice, prec=64)
    assert [_mp_fraction(v) for v in r.g6] == list(expected.g6)
    t = [[int(v) for v in row] for row in r.transform]
    product = [[sum(t[i][k] * exact[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    assert [[_mp_fraction(v) for v in row] for row in r.lattice] == product  # dyadic: exact at 64 bits


# --------------------------------------------------------------------------- result_violations thresholds
def _metric(lat: np.ndarray) -> np.ndarray:
    return np.array([float(v) for v in _g6_exact(lat)])


def test_result_violations_rounding_allowances() -> None:
    ident = np.eye(3, dtype=np.int64)
    lat = np.diag([1.40625, 1.5, 1.75])  # reduced
    assert result_violations(lat, ident, lat, _metric(lat), 0.0) == []
    # an entry of the lattice may be off by 2u of the exact value (1 ulp here), not by 2 ulps (2.84 u)
    for ulps, ok in ((1, True), (2, False)):
        out = lat.copy()
        out[0, 0] = 1.40625 + ulps * 2.0**-52
        msgs = result_violations(lat, ident, out, _metric(out), 0.0)
        assert (msgs == []) is ok and all(m.startswith("lattice[0, 0]") for m in msgs)
    # an exact zero may be off by 2**-1070 (underflow), not more
    out = lat.copy()
    out[0, 1] = 2.0**-1070
    assert result_violations(lat, ident, out, _metric(out), 0.0) == []
    out[0, 1] = 2.0**-1069
    assert [m[:13] for m in result_violations(lat, ident, out, _metric(out), 0.0)] == ["lattice[0, 1]"]
    # the G6 must be the metric to 16 u of the largest squared length (whichever it is)
    for big in range(3):
        cell = np.eye(3) * 0.5
        cell[big, big] = 8.0  # scale 64; the G6 is checked against 16 u * 64 = 2**-43
        g6 = _metric(cell)
        k = (big + 1) % 3
        g6[k] = 0.25 + 2.0**-44
        assert not any(m.startswith("g6[") for m in result_violations(cell, ident, cell, g6, 0.0))
        g6[k] = 0.25 + 2.0**-42
        assert any(m.startswith(f"g6[{k}]") for m in result_violations(cell, ident, cell, g6, 0.0))
    unit = np.eye(3)  # scale 1: exactly 16 u is allowed, 16.5 u is not
    for off, ok in ((16, True), (16.5, False)):
        g6 = _metric(unit)
        g6[3] = off * U
        assert (result_violations(unit, ident, unit, g6, 0.0) == []) is ok


def test_result_violations_slack_of_the_niggli_conditions() -> None:
    ident = np.eye(3, dtype=np.int64)
    # A - B = delta against the slack 5/4 e + 64 u C with C = 16: 64 u C = 128 * 2**-50
    slack = 128 * Fraction(2) ** -50
    for y, ok in ((1 - 2.0**-45, True), (1 - 129 * 2.0**-51, False)):  # delta ~ 64, ~ 129 (* 2**-50)
        lat = np.array([[1.0, 0, 0], [0, y, 0], [0, 0, 4.0]])
        delta = 1 - Fraction(y) ** 2
        assert (8 * Fraction(2) ** -50 < delta < slack) if ok else (slack < delta < 130 * Fraction(2) ** -50)
        assert result_violations(lat, ident, lat, _metric(lat), 0.0) == ([] if ok else ["A <= B"])
        assert result_violations(lat, ident, lat, _metric(lat), 2.0**-40) == []  # 5/4 e covers it


# --------------------------------------------------------------------------- the reducer's other paths
class _Spy(FloatContext):
    """A float context that records the calls the reducer makes (and can perturb its fast rows)."""

    def __init__(self, noise: dict[tuple[int, ...], float] | None = None):
        self.log: list[tuple[Any, ...]] = []
        self.noise = noise or {}

    def row(self, t: list[int], d: Any, accurate: bool) -> list[float]:  # type: ignore[override]
        self.log.append(("row", tuple(t), accurate))
        r = FloatContext.row(t, d, accurate)
        f = 1.0 if accurate else self.noise.get(tuple(t), 1.0)
        return [v * f for v in r]

    def volume(self, rows: Any, d: Any) -> tuple[float, bool]:  # type: ignore[override]
        self.log.append(("volume",))
        return FloatContext.volume(rows, d)

    def g6_errors(self, rows: Any, g: Any, t: Any, d: Any) -> tuple[float, ...]:  # type: ignore[override]
        self.log.append(("errors",))
        return FloatContext.g6_errors(rows, g, t, d)

    def events(self) -> str:
        return "".join({"row": "", "volume": "V", "errors": "E"}[x[0]] for x in self.log)


def test_volumes_come_from_accurate_rows() -> None:
    lat = np.array([[1.0, 0, 0], [-731.0, 1, 0], [4003.0, -52, 1]]) @ np.array(
        [[2.0, 0.25, 0.125], [0.5, 3.0, 0.25], [0.25, -0.5, 4.0]])
    spy = _Spy()
    run = reduce_with_context(spy, spy.prepare(lat), 1e-5, 1000)
    assert run.status == _kg.OK and spy.events() == "VVVE"
    assert all(type(x[2]) is bool for x in spy.log if x[0] == "row")
    vols = [k for k, x in enumerate(spy.log) if x[0] == "volume"]
    assert [x[2] for x in spy.log[:3]] == [False] * 3  # the input rows (plain: the identity is exact)
    for k in vols[1:]:  # after the pre-reduction and at the certification: Dot2 rows
        assert [x[:1] + x[2:] for x in spy.log[k - 3:k]] == [("row", True)] * 3


def test_volume_mismatch_reruns_with_the_accurate_tolerance() -> None:
    """A flat cell (relative volume ~1e-10): the tolerance of the first pass comes from an inaccurate
    volume; the certification sees the mismatch and decides again with the accurate one."""
    lat = np.array([[-0.4227830074120038, -0.5487714885332848, 0.721182627367454],
                    [0.5620493716112509, -0.44124763351795365, -0.6995720333076525],
                    [-0.13926636410486404, 0.9900191220659678, -0.021610593993262716]])
    spy = _Spy()
    run = reduce_with_context(spy, spy.prepare(lat), 1e-5, 1000)
    assert spy.events() == "VVVVE" and run.status == _kg.OK and run.iterations == 16
    assert run.transform == [[1, 1, 1], [4804, 4804, 4805], [-3156, -3157, -3157]]
    d = FloatContext.prepare(lat)
    rows = [FloatContext.row(t, d, True) for t in run.transform]
    assert run.e == FloatContext.tolerance(FloatContext.volume(rows, d)[0], 1e-5)
    assert all(type(x[2]) is bool for x in spy.log if x[0] == "row")
    r = _py(lat)
    assert r.arithmetic == Arithmetic.FLOAT64 and r.iterations == 16


def test_certification_redecides_with_accurate_rows() -> None:
    """Fast rows perturbed on purpose (a test context): the fast decision misses A1, the certification
    (Dot2 rows) finds it, and the reducer goes on with accurate rows."""
    g6 = np.array([4.0, 4.0, 9.0, 1.0, 1.0, 1.0])
    e = 1e-5 * float(np.sqrt(np.linalg.det(g6_to_gram(g6)))) ** (2 / 3)
    g6[0] = 4 + e * (1 + 2.0**-12)  # A - B just beyond e: A1
    lat = np.linalg.cholesky(g6_to_gram(g6))
    spy = _Spy({(1, 0, 0): 1 - 2.0**-20, (0, 0, 1): 1 / (1 - 2.0**-20)})  # volume-preserving
    run = reduce_with_context(spy, spy.prepare(lat), 1e-5, 100)
    assert spy.events() == "VVEVE" and run.status == _kg.OK and run.iterations == 1
    assert run.transform == [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]


def test_singular_input_collapses_a_row() -> None:
    ctx = FloatContext()
    lat = np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]])
    run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 100)
    assert run.status == _kg.PRECISION and run.iterations == 1 and run.transform[1] == [-2, 1, 0]
    with pytest.raises(SingularLatticeError):
        _py(lat)
    with pytest.raises(SingularLatticeError):
        _py(lat, precision="float")


def test_krivy_gruber_step_collapsing_a_row() -> None:
    """a + b + c = 0 at 120 degrees: no pre-reduction pair shortens anything, the Krivy-Gruber steps
    (A5, A1, A3, then A7 b -= a) make a zero row: PRECISION after 4 counted steps."""
    s = math.sqrt(3) / 2
    lat = np.array([[1.0, 0, 0], [-0.5, s, 0], [-0.5, -s, 0]])
    ctx = FloatContext()
    run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 100)
    assert run.status == _kg.PRECISION and run.iterations == 4
    assert run.transform == [[-1, 0, 0], [1, 1, 1], [0, 1, 0]] and run.g6[1] == 0.0
    masked = _py(lat, errors="mask", precision="float")
    assert masked.status == ReduceStatus.SINGULAR and masked.iterations == 4


@pytest.mark.parametrize("lattice, e_margin, certified", [
    # B - A = 2**-10 against dA + dB + 4u (A + B + e) ~ 40 u (not dA + dC: C = 100)
    ([[1, 0, 0], [Fraction(1, 32), 1, 0], [0, 0, 10]], (2**-10, 64), True),
    # C - B = 2**-10 against dB + dC + 4u (...) ~ 40 u (not dB + dxi ~ 56 u)
    ([[1, 0, 0], [0, 1, 0], [0, Fraction(1, 32), 1]], (2**-10, 48), True),
    # the sign of xi = 2**-4 against dxi ~ 512 u (not deta ~ 128 u; |eta| < |xi| has deta + dxi)
    ([[1, 0, 0], [0, 4, 0], [0, Fraction(1, 128), 4]], (2**-4, 384), False),
    # the sign of eta = 2**-4 against deta ~ 128 u (not dzeta ~ 32 u)
    ([[1, 0, 0], [0, 1, 0], [Fraction(1, 32), 0, 4]], (2**-4, 96), False),
])
def test_certification_uses_the_bound_of_each_entry(lattice: Any, e_margin: tuple[float, int], certified: bool
                                                     ) -> None:
    """mpmath at 53 bits, a fixed tolerance that leaves one comparison a margin of k u."""
    ctx = MPContext(53)
    top, k = e_margin
    e = ctx.to_mp(Fraction(top) - k * Fraction(2) ** -53)
    run = reduce_with_context(ctx, ctx.prepare(lattice), 0.0, 100, e=e)
    assert run.status == (_kg.OK if certified else _kg.PRECISION)  # (after sign steps A3 / A4)
    g = [[ctx.dot(run.rows[i], run.rows[j]) for j in range(3)] for i in range(3)]
    assert _spec_unsure(run.g6, ctx.g6_errors(None, g, None, None), e, ctx.u) is not certified


def test_skip_mask_reaches_both_decisions() -> None:
    lat = _probe_lattice((4, 9, 10, 9.02, 1, 1))  # needs A5 after the pre-reduction
    good = _py(lat)
    assert is_niggli_reduced(good.lattice) and good.iterations == 2  # A5, then A4
    broken = _py(lat, _skip=1 << A5, errors="mask", precision="float")
    assert broken.status == ReduceStatus.OK and broken.iterations == 0  # the checks skip A5 too ...
    assert result_violations(lat, broken.transform, broken.lattice, broken.g6, broken.tolerance)  # ... this not
    assert not is_niggli_reduced(broken.lattice)
    ctx = FloatContext()
    run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 100, skip=1 << A5)
    assert run.status == _kg.OK and kg_decide(*run.g6, *(0.0,) * 6, run.e, 0.0)[0] == A5


def test_exact_arithmetic_stays_rational() -> None:
    for lat in _integer_lattices(8, 9):
        third = [[Fraction(v, 3) for v in row] for row in lat]
        run = reduce_with_context(ExactContext, ExactContext.prepare(third), 0.0, 1000)
        assert all(type(v) is Fraction for v in run.g6) and tuple(run.g6) == tuple(exact_reduce(third).g6)


def test_pre_reduction_threshold_is_strict() -> None:
    # a -= b shortens |a|**2 = 512 by exactly 2 = 2**-8 of it: not taken (Krivy-Gruber A1 first)
    ctx = FloatContext()
    tie = np.array([[16.0, 16, 0], [-1, 2, 5], [5, -5, 3]])
    run = reduce_with_context(ctx, ctx.prepare(tie), 1e-5, 1)
    assert run.status == _kg.NOT_CONVERGED and run.transform == [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]
    run = reduce_with_context(ctx, ctx.prepare(tie), 1e-5, 100)
    assert run.status == _kg.OK and run.iterations == 5 and run.transform == [[0, 1, 0], [0, 0, 1], [1, -1, 0]]
    above = tie.copy()
    above[0, 2] = 2.0**-20  # a.b grows by 5 * 2**-20: now it is taken
    run = reduce_with_context(ctx, ctx.prepare(above), 1e-5, 1)
    assert run.iterations == 2 and run.transform == [[0, -1, 0], [-1, 1, 0], [0, 0, -1]]


def test_overflow_in_the_krivy_gruber_phase() -> None:
    ctx = FloatContext()
    # b -= 2**52 a in the pre-reduction fits; the A6 step c -= a later needs |3 - 2**52| + 1 > 2**52
    shear = np.array([[1.0, 0, 0], [2.0**52, 1, 0], [3, 0.75, 16]])
    run = reduce_with_context(ctx, ctx.prepare(shear), 1e-5, 100)
    assert run.status == _kg.OVERFLOW and run.iterations == 4
    assert run.transform == [[-(2**52), 1, 0], [1, 0, 0], [3, 0, -1]]
    # A8 (c += a + b) with an entry 2**52 in the row of c, then of b
    x3 = math.sqrt(9.75)
    x2 = -7.5 / x3
    for lat, steps, big_row in (
            (np.array([[x2, -2.0, 0], [x3, -1.5 + 2.0**52, 2.0**53], [0, 1.0, 2.0]]), 3, 2),
            (np.array([[x3, -1.5, 0], [x2, 2.0**52 - 2, 2.0**53], [0, 1.0, 2.0]]), 4, 1)):
        run = reduce_with_context(ctx, ctx.prepare(lat), 1e-5, 100)
        assert run.status == _kg.OVERFLOW and run.iterations == steps
        assert max(abs(v) for v in run.transform[big_row]) == 2**52
        with pytest.raises(PrecisionError, match=r"beyond 2\*\*52"):
            _py(lat, precision="float")
    assert _py(shear).arithmetic == Arithmetic.MPMATH
