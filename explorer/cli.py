"""Command line: `attention-explorer [MODEL]` opens the app; sub-commands run headless."""

from __future__ import annotations

import argparse
import json
import sys

COMMANDS = ("inspect", "demo-report", "analyze", "export")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        try:
            return COMMAND_FUNCS[argv[0]](argv[1:])
        except UsageError as e:
            print(f"attention-explorer: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    from .app.main import main as app_main  # Qt only when the window is wanted

    return app_main(argv)


def _load(model: str, dtype: str = "float32", device: str = "cpu"):
    from .checkpoints import CheckpointError, load
    from .checkpoints.demo import resolve_model

    try:
        return load(resolve_model(model), dtype=dtype, device=device)
    except CheckpointError as e:
        raise UsageError(f"cannot load {model}: {e}") from None


def inspect(argv) -> int:
    p = argparse.ArgumentParser(
        prog="attention-explorer inspect", description="Run a prompt through a model."
    )
    p.add_argument("model", help="a Hugging Face model folder, or 'demo'")
    p.add_argument("--prompt", required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--ablate", default="", help="heads as LAYER.HEAD,LAYER.HEAD,...")
    p.add_argument("--ablate-mode", choices=("zero", "mean"), default="zero")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save-npz", metavar="FILE", help="write token ids, logits/hidden, attention")
    a = p.parse_args(argv)
    import numpy as np

    from .engine import Ablation, PromptError

    lm = _load(a.model, a.dtype, a.device)
    s = lm.spec
    try:
        ablation = Ablation.parse(a.ablate, a.ablate_mode)
        ids = lm.encode(a.prompt)
    except (ValueError, PromptError) as e:
        raise UsageError(str(e)) from None
    bad = [
        f"{l}.{h}" for l, h, _ in ablation.heads if not (0 <= l < s.n_layers and 0 <= h < s.n_heads)
    ]
    bad += [
        f"L{l}.{part}"
        for part, layers in (("attn", ablation.attn_layers), ("mlp", ablation.mlp_layers))
        for l in sorted(layers)
        if not 0 <= l < s.n_layers
    ]
    if bad:
        raise UsageError(f"no such head(s) {', '.join(bad)} in a {s.n_layers}x{s.n_heads} model")
    run = lm.run(ids, ablation)
    texts = lm.tokenizer.displays(ids)
    positions = []
    loss = run.loss().tolist() if s.has_lm_head and s.causal else [None] * len(ids)
    for i in range(len(ids)):
        entry = {"loss": None if loss[i] is None or loss[i] != loss[i] else float(loss[i])}
        if s.has_lm_head:
            top = run.top_k(i, a.top_k)
            entry["top_k"] = [
                {"id": t, "text": lm.tokenizer.display(t), "logit": lg, "prob": pr}
                for t, pr, lg in zip(top.ids, top.probs, top.logits)
            ]
        else:
            entry["top_k"] = []
        positions.append(entry)
    out = {
        "model": lm.describe(),
        "ablation": ablation.describe(),
        "tokens": [{"id": i, "text": t} for i, t in zip(ids, texts)],
        "positions": positions,
    }
    if a.save_npz:
        arrays = {
            "token_ids": np.asarray(ids, dtype=np.int64),
            "hidden": run.hidden.float().cpu().numpy(),
            "attention": np.stack(
                [run.layer_patterns(l).cpu().numpy() for l in range(s.n_layers)]
            ).astype(np.float32),
        }
        if s.has_lm_head:
            arrays["logits"] = run.logits().cpu().numpy()
        try:
            np.savez(a.save_npz, **arrays)
        except OSError as e:
            raise UsageError(f"cannot write {a.save_npz}: {e}") from None
    if a.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(format_inspect(out))
    return 0


def format_inspect(out: dict) -> str:
    m = out["model"]
    lines = [
        f"{m['name']} ({m['architecture']}, {m['n_layers']} layers x {m['n_heads']} heads, "
        f"d={m['d_model']}), ablation: {out['ablation']}"
    ]
    for tok, pos in zip(out["tokens"], out["positions"]):
        loss = "" if pos["loss"] is None else f"loss {pos['loss']:.3f}"
        top = " ".join(f"{t['text']!r}:{t['prob']:.2f}" for t in pos["top_k"][:3])
        lines.append(f"{tok['text']!r:>16}  {loss:>11}  -> {top}")
    return "\n".join(lines)


def demo_report(argv) -> int:
    p = argparse.ArgumentParser(
        prog="attention-explorer demo-report",
        description="Measure the built-in demo model's circuits and print them as JSON.",
    )
    p.add_argument("model", nargs="?", default="demo")
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args(argv)
    from .demo.report import report

    lm = _load(a.model)
    print(json.dumps(report(lm, seed=a.seed), indent=2))
    return 0


def analyze(argv) -> int:
    from .analysis.cli import analyze as run_analyze

    return run_analyze(argv)


EXPORT_SUFFIXES = (".png", ".svg", ".csv", ".npz", ".npy")


def export(argv) -> int:
    p = argparse.ArgumentParser(
        prog="attention-explorer export",
        description="Save one head's attention pattern (or a layer's average, --head -1) as the "
        "app draws it (PNG, SVG) or as numbers with token labels (CSV, NPZ, NPY).",
    )
    p.add_argument("model", help="a Hugging Face model folder, or 'demo'")
    p.add_argument("--prompt", required=True)
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--head", type=int, required=True, help="a head, or -1 for the layer average")
    p.add_argument("--all-heads", action="store_true", help="CSV/NPZ/NPY: every head of the layer")
    p.add_argument("--out", required=True, metavar="FILE.(png|svg|csv|npz|npy)")
    p.add_argument("--ablate", default="", help="heads as LAYER.HEAD,LAYER.HEAD,...")
    p.add_argument("--ablate-mode", choices=("zero", "mean"), default="zero")
    p.add_argument("--scale", type=int, choices=(1, 2, 3), default=1, help="PNG resolution")
    p.add_argument("--colormap", default="viridis")
    p.add_argument("--theme", choices=("light", "dark"), default="light")
    p.add_argument("--size", default="900x800", help="figure size in pixels at 1x, WxH")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    a = p.parse_args(argv)
    from pathlib import Path

    from .engine import Ablation, PromptError

    out = Path(a.out)
    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise UsageError(f"--out must end in one of {', '.join(EXPORT_SUFFIXES)}: {a.out}")
    if not out.parent.is_dir():
        raise UsageError(f"no such folder: {out.parent}")
    if a.all_heads and suffix in (".png", ".svg"):
        raise UsageError("--all-heads writes data: use .csv, .npz or .npy")
    try:
        size = tuple(int(x) for x in a.size.lower().split("x"))
        if len(size) != 2 or min(size) < 100 or max(size) > 8000:
            raise ValueError
    except ValueError:
        raise UsageError(
            f"--size should be WIDTHxHEIGHT in pixels, e.g. 900x800: {a.size}"
        ) from None
    lm = _load(a.model, a.dtype)
    s = lm.spec
    if not 0 <= a.layer < s.n_layers:
        raise UsageError(f"--layer {a.layer} is out of range: the model has {s.n_layers} layers")
    if not -1 <= a.head < s.n_heads:
        raise UsageError(f"--head {a.head} is out of range: layers have {s.n_heads} heads")
    try:
        ablation = Ablation.parse(a.ablate, a.ablate_mode)
        ids = lm.encode(a.prompt)
    except (ValueError, PromptError) as e:
        raise UsageError(str(e)) from None
    bad = [f"{l}.{h}" for l, h, _ in ablation.heads if not (l < s.n_layers and h < s.n_heads)]
    if bad:
        raise UsageError(f"no such head(s) {', '.join(bad)} in a {s.n_layers}x{s.n_heads} model")
    run = lm.run(ids, ablation)
    texts = lm.tokenizer.displays(ids)
    patterns = run.layer_patterns(a.layer).float().cpu().numpy()
    matrix = patterns if a.all_heads else (
        patterns.mean(0) if a.head < 0 else patterns[a.head]
    )  # fmt: skip
    from .export_data import ExportError, write_pattern

    if suffix in (".png", ".svg"):
        from .app.export import render_pattern  # Qt only for figures

        try:
            render_pattern(out, matrix, texts, scale=a.scale, colormap=a.colormap,
                           theme=a.theme, size=size)  # fmt: skip
        except ExportError as e:
            raise UsageError(str(e)) from None
    else:
        meta = {"layer": a.layer, "head": -2 if a.all_heads else a.head,
                "model": lm.name, "prompt": a.prompt, "ablation": ablation.describe()}  # fmt: skip
        try:
            write_pattern(out, matrix, texts, ids, meta)
        except ExportError as e:
            raise UsageError(str(e)) from None
    print(out)
    return 0


COMMAND_FUNCS = {
    "inspect": inspect, "demo-report": demo_report, "analyze": analyze, "export": export,
}  # fmt: skip
