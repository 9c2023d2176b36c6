"""The main window over a tiny model: what the panels show equals what the engine computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from explorer.app.compute import RunRequest
from explorer.engine import Ablation

from .conftest import open_model, wait_ready

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture
def gpt2(tiny):
    return tiny("gpt2")


def engine_run(tiny_model, text, ablation=None):
    lm = tiny_model.lm
    return lm, lm.run(lm.encode(text), ablation)


def click_view(qtbot, plot_widget, x, y):
    """Click a pyqtgraph PlotWidget at view coordinates (x, y)."""
    vb = plot_widget.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QPointF(x, y))
    pos = plot_widget.mapFromScene(scene)
    qtbot.mouseClick(plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_tokens_and_pattern_match_the_engine(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    lm, run = engine_run(gpt2, PROMPT)
    ids = lm.encode(PROMPT)
    tokens = window.docks["tokens"]
    assert tokens.view.texts == lm.tokenizer.displays(ids)
    assert window.state.run.ids == ids
    att = window.docks["attention"]
    assert att.shown[1:3] == (0, 0)
    np.testing.assert_allclose(att.heatmap.data, run.pattern(0, 0).numpy(), atol=1e-6)
    assert np.allclose(att.heatmap.data.sum(1), 1, atol=1e-5)
    # the per-token loss shown equals the engine's
    np.testing.assert_allclose(window.state.run.loss_clean[:-1], run.loss()[:-1].numpy(), atol=1e-5)


def test_clicking_a_thumbnail_shows_that_head(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    _, run = engine_run(gpt2, PROMPT)
    att = window.docks["attention"]
    grid = att.grid
    layer, head = 2, 3
    click_view(qtbot, grid, head * grid.cell + grid.t / 2, layer * grid.cell + grid.t / 2)
    assert (window.state.layer, window.state.head) == (layer, head)
    qtbot.waitUntil(lambda: att.shown and att.shown[1:3] == (layer, head), timeout=10000)
    np.testing.assert_allclose(att.heatmap.data, run.pattern(layer, head).numpy(), atol=1e-6)
    assert att.title_label.text().startswith("Layer 2, head 3")


def test_arrow_keys_step_heads_and_layers(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    panel = window.docks["attention"].panel
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_Right)
    assert (window.state.layer, window.state.head) == (0, 1)
    qtbot.keyClick(panel, Qt.Key.Key_Down)
    assert (window.state.layer, window.state.head) == (1, 1)
    qtbot.keyClick(panel, Qt.Key.Key_PageUp)
    qtbot.keyClick(panel, Qt.Key.Key_Left)
    assert (window.state.layer, window.state.head) == (0, 0)


def test_clicking_a_token_selects_the_position_everywhere(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    view = window.docks["tokens"].view
    rect = view.chip_rect(3)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.state.selected_position == 3
    preds = window.docks["predictions"]
    qtbot.waitUntil(lambda: preds.last is not None and preds.last.position == 3, timeout=10000)
    _, run = engine_run(gpt2, PROMPT)
    top = run.top_k(3, 10)
    assert [i for i, _, _ in preds.last.clean] == top.ids
    np.testing.assert_allclose([p for _, _, p in preds.last.clean], top.probs, atol=1e-6)


def test_ablation_click_updates_predictions_and_recomputes_only_later_layers(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    abl = window.docks["ablation"]
    qtbot.mouseClick(abl.heads[(1, 2)], Qt.MouseButton.LeftButton)
    assert window.state.ablation == Ablation.of([(1, 2)])
    qtbot.waitUntil(lambda: window.state.run.ablation == Ablation.of([(1, 2)]), timeout=10000)
    wait_ready(qtbot, window)
    r = window.state.run
    assert r.recomputed_from == 1  # layer 0 came from the cache
    lm, ablated = engine_run(gpt2, PROMPT, Ablation.of([(1, 2)]))
    pos = window.state.selected_position
    top = ablated.top_k(pos, 10)
    preds = window.docks["predictions"].last
    assert [i for i, _, _ in preds.ablated] == top.ids
    np.testing.assert_allclose([p for _, _, p in preds.ablated], top.probs, atol=1e-6)
    np.testing.assert_allclose(r.loss_ablated[:-1], ablated.loss()[:-1].numpy(), atol=1e-5)
    clean = lm.run(lm.encode(PROMPT))
    pc, pa = clean.probs(pos), ablated.probs(pos)
    kl = float(torch.sum(pc * (pc.log() - pa.log())))
    assert preds.kl == pytest.approx(kl, abs=1e-5)
    assert "1 head" in abl.count.text()
    # the generation dock shows the ablated continuation too
    gen = window.docks["generation"].last
    want = lm.generate(lm.encode(PROMPT), gen_len(window), Ablation.of([(1, 2)]))
    assert gen.ablated_ids == want
    # Reset clears it everywhere
    qtbot.mouseClick(abl.reset, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.state.run.ablation, timeout=10000)
    assert not any(b.isChecked() for b in abl.heads.values())


def gen_len(window):
    return window.docks["generation"].n.value()


def test_layer_average_and_clean_view(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    att = window.docks["attention"]
    att.average.setChecked(True)
    qtbot.waitUntil(lambda: att.shown and att.shown[2] == -1, timeout=10000)
    _, run = engine_run(gpt2, PROMPT)
    want = run.layer_patterns(0).mean(0).numpy()
    np.testing.assert_allclose(att.heatmap.data, want, atol=1e-6)


def test_logit_difference_of_two_tokens(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    lm, run = engine_run(gpt2, PROMPT)
    preds = window.docks["predictions"]
    preds.target.setText(" Mary")
    preds.foil.setText(" John")
    preds.target.editingFinished.emit()
    qtbot.waitUntil(lambda: preds.last and preds.last.diff_clean is not None, timeout=10000)
    t, f = lm.tokenizer.token_id(" Mary"), lm.tokenizer.token_id(" John")
    logits = run.logits([run.n_tokens - 1])[0]
    assert preds.last.diff_clean == pytest.approx(float(logits[t] - logits[f]), abs=1e-4)


def test_rapid_edits_run_few_computations_and_show_the_last(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.controller.computed.clear()
    editor = window.prompt.editor
    text = ""
    for i in range(100):
        text = f"{PROMPT} {i}"
        editor.setPlainText(text)
        qtbot.wait(1)
    wait_ready(qtbot, window)
    qtbot.waitUntil(lambda: window.state.run.ids == gpt2.lm.encode(text), timeout=10000)
    runs = window.controller.computed.count("run")
    assert runs <= 4, runs
    assert window.docks["tokens"].view.texts == gpt2.lm.tokenizer.displays(gpt2.lm.encode(text))


def test_worker_exception_is_shown_and_the_window_stays_usable(qtbot, window, gpt2, monkeypatch):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    from explorer.app import compute

    def boom(self, req):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(compute.Worker, "do_pattern", boom)
    window.state.select(layer=1, head=1)
    qtbot.waitUntil(
        lambda: "injected failure" in window.statusBar().currentMessage(), timeout=10000
    )
    monkeypatch.undo()
    window.state.select(layer=2, head=0)
    att = window.docks["attention"]
    qtbot.waitUntil(lambda: att.shown and att.shown[1:3] == (2, 0), timeout=10000)


def test_empty_prompt_gives_a_message_and_keeps_results(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    before = window.state.run
    window.prompt.editor.setPlainText("   ")
    qtbot.waitUntil(lambda: "empty" in window.prompt.notice.text(), timeout=10000)
    assert window.state.run is before  # previous results stay visible


def test_long_prompt_is_truncated_with_a_notice(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    n = gpt2.lm.spec.context_length
    window.prompt.editor.setPlainText("the store " * n)
    qtbot.waitUntil(lambda: "left out" in window.prompt.notice.text(), timeout=20000)
    assert len(window.state.run.ids) == n


def test_bad_model_folder_shows_message_and_keeps_the_model(
    qtbot, window, gpt2, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    open_model(qtbot, window, gpt2.folder, PROMPT)
    (tmp_path / "config.json").write_text('{"model_type": "mamba"}')
    window.load_model(str(tmp_path))
    qtbot.waitUntil(lambda: bool(shown), timeout=10000)
    assert "unsupported model_type" in shown[0]
    assert window.state.model.path == str(gpt2.folder)
    window.state.select(layer=1, head=2)
    att = window.docks["attention"]
    qtbot.waitUntil(lambda: att.shown and att.shown[1:3] == (1, 2), timeout=10000)


def test_window_state_round_trips_and_corrupt_state_falls_back(qtbot, gpt2):
    from PySide6.QtCore import QByteArray

    from explorer.app.main_window import MainWindow, settings

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.docks["generation"].setVisible(False)
    w.close()  # saves the layout
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.show()
    assert not w2.docks["generation"].isVisible()
    assert w2.docks["attention"].isVisible()
    w2.close()
    settings().setValue("window/state", QByteArray(b"\x00garbage\xff" * 10))
    w3 = MainWindow()
    qtbot.addWidget(w3)
    w3.show()
    assert all(d.isVisible() for d in w3.docks.values())
    w3.close()


def test_reset_layout_and_view_menu(qtbot, window):
    window.docks["tokens"].toggleViewAction().trigger()
    assert not window.docks["tokens"].isVisible()
    window.reset_layout()
    assert all(d.isVisible() for d in window.docks.values())


def test_stale_results_are_dropped(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    c = window.controller
    first = c.submit(RunRequest("first prompt", Ablation()))
    second = c.submit(RunRequest(PROMPT + " again", Ablation()))
    assert second > first
    qtbot.waitUntil(lambda: window.state.run.run_id == second, timeout=10000)
    assert window.state.run.ids == gpt2.lm.encode(PROMPT + " again")


def test_closing_during_a_computation_is_quick(qtbot, gpt2):
    import time

    from explorer.app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    open_model(qtbot, w, gpt2.folder, PROMPT)
    w.prompt.editor.setPlainText("the store " * 50)
    w.submit_run()
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 2.0
    assert not w.controller._thread.is_alive()


def test_cancelling_a_load_keeps_the_open_model(qtbot, window, gpt2, tiny, monkeypatch):
    import threading

    from explorer.app import compute

    open_model(qtbot, window, gpt2.folder, PROMPT)
    started, release = threading.Event(), threading.Event()
    real = compute.Worker.do_load

    def slow_load(self, req):
        started.set()
        release.wait(5)
        return real(self, req)

    monkeypatch.setattr(compute.Worker, "do_load", slow_load)
    window.load_model(str(tiny("llama").folder))
    assert started.wait(5)
    assert window.cancel_button.isVisibleTo(window)
    window.cancel_button.click()
    release.set()
    qtbot.waitUntil(window.controller.is_idle, timeout=10000)
    qtbot.wait(50)
    assert window.state.model.path == str(gpt2.folder)
    window.state.select(layer=1, head=1)
    att = window.docks["attention"]
    qtbot.waitUntil(lambda: att.shown and att.shown[1:3] == (1, 1), timeout=10000)


def test_models_on_this_computer_menu(qtbot, window, gpt2, tmp_path, monkeypatch):
    import shutil

    snap = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "r1"
    shutil.copytree(gpt2.folder, snap)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    window._fill_cache()
    actions = window.cache_menu.actions()
    assert len(actions) == 1 and actions[0].text().startswith("acme/tiny")
    actions[0].trigger()
    qtbot.waitUntil(
        lambda: window.state.model and window.state.model.path == str(snap), timeout=20000
    )
