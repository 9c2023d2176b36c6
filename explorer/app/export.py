"""Export: figures as PNG (1x/2x/3x) or SVG, the window as PNG, images to the clipboard, and
data (a head's pattern, a layer's attention, predictions, analysis tables) as CSV/NPY/NPZ.

Every pyqtgraph plot in a dock gets a right-click menu; File ▸ Export offers the same for the
docks' named plots (Dock.plots()) and tables (Dock.export_tables()). render_pattern() draws the
attention heatmap without a window, for `attention-explorer export`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401  (pg.exporters)
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QColor, QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QMessageBox, QWidget

from ..export_data import ExportError, write_pattern, write_table
from .compute import LayerRequest, LayerResult
from .theme import Look, style_plot

IMAGE_FILTERS = {
    "PNG image, 1x (*.png)": 1,
    "PNG image, 2x (*.png)": 2,
    "PNG image, 3x (*.png)": 3,
    "SVG vector image (*.svg)": 0,
}
PATTERN_FILTERS = (
    "CSV with token labels (*.csv)",
    "NumPy NPZ with token labels (*.npz)",
    "NumPy NPY, values only (*.npy)",
)
CSV_FILTER = "CSV (*.csv)"
WINDOW_FILTER = "PNG image (*.png)"


# --- figures ------------------------------------------------------------------------------


def _patch_svg_exporter():
    """pyqtgraph 0.14's SVG exporter cannot read the closed paths ('… Z') that recent Qt
    writes (pyqtgraph issue #3495): take the Z tokens out around its coordinate pass."""
    import sys

    mod = sys.modules["pyqtgraph.exporters.SVGExporter"]
    original = mod.correctCoordinates
    if getattr(original, "_closes_paths", False):
        return

    def correct(node, defs, item, options):
        closed = {}
        for p in node.getElementsByTagName("path"):
            tokens = p.getAttribute("d").strip().split(" ")
            if any(t in ("Z", "z") for t in tokens):
                marks, n = [], 0
                for t in tokens:
                    if t in ("Z", "z"):
                        marks.append(n)
                    else:
                        n += 1
                p.setAttribute("d", " ".join(t for t in tokens if t not in ("Z", "z")))
                closed[p] = marks
        original(node, defs, item, options)
        for p, marks in closed.items():
            tokens = [t for t in p.getAttribute("d").strip().split(" ") if t]
            out = [t for i, t in enumerate(tokens) for t in [t] + ["Z"] * marks.count(i + 1)]
            out = ["Z"] * marks.count(0) + out
            p.setAttribute("d", " ".join(out))

    correct._closes_paths = True
    mod.correctCoordinates = correct


_patch_svg_exporter()


def _source(view: pg.GraphicsView):
    """The item to export: the plot with its axes and colour bar."""
    return view.centralWidget if getattr(view, "centralWidget", None) is not None else view.scene()


def _background(view: pg.GraphicsView) -> QColor:
    """The plot's own background, opaque (a transparent PNG loses the axes on dark paper)."""
    brush = view.backgroundBrush()
    if brush.style() != Qt.BrushStyle.NoBrush and brush.color().alpha() > 0:
        return QColor(brush.color())
    return QColor(view.palette().color(view.backgroundRole()))


def plot_size(view: pg.GraphicsView) -> tuple[int, int]:
    """The 1x pixel size of an exported plot."""
    r = pg.exporters.ImageExporter(_source(view)).getTargetRect()
    return int(r.width()), int(r.height())


def plot_image(view: pg.GraphicsView, scale: int = 1) -> QImage:
    """The plot rendered at scale times its size on screen (text and lines scale too)."""
    ex = pg.exporters.ImageExporter(_source(view))
    w, h = plot_size(view)
    if w <= 0 or h <= 0:
        raise ExportError("the plot has no size yet (is it visible?)")
    ex.params.param("width").setValue(w * scale, blockSignal=ex.widthChanged)
    ex.params.param("height").setValue(h * scale, blockSignal=ex.heightChanged)
    ex.params["background"] = _background(view)
    img = ex.export(toBytes=True)
    if img is None or img.isNull():
        raise ExportError("the plot could not be drawn")
    return img


def save_plot(view: pg.GraphicsView, path, scale: int = 1) -> Path:
    """PNG at scale (1, 2, 3) or, for a .svg path, SVG."""
    path = Path(path)
    if path.suffix.lower() == ".svg":
        ex = pg.exporters.SVGExporter(_source(view))
        ex.params["background"] = _background(view)
        try:
            ex.export(fileName=str(path))
        except OSError as e:
            raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
        if not path.is_file():
            raise ExportError(f"cannot write {path}")
        return path
    if path.suffix.lower() != ".png":
        raise ExportError(f"cannot write {path.name}: use .png or .svg")
    if not plot_image(view, scale).save(str(path), "PNG"):
        raise ExportError(f"cannot write {path}")
    return path


def copy_plot(view: pg.GraphicsView, scale: int = 2):
    QApplication.clipboard().setImage(plot_image(view, scale))


def window_image(window: QWidget) -> QImage:
    return window.grab().toImage()


def save_window(window: QWidget, path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    if not window_image(window).save(str(path), "PNG"):
        raise ExportError(f"cannot write {path}")
    return path


def ensure_app():
    """A QApplication for headless rendering: offscreen unless a platform was chosen."""
    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(["attention-explorer"])
    return app


def render_pattern(
    path, matrix, labels, *, scale: int = 1, colormap: str = "viridis", theme: str = "light",
    size: tuple[int, int] = (900, 800),
) -> Path:  # fmt: skip
    """The attention heatmap as the app draws it (token axes, colour bar), saved as PNG/SVG."""
    from .widgets.heatmap import COLORMAPS, Heatmap

    if colormap not in COLORMAPS:
        raise ExportError(f"unknown colour map {colormap!r}: use one of {', '.join(COLORMAPS)}")
    ensure_app()
    w = Heatmap(cmap=colormap)
    try:
        w.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        plot = w.getPlotItem()
        plot.setLabel("left", "query")
        plot.setLabel("bottom", "key")
        w.set_matrix(matrix, labels, labels)
        style_plot(w, Look(theme))
        w.resize(*size)
        w.show()
        QApplication.processEvents()
        w.reset_view()
        QApplication.processEvents()
        return save_plot(w, path, scale)
    finally:
        w.close()
        w.deleteLater()


# --- the window's exports -----------------------------------------------------------------


def _settings() -> QSettings:
    return QSettings()


def _start_dir(name: str) -> str:
    d = _settings().value("export/dir", "")
    d = d if isinstance(d, str) and d and Path(d).is_dir() else str(Path.home())
    return str(Path(d) / name)


def _remember_dir(path):
    _settings().setValue("export/dir", str(Path(path).parent))


def _with_suffix(path: str, chosen_filter: str) -> Path:
    p = Path(path)
    if not p.suffix and "(*." in chosen_filter:
        p = p.with_suffix(chosen_filter.split("(*", 1)[1].split(")", 1)[0].split()[0])
    return p


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "figure"


class Exporter(QObject):
    """The window's export actions: figures, the window, data. Errors become a message box."""

    exported = Signal(str)  # the path written (also after the asynchronous layer export)
    failed = Signal(str)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.pending_layer: dict[int, tuple] = {}  # request id -> (path, meta)
        window.controller.result.connect(self._on_result)

    # --- plots ------------------------------------------------------------------------------

    def plots(self) -> dict:
        """{label: plot widget} over every dock that names its plots."""
        out = {}
        for dock in self.window.docks.values():
            for name, view in getattr(dock, "plots", dict)().items():
                out[f"{dock.windowTitle()} — {name}" if name != dock.windowTitle() else name] = view
        return out

    def install_plot_menus(self):
        """A right-click menu on every pyqtgraph view inside the docks (also those a dock
        made after the window: this runs again whenever the Export menu opens)."""
        names = {id(v): label for label, v in self.plots().items()}
        for dock in self.window.docks.values():
            for view in dock.findChildren(pg.GraphicsView):
                if getattr(view, "_export_menu", False):
                    continue
                label = names.get(id(view), dock.windowTitle())
                view._export_menu = True
                for item in view.scene().items():  # pyqtgraph's own menus give way to ours
                    if isinstance(item, (pg.ViewBox, pg.PlotItem)):
                        item.setMenuEnabled(False)
                view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
                view.customContextMenuRequested.connect(
                    lambda pos, v=view, n=label: self.plot_menu(v, n).popup(v.mapToGlobal(pos))
                )

    def plot_menu(self, view, label: str) -> QMenu:
        m = QMenu(self.window)
        m.addAction("Copy image", lambda: self.copy(view))
        m.addAction("Save image (PNG 1x/2x/3x, SVG)…", lambda: self.save_plot_dialog(view, label))
        att = self.window.docks.get("attention")
        if att is not None and view is getattr(att, "heatmap", None):
            m.addSeparator()
            m.addAction("Save this pattern's data (CSV, NPZ, NPY)…", self.pattern_dialog)
            m.addAction("Save the whole layer's attention (CSV, NPZ, NPY)…", self.layer_dialog)
        preds = self.window.docks.get("predictions")
        if preds is not None and view is getattr(preds, "plot", None):
            m.addSeparator()
            m.addAction(
                "Save loss per position (CSV)…",
                lambda: self.table_dialog("predictions", "Loss per position"),
            )
        if hasattr(view, "reset_view"):
            m.addSeparator()
            m.addAction("Reset zoom", view.reset_view)
        elif hasattr(view, "getPlotItem"):
            m.addSeparator()
            m.addAction("Reset zoom", lambda: view.getPlotItem().enableAutoRange())
        return m

    def copy(self, view, scale: int = 2):
        if self._guard(lambda: copy_plot(view, scale) or True):
            self.window.statusBar().showMessage("Image copied to the clipboard", 3000)

    def save_plot_dialog(self, view, label: str):
        path, chosen = QFileDialog.getSaveFileName(
            self.window, f"Export {label}", _start_dir(_slug(label) + ".png"),
            ";;".join(IMAGE_FILTERS),
        )  # fmt: skip
        if path:
            p = _with_suffix(path, chosen)
            scale = IMAGE_FILTERS.get(chosen) or 1
            self._done(self._guard(lambda: save_plot(view, p, scale)))

    def save_window_dialog(self):
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save the window as an image", _start_dir("window.png"), WINDOW_FILTER
        )
        if path:
            self._done(self._guard(lambda: save_window(self.window, path)))

    def copy_window(self):
        QApplication.clipboard().setImage(window_image(self.window))
        self.window.statusBar().showMessage("Window image copied to the clipboard", 3000)

    # --- data -------------------------------------------------------------------------------

    def _meta(self, **extra) -> dict:
        st = self.window.state
        meta = {
            "model": st.model.name if st.model else "",
            "prompt": self.window.prompt.text(),
            "ablation": st.run.ablation.describe() if st.run else "none",
        }
        return meta | extra

    def save_pattern(self, path) -> Path:
        """The pattern the Attention dock shows (one head, or the layer average)."""
        att, run = self.window.docks["attention"], self.window.state.run
        if att.pattern is None or run is None or att.shown is None:
            raise ExportError("no attention pattern is shown yet")
        _, layer, head, ablated = att.shown
        meta = self._meta(layer=layer, head=head, ablated=ablated)
        return write_pattern(path, att.pattern, run.texts, run.ids, meta)

    def save_layer(self, path, layer: int | None = None) -> int:
        """All heads of a layer: asks the worker, writes when the result comes (exported)."""
        st = self.window.state
        if st.run is None:
            raise ExportError("run a prompt first")
        layer = st.layer if layer is None else layer
        path = Path(path)
        if path.suffix.lower() not in (".csv", ".npz", ".npy"):
            raise ExportError(f"cannot write {path.name}: use .csv, .npz or .npy")
        ablated = self.window.docks["attention"].ablated_view()
        rid = self.window.controller.submit(LayerRequest(st.run_id, layer, ablated))
        self.pending_layer[rid] = (path, self._meta(layer=layer, ablated=ablated))
        self.window.statusBar().showMessage(f"Computing layer {layer} for export…")
        return rid

    def _on_result(self, r):
        if isinstance(r, LayerResult) and r.id in self.pending_layer:
            path, meta = self.pending_layer.pop(r.id)
            run = self.window.state.run
            if run is None or run.run_id != r.run_id:
                return
            self._done(
                self._guard(lambda: write_pattern(path, r.patterns, run.texts, run.ids, meta))
            )

    def tables(self) -> dict:
        """{(dock name, table name): Table} over every dock that offers tables."""
        out = {}
        for name, dock in self.window.docks.items():
            for tname, table in getattr(dock, "export_tables", dict)().items():
                out[(name, tname)] = table
        return out

    def save_table(self, dock: str, table: str, path) -> Path:
        tables = self.window.docks[dock].export_tables()
        if table not in tables:
            raise ExportError(f"{self.window.docks[dock].windowTitle()} has no {table} yet")
        path = Path(path)
        write_table(path, tables[table])
        return path

    def pattern_dialog(self):
        self._data_dialog("Save the attention pattern", "pattern.csv", self.save_pattern)

    def layer_dialog(self):
        self._data_dialog(
            f"Save layer {self.window.state.layer}'s attention",
            f"layer{self.window.state.layer}.npz", self.save_layer, done=False,
        )  # fmt: skip

    def _data_dialog(self, title, name, write, done=True):
        path, chosen = QFileDialog.getSaveFileName(
            self.window, title, _start_dir(name), ";;".join(PATTERN_FILTERS)
        )
        if path:
            out = self._guard(lambda: write(_with_suffix(path, chosen)))
            if done:
                self._done(out)

    def table_dialog(self, dock: str, table: str):
        path, chosen = QFileDialog.getSaveFileName(
            self.window, f"Save {table}", _start_dir(_slug(table) + ".csv"), CSV_FILTER
        )
        if path:
            self._done(
                self._guard(lambda: self.save_table(dock, table, _with_suffix(path, chosen)))
            )

    # --- the File ▸ Export menu -------------------------------------------------------------

    def fill_menu(self, menu: QMenu):
        """Rebuilt each time it opens: the plots and tables the docks have now."""
        menu.clear()
        self.install_plot_menus()
        for label, view in self.plots().items():
            act = menu.addAction(f"{label} image…")
            act.triggered.connect(lambda _=False, v=view, n=label: self.save_plot_dialog(v, n))
        menu.addAction("Window as PNG…", self.save_window_dialog)
        copy = menu.addMenu("Copy image")
        for label, view in self.plots().items():
            copy.addAction(label, lambda v=view: self.copy(v))
        copy.addAction("Whole window", self.copy_window)
        menu.addSeparator()
        has_run = self.window.state.run is not None
        a = menu.addAction("Attention pattern data (CSV, NPZ, NPY)…", self.pattern_dialog)
        a.setEnabled(has_run)
        a = menu.addAction("Layer's attention, all heads (CSV, NPZ, NPY)…", self.layer_dialog)
        a.setEnabled(has_run)
        tables = self.tables()
        if tables:
            menu.addSeparator()
        for (dock, tname), _ in tables.items():
            title = self.window.docks[dock].windowTitle()
            label = tname if tname.startswith(title) else f"{title}: {tname}"
            act = QAction(f"{label} (CSV)…", menu)
            act.triggered.connect(lambda _=False, d=dock, t=tname: self.table_dialog(d, t))
            menu.addAction(act)

    # --- errors -----------------------------------------------------------------------------

    def _guard(self, fn):
        try:
            return fn()
        except (ExportError, OSError) as e:
            message = str(e)
            self.failed.emit(message)
            QMessageBox.warning(self.window, "Export failed", message)
            return None

    def _done(self, path):
        if isinstance(path, Path):
            _remember_dir(path)
            self.window.statusBar().showMessage(f"Saved {path}", 5000)
            self.exported.emit(str(path))
