"""Tests of :func:`latticesym.structure.csp_metrics` (DiffCSP match rate / RMSE, lattice errors).

- DiffCSP semantics on hand-made cases (validity, best of k, denominators, ragged arrays);
- marker invariance: predictions re-based by GL(3, Z), rotated, with atoms permuted and moved by
  lattice vectors give the same metrics (Hypothesis draws the basis changes);
- agreement with a Python loop over pymatgen's ``StructureMatcher`` that follows DiffCSP's
  ``compute_metrics.py`` (``RecEval`` / ``RecEvalBatch``) on a real split sample (bundled in the
  default run, the ``../shared/data`` test splits under ``slow``), to the printed precision;
- three deliberately broken metrics (RMSE averaged over all references instead of the matched
  ones; best of k taking the max; validity without the distance check) are caught by that
  agreement check.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latticesym
from latticesym import datasets, strategies
from latticesym.errors import LatticeShapeError, NonFiniteLatticeError
from latticesym.structure import _metrics, csp_metrics, ragged_to_structures, structure_validity
from latticesym.testing import transform_structure

L0 = np.diag([3.0, 4.0, 5.0])
F0 = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
REF = (L0, F0, np.array([11, 17]))
M1 = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])


def _rot(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


# --------------------------------------------------------------------------- sample builder
def _displace(s: Any, noise: float, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """Every atom moved by ``noise * (V/N)^(1/3)`` in a random direction (mean shift removed)."""
    L, f, z = np.asarray(s[0], float), np.asarray(s[1], float), np.asarray(s[2])
    ell = (abs(np.linalg.det(L)) / len(z)) ** (1 / 3)
    d = rng.normal(size=f.shape)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d = d * noise * ell
    d -= d.mean(axis=0)
    return L, (f @ L + d) @ np.linalg.inv(L), z


def _cell(s: Any) -> tuple[Any, Any, Any]:
    return np.asarray(s.lattice, float), np.asarray(s.frac_coords, float), np.asarray(s.species)


def _variant(ref: Any, other: Any, kind: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """Prediction ``kind`` for a reference: matches, near misses, failures and invalid structures."""
    L, f, z = _cell(ref)
    if kind == 0:  # same crystal, another basis and orientation, atoms permuted, tiny noise
        M = np.asarray(latticesym.groups.random_unimodular(1, max_entry=2, rng=rng)[0])
        L2, f2, z2 = transform_structure(L, f, z, M, rotation=_rot(int(rng.integers(1 << 30))),
                                         permutation=rng.permutation(len(z)))
        return _displace((L2, f2, z2), 0.02, rng)
    if kind == 1:
        return _displace((L, f, z), 0.15, rng)
    if kind == 2:
        return _displace((L @ np.diag([1.05, 0.97, 1.02]), f, z), 0.35, rng)
    if kind == 3:  # past stol: a finite raw rms that is not a match
        return _displace((L, f, z), 0.6, rng)
    if kind == 4:  # strained past ltol
        return L @ np.diag([1.6, 1.0, 1 / 1.6]), f, z
    if kind == 5:  # invalid: two atoms 0.2 A apart
        f2 = f.copy()
        f2[1] = f2[0] + np.array([0.2, 0.0, 0.0]) @ np.linalg.inv(L)
        return L, f2, z
    if kind == 6:  # another structure of the same split
        return _cell(other)
    return np.full((3, 3), np.nan), f, z  # kind 7: a NaN lattice


def _sample(refs: Sequence[Any], k: int, seed: int,
            kinds: Sequence[int] = (0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 7, 1)) -> list[list[tuple[Any, Any, Any]]]:
    rng = np.random.default_rng(seed)
    n = len(refs)
    return [[_variant(refs[i], refs[(i + 1) % n], kinds[(i * 5 + j * 7) % len(kinds)], rng) for i in range(n)]
            for j in range(k)]


def _bundled_refs(n_each: int) -> list[Any]:
    return datasets.load_structures("perov_5")[:n_each] + datasets.load_structures("carbon_24")[:n_each]


# --------------------------------------------------------------------------- DiffCSP's loop over pymatgen
def diffcsp_loop(samples: Sequence[Sequence[Any]], refs: Sequence[Any], *, deadline: float = 10.0) -> dict[str, Any]:
    """DiffCSP ``compute_metrics.py`` semantics with pymatgen's StructureMatcher, one Python loop.

    Crystals are built the way DiffCSP's ``Crystal`` builds them (``Lattice.from_parameters`` of the
    lengths and angles, NaN -> not constructed) and are valid by ``structure_validity`` (distance
    matrix >= 0.5 A, volume >= 0.1).  One sample: ``RecEval`` (prediction and reference valid); k
    samples: ``RecEvalBatch`` (prediction valid), best = min rms.  A pymatgen call over ``deadline``
    seconds is reported (none is expected on these cells).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    sm = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)

    def crystal(x: Any) -> Any:
        L, f, z = np.asarray(x[0], float), np.asarray(x[1], float), np.asarray(x[2])
        if not (np.all(np.isfinite(L)) and np.all(np.isfinite(f))):
            return None
        try:
            s = Structure(Lattice.from_parameters(*Lattice(L).parameters), z.tolist(), f)
        except Exception:
            return None
        if s.volume < 0.1:
            return None
        dm = s.distance_matrix + np.diag(np.ones(len(s)) * 10.5)
        return s if dm.min() >= 0.5 else None

    R = [crystal(_cell(r) if hasattr(r, "lattice") else r) for r in refs]
    k = len(samples)
    table = np.full((k, len(refs)), np.nan)
    slow = 0
    for j in range(k):
        for i, p in enumerate(samples[j]):
            P = crystal(p)
            if P is None or (R[i] is None and k == 1):
                continue
            t0 = time.perf_counter()
            try:
                out = sm.get_rms_dist(P, R[i])
            except Exception:
                out = None
            slow += time.perf_counter() - t0 > deadline
            if out is not None:
                table[j, i] = out[0]
    best = np.where(np.isfinite(table), table, np.inf).min(axis=0)
    ok = np.isfinite(best)
    return {"pair_rms": table, "match_rate": ok.sum() / len(refs),
            "rmse": float(best[ok].mean()) if ok.any() else math.nan, "slow_calls": slow}


