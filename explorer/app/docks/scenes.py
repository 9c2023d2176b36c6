"""Scenes: named snapshots of the whole view, in order, to step through while presenting.

A scene holds the prompt, the ablation, the selection, which docks are visible, the focused
dock and the docks' settings (explorer.session.Scene). The window captures and applies them;
this dock keeps the list: add the current state, update, rename, reorder, delete, activate.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...session import Scene
from .base import Dock

KEY = Qt.ItemDataRole.UserRole


class SceneList(QListWidget):
    """Drag to reorder; rowsMoved tells the dock the new order."""

    def __init__(self):
        super().__init__()
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )


class ScenesDock(Dock):
    title = "Scenes"
    name = "scenes"

    activated = Signal(object)  # the Scene to show
    scenes_changed = Signal()

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.capture: Callable[[str], Scene] | None = None  # set by the window
        self._scenes: dict[int, Scene] = {}
        self._keys = count(1)
        self.current = -1  # row of the scene shown last
        w = QWidget()
        self.list = SceneList()
        self.list.setToolTip(
            "Double-click or Enter shows a scene; F2 renames; drag to reorder.\n"
            "In presentation mode (F11) Space/PageDown and Backspace/PageUp step through them."
        )
        self.hint = QLabel("No scenes yet: set up a view, then press Add.")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: palette(mid)")

        def button(text, tip, slot):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            return b

        self.add_button = button("Add", "Add the current state as a new scene", self.add_current)
        self.update_button = button(
            "Update", "Replace the selected scene with the current state", self.update_selected
        )
        self.rename_button = button("Rename", "Rename the selected scene (F2)", self.edit_name)
        self.up_button = button("▲", "Move the selected scene up", lambda: self.move_selected(-1))
        self.down_button = button(
            "▼", "Move the selected scene down", lambda: self.move_selected(1)
        )
        self.delete_button = button("Delete", "Delete the selected scene", self.delete_selected)
        self.prev_button = button("◀", "Previous scene (Backspace, PageUp)", lambda: self.step(-1))
        self.next_button = button("▶", "Next scene (Space, PageDown)", lambda: self.step(1))
        row1 = QHBoxLayout()
        for b in (self.add_button, self.update_button, self.rename_button, self.delete_button):
            row1.addWidget(b)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        for b in (self.up_button, self.down_button):
            row2.addWidget(b)
        row2.addStretch(1)
        self.position_label = QLabel("")
        row2.addWidget(self.prev_button)
        row2.addWidget(self.position_label)
        row2.addWidget(self.next_button)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row1)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.hint)
        lay.addLayout(row2)
        self.setWidget(w)
        self.list.itemActivated.connect(lambda item: self.activate(self.list.row(item)))
        self.list.itemChanged.connect(self._renamed)
        self.list.model().rowsMoved.connect(self._moved)
        self.list.currentRowChanged.connect(lambda _: self._enable())
        self._enable()

    def is_ready(self):
        return True

    # --- the list ---------------------------------------------------------------------------

    @property
    def scenes(self) -> list[Scene]:
        return [self._scenes[self.list.item(i).data(KEY)] for i in range(self.list.count())]

    def set_scenes(self, scenes: list[Scene], current: int = -1):
        self.list.blockSignals(True)
        self.list.clear()
        self._scenes.clear()
        for s in scenes:
            self._append(s)
        self.list.blockSignals(False)
        self.current = current if 0 <= current < len(scenes) else -1
        if self.current >= 0:
            self.list.setCurrentRow(self.current)
        self._mark()
        self.scenes_changed.emit()

    def _append(self, scene: Scene, row: int | None = None) -> QListWidgetItem:
        key = next(self._keys)
        self._scenes[key] = scene
        item = QListWidgetItem(scene.name)
        item.setData(KEY, key)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDragEnabled)
        if row is None:
            self.list.addItem(item)
        else:
            self.list.insertItem(row, item)
        return item

    def _default_name(self) -> str:
        names = {s.name for s in self._scenes.values()}
        n = len(names) + 1
        while f"Scene {n}" in names:
            n += 1
        return f"Scene {n}"

    def add_current(self, name: str | None = None) -> Scene | None:
        """Capture the current state as a new scene after the selected one."""
        if self.capture is None:
            return None
        scene = self.capture(name or self._default_name())
        row = self.list.currentRow() + 1 if self.list.currentRow() >= 0 else self.list.count()
        self.list.blockSignals(True)
        self._append(scene, row)
        self.list.blockSignals(False)
        if self.current >= row:
            self.current += 1
        self.list.setCurrentRow(row)
        self.current = row
        self._mark()
        self.scenes_changed.emit()
        return scene

    def update_selected(self):
        row = self.list.currentRow()
        if row < 0 or self.capture is None:
            return
        item = self.list.item(row)
        old = self._scenes[item.data(KEY)]
        self._scenes[item.data(KEY)] = self.capture(old.name)
        self.current = row
        self._mark()
        self.scenes_changed.emit()

    def edit_name(self):
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def rename(self, row: int, name: str):
        item = self.list.item(row)
        if item is not None and name.strip():
            item.setText(name.strip())  # -> _renamed

    def _renamed(self, item: QListWidgetItem):
        key = item.data(KEY)
        name = item.text().strip()
        old = self._scenes.get(key)
        if old is None:
            return
        if not name:  # an empty name is not a name: put the old one back
            self.list.blockSignals(True)
            item.setText(old.name)
            self.list.blockSignals(False)
        elif name != old.name:
            self._scenes[key] = old.renamed(name)
            self.scenes_changed.emit()

    def move(self, row: int, delta: int):
        to = row + delta
        if not (0 <= row < self.list.count() and 0 <= to < self.list.count()):
            return
        current_key = self.list.item(self.current).data(KEY) if self.current >= 0 else None
        self.list.blockSignals(True)
        item = self.list.takeItem(row)
        self.list.insertItem(to, item)
        self.list.blockSignals(False)
        self.list.setCurrentRow(to)
        self._after_reorder(current_key)

    def move_selected(self, delta: int):
        self.move(self.list.currentRow(), delta)

    def _moved(self, *_):
        key = None
        if self.current >= 0:
            # the moved rows changed rows; find the shown scene by its bold font
            for i in range(self.list.count()):
                if self.list.item(i).font().bold():
                    key = self.list.item(i).data(KEY)
        self._after_reorder(key)

    def _after_reorder(self, current_key):
        rows = [self.list.item(i).data(KEY) for i in range(self.list.count())]
        self.current = rows.index(current_key) if current_key in rows else -1
        self._mark()
        self.scenes_changed.emit()

    def delete(self, row: int):
        if not 0 <= row < self.list.count():
            return
        item = self.list.takeItem(row)
        self._scenes.pop(item.data(KEY), None)
        if self.current == row:
            self.current = -1
        elif self.current > row:
            self.current -= 1
        self._mark()
        self.scenes_changed.emit()

    def delete_selected(self):
        self.delete(self.list.currentRow())

    # --- showing ----------------------------------------------------------------------------

    def activate(self, row: int) -> bool:
        if not 0 <= row < self.list.count():
            return False
        self.current = row
        self.list.setCurrentRow(row)
        self._mark()
        self.activated.emit(self.scenes[row])
        return True

    def step(self, delta: int) -> bool:
        """Show the next (delta=1) or previous (-1) scene; False at either end."""
        n = self.list.count()
        if not n:
            return False
        if self.current < 0:
            row = 0 if delta > 0 else n - 1
        else:
            row = self.current + delta
        if not 0 <= row < n:
            return False
        return self.activate(row)

    def _mark(self):
        for i in range(self.list.count()):
            item = self.list.item(i)
            f = QFont(item.font())
            f.setBold(i == self.current)
            item.setFont(f)
        n = self.list.count()
        self.position_label.setText(f"{self.current + 1} / {n}" if n else "")
        self.hint.setVisible(n == 0)
        self._enable()

    def _enable(self):
        has = self.list.currentRow() >= 0
        for b in (self.update_button, self.rename_button, self.delete_button):
            b.setEnabled(has)
        self.up_button.setEnabled(has and self.list.currentRow() > 0)
        self.down_button.setEnabled(has and self.list.currentRow() < self.list.count() - 1)
        n = self.list.count()
        self.prev_button.setEnabled(n > 0 and self.current != 0)
        self.next_button.setEnabled(n > 0 and self.current < n - 1)
