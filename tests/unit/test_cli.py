"""Tests of the ``latticesym`` command line (in-process through ``main``, plus the real entry points)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latticesym.cli import main
from latticesym.datasets import shared_data_dir

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data not present")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- entry points
def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "latticesym", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("reduce", "audit", "gate", "stress", "demo"):
        assert word in proc.stdout


def test_console_script_help():
    exe = shutil.which("latticesym") or str(Path(sys.executable).with_name("latticesym"))
    if not Path(exe).exists():
        pytest.skip("the latticesym console script is not installed (pip install -e .)")
    proc = subprocess.run([exe, "reduce", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--exact" in proc.stdout


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "usage: latticesym" in out


# --------------------------------------------------------------------------- reduce
def test_reduce_matrix_text(capsys):
    code, out, _ = run(capsys, "reduce", "1 0 0; 5 1 0; 0 0 1")
    assert code == 0
    assert "Niggli-reduced lattice" in out and "transform T" in out
    assert "G6 (A, B, C, xi, eta, zeta): 1  1  1  0  0  0" in out


@pytest.mark.parametrize("exact", [False, True])
def test_reduce_matrix_json(capsys, exact):
    args = ["reduce", "[[1, 0, 0], [5, 1, 0], [0, 0, 1]]", "--json"] + (["--exact"] if exact else [])
    code, out, _ = run(capsys, *args)
    data = json.loads(out)
    assert code == 0 and data["g6"] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    T = np.array(data["transform"])
    np.testing.assert_allclose(T @ np.array(data["input"]), np.array(data["lattice"]), atol=1e-12)
    assert round(np.linalg.det(T)) == 1 and not data["was_reduced"]
    if exact:
        assert data["g6_exact"] == ["1", "1", "1", "0", "0", "0"]


def test_reduce_singular_matrix_reports_error(capsys):
    code, out, _ = run(capsys, "reduce", "1 0 0 0 1 0 1 1 0")
    assert code == 1 and "error:" in out and "Singular" in out


def test_reduce_stdin(capsys, monkeypatch):
    import io as _io

    monkeypatch.setattr(sys, "stdin", _io.StringIO("2 0 0\n0 1 0\n0 0 3\n"))
    code, out, _ = run(capsys, "reduce", "-", "--json")
    assert code == 0 and json.loads(out)["g6"] == [1.0, 4.0, 9.0, 0.0, 0.0, 0.0]


@needs_shared
def test_reduce_poscar_and_csv(capsys):
    poscar = SHARED / "spglib" / "poscars" / "monoclinic" / "POSCAR-015"
    code, out, _ = run(capsys, "reduce", str(poscar), "--json")
    assert code == 0 and json.loads(out)["id"] == "monoclinic/POSCAR-015"
    code, out, _ = run(capsys, "reduce", str(SHARED / "cdvae_carbon_24_test.csv"), "--limit", "3", "--json")
    assert code == 0 and len(json.loads(out)) == 3


def test_reduce_missing_file(capsys):
    code, _, err = run(capsys, "reduce", "no/such/file.cif")
    assert code == 2 and "no such file" in err


# --------------------------------------------------------------------------- audit
def test_audit_bundled_table_and_json(capsys, tmp_path):
    out_json = tmp_path / "audit.json"
    code, out, _ = run(
        capsys,
        "audit",
        "bundled:perov_5",
        "bundled:carbon_24",
        "--limit",
        "40",
        "--json",
        str(out_json),
        "--show",
        "2",
        "--no-progress",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("dataset") and any(ln.startswith("bundled:carbon_24") for ln in lines)
    data = json.loads(out_json.read_text())
    assert data["summary"]["bundled:perov_5"]["n"] == 40 and len(data["cells"]["bundled:carbon_24"]) == 40


def test_audit_json_to_stdout_with_workers(capsys):
    code, out, _ = run(
        capsys,
        "audit",
        "bundled:spglib",
        "--limit",
        "60",
        "--workers",
        "2",
        "--chunk-size",
        "16",
        "--json",
        "-",
        "--summary-only",
    )
    data = json.loads(out)
    assert code == 0 and "cells" not in data and data["summary"]["bundled:spglib"]["n"] == 60


@needs_shared
def test_audit_spglib_poscars_acceptance(capsys, tmp_path):
    """All 785 spglib POSCARs are read and audited (acceptance of issue 5)."""
    out_json = tmp_path / "a.json"
    code, out, _ = run(
        capsys, "audit", str(SHARED / "spglib" / "poscars"), "--json", str(out_json), "--summary-only", "--no-progress"
    )
    assert code == 0, out
    (summary,) = json.loads(out_json.read_text())["summary"].values()
    assert summary["n"] == 785 and summary["failed"] == 0
    assert summary["left_handed"] == 0 and summary["near_singular"] == 0
    assert 0 < summary["not_reduced"] < 785 and summary["duplicates"] > 0


def test_audit_dask_local_flag_is_wired(monkeypatch, capsys):
    import latticesym.audit as audit_mod

    seen = {}

    def fake_map_dask(func, chunks, results, sizes, bar, client, scheduler, local, workers):
        seen.update(local=local, scheduler=scheduler, workers=workers)
        for i, c in enumerate(chunks):
            results[i] = func(c)

    monkeypatch.setattr(audit_mod, "_map_dask", fake_map_dask)
    code, _, _ = run(capsys, "audit", "bundled:spglib", "--limit", "5", "--dask-local", "--workers", "2")
    assert code == 0 and seen == {"local": True, "scheduler": None, "workers": 2}
    code, _, _ = run(capsys, "audit", "bundled:spglib", "--limit", "5", "--dask-scheduler", "tcp://x:1")
    assert code == 0 and seen["scheduler"] == "tcp://x:1"


def test_audit_rejects_both_dask_options():
    with pytest.raises(SystemExit):
        main(["audit", "bundled:spglib", "--dask-local", "--dask-scheduler", "tcp://x:1"])


# --------------------------------------------------------------------------- gate
FEATURIZERS = """
import numpy as np

