"""`AttentionExplorer --self-test`: check an installed app (or a source checkout) headless.

It loads the built-in demo model and checks, against resources/selftest.json (tolerances, not
exact floats): a forward pass, an ablation and a greedy generation through the engine; then the
same through the real main window on Qt's offscreen platform (worker thread, docks), and renders
the attention dock to an image. It prints a short report and returns 0 only when all passed.

The expectations come from the engine itself; after retraining the demo model, write them anew:

    python -m explorer.app.selftest --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

SCHEMA = 1
EXPECT_FILE = "selftest.json"
PROMPT = "When Mary and John went to the store, John gave a drink to"
N_NEW = 20  # what the generation dock asks for by default
TOP_K = 5
TOL = {
    "prob": 2e-4,  # absolute, on probabilities
    "loss": 2e-3,  # absolute, on the mean loss in nats
    "pattern": 2e-4,  # absolute, on attention weights
    "margin": 1e-3,  # a greedy step whose top-2 logit gap is below this may flip
}


def expectations_path() -> Path:
    from ..checkpoints.demo import resources_dir

    return resources_dir() / EXPECT_FILE


def fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(folder).glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def process_age() -> float | None:
    """Seconds since this process started (Linux), bootloader and imports included."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start = int(stat[19]) / os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# --- the numbers -----------------------------------------------------------------------------


def _top(probs, k=TOP_K) -> list[list]:
    p, i = probs.topk(k)
    return [[int(a), round(float(b), 6)] for a, b in zip(i, p)]


def greedy_margins(lm, ids, new_ids, ablation) -> list[float]:
    """The top-1 minus top-2 logit gap at every greedy step (how safely a step is decided)."""
    run = lm.run(list(ids) + list(new_ids[:-1]), ablation)
    n = len(ids)
    logits = run.logits(list(range(n - 1, n - 1 + len(new_ids))))
    top2 = logits.topk(2, dim=-1).values
    return [round(float(a - b), 5) for a, b in top2]


def choose_ablation(lm, ids):
    """The single head whose zero ablation changes the last prediction most (by KL)."""
    import torch

    from ..engine import Ablation

    clean = lm.run(ids)
    pc = clean.probs(len(ids) - 1)
    best = None
    for l in range(lm.spec.n_layers):
        for h in range(lm.spec.n_heads):
            a = Ablation.of([(l, h)])
            pa = clean.rerun(a).probs(len(ids) - 1)
            kl = float(torch.sum(pc * (pc.clamp_min(1e-30).log() - pa.clamp_min(1e-30).log())))
            if best is None or kl > best[0]:
                best = (kl, l, h)
    return best[1], best[2]


def engine_numbers(lm, prompt: str, ablate: str, layer: int, head: int, n_new: int) -> dict:
    """Everything the self-test compares, computed by the engine alone."""
    from ..engine import Ablation

    ablation = Ablation.parse(ablate)
    ids = lm.encode(prompt)
    last = len(ids) - 1
    clean = lm.run(ids)
    ablated = clean.rerun(ablation)
    gen_clean = lm.generate(ids, n_new)
    gen_ablated = lm.generate(ids, n_new, ablation)
    loss = clean.loss()[:-1]
    return {
        "ids": list(ids),
        "loss_mean": round(float(loss.mean()), 6),
        "top_clean": _top(clean.probs(last)),
        "top_ablated": _top(ablated.probs(last)),
        "pattern": [[round(float(x), 6) for x in row] for row in ablated.pattern(layer, head)],
        "generation_clean": gen_clean,
        "generation_ablated": gen_ablated,
        "margins_clean": greedy_margins(lm, ids, gen_clean, None),
        "margins_ablated": greedy_margins(lm, ids, gen_ablated, ablation),
    }


def write_expectations(path: Path | None = None) -> Path:
    import torch

    from .. import __version__
    from ..checkpoints import load
    from ..checkpoints.demo import demo_model_dir

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    lm = load(demo_model_dir())
    ids = lm.encode(PROMPT)
    layer, head = choose_ablation(lm, ids)
    ablate = f"{layer}.{head}"
    data = {
        "schema": SCHEMA,
        "note": "written by `python -m explorer.app.selftest --write` from the engine",
        "version": __version__,
        "torch": torch.__version__,
        "model": fingerprint(demo_model_dir()),
        "prompt": PROMPT,
        "ablate": ablate,
        "pattern_head": [layer, head],
        "n_new": N_NEW,
        "tolerance": TOL,
        "expect": engine_numbers(lm, PROMPT, ablate, layer, head, N_NEW),
    }
    path = Path(path or expectations_path())
    path.write_text(_dumps(data), encoding="utf-8")
    return path


