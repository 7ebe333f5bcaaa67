"""Unit tests of the benchmark plumbing (``benchmarks/report.py``): ratios, table, JSON input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report() -> Any:
    spec = importlib.util.spec_from_file_location("latticesym_bench_report_under_test", REPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TIMINGS = {
    "batched_physical_1e5": 5e-7,
    "batched_sheared_20k": 1e-6,
    "spglib_loop_sheared_20k": 2.5e-5,
    "single_latticesym": 3e-5,
    "single_spglib": 1.5e-5,
    "single_moyopy": 6e-6,
}


def test_ratios(report: Any) -> None:
    r = report.compute_ratios(TIMINGS)
    assert r["batched_vs_spglib_loop_sheared"] == pytest.approx(25.0)
    assert r["batched_physical_vs_spglib_single"] == pytest.approx(30.0)
    assert r["single_latency_vs_spglib"] == pytest.approx(2.0)
    assert r["single_latency_vs_moyopy"] == pytest.approx(5.0)
    assert "single_latency_vs_gemmi" not in r  # missing inputs leave the ratio out


def test_missing_or_zero_timings_are_left_out(report: Any) -> None:
    assert report.compute_ratios({}) == {}
    assert report.compute_ratios({"batched_sheared_20k": 0.0, "spglib_loop_sheared_20k": 1.0}) == {}


def test_markdown_has_only_ratios(report: Any) -> None:
    text = report.format_markdown(report.compute_ratios(TIMINGS))
    assert "| batched latticesym vs a Python loop over spglib" in text
    assert "25.0x faster" in text and "2.00x" in text
    assert "e-0" not in text  # no absolute times


def test_write_report(report: Any, tmp_path: Path) -> None:
    ratios = report.write_report(TIMINGS, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["ratios"] == pytest.approx(ratios)
    assert "python" in data["environment"]
    assert (tmp_path / "results.md").read_text().startswith("| comparison | ratio | target |")


def test_from_pytest_benchmark_json(report: Any, tmp_path: Path) -> None:
    data = {"benchmarks": [
        {"extra_info": {"key": "batched_sheared_20k", "lattices": 20000}, "stats": {"min": 0.02}},
        {"extra_info": {"key": "spglib_loop_sheared_20k", "lattices": 20000}, "stats": {"min": 0.5}},
        {"extra_info": {}, "stats": {"min": 1.0}},
    ]}
    per = report.per_lattice_from_pytest_benchmark(data)
    assert per == pytest.approx({"batched_sheared_20k": 1e-6, "spglib_loop_sheared_20k": 2.5e-5})
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    assert report.main([str(path), str(tmp_path)]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["ratios"] == pytest.approx(
        {"batched_vs_spglib_loop_sheared": 25.0})
    assert report.main([]) == 2
