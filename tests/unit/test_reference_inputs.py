"""The oracle's input conversion, its error messages, and its small exact helpers.

Every error the oracle raises must name the problem and the numbers (CONVENTIONS: typed errors from
``LatticeError``, numbers in the message); these tests pin the messages' content, and check the
integer helpers (rounding, signs, the A4 sign matrix) against their documented definitions.
"""

from __future__ import annotations

import itertools
import numbers
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy

from latticesym.errors import LatticeShapeError, NonFiniteLatticeError, NotExactError, SingularLatticeError
from latticesym.reference import (
    exact_g6,
    is_niggli_reduced,
    niggli_reduce,
    niggli_reduce_g6,
    reduction_problems,
)
from latticesym.reference._exact import integer_gram, to_exact_lattice, to_exact_scalar
from latticesym.reference._krivy_gruber import _a4_matrix, _round_div, _sign


class _Ratio:
    """A minimal third-party rational type: registered as ``numbers.Rational``, not a Fraction."""

    def __init__(self, numerator: int, denominator: int) -> None:
        self.numerator, self.denominator = numerator, denominator


numbers.Rational.register(_Ratio)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, Fraction(3)),
        (np.int64(-7), Fraction(-7)),
        (0.1, Fraction(3602879701896397, 36028797018963968)),  # the float's exact value
        (np.float32(0.5), Fraction(1, 2)),
        (Decimal("0.1"), Fraction(1, 10)),
        (Fraction(2, 3), Fraction(2, 3)),
        (sympy.Rational(5, 7), Fraction(5, 7)),
        (sympy.Integer(-4), Fraction(-4)),
        (sympy.Float("0.25"), Fraction(1, 4)),
        (sympy.Float("0.1"), Fraction(1, 10)),  # a sympy Float is read as it prints
        (_Ratio(22, 7), Fraction(22, 7)),
    ],
)
def test_entries_convert_exactly(value, expected) -> None:
    out = to_exact_scalar(value)
    assert out == expected and type(out) is Fraction


def test_irrational_sympy_entries_are_kept_symbolic() -> None:
    assert to_exact_scalar(sympy.sqrt(3) / 2) == sympy.sqrt(3) / 2


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (float("nan"), "lattice entry nan is not finite"),
        (np.float64("-inf"), "lattice entry -inf is not finite"),
        (Decimal("NaN"), r"lattice entry Decimal\('NaN'\) is not finite"),
        (Decimal("-Infinity"), r"lattice entry Decimal\('-Infinity'\) is not finite"),
        (sympy.oo, "lattice entry oo is not finite"),
        (-sympy.oo, "lattice entry -oo is not finite"),
        (sympy.zoo, "lattice entry zoo is not finite"),
        (sympy.nan, "lattice entry nan is not finite"),
        (sympy.Float("inf"), "lattice entry oo is not finite"),
        (sympy.sqrt(2) * sympy.oo, "lattice entry oo is not finite"),
    ],
)
def test_non_finite_entries_name_the_value(value, match) -> None:
    with pytest.raises(NonFiniteLatticeError, match=f"^{match}$"):
        to_exact_scalar(value)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, r"^lattice entries must be numbers, got bool True$"),
        (np.bool_(False), r"^lattice entries must be numbers, got bool "),
        (1 + 2j, r"^lattice entries must be real, got complex \(1\+2j\)$"),
        (np.complex128(1j), r"^lattice entries must be real, got complex "),
        (sympy.I, r"^lattice entries must be real, got I$"),
        ("1.0", r"^lattice entries must be ints, floats, Fractions or sympy numbers, got str$"),
        (None, r"got NoneType$"),
    ],
)
def test_non_numbers_name_their_type(value, match) -> None:
    with pytest.raises(TypeError, match=match):
        to_exact_scalar(value)


