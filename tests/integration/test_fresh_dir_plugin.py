"""Acceptance: the pytest plugin and the CI-gate example work in a fresh directory outside the repo.

Each test writes (or copies) a small user repository into ``tmp_path`` and runs
``python -m pytest -m invariance --strict-markers`` on it in a subprocess, with nothing but the
installed latticesym (its ``pytest11`` entry point) providing the marker and fixtures; the
outcome counts are read from the JUnit XML report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ci_gate"

USER_TESTS = """
import numpy as np
import pytest

from latticesym.testing import assert_basis_invariant, get_defaults

rng = np.random.default_rng(0)
LATTICE = np.array([[3.9, 0.0, 0.0], [0.6, 4.3, 0.0], [-0.8, 0.4, 5.1]])
FRAC = rng.random((4, 3))
SPECIES = [8, 8, 22, 38]


def volume_and_density(lattice, frac_coords, species):
    v = abs(np.linalg.det(lattice))
    return np.array([v, len(species) / v])


def first_vector_length(lattice, frac_coords, species):
    return np.linalg.norm(lattice[0])


def sorted_cell_lengths(lattice, frac_coords, species):
    # invariant under rotations, not under changes of basis
    return np.sort(np.linalg.norm(lattice, axis=1))


def wrapped_cartesian(lattice, frac_coords, species):
    cart = (np.asarray(frac_coords) % 1.0) @ np.asarray(lattice)
    return np.sort(np.linalg.norm(cart, axis=1))


@pytest.mark.invariance
def test_volume_and_density():
    assert_basis_invariant(volume_and_density, LATTICE, FRAC, SPECIES, rotate=True, permute=True)


@pytest.mark.invariance
def test_first_vector_length():
    assert_basis_invariant(first_vector_length, LATTICE, FRAC, SPECIES)


@pytest.mark.invariance
def test_sorted_cell_lengths():
    assert_basis_invariant(sorted_cell_lengths, LATTICE, FRAC, SPECIES, rotate=True)


@pytest.mark.invariance
def test_wrapped_cartesian_positions():
    assert_basis_invariant(wrapped_cartesian, LATTICE, FRAC, SPECIES)


@pytest.mark.invariance
def test_fixtures_and_options(unimodular, rotation, float_tolerance, example_structure):
    assert abs(round(np.linalg.det(unimodular))) == 1
    assert np.allclose(rotation @ rotation.T, np.eye(3))
    L, f, s = example_structure
    report = assert_basis_invariant(
        volume_and_density, L.astype(float_tolerance.dtype), f.astype(float_tolerance.dtype), s
    )
    assert report.tolerance == float_tolerance.rtol
    assert get_defaults() == {"trials": 7, "seed": 3} and report.trials == 7 and report.seed == 3


def test_not_marked():
    raise AssertionError("deselected by -m invariance")
"""


def _run_pytest(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    xml = cwd / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={xml}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes: dict[str, str] = {}
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            kids = {child.tag for child in case}
            outcome = "failed" if kids & {"failure", "error"} else "skipped" if "skipped" in kids else "passed"
            outcomes[case.get("name", "")] = outcome
    return proc, outcomes


def _outside_repo(path: Path) -> None:
    assert ROOT not in path.resolve().parents, f"{path} is inside the repository"


def test_user_repo_in_fresh_directory(tmp_path):
    _outside_repo(tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the user's own config: no markers registered
    (tmp_path / "test_user_featurizers.py").write_text(textwrap.dedent(USER_TESTS))
    proc, outcomes = _run_pytest(
        tmp_path, "-m", "invariance", "--strict-markers", "--latticesym-trials", "7", "--latticesym-seed", "3"
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log  # 1 = some tests failed (not a usage or collection error)
    assert outcomes.pop("test_volume_and_density") == "passed", log
    assert outcomes.pop("test_fixtures_and_options[float32-cubic]") == "passed", log
    fixture_runs = {k: v for k, v in outcomes.items() if k.startswith("test_fixtures_and_options")}
    assert len(fixture_runs) == 9 and set(fixture_runs.values()) == {"passed"}, log  # 2 dtypes x 5 families
    expected_failures = ["test_first_vector_length", "test_sorted_cell_lengths", "test_wrapped_cartesian_positions"]
    assert {k: outcomes[k] for k in expected_failures} == dict.fromkeys(expected_failures, "failed"), log
    assert "test_not_marked" not in outcomes
    # each failure's message appears once in FAILURES, and again in the short summary when pytest
    # does not truncate it (CI=true): count the FAILURES section only
    failures = log.split("short test summary info")[0]
    assert failures.count("is NOT invariant under a change of lattice basis") == 3, log
    assert "1 deselected" in log and "3 failed" in log and "11 passed" in log, log


def test_strict_markers_accepts_invariance_without_registration(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_m.py").write_text("import pytest\n\n@pytest.mark.invariance\ndef test_x():\n    pass\n")
    proc, outcomes = _run_pytest(tmp_path, "--strict-markers", "-m", "invariance")
    assert proc.returncode == 0 and outcomes == {"test_x": "passed"}, proc.stdout + proc.stderr
    # without latticesym's plugin the same marker is an error under --strict-markers
    proc, _ = _run_pytest(tmp_path, "--strict-markers", "-p", "no:latticesym")
    assert proc.returncode != 0 and "invariance" in proc.stdout + proc.stderr


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "ci_gate"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    _outside_repo(dest)
    return dest


def test_ci_gate_example_tests(example_copy):
    proc, outcomes = _run_pytest(example_copy, "-m", "invariance", "--strict-markers")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "1 xfailed" in log and "1 deselected" in log, log
    assert outcomes.pop("test_fixed_shift_features_are_basis_invariant") == "skipped", log  # junit: xfail
    assert len(outcomes) == 9 and set(outcomes.values()) == {"passed"}, log
    # Run the expected failure for real: the gate catches the fixed -2..2 image range.
    proc, outcomes = _run_pytest(example_copy, "-m", "invariance", "--runxfail", "-k", "fixed_shift")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and outcomes == {"test_fixed_shift_features_are_basis_invariant": "failed"}, log
    assert "neighbour_features_fixed_shift is NOT invariant" in log


def test_ci_gate_example_gate_command(example_copy):
    def gate(function: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "latticesym",
                "gate",
                f"featurizer:{function}",
                "--structures",
                "bundled:carbon_24",
                "--limit",
                "6",
                "--baseline",
                "invariance_baseline.json",
                "--output",
                "report.json",
                "--no-progress",
            ],
            cwd=example_copy,
            capture_output=True,
            text=True,
            timeout=300,
        )

    good = gate("neighbour_features")
    assert good.returncode == 0 and "PASSED" in good.stdout, good.stdout + good.stderr
    bad = gate("neighbour_features_fixed_shift")
    assert bad.returncode == 1 and "FAILED" in bad.stdout, bad.stdout + bad.stderr
    import json

    report = json.loads((example_copy / "report.json").read_text())
    assert len(report["failures"]) == 6 and report["regressions"] and not report["passed"]
