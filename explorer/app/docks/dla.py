"""Direct logit attribution: each head's and each MLP's direct contribution to the target's
logit (or the target − foil difference) at the selected position, read through the final norm
with its scale frozen; the parts add up to the model's own logit, which the dock shows."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ...analysis import DLAResult
from ..analysis_worker import DLARequest
from ..widgets.heatmap import Heatmap, visible_label
from .analysis_base import (
    NOTE_STYLE,
    QuickAnalysisDock,
    clear_heatmap,
    esc,
    note_label,
    number_texts,
)

SUM_TOLERANCE = 1e-3


class DLADock(QuickAnalysisDock):
    title = "Logit attribution"
    name = "dla"
    kind = "dla"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        w = QWidget()
        self.heading = note_label()
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.frozen = note_label()
        self.message_label = note_label()
        self.message_label.setStyleSheet(NOTE_STYLE)
        self.heatmap = Heatmap(cmap=state.diverging)
        plot = self.heatmap.getPlotItem()
        plot.setLabel("left", "layer")
        plot.setLabel("bottom", "head · MLP")
        self.sum_check = note_label()
        self.sum_check.setTextFormat(Qt.TextFormat.RichText)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.heading)
        lay.addWidget(self.message_label)
        lay.addWidget(self.frozen)
        lay.addWidget(self.heatmap, 1)
        lay.addWidget(self.readout)
        lay.addWidget(self.sum_check)
        self.setWidget(w)
        self.heatmap.hovered.connect(self._on_hover)
        self.heatmap.clicked.connect(self._on_click)
        state.diverging_changed.connect(self.heatmap.set_colormap)

    def wanted(self):
        st = self.state
        if st.run is None:
            return None
        return DLARequest(st.run_id, st.selected_position, st.target, st.foil)

    # --- showing ----------------------------------------------------------------------------

    def matrix(self) -> np.ndarray:
        """(L, H + 2): heads, a blank column, MLP."""
        r = self.value
        L, H = r.heads.shape
        m = np.full((L, H + 2), np.nan)
        m[:, :H] = r.heads
        m[:, H + 1] = r.mlp
        return m

    def show_value(self, r: DLAResult | None, note: str):
        self.message_label.setText(note[:1].upper() + note[1:])
        self.message_label.setVisible(bool(note))
        if r is None:
            clear_heatmap(self.heatmap)
            for label in (self.heading, self.frozen, self.sum_check):
                label.setText("")
            self.readout.setText(" ")
            return
        L, H = r.heads.shape
        m = self.matrix()
        lim = max(float(np.nanmax(np.abs(m))), 1e-6)
        cols = [f"H{h}" for h in range(H)] + ["", "MLP"]
        self.heatmap.set_matrix(m, [f"L{l}" for l in range(L)], cols, (-lim, lim))
        self.heatmap.set_cell_texts(number_texts(m), elide=False)
        run = self.state.run
        tok = run.texts[r.position] if run and r.position < len(run.texts) else ""
        what = f"logit[“{esc(visible_label(r.target_text, 30))}”]"
        if r.foil is not None:
            what += f" − logit[“{esc(visible_label(r.foil_text, 30))}”]"
        auto = "" if self.state.target else " (the top prediction: set a target in Predictions)"
        self.heading.setText(
            f"Direct contributions to <b>{what}</b>{esc(auto)} at position {r.position} "
            f"“{esc(visible_label(tok, 30))}”"
        )
        self.frozen.setText(
            f"Read through the final norm with its scale frozen (scale = {r.norm_scale:.4g}, "
            "from the full residual stream at this position). Only direct paths count: a head's "
            "effect through later layers is theirs."
        )
        gap = abs(r.total - r.logit)
        ok = "✓" if gap <= SUM_TOLERANCE else "✗"
        self.sum_check.setText(
            f"embedding {r.embed:+.3f} + heads {r.heads.sum():+.3f} + MLPs {r.mlp.sum():+.3f}"
            f" + attention biases {r.attn_bias.sum():+.3f} + norm/unembedding biases "
            f"{r.constant:+.3f} = <b>{r.total:+.4f}</b>; the model's logit"
            f"{' difference' if r.foil is not None else ''}: <b>{r.logit:+.4f}</b> "
            f"(off by {gap:.1e} {ok})"
        )

    def _on_hover(self, row, col, value):
        r = self.value
        if r is None or row < 0 or not np.isfinite(value):
            self.readout.setText(" ")
            return
        H = r.heads.shape[1]
        part = f"head {row}.{col}" if col < H else f"L{row} MLP"
        self.readout.setText(f"{part}: {value:+.4f}" + (" — click to select it" if col < H else ""))

    def _on_click(self, row, col):
        r = self.value
        if r is not None and col < r.heads.shape[1]:
            self.state.select(layer=row, head=col)

    # --- export -----------------------------------------------------------------------------

    def plots(self) -> dict:
        return {"Logit attribution": self.heatmap}

    def export_tables(self) -> dict:
        from ...export_data import Table

        r = self.value
        if r is None:
            return {}
        t = Table(["part", "layer", "head", "contribution"])
        t.rows.append(["embed", None, None, r.embed])
        for (l, h), v in np.ndenumerate(r.heads):
            t.rows.append(["head", l, h, v])
        for l, v in enumerate(r.attn_bias):
            t.rows.append(["attn_bias", l, None, v])
        for l, v in enumerate(r.mlp):
            t.rows.append(["mlp", l, None, v])
        t.rows.append(["constant", None, None, r.constant])
        t.rows.append(["total", None, None, r.total])
        t.rows.append(["logit", None, None, r.logit])
        return {"Logit attribution": t}
