"""Reliability tests: figures they measure are printed at the end of the pytest run."""

from __future__ import annotations

import os

import pytest

# before pytest-qt's qapp exists (as in tests/app/conftest.py): no display is needed
os.environ["QT_QPA_PLATFORM"] = "offscreen"

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


# --- the window, for the GUI tests here (as tests/app/conftest.py makes it) -------------------


@pytest.fixture
def qt_settings(tmp_path):
    """QSettings under tmp_path, never the user's real configuration."""
    from PySide6.QtCore import QSettings

    from explorer.app.main import make_app

    make_app()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings().clear()
    yield
    QSettings().clear()


@pytest.fixture
def window(qt_settings, qtbot):
    from explorer.app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
