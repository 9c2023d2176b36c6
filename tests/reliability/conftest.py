"""Reliability tests: figures they measure are printed at the end of the pytest run."""

from __future__ import annotations

import pytest

FIGURES: dict[str, str] = {}  # test name -> one line of measured figures


@pytest.fixture
def report_figures():
    """report_figures(name, line): show a measured figure in pytest's terminal summary."""
    return FIGURES.__setitem__


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, line in FIGURES.items():
            terminalreporter.write_line(f"{name}: {line}")
