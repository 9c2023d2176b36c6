"""Attention: every head as a thumbnail (model view) and the selected head large."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..compute import GridRequest, GridResult, PatternRequest, PatternResult
from ..widgets.heatmap import COLORMAPS, HeadGrid, Heatmap, visible_label
from .base import Dock

KEYS_LAYER = {
    Qt.Key.Key_Up: -1,
    Qt.Key.Key_Down: 1,
    Qt.Key.Key_PageUp: -1,
    Qt.Key.Key_PageDown: 1,
}
KEYS_HEAD = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}


class AttentionPanel(QWidget):
    """The dock's widget; takes the arrow keys to step heads and layers."""

    def __init__(self, dock: AttentionDock):
        super().__init__()
        self.dock = dock
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def keyPressEvent(self, ev):
        st = self.dock.state
        shift = ev.modifiers() & Qt.KeyboardModifier.ShiftModifier
        if ev.key() in KEYS_HEAD and shift:  # Shift+← →: the query position
            n = st.n_tokens
            if n:
                st.select(position=max(0, min(st.selected_position + KEYS_HEAD[ev.key()], n - 1)))
        elif ev.key() in KEYS_HEAD:
            st.step_head(d_head=KEYS_HEAD[ev.key()])
        elif ev.key() in KEYS_LAYER:
            st.step_head(d_layer=KEYS_LAYER[ev.key()])
        else:
            super().keyPressEvent(ev)


class AttentionDock(Dock):
    title = "Attention"
    name = "attention"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.pattern: np.ndarray | None = None
        self.shown: tuple | None = None  # (run_id, layer, head, ablated) on the big heatmap
        self.grid_run = -1
        w = AttentionPanel(self)
        self.panel = w
        top = QHBoxLayout()
        self.cmap = QComboBox()
        self.cmap.addItems(COLORMAPS)
        self.cmap.setToolTip("Colour map (perceptually uniform, colour-blind safe)")
        self.average = QCheckBox("Layer average")
        self.average.setToolTip("Show the mean attention of all heads in the selected layer")
        self.clean = QCheckBox("Clean run")
        self.clean.setToolTip("Show the patterns without the ablation (they differ after it)")
        self.title_label = QLabel()
        self.title_label.setStyleSheet("font-weight: bold")
        top.addWidget(self.title_label)
        top.addStretch(1)
        top.addWidget(self.average)
        top.addWidget(self.clean)
        top.addWidget(QLabel("Colours"))
        top.addWidget(self.cmap)
        self.grid = HeadGrid()
        self.grid.setMinimumWidth(160)
        self.heatmap = Heatmap()
        self.heatmap.getPlotItem().setLabel("left", "query")
        self.heatmap.getPlotItem().setLabel("bottom", "key")
        self.row_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(QColor("#ff5a36"), width=1.5))
        self.heatmap.addItem(self.row_line)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.grid)
        split.addWidget(self.heatmap)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.readout)
        self.setWidget(w)

        self.cmap.currentTextChanged.connect(state.set_colormap)
        state.colormap_changed.connect(self._on_colormap)
        self.average.toggled.connect(lambda on: state.select(head=-1 if on else 0))
        self.clean.toggled.connect(lambda _: self.request(grid=True))
        self.grid.head_clicked.connect(self._on_head_clicked)
        self.grid.hovered.connect(self._on_grid_hover)
        self.heatmap.hovered.connect(self._on_hover)
        self.heatmap.clicked.connect(lambda r, c: state.select(position=r))
        state.run_changed.connect(lambda _: self.request(grid=True))
        state.selection_changed.connect(self._on_selection)
        state.ablation_changed.connect(
            lambda a: self.grid.set_marked({(l, h) for l, h, _ in a.heads})
        )
        controller.result.connect(self._on_result)

    # --- requests ---------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"clean": self.clean.isChecked()}

    def apply_settings(self, settings: dict) -> None:
        if "clean" in settings:
            self.clean.setChecked(bool(settings["clean"]))

    def plots(self) -> dict:
        return {"Attention heatmap": self.heatmap, "Head grid": self.grid}

    def ablated_view(self) -> bool:
        return not self.clean.isChecked()

    def request(self, grid: bool = False):
        st = self.state
        if not st.run:
            return
        key = (st.run_id, st.layer, st.head, self.ablated_view())
        if key != self.shown:
            self.controller.submit(
                PatternRequest(st.run_id, st.layer, st.head, self.ablated_view())
            )
        if grid:
            self.controller.submit(GridRequest(st.run_id, ablated=self.ablated_view()))

    def _on_result(self, r):
        if isinstance(r, PatternResult) and self.current(r):
            self.show_pattern(r)
        elif isinstance(r, GridResult) and self.current(r):
            self.grid.set_thumbs(r.thumbs)
            self.grid.select(self.state.layer, self.state.head)
            self.grid_run = r.run_id
            self._check_ready()

    def show_pattern(self, r: PatternResult):
        texts = self.state.run.texts
        self.pattern = r.pattern
        self.shown = (r.run_id, r.layer, r.head, r.ablated)
        self.heatmap.set_matrix(r.pattern, texts, texts)
        which = "average of all heads" if r.head < 0 else f"head {r.head}"
        note = "" if r.ablated or not self.state.ablation else " (clean run)"
        self.title_label.setText(f"Layer {r.layer}, {which}{note}")
        self.row_line.setValue(self.state.selected_position + 0.5)
        self._check_ready()

    def _check_ready(self):
        if self.shown and self.shown[0] == self.state.run_id and self.grid_run == self.state.run_id:
            self.ready_run_id = self.state.run_id

    # --- GUI events -------------------------------------------------------------------------

    def _on_selection(self, position, layer, head):
        self.grid.select(layer, head)
        self.row_line.setValue(position + 0.5)
        self.average.blockSignals(True)
        self.average.setChecked(head < 0)
        self.average.blockSignals(False)
        self.request()

    def _on_head_clicked(self, layer, head):
        self.average.setChecked(False)
        self.state.select(layer=layer, head=head)
        self.panel.setFocus()

    def _on_colormap(self, name):
        self.cmap.blockSignals(True)
        self.cmap.setCurrentText(name)
        self.cmap.blockSignals(False)
        self.heatmap.set_colormap(name)
        self.grid.set_colormap(name)

    def _on_grid_hover(self, layer, head):
        if layer >= 0:
            self.grid.setToolTip(f"Layer {layer}, head {head} — click to show it large")

    def _on_hover(self, row, col, value):
        if row < 0 or not self.state.run:
            self.readout.setText(" ")
            return
        t = self.state.run.texts
        self.readout.setText(
            f"query {row} “{visible_label(t[row], 30)}” → key {col} “{visible_label(t[col], 30)}”:"
            f"  weight {value:.4f}"
        )
