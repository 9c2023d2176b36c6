"""Ablation: switch heads, attention sublayers and MLPs off; everything updates live."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...engine import Ablation
from .base import Dock

BUTTON_STYLE = """
QToolButton { min-width: 26px; min-height: 22px; border: 1px solid palette(mid);
              border-radius: 3px; background: palette(base); }
QToolButton:checked { background: #d7263d; color: white; border-color: #a0192c; }
QToolButton[selected="true"] { border: 2px solid #ff5a36; }
"""


class AblationDock(Dock):
    title = "Ablation"
    name = "ablation"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.heads: dict[tuple[int, int], QToolButton] = {}
        self.attn: dict[int, QCheckBox] = {}
        self.mlp: dict[int, QCheckBox] = {}
        w = QWidget()
        top = QHBoxLayout()
        self.mode = QComboBox()
        self.mode.addItems(["zero", "mean"])
        self.mode.setToolTip(
            "zero: the head's output is 0; mean: its output is replaced by its mean over the "
            "prompt's positions"
        )
        self.reset = QPushButton("Reset")
        self.count = QLabel("nothing ablated")
        top.addWidget(QLabel("Mode"))
        top.addWidget(self.mode)
        top.addWidget(self.reset)
        top.addStretch(1)
        self.grid_host = QWidget()
        self.grid_host.setStyleSheet(BUTTON_STYLE)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(3)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_host)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.count)
        lay.addWidget(scroll, 1)
        self.setWidget(w)
        self.mode.currentTextChanged.connect(state.set_mode)
        self.reset.clicked.connect(lambda: state.set_ablation(Ablation()))
        state.mode_changed.connect(self._on_mode)
        state.model_changed.connect(self.rebuild)
        state.ablation_changed.connect(self.show_ablation)
        state.selection_changed.connect(self._on_selection)
        self.ready_run_id = 0

    def is_ready(self):
        return True  # it shows the ablation, which never waits on the worker

    def rebuild(self, info):
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.heads.clear()
        self.attn.clear()
        self.mlp.clear()
        if info is None:
            return
        L, H = info.n_layers, info.n_heads
        for h in range(H):
            lab = QLabel(f"H{h}")
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.grid.addWidget(lab, 0, h + 1)
        self.grid.addWidget(QLabel("attn"), 0, H + 1)
        self.grid.addWidget(QLabel("MLP"), 0, H + 2)
        for l in range(L):
            self.grid.addWidget(QLabel(f"L{l}"), l + 1, 0)
            for h in range(H):
                b = QToolButton()
                b.setCheckable(True)
                b.setText(f"{h}")
                b.setToolTip(f"Ablate head {l}.{h}")
                b.toggled.connect(self._changed)
                self.grid.addWidget(b, l + 1, h + 1)
                self.heads[(l, h)] = b
            for col, store, what in ((H + 1, self.attn, "attention"), (H + 2, self.mlp, "MLP")):
                c = QCheckBox()
                c.setToolTip(f"Switch off layer {l}'s whole {what} sublayer")
                c.toggled.connect(self._changed)
                self.grid.addWidget(c, l + 1, col)
                store[l] = c
        self.grid.setRowStretch(L + 1, 1)
        self.grid.setColumnStretch(H + 3, 1)
        self.show_ablation(self.state.ablation)

    def _changed(self, _=None):
        mode = self.mode.currentText()
        a = Ablation.of(
            [k for k, b in self.heads.items() if b.isChecked()],
            mode,
            [l for l, c in self.attn.items() if c.isChecked()],
            [l for l, c in self.mlp.items() if c.isChecked()],
        )
        self.state.set_ablation(a)

    def show_ablation(self, a: Ablation):
        heads = {(l, h) for l, h, _ in a.heads}
        for key, b in self.heads.items():
            b.blockSignals(True)
            b.setChecked(key in heads)
            b.blockSignals(False)
        for store, on in ((self.attn, a.attn_layers), (self.mlp, a.mlp_layers)):
            for l, c in store.items():
                c.blockSignals(True)
                c.setChecked(l in on)
                c.blockSignals(False)
        modes = {m for _, _, m in a.heads}
        if len(modes) == 1:
            self.mode.blockSignals(True)
            self.mode.setCurrentText(modes.pop())
            self.mode.blockSignals(False)
        n = len(a.heads)
        parts = []
        if n:
            parts.append(f"{n} head{'s' * (n != 1)}")
        if a.attn_layers:
            parts.append(f"{len(a.attn_layers)} attention layer(s)")
        if a.mlp_layers:
            parts.append(f"{len(a.mlp_layers)} MLP(s)")
        self.count.setText("ablated: " + ", ".join(parts) if parts else "nothing ablated")

    def _on_mode(self, mode: str):
        if self.mode.currentText() != mode:
            self.mode.blockSignals(True)
            self.mode.setCurrentText(mode)
            self.mode.blockSignals(False)

    def _on_selection(self, position, layer, head):
        for (l, h), b in self.heads.items():
            sel = (l, h) == (layer, head)
            if b.property("selected") != sel:
                b.setProperty("selected", sel)
                b.style().unpolish(b)
                b.style().polish(b)
