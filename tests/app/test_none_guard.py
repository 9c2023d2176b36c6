"""The guard against PySide6 6.12's reference leak on None (Python < 3.12)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer

from explorer.app import none_guard


def test_many_void_calls_never_exhaust_none(qtbot):
    t = QTimer()
    for _ in range(3):
        for _ in range(20_000):
            t.stop()  # returns nothing: the leaking kind of call
        none_guard.top_up()  # what the guard's timer does every second
        assert sys.getrefcount(None) >= none_guard.FLOOR or not none_guard.leaks_none()
    if none_guard.leaks_none():
        assert "timer" in none_guard._state and none_guard._state["timer"].isActive()
