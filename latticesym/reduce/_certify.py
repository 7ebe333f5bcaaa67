"""Independent checks of a float Niggli result, in exact arithmetic (the tester of the reducer).

:func:`result_violations` does not reuse the reducer's step logic: it re-derives everything from
the input with ``Fraction`` arithmetic -- the transform is integer with ``det == +1``, the returned
lattice is ``transform @ input`` rounded faithfully (each entry within ``2u`` of the exact value),
the returned G6 is the metric of that lattice, and the G6 satisfies the Niggli conditions of
International Tables A relaxed by the tolerance ``e``.  Tests run it on every result and on
deliberately broken reducers (it must complain about those).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from latticesym.reduce._accurate import UNIT_ROUNDOFF

__all__ = ["relaxed_niggli_violations", "result_violations"]


def relaxed_niggli_violations(g6: Any, e: Any) -> list[str]:
    """Main Niggli conditions (International Tables A, §3.1.3) that ``g6`` violates by more than ``e``.

    Relaxed: ``x <= y`` is checked as ``x <= y + e``; the signs must be those of type I (all of
    ``xi, eta, zeta > -e``) or of type II (all ``<= e``, and then
    ``|xi| + |eta| + |zeta| <= A + B + e``).  Exact arithmetic on the values given.
    """
    A, B, C, xi, eta, zeta = (Fraction(v) for v in g6)
    e = Fraction(e)
    bad = []
    if not (A > 0 and B > 0 and C > 0):
        bad.append("A, B, C > 0")
    for name, x, y in (("A <= B", A, B), ("B <= C", B, C), ("|xi| <= B", abs(xi), B),
                       ("|eta| <= A", abs(eta), A), ("|zeta| <= A", abs(zeta), A)):
        if not x <= y + e:
            bad.append(name)
    type_one = xi > -e and eta > -e and zeta > -e
    type_two = xi <= e and eta <= e and zeta <= e
    if not (type_one or type_two):
        bad.append("signs: type I (all > -e) or type II (all <= e)")
    elif not type_one and not abs(xi) + abs(eta) + abs(zeta) <= A + B + e:
        bad.append("|xi| + |eta| + |zeta| <= A + B")
    return bad


def result_violations(lattice_in: Any, transform: Any, lattice_out: Any, g6: Any, e: Any) -> list[str]:
    """Everything wrong with one float result ``(transform, lattice_out, g6)`` for ``lattice_in``.

    Empty list: certified.  ``e`` is the absolute tolerance the result claims (G6 units).
    """
    bad: list[str] = []
    t = np.asarray(transform)
    integral = t.dtype.kind in "iu" or (t.dtype.kind == "f" and bool(np.all(np.isfinite(t))) and
                                         all(float(v).is_integer() for v in t.ravel()))
    if t.shape != (3, 3) or not integral:
        return ["transform is not a 3x3 integer matrix"]
    ti = [[int(v) for v in row] for row in t]
    det = (ti[0][0] * (ti[1][1] * ti[2][2] - ti[1][2] * ti[2][1])
           - ti[0][1] * (ti[1][0] * ti[2][2] - ti[1][2] * ti[2][0])
           + ti[0][2] * (ti[1][0] * ti[2][1] - ti[1][1] * ti[2][0]))
    if det != 1:
        bad.append(f"det(transform) = {det}, not +1")
    x = [[Fraction(float(v)) for v in row] for row in np.asarray(lattice_in, dtype=np.float64)]
    exact = [[sum((ti[i][k] * x[k][j] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]
    out = [[Fraction(float(v)) for v in row] for row in np.asarray(lattice_out, dtype=np.float64)]
    u = Fraction(UNIT_ROUNDOFF)
    for i in range(3):
        for j in range(3):
            if abs(out[i][j] - exact[i][j]) > 2 * u * abs(exact[i][j]) + Fraction(2.0**-1070):
                bad.append(f"lattice[{i}, {j}] = {float(out[i][j])!r} is not transform @ input "
                           f"({float(exact[i][j])!r}) to rounding")
    gram = [[sum((out[i][k] * out[j][k] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]
    g6_exact = (gram[0][0], gram[1][1], gram[2][2], 2 * gram[1][2], 2 * gram[0][2], 2 * gram[0][1])
    scale = max(gram[0][0], gram[1][1], gram[2][2])
    for k, (a, b) in enumerate(zip(g6, g6_exact)):
        if abs(Fraction(float(a)) - b) > 16 * u * scale:
            bad.append(f"g6[{k}] = {float(a)!r} is not the metric of the lattice ({float(b)!r})")
    # the exact metric of transform @ input must be reduced within e (plus the rounding of the output)
    gram_x = [[sum((exact[i][k] * exact[j][k] for k in range(3)), Fraction(0)) for j in range(3)] for i in range(3)]
    g6_x = (gram_x[0][0], gram_x[1][1], gram_x[2][2], 2 * gram_x[1][2], 2 * gram_x[0][2], 2 * gram_x[0][1])
    slack = Fraction(e) * Fraction(5, 4) + 64 * u * max(g6_x[0], g6_x[1], g6_x[2])
    bad.extend(relaxed_niggli_violations(g6_x, slack))
    return bad
