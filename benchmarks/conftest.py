"""pytest set-up of the benchmarks: collect ``bench_*.py`` and write the ratio report.

``make bench`` runs ``pytest benchmarks -m benchmark --benchmark-only``.  Each benchmark
stores its minimum seconds per lattice in the session's ``bench_timings``; at the end of the
session :func:`report.write_report` turns them into ``benchmarks/results.md`` and
``benchmarks/results.json`` (ratios, not absolute times), the numbers of the docs table.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The single-call benchmarks run the peers in this process.  cctbx segfaults when it is imported
# after gemmi - and, as measured here, after numba (which latticesym's reducer uses), scipy.linalg
# or torch - so it is imported first, before the benchmark modules import anything else.
if importlib.util.find_spec("cctbx") is not None:
    with contextlib.suppress(ImportError):
        from cctbx import uctbx  # noqa: F401

HERE = Path(__file__).parent


def _load_report() -> Any:
    spec = importlib.util.spec_from_file_location("latticesym_bench_report", HERE / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load_report()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # ``bench_*.py`` is not in pytest's default ``python_files``; a file named on the command line
    # is collected by pytest itself, so only files found by walking the directory are added here.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def bench_timings(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """``{key: minimum seconds per lattice}``, written to ``results.md`` / ``.json`` at the end."""
    timings: dict[str, float] = {}
    yield timings
    if timings and not request.config.getoption("benchmark_disable", default=False):
        ratios = report.write_report(timings, HERE)
        request.config.stash[_RATIOS] = ratios


_RATIOS = pytest.StashKey[dict[str, float]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    ratios = config.stash.get(_RATIOS, None)
    if ratios:
        terminalreporter.section("latticesym benchmark ratios (written to benchmarks/results.md)")
        for line in report.format_markdown(ratios).splitlines():
            terminalreporter.write_line(line)
