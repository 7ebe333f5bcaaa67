"""Exact Niggli conditions on a G6 vector, from International Tables A (independent of the reducer).

The conditions are transcribed from International Tables for Crystallography Vol. A,
§3.1.3 (Table 3.1.3.1 / 9.2.5.1 of earlier editions), rewritten in the doubled G6 quantities
:math:`\\xi = 2\\,b\\cdot c,\\ \\eta = 2\\,a\\cdot c,\\ \\zeta = 2\\,a\\cdot b`.  This module does *not*
use the reducer's step logic: the reducer and this predicate check each other.

Main conditions (both types)::

    A <= B <= C,   |xi| <= B,   |eta| <= A,   |zeta| <= A
    type I : xi > 0, eta > 0, zeta > 0
    type II: xi <= 0, eta <= 0, zeta <= 0, and |xi| + |eta| + |zeta| <= A + B

Special (boundary) conditions::

    A == B            ->  |xi| <= |eta|
    B == C            ->  |eta| <= |zeta|
    type I : xi == B  ->  zeta <= 2 eta;   eta == A -> zeta <= 2 xi;   zeta == A -> eta <= 2 xi
    type II: xi == -B ->  zeta == 0;       eta == -A -> zeta == 0;     zeta == -A -> eta == 0
             |xi| + |eta| + |zeta| == A + B  ->  2A <= 2|eta| + |zeta|
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

__all__ = ["niggli_violations"]


def niggli_violations(g6: Sequence[Fraction | int]) -> list[str]:
    """Names of the Niggli conditions that an exact G6 vector violates (empty if reduced).

    Parameters
    ----------
    g6 : sequence of 6 exact rationals
        ``(A, B, C, xi, eta, zeta)``.

    Examples
    --------
    >>> niggli_violations((4, 9, 9, 9, 3, 4))
    []
    >>> niggli_violations((9, 4, 9, 0, 0, 0))
    ['A <= B']
    """
    A, B, C, xi, eta, zeta = (Fraction(x) for x in g6)
    bad: list[str] = []
    if A <= 0 or B <= 0 or C <= 0:
        bad.append("A, B, C > 0")
    if not A <= B:
        bad.append("A <= B")
    if not B <= C:
        bad.append("B <= C")
    if not abs(xi) <= B:
        bad.append("|xi| <= B")
    if not abs(eta) <= A:
        bad.append("|eta| <= A")
    if not abs(zeta) <= A:
        bad.append("|zeta| <= A")
    type_one = xi > 0 and eta > 0 and zeta > 0
    type_two = xi <= 0 and eta <= 0 and zeta <= 0
    if not (type_one or type_two):
        bad.append("signs: all > 0 (type I) or all <= 0 (type II)")
        return bad
    if A == B and not abs(xi) <= abs(eta):
        bad.append("A == B -> |xi| <= |eta|")
    if B == C and not abs(eta) <= abs(zeta):
        bad.append("B == C -> |eta| <= |zeta|")
    if type_one:
        if xi == B and not zeta <= 2 * eta:
            bad.append("xi == B -> zeta <= 2 eta")
        if eta == A and not zeta <= 2 * xi:
            bad.append("eta == A -> zeta <= 2 xi")
        if zeta == A and not eta <= 2 * xi:
            bad.append("zeta == A -> eta <= 2 xi")
    else:
        s = abs(xi) + abs(eta) + abs(zeta)
        if not s <= A + B:
            bad.append("|xi| + |eta| + |zeta| <= A + B")
        if xi == -B and zeta != 0:
            bad.append("xi == -B -> zeta == 0")
        if eta == -A and zeta != 0:
            bad.append("eta == -A -> zeta == 0")
        if zeta == -A and eta != 0:
            bad.append("zeta == -A -> eta == 0")
        if s == A + B and not 2 * abs(eta) + abs(zeta) >= 2 * A:
            bad.append("|xi|+|eta|+|zeta| == A+B -> 2A <= 2|eta| + |zeta|")
    return bad
