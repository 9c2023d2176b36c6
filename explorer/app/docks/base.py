"""What every dock shares: a stable objectName, the state and the controller."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QWidget

from ..compute import EngineController
from ..state import AppState


class Dock(QDockWidget):
    title = "Dock"
    name = "dock"  # objectName: stable, saved in the window state

    def __init__(
        self, state: AppState, controller: EngineController, parent: QWidget | None = None
    ):
        super().__init__(self.title, parent)
        self.setObjectName(self.name)
        self.state = state
        self.controller = controller
        self.ready_run_id = -1  # the run whose results this dock shows completely

    def is_ready(self) -> bool:
        """True when the dock shows results for the state's current run (for --screenshot)."""
        return self.ready_run_id == self.state.run_id

    def current(self, result) -> bool:
        """A result for the run on screen (stale ones are dropped)."""
        return result.run_id == self.state.run_id and self.controller.is_latest(result)
