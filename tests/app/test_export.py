"""Export: plots as PNG (1x/2x/3x) and SVG, the window, the clipboard, data files, the CLI."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QFileDialog

from explorer.engine import Ablation
from explorer.export_data import read_matrix_csv

from .conftest import open_model, wait_ready

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture
def gpt2(tiny):
    return tiny("gpt2")


@pytest.fixture
def ready(qtbot, window, gpt2):
    open_model(qtbot, window, gpt2.folder, PROMPT)
    window.state.select(layer=1, head=2)
    att = window.docks["attention"]
    qtbot.waitUntil(lambda: att.shown and att.shown[1:3] == (1, 2), timeout=10000)
    wait_ready(qtbot, window)
    return window


def check_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert root.findall(".//{http://www.w3.org/2000/svg}image")  # the heatmap's pixels
    return root


def test_plots_as_png_at_1x_2x_3x_and_svg(ready, tmp_path):
    from explorer.app.export import plot_size, save_plot

    w = ready
    for name, view in w.exporter.plots().items():
        w1, h1 = plot_size(view)
        assert w1 > 50 and h1 > 50, name
        sizes = []
        for scale in (1, 2, 3):
            p = save_plot(view, tmp_path / f"{scale}.png", scale)
            img = QImage(str(p))
            assert not img.isNull(), name
            sizes.append((img.width(), img.height()))
        assert sizes == [(w1 * s, h1 * s) for s in (1, 2, 3)], name
        svg = save_plot(view, tmp_path / "plot.svg")
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg"), name
    check_svg(save_plot(w.docks["attention"].heatmap, tmp_path / "heatmap.svg"))
    # the PNG shows the pattern: many colours, not a blank image
    img = QImage(str(save_plot(w.docks["attention"].heatmap, tmp_path / "h.png", 1)))
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 20


def test_save_dialog_picks_scale_and_format(ready, tmp_path, monkeypatch, qtbot):
    w = ready
    heatmap = w.docks["attention"].heatmap
    from explorer.app.export import plot_size

    answers = iter([(str(tmp_path / "fig"), "PNG image, 3x (*.png)"),
                    (str(tmp_path / "fig2"), "SVG vector image (*.svg)")])  # fmt: skip
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    with qtbot.waitSignal(w.exporter.exported) as sig:
        w.exporter.save_plot_dialog(heatmap, "Attention heatmap")
    assert sig.args == [str(tmp_path / "fig.png")]
    w1, h1 = plot_size(heatmap)
    img = QImage(str(tmp_path / "fig.png"))
    assert (img.width(), img.height()) == (3 * w1, 3 * h1)
    w.exporter.save_plot_dialog(heatmap, "Attention heatmap")
    check_svg(tmp_path / "fig2.svg")


def test_window_png_and_clipboard(ready, tmp_path):
    from explorer.app.export import plot_size, save_window

    w = ready
    p = save_window(w, tmp_path / "window")
    img = QImage(str(p))
    assert p.suffix == ".png" and (img.width(), img.height()) == (w.width(), w.height())
    heatmap = w.docks["attention"].heatmap
    w.exporter.copy(heatmap)
    clip = QApplication.clipboard().image()
    w1, h1 = plot_size(heatmap)
    assert (clip.width(), clip.height()) == (2 * w1, 2 * h1)
    w.exporter.copy_window()
    assert QApplication.clipboard().image().width() == w.width()


def test_pattern_csv_and_npz_equal_the_engine(ready, tmp_path, gpt2):
    w = ready
    lm = gpt2.lm
    ids = lm.encode(PROMPT)
    want = lm.run(ids).pattern(1, 2).numpy()
    p = w.exporter.save_pattern(tmp_path / "head.csv")
    rows, cols, values = read_matrix_csv(p)
    assert rows == cols == lm.tokenizer.displays(ids)
    np.testing.assert_allclose(values, want, atol=1e-7)
    z = np.load(w.exporter.save_pattern(tmp_path / "head.npz"))
    np.testing.assert_allclose(z["attention"], want, atol=1e-7)
    assert list(z["tokens"]) == lm.tokenizer.displays(ids) and list(z["token_ids"]) == ids
    assert (int(z["layer"]), int(z["head"]), str(z["prompt"])) == (1, 2, PROMPT)
    np.testing.assert_allclose(np.load(w.exporter.save_pattern(tmp_path / "h.npy")), want)


def test_layer_export_goes_through_the_worker(ready, tmp_path, gpt2, qtbot):
    w = ready
    w.state.set_ablation(Ablation.of([(0, 1)]))
    qtbot.waitUntil(lambda: w.state.run.ablation == Ablation.of([(0, 1)]), timeout=10000)
    wait_ready(qtbot, w)
    lm = gpt2.lm
    ids = lm.encode(PROMPT)
    want = lm.run(ids, Ablation.of([(0, 1)])).layer_patterns(1).numpy()
    for name in ("layer.csv", "layer.npz"):
        with qtbot.waitSignal(w.exporter.exported, timeout=10000):
            w.exporter.save_layer(tmp_path / name)
    z = np.load(tmp_path / "layer.npz")
    np.testing.assert_allclose(z["attention"], want, atol=1e-7)
    assert str(z["ablation"]) == "0.1"
    with open(tmp_path / "layer.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    T = len(ids)
    assert rows[0][:2] == ["head", "query\\key"] and len(rows) == 1 + want.shape[0] * T
    got = np.array([[float(x) for x in r[2:]] for r in rows[1:]]).reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=1e-7)


def test_predictions_and_loss_tables(ready, tmp_path):
    w = ready
    preds = w.docks["predictions"]
    tables = w.exporter.tables()
    assert ("predictions", "Predictions") in tables
    p = w.exporter.save_table("predictions", "Predictions", tmp_path / "p.csv")
    with open(p, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["clean_token"] for r in rows] == [t for _, t, _ in preds.last.clean]
    np.testing.assert_allclose([float(r["clean_p"]) for r in rows],
                               [q for _, _, q in preds.last.clean], rtol=1e-7)  # fmt: skip
    p = w.exporter.save_table("predictions", "Loss per position", tmp_path / "l.csv")
    with open(p, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    run = w.state.run
    assert [r["token"] for r in rows] == run.texts
    np.testing.assert_allclose([float(r["loss_clean"]) for r in rows[:-1]], run.loss_clean[:-1])


def test_menus_offer_every_plot_and_table(ready):
    w = ready
    w.exporter.fill_menu(w.export_menu)
    texts = [a.text() for a in w.export_menu.actions()]
    assert "Attention — Attention heatmap image…" in texts
    assert "Attention — Head grid image…" in texts
    assert "Predictions — Loss per position image…" in texts
    assert "Window as PNG…" in texts
    assert "Predictions (CSV)…" in texts and "Predictions: Loss per position (CSV)…" in texts
    heatmap = w.docks["attention"].heatmap
    menu = w.exporter.plot_menu(heatmap, "Attention heatmap")
    labels = [a.text() for a in menu.actions()]
    assert "Copy image" in labels and any("PNG 1x/2x/3x, SVG" in t for t in labels)
    assert any("whole layer" in t for t in labels)
    from PySide6.QtCore import Qt

    for view in w.exporter.plots().values():
        assert view.contextMenuPolicy() == Qt.ContextMenuPolicy.CustomContextMenu


def test_export_failures_are_reported(ready, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    w = ready
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "no" / "x.csv"), "")
    )
    w.exporter.pattern_dialog()
    assert shown and "cannot write" in shown[0]


def run_cli(*argv):
    from explorer.cli import main

    return main(["export", *map(str, argv)])


def test_cli_export_renders_the_same_figure_and_data(gpt2, tmp_path, capsys):
    lm = gpt2.lm
    want = lm.run(lm.encode(PROMPT)).pattern(2, 1).numpy()
    base = (gpt2.folder, "--prompt", PROMPT, "--layer", 2, "--head", 1)
    assert run_cli(*base, "--out", tmp_path / "p.csv") == 0
    _, _, values = read_matrix_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(values, want, atol=1e-7)
    assert run_cli(*base, "--out", tmp_path / "p.png", "--size", "500x400") == 0
    assert run_cli(*base, "--out", tmp_path / "p2.png", "--size", "500x400", "--scale", "2") == 0
    one, two = QImage(str(tmp_path / "p.png")), QImage(str(tmp_path / "p2.png"))
    assert (one.width(), one.height()) == (500, 400)
    assert (two.width(), two.height()) == (1000, 800)
    assert run_cli(*base, "--out", tmp_path / "p.svg", "--theme", "dark") == 0
    check_svg(tmp_path / "p.svg")
    assert run_cli(*base[:-2], "--head", -1, "--all-heads", "--out", tmp_path / "l.npz") == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "l.npz")["attention"], lm.run(lm.encode(PROMPT)).layer_patterns(2)
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--layer", 9, "--head", 0, "--out", "x.csv"), "--layer 9 is out of range"),
        (("--layer", 0, "--head", 4, "--out", "x.csv"), "--head 4 is out of range"),
        (("--layer", 0, "--head", 0, "--out", "x.xlsx"), "--out must end in one of"),
        (("--layer", 0, "--head", 0, "--out", "x.png", "--colormap", "jet"), "unknown colour map"),
        (("--layer", 0, "--head", 0, "--out", "x.png", "--all-heads"), "--all-heads writes data"),
        (("--layer", 0, "--head", 0, "--out", "x.png", "--size", "big"), "--size should be"),
        (("--layer", 0, "--head", 0, "--out", "x.csv", "--ablate", "7.7"), "no such head"),
        (("--layer", 0, "--head", 0, "--out", "nowhere/x.csv"), "no such folder"),
    ],
)
def test_cli_export_bad_input(gpt2, tmp_path, capsys, monkeypatch, extra, words):
    monkeypatch.chdir(tmp_path)
    assert run_cli(gpt2.folder, "--prompt", PROMPT, *extra) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
