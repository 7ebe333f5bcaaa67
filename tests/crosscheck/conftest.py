"""Fixtures of the peer cross-checks: the list of disagreements printed at the end of the run.

``record_disagreements(lines)`` stores one line per peer answer that differs from the exact
oracle (with the judge's verified reason); ``pytest_terminal_summary`` prints them all, so a
disagreement is always visible in the log, whether or not the test that found it failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

_LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def record_disagreements(pytestconfig: pytest.Config) -> Callable[[Iterable[str]], None]:
    """``record_disagreements(lines)`` adds lines to the end-of-run disagreement list."""

    def record(lines: Iterable[str]) -> None:
        pytestconfig.stash.setdefault(_LINES, []).extend(lines)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, None)
    if lines is None:
        return
    terminalreporter.section("peer reducers vs the exact oracle: disagreements")
    for line in lines or ["(none)"]:
        terminalreporter.write_line(line)