def _dumps(data: dict) -> str:
    """JSON with one line per entry (and per pattern row): readable diffs when it changes."""

    def block(d: dict, pad: str) -> str:
        items = []
        for k, v in d.items():
            if isinstance(v, dict) and k == "expect":
                text = block(v, pad + "  ")
            elif k == "pattern":
                rows = ",\n".join(f"{pad}    {json.dumps(r)}" for r in v)
                text = f"[\n{rows}\n{pad}  ]"
            else:
                text = json.dumps(v)
            items.append(f"{pad}  {json.dumps(k)}: {text}")
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"

    return block(data, "") + "\n"


# --- checking --------------------------------------------------------------------------------


class Report:
    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.failures: list[str] = []
        self.passed = 0
        self.t0 = time.perf_counter()

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        mark = "ok  " if ok else "FAIL"
        print(f"  {mark} {name}" + (f"  ({detail})" if detail else ""), file=self.out, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failures.append(name)
        return ok

    def line(self, text: str):
        print(text, file=self.out, flush=True)


def _max_diff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def same_greedy(got: list[int], want: list[int], margins: list[float], tol: float):
    """(ok, detail): tokens equal up to the first step that was too close to call."""
    for i, w in enumerate(want):
        if i >= len(got):
            return False, f"{len(got)} of {len(want)} tokens"
        if got[i] != w:
            if i < len(margins) and margins[i] < tol:
                return True, f"{i} tokens equal; step {i} was a near tie ({margins[i]:.2g})"
            return False, f"token {i}: {got[i]} != {w}"
    return len(got) == len(want), f"{len(want)} tokens"


def probs_match(probs_of, top: list, tol: float) -> float:
    """The largest error of p(token) over the expected top tokens; probs_of(id) -> p or None."""
    worst = 0.0
    for i, p in top:
        got = probs_of(i)
        if got is None:
            if p > tol:  # it would have been listed
                return float("inf")
            continue
        worst = max(worst, abs(got - p))
    return worst


def check_engine(rep: Report, lm, exp: dict, tol: dict):
    from ..engine import Ablation

    e = exp["expect"]
    layer, head = exp["pattern_head"]
    t = time.perf_counter()
    got = engine_numbers(lm, exp["prompt"], exp["ablate"], layer, head, exp["n_new"])
    seconds = time.perf_counter() - t
    rep.check("engine: tokens", got["ids"] == e["ids"], f"{len(got['ids'])} tokens")
    d = abs(got["loss_mean"] - e["loss_mean"])
    rep.check(
        "engine: forward, mean loss", d <= tol["loss"], f"{got['loss_mean']:.4f} nats, err {d:.1e}"
    )
    ids = got["ids"]
    clean = lm.run(ids)
    pc = clean.probs(len(ids) - 1)
    err = probs_match(lambda i: float(pc[i]), e["top_clean"], tol["prob"])
    rep.check("engine: forward, top-5 next tokens", err <= tol["prob"], f"max err {err:.1e}")
    pa = clean.rerun(Ablation.parse(exp["ablate"])).probs(len(ids) - 1)
    err = probs_match(lambda i: float(pa[i]), e["top_ablated"], tol["prob"])
    effect = float((pa - pc).abs().max())  # the ablation must change the prediction
    rep.check(f"engine: ablation {exp['ablate']}, top-5 next tokens", err <= tol["prob"] and effect > 1e-3,
              f"max err {err:.1e}; it moves a probability by {effect:.2g}")  # fmt: skip
    err = _max_diff(got["pattern"], e["pattern"])
    rep.check(
        f"engine: attention pattern {layer}.{head}", err <= tol["pattern"], f"max err {err:.1e}"
    )
    for kind in ("clean", "ablated"):
        ok, detail = same_greedy(
            got[f"generation_{kind}"], e[f"generation_{kind}"], e[f"margins_{kind}"], tol["margin"]
        )
        rep.check(f"engine: generation ({kind}, greedy)", ok, detail)
    rep.line(f"  engine checks took {seconds:.2f} s")


def _wait(app, pred, timeout: float) -> bool:
    from PySide6.QtCore import QEventLoop

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if pred():
            return True
        time.sleep(0.002)
    return False


def _distinct_colors(image, step: int = 2) -> int:
    seen = set()
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            seen.add(image.pixel(x, y))
            if len(seen) > 500:
                return len(seen)
    return len(seen)


@contextmanager
def _headless_guards():
    """Message boxes would wait for a click that never comes: record their text instead.
    The offscreen platform warns about size hints on every show: drop only that warning.
    Both are undone on exit (the self-test also runs inside the test suite)."""
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QMessageBox

    seen: list[str] = []
    kinds = ("warning", "critical", "information", "question", "about")
    saved = {k: QMessageBox.__dict__[k] for k in (*kinds, "exec") if k in QMessageBox.__dict__}

    def record(kind):
        def show(parent, title, text, *args, **kw):
            seen.append(f"{kind} dialog: {title}: {text}")
            return QMessageBox.StandardButton.Ok

        return staticmethod(show)

    def quiet(kind, context, message):
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    for kind in kinds:
        setattr(QMessageBox, kind, record(kind))
    QMessageBox.exec = lambda self: seen.append(f"dialog: {self.text()}") or 0
    previous = qInstallMessageHandler(quiet)
    try:
        yield seen
    finally:
        qInstallMessageHandler(previous)
        for k in (*kinds, "exec"):
            if k in saved:
                setattr(QMessageBox, k, saved[k])
            else:
                delattr(QMessageBox, k)


def check_gui(rep: Report, exp: dict, tol: dict, model_dir: Path, image_path: str | None,
              timeout: float) -> dict:  # fmt: skip
    """The same numbers through the real main window; render the attention dock."""
    from PySide6.QtCore import QSettings

    from .main import make_app

    app = make_app()
    # the user's own settings stay untouched: this run's settings live in a temporary folder
    with tempfile.TemporaryDirectory(prefix="attention-explorer-selftest-") as settings_dir:
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
        with _headless_guards() as dialogs:
            return _gui_checks(rep, exp, tol, model_dir, image_path, timeout, app, dialogs)


def _gui_checks(rep, exp, tol, model_dir, image_path, timeout, app, dialogs) -> dict:
    import pyqtgraph as pg

    from ..engine import Ablation
    from .main_window import MainWindow
    from .widgets.heatmap import COLORMAPS, DIVERGING

    e = exp["expect"]
    timings = {}
    t_start = time.perf_counter()
    window = MainWindow(restore=False)
    try:
        window.show()
        window.load_model(str(model_dir), exp["prompt"])
        ready = _wait(
            app, lambda: dialogs or window.state.run is not None and window.all_ready(), timeout
        )
        ready = ready and not dialogs
        timings["window_ready"] = time.perf_counter() - t_start
        age = process_age()
        if age is not None:
            timings["launch_to_window"] = age
        if not rep.check("window: demo model opened, every panel ready", ready, "; ".join(dialogs)):
            return timings
        run = window.state.run
        rep.check("window: tokens", run.ids == e["ids"])

        def gui_probs(result):
            row_ids, row_p = result.top_ids[-1].tolist(), result.top_probs[-1].tolist()
            return lambda i: row_p[row_ids.index(i)] if i in row_ids else None

        err = probs_match(gui_probs(run), e["top_clean"], tol["prob"])
        rep.check("window: predictions (clean)", err <= tol["prob"], f"max err {err:.1e}")

        ablation = Ablation.parse(exp["ablate"])
        t = time.perf_counter()
        window.state.set_ablation(ablation)
        ready = _wait(
            app,
            lambda: window.state.run.ablation == ablation and window.all_ready(),
            timeout,
        )
        timings["ablation"] = time.perf_counter() - t
        if not rep.check(f"window: ablation {exp['ablate']} recomputed", ready):
            return timings
        run = window.state.run
        err = probs_match(gui_probs(run), e["top_ablated"], tol["prob"])
        rep.check("window: predictions (ablated)", err <= tol["prob"], f"max err {err:.1e}")
        gen = window.docks["generation"].last
        for kind in ("clean", "ablated"):
            got = getattr(gen, f"{kind}_ids", None) if gen else None
            ok, detail = same_greedy(
                got or [], e[f"generation_{kind}"], e[f"margins_{kind}"], tol["margin"]
            )
            rep.check(f"window: generation ({kind})", ok, detail)

        layer, head = exp["pattern_head"]
        att = window.docks["attention"]
        window.state.select(layer=layer, head=head)
        shown = _wait(app, lambda: att.shown and att.shown[1:3] == (layer, head), timeout)
        err = _max_diff(att.heatmap.data, e["pattern"]) if shown else float("inf")
        rep.check(f"window: attention dock shows head {layer}.{head}", err <= tol["pattern"],
                  f"max err {err:.1e}")  # fmt: skip
        missing = []
        for name in (*COLORMAPS, DIVERGING):  # CSV files inside pyqtgraph: bundled?
            try:
                pg.colormap.get(name)
            except Exception:
                missing.append(name)
        rep.check("window: colour maps", not missing, ", ".join(missing) or "all found")
        _wait(app, lambda: False, 0.2)  # let the repaint settle
        image = att.grab().toImage()
        colors = _distinct_colors(image)
        rep.check("window: attention dock renders", image.width() > 200 and colors > 50,
                  f"{image.width()}x{image.height()} px, {colors} colours")  # fmt: skip
        if image_path:
            rep.check(f"window: image saved to {image_path}", image.save(image_path))
        rep.check("window: no error dialog", not dialogs, "; ".join(dialogs))
    finally:
        window.close()
        app.processEvents()
    return timings


def run_self_test(image_path: str | None = None, timeout: float = 120, out=None) -> int:
    t_start = time.perf_counter()
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists
    rep = Report(out)
    try:
        import torch

        from .. import __version__
        from ..checkpoints import load
        from ..checkpoints.demo import demo_available, demo_model_dir

        frozen = "bundle" if getattr(sys, "frozen", False) else "source"
        rep.line(
            f"Attention Explorer {__version__} self-test ({frozen}, torch {torch.__version__})"
        )
        model_dir = demo_model_dir()
        if not rep.check("demo model present", demo_available(), str(model_dir)):
            return 1
        path = expectations_path()
        try:
            exp = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            rep.check("expectations readable", False, f"{path}: {err}")
            return 1
        tol = {**TOL, **exp.get("tolerance", {})}
        fp = fingerprint(model_dir)
        if not rep.check("expectations are for this demo model", fp == exp.get("model"),
                         f"{fp}" if fp == exp.get("model") else
                         f"weights {fp}, expectations {exp.get('model')}: "
                         "run `python -m explorer.app.selftest --write`"):  # fmt: skip
            return 1
        # the window first, as a user starts it: its time to results is the startup time
        timings = check_gui(rep, exp, tol, model_dir, image_path, timeout)
        if "window_ready" in timings:
            text = f"  startup: window with results {timings['window_ready']:.2f} s after it opened"
            if "launch_to_window" in timings:
                text += f", {timings['launch_to_window']:.2f} s after launch"
            rep.line(text)
        t = time.perf_counter()
        lm = load(model_dir)
        rep.check("engine: load", True, f"{lm.describe()['n_params'] / 1e6:.2f}M parameters, "
                  f"{time.perf_counter() - t:.2f} s")  # fmt: skip
        check_engine(rep, lm, exp, tol)
    except Exception:
        rep.check("no unexpected error", False, traceback.format_exc().strip())
    n = len(rep.failures)
    total = time.perf_counter() - t_start
    rep.line(f"self-test {'passed' if not n else 'FAILED'} in {total:.1f} s")
    rep.line(f"self-test: {rep.passed} passed, {n} failed")  # the form CI logs understand
    return 0 if not n else 1


def main(args=None) -> int:
    """From the app's command line: --self-test [--screenshot FILE.png] [--timeout S]."""
    image = getattr(args, "screenshot", None)
    timeout = getattr(args, "timeout", 120) or 120
    if sys.stdout is not None:
        return run_self_test(image, timeout)
    # a windowed Windows build has no console: the report goes to a file beside the user
    path = Path.cwd() / "AttentionExplorer-selftest.txt"
    with open(path, "w", encoding="utf-8") as out:
        return run_self_test(image, timeout, out)


def _cli(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.app.selftest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--write", action="store_true", help="write resources/selftest.json anew")
    p.add_argument("--screenshot", metavar="FILE.png", help="save the attention dock image")
    a = p.parse_args(argv)
    if a.write:
        print(write_expectations())
        return 0
    return run_self_test(a.screenshot)


if __name__ == "__main__":
    sys.exit(_cli())
