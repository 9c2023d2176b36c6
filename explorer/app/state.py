"""AppState: what every panel shows, in one QObject (the model of model/view).

Docks read it and listen to its signals; they change it only through its setters, so the
selection, the ablation and the latest results are shared by all panels.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..engine import Ablation
from .compute import ModelInfo, RunResult


class AppState(QObject):
    model_changed = Signal(object)  # ModelInfo | None
    run_changed = Signal(object)  # RunResult
    selection_changed = Signal(int, int, int)  # position, layer, head (-1 = layer average)
    ablation_changed = Signal(object)  # Ablation
    colormap_changed = Signal(str)
    diverging_changed = Signal(str)  # the colour map for differences (signed values)
    mode_changed = Signal(str)  # the ablation mode new heads get
    targets_changed = Signal(str, str)  # target, foil

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model: ModelInfo | None = None
        self.run: RunResult | None = None
        self.position = -1  # -1: the last token
        self.layer = 0
        self.head = 0
        self.ablation = Ablation()
        self.mode = "zero"
        self.colormap = "viridis"
        self.diverging = "CET-D1A"
        self.target = ""
        self.foil = ""

    @property
    def run_id(self) -> int:
        return self.run.run_id if self.run else 0

    @property
    def n_tokens(self) -> int:
        return len(self.run.ids) if self.run else 0

    @property
    def selected_position(self) -> int:
        """The selected query position, clamped to the prompt (the last token by default)."""
        n = self.n_tokens
        if n == 0:
            return 0
        return n - 1 if self.position < 0 or self.position >= n else self.position

    def set_model(self, info: ModelInfo | None):
        self.model = info
        self.run = None
        self.layer = self.head = 0
        self.position = -1
        self.ablation = Ablation()
        self.model_changed.emit(info)
        self.ablation_changed.emit(self.ablation)

    def set_run(self, result: RunResult):
        self.run = result
        self.run_changed.emit(result)

    def select(
        self, position: int | None = None, layer: int | None = None, head: int | None = None
    ):
        m = self.model
        if position is not None:
            self.position = position
        if layer is not None and m:
            self.layer = max(0, min(layer, m.n_layers - 1))
        if head is not None and m:
            self.head = max(-1, min(head, m.n_heads - 1))
        self.selection_changed.emit(self.selected_position, self.layer, self.head)

    def step_head(self, d_layer: int = 0, d_head: int = 0):
        m = self.model
        if not m:
            return
        flat = self.layer * m.n_heads + max(self.head, 0) + d_head
        flat = max(0, min(flat, m.n_layers * m.n_heads - 1))
        layer, head = divmod(flat, m.n_heads)
        self.select(layer=max(0, min(layer + d_layer, m.n_layers - 1)), head=head)

    def set_ablation(self, ablation: Ablation):
        if ablation != self.ablation:
            self.ablation = ablation
            self.ablation_changed.emit(ablation)

    def set_mode(self, mode: str, apply: bool = True):
        """The mode for ablated heads; apply=True switches the heads already ablated too."""
        if mode != self.mode:
            self.mode = mode
            self.mode_changed.emit(mode)
        if apply:
            self.set_ablation(self.ablation.with_mode(mode))

    def set_colormap(self, name: str):
        if name != self.colormap:
            self.colormap = name
            self.colormap_changed.emit(name)

    def set_diverging(self, name: str):
        if name != self.diverging:
            self.diverging = name
            self.diverging_changed.emit(name)

    def toggle_head(self, layer: int | None = None, head: int | None = None) -> bool:
        """Ablate the head (the selected one by default) or bring it back; False when the
        selection is a layer average, not one head."""
        layer = self.layer if layer is None else layer
        head = self.head if head is None else head
        if self.model is None or head < 0:
            return False
        self.set_ablation(self.ablation.toggled(layer, head, self.mode))
        return True

    def set_targets(self, target: str, foil: str):
        if (target, foil) != (self.target, self.foil):
            self.target, self.foil = target, foil
            self.targets_changed.emit(target, foil)
