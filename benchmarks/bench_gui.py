"""GUI responsiveness on a random-weight GPT-2-small-shape model (12 x 12, d=768), offscreen.

- GUI thread stall: the longest gap between event-loop ticks while the worker runs a T=1024
  forward (target <= 50 ms).
- Ablation click -> updated predictions at T=128, median.
- Selecting another head -> repainted heatmap at T=512, median (target <= 16 ms).

Writes benchmarks/results/gui.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(folder: Path) -> Path:
    import torch
    import transformers as T

    from tests.tiny_models import write_tokenizer

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    cfg = T.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024)
    T.GPT2LMHeadModel(cfg).save_pretrained(folder)
    write_tokenizer(folder, cfg.vocab_size)
    return folder


def prompt_of(lm, n: int) -> str:
    """A prompt of exactly n tokens (the tiny tokenizer splits words predictably)."""
    words = "the store John gave a drink to Mary when they went home".split()
    count = lambda t: len(lm.tokenizer.encode(t).ids)  # noqa: E731
    text, i = "", 0
    while count(text) < n:
        text += (" " if text else "") + words[i % len(words)]
        i += 1
    while count(text) > n:
        text = text[:-1]
    return text


def pump_until(app, cond, timeout=120.0):
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.0005)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the window did not show results in time")


def main():
    import torch
    from PySide6.QtCore import QSettings, QTimer

    from explorer.app.main import make_app
    from explorer.app.main_window import MainWindow
    from explorer.checkpoints import load

    torch.set_num_threads(2)
    cache = Path(tempfile.gettempdir()) / "attention-explorer-bench-gpt2-small"
    folder = build_model(cache)
    lm = load(folder)
    app = make_app()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    w = MainWindow(restore=False)
    w.show()
    w.docks["generation"].n.setValue(4)
    p128, p512, p1024 = (prompt_of(lm, n) for n in (128, 512, 1024))
    w.load_model(str(folder), p128)
    pump_until(app, lambda: w.state.model is not None and w.all_ready())

    # 1. the longest event-loop gap while a T=1024 forward runs in the worker
    ticks = []
    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    w.prompt.editor.setPlainText(p1024)
    w.submit_run()
    pump_until(app, lambda: w.state.run and len(w.state.run.ids) == 1024 and w.all_ready())
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    stall_ms = max(gaps) * 1000
    forward_s = w.state.run.seconds

    # 2. ablation click -> updated predictions, T=128
    w.prompt.editor.setPlainText(p128)
    w.submit_run()
    pump_until(app, lambda: len(w.state.run.ids) == 128 and w.all_ready())
    button = w.docks["ablation"].heads[(6, 3)]
    preds = w.docks["predictions"]
    click, click_all = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        button.click()
        want = w.state.ablation
        pump_until(app, lambda want=want: w.state.run.ablation == want and preds.is_ready())
        click.append(time.perf_counter() - t0)
        pump_until(app, w.all_ready)
        click_all.append(time.perf_counter() - t0)

    # 3. select another head -> repainted heatmap, T=512
    w.prompt.editor.setPlainText(p512)
    w.submit_run()
    pump_until(app, lambda: len(w.state.run.ids) == 512 and w.all_ready())
    att = w.docks["attention"]
    select = []
    for i in range(12):
        layer, head = (i * 5) % 12, (i * 7) % 12
        if (layer, head) == (w.state.layer, w.state.head):
            continue
        t0 = time.perf_counter()
        w.state.select(layer=layer, head=head)
        pump_until(app, lambda lh=(layer, head): att.shown and att.shown[1:3] == lh)
        att.heatmap.viewport().repaint()
        select.append(time.perf_counter() - t0)
    w.close()

    result = {
        "model": "GPT-2-small shape, random weights, float32, cpu",
        "threads": torch.get_num_threads(),
        "gui_stall_ms_during_T1024_forward": round(stall_ms, 1),
        "T1024_run_seconds": round(forward_s, 3),
        "ablation_click_to_predictions_ms_T128_median": round(statistics.median(click) * 1000, 1),
        "ablation_click_to_all_panels_ms_T128_median": round(
            statistics.median(click_all) * 1000, 1
        ),
        "select_head_to_repaint_ms_T512_median": round(statistics.median(select) * 1000, 1),
        "targets": {"gui_stall_ms": 50, "select_head_ms": 16},
    }
    print("\nGUI benchmark")
    for k, v in result.items():
        if k != "targets":
            print(f"  {k:45s} {v}")
    out = ROOT / "benchmarks" / "results" / "gui.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
