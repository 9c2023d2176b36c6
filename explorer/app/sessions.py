"""Saving and opening sessions in the window, and capturing / showing scenes.

Opening is all-or-nothing: the file is read and checked first (SessionError: a message, and
nothing changes); a model that moved or changed is located by the user; the model loads
through the worker like any other; only when it has loaded are the prompt, ablation,
selection, view, dock settings, layout and scenes applied.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, Signal
from PySide6.QtWidgets import QApplication, QDockWidget, QFileDialog, QMessageBox

from ..session import (
    EXTENSION,
    FILE_FILTER,
    Layout,
    ModelRef,
    Scene,
    Session,
    SessionError,
    Snapshot,
    View,
    candidate_paths,
    find_model,
    matches,
    model_ref,
)
from .widgets.heatmap import COLORMAPS, DIVERGING_MAPS

MAX_RECENT = 8


class SessionController(QObject):
    opened = Signal(str)  # the session file, once everything is applied
    saved = Signal(str)
    failed = Signal(str)  # why a session could not be opened or saved

    def __init__(self, window, settings):
        super().__init__(window)
        self.window = window
        self._settings = settings
        self.path: Path | None = None
        self.pending: tuple[Session, Path | None, int] | None = None  # waits for its model
        self.last_focus = ""  # the dock that had the focus last (not the Scenes dock)
        window.model_loaded.connect(self._on_model_loaded)
        window.controller.failed.connect(self._on_failed)
        QApplication.instance().focusChanged.connect(self._on_focus)

    # --- capturing --------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        st = self.window.state
        return Snapshot(
            prompt=self.window.prompt.text(),
            ablation=st.ablation,
            mode=st.mode,
            position=st.position,
            layer=st.layer,
            head=st.head,
            target=st.target,
            foil=st.foil,
        )

    def dock_settings(self) -> dict:
        out = {}
        for name, dock in self.window.docks.items():
            s = getattr(dock, "settings", dict)()
            if s:
                out[name] = dict(s)
        return out

    def visible_docks(self) -> dict:
        return {n: d.toggleViewAction().isChecked() for n, d in self.window.docks.items()}

    def capture_scene(self, name: str) -> Scene:
        return Scene(
            name=name,
            state=self.snapshot(),
            docks_visible=self.visible_docks(),
            focus=self.last_focus,
            docks=self.dock_settings(),
        )

    def capture(self, path=None) -> Session:
        w = self.window
        st = w.state
        pres = w.presenter
        model = None
        if st.model is not None:
            model = model_ref(st.model.path, path, st.model.name)
        if pres.presenting and pres.saved:  # the layout to come back to, not the full screen
            state, geometry = pres.saved["state"], pres.saved["geometry"]
        else:
            state, geometry = w.saveState(w.STATE_VERSION), w.saveGeometry()
        scenes = w.docks.get("scenes")
        return Session(
            model=model,
            state=self.snapshot(),
            view=View(st.colormap, st.diverging, pres.theme, pres.zoom, pres.presentation_zoom),
            docks=self.dock_settings(),
            layout=Layout(w.STATE_VERSION, bytes(state.data()), bytes(geometry.data())),
            scenes=list(scenes.scenes) if scenes else [],
            scene=scenes.current if scenes else -1,
        )

    def _on_focus(self, old, new):
        w = new
        while w is not None and not isinstance(w, QDockWidget):
            w = w.parentWidget()
        if w is not None and w.objectName() in self.window.docks and w.objectName() != "scenes":
            self.last_focus = w.objectName()

    # --- saving -----------------------------------------------------------------------------

    def save(self, path) -> Path:
        path = Path(path)
        if not path.name.endswith(EXTENSION):
            path = path.with_name(path.name + EXTENSION) if not path.suffix else path
        self.capture(path).save(path)  # SessionError when it cannot be written
        self.path = path
        add_recent(self._settings, str(path))
        self._title()
        self.window.statusBar().showMessage(f"Session saved to {path}", 4000)
        self.saved.emit(str(path))
        return path

    def save_interactive(self, ask: bool = False) -> Path | None:
        path = self.path
        if ask or path is None:
            start = str(self.path or Path.home() / ("session" + EXTENSION))
            chosen, _ = QFileDialog.getSaveFileName(self.window, "Save session", start, FILE_FILTER)
            if not chosen:
                return None
            path = Path(chosen)
        try:
            return self.save(path)
        except SessionError as e:
            self._error("Cannot save the session", str(e))
            return None

    # --- opening ----------------------------------------------------------------------------

    def open_dialog(self):
        start = str(self.path.parent if self.path else Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Open session", start, f"{FILE_FILTER};;JSON (*.json);;All files (*)"
        )
        if path:
            self.open(path)

    def open(self, path) -> bool:
        """Read, check, find the model, load it if needed, then apply. False when refused."""
        path = Path(path)
        try:
            session = Session.load(path)
            self.check(session)
        except SessionError as e:
            self._error("Cannot open the session", f"{path.name}: {e}")
            return False
        if session.model is None:
            self.apply(session, path)
            return True
        folder = self.locate(session.model, path)
        if folder is None:
            self.window.statusBar().showMessage("Opening the session was cancelled", 4000)
            return False
        info = self.window.state.model
        if info is not None and Path(info.path).resolve() == folder.resolve():
            self.apply(session, path)  # the model is open already
            return True
        self.window.load_model(str(folder), session.state.prompt)
        self.pending = (session, path, self.window.loading_id)
        return True

    def check(self, s: Session):
        """What the app itself must accept, before anything changes."""
        if s.view.colormap not in COLORMAPS:
            raise SessionError(f"unknown colour map {s.view.colormap!r}")
        if s.view.diverging not in DIVERGING_MAPS:
            raise SessionError(f"unknown diverging colour map {s.view.diverging!r}")
        docks = self.window.docks
        for where, settings in [("docks", s.docks)] + [
            (f"scenes[{i}].docks", sc.docks) for i, sc in enumerate(s.scenes)
        ]:
            for name, d in settings.items():
                if name in docks and hasattr(docks[name], "check_settings"):
                    try:
                        docks[name].check_settings(d)
                    except ValueError as e:
                        raise SessionError(f"{where}: {e}") from None

    def locate(self, ref: ModelRef, session_path) -> Path | None:
        """The session's model folder: where it was, next to the session, the built-in
        demo; else the user picks it (a folder whose files differ needs a confirmation)."""
        found = find_model(ref, session_path)
        if found is not None:
            return found
        from ..checkpoints.demo import demo_available, demo_model_dir

        if demo_available() and matches(demo_model_dir(), ref):
            return demo_model_dir()
        exists = any(p.is_dir() for p in candidate_paths(ref, session_path))
        why = (
            f"The model “{ref.name}” at {ref.path} has changed since the session was saved."
            if exists
            else f"The model “{ref.name}” is not at {ref.path} any more."
        )
        chosen = QFileDialog.getExistingDirectory(
            self.window, f"{why} Locate the model folder", str(Path(ref.path).parent)
        )
        if not chosen:
            return None
        chosen = Path(chosen)
        if matches(chosen, ref):
            return chosen
        if not (chosen / "config.json").is_file():
            self._error("Not a model folder", f"{chosen} has no config.json.")
            return None
        answer = QMessageBox.question(
            self.window,
            "A different model",
            f"The model in {chosen} is not the one the session was saved with (its files "
            "differ). Open the session with it anyway?",
        )
        return chosen if answer == QMessageBox.StandardButton.Yes else None

    def _on_model_loaded(self, info):
        if self.pending is not None and info.id == self.pending[2]:
            session, path, _ = self.pending
            self.pending = None
            self.apply(session, path)

    def _on_failed(self, f):
        if f.kind == "load" and self.pending is not None and f.id == self.pending[2]:
            self.pending = None
            self.failed.emit(f.message)

    # --- applying ---------------------------------------------------------------------------

    def apply(self, s: Session, path=None):
        w = self.window
        st, pres = w.state, w.presenter
        pres.zoom, pres.presentation_zoom = s.view.zoom, s.view.presentation_zoom
        pres.set_theme(s.view.theme)  # applies the zoom too
        st.set_colormap(s.view.colormap)
        st.set_diverging(s.view.diverging)
        if s.layout is not None and s.layout.version == w.STATE_VERSION:
            state, geometry = QByteArray(s.layout.state), QByteArray(s.layout.geometry)
            if pres.presenting and pres.saved:
                pres.saved["state"], pres.saved["geometry"] = state, geometry
                w.restoreState(state, w.STATE_VERSION)
            else:
                if not geometry.isEmpty():
                    w.restoreGeometry(geometry)
                if not state.isEmpty():
                    w.restoreState(state, w.STATE_VERSION)
        for name, d in s.docks.items():
            if name in w.docks and hasattr(w.docks[name], "apply_settings"):
                w.docks[name].apply_settings(d)
        self.apply_snapshot(s.state)
        if "scenes" in w.docks:
            w.docks["scenes"].set_scenes(s.scenes, s.scene)
        if path is not None:
            self.path = Path(path)
            add_recent(self._settings, str(self.path))
        self._title()
        w.statusBar().showMessage(f"Opened session {self.path.name if self.path else ''}", 4000)
        self.opened.emit(str(path or ""))

    def apply_snapshot(self, snap: Snapshot):
        """Prompt, ablation, selection, target/foil: every panel updates from them."""
        w, st = self.window, self.window.state
        w.prompt.set_text(snap.prompt)
        st.set_mode(snap.mode, apply=False)
        st.set_targets(snap.target, snap.foil)
        st.select(position=snap.position, layer=snap.layer, head=snap.head)
        st.set_ablation(snap.ablation)  # runs when it changed
        if w.throttle.isActive():  # the prompt changed: run now, not after the typing delay
            w.submit_run()

    def apply_scene(self, scene: Scene):
        w = self.window
        for name, d in scene.docks.items():
            if name in w.docks and hasattr(w.docks[name], "apply_settings"):
                w.docks[name].apply_settings(d)
        for name, visible in scene.docks_visible.items():
            if name in w.docks:
                w.docks[name].setVisible(visible)
        self.apply_snapshot(scene.state)
        dock = w.docks.get(scene.focus)
        if dock is not None:
            dock.raise_()
            target = getattr(dock, "panel", None) or dock.widget()
            if scene.focus != "prompt" and target is not None:
                target.setFocus()
            self.last_focus = scene.focus
        w.statusBar().showMessage(f"Scene: {scene.name}", 3000)

    # --- helpers ----------------------------------------------------------------------------

    def _title(self):
        w = self.window
        parts = []
        if self.path is not None:
            parts.append(self.path.name)
        if w.state.model is not None:
            parts.append(w.state.model.name)
        w.setWindowTitle(" — ".join(parts + ["Attention Explorer"]))

    def _error(self, title: str, message: str):
        self.failed.emit(message)
        QMessageBox.warning(self.window, title, message)

    def fill_recent(self, menu):
        menu.clear()
        paths = recent(self._settings)
        for p in paths:
            act = menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.open(p))
        if not paths:
            menu.addAction("(none yet)").setEnabled(False)


def recent(settings) -> list[str]:
    v = settings().value("recent/sessions", [])
    if isinstance(v, str):
        v = [v]
    return [p for p in (v or []) if isinstance(p, str)]


def add_recent(settings, path: str):
    paths = [path] + [p for p in recent(settings) if p != path]
    settings().setValue("recent/sessions", paths[:MAX_RECENT])
