"""Importance sweep: ablate each head, and each layer's attention and MLP, one at a time and show
how a metric changes, as a layers x heads heatmap that fills in while it is computed. Clicking
a cell ablates that component (or brings it back)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ...analysis import SweepResult
from ...engine import Ablation
from ..analysis_worker import SweepRequest
from ..widgets.heatmap import Heatmap
from .analysis_base import JobDock, clear_heatmap, esc, note_label, number_texts

METRICS = {
    "logit_diff": "Logit difference (target − foil)",
    "loss": "Loss of the next token",
    "kl": "KL divergence to the clean run",
}
MODES = ("zero", "mean")


class SweepDock(JobDock):
    title = "Importance sweep"
    name = "sweep"
    kind = "sweep"
    what = "sweep"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.marks: list[QGraphicsRectItem] = []
        w = QWidget()
        self.metric_box = QComboBox()
        for key, text in METRICS.items():
            self.metric_box.addItem(text, key)
        self.metric_box.setToolTip(
            "What is measured at the selected position. Logit difference: the target and foil "
            "set in Predictions (without a target: the clean model's top prediction). Loss: of "
            "the prompt's next token (or the target at the last position). KL: from the clean "
            "run's next-token distribution."
        )
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip("How each swept head is ablated: zero, or its mean over positions")
        self.on_top = QCheckBox("On top of the current ablation")
        self.on_top.setChecked(True)
        self.on_top.setToolTip(
            "Sweep the run with the current ablation in force (components it already removes "
            "are left out); unchecked: sweep the clean run"
        )
        row = QHBoxLayout()
        row.addWidget(QLabel("Metric"))
        row.addWidget(self.metric_box, 1)
        row.addWidget(QLabel("Mode"))
        row.addWidget(self.mode)
        row.addWidget(self.on_top)
        self.description = note_label()
        self.heatmap = Heatmap(cmap=state.diverging)
        plot = self.heatmap.getPlotItem()
        plot.setLabel("left", "layer")
        plot.setLabel("bottom", "head · whole attention · MLP")
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addLayout(self.buttons())
        lay.addWidget(self.description)
        lay.addWidget(self.heatmap, 1)
        lay.addWidget(self.readout)
        lay.addWidget(self.status)
        self.setWidget(w)
        self.heatmap.hovered.connect(self._on_hover)
        self.heatmap.clicked.connect(self._on_click)
        state.diverging_changed.connect(self.heatmap.set_colormap)
        state.ablation_changed.connect(lambda _: self.show_marks())
        self.set_status("Press Start to ablate every component in turn.")

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict:
        return {
            "metric": self.metric_box.currentData(),
            "mode": self.mode.currentText(),
            "on_top": self.on_top.isChecked(),
        }

    def check_settings(self, settings: dict) -> None:
        super().check_settings(settings)
        if settings.get("metric", "logit_diff") not in METRICS:
            raise ValueError(f"sweep.metric should be one of {', '.join(METRICS)}")
        if settings.get("mode", "zero") not in MODES:
            raise ValueError(f"sweep.mode should be one of {', '.join(MODES)}")

    def apply_settings(self, settings: dict) -> None:
        if settings.get("metric") in METRICS:
            self.metric_box.setCurrentIndex(list(METRICS).index(settings["metric"]))
        if settings.get("mode") in MODES:
            self.mode.setCurrentText(settings["mode"])
        if "on_top" in settings:
            self.on_top.setChecked(bool(settings["on_top"]))

    # --- the job ----------------------------------------------------------------------------

    def make_request(self):
        st = self.state
        return SweepRequest(
            metric=self.metric_box.currentData(),
            position=st.selected_position,
            target=st.target,
            foil=st.foil,
            mode=self.mode.currentText(),
            on_top=self.on_top.isChecked(),
        )

    def begin(self, info):
        m = self.state.model
        self.result = SweepResult.empty(m.n_layers, m.n_heads, None, info["base"], info["mode"])
        self.heatmap.set_matrix(
            self.matrix(), [f"L{l}" for l in range(m.n_layers)], self.columns(), (-1.0, 1.0)
        )
        self.heatmap.reset_view()

    def is_current(self, info) -> bool:
        run = self.state.run
        if run is None or list(run.ids) != info["ids"]:
            return False
        return not info["on_top"] or info["base"] == self.state.ablation

    def reset(self):
        super().reset()
        clear_heatmap(self.heatmap)
        self.description.setText("")
        self.show_marks()

    # --- drawing ----------------------------------------------------------------------------

    def columns(self) -> list[str]:
        H = self.result.heads.shape[1]
        return [f"H{h}" for h in range(H)] + ["", "attn", "MLP"]

    def matrix(self) -> np.ndarray:
        """(L, H + 3): heads, a blank column, whole attention, MLP."""
        r = self.result
        L, H = r.heads.shape
        m = np.full((L, H + 3), np.nan)
        m[:, :H] = r.heads
        m[:, H + 1] = r.attn
        m[:, H + 2] = r.mlp
        return m

    def redraw(self):
        r, info = self.result, self.info
        if r is None or info is None:
            return
        m = self.matrix()
        finite = np.abs(m[np.isfinite(m)])
        lim = max(float(finite.max()) if finite.size else 0.0, 1e-6)
        self.heatmap.set_matrix(m, levels=(-lim, lim))
        self.heatmap.set_cell_texts(number_texts(m), elide=False)
        base = "none" if not info["base"] else info["base"].describe()
        what = "the current ablation" if info["on_top"] else "the clean run"
        value = "" if not np.isfinite(r.base_value) else f"{r.base_value:+.3f}"
        sign = (
            "a negative change means the component helped"
            if info["metric_kind"] == "logit_diff"
            else "a positive change means the component helped"
        )
        stale = " <b>(stale)</b>" if self.stale else ""
        self.description.setText(
            f"<b>{esc(info['metric'])}</b>{stale}<br>"
            f"Each cell: the change when that component is also {info['mode']}-ablated "
            f"(on top of {what}: {esc(base)}; value there {value}); {sign}."
        )
        self.show_marks()
        if not self.readout.text().strip() or self.readout.property("summary"):
            self.readout.setText(self.summary())
            self.readout.setProperty("summary", True)

    def summary(self) -> str:
        top = self.result.top(4) if self.result is not None else []
        if not top:
            return " "
        parts = [f"{name(k, l, h)} {d:+.2f}" for k, l, h, d in top]
        return "Largest changes: " + ", ".join(parts)

    def show_marks(self):
        """Dashed frames on the components the current ablation removes."""
        for item in self.marks:
            self.heatmap.removeItem(item)
        self.marks = []
        r = self.result
        if r is None:
            return
        H = r.heads.shape[1]
        a = self.state.ablation
        cells = [(l, h) for l, h, _ in a.heads] + [(l, H + 1) for l in a.attn_layers]
        cells += [(l, H + 2) for l in a.mlp_layers]
        for row, col in cells:
            if row >= r.heads.shape[0]:
                continue
            item = QGraphicsRectItem(QRectF(col + 0.06, row + 0.06, 0.88, 0.88))
            pen = QPen(QColor("#ff5a36"), 2)
            pen.setCosmetic(True)
            pen.setStyle(Qt.PenStyle.DashLine)
            item.setPen(pen)
            item.setZValue(5)
            self.heatmap.addItem(item)
            self.marks.append(item)

    # --- mouse ------------------------------------------------------------------------------

    def component(self, row: int, col: int) -> tuple[str, int, int] | None:
        if self.result is None or row < 0:
            return None
        H = self.result.heads.shape[1]
        if col < H:
            return "head", row, col
        if col == H + 1:
            return "attn", row, -1
        if col == H + 2:
            return "mlp", row, -1
        return None

    def _on_hover(self, row, col, value):
        c = self.component(row, col)
        if c is None:
            self.readout.setText(self.summary())
            self.readout.setProperty("summary", True)
            return
        r = self.result
        if np.isfinite(value):
            text = f"{name(*c)}: change {value:+.4f} (metric {r.base_value + value:+.4f})"
        else:
            text = f"{name(*c)}: not computed (already ablated, or not yet)"
        self.readout.setText(text + " — click to ablate or restore it")
        self.readout.setProperty("summary", False)

    def _on_click(self, row, col):
        c = self.component(row, col)
        if c is None or self.state.model is None:
            return
        kind, layer, head = c
        a = self.state.ablation
        if kind == "head":
            mode = self.info["mode"] if self.info else self.state.mode
            self.state.set_ablation(a.toggled(layer, head, mode))
        elif kind == "attn":
            self.state.set_ablation(Ablation(a.heads, a.attn_layers ^ {layer}, a.mlp_layers))
        else:
            self.state.set_ablation(Ablation(a.heads, a.attn_layers, a.mlp_layers ^ {layer}))

    # --- export -----------------------------------------------------------------------------

    def plots(self) -> dict:
        return {"Sweep": self.heatmap}

    def export_tables(self) -> dict:
        from ...export_data import Table

        r = self.result
        if r is None or self.info is None:
            return {}
        t = Table(["component", "layer", "head", "metric", "change", "base_metric", "mode"])
        items = [("head", l, h, d) for (l, h), d in np.ndenumerate(r.heads)]
        items += [("attn", l, -1, d) for l, d in enumerate(r.attn)]
        items += [("mlp", l, -1, d) for l, d in enumerate(r.mlp)]
        for kind, l, h, d in items:
            value = r.base_value + d if np.isfinite(d) else None
            t.rows.append([kind, int(l), None if h < 0 else int(h), value, d, r.base_value,
                           self.info["mode"]])  # fmt: skip
        return {"Importance sweep": t}


def name(kind: str, layer: int, head: int) -> str:
    if kind == "head":
        return f"head {layer}.{head}"
    return f"L{layer} {'attention' if kind == 'attn' else 'MLP'}"
