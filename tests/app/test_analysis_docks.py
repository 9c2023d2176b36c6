"""The analysis docks over tiny models (and one look at the demo model): each shows what
explorer.analysis computes on the same run, long jobs fill in live and can be replaced, and
clicks select or ablate what they point at."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from explorer.analysis import (
    Metric,
    activation_patching,
    attention_rollout,
    direct_logit_attribution,
    head_roles,
    importance_sweep,
    logit_lens,
)
from explorer.app import analysis_worker, compute
from explorer.app.analysis_worker import JobUpdate
from explorer.app.docks.roles import badge_roles
from explorer.engine import Ablation

from .conftest import open_model, wait_ready

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture
def gpt2(tiny):
    return tiny("gpt2")


def engine_run(model, text, ablation=None):
    lm = model.lm
    return lm, lm.run(lm.encode(text), ablation)


def show_dock(qtbot, window, name):
    """Raise a (tabbed) dock and wait until it shows results for the current run."""
    dock = window.docks[name]
    dock.raise_()
    qtbot.waitUntil(lambda: dock.on_screen, timeout=5000)
    wait_ready(qtbot, window)
    return dock


def click_view(qtbot, plot_widget, x, y):
    vb = plot_widget.getPlotItem().getViewBox()
    pos = plot_widget.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    qtbot.mouseClick(plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def record_updates(window, kind):
    seen: list[JobUpdate] = []
    window.controller.result.connect(
        lambda r: seen.append(r) if isinstance(r, JobUpdate) and r.kind == kind else None
    )
    return seen


@pytest.fixture
def slow_steps(monkeypatch):
    """Every update carries one step, and each sweep/patching step takes a while."""
    monkeypatch.setattr(compute, "JOB_SLICE", 0.0)

    def slowed(fn, delay=0.015):
        def wrapper(*a, **kw):
            for step in fn(*a, **kw):
                time.sleep(delay)
                yield step

        return wrapper

    monkeypatch.setattr(analysis_worker, "iter_sweep", slowed(analysis_worker.iter_sweep))
    monkeypatch.setattr(analysis_worker, "iter_patching", slowed(analysis_worker.iter_patching))


def test_quick_docks_show_what_the_analyses_compute(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    # hidden behind other tabs, the analysis docks wait; the window is still ready
    assert window.controller.computed.count("lens") == 0
    window.state.set_targets(" Mary", " John")
    window.state.select(position=8)
    wait_ready(qtbot, window)
    lm, run = engine_run(gpt2, PROMPT)
    target, foil = lm.tokenizer.token_id(" Mary"), lm.tokenizer.token_id(" John")

    roles = show_dock(qtbot, window, "roles")
    want = head_roles(lm, run)
    for name in ("previous_token", "induction", "duplicate_token", "sink"):
        np.testing.assert_allclose(roles.value.scores(name), want.scores(name), atol=1e-6)
    assert roles.table.rowCount() == 3 * 4
    assert window.docks["attention"].grid.badge_texts().keys() == badge_roles(want).keys()

    lens = show_dock(qtbot, window, "lens")
    want = logit_lens(lm, run, target)
    np.testing.assert_allclose(lens.value.top_probs, want.top_probs, atol=1e-6)
    np.testing.assert_allclose(lens.heatmap.data, want.target_probs, atol=1e-6)
    assert lens.value.top_texts == want.top_texts
    lens.color_by.setCurrentIndex(1)  # the top token's probability
    np.testing.assert_allclose(lens.heatmap.data, want.top_probs, atol=1e-6)

    dla = show_dock(qtbot, window, "dla")
    want = direct_logit_attribution(lm, run, target, foil, 8)
    np.testing.assert_allclose(dla.value.heads, want.heads, atol=1e-5)
    np.testing.assert_allclose(dla.value.mlp, want.mlp, atol=1e-5)
    np.testing.assert_allclose(dla.heatmap.data[:, :4], want.heads, atol=1e-5)
    assert "scale frozen" in dla.frozen.text() and f"{want.norm_scale:.4g}" in dla.frozen.text()
    assert "✓" in dla.sum_check.text()
    assert abs(dla.value.total - dla.value.logit) < 1e-3

    rollout = show_dock(qtbot, window, "rollout")
    want = attention_rollout(lm, run, 8)
    np.testing.assert_allclose(rollout.value.layers, want.layers, atol=1e-6)
    np.testing.assert_allclose(rollout.tokens.values, want.scores, atol=1e-6)
    assert rollout.tokens.selected == 8

    # a new selection recomputes the visible one; the tables can be exported
    window.state.select(position=5)
    wait_ready(qtbot, window)
    np.testing.assert_allclose(
        rollout.value.layers, attention_rollout(lm, run, 5).layers, atol=1e-6
    )
    tables = window.exporter.tables()
    for key in ("roles", "lens", "dla", "rollout"):
        assert any(k[0] == key and t.rows for k, t in tables.items()), key


def test_sweep_fills_in_live_and_matches_the_analysis(qtbot, window, gpt2, slow_steps):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.state.set_targets(" Mary", " John")
    sweep = show_dock(qtbot, window, "sweep")
    seen = record_updates(window, "sweep")
    filled = []
    window.controller.result.connect(
        lambda r: (
            filled.append(int(np.isfinite(sweep.matrix()).sum()))
            if isinstance(r, JobUpdate)
            else None
        )
    )
    sweep.start()
    assert not window.all_ready()  # a running sweep keeps the window busy
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].final, timeout=20000)
    assert len(seen) > 3 and not any(u.final for u in seen[:-1])
    assert [u.done for u in seen] == sorted(u.done for u in seen)
    assert filled == sorted(filled) and len(set(filled)) > 3  # cells fill in, one by one
    assert filled[-1] == 3 * 4 + 2 * 3  # heads, whole attention, MLP
    wait_ready(qtbot, window)

    lm, run = engine_run(gpt2, PROMPT)
    metric = Metric.logit_diff(
        run.n_tokens - 1, lm.tokenizer.token_id(" Mary"), lm.tokenizer.token_id(" John")
    )
    want = importance_sweep(lm, run, metric)
    np.testing.assert_allclose(sweep.result.heads, want.heads, atol=1e-4)
    np.testing.assert_allclose(sweep.matrix()[:, 5], want.attn, atol=1e-4)
    np.testing.assert_allclose(sweep.matrix()[:, 6], want.mlp, atol=1e-4)
    lim = max(np.abs(want.heads).max(), np.abs(want.attn).max(), np.abs(want.mlp).max())
    assert sweep.heatmap.colorbar.levels() == pytest.approx((-lim, lim), rel=0.05)
    assert "Done" in sweep.status.text()


def test_a_new_sweep_cancels_the_running_one(qtbot, window, gpt2, slow_steps):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    sweep = show_dock(qtbot, window, "sweep")
    seen = record_updates(window, "sweep")
    window.controller.computed.clear()
    sweep.start()
    first = sweep.job_id
    qtbot.waitUntil(lambda: any(u.id == first for u in seen), timeout=10000)
    sweep.mode.setCurrentText("mean")
    sweep.start()  # the latest wins
    second = sweep.job_id
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].final, timeout=20000)
    wait_ready(qtbot, window)
    assert seen[-1].id == second and sweep.info["mode"] == "mean"
    assert not any(u.final for u in seen if u.id == first)
    assert max(u.done for u in seen if u.id == first) < seen[-1].total
    assert window.controller.computed.count("sweep") == 1


def test_stop_and_a_new_run_during_a_sweep(qtbot, window, gpt2, slow_steps):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    sweep = show_dock(qtbot, window, "sweep")
    seen = record_updates(window, "sweep")
    sweep.start()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=10000)
    sweep.stop()
    assert "Stopped after" in sweep.status.text()
    wait_ready(qtbot, window)
    assert not seen[-1].final and window.controller.is_idle()
    # a new run (here: an ablation) is served between the steps and does not stop the
    # sweep, which is then stale: it was computed on top of the old ablation
    runs_while_sweeping = []
    window.run_shown.connect(lambda r: runs_while_sweeping.append(sweep.running))
    sweep.start()
    job = sweep.job_id
    qtbot.waitUntil(lambda: any(u.id == job for u in seen), timeout=10000)
    window.state.set_ablation(Ablation.of([(0, 1)]))
    qtbot.waitUntil(lambda: not sweep.running, timeout=20000)
    assert runs_while_sweeping == [True]
    assert seen[-1].final and seen[-1].id == job
    wait_ready(qtbot, window)
    assert sweep.stale and "Stale" in sweep.status.text()


def test_clicking_a_sweep_cell_toggles_the_ablation(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    sweep = show_dock(qtbot, window, "sweep")
    sweep.on_top.setChecked(False)
    sweep.start()
    qtbot.waitUntil(lambda: not sweep.running, timeout=20000)
    click_view(qtbot, sweep.heatmap, 2.5, 1.5)  # layer 1, head 2
    assert window.state.ablation == Ablation.of([(1, 2)])
    click_view(qtbot, sweep.heatmap, 5.5, 2.5)  # layer 2's whole attention
    assert window.state.ablation.attn_layers == {2}
    assert len(sweep.marks) == 2
    click_view(qtbot, sweep.heatmap, 2.5, 1.5)
    assert window.state.ablation == Ablation.of([], attn_layers=[2])
    wait_ready(qtbot, window)
    assert not sweep.stale  # swept on the clean run: the ablation does not change it


def test_clicking_a_roles_row_selects_the_head(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    roles = show_dock(qtbot, window, "roles")
    table = roles.table
    table.sortItems(3, Qt.SortOrder.DescendingOrder)  # by induction score: rows move
    row = next(i for i in range(table.rowCount()) if table.item(i, 0).text() == "2.1")
    rect = table.visualItemRect(table.item(row, 2))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert (window.state.layer, window.state.head) == (2, 1)
    window.state.select(layer=1, head=3)  # and the table follows the selection
    assert table.item(table.currentRow(), 0).text() == "1.3"


def test_lens_column_click_selects_the_position(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    lens = show_dock(qtbot, window, "lens")
    click_view(qtbot, lens.heatmap, 4.5, 1.5)
    assert window.state.selected_position == 4
    assert lens.column.rect().x() == 4
    wait_ready(qtbot, window)
    assert window.docks["predictions"].last.position == 4


def test_patching_refuses_unequal_lengths_and_matches_the_analysis(qtbot, window, gpt2, slow_steps):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.state.set_targets(" Mary", " John")
    patch = show_dock(qtbot, window, "patching")
    lm, run = engine_run(gpt2, PROMPT)
    short = "When Mary went to the store, John gave a drink to"
    n_short = len(lm.encode(short))
    patch.editor.setPlainText(short)
    qtbot.waitUntil(lambda: patch.corrupted_tokens is not None, timeout=5000)
    assert f"{run.n_tokens} tokens" in patch.count.text() and str(n_short) in patch.count.text()
    latest = window.controller.latest.get("patch")
    patch.start()
    assert window.controller.latest.get("patch") == latest  # nothing was asked
    assert "same number of tokens" in patch.status.text()
    assert str(n_short) in patch.status.text() and str(run.n_tokens) in patch.status.text()

    corrupted = "When John and Mary went to the store, Mary gave a drink to"
    assert len(lm.encode(corrupted)) == run.n_tokens
    patch.editor.setPlainText(corrupted)
    qtbot.waitUntil(lambda: patch.corrupted_tokens is not None, timeout=5000)
    assert "✓" in patch.count.text()
    seen = record_updates(window, "patch")
    patch.start()
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].final, timeout=30000)
    assert len(seen) > 3
    wait_ready(qtbot, window)
    bad = lm.run(lm.encode(corrupted))
    metric = Metric.logit_diff(
        run.n_tokens - 1, lm.tokenizer.token_id(" Mary"), lm.tokenizer.token_id(" John")
    )
    want = activation_patching(lm, run, bad, metric)
    np.testing.assert_allclose(patch.heads.data, 100 * want.restored_heads, atol=1e-2)
    np.testing.assert_allclose(patch.resid.data, 100 * want.restored_resid, atol=1e-2)
    assert patch.settings() == {"corrupted": corrupted}


def test_settings_round_trip_and_bad_values(qtbot, window):
    d = window.docks
    d["sweep"].apply_settings({"metric": "kl", "mode": "mean", "on_top": False})
    assert d["sweep"].settings() == {"metric": "kl", "mode": "mean", "on_top": False}
    with pytest.raises(ValueError):
        d["sweep"].check_settings({"metric": "accuracy"})
    d["lens"].apply_settings({"color_by": "top"})
    assert d["lens"].settings() == {"color_by": "top"}
    d["rollout"].apply_settings({"add_residual": False})
    assert d["rollout"].settings() == {"add_residual": False}
    d["roles"].apply_settings({"badges": False, "threshold": 0.6})
    assert d["roles"].settings() == {"badges": False, "threshold": 0.6}
    names = [a.text() for a in window.menuBar().actions()[1].menu().actions()]
    for title in ("Head roles", "Importance sweep", "Logit lens", "Activation patching"):
        assert title in names


def test_attribution_explains_why_it_cannot_on_bert(qtbot, window, tiny):
    bert = tiny("bert-mlm")
    open_model(qtbot, window, bert.folder, "the cat sat on the mat")
    dla = show_dock(qtbot, window, "dla")
    assert "post-LN" in dla.message_label.text() and dla.value is None
    assert dla.heatmap.data.size == 0


def test_demo_model_induction_heads_get_badges(qtbot, window):
    from explorer.checkpoints.demo import demo_available, demo_model_dir, example_prompts

    if not demo_available():
        pytest.skip("no demo model")
    item = next(p for p in example_prompts() if p["name"].startswith("Induction: a longer"))
    open_model(qtbot, window, demo_model_dir(), item["text"])
    from explorer.checkpoints import load

    lm = load(demo_model_dir())
    run = lm.run(lm.encode(item["text"]))
    roles = head_roles(lm, run)
    badges = window.docks["attention"].grid.badge_texts()
    assert badges == {k: {"induction": "ind", "previous_token": "prev",
                          "duplicate_token": "dup", "sink": "sink"}[r]
                      for k, r in badge_roles(roles).items()}  # fmt: skip
    (l, h, score), *_ = roles.top("induction", 1)
    assert score > 0.5 and badges[(l, h)] == "ind"
    window.state.set_targets(item["target"], "")
    dla = show_dock(qtbot, window, "dla")
    assert abs(dla.value.total - dla.value.logit) < 1e-3
