"""Unit tests of the exact oracle: inputs, errors, contract, speed on sheared bases, broken reducers."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy

from latticesym.errors import (
    LatticeError,
    LatticeShapeError,
    NonFiniteLatticeError,
    NotExactError,
    ReductionError,
    SingularLatticeError,
)
from latticesym.metric import lattice_from_parameters
from latticesym.reference import (
    exact_g6,
    is_niggli_reduced,
    niggli_reduce,
    niggli_reduce_g6,
    niggli_violations,
    reduction_problems,
)

TRICLINIC = lattice_from_parameters(3.1, 4.7, 5.9, 77.0, 84.0, 101.0)


def _shear(entries: int, seed: int) -> np.ndarray:
    """An integer unimodular matrix with large entries (product of elementary moves), exact ints."""
    rng = np.random.default_rng(seed)
    m = np.eye(3, dtype=object)
    while max(abs(int(x)) for x in m.flat) < entries:
        e = np.eye(3, dtype=object)
        i, j = rng.choice(3, 2, replace=False)
        e[i, j] = int(rng.integers(-3, 4))
        m = e @ m
    return m


def _exact(lattice) -> np.ndarray:
    return np.array([[Fraction(float(x)) for x in row] for row in lattice], dtype=object)


def test_result_contract() -> None:
    result = niggli_reduce(TRICLINIC)
    assert isinstance(result.g6, tuple) and all(isinstance(x, Fraction) for x in result.g6)
    assert all(type(x) is int for x in result.transform.flat)
    assert (result.transform @ _exact(TRICLINIC) == result.lattice).all()
    t = [[int(x) for x in row] for row in result.transform]
    assert sympy.Matrix(t).det() == 1
    assert is_niggli_reduced(result.g6)
    assert not result.transform.flags.writeable
    assert result.gram[0][0] == result.g6[0]


@pytest.mark.parametrize(
    "lattice",
    [
        [[1, 0, 0], [0, 2, 0], [0, 0, 3]],
        [[Fraction(1, 3), 0, 0], [0, Fraction(2, 7), 0], [Fraction(1, 5), 0, 1]],
        [[sympy.Rational(1, 3), 0, 0], [0, sympy.Integer(2), 0], [0, 1, 1]],
        [[Decimal("1.1"), 0, 0], [0, Decimal("2.5"), 0], [0, 0, 1]],
        np.array([[1.5, 0.0, 0.0], [0.25, 2.0, 0.0], [0.0, 0.5, 3.0]]),
        np.array([[1, 0, 0], [0, 2, 0], [5, 0, 3]], dtype=np.int32),
        sympy.Matrix([[1, 0, 0], [0, 2, 0], [0, 0, 3]]),
    ],
)
def test_accepted_input_types(lattice) -> None:
    result = niggli_reduce(lattice)
    assert is_niggli_reduced(result.g6)


def test_floats_are_converted_exactly() -> None:
    lattice = [[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]]
    assert niggli_reduce(lattice).g6[0] == Fraction(0.1) ** 2


def test_hexagonal_with_rational_metric_is_exact() -> None:
    """sqrt(3)/2 entries square to a rational metric: accepted, and on the boundary exactly."""
    s3 = sympy.sqrt(3)
    hexagonal = [[1, 0, 0], [sympy.Rational(-1, 2), s3 / 2, 0], [0, 0, 2]]
    result = niggli_reduce(hexagonal)
    assert result.g6 == (1, 1, 4, 0, 0, -1)
    assert sympy.simplify(result.lattice[1][1] ** 2 + result.lattice[1][0] ** 2) == 1


def test_irrational_metric_is_refused() -> None:
    with pytest.raises(NotExactError, match="not rational"):
        niggli_reduce([[sympy.sqrt(2), 0, 0], [1, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(
    ("lattice", "error", "match"),
    [
        (np.zeros((3, 3)), SingularLatticeError, "linearly dependent"),
        ([[1, 0, 0], [0, 1, 0], [1, 1, 0]], SingularLatticeError, "det"),
        ([[1, 2, 3], [2, 4, 6], [0, 0, 1]], SingularLatticeError, "det"),
        ([[float("nan"), 0, 0], [0, 1, 0], [0, 0, 1]], NonFiniteLatticeError, "nan"),
        ([[float("inf"), 0, 0], [0, 1, 0], [0, 0, 1]], NonFiniteLatticeError, "inf"),
        (np.eye(2), LatticeShapeError, r"\(2, 2\)"),
        (np.eye(3)[None], LatticeShapeError, r"\(1, 3, 3\)"),
        ([[1, 0, 0], [0, 1, 0]], LatticeShapeError, r"\(2, 3\)"),
    ],
)
def test_typed_errors_with_numbers(lattice, error, match) -> None:
    with pytest.raises(error, match=match) as info:
        niggli_reduce(lattice)
    assert isinstance(info.value, LatticeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "lattice",
    [
        [["a", 0, 0], [0, 1, 0], [0, 0, 1]],
        [[1j, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[True, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[None, 0, 0], [0, 1, 0], [0, 0, 1]],
        "not a lattice",
    ],
)
def test_non_numbers_raise_type_error(lattice) -> None:
    with pytest.raises(TypeError):
        niggli_reduce(lattice)


def test_g6_input_errors() -> None:
    with pytest.raises(LatticeShapeError):
        niggli_reduce_g6((1, 2, 3))
    with pytest.raises(SingularLatticeError):
        niggli_reduce_g6((1, 1, 1, 2, 2, 2))  # degenerate metric
    with pytest.raises(SingularLatticeError):
        niggli_reduce_g6((-1, 1, 1, 0, 0, 0))


@pytest.mark.parametrize("entries", [10, 10**3, 10**6])
def test_sheared_bases_reduce_fast_with_log_iterations(entries: int) -> None:
    base = _exact(TRICLINIC)
    expected = niggli_reduce(base).g6
    for seed in range(5):
        sheared = _shear(entries, seed) @ base
        start = time.perf_counter()
        result = niggli_reduce(sheared)
        elapsed = time.perf_counter() - start
        assert result.g6 == expected
        assert elapsed < 0.1, f"{elapsed * 1e3:.1f} ms for entries {entries}"
        # Rounded multiples: the step count grows with log(shear), not linearly
        assert result.iterations < 40 + 12 * np.log10(entries), result.iterations


def test_max_iter_raises_with_state() -> None:
    sheared = _shear(10**6, 0) @ _exact(TRICLINIC)
    with pytest.raises(ReductionError, match="max_iter=2") as info:
        niggli_reduce(sheared, max_iter=2)
    assert info.value.iterations >= 2 and len(info.value.g6) == 6
    assert np.array(info.value.transform).shape == (3, 3)


def test_idempotent_and_automorphism() -> None:
    cubic = niggli_reduce([[0, 1, 0], [1, 0, 0], [0, 0, -1]])  # left-handed basis of the cubic lattice
    again = niggli_reduce(cubic.lattice)
    assert again.g6 == cubic.g6
    t = np.array(again.transform, dtype=np.int64)
    g = np.array(cubic.gram, dtype=float)
    assert np.array_equal(t @ g @ t.T, g)  # identity or an automorphism


def test_is_niggli_reduced_shapes() -> None:
    assert is_niggli_reduced(np.eye(3))
    assert not is_niggli_reduced([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    with pytest.raises(LatticeShapeError):
        is_niggli_reduced([1, 2, 3])


@pytest.mark.parametrize(
    ("g6", "violated"),
    [
        ((2, 1, 3, 0, 0, 0), ["A <= B"]),
        ((1, 3, 2, 0, 0, 0), ["B <= C"]),
        ((1, 2, 3, 2.5, 0, 0), ["|xi| <= B", "signs: all > 0 (type I) or all <= 0 (type II)"]),
        ((1, 2, 3, 0, 1.5, 0), ["|eta| <= A", "signs: all > 0 (type I) or all <= 0 (type II)"]),
        ((1, 2, 3, 0, 0, -1.5), ["|zeta| <= A"]),
        ((1, 2, 3, 1, -0.5, 0.5), ["signs: all > 0 (type I) or all <= 0 (type II)"]),
        ((2, 2, 3, 1, 0.5, 0.5), ["A == B -> |xi| <= |eta|"]),
        ((1, 2, 2, 0.5, 0.5, 0.25), ["B == C -> |eta| <= |zeta|"]),
        ((1, 2, 3, 2, 0.25, 0.75), ["xi == B -> zeta <= 2 eta"]),
        ((2, 3, 4, 0.5, 2, 1.5), ["eta == A -> zeta <= 2 xi"]),
        ((2, 3, 4, 0.5, 1.5, 2), ["zeta == A -> eta <= 2 xi"]),
        ((1, 2, 3, -2, -0.5, -0.25), ["xi == -B -> zeta == 0"]),
        ((2, 3, 4, -0.5, -2, -0.25), ["eta == -A -> zeta == 0"]),
        ((2, 3, 4, -0.5, -0.25, -2), ["zeta == -A -> eta == 0"]),
        ((2, 3, 4, -2.75, -1, -1.5), ["|xi| + |eta| + |zeta| <= A + B"]),
        ((2, 3, 4, -2.5, -1, -1.5), ["|xi|+|eta|+|zeta| == A+B -> 2A <= 2|eta| + |zeta|"]),
        ((1, 1, 1, -1, 0, 0), ["A == B -> |xi| <= |eta|"]),
        ((0, 1, 2, 0, 0, 0), ["A, B, C > 0"]),
        ((1, 0, 2, 0, 0, 0), ["A, B, C > 0", "A <= B"]),
        ((1, 1, 0, 0, 0, 0), ["A, B, C > 0", "B <= C"]),
        ((-1, 1, 1, 0, 0, 0), ["A, B, C > 0", "|eta| <= A", "|zeta| <= A"]),
    ],
)
def test_each_niggli_condition_is_checked(g6, violated) -> None:
    assert niggli_violations([Fraction(x) for x in g6]) == violated
    assert not is_niggli_reduced([Fraction(x) for x in g6])


@pytest.mark.parametrize(
    "g6",
    [
        (2, 2, 3, 1, 1, 1),  # A == B, |xi| == |eta|
        (1, 2, 2, 0.5, 0.5, 0.5),  # B == C, |eta| == |zeta|
        (1, 2, 3, 2, 0.5, 1),  # xi == B, zeta == 2 eta
        (2, 3, 4, 0.5, 2, 1),  # eta == A, zeta == 2 xi
        (2, 3, 4, 0.5, 1, 2),  # zeta == A, eta == 2 xi
        (1, 2, 3, -2, -0.5, 0),  # xi == -B, zeta == 0
        (2, 3, 4, -0.5, -2, 0),  # eta == -A, zeta == 0
        (2, 3, 4, -0.5, 0, -2),  # zeta == -A, eta == 0
        (2, 3, 4, -2.5, -1.5, -1),  # |xi|+|eta|+|zeta| == A+B, 2A == 2|eta| + |zeta|
        (1, 1, 1, 0, 0, 0),  # cubic: type II with zeros
        (1, 1, 1, 1, 1, 1),  # fcc: type I, every equality at once
        (4, 9, 9, 9, 3, 4),  # Krivy & Gruber's result
    ],
)
def test_reduced_forms_exactly_on_each_boundary_pass(g6) -> None:
    """Each special condition is an inequality that admits equality: forms on it are reduced."""
    assert niggli_violations([Fraction(x) for x in g6]) == []
    result = niggli_reduce_g6([Fraction(x) for x in g6])
    assert result.g6 == tuple(Fraction(x) for x in g6)
    assert result.iterations == 0  # the reducer takes no step on a reduced form


STEPS = ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"]


@pytest.mark.parametrize("step", STEPS)
def test_a_reducer_missing_a_step_is_caught(step: str) -> None:
    """Test the tester: removing any one Krivy-Gruber step produces outputs the independent ITA
    conditions reject (or a non-terminating run), on a fixed set of inputs.  Pre-reduction is
    switched off too, since it would otherwise do the size-reduction work of A5-A7."""
    rng = np.random.default_rng(7)
    caught = False
    cases = [np.array(_shear(50, s), dtype=object) @ _exact(TRICLINIC) for s in range(10)]
    cases += [_exact(rng.normal(size=(3, 3))) for _ in range(60)]
    cases += [_exact(lattice_from_parameters(1, 1, 1, 60, 60, 60))]
    # all-obtuse cell with xi + eta + zeta + A + B < 0: only A8 repairs it
    cases += [_exact(np.linalg.cholesky(np.array([[1, -0.45, -0.45], [-0.45, 1, -0.45], [-0.45, -0.45, 1]])))]
    for lattice in cases:
        try:
            result = niggli_reduce(lattice, max_iter=500, _skip=frozenset({step, "pre"}))
        except ReductionError:
            caught = True
            break
        if niggli_violations(result.g6):
            caught = True
            break
    assert caught, f"skipping {step} went unnoticed"


def test_contract_checker_accepts_the_oracle_and_catches_broken_results() -> None:
    """Test the tester: a mirrored transform, a wrong lattice, a wrong g6 and an unreduced result are
    each reported by ``reduction_problems``."""
    result = niggli_reduce(TRICLINIC)
    assert reduction_problems(TRICLINIC, result) == []
    mirrored = replace(result, transform=-np.array(result.transform), lattice=-np.array(result.lattice))
    assert any("det" in p for p in reduction_problems(TRICLINIC, mirrored))
    shifted = replace(result, lattice=np.array(result.lattice) + Fraction(1, 10**9))
    assert any("transform @ lattice" in p for p in reduction_problems(TRICLINIC, shifted))
    wrong_g6 = replace(result, g6=(*result.g6[:5], result.g6[5] + 1))
    assert reduction_problems(TRICLINIC, wrong_g6)
    sheared = np.array([[1, 0, 0], [3, 1, 0], [0, 0, 1]], dtype=object) @ _exact(TRICLINIC)
    unreduced = replace(result, lattice=sheared, transform=np.array([[1, 0, 0], [3, 1, 0], [0, 0, 1]], dtype=object),
                        g6=exact_g6(sheared))
    assert any("Niggli condition" in p for p in reduction_problems(TRICLINIC, unreduced))
