"""The token stream as chips, painted in one widget (fast for thousands of tokens).

Whitespace is made visible: a space as a faint '␣' where it leads a token, a newline as '↵'
followed by a real line break, a tab as '→'.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget


def chip_text(text: str) -> str:
    return (
        text.replace(" ", "\u2423")
        .replace("\n", "\u21b5")
        .replace("\t", "\u2192")
        .replace("\r", "\u240d")
    )


class TokenView(QWidget):
    """Token chips with a value per token shown as colour; click selects a position."""

    position_clicked = Signal(int)

    PAD_X, PAD_Y, GAP, LINE_GAP = 4, 2, 3, 5

    def __init__(self, parent=None):
        super().__init__(parent)
        self.texts: list[str] = []
        self.values: np.ndarray | None = None  # one per token, coloured with self.lut
        self.levels = (0.0, 1.0)
        self.lut = None  # (256, 3) uint8 colours
        self.tooltips: list[str] = []
        self.selected = -1
        self.highlight_keys: set[int] = set()
        self._rects: list[QRectF] = []
        self._height = 0
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    # --- data -------------------------------------------------------------------------------

    def set_tokens(self, texts: list[str]):
        self.texts = list(texts)
        self.values = None
        self.selected = min(self.selected, len(texts) - 1)
        self._relayout()

    def set_values(self, values, levels, lut, tooltips=None):
        self.values = None if values is None else np.asarray(values, dtype=np.float64)
        self.levels, self.lut = levels, lut
        if tooltips is not None:
            self.tooltips = tooltips
        self.update()

    def set_selected(self, position: int):
        self.selected = position
        self.update()

    # --- layout -----------------------------------------------------------------------------

    def _relayout(self):
        fm = QFontMetrics(self.font())
        width = max(self.width(), 200)
        x = y = 0
        h = fm.height() + 2 * self.PAD_Y
        self._rects = []
        for t in self.texts:
            w = fm.horizontalAdvance(chip_text(t)) + 2 * self.PAD_X
            if x > 0 and x + w > width:
                x, y = 0, y + h + self.LINE_GAP
            self._rects.append(QRectF(x, y, w, h))
            x += w + self.GAP
            if "\n" in t:  # a newline token ends the visual line too
                x, y = 0, y + h + self.LINE_GAP
        self._height = int(y + h + 2) if self.texts else h
        self.updateGeometry()
        self.update()

    def resizeEvent(self, ev):
        if ev.oldSize().width() != ev.size().width():
            self._relayout()
        super().resizeEvent(ev)

    def changeEvent(self, ev):
        super().changeEvent(ev)
        if ev.type() == ev.Type.FontChange:
            self._relayout()

    def sizeHint(self):
        return QSize(400, self._height)

    def minimumSizeHint(self):
        return QSize(100, self._height)

    def hasHeightForWidth(self):
        return True

    def heightForWidth(self, w):
        return self._height

    # --- painting ---------------------------------------------------------------------------

    def colour(self, i: int) -> QColor | None:
        if self.values is None or self.lut is None or i >= len(self.values):
            return None
        v = self.values[i]
        if not math.isfinite(v):
            return None
        lo, hi = self.levels
        f = 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
        r, g, b = self.lut[int(round(f * (len(self.lut) - 1)))][:3]
        return QColor(int(r), int(g), int(b))

    def paintEvent(self, ev):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        base_text = pal.color(QPalette.ColorRole.Text)
        chip_bg = pal.color(QPalette.ColorRole.AlternateBase)
        visible = ev.rect()
        for i, (t, r) in enumerate(zip(self.texts, self._rects)):
            if not r.intersects(QRectF(visible)):
                continue
            c = self.colour(i)
            bg = c if c is not None else chip_bg
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(bg)
            p.drawRoundedRect(r, 4, 4)
            if i == self.selected:
                p.setPen(QPen(QColor("#ff5a36"), 2.5))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRoundedRect(r.adjusted(-1, -1, 1, 1), 5, 5)
            fg = base_text
            if c is not None:  # readable text on any colour
                fg = QColor("black") if c.lightnessF() > 0.55 else QColor("white")
            p.setPen(fg)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, chip_text(t))
        p.end()

    # --- mouse ------------------------------------------------------------------------------

    def index_at(self, pos: QPoint) -> int:
        for i, r in enumerate(self._rects):
            if r.contains(pos.toPointF() if hasattr(pos, "toPointF") else pos):
                return i
        return -1

    def chip_rect(self, i: int) -> QRect:
        return self._rects[i].toRect()

    def mousePressEvent(self, ev):
        i = self.index_at(ev.position().toPoint())
        if i >= 0 and ev.button() == Qt.MouseButton.LeftButton:
            self.position_clicked.emit(i)

    def mouseMoveEvent(self, ev):
        i = self.index_at(ev.position().toPoint())
        if 0 <= i < len(self.tooltips):
            QToolTip.showText(ev.globalPosition().toPoint(), self.tooltips[i], self)
        else:
            QToolTip.hideText()
