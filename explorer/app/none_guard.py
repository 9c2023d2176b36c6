"""A guard against a reference-count bug of PySide6 6.12 on CPython before 3.12.

Every call of a binding that returns nothing (QWidget.update, QApplication.processEvents,
QTimer.stop, …) takes one reference from None without giving it one. From Python 3.12 on None
is immortal and nothing happens; before, None's count reaches zero after enough such calls
and Python aborts ("Fatal Python error: none_dealloc: deallocating None"): the app after a
while of use, the GUI tests after a few minutes of them.

Until PySide6 is fixed, keep_none_alive() checks whether the bug is there and, if it is,
gives back what the bindings take: a timer raises None's count every second when it runs low.
(The count is raised in place; references held in a list would not do, because freeing the
list at exit would take them all back at once.)
"""

from __future__ import annotations

import ctypes
import sys

FLOOR = 1_000_000  # top up when None's count falls below this
TOP_UP = 10_000_000  # ... by this much (None is never freed: a high count costs nothing)

_state: dict = {}


def leaks_none() -> bool:
    """True when a void PySide6 call takes a reference from None (measured, not assumed)."""
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QTimer

    t = QTimer()
    before = sys.getrefcount(None)
    for _ in range(50):
        t.stop()
    return sys.getrefcount(None) < before - 25


def top_up() -> int:
    """Raise None's reference count when it is low; returns how much was added."""
    if sys.getrefcount(None) >= FLOOR:
        return 0
    # CPython < 3.12: ob_refcnt is the Py_ssize_t at the start of every object
    ctypes.c_ssize_t.from_address(id(None)).value += TOP_UP
    return TOP_UP


def keep_none_alive(app) -> bool:
    """Install the guard once per process when the bug is present; True when installed."""
    if "timer" in _state:
        return True
    if not leaks_none():
        return False
    from PySide6.QtCore import QTimer

    top_up()
    timer = QTimer(app)
    timer.setInterval(1000)
    timer.timeout.connect(top_up)
    timer.start()
    _state["timer"] = timer
    return True
