"""Generation: the continuation, clean and ablated side by side."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..compute import GenerateRequest, GenerateResult
from .base import Dock


class GenerationDock(Dock):
    title = "Generation"
    name = "generation"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.last: GenerateResult | None = None
        w = QWidget()
        self.n = QSpinBox()
        self.n.setRange(1, 256)
        self.n.setValue(20)
        self.sample = QCheckBox("Sample")
        self.sample.setToolTip(
            "Sample from the distribution instead of taking the most likely token"
        )
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.temp = QDoubleSpinBox()
        self.temp.setRange(0.05, 5.0)
        self.temp.setSingleStep(0.1)
        self.temp.setValue(1.0)
        top = QHBoxLayout()
        for label, widget in (("Tokens", self.n), ("", self.sample), ("Seed", self.seed),
                              ("Temperature", self.temp)):  # fmt: skip
            if label:
                top.addWidget(QLabel(label))
            top.addWidget(widget)
        top.addStretch(1)
        self.clean = QPlainTextEdit()
        self.ablated = QPlainTextEdit()
        for e in (self.clean, self.ablated):
            e.setReadOnly(True)
        grid = QGridLayout()
        grid.addWidget(QLabel("<b>clean</b>"), 0, 0)
        grid.addWidget(QLabel("<b>ablated</b>"), 0, 1)
        grid.addWidget(self.clean, 1, 0)
        grid.addWidget(self.ablated, 1, 1)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addLayout(grid, 1)
        self.setWidget(w)
        for sig in (self.n.valueChanged, self.seed.valueChanged, self.temp.valueChanged):
            sig.connect(lambda _: self.request())
        self.sample.toggled.connect(lambda _: self.request())
        state.run_changed.connect(lambda _: self.request())
        controller.result.connect(self._on_result)

    def settings(self) -> dict:
        return {
            "n": self.n.value(),
            "sample": self.sample.isChecked(),
            "seed": self.seed.value(),
            "temperature": self.temp.value(),
        }

    def apply_settings(self, settings: dict) -> None:
        widgets = (self.n, self.seed, self.temp, self.sample)
        for w in widgets:
            w.blockSignals(True)
        try:
            if "n" in settings:
                self.n.setValue(int(settings["n"]))
            if "seed" in settings:
                self.seed.setValue(int(settings["seed"]))
            if "temperature" in settings:
                self.temp.setValue(float(settings["temperature"]))
            if "sample" in settings:
                self.sample.setChecked(bool(settings["sample"]))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.request()

    def request(self):
        st = self.state
        self.seed.setEnabled(self.sample.isChecked())
        self.temp.setEnabled(self.sample.isChecked())
        if st.run:
            self.controller.submit(
                GenerateRequest(
                    st.run_id,
                    self.n.value(),
                    greedy=not self.sample.isChecked(),
                    seed=self.seed.value(),
                    temperature=self.temp.value(),
                )
            )

    def _on_result(self, r):
        if isinstance(r, GenerateResult) and self.current(r):
            self.last = r
            self.clean.setPlainText(r.clean)
            self.ablated.setPlainText(r.ablated)
            self.ready_run_id = r.run_id