def _printed(rate: float, rmse: float) -> tuple[str, str]:
    return f"{100 * rate:.2f}", ("n/a" if not math.isfinite(rmse) else f"{rmse:.4f}")


def agreement_problems(ours: Any, theirs: dict[str, Any]) -> list[str]:
    """What differs between our metrics and the pymatgen loop's (empty: they agree as printed)."""
    problems = []
    if _printed(ours.match_rate, ours.rmse) != _printed(theirs["match_rate"], theirs["rmse"]):
        problems.append(f"printed metrics {_printed(ours.match_rate, ours.rmse)} vs pymatgen "
                        f"{_printed(theirs['match_rate'], theirs['rmse'])}")
    a, b = np.isfinite(ours.pair_rms), np.isfinite(theirs["pair_rms"])
    for j, i in np.argwhere(a != b):
        problems.append(f"pair ({j}, {i}): ours {ours.pair_rms[j, i]:.6g} ({ours.reasons[j][i]}), "
                        f"pymatgen {theirs['pair_rms'][j, i]:.6g}")
    both = a & b
    diff = np.abs(ours.pair_rms[both] - theirs["pair_rms"][both])
    if diff.size and diff.max() > 1e-4 * max(1.0, float(np.max(theirs["pair_rms"][both]))):
        problems.append(f"pair rms differ by up to {diff.max():.3g}")
    return problems


# --------------------------------------------------------------------------- semantics
def test_doc_example_and_denominators() -> None:
    good = (M1 @ L0, F0 @ np.linalg.inv(M1), [11, 17])
    bad = (np.diag([3.0, 4.0, 9.0]), F0, [11, 17])
    m = csp_metrics([good, bad], [REF, REF])
    assert m.match_rate == 0.5 and m.n_matched == 1 and m.n_references == 2 and m.k == 1
    assert m.rmse == pytest.approx(0.0, abs=1e-12)  # the mean over the matched one only
    assert m.reasons[0] == ("matched", "no lattice mapping")
    assert np.isnan(m.rms[1]) and m.best_sample.tolist() == [0, -1]