def volume(lattice, frac_coords, species):
    return abs(np.linalg.det(lattice))

def first_length(lattice, frac_coords, species):
    return np.linalg.norm(lattice[0])
"""


def test_gate_exit_codes_and_baseline(capsys, tmp_path, monkeypatch):
    module = "cli_gate_featurizers"
    (tmp_path / f"{module}.py").write_text(FEATURIZERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    common = ["--structures", "bundled:perov_5", "--limit", "3", "--trials", "4", "--no-progress"]
    code, out, err = run(capsys, "gate", f"{module}:volume", *common, "--baseline", "b.json")
    assert code == 2 and "does not exist" in err
    code, out, _ = run(capsys, "gate", f"{module}:volume", *common, "--baseline", "b.json", "--write-baseline")
    assert code == 0 and "PASSED" in out and "baseline written" in out
    code, out, _ = run(capsys, "gate", f"{module}:volume", *common, "--baseline", "b.json", "-o", "r.json")
    assert code == 0 and json.loads((tmp_path / "r.json").read_text())["passed"] is True
    code, out, _ = run(capsys, "gate", f"{module}:first_length", *common, "--baseline", "b.json", "-o", "-")
    report = json.loads(out)
    assert code == 1 and not report["passed"] and len(report["failures"]) == 3 and report["regressions"]


# --------------------------------------------------------------------------- stress and demo
def test_stress_latticesym_only(capsys):
    code, out, _ = run(
        capsys, "stress", "--families", "physical,sheared", "-n", "3", "--peers", "none", "--no-progress"
    )
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["family", "n", "latticesym"]
    assert any(ln.startswith("physical") and "3/3" in ln for ln in lines)


def test_stress_json_with_a_peer(capsys):
    from latticesym.peers import available_peers

    if "spglib" not in available_peers():
        pytest.skip("spglib not installed")
    code, out, _ = run(capsys, "stress", "--families", "physical", "-n", "2", "--peers", "spglib", "--json", "-")
    data = json.loads(out)
    assert code == 0 and data["solvers"] == ["latticesym", "spglib"]
    assert data["results"]["physical"]["spglib"]["n"] == 2


def test_demo_without_peers(capsys):
    code, out, _ = run(capsys, "demo", "--no-peers", "-n", "2", "--no-progress")
    assert code == 0
    assert "== audit" in out and "== stress" in out and "oracle = float" in out
    for name in ("perov_5", "carbon_24", "spglib lattices"):
        assert name in out
