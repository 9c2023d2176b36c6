"""Head roles: how much each head acts as a previous-token, induction, duplicate-token or
attention-sink head on this prompt. A sortable table (click a row to select the head) and
badges on the Attention dock's head grid."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...analysis import ROLES, HeadRoles
from ..analysis_worker import RolesRequest
from .analysis_base import NOTE_STYLE, QuickAnalysisDock, note_label, track_on_screen

SHORT = {"previous_token": "prev", "induction": "ind", "duplicate_token": "dup", "sink": "sink"}
TITLES = {
    "previous_token": "previous token",
    "induction": "induction",
    "duplicate_token": "duplicate token",
    "sink": "sink (first token)",
}
COLOURS = {
    "previous_token": "#2563eb",
    "induction": "#c026d3",
    "duplicate_token": "#15803d",
    "sink": "#6b7280",
}
HEADERS = {"previous_token": "prev", "induction": "ind", "duplicate_token": "dup", "sink": "sink"}
COLUMNS = ["head", *[HEADERS[r] for r in ROLES], "role"]
THRESHOLD = 0.4


@contextmanager
def bulk_update(table):
    """Fill a table without re-measuring every column after each cell: ResizeToContents makes
    each setItem cost O(rows), ~1 s for a 144-head model."""
    header = table.horizontalHeader()
    modes = [header.sectionResizeMode(j) for j in range(header.count())]
    header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    table.setUpdatesEnabled(False)
    try:
        yield
    finally:
        for j, mode in enumerate(modes):
            header.setSectionResizeMode(j, mode)
        table.setUpdatesEnabled(True)


def badge_roles(roles: HeadRoles, threshold: float = THRESHOLD) -> dict[tuple[int, int], str]:
    """Each head's role for a badge: its best score among previous-token, induction and
    duplicate-token when that reaches the threshold, else "sink" when its sink score does
    (most heads of a large model rest on the first token: the other roles say more)."""
    out = {}
    L, H = roles.sink.shape
    for l in range(L):
        for h in range(H):
            best, score = None, -1.0
            for r in ("induction", "previous_token", "duplicate_token"):
                v = roles.scores(r)[l, h]
                if np.isfinite(v) and v > score:
                    best, score = r, float(v)
            if best is not None and score >= threshold:
                out[(l, h)] = best
            elif np.isfinite(roles.sink[l, h]) and roles.sink[l, h] >= threshold:
                out[(l, h)] = "sink"
    return out


class NumberItem(QTableWidgetItem):
    """A cell that sorts by its number (nan last), shown with 2 decimals."""

    def __init__(self, value: float, text: str | None = None):
        v = float(value)
        super().__init__(text if text is not None else ("—" if not np.isfinite(v) else f"{v:.2f}"))
        self.value = v if np.isfinite(v) else -np.inf
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other):
        if isinstance(other, NumberItem):
            return self.value < other.value
        return super().__lt__(other)


class RolesDock(QuickAnalysisDock):
    title = "Head roles"
    name = "roles"
    kind = "roles"

    def __init__(self, state, controller, parent=None):
        super().__init__(state, controller, parent)
        self.attention = None  # the Attention dock whose grid shows badges (see attach)
        self.badges: dict[tuple[int, int], str] = {}
        self._selecting = False
        w = QWidget()
        self.show_badges = QCheckBox("Badges on the attention grid")
        self.show_badges.setChecked(True)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.05, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(THRESHOLD)
        self.threshold.setToolTip("A head gets a badge when its best role scores at least this")
        row = QHBoxLayout()
        row.addWidget(self.show_badges)
        row.addWidget(QLabel("from score"))
        row.addWidget(self.threshold)
        row.addStretch(1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for i, r in enumerate(ROLES, 1):
            self.table.horizontalHeaderItem(i).setToolTip(f"{TITLES[r]}: {role_help(r)}")
        self.table.sortItems(0, Qt.SortOrder.AscendingOrder)
        self.note = note_label()
        self.source = note_label()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.note)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.source)
        self.setWidget(w)
        self.table.currentCellChanged.connect(self._on_current)
        self.table.cellClicked.connect(lambda row, _: self._select_row(row))
        self.show_badges.toggled.connect(lambda _: (self.update_badges(), self.refresh()))
        self.threshold.valueChanged.connect(lambda _: self.update_table_roles())
        state.selection_changed.connect(self._on_selection)

    def attach(self, attention_dock):
        """Show badges on this Attention dock's head grid (and compute while it is visible)."""
        self.attention = attention_dock
        track_on_screen(attention_dock)
        attention_dock.visibilityChanged.connect(lambda visible: visible and self.refresh())

    def active(self) -> bool:
        if self.on_screen:
            return True
        att = self.attention
        return self.show_badges.isChecked() and att is not None and att.on_screen

    def wanted(self):
        return RolesRequest(self.state.run_id) if self.state.run else None

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict:
        return {"badges": self.show_badges.isChecked(), "threshold": self.threshold.value()}

    def apply_settings(self, settings: dict) -> None:
        if "badges" in settings:
            self.show_badges.setChecked(bool(settings["badges"]))
        if "threshold" in settings:
            self.threshold.setValue(float(settings["threshold"]))

    # --- showing ----------------------------------------------------------------------------

    def show_value(self, roles: HeadRoles | None, note: str):
        self._selecting = True
        try:
            self._show(roles, note)
        finally:
            self._selecting = False
        self._on_selection(self.state.selected_position, self.state.layer, self.state.head)

    def _show(self, roles: HeadRoles | None, note: str):
        self.note.setStyleSheet(NOTE_STYLE if note else "")
        self.note.setText(note)
        self.note.setVisible(bool(note))
        self.table.setSortingEnabled(False)
        if roles is None:
            self.table.setRowCount(0)
            self.source.setText("")
            self.badges = {}
            self.update_badges()
            return
        L, H = roles.sink.shape
        with bulk_update(self.table):
            self.table.setRowCount(L * H)
            for i, (l, h) in enumerate((l, h) for l in range(L) for h in range(H)):
                head = NumberItem(l * H + h, f"{l}.{h}")
                head.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                head.setData(Qt.ItemDataRole.UserRole, (l, h))
                self.table.setItem(i, 0, head)
                for j, r in enumerate(ROLES, 1):
                    self.table.setItem(i, j, NumberItem(roles.scores(r)[l, h]))
                self.table.setItem(i, len(COLUMNS) - 1, QTableWidgetItem(""))
            self.table.setSortingEnabled(True)
            self.update_table_roles()
        self.source.setText(source_text(roles))

    def update_table_roles(self):
        """The role column and the badges, for the current threshold."""
        roles = self.value
        self.badges = badge_roles(roles, self.threshold.value()) if roles is not None else {}
        sorting = self.table.isSortingEnabled()
        selecting, self._selecting = self._selecting, True
        self.table.setSortingEnabled(False)
        with bulk_update(self.table):
            self._mark_roles()
        self.table.setSortingEnabled(sorting)
        self._selecting = selecting
        self.update_badges()

    def _mark_roles(self):
        for i in range(self.table.rowCount()):
            key = self.table.item(i, 0).data(Qt.ItemDataRole.UserRole)
            role = self.badges.get(tuple(key))
            item = self.table.item(i, len(COLUMNS) - 1)
            item.setText(TITLES[role] if role else "")
            item.setForeground(QColor(COLOURS[role]) if role else self.palette().text().color())
            for j, r in enumerate(ROLES, 1):
                cell = self.table.item(i, j)
                font = cell.font()
                font.setBold(r == role)
                cell.setFont(font)

    def update_badges(self):
        if self.attention is None:
            return
        badges = {}
        if self.show_badges.isChecked():
            badges = {k: (SHORT[r], COLOURS[r]) for k, r in self.badges.items()}
        self.attention.grid.set_badges(badges)

    def clear(self):
        self.show_value(None, "")

    # --- selection --------------------------------------------------------------------------

    def _select_row(self, row: int):
        if self._selecting or row < 0 or self.table.item(row, 0) is None:
            return
        l, h = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        self.state.select(layer=l, head=h)

    def _on_current(self, row, col, prev_row, prev_col):
        if row != prev_row:
            self._select_row(row)

    def _on_selection(self, position, layer, head):
        self._selecting = True
        try:
            for i in range(self.table.rowCount()):
                item = self.table.item(i, 0)
                if item is not None and tuple(item.data(Qt.ItemDataRole.UserRole)) == (
                    layer,
                    head,
                ):
                    self.table.selectRow(i)
                    self.table.scrollToItem(item)
                    break
            else:
                self.table.clearSelection()
        finally:
            self._selecting = False

    # --- export -----------------------------------------------------------------------------

    def export_tables(self) -> dict:
        from ...export_data import Table

        roles = self.value
        if roles is None:
            return {}
        t = Table(["layer", "head", *ROLES, "role"])
        L, H = roles.sink.shape
        for l in range(L):
            for h in range(H):
                t.rows.append(
                    [l, h, *(roles.scores(r)[l, h] for r in ROLES), self.badges.get((l, h), "")]
                )
        return {"Head roles": t}


def role_help(role: str) -> str:
    return {
        "previous_token": "Mean attention from each token to the one just before it",
        "induction": "Mean attention from a repeated token to the token after its earlier "
        "occurrence (on the prompt's repeated part, or on a repeated random sequence)",
        "duplicate_token": "Mean attention from a token to its earlier copies",
        "sink": "Mean attention to the first token (BOS where the tokenizer adds one)",
    }[role]


def source_text(roles: HeadRoles) -> str:
    def where(source, n, what):
        if source == "prompt":
            return f"{what}: measured on this prompt ({n} queries)"
        return f"{what}: measured on a repeated random sequence (this prompt repeats nothing)"

    return (
        where(roles.induction_source, roles.n_induction_queries, "Induction")
        + " · "
        + where(roles.duplicate_source, roles.n_duplicate_queries, "duplicate token")
    )