def test_invalid_predictions_count_as_unmatched_not_errors() -> None:
    close = (L0, np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]]), [11, 17])  # 0.15 A apart
    nan = (np.full((3, 3), np.nan), F0, [11, 17])
    singular = (np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1]]), F0, [11, 17])
    tiny = (L0 * 0.02, F0, [11, 17])  # volume 4.8e-4 A^3
    m = csp_metrics([close, nan, singular, tiny, REF], [REF] * 5)
    assert m.valid.tolist() == [[False, False, False, False, True]]
    assert [r.split(":")[1].strip() for r in m.reasons[0][:4]] == ["close sites", "non-finite",
                                                                 "singular lattice", "small volume"]
    assert m.n_matched == 1 and m.match_rate == pytest.approx(0.2)
    assert m.summary()["n_invalid_predictions"] == 4
    assert np.isnan(m.lattice.g6_rel[0, 1]) and np.isfinite(m.lattice.g6_rel[0, 0])


def test_element_symbols_and_pymatgen_structures() -> None:
    pytest.importorskip("pymatgen")
    from latticesym.adapters import to_pymatgen

    symbols = (L0, F0, ["Na", "Cl"])
    m = csp_metrics([symbols, to_pymatgen(M1 @ L0, F0 @ np.linalg.inv(M1), [11, 17])], [REF, symbols])
    assert m.n_matched == 2 and m.valid.all()
    with pytest.raises(LatticeShapeError, match="reference 0: species"):
        csp_metrics([REF], [(L0, F0, ["Na", "Xx"])])


def test_bad_references_raise_typed_errors() -> None:
    with pytest.raises(NonFiniteLatticeError, match="reference 1"):
        csp_metrics([REF, REF], [REF, (np.full((3, 3), np.nan), F0, [11, 17])])
    with pytest.raises(LatticeShapeError, match="sample 0 has 1 predictions for 2 references"):
        csp_metrics([REF], [REF, REF])
    with pytest.raises(LatticeShapeError, match="k=3 but only 2"):
        csp_metrics([[REF], [REF]], [REF], k=3)
    with pytest.raises(LatticeShapeError, match="no references"):
        csp_metrics([], [])
    with pytest.raises(LatticeShapeError, match="reference 0: not a structure"):
        csp_metrics([REF], [object()])


def test_best_of_k_takes_the_smallest_rms_and_reference_validity_rule() -> None:
    rng = np.random.default_rng(3)
    near, far = _displace(REF, 0.05, rng), _displace(REF, 0.3, rng)
    m1 = csp_metrics([[far], [near]], [REF])
    m_first = csp_metrics([[far], [near]], [REF], k=1)
    assert m1.k == 2 and m1.best_sample.tolist() == [1]
    assert m1.rmse == pytest.approx(min(m1.pair_rms[:, 0])) and m1.rmse < m_first.rmse
    # an invalid reference: RecEval (k=1) drops it, RecEvalBatch (k>1) does not check it
    bad_ref = (L0, np.array([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0]]), [11, 17])  # sites 0.45 A apart
    pred = (L0, np.array([[0.0, 0.0, 0.0], [0.185, 0.0, 0.0]]), [11, 17])  # 0.555 A: valid
    one = csp_metrics([pred], [bad_ref])
    assert one.n_matched == 0 and one.reasons[0] == ("invalid reference: close sites",)
    assert csp_metrics([[pred], [pred]], [bad_ref]).n_matched == 1
    assert csp_metrics([pred], [bad_ref], check_references=False).n_matched == 1
    assert csp_metrics([REF], [REF], reference_mask=[False]).reasons[0] == ("reference masked",)


