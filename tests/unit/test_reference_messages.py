"""The exact oracle's message formatting: numbers of any size, printed without passing through float64.

``approx_str`` / ``exact_str`` put the numbers into the oracle's error messages (a singular basis
with entries near 1e300 has Gram entries near 1e600).  Their exact outputs are pinned here, so a
mutated sign test, suffix or size threshold is caught (mutation testing found them unchecked).
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest
import sympy

from latticesym.errors import SingularLatticeError
from latticesym.reference import niggli_reduce
from latticesym.reference._exact import _MAX_EXACT_BITS, approx_str, exact_str


@pytest.mark.parametrize(("x", "sqrt", "text"), [
    (F(10**600), True, "1e+300"),      # past float64, printed from the Decimal
    (F(-4), True, "2i"),               # the square root of a negative number
    (F(0), True, "0"),                 # no "i" on zero
    (F(1, 4), True, "0.5"),            # a root below 1 is not negated
    (F(1, 3), False, "0.333333"),      # 6 significant digits
    (F(-5, 2), False, "-2.5"),
    (F(10**400), False, "1e+400"),
    (F(1, 10**400), False, "1e-400"),
    (F(0), False, "0"),
    (F(1234567), False, "1.23457e+06"),    # float64's exponent format in its range (Decimal: "1.23457e+6")
    (F(12345, 10**9), False, "1.2345e-05"),  # (Decimal: "0.000012345")
])
def test_approx_str(x: F, sqrt: bool, text: str) -> None:
    assert approx_str(x, sqrt=sqrt) == text


def test_approx_str_of_non_rationals_is_their_own_form() -> None:
    assert approx_str(sympy.sqrt(2)) == "sqrt(2)"
    assert approx_str(2.5) == "2.5"


def test_exact_str_threshold() -> None:
    assert exact_str(F(1, 3)) == "1/3"
    exact = F(2**_MAX_EXACT_BITS - 1)  # exactly _MAX_EXACT_BITS bits: still printed in full
    assert exact_str(exact) == str(exact)
    assert exact_str(F(2**_MAX_EXACT_BITS)).startswith("~2.6299e+4214")
    assert exact_str(F(-(2**_MAX_EXACT_BITS), 3)) == "~" + approx_str(F(-(2**_MAX_EXACT_BITS), 3))
    assert exact_str(F(-(2**_MAX_EXACT_BITS), 3)).startswith("~-8.76633e+4213")


def test_singular_message_carries_the_numbers() -> None:
    with pytest.raises(SingularLatticeError) as info:
        niggli_reduce([[1e300, 0, 0], [2e300, 0, 0], [0, 0, 1]])
    msg = str(info.value)
    assert "det(L @ L.T) = 0 exactly" in msg and "vector lengths 1e+300, 2e+300, 1)" in msg
