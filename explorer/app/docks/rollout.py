"""Attention rollout (Abnar & Zuidema 2020) from the selected position: how much of its
representation after each layer flows from each input token, following attention edges (with
the residual connection as an identity). The prompt's tokens are coloured by the rollout
through all layers; the heatmap shows it layer by layer."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ...analysis import RolloutResult
from ..analysis_worker import RolloutRequest
from ..widgets.heatmap import Heatmap, colormap, visible_label
from ..widgets.token_view import TokenView
from .analysis_base import NOTE_STYLE, QuickAnalysisDock, clear_heatmap, esc, note_label


class RolloutDock(QuickAnalysisDock):
    title = "Attention rollout"
    name = "rollout"
    kind = "rollout"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        w = QWidget()
        self.residual = QCheckBox("Add the residual connection")
        self.residual.setChecked(True)
        self.residual.setToolTip(
            "Average each layer's heads with the identity, (A + I) / 2, before multiplying: "
            "the residual stream carries each token forward (Abnar & Zuidema 2020)"
        )
        row = QHBoxLayout()
        row.addWidget(self.residual)
        row.addStretch(1)
        self.heading = note_label()
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.message_label = note_label()
        self.message_label.setStyleSheet(NOTE_STYLE)
        self.tokens = TokenView()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.tokens)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumHeight(self.fontMetrics().height() * 2 + 12)
        self.heatmap = Heatmap(cmap=state.colormap)
        plot = self.heatmap.getPlotItem()
        plot.setLabel("left", "through layer")
        plot.setLabel("bottom", "input token")
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(scroll)
        split.addWidget(self.heatmap)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.heading)
        lay.addWidget(self.message_label)
        lay.addWidget(split, 1)
        lay.addWidget(self.readout)
        self.setWidget(w)
        self.residual.toggled.connect(lambda _: self.refresh())
        self.tokens.position_clicked.connect(lambda i: state.select(position=i))
        self.heatmap.hovered.connect(self._on_hover)
        self.heatmap.clicked.connect(lambda r, c: state.select(position=c))
        state.colormap_changed.connect(self._on_colormap)

    def wanted(self):
        st = self.state
        if st.run is None:
            return None
        return RolloutRequest(st.run_id, st.selected_position, self.residual.isChecked())

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"add_residual": self.residual.isChecked()}

    def apply_settings(self, settings: dict) -> None:
        if "add_residual" in settings:
            self.residual.setChecked(bool(settings["add_residual"]))

    # --- showing ----------------------------------------------------------------------------

    def show_value(self, r: RolloutResult | None, note: str):
        self.message_label.setText(note)
        self.message_label.setVisible(bool(note))
        if r is None:
            clear_heatmap(self.heatmap)
            self.tokens.set_tokens([])
            self.heading.setText("")
            return
        L = r.layers.shape[0]
        self.heatmap.set_matrix(r.layers, [f"L{l}" for l in range(L)], r.tokens, (0.0, top(r)))
        if self.tokens.texts != r.tokens:
            self.tokens.set_tokens(r.tokens)
        self.color_tokens()
        self.tokens.set_selected(r.position)
        others = [i for i in np.argsort(-r.scores) if i != r.position][:3]
        parts = ", ".join(
            f"“{esc(visible_label(r.tokens[i], 20))}” ({i}) {r.scores[i]:.0%}" for i in others
        )
        self.heading.setText(
            f"From position {r.position} “{esc(visible_label(r.tokens[r.position], 24))}”, "
            f"through all layers: itself {r.scores[r.position]:.0%}, then {parts}. (Colours "
            "are scaled to the other tokens: the token itself may saturate.)"
        )

    def color_tokens(self):
        r = self.value
        if r is None:
            return
        lut = colormap(self.state.colormap).getLookupTable(nPts=256)
        others = np.delete(r.scores, r.position)
        hi = max(float(others.max()) if others.size else float(r.scores.max()), 1e-6)
        tips = [f"#{i} {esc(repr(t))}: rollout {v:.3f}" for i, (t, v) in enumerate(
            zip(r.tokens, r.scores))]  # fmt: skip
        self.tokens.set_values(r.scores, (0.0, hi), lut, tips)

    def _on_colormap(self, name):
        self.heatmap.set_colormap(name)
        self.color_tokens()

    def _on_hover(self, row, col, value):
        r = self.value
        if r is None or row < 0:
            self.readout.setText(" ")
            return
        self.readout.setText(
            f"through layer {row}: from “{visible_label(r.tokens[col], 24)}” ({col}) {value:.4f}"
        )

    # --- export -----------------------------------------------------------------------------

    def plots(self) -> dict:
        return {"Attention rollout": self.heatmap}

    def export_tables(self) -> dict:
        from ...export_data import Table

        r = self.value
        if r is None:
            return {}
        t = Table(["from_position", "through_layer", "position", "token", "rollout"])
        for (l, p), v in np.ndenumerate(r.layers):
            t.rows.append([r.position, l, p, r.tokens[p], v])
        return {"Attention rollout": t}


def top(r: RolloutResult) -> float:
    """The colour scale's top: the largest value outside the selected position's own column
    (which the residual connection makes large, washing out the rest)."""
    others = np.delete(r.layers, r.position, axis=1)
    hi = float(others.max()) if others.size else float(r.layers.max())
    return max(hi, 1e-6)
