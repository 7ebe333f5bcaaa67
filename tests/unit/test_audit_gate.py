"""Tests of latticesym.audit and latticesym.gate: they must flag what was planted."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latticesym import audit as audit_mod
from latticesym import gate
from latticesym.audit import audit, find_duplicates, map_chunks
from latticesym.datasets import Structure
from latticesym.metric import lattice_from_parameters


def _reduced_cells(n: int, seed: int = 0) -> list[np.ndarray]:
    """Distinct Niggli-reduced triclinic cells (reduced exactly by the oracle)."""
    from latticesym.reference import niggli_reduce as exact_reduce

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        L = lattice_from_parameters(*rng.uniform(3.0, 7.0, 3), *rng.uniform(70.0, 110.0, 3))
        T = np.array(exact_reduce(L).transform.tolist(), dtype=np.int64)
        out.append(T @ L)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotation() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _planted() -> tuple[dict[str, list[Structure]], dict[str, set[str]]]:
    base = _reduced_cells(8)
    cells = [Structure(f"ok{i}", L, np.zeros((1, 3)), (6,)) for i, L in enumerate(base)]
    M = np.array([[1, 2, 0], [0, 1, 0], [1, 1, 1]])  # det 1
    a, b, _ = base[0]
    planted = {
        "not_reduced": Structure("sheared", M @ base[1], np.zeros((1, 3)), (6,)),
        "left_handed": Structure("mirror", np.diag([1, -1, 1]) @ base[2], np.zeros((1, 3)), (8,)),
        "near_singular": Structure(
            "flat", np.array([a, b, a + b + 1e-4 * _unit(np.cross(a, b))]), np.zeros((1, 3)), (6,)
        ),
        "duplicate": Structure("copy", base[3] @ _rotation().T, np.zeros((1, 3)), (6,)),
    }
    cells.extend(planted.values())
    expected = {
        # M @ base[1] is a non-reduced basis of ok1's lattice; the mirror is ok2's lattice in a
        # left-handed basis; the copy is ok3 rotated (a reduced basis, the same lattice).
        "left_handed": {"mirror"},
        "near_singular": {"flat"},
        "duplicate": {"sheared", "mirror", "copy"},
    }
    return {"planted": cells}, expected


def test_audit_flags_planted_cells():
    data, expected = _planted()
    report = audit(data, oracle=True)
    recs = {r["id"]: r for r in report.records["planted"]}
    assert recs["sheared"]["reduced"] is False and recs["flat"]["reduced"] is not True
    assert recs["copy"]["reduced"] is True
    assert {k for k, r in recs.items() if r["left_handed"]} == expected["left_handed"]
    assert {k for k, r in recs.items() if r["near_singular"]} == expected["near_singular"]
    assert {k for k, r in recs.items() if r["duplicate_of"] is not None} == expected["duplicate"]
    assert recs["sheared"]["duplicate_of"] == "ok1" and recs["copy"]["duplicate_of"] == "ok3"
    assert recs["mirror"]["duplicate_of"] == "ok2" and recs["mirror"]["same_composition"] is False
    assert recs["sheared"]["same_composition"] is True
    assert all(recs[f"ok{i}"]["reduced"] and recs[f"ok{i}"]["duplicate_of"] is None for i in range(8))
    s = report.summaries["planted"]
    assert (s.n, s.left_handed, s.near_singular, s.duplicates, s.duplicate_groups) == (12, 1, 1, 3, 3)
    # The float reducer may give up on the near-singular cell (A = 1e-8 is below its tolerance
    # eps * V**(2/3) = 1.1e-7); the audit then reports it as failed instead of guessing.
    flat_failed = recs["flat"]["error"] is not None
    assert s.failed == int(flat_failed) and s.oracle_checked == 12 - int(flat_failed)
    # a tolerant reduction of the near-singular cell may pick another reduced form than the exact one
    assert s.oracle_agree >= s.oracle_checked - 1
    assert all(recs[k]["oracle_error"] < 1e-9 for k in recs if k != "flat")
    # the transform reported reduces the cell
    T = np.array(recs["sheared"]["transform"])
    assert abs(round(np.linalg.det(T))) == 1


def test_audit_report_json_and_table():
    data, _ = _planted()
    report = audit(data)
    payload = json.loads(report.to_json())
    assert payload["summary"]["planted"]["n"] == 12
    assert len(payload["cells"]["planted"]) == 12 and "options" in payload
    assert "cells" not in json.loads(report.to_json(cells=False))
    table = report.table()
    assert table.splitlines()[0].startswith("dataset") and "planted" in table


def test_audit_accepts_bare_lattices_and_failures():
    lattices = [np.eye(3), np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 0]]), 2 * np.eye(3)]
    report = audit(lattices)
    recs = report.records["dataset"]
    assert recs[1]["error"] is not None and recs[1]["reduced"] is None and recs[1]["near_singular"]
    assert recs[0]["duplicate_of"] is None and recs[2]["duplicate_of"] is None  # 2x is a different lattice
    assert report.summaries["dataset"].failed == 1


def test_find_duplicates_scale_bins_and_nan():
    g = np.array(
        [
            [4.0, 9.0, 16.0, 1.0, 2.0, 3.0],
            [4.0 * (1 + 1.5e-4), 9.0, 16.0, 1.0, 2.0, 3.0],  # within tol (ln a differs by 7.5e-5)
            [4.0 * (1 + 5e-4), 9.0, 16.0, 1.0, 2.0, 3.0],  # outside tol
            [np.nan] * 6,
            [400.0, 900.0, 1600.0, 100.0, 200.0, 300.0],  # the same shape, 10x larger
        ]
    )
    assert find_duplicates(g, tol=1e-4).tolist() == [-1, 0, -1, -1, -1]
    # a match across a bin edge is found whichever side the values fall on
    rng = np.random.default_rng(1)
    base = np.array([5.0, 6.0, 7.0, 1.0, -2.0, 0.5])
    for _ in range(200):
        jitter = base * (1 + rng.uniform(-4e-5, 4e-5, 6))
        assert find_duplicates(np.stack([base, jitter]), tol=1e-4).tolist() == [-1, 0]
    with pytest.raises(ValueError):
        find_duplicates(g, tol=0.5)


def _cells_json(report) -> str:
    return json.dumps(json.loads(report.to_json())["cells"])  # via JSON, so that NaN == NaN


def _double(chunk):
    return [2 * x for x in chunk]


def test_map_chunks_executors_agree():
    chunks = [[1, 2], [3], [4, 5, 6]]
    serial = map_chunks(_double, chunks)
    assert serial == [[2, 4], [6], [8, 10, 12]]
    assert map_chunks(_double, chunks, workers=2) == serial


def test_audit_on_a_local_dask_cluster_matches_serial():
    distributed = pytest.importorskip("distributed")
    data, _ = _planted()
    serial = audit(data, chunk_size=5)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = audit(data, chunk_size=5, dask_client=client)
    assert _cells_json(on_dask) == _cells_json(serial)


def test_audit_with_worker_processes_matches_serial():
    lattices = _reduced_cells(6, seed=3)
    serial = audit(lattices, chunk_size=2)
    pooled = audit(lattices, chunk_size=2, workers=2)
    assert _cells_json(pooled) == _cells_json(serial)


# --------------------------------------------------------------------------- gate
def volume(lattice, frac_coords, species):
    return abs(np.linalg.det(lattice))


def first_length(lattice, frac_coords, species):
    return np.linalg.norm(lattice[0])


def _gate_cells() -> list[Structure]:
    rng = np.random.default_rng(2)
    return [Structure(f"s{i}", L, rng.random((2, 3)), (6, 8)) for i, L in enumerate(_reduced_cells(3, seed=5))]


def test_gate_passes_invariant_and_fails_non_invariant():
    cells = _gate_cells()
    ok = gate.run_gate(volume, cells, trials=5)
    assert ok["passed"] and ok["failures"] == [] and ok["max_error"] < 1e-12
    assert set(ok["errors"]) == {"s0", "s1", "s2"}
    bad = gate.run_gate(first_length, cells, trials=5)
    assert not bad["passed"] and bad["failures"] == ["s0", "s1", "s2"]
    assert bad["structures"][0]["worst_transform"] is not None
    text = gate.summary_text(bad)
    assert "FAILED" in text and "over tolerance" in text


def test_gate_fails_on_regression_below_tolerance(tmp_path):
    cells = _gate_cells()

    def version_1(lattice, frac_coords, species):
        return abs(np.linalg.det(lattice)) * (1 + 1e-13 * np.sin(np.linalg.norm(lattice[0])))

    def version_2(lattice, frac_coords, species):  # still within the 1e-9 tolerance, but 1000x worse
        return abs(np.linalg.det(lattice)) * (1 + 1e-10 * np.sin(np.linalg.norm(lattice[0])))

    first = gate.run_gate(version_1, cells, trials=6)
    assert first["passed"]
    path = tmp_path / "baseline.json"
    gate.write_baseline(first, path)
    baseline = gate.load_baseline(path)
    assert set(baseline["errors"]) == {"s0", "s1", "s2"} and baseline["settings"]["trials"] == 6
    same = gate.run_gate(version_1, cells, trials=6, baseline=baseline)
    assert same["passed"] and same["regressions"] == []
    worse = gate.run_gate(version_2, cells, trials=6, baseline=baseline)
    assert worse["failures"] == [] and not worse["passed"]
    assert {r["id"] for r in worse["regressions"]} >= {"*"}
    assert "regression" in gate.summary_text(worse)


def test_compare_with_baseline_rules():
    report = {"errors": {"a": 5e-12, "b": 1e-13, "c": 1.0, "new": 1e-3}, "max_error": 1.0}
    baseline = {"errors": {"a": 1e-13, "b": 1e-15, "c": None}, "max_error": None}
    regs = gate.compare_with_baseline(report, baseline, factor=10, floor=1e-12)
    assert [r["id"] for r in regs] == ["a"]  # b is below the floor; c and * had no finite baseline
    with pytest.raises(ValueError):
        gate.compare_with_baseline(report, baseline, factor=0.5)


def test_gate_records_exceptions_and_inf(tmp_path):
    def broken(lattice, frac_coords, species):
        raise RuntimeError("no")

    report = gate.run_gate(broken, _gate_cells(), trials=2)
    assert not report["passed"] and math.isinf(report["max_error"])
    assert "RuntimeError" in report["structures"][0]["exception"]
    gate.write_baseline(report, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["errors"]["s0"] is None
    assert json.loads(gate.report_to_json(report))["max_error"] is None


def test_load_function(tmp_path, monkeypatch):
    (tmp_path / "user_featurizer_mod.py").write_text("def f(lattice, frac_coords, species):\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gate.load_function("user_featurizer_mod:f")(None, None, None) == 1.0
    assert gate.load_function(f"{tmp_path}/user_featurizer_mod.py:f")(None, None, None) == 1.0
    with pytest.raises(ValueError):
        gate.load_function("no_colon")
    with pytest.raises(AttributeError):
        gate.load_function("user_featurizer_mod:missing")
    assert audit_mod is not None
