"""The main window: prompt editor, docks, menus, status bar, saved layout."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from ..checkpoints.demo import demo_available, demo_model_dir, example_prompts
from .compute import EngineController, Failure, LoadRequest, ModelInfo, RunRequest, RunResult
from .docks.ablation import AblationDock
from .docks.attention import AttentionDock
from .docks.dla import DLADock
from .docks.generation import GenerationDock
from .docks.lens import LensDock
from .docks.patching import PatchingDock
from .docks.predictions import PredictionsDock
from .docks.roles import RolesDock
from .docks.rollout import RolloutDock
from .docks.scenes import ScenesDock
from .docks.sweep import SweepDock
from .docks.tokens import TokensDock
from .export import Exporter
from .presentation import SHORTCUTS, Presenter
from .sessions import SessionController
from .state import AppState

STATE_VERSION = 6  # bump when the dock set changes: old saved layouts are then ignored
THROTTLE_MS = 150
MAX_RECENT = 8
DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"


def settings() -> QSettings:
    return QSettings()


class PromptPanel(QWidget):
    """The multi-line prompt editor and the example prompts."""

    edited = Signal(str)

    def __init__(self):
        super().__init__()
        self.setObjectName("prompt-panel")
        self.examples = QComboBox()
        self.examples.setMinimumContentsLength(24)
        self.examples.setToolTip("Example prompts that show a circuit of the built-in model")
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Type a prompt…")
        self.editor.setTabChangesFocus(True)
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b45309")
        top = QHBoxLayout()
        top.addWidget(QLabel("Examples"))
        top.addWidget(self.examples, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(top)
        lay.addWidget(self.editor, 1)
        lay.addWidget(self.notice)
        self.items: list[dict] = []
        self.examples.activated.connect(self._pick)
        self.editor.textChanged.connect(self._on_text)

    def set_examples(self, items: list[dict]):
        self.items = items
        self.examples.clear()
        self.examples.addItem("—")
        for it in items:
            self.examples.addItem(it.get("name", it["text"][:30]))

    def _on_text(self):
        text = self.text()
        # the list names the example being shown, "—" once the text is the user's own
        match = next((i + 1 for i, it in enumerate(self.items) if it["text"] == text), 0)
        if self.examples.currentIndex() != match:
            self.examples.setCurrentIndex(match)
        self.edited.emit(text)

    def _pick(self, index: int):
        if index > 0:
            self.editor.setPlainText(self.items[index - 1]["text"])

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str):
        if text != self.text():
            self.editor.setPlainText(text)


class MainWindow(QMainWindow):
    model_loaded = Signal(object)
    run_shown = Signal(object)
    STATE_VERSION = STATE_VERSION

    def __init__(self, controller: EngineController | None = None, restore: bool = True):
        super().__init__()
        self.setWindowTitle("Attention Explorer")
        self.resize(1500, 950)
        self.controller = controller or EngineController(self)
        self.state = AppState(self)
        self.loading_id = 0
        self.pending_prompt: str | None = None
        self.closing = False

        self.prompt = PromptPanel()
        self.prompt.set_examples(example_prompts())
        # every panel is a dock; the central widget is an empty, hidden placeholder
        placeholder = QWidget()
        placeholder.hide()
        self.setCentralWidget(placeholder)
        self.prompt_dock = QDockWidget("Prompt", self)
        self.prompt_dock.setObjectName("prompt")
        self.prompt_dock.setWidget(self.prompt)
        self.docks = {"prompt": self.prompt_dock}
        self.docks |= {
            cls.name: cls(self.state, self.controller, self)
            for cls in (
                TokensDock, AttentionDock, AblationDock, PredictionsDock, GenerationDock,
                ScenesDock, RolesDock, SweepDock, LensDock, DLADock, PatchingDock, RolloutDock,
            )
        }  # fmt: skip
        self.docks["roles"].attach(self.docks["attention"])
        self.docks["patching"].prompt_text = lambda: self.prompt.text()
        self.tabifiedDockWidgetActivated.connect(lambda _: self.hide_stale_tab_bars())
        self._default_layout()
        self.presenter = Presenter(self, settings)
        self.sessions = SessionController(self, settings)
        self.exporter = Exporter(self)
        self.docks["scenes"].capture = self.sessions.capture_scene
        self.docks["scenes"].activated.connect(self.sessions.apply_scene)
        self._menus()
        self._status_bar()
        self.default_state = self.saveState(STATE_VERSION)

        self.throttle = QTimer(self)
        self.throttle.setSingleShot(True)
        self.throttle.setInterval(THROTTLE_MS)
        self.throttle.timeout.connect(self.submit_run)
        self.prompt.edited.connect(lambda _: self.throttle.isActive() or self.throttle.start())
        self.prompt.examples.activated.connect(self._example_targets)
        self.state.ablation_changed.connect(lambda _: self.submit_run())
        self.controller.result.connect(self._on_result)
        self.controller.failed.connect(self._on_failed)
        self.controller.progress.connect(self._on_progress)
        self.controller.busy.connect(self._on_busy)
        self.empty_message()
        if restore:
            self.restore_layout()
        self.exporter.install_plot_menus()
        self.presenter.apply()

    # --- layout -----------------------------------------------------------------------------

    def _default_layout(self):
        """Prompt and tokens on top; ablation, attention, predictions in the middle row;
        generation along the bottom. The analyses are tabs: the wide ones (sweep, lens,
        patching, rollout) behind Attention, head roles and attribution behind Predictions."""
        d = self.docks
        self.setDockNestingEnabled(True)
        for dock in d.values():
            dock.setVisible(True)
            dock.setFloating(False)
        top, left = Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea
        right, bottom = (
            Qt.DockWidgetArea.RightDockWidgetArea,
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.addDockWidget(top, d["prompt"])
        self.addDockWidget(top, d["tokens"])
        self.splitDockWidget(d["prompt"], d["tokens"], Qt.Orientation.Horizontal)
        self.addDockWidget(left, d["ablation"])
        self.splitDockWidget(d["ablation"], d["scenes"], Qt.Orientation.Vertical)
        self.addDockWidget(right, d["attention"])
        self.addDockWidget(right, d["predictions"])
        self.splitDockWidget(d["attention"], d["predictions"], Qt.Orientation.Horizontal)
        self.addDockWidget(bottom, d["generation"])
        for group, names in (
            ("attention", ("sweep", "lens", "patching", "rollout")),
            ("predictions", ("roles", "dla")),
        ):
            for name in names:
                self.tabifyDockWidget(d[group], d[name])
            d[group].raise_()
        H = Qt.Orientation.Horizontal
        self.resizeDocks([d["prompt"], d["tokens"]], [560, 940], H)
        self.resizeDocks([d["ablation"], d["attention"], d["predictions"]], [300, 800, 400], H)
        self.resizeDocks(
            [d["prompt"], d["attention"], d["generation"]], [190, 560, 150], Qt.Orientation.Vertical
        )
        self.resizeDocks([d["ablation"], d["scenes"]], [400, 160], Qt.Orientation.Vertical)

    def restoreState(self, state, version: int = 0) -> bool:
        ok = super().restoreState(state, version)
        QTimer.singleShot(0, self.hide_stale_tab_bars)
        return ok

    def showEvent(self, ev):
        super().showEvent(ev)
        QTimer.singleShot(0, self.hide_stale_tab_bars)

    def hide_stale_tab_bars(self) -> int:
        """Qt 6.11 leaves the tab bars of earlier dock layouts on screen after tabifying and
        after restoreState: old copies drawn over and next to the live ones. Qt makes a new bar
        for every tab group it lays out and never reuses one, so a bar that shares a dock with
        a newer bar is an old copy: hide it. Returns how many were hidden."""
        bars = [c for c in self.children() if isinstance(c, QTabBar)]  # oldest first
        seen: set[str] = set()
        hidden = 0
        for bar in reversed(bars):
            titles = {bar.tabText(i) for i in range(bar.count())}
            if titles & seen and not bar.isHidden():
                bar.hide()
                hidden += 1
            seen |= titles
        return hidden

    def reset_layout(self):
        if not self.restoreState(self.default_state, STATE_VERSION):
            self._default_layout()
        for dock in self.docks.values():
            dock.setVisible(True)

    def restore_layout(self) -> bool:
        """Window geometry and dock layout from the last run; the default when that fails."""
        s = settings()
        geometry, state = s.value("window/geometry"), s.value("window/state")
        ok = False
        try:
            if isinstance(geometry, QByteArray) and not geometry.isEmpty():
                self.restoreGeometry(geometry)
            if isinstance(state, QByteArray) and not state.isEmpty():
                ok = self.restoreState(state, STATE_VERSION)
        except Exception:
            ok = False
        if not ok:
            self.reset_layout()
        return ok

    def save_layout(self):
        s = settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(STATE_VERSION))
        s.sync()

    # --- menus and status bar ---------------------------------------------------------------

    def _menus(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        act = QAction("&Open model folder…", self)
        act.setShortcut(QKeySequence.StandardKey.Open)
        act.triggered.connect(self.open_dialog)
        f.addAction(act)
        act = QAction("Open &built-in demo model", self)
        act.triggered.connect(lambda: self.load_model(str(demo_model_dir())))
        act.setEnabled(demo_available())
        f.addAction(act)
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.cache_menu = f.addMenu("&Models on this computer")
        self.cache_menu.aboutToShow.connect(self._fill_cache)
        f.addSeparator()
        self._session_menu(f)
        f.addSeparator()
        act = QAction("&Quit", self)
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.close)
        f.addAction(act)
        v = mb.addMenu("&View")
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())
        v.addSeparator()
        self.presenter.add_actions(v)
        v.addSeparator()
        self._scene_actions(v)
        w = mb.addMenu("&Window")
        act = QAction("&Reset layout", self)
        act.triggered.connect(self.reset_layout)
        w.addAction(act)
        h = mb.addMenu("&Help")
        act = QAction("&Keyboard shortcuts", self)
        act.triggered.connect(self.show_shortcuts)
        h.addAction(act)
        act = QAction("&About", self)
        act.triggered.connect(self.show_about)
        h.addAction(act)

    def _session_menu(self, f):
        """Sessions and export (File menu)."""
        for text, keys, slot in (
            ("Open &session…", "Ctrl+Shift+O", self.sessions.open_dialog),
            ("&Save session", "Ctrl+S", lambda: self.sessions.save_interactive()),
            ("Save session &as…", "Ctrl+Shift+S", lambda: self.sessions.save_interactive(True)),
        ):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(keys))
            act.triggered.connect(slot)
            f.addAction(act)
        self.recent_sessions_menu = f.addMenu("Recent s&essions")
        self.recent_sessions_menu.aboutToShow.connect(
            lambda: self.sessions.fill_recent(self.recent_sessions_menu)
        )
        f.addSeparator()
        self.export_menu = f.addMenu("&Export")
        self.export_menu.aboutToShow.connect(lambda: self.exporter.fill_menu(self.export_menu))
        heatmap = self.docks["attention"].heatmap
        for text, keys, slot in (
            ("Copy the attention heatmap", "Ctrl+Shift+C", lambda: self.exporter.copy(heatmap)),
            ("Export the attention heatmap…", "Ctrl+E",
             lambda: self.exporter.save_plot_dialog(heatmap, "Attention heatmap")),
        ):  # fmt: skip
            act = QAction(text, self)
            act.setShortcut(QKeySequence(keys))
            act.triggered.connect(slot)
            self.addAction(act)  # the Export menu is rebuilt when it opens; keys work always

    def _scene_actions(self, v):
        scenes = self.docks["scenes"]
        for text, keys, slot in (
            ("&Add the current state as a scene", "Ctrl+Shift+N", lambda: scenes.add_current()),
            ("Pre&vious scene", "", lambda: self.presenter.step_scene(-1)),
            ("&Next scene", "", lambda: self.presenter.step_scene(1)),
            ("Ablate / restore the selected &head", "A", self.toggle_selected_head),
        ):
            act = QAction(text, self)
            if keys:
                act.setShortcut(QKeySequence(keys))
            act.triggered.connect(slot)
            v.addAction(act)
            self.addAction(act)

    def toggle_selected_head(self):
        from .presentation import is_text_input

        if is_text_input(self.focusWidget()):
            return
        if not self.state.toggle_head():
            self.statusBar().showMessage("Select one head (not the layer average) first", 3000)

    def _status_bar(self):
        sb = self.statusBar()
        self.model_label = QLabel("no model")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_load)
        sb.addPermanentWidget(self.busy_bar)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.model_label)

    def _fill_recent(self):
        self.recent_menu.clear()
        paths = recent_models()
        for p in paths:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.load_model(p))
        if not paths:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def _fill_cache(self):
        from ..checkpoints.hub_cache import list_cached_models

        self.cache_menu.clear()
        models = list_cached_models()
        for m in models:
            label = f"{m.repo_id}  ({m.model_type}, {m.size_bytes / 1e6:.0f} MB)"
            act = self.cache_menu.addAction(label)
            act.setEnabled(m.supported)
            act.triggered.connect(lambda _=False, p=str(m.path): self.load_model(p))
        if not models:
            self.cache_menu.addAction("(no models in the Hugging Face cache)").setEnabled(False)

    def shortcuts_html(self) -> str:
        rows = "".join(
            f"<tr><td><b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>"
            for keys, what in SHORTCUTS
        )
        return f"<table>{rows}</table>"

    def show_shortcuts(self):
        QMessageBox.information(self, "Keyboard shortcuts", self.shortcuts_html())

    def show_about(self):
        from .. import __version__

        QMessageBox.about(
            self,
            "Attention Explorer",
            f"Attention Explorer {__version__}<br>See how a transformer turns a prompt into a "
            "prediction — offline.",
        )

    def empty_message(self):
        self.prompt.notice.setText(
            "No model is open. Use File ▸ Open model folder… to open a Hugging Face model folder "
            "(config.json, *.safetensors, tokenizer.json)."
        )

    # --- model loading ----------------------------------------------------------------------

    def open_dialog(self):
        path = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder")
        if path:
            self.load_model(path)

    def load_model(self, path: str, prompt: str | None = None):
        self.pending_prompt = prompt
        self.loading_id = self.controller.submit(LoadRequest(str(path)))
        self.busy_bar.setVisible(True)
        self.cancel_button.setVisible(True)
        self.statusBar().showMessage(f"Loading {Path(path).name}…")

    def cancel_load(self):
        self.controller.cancel("load")
        self.cancel_button.setVisible(False)
        self.statusBar().showMessage("Loading cancelled", 4000)

    def _on_progress(self, rid, message):
        if rid == self.loading_id:
            self.statusBar().showMessage(f"Loading: {message}…")

    def _on_busy(self, busy: bool):
        self.busy_bar.setVisible(busy)
        if not busy:
            self.cancel_button.setVisible(False)

    # --- results ----------------------------------------------------------------------------

    def submit_run(self):
        self.throttle.stop()
        if self.state.model is None:
            return
        self.controller.submit(RunRequest(self.prompt.text(), self.state.ablation))

    def _on_result(self, r):
        if isinstance(r, ModelInfo):
            self._on_model(r)
        elif isinstance(r, RunResult):
            self.state.set_run(r)
            notes = []
            if r.truncated:
                notes.append(
                    f"The prompt is longer than the model's context window: the first "
                    f"{r.truncated} tokens were left out."
                )
            if r.replaced:
                notes.append(
                    f"{r.replaced} character(s) that are not valid text (unpaired UTF-16 "
                    "surrogates, e.g. from the clipboard) were read as \ufffd."
                )
            self.prompt.notice.setText(" ".join(notes))
            self.statusBar().showMessage(f"{len(r.ids)} tokens in {r.seconds * 1000:.0f} ms", 3000)
            self.run_shown.emit(r)

    def _on_model(self, info: ModelInfo):
        self.cancel_button.setVisible(False)
        self.state.set_model(info)
        d = info.describe
        size = d["n_params"]
        size = f"{size / 1e9:.2f}B" if size >= 1e9 else f"{size / 1e6:.1f}M"
        self.model_label.setText(
            f"<b>{info.name}</b> · {d['architecture']} · {d['n_layers']}×{d['n_heads']} heads · "
            f"{size} params · {d['dtype']} · {d['device']}"
        )
        self.setWindowTitle(f"{info.name} — Attention Explorer")
        self.statusBar().showMessage(f"Loaded {info.name} in {info.load_seconds:.1f} s", 4000)
        add_recent(info.path)
        self.prompt.notice.setText("")
        if self.pending_prompt is not None:
            self.prompt.set_text(self.pending_prompt)
            self.pending_prompt = None
        elif not self.prompt.text().strip():
            items = self.prompt.items
            self.prompt.set_text(items[0]["text"] if items else DEFAULT_PROMPT)
            if items:
                self._example_targets(1)
        self.submit_run()
        self.model_loaded.emit(info)

    def _example_targets(self, index: int):
        if index > 0 and index - 1 < len(self.prompt.items):
            it = self.prompt.items[index - 1]
            self.state.set_targets(it.get("target", ""), it.get("foil", ""))

    def _on_failed(self, f: Failure):
        if f.kind == "load":
            self.cancel_button.setVisible(False)
            QMessageBox.warning(self, "Cannot open the model", f.message)
            if self.state.model is None:
                self.empty_message()
        elif f.kind == "run":
            self.prompt.notice.setText(f.message[:1].upper() + f.message[1:])
        else:
            self.statusBar().showMessage(f"{f.kind} failed: {f.message}", 8000)

    def all_ready(self) -> bool:
        """Every visible panel shows results for the current run."""
        return (
            self.state.run is not None
            and all(d.is_ready() for d in self.docks.values() if hasattr(d, "is_ready"))
            and self.controller.is_idle()
        )

    # --- closing ----------------------------------------------------------------------------

    def closeEvent(self, ev):
        self.closing = True
        self.throttle.stop()
        self.presenter.set_presentation(False)  # save the layout to come back to
        self.controller.shutdown(2.0)
        self.save_layout()
        super().closeEvent(ev)


def recent_models() -> list[str]:
    v = settings().value("recent/models", [])
    if isinstance(v, str):
        v = [v]
    return [p for p in (v or []) if isinstance(p, str)]


def add_recent(path: str):
    paths = [path] + [p for p in recent_models() if p != path]
    settings().setValue("recent/models", paths[:MAX_RECENT])
    settings().setValue("recent/last", path)
