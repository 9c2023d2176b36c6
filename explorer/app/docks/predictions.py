"""Predictions: top-k next tokens clean vs ablated, KL, a logit difference, loss per position."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..compute import PredictRequest, PredictResult
from ..widgets.heatmap import visible_label
from .base import Dock

COLUMNS = ("clean", "p", "ablated", "p", "Δp")


class PredictionsDock(Dock):
    title = "Predictions"
    name = "predictions"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.last: PredictResult | None = None
        w = QWidget()
        self.heading = QLabel()
        self.heading.setStyleSheet("font-weight: bold")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for j in range(len(COLUMNS)):
            mode = (
                QHeaderView.ResizeMode.Stretch
                if j in (0, 2)
                else QHeaderView.ResizeMode.ResizeToContents
            )
            header.setSectionResizeMode(j, mode)
        self.kl = QLabel()
        self.target = QLineEdit()
        self.foil = QLineEdit()
        for e, hint in ((self.target, "target, e.g. ' Mary'"), (self.foil, "foil, e.g. ' John'")):
            e.setPlaceholderText(hint)
            e.setToolTip("A single token; a leading space matters (' Mary' is not 'Mary')")
        self.diff = QLabel()
        pair = QHBoxLayout()
        pair.addWidget(QLabel("Logit difference"))
        pair.addWidget(self.target)
        pair.addWidget(QLabel("−"))
        pair.addWidget(self.foil)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(None)
        self.plot.setLabel("bottom", "position")
        self.plot.setLabel("left", "loss (nats)")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setMouseEnabled(x=True, y=False)
        self.curve_clean = self.plot.plot(
            pen=pg.mkPen("#3b82f6", width=2), name="clean", symbol="o", symbolSize=4
        )
        self.curve_ablated = self.plot.plot(
            pen=pg.mkPen("#d7263d", width=2, style=Qt.PenStyle.DashLine), name="ablated"
        )
        self.pos_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(QColor("#ff5a36"), width=1))
        self.plot.addItem(self.pos_line)
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(self.heading)
        ul.addWidget(self.table, 1)
        ul.addWidget(self.kl)
        ul.addLayout(pair)
        ul.addWidget(self.diff)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(self.plot)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self.setWidget(w)
        self.target.editingFinished.connect(self._targets_edited)
        self.foil.editingFinished.connect(self._targets_edited)
        self.plot.scene().sigMouseClicked.connect(self._plot_clicked)
        state.run_changed.connect(self._on_run)
        state.selection_changed.connect(self._on_selection)
        state.targets_changed.connect(self._on_targets)
        controller.result.connect(self._on_result)

    def request(self):
        st = self.state
        if st.run:
            self.controller.submit(
                PredictRequest(st.run_id, st.selected_position, st.target, st.foil)
            )

    def _targets_edited(self):
        self.state.set_targets(self.target.text(), self.foil.text())

    def _on_targets(self, target, foil):
        for e, v in ((self.target, target), (self.foil, foil)):
            if e.text() != v:
                e.setText(v)
        self.request()

    def _on_run(self, r):
        x = np.arange(len(r.ids))
        self.curve_clean.setData(x, np.nan_to_num(r.loss_clean, nan=np.nan), connect="finite")
        if r.ablation:
            self.curve_ablated.setData(x, r.loss_ablated, connect="finite")
        else:
            self.curve_ablated.setData([], [])
        self.pos_line.setValue(self.state.selected_position)
        self.request()

    def _on_selection(self, position, layer, head):
        self.pos_line.setValue(position)
        if self.last is None or self.last.position != position:
            self.request()

    def _plot_clicked(self, ev):
        vb = self.plot.getPlotItem().getViewBox()
        if self.state.run and vb.sceneBoundingRect().contains(ev.scenePos()):
            x = int(round(vb.mapSceneToView(ev.scenePos()).x()))
            self.state.select(position=max(0, min(x, self.state.n_tokens - 1)))

    def _on_result(self, r):
        if not (isinstance(r, PredictResult) and self.current(r)):
            return
        self.last = r
        run = self.state.run
        tok = visible_label(run.texts[r.position], 30)
        nxt = ""
        if r.position + 1 < len(run.texts):
            nxt = f" — actual next: “{visible_label(run.texts[r.position + 1], 30)}”"
        self.heading.setText(f"After token {r.position} “{tok}”{nxt}")
        self.table.setRowCount(len(r.clean))
        for i, (c, a) in enumerate(zip(r.clean, r.ablated)):
            delta = a[2] - r.prob_clean_of_ablated_top[i]
            cells = (
                visible_label(c[1], 24),
                f"{c[2]:.3f}",
                visible_label(a[1], 24),
                f"{a[2]:.3f}",
                f"{delta:+.3f}",
            )
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j in (1, 3, 4):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if j == 4 and abs(delta) > 0.005:
                    item.setForeground(QColor("#1a9850" if delta > 0 else "#d73027"))
                self.table.setItem(i, j, item)
        if r.note:
            self.kl.setText(r.note)
        elif self.state.run.ablation:
            self.kl.setText(f"KL(clean ‖ ablated) = {r.kl:.4f} nats")
        else:
            self.kl.setText("No ablation: clean and ablated are the same")
        if r.diff_clean is not None:
            change = r.diff_ablated - r.diff_clean
            self.diff.setText(
                f"clean {r.diff_clean:+.3f}   ablated {r.diff_ablated:+.3f}   change {change:+.3f}"
            )
        elif r.target and r.foil and r.note:
            self.diff.setText(r.note)
        else:
            self.diff.setText("Enter two tokens to compare their logits")
        self.ready_run_id = r.run_id

    def plots(self) -> dict:
        return {"Loss per position": self.plot}

    def export_tables(self) -> dict:
        from ...export_data import Table

        out = {}
        r, run = self.last, self.state.run
        if r is not None and run is not None and r.clean:
            t = Table(
                ["position", "rank", "clean_id", "clean_token", "clean_p", "ablated_id",
                 "ablated_token", "ablated_p", "clean_p_of_ablated_token", "delta_p"]
            )  # fmt: skip
            for i, (c, a) in enumerate(zip(r.clean, r.ablated)):
                pc = r.prob_clean_of_ablated_top[i]
                t.rows.append(
                    [r.position, i + 1, c[0], c[1], c[2], a[0], a[1], a[2], pc, a[2] - pc]
                )
            out["Predictions"] = t
        if run is not None:
            t = Table(["position", "token_id", "token", "loss_clean", "loss_ablated", "top1",
                       "top1_p"])  # fmt: skip
            for i, (tid, text) in enumerate(zip(run.ids, run.texts)):
                top = run.top1_texts[i] if i < len(run.top1_texts) else ""
                p = float(run.top_probs[i, 0]) if run.top_probs.shape[1] else None
                t.rows.append([i, tid, text, run.loss_clean[i], run.loss_ablated[i], top, p])
            out["Loss per position"] = t
        return out

    def values(self) -> dict:
        """What the table shows, for tests and export."""
        r = self.last
        return {
            "clean": [(t, p) for _, t, p in r.clean],
            "ablated": [(t, p) for _, t, p in r.ablated],
            "kl": r.kl,
            "diff": (r.diff_clean, r.diff_ablated),
        } if r else {}  # fmt: skip


def finite(x) -> bool:
    return x is not None and math.isfinite(x)
