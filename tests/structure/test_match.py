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

from latticesym.errors import (
    LatticeError,
    LatticeShapeError,
    MatchBudgetError,
    NonFiniteLatticeError,
    SingularLatticeError,
)
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


# ----------------------------------------------------------------- compiled vs numpy backend
def _backend_pairs() -> list[tuple[Any, Any]]:
    from latticesym.datasets import load_structures

    rng = np.random.default_rng(11)
    out = list(PAIRS)
    for name in ("perov_5", "carbon_24"):
        structs = [s for s in load_structures(name) if len(s.species) <= 12][:6]
        for s in structs:
            L, f, z = np.asarray(s.lattice), np.asarray(s.frac_coords), np.asarray(s.species)
            ell = (abs(np.linalg.det(L)) / len(z)) ** (1 / 3)
            for noise in (0.05, 0.3, 0.6):
                cart = f @ L + rng.normal(scale=noise * ell / math.sqrt(3), size=(len(z), 3))
                out.append(((L, f, z), (L @ _rot(len(out)).T, cart @ np.linalg.inv(L), z)))
    return out


BACKEND_PAIRS = _backend_pairs()


def _backend_diffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pairs where the compiled backend differs from the numpy path (verdicts, reasons, counts,
    rms to 1e-9, transform and site mapping)."""
    fast = [match(a, b) for a, b in BACKEND_PAIRS]
    with monkeypatch.context() as m:
        m.setattr(_match, "SITE_BACKEND", "numpy")
        slow = [match(a, b) for a, b in BACKEND_PAIRS]
    assert sum(r.matched for r in slow) >= 10 and sum(not r.matched for r in slow) >= 10
    bad = []
    for i, (x, y) in enumerate(zip(fast, slow)):
        same = (x.matched, x.matched_by_rms, x.reason, x.n_candidates, x.n_lattice_mappings) == (
            y.matched, y.matched_by_rms, y.reason, y.n_candidates, y.n_lattice_mappings)
        if same and y.matched_by_rms:
            same = abs(x.rms - y.rms) <= 1e-9 * max(1.0, y.rms)
            same &= np.array_equal(x.transform, y.transform) and np.array_equal(x.mapping, y.mapping)
        if not same:
            bad.append(i)
    return bad


def test_compiled_backend_agrees_with_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numba kernels (lattice mappings, setup, site scan, conflict costs; conflicts go to
    scipy's assignment) give the numpy path's answers."""
    assert _backend_diffs(monkeypatch) == []


