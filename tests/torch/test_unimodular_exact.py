"""Exact inverse and determinant of large integer transforms (``unimodular_inverse``, ``unimodular_det``).

The reducer's transforms of sheared cells reach entries of 1e12.  The float64 adjugate of such a
matrix rounds (its 2x2 minors are differences of products past 2**53), and so does the float64
determinant.  ``BasisInvariant`` carried the sites into every candidate basis with that inverse: on
a re-based copy of a sheared cell (transform entries ~4.5e8) the sites moved by a fraction of the
cell and the wrapped model's output changed (fuzz campaign, seed 4).  The cases here are the
minimal input of that finding and random products of elementary matrices checked against Python
integers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latticesym.torch as lt
from latticesym.torch import _frame_average
from latticesym.torch._reduce import _adjugate, _det3, _unimodular_inverse, unimodular_det


def _big_unimodulars(n: int, seed: int, max_entry: float = 2.0**52) -> list[list[list[int]]]:
    """Products of random elementary matrices (entries up to 3 each), kept while every entry of the
    matrix and of its inverse stays below ``max_entry``: Python integers."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        m = [[int(i == j) for j in range(3)] for i in range(3)]
        for _ in range(int(rng.integers(8, 110))):
            i, j = (int(v) for v in rng.choice(3, 2, replace=False))
            k = int(rng.integers(-3, 4))
            m[i] = [m[i][c] + k * m[j][c] for c in range(3)]
        if max(abs(v) for r in m for v in r) < max_entry and max(abs(v) for r in _adj(m) for v in r) < max_entry:
            out.append(m)
    return out


def _adj(m: list[list[int]]) -> list[list[int]]:
    """The adjugate in Python integers (exact)."""
    return [[m[(j + 1) % 3][(i + 1) % 3] * m[(j + 2) % 3][(i + 2) % 3]
             - m[(j + 1) % 3][(i + 2) % 3] * m[(j + 2) % 3][(i + 1) % 3] for j in range(3)] for i in range(3)]


def _det(m: list[list[int]]) -> int:
    a = _adj(m)
    return sum(m[0][j] * a[j][0] for j in range(3))


MATS = _big_unimodulars(400, seed=11)


def test_sample_reaches_past_float_exactness() -> None:
    """The sample is hostile: entries past 2**31 (the int64 path's limit) and past 2**40."""
    big = [max(abs(v) for r in m for v in r) for m in MATS]
    assert sum(b >= 2**31 for b in big) > 50 and max(big) > 2**40


@pytest.mark.parametrize("host_select", [True, False], ids=["host-select", "where"])
def test_inverse_is_exact_in_float64(host_select: bool) -> None:
    M = torch.tensor(MATS, dtype=torch.float64)
    got = _unimodular_inverse(M, host_select=host_select)
    want = torch.tensor([_adj(m) for m in MATS], dtype=torch.float64)
    assert torch.equal(got, want)
    assert torch.equal(lt.unimodular_inverse(M), want)


def test_inverse_int64_and_shapes() -> None:
    M = torch.tensor(MATS, dtype=torch.int64)
    want = torch.tensor([_adj(m) for m in MATS], dtype=torch.int64)
    assert lt.unimodular_inverse(M).dtype == torch.int64
    assert torch.equal(lt.unimodular_inverse(M), want)
    assert torch.equal(lt.unimodular_inverse(M[7]), want[7])  # a single (3, 3) matrix
    assert torch.equal(lt.unimodular_inverse(M[:40].reshape(4, 10, 3, 3)), want[:40].reshape(4, 10, 3, 3))
    assert lt.unimodular_inverse(M[:0]).shape == (0, 3, 3)


@pytest.mark.parametrize("host_select", [True, False], ids=["host-select", "where"])
def test_non_finite_entries_propagate(host_select: bool) -> None:
    M = torch.tensor(MATS[:3], dtype=torch.float64)
    M[1, 2, 0] = math.nan
    M[2, 0, 0] = math.inf
    got = _unimodular_inverse(M, host_select=host_select)
    assert torch.equal(got[0], torch.tensor(_adj(MATS[0]), dtype=torch.float64))
    assert not bool(torch.isfinite(got[1]).all()) and not bool(torch.isfinite(got[2]).all())


