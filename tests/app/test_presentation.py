"""Presentation mode, themes, text size, colour maps and keyboard shortcuts."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from explorer.engine import Ablation

from .conftest import open_model

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture
def gpt2(tiny):
    return tiny("gpt2")


def font_size() -> float:
    return QApplication.font().pointSizeF()


def window_colour():
    return QApplication.palette().color(QPalette.ColorRole.Window)


def test_presentation_mode_toggles_and_restores_the_window(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.resize(1200, 800)
    window.restoreGeometry(window.saveGeometry())  # as Qt restores it on this (small) screen
    window.docks["generation"].setVisible(False)
    qtbot.wait(10)
    geometry, state = window.geometry(), window.saveState(window.STATE_VERSION)
    size, font = window.size(), font_size()
    curve = window.docks["predictions"].curve_clean
    width = curve.opts["pen"].widthF()
    window.presenter.set_zoom(2.0, presentation=True)
    window.presenter.presentation_action.trigger()  # F11's action
    assert window.presenter.presenting and window.isFullScreen()
    assert font_size() == pytest.approx(font * 2.0)
    assert curve.opts["pen"].widthF() == pytest.approx(width * 2)
    # high contrast: pure white or black behind the panels
    assert window_colour().name() in ("#ffffff", "#000000")
    # what a scene does while presenting (hide and show docks) is undone on leaving
    window.docks["tokens"].setVisible(False)
    window.docks["generation"].setVisible(True)
    qtbot.keyClick(window.docks["attention"].panel, Qt.Key.Key_Escape)
    assert not window.presenter.presenting and not window.isFullScreen()
    assert window.size() == size
    # the position may move by a frame's width (the offscreen platform's frame margins)
    assert (window.geometry().topLeft() - geometry.topLeft()).manhattanLength() <= 4
    assert bytes(window.saveState(window.STATE_VERSION).data()) == bytes(state.data())
    assert window.docks["tokens"].isVisible() and not window.docks["generation"].isVisible()
    assert font_size() == pytest.approx(font)
    assert curve.opts["pen"].widthF() == pytest.approx(width)


def test_closing_while_presenting_saves_the_normal_layout(qtbot, gpt2):
    from explorer.app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.resize(1100, 700)
    w.restoreGeometry(w.saveGeometry())  # as Qt restores it on this (small) screen
    size = w.size()
    w.presenter.set_presentation(True)
    assert w.isFullScreen()
    w.close()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.show()
    assert not w2.isFullScreen() and w2.size() == size
    w2.close()


def test_themes_reach_the_plots(qtbot, window):
    heatmap = window.docks["attention"].heatmap
    window.presenter.set_theme("dark")
    assert window_colour().lightnessF() < 0.3
    assert heatmap.backgroundBrush().color().lightnessF() < 0.3
    axis = heatmap.getPlotItem().getAxis("left")
    assert axis.textPen().color().lightnessF() > 0.6
    window.presenter.set_theme("light")
    assert window_colour().lightnessF() > 0.7
    assert heatmap.backgroundBrush().color().lightnessF() > 0.7
    assert axis.textPen().color().lightnessF() < 0.4
    assert window.presenter.theme_actions["light"].isChecked()
    from explorer.app.main_window import settings

    assert settings().value("view/theme") == "light"


def test_text_size_steps_and_is_remembered(qtbot, window):
    base = font_size()
    window.presenter.step_zoom(1)
    assert font_size() == pytest.approx(base * 1.1)
    window.presenter.step_zoom(1)
    assert font_size() == pytest.approx(base * 1.25)
    window.presenter.step_zoom(-1)
    assert font_size() == pytest.approx(base * 1.1)
    window.presenter.step_zoom(0)
    assert font_size() == pytest.approx(base)
    window.presenter.set_zoom(1.5)
    from explorer.app.main_window import MainWindow

    w2 = MainWindow()
    qtbot.addWidget(w2)
    assert w2.presenter.zoom == 1.5 and font_size() == pytest.approx(base * 1.5)
    w2.presenter.set_zoom(1.0)


def test_colour_maps_from_the_view_menu(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    maps = next(a.menu() for a in view.actions() if a.text() == "&Colour map")
    diverging = next(a.menu() for a in view.actions() if a.text() == "&Diverging colour map")
    next(a for a in maps.actions() if a.text() == "CET-CBL1").trigger()
    assert window.state.colormap == "CET-CBL1"
    assert window.docks["attention"].cmap.currentText() == "CET-CBL1"
    window.docks["attention"].cmap.setCurrentText("cividis")
    assert next(a for a in maps.actions() if a.text() == "cividis").isChecked()
    next(a for a in diverging.actions() if a.text() == "CET-CBD1").trigger()
    tokens = window.docks["tokens"]
    tokens.mode.setCurrentIndex(2)
    assert tokens.diverging.isVisibleTo(window) and tokens.diverging.currentText() == "CET-CBD1"


def test_a_toggles_the_selected_heads_ablation_but_not_while_typing(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    panel = window.docks["attention"].panel
    window.state.select(layer=1, head=2)
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_A)
    assert window.state.ablation == Ablation.of([(1, 2)])
    assert window.docks["ablation"].heads[(1, 2)].isChecked()
    qtbot.keyClick(panel, Qt.Key.Key_A)
    assert window.state.ablation == Ablation()
    window.state.set_mode("mean")
    qtbot.keyClick(panel, Qt.Key.Key_A)
    assert window.state.ablation == Ablation.of([(1, 2)], "mean")
    editor = window.prompt.editor
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_A)
    assert window.state.ablation == Ablation.of([(1, 2)], "mean")  # typed, not toggled
    assert window.prompt.text() == "a" + PROMPT
    window.state.select(head=-1)  # the layer average is not one head
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_A)
    assert "Select one head" in window.statusBar().currentMessage()


def test_shift_arrows_step_the_position(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    panel = window.docks["attention"].panel
    panel.setFocus()
    last = window.state.n_tokens - 1
    qtbot.keyClick(panel, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert window.state.selected_position == last - 1
    qtbot.keyClick(panel, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(panel, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert window.state.selected_position == last
    assert (window.state.layer, window.state.head) == (0, 0)


def test_shortcuts_are_listed(qtbot, window):
    html = window.shortcuts_html()
    for keys in ("F11", "Space", "Backspace", "PgDn", "Ctrl+S", "Ctrl+Shift+O", "Esc", "A"):
        assert f"<b>{keys}" in html or keys in html, keys
    shortcuts = {
        a.shortcut().toString()
        for a in window.findChildren(type(window.presenter.presentation_action))
    }
    for keys in ("F11", "A", "Ctrl+S", "Ctrl+Shift+S", "Ctrl+Shift+O", "Ctrl+Shift+N", "Ctrl+E"):
        assert keys in shortcuts, keys