def test_ragged_arrays_one_hot_and_samples_axis() -> None:
    refs = _bundled_refs(3)
    preds = _sample(refs, 2, seed=1, kinds=(0, 1, 5, 7, 2))  # same atom counts in every sample
    lists = csp_metrics(preds, refs)
    arrays = {
        "lattices": np.stack([np.stack([p[0] for p in row]) for row in preds]),
        "frac_coords": np.stack([np.concatenate([p[1] for p in row]) for row in preds]),
        "atom_types": np.stack([np.concatenate([p[2] for p in row]) for row in preds]),
        "num_atoms": np.stack([[len(p[2]) for p in row] for row in preds]),
    }
    from_arrays = csp_metrics(arrays, refs)
    np.testing.assert_array_equal(from_arrays.pair_rms, lists.pair_rms)
    assert from_arrays.match_rate == lists.match_rate
    # one sample, lengths/angles (pymatgen frame) and one-hot species, as DiffCSP saves them
    one = [p for p in preds[0]]
    finite = [i for i, p in enumerate(one) if np.all(np.isfinite(p[0]))]
    params = latticesym.cell_parameters(np.stack([one[i][0] for i in finite]))
    zs = np.concatenate([one[i][2] for i in finite])
    onehot = np.eye(100)[zs - 1]
    cells = ragged_to_structures({"lengths": params[:, :3], "angles": params[:, 3:],
                                  "frac_coords": np.concatenate([one[i][1] for i in finite]),
                                  "atom_types": onehot, "num_atoms": [len(one[i][2]) for i in finite]})
    m_par = csp_metrics(cells, [refs[i] for i in finite])
    m_lat = csp_metrics([one[i] for i in finite], [refs[i] for i in finite])
    np.testing.assert_array_equal(np.isfinite(m_par.pair_rms), np.isfinite(m_lat.pair_rms))
    np.testing.assert_allclose(m_par.pair_rms, m_lat.pair_rms, rtol=1e-9, atol=1e-12)
    with pytest.raises(LatticeShapeError, match="does not add up"):
        ragged_to_structures({**arrays, "num_atoms": arrays["num_atoms"] + 1})


