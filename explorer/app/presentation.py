"""The View menu's look and presentation mode: theme, text size, colour maps, full screen,
stepping through scenes with a presenter's keys, and the keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QTextEdit,
)

from . import theme
from .widgets.heatmap import COLORMAPS, DIVERGING_MAPS

ZOOMS = (0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
PRESENTATION_ZOOMS = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
NEXT_KEYS = {Qt.Key.Key_Space, Qt.Key.Key_PageDown}
PREV_KEYS = {Qt.Key.Key_Backspace, Qt.Key.Key_PageUp}

# (keys, what they do): Help ▸ Keyboard shortcuts shows this table
SHORTCUTS = (
    ("← →", "previous / next head (in the Attention panel)"),
    ("↑ ↓, PgUp PgDn", "previous / next layer (in the Attention panel)"),
    ("Shift+← →", "previous / next query position (in the Attention panel)"),
    ("Click a token or a heatmap row", "select the query position"),
    ("A", "ablate the selected head, or bring it back (not while typing)"),
    ("F11", "presentation mode on / off"),
    ("Esc", "leave presentation mode"),
    ("Space, PgDn", "next scene (in presentation mode, not while typing)"),
    ("Backspace, PgUp", "previous scene (in presentation mode, not while typing)"),
    ("Ctrl+Shift+N", "add the current state as a scene"),
    ("Ctrl++  Ctrl+−  Ctrl+0", "larger / smaller / normal text"),
    ("Ctrl+O", "open a model folder"),
    ("Ctrl+Shift+O", "open a session"),
    ("Ctrl+S, Ctrl+Shift+S", "save the session / save it as"),
    ("Ctrl+Shift+C", "copy the attention heatmap as an image"),
    ("Ctrl+E", "export the attention heatmap (PNG 1x/2x/3x, SVG)"),
    ("Right-click a plot", "copy or save it, or its data"),
    ("Ctrl+Q", "quit"),
)


def is_text_input(w) -> bool:
    """A widget that takes typed text (keys there are the user's, not the presenter's)."""
    for x in (w, w.parentWidget() if w is not None else None):
        if isinstance(x, (QLineEdit, QAbstractSpinBox)):
            return True
        if isinstance(x, (QPlainTextEdit, QTextEdit)):
            return not x.isReadOnly()
        if isinstance(x, QComboBox) and x.isEditable():
            return True
    return False


def _float(v, default: float, lo: float, hi: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return min(max(f, lo), hi) if f == f else default


class Presenter(QObject):
    """Owns the look (theme, zoom) and presentation mode of one MainWindow."""

    presentation_changed = Signal(bool)
    look_changed = Signal()

    def __init__(self, window, settings):
        super().__init__(window)
        self.window = window
        self._settings = settings
        s = settings()
        t = s.value("view/theme", "system")
        self.theme = t if t in theme.THEMES else "system"
        self.zoom = _float(s.value("view/zoom", 1.0), 1.0, ZOOMS[0], ZOOMS[-1])
        self.presentation_zoom = _float(
            s.value("view/presentation_zoom", 1.5), 1.5, ZOOMS[0], ZOOMS[-1]
        )
        self.presenting = False
        self.saved: dict | None = None  # the window before presentation mode
        self.theme_actions: dict[str, QAction] = {}
        self.pzoom_actions: dict[float, QAction] = {}

    # --- the look -----------------------------------------------------------------------------

    def look(self) -> theme.Look:
        return theme.Look(
            self.theme,
            contrast=self.presenting,
            zoom=self.presentation_zoom if self.presenting else self.zoom,
            line_scale=theme.PRESENTATION_LINE_SCALE if self.presenting else 1.0,
        )

    def apply(self):
        theme.apply(self.window, self.look())
        self.look_changed.emit()

    def set_theme(self, name: str):
        if name not in theme.THEMES:
            raise ValueError(f"unknown theme {name!r}")
        self.theme = name
        self._settings().setValue("view/theme", name)
        if name in self.theme_actions:
            self.theme_actions[name].setChecked(True)
        self.apply()

    def set_zoom(self, zoom: float, presentation: bool | None = None):
        """The text size factor of normal use, or of presentation mode."""
        zoom = _float(zoom, 1.0, ZOOMS[0], ZOOMS[-1])
        if presentation if presentation is not None else self.presenting:
            self.presentation_zoom = zoom
            self._settings().setValue("view/presentation_zoom", zoom)
            for z, a in self.pzoom_actions.items():
                a.setChecked(abs(z - zoom) < 1e-6)
        else:
            self.zoom = zoom
            self._settings().setValue("view/zoom", zoom)
        self.apply()

    def step_zoom(self, d: int):
        now = self.presentation_zoom if self.presenting else self.zoom
        if d == 0:
            self.set_zoom(1.5 if self.presenting else 1.0)
            return
        bigger = [z for z in ZOOMS if z > now + 1e-6]
        smaller = [z for z in ZOOMS if z < now - 1e-6]
        if d > 0 and bigger:
            self.set_zoom(bigger[0])
        elif d < 0 and smaller:
            self.set_zoom(smaller[-1])

    # --- presentation mode -----------------------------------------------------------------

    def set_presentation(self, on: bool):
        w = self.window
        if on == self.presenting:
            return
        app = QApplication.instance()
        if on:
            self.saved = {
                "geometry": w.saveGeometry(),
                "state": w.saveState(w.STATE_VERSION),
                "window_state": w.windowState(),
                "font": app.font(),
            }
            self.presenting = True
            self.apply()
            w.showFullScreen()
            QTimer.singleShot(300, self._fill_screen)
            app.installEventFilter(self)
        else:
            app.removeEventFilter(self)
            self.presenting = False
            self.apply()
            saved, self.saved = self.saved or {}, None
            ws = saved.get("window_state", Qt.WindowState.WindowNoState)
            if ws & Qt.WindowState.WindowMaximized:
                w.showMaximized()
            else:
                w.showNormal()
            self._restore(saved)
            # once the smaller fonts have shrunk the minimum sizes, restore again
            QTimer.singleShot(0, lambda: self._restore(saved))
        self.presentation_action.setChecked(on)
        self.presentation_changed.emit(on)
        w.statusBar().showMessage(
            "Presentation mode: Space / PageDown next scene, Backspace / PageUp previous, "
            "Esc or F11 to leave"
            if on
            else "",
            6000,
        )

    def _restore(self, saved: dict):
        w = self.window
        if self.presenting:
            return
        QApplication.sendPostedEvents()  # font and layout changes first
        if "geometry" in saved:
            w.restoreGeometry(saved["geometry"])
        if "state" in saved:
            w.restoreState(saved["state"], w.STATE_VERSION)

    def _fill_screen(self):
        """Without a window manager (a kiosk, Xvfb) full screen is only a flag: fill the
        screen ourselves."""
        w = self.window
        if self.presenting and w.screen() is not None:
            screen = w.screen().geometry()
            if w.geometry() != screen:
                w.setGeometry(screen)

    def toggle_presentation(self):
        self.set_presentation(not self.presenting)

    def eventFilter(self, obj, ev):
        """While presenting, a presenter's keys step through scenes, wherever the focus is,
        except in a text field (there they edit text as usual)."""
        if ev.type() != QEvent.Type.KeyPress or not self.presenting:
            return False
        if not hasattr(obj, "window") or obj.window() is not self.window:
            return False
        key = ev.key()
        mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if key == Qt.Key.Key_Escape and not mods:
            self.set_presentation(False)
            return True
        if (key in NEXT_KEYS or key in PREV_KEYS) and not mods:
            if is_text_input(QApplication.focusWidget()):
                return False
            self.step_scene(1 if key in NEXT_KEYS else -1)
            return True
        return False

    def step_scene(self, delta: int) -> bool:
        scenes = self.window.docks.get("scenes")
        if scenes is None:
            return False
        ok = scenes.step(delta)
        if not ok:
            n = len(scenes.scenes)
            self.window.statusBar().showMessage(
                "No scenes: add some in the Scenes panel"
                if not n
                else ("This is the last scene" if delta > 0 else "This is the first scene"),
                3000,
            )
        return ok

    # --- the View menu ---------------------------------------------------------------------

    def add_actions(self, menu: QMenu):
        w, st = self.window, self.window.state
        self.presentation_action = QAction("&Presentation mode", w)
        self.presentation_action.setCheckable(True)
        self.presentation_action.setShortcut(QKeySequence(Qt.Key.Key_F11))
        self.presentation_action.triggered.connect(lambda on: self.set_presentation(on))
        menu.addAction(self.presentation_action)
        tm = menu.addMenu("&Theme")
        group = QActionGroup(w)
        for name in theme.THEMES:
            a = tm.addAction(theme.THEME_LABELS[name])
            a.setCheckable(True)
            a.setChecked(name == self.theme)
            a.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(a)
            self.theme_actions[name] = a
        zm = menu.addMenu("Text &size")
        for label, key, d in (
            ("&Larger", QKeySequence.StandardKey.ZoomIn, 1),
            ("&Smaller", QKeySequence.StandardKey.ZoomOut, -1),
            ("&Normal", QKeySequence("Ctrl+0"), 0),
        ):
            a = zm.addAction(label)
            a.setShortcuts([QKeySequence(key)] + ([QKeySequence("Ctrl+=")] if d > 0 else []))
            a.triggered.connect(lambda _=False, d=d: self.step_zoom(d))
            w.addAction(a)  # works with the menu bar hidden too
        pz = zm.addMenu("In &presentation mode")
        group = QActionGroup(w)
        for z in PRESENTATION_ZOOMS:
            a = pz.addAction(f"{z:.0%}")
            a.setCheckable(True)
            a.setChecked(abs(z - self.presentation_zoom) < 1e-6)
            a.triggered.connect(lambda _=False, z=z: self.set_zoom(z, presentation=True))
            group.addAction(a)
            self.pzoom_actions[z] = a
        self._colour_menu(menu.addMenu("&Colour map"), COLORMAPS, st.set_colormap,
                          st.colormap_changed, lambda: st.colormap)  # fmt: skip
        self._colour_menu(menu.addMenu("&Diverging colour map"), DIVERGING_MAPS,
                          st.set_diverging, st.diverging_changed, lambda: st.diverging)  # fmt: skip
        w.addAction(self.presentation_action)

    def _colour_menu(self, menu, names, setter, signal, current):
        group = QActionGroup(self.window)
        actions = {}
        for name in names:
            a = menu.addAction(name)
            a.setCheckable(True)
            a.setChecked(name == current())
            a.triggered.connect(lambda _=False, n=name: setter(n))
            group.addAction(a)
            actions[name] = a
        signal.connect(lambda n: actions[n].setChecked(True) if n in actions else None)
