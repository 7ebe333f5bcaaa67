"""Exhaustive checks of the exact oracle on every small integer metric, and on each boundary transition.

Random lattices almost never sit *exactly* on a Niggli boundary, so property tests alone leave the
equality branches of Krivy-Gruber (``xi == B and 2 eta < zeta``, ``s == 0 and 2(A + eta) + zeta > 0``,
...) and of the ITA conditions barely exercised.  Small integer G6 vectors hit them constantly:
``test_checker_and_reducer_agree_on_every_small_metric`` enumerates every positive-definite G6 with
``A, B, C`` in 1..4 and ``xi, eta, zeta`` in -4..4 and asserts, exactly, that

* the reducer's output meets every ITA condition and is ``T G T^T`` for its own transform ``T``, and
* a metric is accepted by the independent checker :func:`niggli_violations` **if and only if** the
  reducer leaves it unchanged (fixed points of the reducer == reduced forms of the checker).

Any step of the reducer that fires when it should not, or fails to fire, breaks the second point on
some metric of the box; any condition of the checker that is too strict or too loose does too.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from latticesym.errors import ReductionError
from latticesym.reference import gram_from_g6, niggli_reduce, niggli_reduce_g6, niggli_violations
from latticesym.reference._krivy_gruber import KGState, krivy_gruber, pre_reduce

DIAG = range(1, 5)
OFF = range(-4, 5)


def _positive_definite(g6: tuple[int, ...]) -> bool:
    """Leading minors of 4 G (an integer matrix) are all positive, exactly."""
    A, B, C, xi, eta, zeta = g6
    g = [[4 * A, 2 * zeta, 2 * eta], [2 * zeta, 4 * B, 2 * xi], [2 * eta, 2 * xi, 4 * C]]
    m2 = g[0][0] * g[1][1] - g[0][1] ** 2
    det = (g[0][0] * (g[1][1] * g[2][2] - g[1][2] ** 2) - g[0][1] * (g[0][1] * g[2][2] - g[1][2] * g[0][2])
           + g[0][2] * (g[0][1] * g[1][2] - g[1][1] * g[0][2]))
    return g[0][0] > 0 and m2 > 0 and det > 0


BOX = [g6 for g6 in itertools.product(DIAG, DIAG, DIAG, OFF, OFF, OFF) if _positive_definite(g6)]


def _congruent(t, g6) -> tuple[Fraction, ...]:
    """G6 of ``T G T^T``, exactly."""
    g = gram_from_g6(g6)
    tt = [[int(x) for x in row] for row in t]
    out = [[sum(tt[i][k] * g[k][m] * tt[j][m] for k in range(3) for m in range(3)) for j in range(3)]
           for i in range(3)]
    return out[0][0], out[1][1], out[2][2], 2 * out[1][2], 2 * out[0][2], 2 * out[0][1]


def test_the_box_is_large_and_hits_every_boundary() -> None:
    """The enumeration is not vacuous: it holds thousands of metrics, hundreds of reduced forms, and
    metrics exactly on each special condition's equality."""
    assert len(BOX) > 20_000
    reduced = [g for g in BOX if not niggli_violations(g)]
    assert len(reduced) > 200
    A, B, C, xi, eta, zeta = np.array(BOX).T
    on_boundary = {
        "A == B": A == B, "B == C": B == C, "xi == B": xi == B, "eta == A": eta == A, "zeta == A": zeta == A,
        "xi == -B": xi == -B, "eta == -A": eta == -A, "zeta == -A": zeta == -A,
        "A8 s == 0": xi + eta + zeta + A + B == 0,
    }
    for name, mask in on_boundary.items():
        assert mask.sum() > 100, name


def _box_disagreements(reduce_g6, limit: int = 6) -> list[str]:
    """Where ``reduce_g6`` (G6 -> result with ``g6`` and ``transform``) and the checker disagree on the box;
    stops after ``limit``."""
    disagreements = []
    for g6 in BOX:
        result = reduce_g6(g6)
        violations = niggli_violations(result.g6)
        if violations:
            disagreements.append(f"{g6} -> {result.g6}: output violates {violations}")
            continue
        if _congruent(result.transform, g6) != result.g6:
            disagreements.append(f"{g6}: g6 is not T G T^T for T = {result.transform.tolist()}")
            continue
        fixed = result.g6 == tuple(Fraction(x) for x in g6)
        accepted = not niggli_violations(g6)
        if fixed != accepted:
            disagreements.append(f"{g6}: checker accepts = {accepted}, reducer leaves it unchanged = {fixed}")
        if len(disagreements) >= limit:
            break
    return disagreements


def test_checker_and_reducer_agree_on_every_small_metric() -> None:
    assert _box_disagreements(niggli_reduce_g6) == []


@pytest.mark.parametrize("step", ["A1", "A2", "A4", "A5", "A6", "A7", "A8"])
def test_the_box_catches_a_reducer_missing_one_step(step) -> None:
    """Test the tester: with one Krivy-Gruber step left out (pre-reduction kept, so the size-reducing
    part of A5-A7 is still done), the box finds metrics where reducer and checker disagree."""

    def broken(g6):
        state = KGState(g=[[int(2 * v) for v in row] for row in gram_from_g6(g6)])
        pre_reduce(state, 1000)
        krivy_gruber(state, 1000, skip=frozenset({step}))
        t = np.empty((3, 3), dtype=object)
        t[:] = state.t
        return SimpleNamespace(g6=tuple(Fraction(x, 2) for x in state.g6()), transform=t)

    assert _box_disagreements(broken, limit=1)