def test_broken_compiled_backend_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan kernel that reads one site of b displaced by 0.02 (fractional) is caught."""
    from latticesym.structure import _match_kernel

    good = _match_kernel.scan()

    def broken(fa_k: Any, fb: Any, *rest: Any) -> Any:
        fb2 = fb.copy()
        fb2[0] += 0.02
        return good(fa_k, fb2, *rest)

    monkeypatch.setattr(_match_kernel, "scan", lambda: broken)
    assert len(_backend_diffs(monkeypatch)) >= 5


# ----------------------------------------------------------------- regression: noisy primitive cell
# A Carbon-24 test-split cell (8 atoms) and a copy with Gaussian site noise 0.05 (V/N)^(1/3): its
# primitive cell has 2 sites (pymatgen's get_primitive_structure).  Niggli reducing between the
# primitive-search steps stopped at 4 sites ("site count", no match); pymatgen matches, rms 0.0166.
C24_L = np.array([[3.2290992433852623, 0.0, -0.43688747609507594],
                  [1.9914965458869374, 3.7054016816646826, 2.42164864778872], [0.0, 0.0, 4.85721]])
C24_F = np.array([[0.29875581, 0.78110063, 0.90372478], [0.2988222, 0.78106981, 0.40374412],
                  [0.30026406, 0.11375931, 0.23751155], [0.2987389199999999, 0.2811005, 0.40372239],
                  [0.30019768, 0.11379013, 0.73749221], [0.30027125999999993, 0.61375767, 0.23750818],
                  [0.30028096, 0.61375944, 0.73751394], [0.29874862, 0.28110227, 0.90372815]])
C24_NOISY = np.array([[0.2920165285841929, 0.7600467520104527, 0.9235296444544676],
                      [0.32178226207932187, 0.760216426842155, 0.45239882449132696],
                      [0.28432725720140445, 0.09966840749496106, 0.2464979281799401],
                      [0.34570529222735874, 0.275509258746459, 0.4177279880398296],
                      [0.32950821456426355, 0.12879123694935568, 0.7369545246255989],
                      [0.29162701587135464, 0.6270057684577687, 0.222998095684206],
                      [0.3001116782835866, 0.6186550819809594, 0.760013158474227],
                      [0.28269500133379716, 0.2797362105913122, 0.8903006153725213]])


def test_noisy_carbon24_primitive_cell_regression() -> None:
    from latticesym.structure._match import prepare_structure

    z = np.full(8, 6)
    assert prepare_structure((C24_L, C24_F, z)).num_sites == 2
    assert prepare_structure((C24_L, C24_NOISY, z)).num_sites == 2
    r = match((C24_L, C24_F, z), (C24_L, C24_NOISY, z))
    assert r.matched and r.rms == pytest.approx(0.0166264, abs=1e-6)  # pymatgen: 0.016626...
    pmg = pytest.importorskip("pymatgen.core")
    s = pmg.Structure(pmg.Lattice(C24_L), [6] * 8, C24_NOISY)
    assert len(s.get_reduced_structure().get_primitive_structure()) == 2


# ----------------------------------------------------------------- bad input (issue 11, point 7)
def test_unequal_composition_is_fast_no_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """A composition mismatch is decided before any reduction (no Niggli, no primitive search)."""
    def boom(*args: Any, **kw: Any) -> Any:
        raise AssertionError("reduction reached for a composition mismatch")

    monkeypatch.setattr(_match, "_prepare_arrays", boom)
    r = match((L0, F0, Z0), (L0, F0[:2], Z0[:2]))
    assert r.reason == "composition" and not r.matched and not r.matched_by_rms and math.isnan(r.rms)
    assert match((L0, F0, Z0), (L0, F0, ["O", "O", "Co"])).reason == "composition"
    e = match((L0, F0, Z0), (L0, np.zeros((0, 3)), []))
    assert e.reason == "empty" and math.isnan(e.rms)


@pytest.mark.parametrize(
    ("b", "exc", "text"),
    [
        ((np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), F0, Z0), SingularLatticeError, "singular"),
        ((np.zeros((3, 3)), F0, Z0), SingularLatticeError, "singular"),
        ((np.where(np.eye(3) > 0, np.nan, L0), F0, Z0), NonFiniteLatticeError, "non-finite"),
        ((L0, np.where(F0 > 0.6, np.nan, F0), Z0), NonFiniteLatticeError, r"sites \[2\]"),
        ((L0, F0, ["O", "O", "Xx"]), LatticeShapeError, "Xx"),
        ((L0, F0, Z0[:2]), LatticeShapeError, "2 species for 3 sites"),
        ((L0, F0[:, :2], Z0), LatticeShapeError, "frac has shape"),
        ("not a structure", LatticeShapeError, "expected"),
    ],
)
def test_bad_input_typed_with_numbers(b: Any, exc: type[Exception], text: str) -> None:
    with pytest.raises(exc, match=text) as info:
        match((L0, F0, Z0), b)
    assert "structure b" in str(info.value)
    assert issubclass(exc, LatticeError)


@pytest.mark.parametrize(
    ("kw", "text"),
    [({"max_points": 10}, "max_points"), ({"max_triples": 1}, "max_triples"),
     ({"max_mappings": 1}, "max_mappings"), ({"max_candidates": 1}, "max_candidates")],
)
def test_each_work_bound_raises(kw: dict[str, int], text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every per-pair bound is enforced, on the compiled and on the numpy path."""
    cubic = (np.eye(3) * 3.0, np.array([[0.0, 0.0, 0.0]]), [6])  # 48 lattice mappings onto itself
    for backend in ("numba", "numpy"):
        monkeypatch.setattr(_match, "SITE_BACKEND", backend)
        with pytest.raises(MatchBudgetError, match=text):
            match(cubic, cubic, **kw)
    monkeypatch.setattr(_match, "SITE_BACKEND", "numba")
    out = _match.match_batch([cubic], [cubic], workers=1, **kw)
    assert out.errors == [0] and "MatchBudgetError" in out.reason[0]


def test_needle_cell_bounded_by_default() -> None:
    """A needle-like cell (1e4 aspect) with default bounds: a typed error, not minutes of search."""
    needle = np.diag([0.02, 0.02, 200.0])
    with pytest.raises(MatchBudgetError, match="max_points"):
        match((needle, F0, Z0), (needle, F0, Z0))


def test_needle_cell_point_box_beyond_int64_is_a_budget_error() -> None:
    """Fuzz finding (issue 13): the coefficient box of a needle cell overflowed int64, went negative
    past the max_points check and reached the kernel (numpy's plain 'negative dimensions')."""
    from latticesym.errors import MatchBudgetError
    from latticesym.structure._match import _point_box

    with pytest.raises(MatchBudgetError, match=r"needs 2\.028e\+31 points"):
        _point_box(np.diag([1e-10, 1.0, 1e10]), 1.3e10, 10**6)
    assert _point_box(np.eye(3), 2.5, 10**6).tolist() == [2, 2, 2]
