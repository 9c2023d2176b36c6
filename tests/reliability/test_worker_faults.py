"""Worker faults: an exception or a cancellation at any point of the worker (each Worker.do_*
and the engine calls it makes) leaves the window responsive and consistent; loading a second
model while the first still loads works (the latest wins); closing during a computation is
quick. Complements tests/app/test_main_window.py."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from explorer.app import compute
from explorer.app.compute import Worker
from explorer.engine import Cancelled, Run, Tokenizer
from explorer.engine.model import Block
from tests.app.conftest import open_model, wait_ready

from .panels import check_panels

PROMPT = "When Mary and John went to the store, John gave a drink to"


class Panic(BaseException):
    """Like the PanicException a Rust library (tokenizers, safetensors) raises: not an
    Exception subclass, so `except Exception` does not catch it."""


FAULTS = {
    "error": lambda: RuntimeError("injected fault"),
    "cancel": Cancelled,
    "panic": lambda: Panic("injected panic"),
}


@pytest.fixture
def gpt2(tiny):
    return tiny("gpt2")


@pytest.fixture
def no_dialogs(monkeypatch):
    """QMessageBox.warning records its text instead of blocking the test."""
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    return shown


def recover(qtbot, window, lm, text=PROMPT + " and then"):
    """A new prompt after the fault: every panel must show the fresh computation."""
    window.prompt.editor.setPlainText(text)
    qtbot.waitUntil(lambda: window.state.run.ids == lm.encode(text), timeout=15000)
    wait_ready(qtbot, window)
    check_panels(window, lm)


def trigger(window, kind, other_folder):
    st = window.state
    if kind == "run":
        window.prompt.editor.setPlainText(PROMPT + " again")
    elif kind == "pattern":
        st.select(layer=1, head=2)
    elif kind == "grid":
        att = window.docks["attention"]
        att.clean.setChecked(not att.clean.isChecked())
    elif kind == "predict":
        st.select(position=2)
    elif kind == "generate":
        n = window.docks["generation"].n
        n.setValue(n.value() + 1)
    elif kind == "load":
        window.load_model(str(other_folder))


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("kind", ["load", "run", "pattern", "grid", "predict", "generate"])
def test_a_fault_in_any_request_is_survived(
    qtbot,
    window,
    gpt2,
    tiny,
    monkeypatch,
    no_dialogs,
    kind,
    fault,
):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    hit = threading.Event()
    real = getattr(Worker, f"do_{kind}")

    def faulty(self, req):
        hit.set()
        raise FAULTS[fault]()

    monkeypatch.setattr(Worker, f"do_{kind}", faulty)
    trigger(window, kind, tiny("llama").folder)
    qtbot.waitUntil(hit.is_set, timeout=10000)
    qtbot.waitUntil(window.controller.is_idle, timeout=10000)
    assert window.controller._thread.is_alive(), "the worker thread died"
    if fault != "cancel":  # a cancellation is silent; a failure is shown where it belongs
        msg = "injected"
        if kind == "load":
            qtbot.waitUntil(lambda: any(msg in s for s in no_dialogs), timeout=5000)
        elif kind == "run":
            qtbot.waitUntil(lambda: msg in window.prompt.notice.text().lower(), timeout=5000)
        else:
            bar = window.statusBar()
            qtbot.waitUntil(lambda: f"{kind} failed" in bar.currentMessage(), timeout=5000)
    assert window.state.model.path == str(gpt2.folder)  # a failed load keeps the open model
    qtbot.waitUntil(lambda: not window.busy_bar.isVisible(), timeout=5000)
    monkeypatch.setattr(Worker, f"do_{kind}", real)
    recover(qtbot, window, gpt2.lm)


def once(monkeypatch, owner, name, fault, worker=None, nth=1):
    """Make owner.name raise fault (or cancel, as the engine does when a newer request
    arrives) on its nth call from now on, once; returns an Event set when it happened."""
    hit = threading.Event()
    real = getattr(owner, name)
    calls = [0]

    def wrapper(*a, **k):
        calls[0] += 1
        if calls[0] == nth and not hit.is_set():
            hit.set()
            if fault == "cancel":
                worker.cancel.set()
                raise Cancelled()
            raise RuntimeError(f"injected fault in {name}")
        return real(*a, **k)

    monkeypatch.setattr(owner, name, wrapper)
    return hit


ENGINE_POINTS = {  # where, what triggers it
    "Run.compute": (Run, "compute", "prompt"),
    "Run.rerun": (Run, "rerun", "ablate"),
    "Run.pattern": (Run, "pattern", "select"),
    "Run.layer_patterns": (Run, "layer_patterns", "prompt"),
    "Run.position_stats": (Run, "position_stats", "prompt"),
    "Run.probs": (Run, "probs", "position"),
    "generate_from_run": (compute, "generate_from_run", "prompt"),
    "Tokenizer.displays": (Tokenizer, "displays", "prompt"),
    "Block.forward (3rd layer)": (Block, "forward", "prompt"),
}


@pytest.mark.parametrize("fault", ["error", "cancel"])
@pytest.mark.parametrize("point", sorted(ENGINE_POINTS))
def test_a_fault_inside_the_engine_is_survived(
    qtbot,
    window,
    gpt2,
    monkeypatch,
    point,
    fault,
):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    owner, name, how = ENGINE_POINTS[point]
    hit = once(
        monkeypatch, owner, name, fault, window.controller._worker, nth=3 if "3rd" in point else 1
    )
    st = window.state
    if how == "prompt":
        window.prompt.editor.setPlainText(PROMPT + " again")
    elif how == "ablate":
        st.toggle_head(1, 1)
    elif how == "select":
        st.select(layer=2, head=3)
    elif how == "position":
        st.select(position=3)
    qtbot.waitUntil(hit.is_set, timeout=10000)
    qtbot.waitUntil(window.controller.is_idle, timeout=10000)
    assert window.controller._thread.is_alive()
    monkeypatch.undo()
    recover(qtbot, window, gpt2.lm)


def test_a_second_model_while_the_first_still_loads_wins(
    qtbot,
    window,
    gpt2,
    tiny,
    monkeypatch,
):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    first, second, third = tiny("llama").folder, tiny("neox").folder, tiny("qwen2").folder
    started, release = threading.Event(), threading.Event()
    real = Worker.do_load
    loaded = []
    window.model_loaded.connect(lambda info: loaded.append(info.path))

    def slow(self, req):
        if req.path == str(first):
            started.set()
            release.wait(10)
        return real(self, req)

    monkeypatch.setattr(Worker, "do_load", slow)
    window.load_model(str(first))
    assert started.wait(10)
    window.load_model(str(second))  # replaced at once by the third: never loaded
    window.load_model(str(third), PROMPT + " later")
    release.set()
    qtbot.waitUntil(lambda: window.state.model.path == str(third), timeout=20000)
    wait_ready(qtbot, window)
    assert loaded == [str(third)]
    assert window.controller.computed.count("load") == 2  # gpt2 and the third
    check_panels(window, tiny("qwen2").lm)


def slow_layers(monkeypatch, seconds=0.25) -> threading.Event:
    """Every layer sleeps first; the event is set once the worker is inside a layer."""
    real = Block.forward
    inside = threading.Event()

    def slow(self, *a, **k):
        inside.set()
        time.sleep(seconds)
        return real(self, *a, **k)

    monkeypatch.setattr(Block, "forward", slow)
    return inside


def gaps_while(qtbot, until, timeout=10000):
    """Longest pause of the GUI event loop (ms) while waiting for until()."""
    clock, gaps = QElapsedTimer(), []
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    qtbot.waitUntil(until, timeout=timeout)
    timer.stop()
    return max(gaps, default=0)


def test_closing_during_a_slow_run_is_quick_and_the_gui_never_blocks(
    qt_settings, qtbot, gpt2, monkeypatch, report_figures
):
    from explorer.app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    open_model(qtbot, w, gpt2.folder, PROMPT)
    inside = slow_layers(monkeypatch)  # a run now takes > 0.75 s
    w.prompt.editor.setPlainText(PROMPT + " slowly")
    worst = gaps_while(qtbot, inside.is_set)
    qtbot.wait(100)  # well inside the run
    t0 = time.monotonic()
    w.close()
    closed = time.monotonic() - t0
    assert closed < 2.0, closed
    assert not w.controller._thread.is_alive()
    report_figures("close during a run", f"closed in {closed * 1000:.0f} ms")
    assert worst < 500, worst


def test_the_gui_stays_responsive_during_a_long_computation(qtbot, window, gpt2, monkeypatch):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.docks["generation"].n.setValue(2)  # generation runs the slowed layers too
    wait_ready(qtbot, window)
    slow_layers(monkeypatch, 0.2)
    text = PROMPT + " slowly"
    window.prompt.editor.setPlainText(text)
    ids = gpt2.lm.encode(text)
    worst = gaps_while(
        qtbot, lambda: window.state.run.ids == ids and window.all_ready(), timeout=30000
    )
    assert worst < 500, f"the event loop stalled for {worst} ms"
    monkeypatch.undo()
    check_panels(window, gpt2.lm)


def test_closing_during_an_uncancellable_load_returns_and_the_worker_ends_quietly(
    qt_settings, qtbot, gpt2, tiny, monkeypatch
):
    """A load stuck in code that cannot be interrupted: the window still closes (the worker
    is given 2 s), and when the load finishes later its result goes nowhere, silently."""
    from explorer.app.main_window import MainWindow
    from explorer.checkpoints import hf

    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    w = MainWindow()  # not qtbot.addWidget: this test deletes the window itself
    w.show()
    open_model(qtbot, w, gpt2.folder, PROMPT)
    started = threading.Event()
    real = hf.build_model

    def stuck(*a, **k):
        started.set()
        time.sleep(2.5)
        return real(*a, **k)

    monkeypatch.setattr(hf, "build_model", stuck)
    w.load_model(str(tiny("llama").folder))
    assert started.wait(10)
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 2.5
    thread = w.controller._thread
    w.deleteLater()
    qtbot.wait(50)
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []
