"""Unit tests of :func:`latticesym.structure._match.match` and its brute-force reference.

The reference comparison runs on small hand-built structures (2-4 atoms, low symmetry) with
``anchors="all"`` (the reference tries every anchor pair; the fast default ``"one"`` is
pymatgen's subset).  Three deliberately broken matchers must be caught by it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from latticesym.errors import LatticeError, LatticeShapeError, MatchBudgetError, NonFiniteLatticeError
from latticesym.structure import _match
from latticesym.structure._match import MatchResult, match
from latticesym.structure._match_reference import reference_match

L0 = np.array([[3.1, 0.0, 0.0], [0.4, 3.7, 0.0], [0.3, -0.5, 4.3]])
F0 = np.array([[0.0, 0.0, 0.0], [0.31, 0.42, 0.23], [0.61, 0.17, 0.72]])
Z0 = np.array([8, 8, 26])
M_SHEAR = np.array([[1, 2, 0], [0, 1, 0], [3, 6, 1]])  # det 1


def _rot(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_identical() -> None:
    r = match((L0, F0, Z0), (L0, F0, Z0))
    assert r.matched and r.rms == pytest.approx(0.0, abs=1e-12) and r.reason == "matched"


def test_rebased_rotated_permuted() -> None:
    p = np.array([2, 0, 1])
    b = ((M_SHEAR @ L0) @ _rot(1).T, (F0 @ np.linalg.inv(M_SHEAR))[p], Z0[p])
    r = match((L0, F0, Z0), b)
    assert r.matched and r.rms < 1e-9
    assert round(abs(np.linalg.det(r.transform))) == 1
    # the returned mapping relates the input cells: scale * T @ L_a @ R.T ~ L_b
    assert np.allclose(r.length_scale * r.transform @ r.lattice_a @ r.rotation.T, r.lattice_b, atol=1e-6)
    assert sorted(r.mapping.tolist()) == [0, 1, 2]


def _perturbed(noise: float, seed: int = 0) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    ell = (abs(np.linalg.det(L0)) / 3) ** (1 / 3)
    d = rng.normal(size=(3, 3))
    d -= d.mean(axis=0)
    d *= noise * ell / np.max(np.linalg.norm(d, axis=1))  # largest displacement = noise * ell
    return (L0, F0, Z0), (L0, (F0 @ L0 + d) @ np.linalg.inv(L0), Z0)


def test_perturbed_below_and_above_stol() -> None:
    r = match(*_perturbed(0.3))
    assert r.matched and r.max_dist <= 0.3 + 1e-9
    # two sites of distinct species moved by -+0.55 l along z (less than half the layer spacing
    # 4.3 A, so no other periodic image comes closer): the mean shift is zero, 0.55 > stol
    z = np.array([8, 14, 26])
    ell = (abs(np.linalg.det(L0)) / 3) ** (1 / 3)
    cart = F0 @ L0
    cart[0, 2] -= 0.55 * ell
    cart[1, 2] += 0.55 * ell
    far = match((L0, F0, z), (L0, cart @ np.linalg.inv(L0), z))
    assert far.max_dist > 0.5
    assert not far.matched and far.reason in ("sites", "rms only")


def test_strained_below_and_above_ltol() -> None:
    a = (L0, F0, Z0)
    assert match(a, (L0 @ np.diag([1.1, 1.0, 1 / 1.1]), F0, Z0)).n_lattice_mappings > 0
    r = match(a, (L0 @ np.diag([2.0, 1.0, 1 / 2.0]), F0, Z0))
    assert r.reason == "no lattice mapping" and not r.matched


def test_composition_and_empty_are_verdicts() -> None:
    r = match((L0, F0, Z0), (L0, F0, np.array([8, 26, 26])))
    assert r.reason == "composition" and not r.matched and math.isnan(r.rms)
    e = match((L0, np.zeros((0, 3)), np.zeros(0, dtype=int)), (L0, F0, Z0))
    assert e.reason == "empty" and not e.matched


@pytest.mark.parametrize(
    ("lat", "frac", "exc"),
    [
        (np.full((3, 3), np.nan), F0, NonFiniteLatticeError),
        (L0, np.where(F0 > 0.5, np.inf, F0), NonFiniteLatticeError),
        (np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), F0, LatticeError),
        (L0[:2], F0, LatticeShapeError),
    ],
)
def test_bad_input_typed(lat: Any, frac: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="structure"):
        match((lat, frac, Z0), (L0, F0, Z0))


def test_work_bound() -> None:
    needle = np.diag([0.05, 0.05, 200.0])
    with pytest.raises(MatchBudgetError, match="max_points"):
        match((needle, F0, Z0), (needle, F0, Z0), max_points=1000)


# ----------------------------------------------------------------- reference agreement
def _pairs() -> list[tuple[Any, Any]]:
    rng = np.random.default_rng(7)
    out = []
    for k in range(6):
        L = L0 + rng.normal(scale=0.3, size=(3, 3))
        F = rng.random((3, 3))
        a = (L, F, Z0)
        ell = (abs(np.linalg.det(L)) / 3) ** (1 / 3)
        for noise in (0.1, 0.3, 0.5):
            cart = F @ L + rng.normal(scale=noise * ell / math.sqrt(3), size=(3, 3))
            out.append((a, (L @ _rot(k).T, cart @ np.linalg.inv(L), Z0)))
        for s in (0.2, 0.28, 0.35):
            out.append((a, (L @ np.diag([1 + s, 1.0, 1 / (1 + s)]), F, Z0)))
        out.append((a, (M_SHEAR @ L, F @ np.linalg.inv(M_SHEAR), Z0)))
    return out


PAIRS = _pairs()


def _disagreements(fast: Callable[[Any, Any], MatchResult]) -> list[str]:
    bad = []
    for i, (a, b) in enumerate(PAIRS):
        r, q = fast(a, b), reference_match(a, b)
        same = r.matched == q.matched and r.matched_by_rms == q.matched_by_rms
        if q.matched_by_rms:
            same &= abs(r.rms - q.rms) <= 1e-9 * max(1.0, q.rms)
        if not same:
            bad.append(f"pair {i}: fast {r.matched} {r.rms:.6g}, reference {q.matched} {q.rms:.6g}")
    return bad


def _good(a: Any, b: Any) -> MatchResult:
    return match(a, b, anchors="all")


def test_fast_agrees_with_reference() -> None:
    assert _disagreements(_good) == []


def test_broken_rms_normalisation_caught() -> None:
    def broken(a: Any, b: Any) -> MatchResult:  # normalised by V^(1/3) instead of (V/N)^(1/3)
        r = _good(a, b)
        k = 3 ** (1 / 3)
        return replace(r, rms=r.rms / k, matched_by_rms=r.rms / k < 0.5)

    assert _disagreements(broken)


def test_skipped_lattice_mapping_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = _match.lattice_mappings

    def skip_first(*args: Any, **kw: Any) -> Any:
        return orig(*args, **kw)[1:]

    monkeypatch.setattr(_match, "lattice_mappings", skip_first)
    assert _disagreements(_good)


def test_off_by_one_tolerance_caught() -> None:
    def broken(a: Any, b: Any) -> MatchResult:  # lower length bound 1 - ltol instead of 1/(1 + ltol)
        return match(a, b, anchors="all", ltol=0.3 / (1 - 0.3))

    assert _disagreements(broken)


def test_match_batch_records_errors_and_agrees_with_match() -> None:
    from latticesym.structure import match_batch

    bad = (np.full((3, 3), np.nan), F0, Z0)
    a = [(L0, F0, Z0), bad, (L0, F0, Z0)]
    b = [(M_SHEAR @ L0, F0 @ np.linalg.inv(M_SHEAR), Z0), (L0, F0, Z0), (L0, F0, np.array([8, 26, 26]))]
    out = match_batch(a, b, workers=2, chunk_size=1)
    assert out.matched.tolist() == [True, False, False]
    assert out.errors == [1] and "NonFiniteLatticeError" in out.reason[1]
    assert out.reason[2] == "composition"
    assert out.rms[0] == pytest.approx(match(a[0], b[0]).rms, abs=1e-12)
