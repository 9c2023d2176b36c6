"""The installed Qt binding does not leak references to None.

PySide6-Essentials 6.12.0 takes one reference from None on every call that returns nothing
(QWidget.update, QTimer.stop, ...); on Python < 3.12 the app then aborts after a while
("none_dealloc: deallocating None"). pyproject.toml excludes that release; this test fails
if an environment has it anyway.
"""

from __future__ import annotations

import sys

import pytest


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_void_calls_keep_none_alive(qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QWidget

    w, t = QWidget(), QTimer()
    qtbot.addWidget(w)
    before = sys.getrefcount(None)
    for _ in range(2000):
        w.update()
        t.stop()
    assert sys.getrefcount(None) - before > -100
