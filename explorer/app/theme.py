"""Themes: light, dark and the system's look; larger text and thicker lines for presenting.

A theme is a QPalette for the widgets plus colours for the pyqtgraph plots (which do not
follow the palette by themselves): background, axes, tick labels, legends. Presenting adds
contrast (pure black on white, or white on black), a font zoom and thicker plot lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPalette, QPen
from PySide6.QtWidgets import QApplication, QGraphicsRectItem, QStyleFactory, QTableView, QWidget

THEMES = ("system", "light", "dark")
THEME_LABELS = {"system": "System", "light": "Light", "dark": "Dark"}
PRESENTATION_LINE_SCALE = 2.0

_original: dict = {}  # the application's own font, palette and style, captured once


@dataclass(frozen=True)
class Look:
    theme: str = "system"
    contrast: bool = False  # presentation: the highest contrast the theme allows
    zoom: float = 1.0  # font scale
    line_scale: float = 1.0  # plot line width scale

    @property
    def dark(self) -> bool:
        if self.theme == "system":
            return _original_palette().color(QPalette.ColorRole.Window).lightnessF() < 0.5
        return self.theme == "dark"


def _capture():
    app = QApplication.instance()
    if not _original and app is not None:
        _original["font"] = QFont(app.font())
        _original["palette"] = QPalette(app.palette())
        _original["style"] = app.style().name()


def _original_palette() -> QPalette:
    _capture()
    return _original.get("palette", QPalette())


def base_font() -> QFont:
    _capture()
    return QFont(_original.get("font", QFont()))


def _set(p: QPalette, colours: dict, disabled: dict | None = None):
    R = QPalette.ColorRole
    for role, c in colours.items():
        p.setColor(getattr(R, role), QColor(c))
    for role, c in (disabled or {}).items():
        p.setColor(QPalette.ColorGroup.Disabled, getattr(R, role), QColor(c))


DARK = {
    "Window": "#202124", "WindowText": "#e8eaed", "Base": "#17181a",
    "AlternateBase": "#2c2d31", "Text": "#e8eaed", "Button": "#2d2e31",
    "ButtonText": "#e8eaed", "BrightText": "#ff6b6b", "Highlight": "#3b82f6",
    "HighlightedText": "#ffffff", "ToolTipBase": "#2d2e31", "ToolTipText": "#e8eaed",
    "PlaceholderText": "#9aa0a6", "Link": "#8ab4f8", "Light": "#4a4c50", "Midlight": "#3c4043",
    "Mid": "#70757a", "Dark": "#111214", "Shadow": "#000000",
}  # fmt: skip
# setColor(role, …) sets every colour group: disabled text needs its own, greyed colour
DARK_DISABLED = {"WindowText": "#6b6f74", "Text": "#6b6f74", "ButtonText": "#6b6f74"}
LIGHT_DISABLED = {"WindowText": "#8a8a8a", "Text": "#8a8a8a", "ButtonText": "#8a8a8a"}
DARK_CONTRAST = dict(
    DARK, Window="#000000", Base="#242424", AlternateBase="#363636", Text="#ffffff",
    WindowText="#ffffff", ButtonText="#ffffff", Button="#262626", Mid="#a0a0a0",
    Light="#6a6a6a", Midlight="#4a4a4a", Dark="#8a8a8a", Highlight="#ffd400",
    HighlightedText="#000000",
)  # fmt: skip
LIGHT_CONTRAST = {
    "Window": "#ffffff", "WindowText": "#000000", "Base": "#ffffff", "AlternateBase": "#e8e8e8",
    "Text": "#000000", "Button": "#f0f0f0", "ButtonText": "#000000", "Highlight": "#0047b3",
    "HighlightedText": "#ffffff", "ToolTipBase": "#ffffdc", "ToolTipText": "#000000",
    "PlaceholderText": "#555555", "Mid": "#555555", "Midlight": "#cccccc", "Dark": "#333333",
}  # fmt: skip


def palette(look: Look) -> QPalette:
    if look.theme == "system":
        p = QPalette(_original_palette())
        if look.contrast:
            if look.dark:
                _set(p, DARK_CONTRAST, DARK_DISABLED)
            else:
                _set(p, LIGHT_CONTRAST, LIGHT_DISABLED)
        return p
    fusion = QStyleFactory.create("Fusion")
    p = QPalette(fusion.standardPalette())
    if look.dark:
        _set(p, DARK_CONTRAST if look.contrast else DARK, DARK_DISABLED)
    elif look.contrast:
        _set(p, LIGHT_CONTRAST, LIGHT_DISABLED)
    return p


def plot_colours(look: Look) -> tuple[QColor, QColor]:
    """(background, foreground) of the plots."""
    p = palette(look)
    bg = p.color(QPalette.ColorRole.Window)
    if look.contrast:
        fg = QColor("#ffffff" if look.dark else "#000000")
    else:
        fg = QColor("#c8cbd0" if look.dark else "#3a3a3a")
    return bg, fg


def app_font(look: Look) -> QFont:
    f = base_font()
    if f.pointSizeF() > 0:
        f.setPointSizeF(f.pointSizeF() * look.zoom)
    elif f.pixelSize() > 0:
        f.setPixelSize(max(1, round(f.pixelSize() * look.zoom)))
    return f


def apply(root: QWidget, look: Look):
    """Palette and font for the whole application, and the plots inside root."""
    app = QApplication.instance()
    _capture()
    if look.theme != "system" and app.style().name().lower() != "fusion":
        app.setStyle("Fusion")  # the palette-driven style: the same on every platform
    elif look.theme == "system" and app.style().name() != _original.get("style"):
        app.setStyle(_original["style"])
    app.setPalette(palette(look))
    font = app_font(look)
    app.setFont(font)
    # a widget with a style sheet keeps the palette it was polished with: polish it again
    for w in [root, *root.findChildren(QWidget)]:
        if w.styleSheet():
            w.setStyleSheet(w.styleSheet())
    bg, fg = plot_colours(look)
    pg.setConfigOption("background", bg)
    pg.setConfigOption("foreground", fg)
    for view in root.findChildren(pg.GraphicsView):
        style_plot(view, look, font)
    row = QFontMetrics(font).height() + 6
    for table in root.findChildren(QTableView):
        table.verticalHeader().setDefaultSectionSize(row)


def style_plot(view: pg.GraphicsView, look: Look, font: QFont | None = None):
    """One plot widget: background, axes, legend, line widths."""
    font = font or app_font(look)
    bg, fg = plot_colours(look)
    view.setBackground(bg)
    tick = QFont(font)
    if tick.pointSizeF() > 0:
        tick.setPointSizeF(tick.pointSizeF() * 0.9)
    axis_pen = pg.mkPen(fg, width=1.5 if look.contrast else 1)
    for item in view.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setPen(axis_pen)
            item.setTextPen(fg)
            item.setTickFont(tick)
            item.labelStyle["font-size"] = _css_size(font)
            item._updateLabel()
        elif isinstance(item, pg.LegendItem):
            item.setLabelTextColor(fg)
            item.setLabelTextSize(_css_size(font))
            for _, label in item.items:  # setAttr alone does not redraw the text
                label.setText(label.text)
            item.updateSize()
            item.setBrush(QColor(bg.red(), bg.green(), bg.blue(), 200))  # readable over lines
        elif isinstance(item, pg.PlotDataItem):
            _scale_pen(item, look.line_scale)
        elif isinstance(item, pg.InfiniteLine):
            _scale_line(item, look.line_scale)
        elif isinstance(item, QGraphicsRectItem) and item.pen().style() != Qt.PenStyle.NoPen:
            _scale_rect(item, look.line_scale)
        elif isinstance(item, pg.LabelItem):
            item.item.setDefaultTextColor(fg)


def _css_size(font: QFont) -> str:
    if font.pointSizeF() > 0:
        return f"{font.pointSizeF():.1f}pt"
    return f"{max(font.pixelSize(), 1)}px"


def _base_width(item, pen: QPen) -> float:
    if not hasattr(item, "_base_pen_width"):
        item._base_pen_width = pen.widthF() or 1.0
    return item._base_pen_width


def _scale_pen(item: pg.PlotDataItem, scale: float):
    pen = item.opts.get("pen")
    if pen is None:
        return
    pen = QPen(pg.mkPen(pen))
    if pen.style() == Qt.PenStyle.NoPen:
        return
    pen.setWidthF(_base_width(item, pen) * scale)
    item.setPen(pen)
    if item.opts.get("symbol") is not None:
        if not hasattr(item, "_base_symbol_size"):
            item._base_symbol_size = item.opts.get("symbolSize", 10)
        item.setSymbolSize(item._base_symbol_size * scale)


def _scale_line(item: pg.InfiniteLine, scale: float):
    pen = QPen(item.pen)
    pen.setWidthF(_base_width(item, pen) * scale)
    item.setPen(pen)


def _scale_rect(item: QGraphicsRectItem, scale: float):
    pen = QPen(item.pen())
    pen.setWidthF(_base_width(item, pen) * scale)
    item.setPen(pen)
