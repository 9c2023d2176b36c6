"""GUI tests: Qt offscreen, settings in a temporary folder, a window on a tiny model."""

from __future__ import annotations

import os

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """QSettings write under tmp_path, never to the user's real configuration."""
    from PySide6.QtCore import QSettings

    from explorer.app.main import make_app

    make_app()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings().clear()
    yield
    QSettings().clear()


@pytest.fixture
def window(qtbot):
    from explorer.app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def open_model(qtbot, window, folder, prompt, timeout=20000):
    """Load a model folder with a prompt and wait until every panel shows results."""
    window.load_model(str(folder), prompt)
    qtbot.waitUntil(lambda: window.state.model is not None, timeout=timeout)
    wait_ready(qtbot, window, timeout)


def wait_ready(qtbot, window, timeout=20000):
    qtbot.waitUntil(window.all_ready, timeout=timeout)
