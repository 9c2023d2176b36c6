"""What every dock shares: a stable objectName, the state and the controller.

Hooks a dock may override (sessions, scenes and export use them):

- settings() -> dict: the dock's own settings as plain JSON values (saved in sessions and
  scenes); apply_settings(d) restores them. check_settings(d) raises ValueError for a value
  the dock cannot take; by default a value must have the type of the current one.
- export_tables() -> {name: Table}: tables the user can save as CSV (File ▸ Export ▸ Tables).
- plots() -> {name: pyqtgraph PlotWidget}: figures File ▸ Export offers (every PlotWidget in a
  dock also gets a right-click menu to save it as PNG/SVG or copy it).
"""

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

    # --- sessions, scenes, export -----------------------------------------------------------

    def settings(self) -> dict:
        return {}

    def apply_settings(self, settings: dict) -> None:
        pass

    def check_settings(self, settings: dict) -> None:
        check_types(self.settings(), settings, self.name)

    def export_tables(self) -> dict:
        return {}

    def plots(self) -> dict:
        return {}


def check_types(current: dict, new: dict, where: str) -> None:
    """Each known key of new must hold a value of the type the current value has."""
    for key, value in new.items():
        if key not in current:
            continue  # a setting this version does not know: ignored
        want = type(current[key])
        ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ValueError(f"{where}.{key} should be {want.__name__}, not {type(value).__name__}")
