"""What the analysis docks share.

QuickAnalysisDock: recomputes by itself when the run, the selection or the target changes,
but only while it is visible (a tab behind another computes nothing; it catches up when it is
raised). is_ready() is true when it shows the result for what it would ask now.

JobDock: a long analysis started with a button, with Stop, a progress bar and a status line;
its result fills in as JobUpdates arrive and is marked stale when the prompt or ablation it
was computed for changes. is_ready() is true when no job of its own is running.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton

from ..analysis_worker import AnalysisResult, JobUpdate
from ..compute import Failure
from .base import Dock

NOTE_STYLE = "color: #b45309"  # amber: a note that needs attention, readable on light and dark
ERROR_STYLE = "color: #d7263d"


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clear_heatmap(heatmap) -> None:
    """Show nothing (a new model, or a note instead of a result)."""
    heatmap.data = np.zeros((0, 0), np.float32)
    heatmap.image.clear()
    heatmap.left_axis.set_labels([])
    heatmap.bottom_axis.set_labels([])
    heatmap.set_cell_texts(None)


def signed(v: float) -> str:
    """A signed number short enough for a heatmap cell ("" for nan)."""
    if not np.isfinite(v):
        return ""
    a = abs(v)
    text = f"{v:+.0f}" if a >= 100 else f"{v:+.1f}" if a >= 10 else f"{v:+.2f}"
    if float(text) == 0:
        text = text[1:]  # no sign on a value that rounds to zero
    return text.replace("-", "−")


def percent(v: float) -> str:
    """A percentage, whole, without the % sign ("" for nan)."""
    if not np.isfinite(v):
        return ""
    text = f"{v:.0f}"
    return "0" if text == "-0" else text.replace("-", "−")


def number_texts(m, fmt=signed) -> list[list[str]]:
    return [[fmt(v) for v in row] for row in m]


def track_on_screen(dock) -> None:
    """Keep dock.on_screen up to date: whether it is shown, and its tab is the current one.
    (A tabbed dock behind another stays isVisible() in Qt 6; visibilityChanged tells.)"""
    if hasattr(dock, "on_screen"):
        return
    dock.on_screen = False

    def changed(visible):
        dock.on_screen = visible

    dock.visibilityChanged.connect(changed)


def note_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class QuickAnalysisDock(Dock):
    kind = ""  # the request kind this dock asks for

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.shown_request = None  # the request (id 0) whose result is on screen
        self.pending_request = None
        self.pending_id = -1
        self.value = None  # the analysis result on screen (None: nothing, or a message)
        self.message = ""
        state.run_changed.connect(lambda _: self.refresh())
        state.selection_changed.connect(lambda *_: self.refresh())
        state.targets_changed.connect(lambda *_: self.refresh())
        state.model_changed.connect(self._on_model)
        track_on_screen(self)
        self.visibilityChanged.connect(lambda visible: visible and self.refresh())
        controller.result.connect(self._on_result)
        controller.failed.connect(self._on_failed)

    # --- to override ------------------------------------------------------------------------

    def wanted(self):
        """The request this dock needs now (id 0), or None when there is nothing to ask."""
        raise NotImplementedError

    def show_value(self, value, note: str) -> None:
        """Show a result (value None: only the note)."""
        raise NotImplementedError

    def clear(self) -> None:
        self.show_value(None, "")

    def active(self) -> bool:
        """Whether the dock computes now (by default: while it is on screen)."""
        return self.on_screen

    # --- machinery --------------------------------------------------------------------------

    def refresh(self):
        if not self.active() or self.state.run is None:
            return
        req = self.wanted()
        if req is None or req == self.shown_request or req == self.pending_request:
            return
        self.pending_request = req
        self.pending_id = self.controller.submit(req)

    def is_ready(self) -> bool:
        if self.state.run is None or not self.active():
            return True
        req = self.wanted()
        return req is None or req == self.shown_request

    def _on_result(self, r):
        if not (isinstance(r, AnalysisResult) and r.kind == self.kind and r.id == self.pending_id):
            return
        if r.run_id != self.state.run_id:
            return
        self.shown_request, self.pending_request = self.pending_request, None
        self.value, self.message = r.value, r.note
        self.ready_run_id = r.run_id
        self.show_value(r.value, r.note)

    def _on_failed(self, f: Failure):
        if f.kind == self.kind and f.id == self.pending_id:
            self.shown_request, self.pending_request = self.pending_request, None
            self.value, self.message = None, f.message
            self.show_value(None, f.message)
        elif f.kind == "run":  # a request dropped for that run is asked again
            self.pending_request = None
            self.refresh()

    def _on_model(self, info):
        self.shown_request = self.pending_request = None
        self.value, self.message = None, ""
        self.clear()


class JobDock(Dock):
    """Start / Stop / progress for a long analysis of kind `kind`."""

    kind = ""
    what = "analysis"  # in messages: "the sweep"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.job_id = -1
        self.running = False
        self.started = 0.0
        self.info: dict | None = None  # what the result on screen measures
        self.result = None  # SweepResult | PatchResult being filled
        self.stale = False
        self.updates = 0  # updates received from the running job
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m")
        self.status = note_label()
        track_on_screen(self)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        state.run_changed.connect(lambda _: self.check_stale())
        state.ablation_changed.connect(lambda _: self.check_stale())
        state.model_changed.connect(self._on_model)
        controller.result.connect(self._on_result)
        controller.failed.connect(self._on_failed)

    def buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.progress, 1)
        return row

    # --- to override ------------------------------------------------------------------------

    def make_request(self):
        """The job request for the current settings, or None (say why in self.status)."""
        raise NotImplementedError

    def begin(self, info: dict) -> None:
        """A new job's first update: make an empty self.result for info."""
        raise NotImplementedError

    def redraw(self) -> None:
        raise NotImplementedError

    def is_current(self, info: dict) -> bool:
        """Whether a result computed for info still describes what is on screen."""
        raise NotImplementedError

    def reset(self) -> None:
        """A new model: forget the result."""
        self.info = self.result = None

    # --- machinery --------------------------------------------------------------------------

    def is_ready(self) -> bool:
        return not self.running

    def start(self):
        if self.state.run is None:
            self.set_status("Run a prompt first", ERROR_STYLE)
            return
        req = self.make_request()
        if req is None:
            return
        self.job_id = self.controller.submit(req)
        self.running = True
        self.updates = 0
        self.started = time.perf_counter()
        self.progress.setRange(0, 0)  # busy until the first update says how many
        self.start_button.setText("Restart")
        self.stop_button.setEnabled(True)
        self.set_status(f"Starting {self.what}…")

    def stop(self):
        if not self.running:
            return
        self.controller.cancel(self.kind)
        self._finish()
        if self.updates and self.result is not None:
            r = self.result
            self.set_status(f"Stopped after {r.done} of {r.total} items", NOTE_STYLE)
        else:
            self.set_status("Stopped", NOTE_STYLE)

    def _finish(self):
        self.running = False
        self.start_button.setText("Start")
        self.stop_button.setEnabled(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)

    def set_status(self, text: str, style: str = ""):
        self.status.setStyleSheet(style)
        self.status.setText(text)

    def _on_result(self, r):
        if not (isinstance(r, JobUpdate) and r.kind == self.kind and r.id == self.job_id):
            return
        self.updates += 1
        if self.info is not r.info:
            self.info = r.info
            self.begin(r.info)
        if r.final:
            self.result = r.result
        else:
            for step in r.steps:
                self.result.add(step)
        self.progress.setRange(0, max(r.total, 1))
        self.progress.setValue(r.done)
        self.stale = not self.is_current(r.info)
        self.redraw()
        if r.final:
            self._finish()
            seconds = time.perf_counter() - self.started
            self.set_status(f"Done: {r.total} items in {seconds:.1f} s")
            self.check_stale()
        elif not self.stale:
            self.set_status(f"Computing {self.what}… {r.done} of {r.total}")
        else:
            self.check_stale()

    def _on_failed(self, f: Failure):
        if f.kind == self.kind and f.id == self.job_id and self.running:
            self._finish()
            message = f.message[:1].upper() + f.message[1:]
            self.set_status(message, ERROR_STYLE)

    def check_stale(self):
        if self.info is None or self.state.run is None:
            return
        stale = not self.is_current(self.info)
        if stale != self.stale:
            self.stale = stale
            self.redraw()
        if stale:
            state = "computing" if self.running else "computed"
            self.set_status(
                f"Stale: this {self.what} is {state} for an earlier prompt or ablation. "
                "Press Start to compute it for the current one.",
                NOTE_STYLE,
            )
        elif not self.running and self.status.styleSheet() == NOTE_STYLE and self.result:
            self.set_status(f"{self.result.done} of {self.result.total} items")

    def _on_model(self, info):
        self.job_id = -1
        self._finish()
        self.stale = False
        self.progress.setValue(0)
        self.set_status("")
        self.reset()