def test_lattice_errors_are_reduced_cell_errors() -> None:
    stretched = (L0 @ np.diag([1.1, 1.0, 1.0]), F0, [11, 17])
    m = csp_metrics([stretched], [REF])
    lat = m.lattice
    assert lat.volume_ratio[0, 0] == pytest.approx(1.1)
    assert sorted(lat.length_rel[0, 0].tolist()) == pytest.approx([0.0, 0.0, 0.1])
    assert lat.angle_abs[0, 0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    g_ref = np.array([9.0, 16.0, 25.0, 0.0, 0.0, 0.0])
    g_p = np.array([9.0 * 1.21, 16.0, 25.0, 0.0, 0.0, 0.0])
    assert lat.g6_rel[0, 0] == pytest.approx(np.linalg.norm(g_p - g_ref) / np.linalg.norm(g_ref))
    # basis-free: the same cell in a sheared basis has zero error
    M = np.array([[1, 2, 0], [0, 1, 0], [3, 6, 1]])
    z = csp_metrics([(M @ L0, F0 @ np.linalg.inv(M), [11, 17])], [REF]).lattice
    assert z.g6_rel[0, 0] == pytest.approx(0.0, abs=1e-12) and z.volume_ratio[0, 0] == pytest.approx(1.0)


def test_lattice_errors_are_continuous_across_a_niggli_boundary() -> None:
    """alpha = 89.5 reduces to an all-acute cell, alpha = 90.5 to an all-obtuse one (1 degree apart)."""
    a = latticesym.lattice_from_parameters(4.0, 4.2, 6.0, 89.5, 80.0, 70.0)
    b = latticesym.lattice_from_parameters(4.0, 4.2, 6.0, 90.5, 80.0, 70.0)
    f = np.zeros((1, 3))
    lat = csp_metrics([(b, f, [6])], [(a, f, [6])]).lattice
    # the plain reduced-G6 difference jumps (a broken lattice error would report this) ...
    assert lat.g6_rel_reduced[0, 0] > 0.5
    # ... the aligned one sees the 1 degree change
    assert lat.g6_rel[0, 0] < 0.025
    assert np.sort(lat.angle_abs[0, 0]) == pytest.approx([0.0, 0.0, 1.0], abs=1e-6)
    assert lat.length_rel[0, 0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)


def test_structure_validity_is_basis_free() -> None:
    f = np.array([[0.0, 0.0, 0.0], [0.95, 0.0, 0.0]])  # 0.15 A apart across the cell face
    assert structure_validity(L0, f) == (False, "close sites")
    M = np.array([[1, 5, 0], [0, 1, 0], [0, 4, 1]])  # a long basis: images beyond +-1 cell
    assert structure_validity(M @ L0, f @ np.linalg.inv(M)) == (False, "close sites")
    assert structure_validity(L0, F0) == (True, "valid")


def test_table_and_json() -> None:
    m = csp_metrics([REF, (np.full((3, 3), np.nan), F0, [11, 17])], [REF, REF])
    text = m.table()
    assert "match rate" in text and "50.00 %" in text and "(1 / 2)" in text and "0.0000" in text
    import json

    data = json.loads(m.to_json())
    assert data["match_rate"] == 0.5 and data["n_invalid_predictions"] == 1


def test_import_paths() -> None:
    import latticesym.metrics as metrics_module

    assert latticesym.metrics is metrics_module
    assert latticesym.metrics.csp_metrics is csp_metrics
    assert latticesym.match is latticesym.structure.match


# --------------------------------------------------------------------------- invariance
_INV_REFS = _bundled_refs(4)
_INV_PREDS = _sample(_INV_REFS, 2, seed=11)


@functools.cache
def _inv_base() -> Any:
    return csp_metrics(_INV_PREDS, _INV_REFS)


def _same_metrics(a: Any, b: Any) -> None:
    assert a.n_matched == b.n_matched and a.match_rate == b.match_rate
    np.testing.assert_array_equal(a.matched, b.matched)
    np.testing.assert_array_equal(a.best_sample, b.best_sample)
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_array_equal(np.isfinite(a.pair_rms), np.isfinite(b.pair_rms))
    np.testing.assert_allclose(a.pair_rms, b.pair_rms, rtol=1e-9, atol=1e-12)
    for name in ("g6_rel", "volume_ratio", "length_rel", "angle_abs"):
        np.testing.assert_allclose(getattr(a.lattice, name), getattr(b.lattice, name), rtol=1e-9, atol=1e-9)
    assert a.table() == b.table()  # identical as printed


@pytest.mark.invariance
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_metrics_identical_for_rebased_rotated_predictions(data: Any) -> None:
    moved = []
    for row in _INV_PREDS:
        new_row = []
        for L, f, z in row:
            if not np.all(np.isfinite(L)):
                new_row.append((L, f, z))
                continue
            M = data.draw(strategies.unimodular_matrices(max_entry=3, det="either"))
            seed = data.draw(st.integers(0, 2**31 - 1))
            rng = np.random.default_rng(seed)
            perm = rng.permutation(len(z))
            shifts = rng.integers(-2, 3, size=(len(z), 3))  # atoms moved by lattice vectors
            new_row.append(transform_structure(L, f, z, M, rotation=_rot(seed), permutation=perm, shifts=shifts))
        moved.append(new_row)
    _same_metrics(csp_metrics(moved, _INV_REFS), _inv_base())


def test_invariance_check_catches_a_basis_dependent_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariance comparison fails for a metric that reads the raw basis (first row length)."""
    original = _metrics._prepare

    def raw_basis(x: Any, what: str, *, strict: bool) -> Any:
        p = original(x, what, strict=strict)
        if p.structure is None:
            return p
        L = np.asarray(p.structure[0])
        g6 = p.g6.copy()
        g6[0] = float(L[0] @ L[0])  # not reduced: depends on the basis
        return _metrics._Prepared(p.valid, p.reason, g6, p.structure)

    monkeypatch.setattr(_metrics, "_prepare", raw_basis)
    base = csp_metrics(_INV_PREDS, _INV_REFS)
    M = np.array([[1, 2, 0], [0, 1, 0], [1, 3, 1]])
    moved = [[transform_structure(L, f, z, M) if np.all(np.isfinite(L)) else (L, f, z) for L, f, z in row]
             for row in _INV_PREDS]
    with pytest.raises(AssertionError):
        _same_metrics(csp_metrics(moved, _INV_REFS), base)


# --------------------------------------------------------------------------- pymatgen agreement
_AGGREGATE = _metrics._aggregate


def _broken_mean_over_all(pair_rms: Any, raw_rms: Any) -> Any:
    matched, rms, best, _ = _AGGREGATE(pair_rms, raw_rms)
    raw_best = np.where(np.isfinite(raw_rms), raw_rms, np.inf).min(axis=0)
    return matched, rms, best, float(np.mean(raw_best[np.isfinite(raw_best)]))  # all with an rms, not the matched


def _broken_best_is_max(pair_rms: Any, raw_rms: Any) -> Any:
    matched = np.any(np.isfinite(pair_rms), axis=0)
    worst = np.where(matched, np.nanmax(np.where(np.isfinite(pair_rms), pair_rms, -np.inf), axis=0), np.nan)
    best = np.where(matched, np.argmax(np.where(np.isfinite(pair_rms), pair_rms, -np.inf), axis=0), -1)
    return matched, worst, best, float(np.mean(worst[matched]))


def _broken_validity(lattice: Any, frac: Any, *, reduced: bool = False, **kw: Any) -> tuple[bool, str]:
    """Validity without the 0.5 A distance check (a site-overlap bug)."""
    return (True, "valid") if abs(np.linalg.det(np.asarray(lattice))) >= 0.1 else (False, "small volume")


@pytest.fixture(scope="module")
def bundled_case() -> tuple[list[Any], list[list[Any]], dict[str, Any], dict[str, Any]]:
    pytest.importorskip("pymatgen")
    refs = _bundled_refs(12)
    preds = _sample(refs, 2, seed=5)
    return refs, preds, diffcsp_loop(preds[:1], refs), diffcsp_loop(preds, refs)


@pytest.mark.crosscheck
def test_agrees_with_a_structurematcher_loop_on_bundled_splits(bundled_case: Any) -> None:
    refs, preds, one, two = bundled_case
    m1 = csp_metrics(preds[:1], refs)
    m2 = csp_metrics(preds, refs)
    assert agreement_problems(m1, one) == []
    assert agreement_problems(m2, two) == []
    # the sample exercises every branch: matches, near misses past stol, invalid, best of k helps
    assert 0 < m1.n_matched < len(refs) and m2.n_matched > m1.n_matched
    assert (~m2.valid).sum() >= 2 and np.sum(np.isfinite(m2.raw_rms) & ~np.isfinite(m2.pair_rms)) >= 2
    assert one["slow_calls"] == 0 and two["slow_calls"] == 0


@pytest.mark.crosscheck
@pytest.mark.parametrize("broken", [_broken_mean_over_all, _broken_best_is_max], ids=["mean-over-all", "max-of-k"])
def test_broken_metrics_are_caught(bundled_case: Any, broken: Callable[..., Any],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    refs, preds, _, two = bundled_case
    monkeypatch.setattr(_metrics, "_aggregate", broken)
    assert agreement_problems(csp_metrics(preds, refs), two) != []


@pytest.mark.crosscheck
def test_broken_validity_is_caught(bundled_case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    refs, preds, _, two = bundled_case
    monkeypatch.setattr(_metrics, "structure_validity", _broken_validity)
    problems = agreement_problems(csp_metrics(preds, refs), two)
    assert any("pair" in p for p in problems), problems


@pytest.mark.crosscheck
@pytest.mark.slow
def test_agrees_with_a_structurematcher_loop_on_shared_test_splits() -> None:
    pytest.importorskip("pymatgen")
    from latticesym import io

    root = datasets.shared_data_dir()
    if root is None:
        pytest.skip("../shared/data not present")
    refs = []
    for name in ("cdvae_perov_5_test.csv", "cdvae_carbon_24_test.csv"):
        refs += io.read_structures([str(root / name)], limit=150)
    preds = _sample(refs, 3, seed=7)
    t0 = time.perf_counter()
    for k in (1, 3):
        m = csp_metrics(preds[:k], refs, workers=2)
        loop = diffcsp_loop(preds[:k], refs)
        assert agreement_problems(m, loop) == [], (k, m.table())
        assert loop["slow_calls"] == 0
    assert time.perf_counter() - t0 < 1800