# One metric per boundary transition of Krivy & Gruber's steps: each violates exactly the named ITA
# condition, so exactly the named step (its equality branch) must fire for the output to be reduced.
TRANSITIONS = [
    ((2, 2, 3, -1, 0, 0), "A == B -> |xi| <= |eta|", "A1 on A == B"),
    ((1, 2, 2, 0, -1, 0), "B == C -> |eta| <= |zeta|", "A2 on B == C"),
    ((4, 6, 9, 6, 1, 3), "xi == B -> zeta <= 2 eta", "A5 on xi == B"),
    ((4, 6, 9, -6, -1, -2), "xi == -B -> zeta == 0", "A5 on xi == -B"),
    ((4, 6, 9, 1, 4, 3), "eta == A -> zeta <= 2 xi", "A6 on eta == A"),
    ((4, 6, 9, -1, -4, -3), "eta == -A -> zeta == 0", "A6 on eta == -A"),
    ((4, 6, 9, 1, 3, 4), "zeta == A -> eta <= 2 xi", "A7 on zeta == A"),
    ((4, 6, 9, -1, -3, -4), "zeta == -A -> eta == 0", "A7 on zeta == -A"),
    ((10, 11, 12, -10, -5, -6), "|xi|+|eta|+|zeta| == A+B -> 2A <= 2|eta| + |zeta|", "A8 on s == 0"),
]


@pytest.mark.parametrize(("g6", "violated", "step"), TRANSITIONS, ids=[t[2] for t in TRANSITIONS])
def test_each_boundary_transition_is_taken(g6, violated, step) -> None:
    assert _positive_definite(g6)
    assert niggli_violations(g6) == [violated], step
    result = niggli_reduce_g6(g6)
    assert niggli_violations(result.g6) == []
    assert result.g6 != tuple(Fraction(x) for x in g6)
    assert _congruent(result.transform, g6) == result.g6
    # the reduced form is unique: a different basis of the same metric reduces to it too
    m = [[1, 0, 0], [3, 1, 0], [-2, 5, 1]]
    assert niggli_reduce_g6(_congruent(m, g6)).g6 == result.g6


def _a5_a7_case(x: str, k: int) -> tuple[int, ...]:
    """A positive-definite G6 whose one off-diagonal term is ``2 k`` times its bound, A <= B <= C."""
    if x == "xi":
        return (6, 7, 7 * k * k + 3, 14 * k, 0, 0)
    if x == "eta":
        return (6, 7, 6 * k * k + 3, 0, 12 * k, 0)
    return (6, 6 * k * k + 1, 6 * k * k + 5, 0, 0, 12 * k)


@pytest.mark.parametrize("x", ["xi", "eta", "zeta"])
def test_a5_a7_remove_every_whole_multiple_in_one_step(x) -> None:
    """With pre-reduction off, an off-diagonal term of exactly ``2 k`` times its bound is cleared by one
    rounded-multiple step, so the step count does not depend on ``k`` (Krivy-Gruber's +-1 steps would
    take ``k``, a wrongly rounded multiple a few more for large ``k``)."""
    counts = []
    for k in (1, 2, 7, 1000):
        g6 = _a5_a7_case(x, k)
        assert _positive_definite(g6)
        state = KGState(g=[[int(2 * v) for v in row] for row in gram_from_g6(g6)])
        krivy_gruber(state, max_iter=50)
        assert not niggli_violations(state.g6())
        counts.append(state.iterations)
    assert counts == [counts[0]] * 4 and counts[0] <= 6, counts


def test_without_pre_reduction_rounded_multiples_keep_iterations_logarithmic() -> None:
    """Switch pre-reduction off: a basis sheared by 1e6 still reduces in a few dozen steps because
    A5-A7 take rounded multiples, not one multiple per step."""
    rng = np.random.default_rng(3)
    m = np.eye(3, dtype=object)
    while max(abs(int(v)) for v in m.flat) < 10**6:
        e = np.eye(3, dtype=object)
        i, j = rng.choice(3, 2, replace=False)
        e[i, j] = int(rng.integers(-3, 4))
        m = e @ m
    base = np.array([[Fraction(3), 0, 0], [Fraction(1, 3), Fraction(4), 0], [Fraction(1, 2), Fraction(1, 5), 5]],
                    dtype=object)
    expected = niggli_reduce(base).g6
    result = niggli_reduce(m @ base, max_iter=200, _skip=frozenset({"pre"}))
    assert result.g6 == expected
    assert result.iterations < 120, result.iterations


@pytest.mark.parametrize("phase", ["pre-reduction", "Krivy-Gruber"])
def test_max_iter_is_the_exact_number_of_steps_allowed(phase) -> None:
    """A reduction that takes exactly ``k`` steps succeeds with ``max_iter=k`` and raises with ``k - 1``,
    naming the phase it stopped in."""
    skip = frozenset({"pre"}) if phase == "Krivy-Gruber" else frozenset()
    # an orthogonal cell needs no Krivy-Gruber step after pre-reduction, so it stops in the phase named
    base = [[3, 0, 0], [0, 4, 0], [0, 0, 5]] if phase == "pre-reduction" else [[3, 0, 0], [1, 4, 0], [1, 1, 5]]
    sheared = np.array([[1, 0, 0], [37, 1, 0], [-11, 5, 1]], dtype=object) @ np.array(base, dtype=object)
    k = niggli_reduce(sheared, _skip=skip).iterations
    assert k > 2
    assert niggli_reduce(sheared, max_iter=k, _skip=skip).iterations == k
    with pytest.raises(ReductionError, match=rf"max_iter={k - 1} steps \({phase}\)") as info:
        niggli_reduce(sheared, max_iter=k - 1, _skip=skip)
    assert info.value.iterations == k - 1 and len(info.value.g6) == 6