@pytest.mark.parametrize(
    "lattice",
    [
        [[1, 0, 0], [0, 2, 0], [0, 0, 3]],
        np.diag([1, 2, 3]),
        np.diag([1.0, 2.0, 3.0]).astype(np.float32),
        np.diag([1, 2, 3]).astype(object),
        sympy.diag(1, 2, 3),
        sympy.ImmutableMatrix([[1, 0, 0], [0, 2, 0], [0, 0, 3]]),
        ((1, 0, 0), (0, 2, 0), (0, 0, 3)),
    ],
)
def test_every_container_gives_the_same_exact_rows(lattice) -> None:
    rows = to_exact_lattice(lattice)
    assert rows == ((1, 0, 0), (0, 2, 0), (0, 0, 3))
    assert all(type(x) is Fraction for row in rows for x in row)


@pytest.mark.parametrize(
    ("lattice", "error", "match"),
    [
        ("not a lattice", TypeError, r"^lattice must be a 3x3 array of numbers, got a string$"),
        (b"abc", TypeError, "got a string"),
        (np.array([["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]]), TypeError, "got str"),
        ([[1, 0, 0], [0, 1]], LatticeShapeError, r"^the exact oracle reduces one lattice of shape \(3, 3\), got "
                                                 r"shape \(2,\)$"),
        (sympy.eye(2), LatticeShapeError, r"got shape \(2, 2\)"),
    ],
)
def test_bad_containers_raise_typed_errors(lattice, error, match) -> None:
    with pytest.raises(error, match=match):
        to_exact_lattice(lattice)


def test_integer_gram_uses_the_least_common_denominator() -> None:
    gram = ((Fraction(1, 2), Fraction(1, 3), Fraction(0)), (Fraction(1, 3), Fraction(1), Fraction(0)),
            (Fraction(0), Fraction(0), Fraction(5, 4)))
    k, d = integer_gram(gram)
    assert d == 12 and k == [[6, 4, 0], [4, 12, 0], [0, 0, 15]]
    assert integer_gram(((Fraction(2),) * 3,) * 3) == ([[2] * 3] * 3, 1)


def test_irrational_metric_message_names_the_entry() -> None:
    with pytest.raises(NotExactError, match=r"^Gram entry \(0, 1\) = sqrt\(2\) is not rational; the exact oracle "
                                            r"needs a rational metric L @ L\.T \(e\.g\. hexagonal"):
        niggli_reduce([[sympy.sqrt(2), 0, 0], [1, 1, 0], [0, 0, 1]])


def test_singular_lattice_message_names_det_lengths_and_rows() -> None:
    with pytest.raises(SingularLatticeError) as info:
        niggli_reduce([[1, 0, 0], [0, 2, 0], [Fraction(1, 2), 4, 0]])
    assert str(info.value) == (
        "basis is linearly dependent: det(L @ L.T) = 0 exactly (vector lengths 1, 2, 4.03113); "
        "lattice = [['1', '0', '0'], ['0', '2', '0'], ['1/2', '4', '0']]"
    )


@pytest.mark.parametrize(
    ("g6", "error", "match"),
    [
        ((1, 2, 3), LatticeShapeError, r"^a G6 vector has 6 entries, got 3$"),
        ((1, 2, 3, 0, 0, 0, 0), LatticeShapeError, r"got 7$"),
        ((1, 1, 1, 0, 0, sympy.sqrt(2)), TypeError, r"^G6 entries must be rational for the exact oracle$"),
        ((1, 1, 1, 2, 2, 2), SingularLatticeError, r"det\(L @ L\.T\) = 0 exactly"),
        # det(G) > 0 but not positive definite: two negative eigenvalues
        ((-1, -1, 1, 0, 0, 0), SingularLatticeError,
         r"^G6 \('-1', '-1', '1', '0', '0', '0'\) is not positive definite$"),
        ((1, -1, -1, 0, 0, 4), SingularLatticeError,
         r"^G6 \('1', '-1', '-1', '0', '0', '4'\) is not positive definite$"),
        ((4, -1, -1, 0, 0, 2), SingularLatticeError, "is not positive definite"),
    ],
)
def test_g6_input_errors_name_the_numbers(g6, error, match) -> None:
    with pytest.raises(error, match=match):
        niggli_reduce_g6(g6)


def test_is_niggli_reduced_reads_exact_and_float_g6_and_names_bad_shapes() -> None:
    assert is_niggli_reduced([4.0, 9.0, 9.0, 9.0, 3.0, 4.0])
    assert is_niggli_reduced(np.array([1, 1, 1, 0, 0, 0]))
    assert not is_niggli_reduced([Fraction(1), 1, 1, Fraction(1, 10**30), 0, 0])  # mixed signs, exactly
    with pytest.raises(LatticeShapeError, match=r"^expected a G6 vector \(6,\) or a lattice \(3, 3\), got shape "
                                                r"\(2, 3\)$"):
        is_niggli_reduced([[1, 0, 0], [0, 1, 0]])


def test_reduction_problems_messages() -> None:
    lattice = [[1, 0, 0], [3, 1, 0], [0, 0, 2]]
    result = niggli_reduce(lattice)
    assert reduction_problems(lattice, result) == []
    floats = type(result)(lattice=result.lattice, transform=np.array(result.transform, dtype=float), g6=result.g6,
                          iterations=0)
    assert reduction_problems(lattice, floats) == [
        "transform is not a 3x3 integer matrix: [[1.0, 0.0, 0.0], [-3.0, 1.0, 0.0], [0.0, 0.0, 1.0]]"]
    wrong = type(result)(lattice=np.array(result.lattice) * 2, transform=result.transform,
                         g6=exact_g6(np.array(result.lattice) * 2), iterations=0)
    assert reduction_problems(lattice, wrong) == ["transform @ lattice != result.lattice"]
    bad_g6 = type(result)(lattice=result.lattice, transform=result.transform, g6=(1, 1, 1, 0, 0, 0), iterations=0)
    assert reduction_problems(lattice, bad_g6) == [
        "g6 ('1', '1', '1', '0', '0', '0') is not the metric of result.lattice"]


@pytest.mark.parametrize(
    ("num", "den", "q"),
    [(0, 5, 0), (7, 5, 1), (8, 5, 2), (-7, 5, -1), (-8, 5, -2), (5, 2, 3), (-5, 2, -3), (3, 2, 2), (1, 2, 1),
     (-1, 2, -1), (1, 3, 0), (-1, 3, 0), (10**30 + 1, 2 * 10**15, 500000000000000), (6, 3, 2)],
)
def test_round_div_rounds_to_nearest_ties_away_from_zero(num, den, q) -> None:
    assert _round_div(num, den) == q


@pytest.mark.parametrize(("x", "s"), [(-5, -1), (-1, -1), (0, 0), (1, 1), (2, 1), (10**40, 1)])
def test_sign(x, s) -> None:
    assert _sign(x) == s


A4_CASES = [t for t in itertools.product((-1, 0, 1), repeat=3) if 1 in t and t[0] * t[1] * t[2] <= 0]


@pytest.mark.parametrize("lmn", A4_CASES)
def test_a4_matrix_flips_positive_signs_and_the_first_zero_only_when_needed(lmn) -> None:
    m = _a4_matrix(*lmn)
    signs = [m[i][i] for i in range(3)]
    assert all(m[i][j] == 0 for i in range(3) for j in range(3) if i != j)
    assert signs[0] * signs[1] * signs[2] == 1
    flipped = [s * v for s, v in zip(signs, lmn)]
    assert all(v <= 0 for v in flipped)
    expected = [-1 if v > 0 else 1 for v in lmn]
    if expected[0] * expected[1] * expected[2] < 0:
        expected[lmn.index(0)] = -1
    assert signs == expected


def test_ragged_inputs_get_shape_errors_not_numpy_errors() -> None:
    """Ragged nested lists are read as object arrays, so the caller sees the library's own messages."""
    with pytest.raises(LatticeShapeError, match=r"got shape \(2,\)"):
        is_niggli_reduced([[1, 2], [3]])
    result = niggli_reduce(np.eye(3))
    ragged = type(result)(lattice=result.lattice, transform=[[1, 0, 0], [0, 1]], g6=result.g6, iterations=0)
    assert reduction_problems(np.eye(3), ragged) == ["transform is not a 3x3 integer matrix: [[1, 0, 0], [0, 1]]"]
