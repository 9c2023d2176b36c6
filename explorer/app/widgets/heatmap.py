"""Heatmaps on pyqtgraph: one ImageItem in a PlotItem, token labels that thin out with zoom,
a colour bar and a hover read-out; and a mosaic of every head's thumbnail."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem

# perceptually uniform sequential maps; all readable with colour-vision deficiencies
# (CET-CBL1/CBL2 are designed for protanopia and deuteranopia)
COLORMAPS = (
    "viridis", "CET-L17", "inferno", "cividis", "CET-CBL1", "CET-CBL2", "CET-L1", "plasma",
    "magma",
)  # fmt: skip
# diverging maps for signed differences: blue-white-red, its colour-blind-safe counterpart
# (blue-white-yellow) and a dark-centred one for dark backgrounds
DIVERGING_MAPS = ("CET-D1A", "CET-CBD1", "CET-D4")
DIVERGING = DIVERGING_MAPS[0]


def colormap(name: str) -> pg.ColorMap:
    try:
        return pg.colormap.get(name)
    except Exception:  # an unknown name from old settings: fall back quietly
        return pg.colormap.get("viridis")


def visible_label(text: str, limit: int = 14) -> str:
    """Token text with whitespace made visible, shortened for an axis."""
    t = text.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u2192")
    t = t.replace("\r", "\u240d")
    return t if len(t) <= limit else t[: limit - 1] + "\u2026"


class TokenAxis(pg.AxisItem):
    """Axis whose ticks sit on pixel centres and read as tokens, thinned to fit."""

    def __init__(self, orientation, **kw):
        super().__init__(orientation, **kw)
        self.labels: list[str] = []
        self.enableAutoSIPrefix(False)

    def set_labels(self, labels):
        if labels is getattr(self, "_source", None):
            return  # the same token list: nothing to redo (every head of a run shares it)
        self._source = labels
        self.labels = [visible_label(t) for t in labels]
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):
        n = len(self.labels)
        if not n:
            return []
        lo, hi = (
            max(0, int(np.floor(min(minVal, maxVal)))),
            min(n, int(np.ceil(max(minVal, maxVal)))),
        )
        if hi <= lo:
            return []
        vertical = self.orientation in ("left", "right")
        longest = max((len(t) for t in self.labels[lo:hi]), default=1)
        fm = QFontMetrics(self.style.get("tickFont") or QFont())  # the theme sets the font
        # pixels one label needs
        per_label = fm.height() + 2 if vertical else fm.averageCharWidth() * longest + 10
        px_per_token = size / max(abs(maxVal - minVal), 1e-9)
        need = per_label / max(px_per_token, 1e-9)
        step = 1
        while step < need:
            step = step * 2 if step < 4 else step + 4
        return [(step, [i + 0.5 for i in range(lo - lo % step, hi, step)])]

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            i = int(v)
            out.append(self.labels[i] if 0 <= i < len(self.labels) else "")
        return out


class CellText(pg.GraphicsObject):
    """Text inside the cells of a heatmap, drawn only where a cell is large enough on screen
    (zooming in shows more); black or white, whichever reads better on the cell's colour."""

    MIN_W, MIN_H = 16, 10  # pixels a cell needs before its text is drawn

    def __init__(self, heatmap: Heatmap):
        super().__init__()
        self.heatmap = heatmap
        self.texts: list[list[str]] = []
        self.elide = True  # False: a text that does not fit is left out (numbers)
        self.setZValue(3)

    def set_texts(self, texts, elide: bool = True):
        self.prepareGeometryChange()
        self.texts = [list(r) for r in texts] if texts is not None else []
        self.elide = elide
        self.update()

    def boundingRect(self):
        rows = len(self.texts)
        cols = len(self.texts[0]) if rows else 0
        return QRectF(0, 0, cols, rows)

    def paint(self, p: QPainter, *args):
        if not self.texts:
            return
        tr = p.transform()
        w, h = abs(tr.m11()), abs(tr.m22())
        if w < self.MIN_W or h < self.MIN_H:
            return
        hm = self.heatmap
        data = hm.data
        lo, hi = hm.colorbar.levels()
        lut = hm.colorbar.colorMap().getLookupTable(nPts=64)
        inv, ok = tr.inverted()
        dev = p.device()
        view = inv.mapRect(QRectF(0, 0, dev.width(), dev.height())) if ok else self.boundingRect()
        rows, cols = len(self.texts), len(self.texts[0])
        r0, r1 = max(0, int(view.top()) - 1), min(rows, int(np.ceil(view.bottom())) + 1)
        c0, c1 = max(0, int(view.left()) - 1), min(cols, int(np.ceil(view.right())) + 1)
        font = QFont(p.font())
        font.setPixelSize(int(max(8, min(h * 0.6, 13))))
        fm = QFontMetrics(font)
        if w < fm.averageCharWidth() * 3 + 2:
            return  # no room for three characters: the hover read-out tells
        p.save()
        p.resetTransform()
        p.setFont(font)
        for r in range(r0, r1):
            for c in range(c0, c1):
                text = self.texts[r][c]
                if not text:
                    continue
                rect = tr.mapRect(QRectF(c, r, 1, 1)).adjusted(1, 0, -1, 0)
                if self.elide:
                    shown = fm.elidedText(text, Qt.TextElideMode.ElideRight, int(rect.width()))
                else:
                    shown = text if fm.horizontalAdvance(text) <= rect.width() else ""
                if not shown:
                    continue
                v = data[r, c] if r < data.shape[0] and c < data.shape[1] else np.nan
                dark_cell = False
                if np.isfinite(v):
                    f = 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
                    cr, cg, cb = lut[int(round(f * (len(lut) - 1)))][:3]
                    dark_cell = QColor(int(cr), int(cg), int(cb)).lightnessF() < 0.55
                    p.setPen(QColor("white") if dark_cell else QColor("black"))
                else:
                    p.setPen(hm.getPlotItem().getAxis("left").textPen().color())
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, shown)
        p.restore()


