"""Command line: `attention-explorer [MODEL]` opens the app; sub-commands run headless."""

from __future__ import annotations

import argparse
import json
import sys

COMMANDS = ("inspect", "demo-report", "analyze")


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


COMMAND_FUNCS = {"inspect": inspect, "demo-report": demo_report, "analyze": analyze}
