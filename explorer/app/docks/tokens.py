"""Tokens: the prompt as chips, coloured by attention, loss or loss change; click selects."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from ..compute import PatternResult
from ..widgets.heatmap import DIVERGING_MAPS, colormap
from ..widgets.token_view import TokenView
from .base import Dock

MODES = ("Attention from selected token", "Loss (next token)", "Loss change under ablation")
MODE_KEYS = ("attention", "loss", "loss_change")  # in sessions


class TokensDock(Dock):
    title = "Tokens"
    name = "tokens"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.row: np.ndarray | None = None  # attention row of the selected query
        self.pattern: PatternResult | None = None
        w = QWidget()
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.legend = QLabel()
        self.diverging = QComboBox()
        self.diverging.addItems(DIVERGING_MAPS)
        self.diverging.setToolTip("Colour map for differences (CET-CBD1 is colour-blind safe)")
        self.diverging.setVisible(False)
        top = QHBoxLayout()
        top.addWidget(QLabel("Colour by"))
        top.addWidget(self.mode)
        top.addWidget(self.diverging)
        top.addStretch(1)
        top.addWidget(self.legend)
        self.view = TokenView()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.view)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(scroll, 1)
        self.setWidget(w)
        self.view.position_clicked.connect(lambda i: state.select(position=i))
        self.mode.currentIndexChanged.connect(lambda _: self.refresh())
        self.diverging.currentTextChanged.connect(state.set_diverging)
        state.diverging_changed.connect(self._on_diverging)
        state.run_changed.connect(self._on_run)
        state.selection_changed.connect(self._on_selection)
        state.colormap_changed.connect(lambda _: self.refresh())
        controller.result.connect(self._on_result)

    def settings(self) -> dict:
        return {"color_by": MODE_KEYS[self.mode.currentIndex()]}

    def check_settings(self, settings: dict) -> None:
        super().check_settings(settings)
        if settings.get("color_by", "attention") not in MODE_KEYS:
            raise ValueError(f"tokens.color_by should be one of {', '.join(MODE_KEYS)}")

    def apply_settings(self, settings: dict) -> None:
        if settings.get("color_by") in MODE_KEYS:
            self.mode.setCurrentIndex(MODE_KEYS.index(settings["color_by"]))

    def _on_diverging(self, name):
        self.diverging.blockSignals(True)
        self.diverging.setCurrentText(name)
        self.diverging.blockSignals(False)
        self.refresh()

    def _on_run(self, r):
        self.view.set_tokens(r.texts)
        self.view.tooltips = self.tooltips()
        self.refresh()
        self.ready_run_id = r.run_id

    def _on_result(self, r):
        if isinstance(r, PatternResult) and self.current(r) and r.ablated:
            self.pattern = r
            self.refresh()

    def _on_selection(self, position, layer, head):
        if self.mode.currentIndex() == 0 and position == self.view.selected:
            # another head: keep showing the last pattern until the new one arrives
            return
        self.refresh()

    def refresh(self):
        st, run = self.state, self.state.run
        if run is None:
            return
        pos = st.selected_position
        self.view.set_selected(pos)
        mode = self.mode.currentIndex()
        self.diverging.setVisible(mode == 2)
        lut = colormap(st.colormap).getLookupTable(nPts=256)
        p = self.pattern
        if mode == 0:
            if p is None or p.run_id != run.run_id or (p.layer, p.head) != (st.layer, st.head):
                values, levels = None, (0, 1)
            else:
                values = p.pattern[pos]
                levels = (0.0, max(float(values.max()), 1e-6))
            head = "layer average" if st.head < 0 else f"head {st.layer}.{st.head}"
            self.legend.setText(f"attention of token {pos} in {head}")
        elif mode == 1:
            values = run.loss_ablated
            finite = values[np.isfinite(values)]
            levels = (0.0, float(finite.max()) if finite.size else 1.0)
            self.legend.setText(f"loss in nats, 0 … {levels[1]:.1f}")
        else:
            values = run.loss_ablated - run.loss_clean
            finite = np.abs(values[np.isfinite(values)])
            m = max(float(finite.max()) if finite.size else 0.0, 1e-3)
            levels = (-m, m)
            lut = colormap(st.diverging).getLookupTable(nPts=256)
            self.legend.setText(f"ablated − clean loss, ±{m:.2f} nats")
        self.view.set_values(values, levels, lut)

    def tooltips(self) -> list[str]:
        run = self.state.run
        out = []
        for i, (tid, text) in enumerate(zip(run.ids, run.texts)):
            lines = [f"<b>#{i}</b> id {tid}: <code>{_esc(repr(text))}</code>"]
            lc, la = run.loss_clean[i], run.loss_ablated[i]
            if math.isfinite(lc):
                extra = f" (ablated {la:.3f})" if run.ablation else ""
                lines.append(f"loss of next token: {lc:.3f}{extra}")
            if i < len(run.top1_texts):
                lines.append(
                    f"top prediction: <code>{_esc(repr(run.top1_texts[i]))}</code> "
                    f"{run.top_probs[i, 0]:.1%}"
                )
            out.append("<br>".join(lines))
        return out


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
