"""Fixtures of the stress suite: the outcome table printed at the end of the run.

Tests record, per reducer and family, how many cases ended ``ok`` / ``none`` / ``wrong`` /
``error`` / ``timeout`` (``record_outcome``); ``pytest_terminal_summary`` prints the table, so a
CI log shows the characterisation without re-running anything.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import pytest

_OUTCOMES = pytest.StashKey[dict[str, dict[str, Counter[str]]]]()
_STATUSES = ("ok", "ok~", "none", "wrong", "error", "timeout")


def _table(config: pytest.Config) -> dict[str, dict[str, Counter[str]]]:
    if _OUTCOMES not in config.stash:
        table: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        config.stash[_OUTCOMES] = table
    return config.stash[_OUTCOMES]


@pytest.fixture
def record_outcome(pytestconfig: pytest.Config) -> Callable[[str, str, Iterable[str]], None]:
    """``record_outcome(reducer, family, statuses)`` adds the statuses to the printed table.

    ``ok~`` marks an ``ok`` answer that differs from the exact form (a tolerant choice near a
    Niggli boundary).
    """

    def record(reducer: str, family: str, statuses: Iterable[str]) -> None:
        _table(pytestconfig)[reducer][family].update(statuses)

    return record


def format_outcomes(table: dict[str, dict[str, Counter[str]]]) -> list[str]:
    """Render the outcome table as Markdown lines (one row per reducer and family)."""
    lines = ["| reducer | family | " + " | ".join(_STATUSES) + " |", "|---|---|" + "---|" * len(_STATUSES)]
    for reducer in sorted(table, key=lambda r: (r != "latticesym", r)):
        for family in sorted(table[reducer]):
            c = table[reducer][family]
            lines.append(f"| {reducer} | {family} | " + " | ".join(str(c.get(s, 0)) for s in _STATUSES) + " |")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    table = config.stash.get(_OUTCOMES, None)
    if not table:
        return
    terminalreporter.section("lattice stress families: outcomes per reducer")
    for line in format_outcomes(table):
        terminalreporter.write_line(line)
