"""Logit lens: the residual stream after every layer read through the final norm and the
unembedding, at every position. Cells show the top token (its text where a cell is large
enough, else on hover), coloured by its probability or by a target token's; clicking a column
selects that position."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ...analysis import LensResult
from ..analysis_worker import LensRequest
from ..widgets.heatmap import Heatmap, visible_label
from .analysis_base import NOTE_STYLE, QuickAnalysisDock, clear_heatmap, note_label

COLOR_BY = {"target": "Target probability (when a target is set)", "top": "Top-token probability"}


class LensDock(QuickAnalysisDock):
    title = "Logit lens"
    name = "lens"
    kind = "lens"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        w = QWidget()
        self.color_by = QComboBox()
        for key, text in COLOR_BY.items():
            self.color_by.addItem(text, key)
        self.color_by.setToolTip("The target is set in Predictions (Logit difference)")
        row = QHBoxLayout()
        row.addWidget(QLabel("Colour"))
        row.addWidget(self.color_by)
        row.addStretch(1)
        self.heading = note_label()
        self.heatmap = Heatmap(cmap=state.colormap)
        plot = self.heatmap.getPlotItem()
        plot.setLabel("left", "after layer")
        plot.setLabel("bottom", "position (predicting the next token)")
        self.column = QGraphicsRectItem()
        pen = QPen(QColor("#ff5a36"), 2.5)
        pen.setCosmetic(True)
        self.column.setPen(pen)
        self.column.setZValue(6)
        self.heatmap.addItem(self.column)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = note_label()
        self.message_label.setStyleSheet(NOTE_STYLE)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.heading)
        lay.addWidget(self.message_label)
        lay.addWidget(self.heatmap, 1)
        lay.addWidget(self.readout)
        self.setWidget(w)
        self.color_by.currentIndexChanged.connect(lambda _: self.draw())
        self.heatmap.hovered.connect(self._on_hover)
        self.heatmap.clicked.connect(lambda r, c: state.select(position=c))
        state.selection_changed.connect(lambda *_: self.mark_position())
        state.colormap_changed.connect(self.heatmap.set_colormap)

    def wanted(self):
        st = self.state
        return LensRequest(st.run_id, st.target) if st.run else None

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"color_by": self.color_by.currentData()}

    def check_settings(self, settings: dict) -> None:
        super().check_settings(settings)
        if settings.get("color_by", "target") not in COLOR_BY:
            raise ValueError(f"lens.color_by should be one of {', '.join(COLOR_BY)}")

    def apply_settings(self, settings: dict) -> None:
        if settings.get("color_by") in COLOR_BY:
            self.color_by.setCurrentIndex(list(COLOR_BY).index(settings["color_by"]))

    # --- showing ----------------------------------------------------------------------------

    def show_value(self, value: LensResult | None, note: str):
        self.message_label.setText(note)
        self.message_label.setVisible(bool(note))
        if value is None:
            clear_heatmap(self.heatmap)
            self.heading.setText("")
            self.column.setRect(QRectF())
            return
        self.draw()

    def shows_target(self) -> bool:
        r = self.value
        return (
            r is not None and r.target_probs is not None and self.color_by.currentData() == "target"
        )

    def matrix(self) -> np.ndarray:
        r = self.value
        return r.target_probs if self.shows_target() else r.top_probs

    def draw(self):
        r = self.value
        if r is None:
            return
        self.heatmap.set_matrix(self.matrix(), r.layers, r.tokens, (0.0, 1.0))
        self.heatmap.set_cell_texts([[visible_label(t, 12) for t in row] for row in r.top_texts])
        if self.shows_target():
            what = f"probability of the target “{visible_label(r.target_text, 30)}”"
        else:
            what = "probability of the top token"
        self.heading.setText(
            f"Colour: {what}. Text: the top token. Row “embed” reads the embeddings, row L<i>k</i> "
            "the output of layer k, through the final norm and the unembedding."
        )
        self.mark_position()

    def mark_position(self):
        if self.value is None or self.state.run is None:
            return
        rows = len(self.value.layers)
        self.column.setRect(QRectF(self.state.selected_position, 0, 1, rows))

    def _on_hover(self, row, col, value):
        r = self.value
        if r is None or row < 0:
            self.readout.setText(" ")
            return
        text = (
            f"{r.layers[row]} at {col} “{visible_label(r.tokens[col], 24)}”: top "
            f"“{visible_label(r.top_texts[row][col], 24)}” {r.top_probs[row, col]:.1%}"
        )
        if r.target_probs is not None:
            text += (
                f" · target “{visible_label(r.target_text, 24)}” {r.target_probs[row, col]:.2%}"
                f" (rank {int(r.target_ranks[row, col]) + 1})"
            )
        self.readout.setText(text)

    # --- export -----------------------------------------------------------------------------

    def plots(self) -> dict:
        return {"Logit lens": self.heatmap}

    def export_tables(self) -> dict:
        from ...export_data import Table

        r = self.value
        if r is None:
            return {}
        cols = ["layer", "position", "token", "top_id", "top_token", "top_p"]
        if r.target_probs is not None:
            cols += ["target", "target_p", "target_rank"]
        t = Table(cols)
        for i, layer in enumerate(r.layers):
            for p, tok in enumerate(r.tokens):
                row = [layer, p, tok, int(r.top_ids[i, p]), r.top_texts[i][p], r.top_probs[i, p]]
                if r.target_probs is not None:
                    row += [r.target_text, r.target_probs[i, p], int(r.target_ranks[i, p]) + 1]
                t.rows.append(row)
        return {"Logit lens": t}
