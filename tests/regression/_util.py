"""Helpers for the regression tests on real and transcribed data."""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any

import numpy as np

from latticesym.metric import g6_to_gram, lattice_from_parameters
from latticesym.reference import niggli_reduce, niggli_reduce_g6

# Conventional body-centred (I) cell -> primitive cell, rows convention.
PRIMITIVE_FROM_I = (
    (Fraction(-1, 2), Fraction(1, 2), Fraction(1, 2)),
    (Fraction(1, 2), Fraction(-1, 2), Fraction(1, 2)),
    (Fraction(1, 2), Fraction(1, 2), Fraction(-1, 2)),
)

_SMALL = np.array(list(itertools.product((-1, 0, 1), repeat=9))).reshape(-1, 3, 3)
SMALL_UNIMODULAR = _SMALL[np.abs(np.rint(np.linalg.det(_SMALL))) == 1]


def decimal(x: Any) -> Fraction:
    """The number as written in the source file (JSON decimal), exactly."""
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


def case_reduction(case: dict) -> Any:
    """Run the exact oracle on a transcribed peer case's input."""
    kind, x = case["input_kind"], case["input"]
    if kind == "g6":
        return niggli_reduce_g6([decimal(v) for v in x])
    if kind == "cell_params":
        rows = [[Fraction(v) for v in r] for r in lattice_from_parameters(*x)]
    else:
        rows = [[decimal(v) for v in r] for r in x]
    if case["centering"] == "I":
        rows = [[sum(PRIMITIVE_FROM_I[i][k] * rows[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    return niggli_reduce(rows)


def relative_g6_error(g6_a: Any, g6_b: Any) -> float:
    a = np.array([float(v) for v in g6_a])
    b = np.array([float(v) for v in g6_b])
    return float(np.abs(a - b).max() / max(b[:3].max(), 1e-300))


def equivalence_error(g6_a: Any, g6_b: Any) -> float:
    """min over small unimodular M of max|M G_a M^T - G_b| / max|G_b| (same lattice -> ~0)."""
    ga = g6_to_gram(np.array([float(v) for v in g6_a]))
    gb = g6_to_gram(np.array([float(v) for v in g6_b]))
    x = np.einsum("nij,jk,nlk->nil", SMALL_UNIMODULAR, ga, SMALL_UNIMODULAR)
    return float((np.abs(x - gb).max(axis=(1, 2)) / np.abs(gb).max()).min())


def boundary_distance(g6: Any) -> float:
    """Relative distance of a G6 vector to the nearest Niggli boundary (equality) hyperplane."""
    A, B, C, xi, eta, zeta = (float(v) for v in g6)
    gaps = [A - B, B - C, abs(xi) - B, abs(eta) - A, abs(zeta) - A, xi, eta, zeta, xi + eta + zeta + A + B]
    return min(abs(g) for g in gaps) / max(A, B, C)