def test_plain_float_adjugate_and_det_are_caught() -> None:
    """The check bites: the float64 cross-product adjugate and cofactor determinant (the old code)
    differ from the exact values on this sample."""
    M = torch.tensor(MATS, dtype=torch.float64)
    want = torch.tensor([_adj(m) for m in MATS], dtype=torch.float64)
    wrong_adj = int((_adjugate(M) != want).flatten(1).any(1).sum())
    wrong_det = int((_det3(M).round() != torch.tensor([float(_det(m)) for m in MATS])).sum())
    assert wrong_adj > 20 and wrong_det > 20


def test_det_is_exact() -> None:
    signs = torch.tensor([1.0 if i % 2 else -1.0 for i in range(len(MATS))], dtype=torch.float64)
    M = torch.tensor(MATS, dtype=torch.float64)
    M[:, 0] *= signs[:, None]  # det -1 on every other matrix
    want = torch.tensor([float(_det(m)) for m in MATS], dtype=torch.float64) * signs
    assert set(want.tolist()) == {1.0, -1.0}
    assert torch.equal(unimodular_det(M), want)
    assert torch.equal(unimodular_det(M.to(torch.int64)), want)


# The minimal input of the fuzz finding: a "sheared" cell (rows ~4e4, shortest vector ~6.6) with one site,
# and a re-based copy M @ L (M = [[0, 3, -1], [-1, 1, 3], [1, -3, -2]], sites f @ inv(M) + integers).
L1 = [[22654.587013172924, 11825.566522730303, -17046.714147736922],
      [28153.69149371924, 33413.12892162906, -8207.76020454373],
      [-31282.360116262655, 20829.64058708322, 49301.58030750158]]
F1 = [[0.010390592685884825, 0.4767875100927137, 0.9390022196881597]]
L2 = [[115743.43459742039, 79409.74617780396, -73924.86092113277],
      [-88347.97586824164, 84076.48416014842, 156743.69486569794],
      [758.2327645405094, -130073.10141632333, -91026.59414910889]]
F2 = [[1.427526098270227, -0.6126904966698437, -0.6022999039839592]]


def _model(lattice: torch.Tensor, frac: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    # reads the basis (first row) and the sites, periodically: neither basis- nor rotation-invariant
    w = species.reshape(-1).to(lattice.dtype)[:, None] / 100.0
    ang = 2 * math.pi * frac
    return torch.cat([lattice[0] * lattice[0], (w * torch.cos(ang)).sum(0), (w * torch.sin(ang)).sum(0)])


def _outputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    wrapped = lt.BasisInvariant(_model)
    species = torch.tensor([77])
    a = wrapped(torch.tensor(L1, dtype=torch.float64), torch.tensor(F1, dtype=torch.float64), species).detach()
    b = wrapped(torch.tensor(L2, dtype=torch.float64), torch.tensor(F2, dtype=torch.float64), species).detach()
    return a, b, wrapped.last_plan.transform


def test_basis_invariant_on_a_rebased_sheared_cell() -> None:
    a, b, U = _outputs()
    assert int(U.abs().max()) > 10**8  # the copy's candidate transform: its float adjugate rounds
    # the sites: the same crystal, so the same sites in the reduced basis (to rounding)
    torch.testing.assert_close(a[3:], b[3:], rtol=0, atol=1e-9)
    # the lattice: the copy's rows are rounded (1.5e-11), and the transform (4.5e8) carries that into
    # the reduced basis: 1.3e-5 relative on the first row's squares, measured; 1e-4 allowed
    torch.testing.assert_close(a[:3], b[:3], rtol=1e-4, atol=1e-4 * float(a[:3].abs().max()))


def test_rounded_inverse_in_the_wrapper_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check catches the old float64 adjugate and determinant."""
    monkeypatch.setattr(_frame_average, "unimodular_inverse", _adjugate)
    monkeypatch.setattr(_frame_average, "unimodular_det", lambda m, adj: _det3(m).round())
    a, b, _ = _outputs()
    assert (a[3:] - b[3:]).abs().max() > 1e-3