class Heatmap(pg.PlotWidget):
    """A T x T (or any rows x cols) matrix with token labels and a hover read-out."""

    hovered = Signal(int, int, float)  # row, col, value (-1, -1, nan when outside)
    clicked = Signal(int, int)

    def __init__(self, parent=None, cmap: str = "viridis"):
        self.left_axis = TokenAxis("left")
        self.bottom_axis = TokenAxis("bottom")
        super().__init__(parent, axisItems={"left": self.left_axis, "bottom": self.bottom_axis})
        self.setBackground(None)
        plot = self.getPlotItem()
        plot.invertY(True)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=colormap(cmap), interactive=False, width=12
        )
        self.colorbar.setImageItem(self.image, insert_in=plot)
        self.data = np.zeros((0, 0), np.float32)
        self.cell_text: CellText | None = None
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)

    def set_colormap(self, name: str):
        self.colorbar.setColorMap(colormap(name))
        if self.cell_text is not None:
            self.cell_text.update()

    def set_cell_texts(self, texts, elide: bool = True):
        """Text in each cell (rows x cols of str; None clears), where cells are big enough;
        elide=False leaves out a text that does not fit whole (a number)."""
        if self.cell_text is None:
            self.cell_text = CellText(self)
            self.addItem(self.cell_text)
        self.cell_text.set_texts(texts, elide)

    def set_levels(self, lo: float, hi: float):
        self.colorbar.setLevels((lo, hi))

    def set_matrix(self, matrix: np.ndarray, row_labels=None, col_labels=None, levels=(0.0, 1.0)):
        reset = matrix.shape != self.data.shape
        self.data = matrix
        self.image.setImage(matrix, autoLevels=False)
        self.colorbar.setLevels(levels)
        if row_labels is not None:
            self.left_axis.set_labels(row_labels)
        if col_labels is not None:
            self.bottom_axis.set_labels(col_labels)
        if reset:
            self.reset_view()

    def reset_view(self):
        rows, cols = self.data.shape[:2]
        self.getPlotItem().getViewBox().setRange(
            xRange=(0, max(cols, 1)), yRange=(0, max(rows, 1)), padding=0.02
        )

    def cell_at(self, scene_pos) -> tuple[int, int]:
        vb = self.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return -1, -1
        p = vb.mapSceneToView(scene_pos)
        r, c = int(np.floor(p.y())), int(np.floor(p.x()))
        rows, cols = self.data.shape[:2]
        return (r, c) if 0 <= r < rows and 0 <= c < cols else (-1, -1)

    def _on_move(self, pos):
        r, c = self.cell_at(pos)
        self.hovered.emit(r, c, float(self.data[r, c]) if r >= 0 else float("nan"))

    def _on_click(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        r, c = self.cell_at(ev.scenePos())
        if r >= 0:
            self.clicked.emit(r, c)


class HeadGrid(pg.PlotWidget):
    """Every head's pattern as a thumbnail in one mosaic image: one shared colour scale,
    one paint. Rows are layers, columns heads."""

    head_clicked = Signal(int, int)  # layer, head
    hovered = Signal(int, int)

    GAP = 0.12  # fraction of a cell left blank between thumbnails

    def __init__(self, parent=None, cmap: str = "viridis"):
        self.left_axis = pg.AxisItem("left")
        self.top_axis = pg.AxisItem("top")
        super().__init__(parent, axisItems={"left": self.left_axis, "top": self.top_axis})
        self.setBackground(None)
        plot = self.getPlotItem()
        plot.showAxis("top")
        plot.hideAxis("bottom")
        plot.invertY(True)
        plot.setAspectLocked(True)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(False, False)
        # thumbnails share the large heatmap's colour scale (0..1): no second colour bar
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(colormap(cmap))
        self.addItem(self.image)
        self.n_layers = self.n_heads = 0
        self.cell = 1
        self.marks: dict[tuple[int, int], QGraphicsRectItem] = {}
        self.badges: dict[tuple[int, int], pg.TextItem] = {}
        self.selected = QGraphicsRectItem()
        self.selected.setPen(pg.mkPen(QColor("#ff5a36"), width=3, cosmetic=True))
        self.selected.setZValue(10)
        self.addItem(self.selected)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)

    def set_colormap(self, name: str):
        self.image.setColorMap(colormap(name))

    def set_thumbs(self, thumbs: np.ndarray, levels=(0.0, 1.0)):
        """thumbs (L, H, t, t) -> one mosaic image with gaps (nan shows as background)."""
        L, H, t, _ = thumbs.shape
        gap = max(1, int(round(t * self.GAP)))
        self.cell = t + gap
        mosaic = np.full((L * self.cell - gap, H * self.cell - gap), np.nan, np.float32)
        for l in range(L):
            for h in range(H):
                y, x = l * self.cell, h * self.cell
                mosaic[y : y + t, x : x + t] = thumbs[l, h]
        shape_changed = (L, H) != (self.n_layers, self.n_heads)
        self.n_layers, self.n_heads, self.t = L, H, t
        self.image.setImage(mosaic, autoLevels=False, levels=levels)
        centres = [i * self.cell + t / 2 for i in range(max(L, H))]
        self.left_axis.setTicks([[(centres[l], f"L{l}") for l in range(L)]])
        self.top_axis.setTicks([[(centres[h], f"H{h}") for h in range(H)]])
        for (l, h), item in self.marks.items():
            item.setRect(QRectF(h * self.cell, l * self.cell, t, t))
        for (l, h), item in self.badges.items():
            item.setPos(h * self.cell, l * self.cell)
        if shape_changed:
            self.getPlotItem().getViewBox().setRange(
                xRange=(0, mosaic.shape[1]), yRange=(0, mosaic.shape[0]), padding=0.02
            )

    def select(self, layer: int, head: int):
        if not self.n_layers:
            return
        t = self.t
        if head < 0:  # the whole layer (layer average view)
            self.selected.setRect(
                QRectF(-0.5, layer * self.cell - 0.5, self.n_heads * self.cell, t + 1)
            )
        else:
            self.selected.setRect(
                QRectF(head * self.cell - 0.5, layer * self.cell - 0.5, t + 1, t + 1)
            )

    def set_marked(self, heads: set[tuple[int, int]]):
        """Cross out ablated heads."""
        for key in list(self.marks):
            if key not in heads:
                self.removeItem(self.marks.pop(key))
        for l, h in heads:
            if (l, h) not in self.marks and self.n_layers:
                item = QGraphicsRectItem(QRectF(h * self.cell, l * self.cell, self.t, self.t))
                pen = QPen(QColor(255, 255, 255, 200), 0)
                pen.setCosmetic(True)
                pen.setWidth(2)
                pen.setStyle(Qt.PenStyle.DashLine)
                item.setPen(pen)
                item.setZValue(5)
                self.addItem(item)
                self.marks[(l, h)] = item

    def set_badges(self, badges: dict[tuple[int, int], tuple[str, str]]):
        """Small labels in the top-left corner of thumbnails: {(layer, head): (text, colour)},
        e.g. a head's role ("ind" on magenta). An empty dict removes them."""
        for key in list(self.badges):
            self.removeItem(self.badges.pop(key))
        font = QFont(self.font())
        size = font.pointSizeF()
        if size > 0:
            font.setPointSizeF(max(6.0, size * 0.75))
        for (l, h), (text, colour) in badges.items():
            fill = QColor(colour)
            fill.setAlpha(225)
            item = pg.TextItem(text, color="white", fill=fill, anchor=(0, 0))
            item.setFont(font)
            item.setPos(h * self.cell, l * self.cell)
            item.setZValue(8)
            item.setToolTip(text)
            self.addItem(item)
            self.badges[(l, h)] = item

    def badge_texts(self) -> dict[tuple[int, int], str]:
        return {k: item.textItem.toPlainText() for k, item in self.badges.items()}

    def head_at(self, scene_pos) -> tuple[int, int]:
        vb = self.getPlotItem().getViewBox()
        if not self.n_layers or not vb.sceneBoundingRect().contains(scene_pos):
            return -1, -1
        p: QPointF = vb.mapSceneToView(scene_pos)
        l, h = int(p.y() // self.cell), int(p.x() // self.cell)
        if 0 <= l < self.n_layers and 0 <= h < self.n_heads:
            return l, h
        return -1, -1

    def _on_click(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        l, h = self.head_at(ev.scenePos())
        if l >= 0:
            self.head_clicked.emit(l, h)

    def _on_move(self, pos):
        self.hovered.emit(*self.head_at(pos))
