"""Sessions in the window: save -> open restores everything; scenes; bad files keep the state."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from explorer.engine import Ablation
from explorer.session import VERSION, Session

from .conftest import open_model, wait_ready

PROMPT = "When Mary and John went to the store, John gave a drink to"
OTHER = "The quick brown fox jumps over the lazy dog"


@pytest.fixture
def gpt2(tiny):
    return tiny("gpt2")


@pytest.fixture
def boxes(monkeypatch):
    """Message boxes and dialogs never block: they are recorded (and answered)."""
    shown = {"warning": [], "question": [], "dirs": []}
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown["warning"].append(a[2]))
    return shown


def new_window(qtbot):
    from explorer.app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def set_up(qtbot, w, folder):
    """A window in a state far from the defaults."""
    open_model(qtbot, w, folder, PROMPT)
    st = w.state
    w.docks["tokens"].mode.setCurrentIndex(2)
    w.docks["generation"].n.setValue(7)
    w.docks["attention"].clean.setChecked(True)
    st.set_colormap("cividis")
    st.set_diverging("CET-CBD1")
    w.presenter.set_theme("dark")
    st.set_mode("mean")
    st.set_ablation(Ablation.of([(1, 2), (0, 3)], "mean", mlp_layers=[0]))
    st.set_targets(" Mary", " John")
    st.select(position=4, layer=2, head=1)
    w.docks["generation"].setVisible(False)
    scenes = w.docks["scenes"]
    scenes.add_current("Ablated")
    st.set_ablation(Ablation())
    st.select(layer=1, head=-1)
    scenes.add_current("Clean average")
    scenes.activate(0)
    wait_ready(qtbot, w)


def numbers(w) -> dict:
    att, preds = w.docks["attention"], w.docks["predictions"]
    return {
        "tokens": list(w.docks["tokens"].view.texts),
        "pattern": att.heatmap.data.copy(),
        "shown": att.shown[1:],
        "preds": preds.values(),
        "loss": w.state.run.loss_ablated.copy(),
        "generated": (w.docks["generation"].last.clean, w.docks["generation"].last.ablated),
    }


def same_session(a: Session, b: Session):
    for field in ("model", "state", "view", "docks", "scenes", "scene"):
        assert getattr(a, field) == getattr(b, field), field


def test_save_then_open_restores_everything(qtbot, gpt2, tmp_path, boxes):
    w = new_window(qtbot)
    set_up(qtbot, w, gpt2.folder)
    path = w.sessions.save(tmp_path / "talk")
    assert path.name == "talk.aexp.json"
    saved = Session.load(path)
    before = numbers(w)
    visible = {n: d.isVisible() for n, d in w.docks.items()}
    w.close()

    w2 = new_window(qtbot)
    w2.presenter.set_theme("light")
    with qtbot.waitSignal(w2.sessions.opened, timeout=20000):
        assert w2.sessions.open(path)
    wait_ready(qtbot, w2)
    st = w2.state
    assert st.model.path == str(gpt2.folder)
    assert (st.selected_position, st.layer, st.head) == (4, 2, 1)
    assert st.ablation == Ablation.of([(1, 2), (0, 3)], "mean", mlp_layers=[0])
    assert (st.mode, st.target, st.foil, st.colormap, st.diverging) == (
        "mean", " Mary", " John", "cividis", "CET-CBD1",
    )  # fmt: skip
    assert w2.presenter.theme == "dark"
    assert w2.docks["tokens"].mode.currentIndex() == 2
    assert w2.docks["generation"].n.value() == 7
    assert w2.docks["attention"].clean.isChecked()
    assert [s.name for s in w2.docks["scenes"].scenes] == ["Ablated", "Clean average"]
    assert w2.docks["scenes"].current == 0
    assert {n: d.isVisible() for n, d in w2.docks.items()} == visible
    # every field the session holds is the same when captured again
    same_session(w2.sessions.capture(path), saved)
    # and the panels show the same numbers
    after = numbers(w2)
    np.testing.assert_array_equal(after.pop("pattern"), before.pop("pattern"))
    np.testing.assert_array_equal(after.pop("loss"), before.pop("loss"))
    assert after == before
    assert str(path) in w2.sessions.path.as_posix() or w2.sessions.path == path
    assert "talk.aexp.json" in w2.windowTitle()
    assert not boxes["warning"]


def test_open_session_with_the_model_already_open_and_recent_menu(qtbot, window, gpt2, tmp_path):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.state.select(layer=2, head=3)
    window.prompt.set_text(OTHER)
    path = window.sessions.save(tmp_path / "s.aexp.json")
    window.prompt.set_text(PROMPT)
    window.state.select(layer=0, head=0)
    wait_ready(qtbot, window)
    computed = list(window.controller.computed)
    assert window.sessions.open(path)
    assert window.controller.computed.count("load") == computed.count("load")  # no reload
    qtbot.waitUntil(lambda: window.state.run.ids == gpt2.lm.encode(OTHER), timeout=10000)
    wait_ready(qtbot, window)
    assert (window.state.layer, window.state.head) == (2, 3)
    np.testing.assert_allclose(
        window.docks["attention"].heatmap.data,
        gpt2.lm.run(gpt2.lm.encode(OTHER)).pattern(2, 3).numpy(),
        atol=1e-6,
    )
    window.recent_sessions_menu.aboutToShow.emit()
    assert [a.text() for a in window.recent_sessions_menu.actions()] == [str(path)]


def test_scenes_step_and_update_every_panel(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    st, scenes = window.state, window.docks["scenes"]
    st.select(layer=1, head=2, position=3)
    scenes.add_current("one")
    window.prompt.set_text(OTHER)
    st.set_ablation(Ablation.of([(0, 1)]))
    st.select(layer=2, head=0, position=-1)
    window.docks["tokens"].setVisible(False)
    window.docks["attention"].panel.setFocus()
    scenes.add_current("two")
    assert scenes.scenes[1].focus == "attention"
    assert scenes.scenes[1].docks_visible["tokens"] is False
    window.presenter.set_presentation(True)
    panel = window.docks["attention"].panel
    for key, name, prompt, abl, sel in (
        (Qt.Key.Key_Backspace, "one", PROMPT, Ablation(), (3, 1, 2)),
        (Qt.Key.Key_Space, "two", OTHER, Ablation.of([(0, 1)]), (-1, 2, 0)),
        (Qt.Key.Key_PageUp, "one", PROMPT, Ablation(), (3, 1, 2)),
        (Qt.Key.Key_PageDown, "two", OTHER, Ablation.of([(0, 1)]), (-1, 2, 0)),
    ):
        qtbot.keyClick(panel, key)
        assert scenes.scenes[scenes.current].name == name
        qtbot.waitUntil(lambda p=prompt: st.run.ids == gpt2.lm.encode(p), timeout=10000)
        qtbot.waitUntil(lambda a=abl: st.run.ablation == a, timeout=10000)
        wait_ready(qtbot, window)
        assert (st.position, st.layer, st.head) == sel
        assert window.docks["tokens"].isVisible() == (name == "one")
        run = gpt2.lm.run(gpt2.lm.encode(prompt), abl)
        np.testing.assert_allclose(
            window.docks["attention"].heatmap.data, run.pattern(sel[1], sel[2]).numpy(), atol=1e-6
        )
        panel = window.focusWidget() or panel
    # at the end: a message, nothing changes
    qtbot.keyClick(panel, Qt.Key.Key_Space)
    assert scenes.current == 1
    assert "last scene" in window.statusBar().currentMessage()
    # in the prompt editor the keys are the editor's
    editor = window.prompt.editor
    editor.setFocus()
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    assert scenes.current == 1 and window.prompt.text() == OTHER[:-1]
    window.presenter.set_presentation(False)


def test_scenes_dock_edits(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    scenes = window.docks["scenes"]
    for i in range(3):
        window.state.select(layer=i)
        scenes.add_current()
    assert [s.name for s in scenes.scenes] == ["Scene 1", "Scene 2", "Scene 3"]
    assert [s.state.layer for s in scenes.scenes] == [0, 1, 2]
    scenes.rename(0, "Start")
    scenes.list.setCurrentRow(0)
    scenes.move_selected(1)
    assert [s.name for s in scenes.scenes] == ["Scene 2", "Start", "Scene 3"]
    scenes.list.setCurrentRow(2)
    qtbot.mouseClick(scenes.up_button, Qt.MouseButton.LeftButton)
    assert [s.name for s in scenes.scenes] == ["Scene 2", "Scene 3", "Start"]
    assert scenes.current == 1  # "Scene 3", shown last, moved with its row
    scenes.list.setCurrentRow(0)
    scenes.delete_selected()
    assert [s.name for s in scenes.scenes] == ["Scene 3", "Start"]
    assert scenes.current == 0
    scenes.rename(1, "  ")  # an empty name is refused
    assert scenes.scenes[1].name == "Start"
    window.state.select(layer=1, head=3)
    scenes.list.setCurrentRow(1)
    scenes.update_selected()
    assert (scenes.scenes[1].state.layer, scenes.scenes[1].state.head) == (1, 3)
    assert scenes.scenes[1].name == "Start"
    scenes.activate(0)
    assert window.state.layer == 2
    # dragging a row moves it (a drag ends in the model's moveRow)
    from PySide6.QtCore import QModelIndex

    assert scenes.list.model().moveRow(QModelIndex(), 0, QModelIndex(), 2)
    assert [s.name for s in scenes.scenes] == ["Start", "Scene 3"]
    assert scenes.current == 1  # the scene shown moved with its row


def write(tmp_path, name, data) -> str:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(p)


def test_bad_session_files_are_refused_and_the_state_is_kept(qtbot, window, gpt2, tmp_path, boxes):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.state.set_ablation(Ablation.of([(1, 1)]))
    window.state.select(layer=2, head=2)
    wait_ready(qtbot, window)
    good = window.sessions.save(tmp_path / "good.aexp.json")
    before = window.sessions.capture()
    data = json.loads(good.read_text(encoding="utf-8"))
    newer = dict(data, version=VERSION + 1)
    wrong = json.loads(json.dumps(data))
    wrong["state"]["layer"] = "two"
    wrong_dock = json.loads(json.dumps(data))
    wrong_dock["docks"]["generation"] = {"n": "seven"}
    bad_map = json.loads(json.dumps(data))
    bad_map["view"]["colormap"] = "rainbow"
    cases = [
        (write(tmp_path, "corrupt.aexp.json", good.read_text()[:-40]), "not valid JSON"),
        (write(tmp_path, "newer.aexp.json", newer), "newer Attention Explorer"),
        (write(tmp_path, "wrong.aexp.json", wrong), "state.layer should be a whole number"),
        (write(tmp_path, "dock.aexp.json", wrong_dock), "generation.n should be int"),
        (write(tmp_path, "map.aexp.json", bad_map), "unknown colour map"),
        (str(tmp_path / "missing.aexp.json"), "cannot read"),
    ]
    for path, words in cases:
        boxes["warning"].clear()
        assert not window.sessions.open(path)
        assert len(boxes["warning"]) == 1 and words in boxes["warning"][0], boxes["warning"]
        same_session(window.sessions.capture(), before)
    assert window.sessions.path == good


def test_a_moved_model_is_located_by_the_user(qtbot, gpt2, tmp_path, boxes, monkeypatch):
    model = tmp_path / "a" / "model"
    shutil.copytree(gpt2.folder, model)
    w = new_window(qtbot)
    open_model(qtbot, w, model, OTHER)
    w.state.select(layer=1, head=1)
    (tmp_path / "sessions").mkdir()
    path = w.sessions.save(tmp_path / "sessions" / "s.aexp.json")
    w.close()
    moved = tmp_path / "b" / "elsewhere"
    shutil.move(str(model), str(moved))
    asked = []

    def pick(parent, title, start=""):
        asked.append(title)
        return str(moved)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick)
    w2 = new_window(qtbot)
    with qtbot.waitSignal(w2.sessions.opened, timeout=20000):
        assert w2.sessions.open(path)
    assert len(asked) == 1 and "not at" in asked[0]
    assert w2.state.model.path == str(moved)
    assert (w2.state.layer, w2.state.head) == (1, 1)


def test_a_changed_model_needs_a_confirmation(qtbot, window, gpt2, tmp_path, boxes, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(gpt2.folder, model)
    path = tmp_path / "s.aexp.json"
    open_model(qtbot, window, model, PROMPT)
    window.sessions.save(path)
    open_model(qtbot, window, gpt2.folder, OTHER)
    weights = next(model.glob("*.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-7] ^= 0x55
    weights.write_bytes(bytes(raw))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(model))
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    questions = []

    def question(parent, title, text, *a, **k):
        questions.append(text)
        return answers[len(questions) - 1]

    monkeypatch.setattr(QMessageBox, "question", question)
    assert not window.sessions.open(path)  # "No": nothing changes
    assert window.state.model.path == str(gpt2.folder)
    assert window.prompt.text() == OTHER
    assert "not the one the session was saved with" in questions[0]
    with qtbot.waitSignal(window.sessions.opened, timeout=20000):
        assert window.sessions.open(path)  # "Yes": opened with the changed model
    assert window.state.model.path == str(model)
    assert window.prompt.text() == PROMPT
    # cancelling the folder dialog cancels opening
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    open_model(qtbot, window, gpt2.folder, OTHER)
    assert not window.sessions.open(path)
    assert window.prompt.text() == OTHER


def test_command_line_session_flag():
    from explorer.app.main import parse

    a = parse(["--session", "talk.aexp.json", "--present"])
    assert a.session == "talk.aexp.json" and a.present and a.model is None
