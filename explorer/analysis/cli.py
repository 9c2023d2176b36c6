"""`attention-explorer analyze MODEL --prompt TEXT --what ...`: the analyses, headless.

Prints a short table, or with --json one JSON object holding the same numbers the docks show:
{"model": ..., "what": ..., "tokens": [...], "result": <the result's to_json()>}.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

WHATS = ("heads", "sweep", "lens", "dla", "patch", "rollout")
METRICS = ("auto", "logit_diff", "loss", "kl")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attention-explorer analyze",
        description="Head roles, importance sweep, logit lens, direct logit attribution, "
        "activation patching or attention rollout for one prompt.",
    )
    p.add_argument("model", help="a Hugging Face model folder, or 'demo'")
    p.add_argument("--prompt", required=True)
    p.add_argument("--what", required=True, choices=WHATS)
    p.add_argument("--target", help="a token as text, e.g. ' Mary' (must be one token)")
    p.add_argument("--foil", help="a second token: measure logit[target] - logit[foil]")
    p.add_argument("--position", type=int, help="the position analysed (default: the last)")
    p.add_argument("--corrupted", help="patch: the corrupted prompt (same number of tokens)")
    p.add_argument(
        "--metric",
        choices=METRICS,
        default="auto",
        help="sweep/patch metric; auto: logit_diff with --target, else loss of the next token, "
        "else KL to the run under the base ablation (sweep) or the clean run (patch)",
    )
    p.add_argument("--ablate", default="", help="base ablation, LAYER.HEAD,... or L3.attn")
    p.add_argument("--ablate-mode", choices=("zero", "mean"), default="zero")
    p.add_argument("--sweep-mode", choices=("zero", "mean"), default="zero")
    p.add_argument("--top", type=int, default=10, help="rows in the text output")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def analyze(argv) -> int:
    from ..cli import UsageError, _load
    from ..engine import Ablation, PromptError
    from .common import AnalysisError, check_position

    a = parser().parse_args(argv)
    lm = _load(a.model, a.dtype, a.device)
    try:
        base = Ablation.parse(a.ablate, a.ablate_mode)
        ids = lm.encode(a.prompt)
        check_heads(lm, base)
        run = lm.run(ids, base)
        check_position(run, a.position)
        result = ANALYSES[a.what](lm, run, a)
    except (AnalysisError, PromptError, ValueError) as e:
        raise UsageError(str(e)) from None
    if a.json:
        out = {
            "model": lm.describe(),
            "what": a.what,
            "ablation": base.describe(),
            "tokens": [{"id": i, "text": t} for i, t in zip(ids, lm.tokenizer.displays(ids))],
            "result": result.to_json(),
        }
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(FORMATS[a.what](lm, run, result, a))
    return 0


def check_heads(lm, ablation) -> None:
    s = lm.spec
    bad = [
        f"{l}.{h}" for l, h, _ in ablation.heads if not (0 <= l < s.n_layers and 0 <= h < s.n_heads)
    ]
    bad += [f"L{l}" for l in ablation.attn_layers | ablation.mlp_layers if not 0 <= l < s.n_layers]
    if bad:
        raise ValueError(f"no such head(s) {', '.join(bad)} in a {s.n_layers}x{s.n_heads} model")


def token(lm, text: str | None, flag: str) -> int | None:
    """A token given as text -> its id; exactly one token is required."""
    from .common import AnalysisError

    if text is None:
        return None
    tid = lm.tokenizer.token_id(text)
    if tid is None:
        pieces = lm.tokenizer.encode(text, add_special_tokens=False).ids
        shown = " + ".join(repr(lm.tokenizer.display(i)) for i in pieces) or "no tokens"
        raise AnalysisError(f"{flag} {text!r} is not a single token (it is {shown})")
    return tid


def top_prediction(run, position: int) -> int:
    return int(run.logits([position])[0].argmax())


def build_metric(lm, run, a):
    """The sweep/patch metric from the command line (see --metric); KL is taken to `run`."""
    from .common import AnalysisError, Metric, check_position

    p = check_position(run, a.position)
    target, foil = token(lm, a.target, "--target"), token(lm, a.foil, "--foil")
    kind = a.metric
    if kind == "auto":
        kind = "logit_diff" if target is not None else "loss" if p < run.n_tokens - 1 else "kl"
    if kind == "logit_diff":
        if target is None:
            raise AnalysisError("the logit_diff metric needs --target (and optionally --foil)")
        return Metric.logit_diff(p, target, foil)
    if kind == "loss":
        return Metric.loss(run, p, None if target is None else [target])
    return Metric.kl(run, p)


# --- the analyses -----------------------------------------------------------------------------


def do_heads(lm, run, a):
    from .roles import head_roles

    return head_roles(lm, run)


def do_sweep(lm, run, a):
    from .sweep import importance_sweep

    metric = build_metric(lm, run, a)  # KL: to the run under the base ablation
    return importance_sweep(lm, run, metric, mode=a.sweep_mode)


def do_lens(lm, run, a):
    from .lens import logit_lens

    return logit_lens(lm, run, token(lm, a.target, "--target"))


def do_dla(lm, run, a):
    from .common import check_position
    from .dla import check_decomposable, direct_logit_attribution

    check_decomposable(lm)
    p = check_position(run, a.position)
    target = token(lm, a.target, "--target")
    if target is None:
        target = top_prediction(run, p)
    return direct_logit_attribution(lm, run, target, token(lm, a.foil, "--foil"), p)


def do_patch(lm, run, a):
    from ..engine import PromptError
    from .common import AnalysisError, Metric, check_position, need_lm_head
    from .patching import activation_patching

    need_lm_head(lm, "activation patching")
    if not a.corrupted:
        raise AnalysisError("--what patch needs --corrupted TEXT")
    try:
        corrupted = lm.run(lm.encode(a.corrupted), run.ablation)
    except PromptError as e:
        raise AnalysisError(f"corrupted prompt: {e}") from None
    if corrupted.n_tokens != run.n_tokens:
        raise AnalysisError(
            f"the prompt has {run.n_tokens} tokens and --corrupted {corrupted.n_tokens}: "
            "patching needs the same number"
        )
    p = check_position(run, a.position)
    if a.metric in ("auto", "logit_diff"):
        target, foil = token(lm, a.target, "--target"), token(lm, a.foil, "--foil")
        if target is None:
            target = top_prediction(run, p)
        if foil is None and a.target is None:
            other = top_prediction(corrupted, p)
            foil = other if other != target else None
        metric = Metric.logit_diff(p, target, foil)
    else:
        metric = build_metric(lm, run, a)
    return activation_patching(lm, run, corrupted, metric)


def do_rollout(lm, run, a):
    from .rollout import attention_rollout

    return attention_rollout(lm, run, a.position)


ANALYSES = {
    "heads": do_heads,
    "sweep": do_sweep,
    "lens": do_lens,
    "dla": do_dla,
    "patch": do_patch,
    "rollout": do_rollout,
}


# --- text output ------------------------------------------------------------------------------


def grid(values: np.ndarray, row_label: str = "L", fmt: str = "{:7.3f}") -> list[str]:
    """A small matrix as text, one row per layer."""
    values = np.atleast_2d(values)
    head = " " * 5 + "".join(f"{j:>7d}" for j in range(values.shape[1]))
    rows = [head]
    for i, row in enumerate(values):
        cells = "".join(" " * 6 + "-" if not np.isfinite(v) else fmt.format(v) for v in row)
        rows.append(f"{row_label}{i:<4d}{cells}")
    return rows


def header(lm, run) -> str:
    s = lm.spec
    return (
        f"{lm.name} ({s.architecture}, {s.n_layers} layers x {s.n_heads} heads), "
        f"{run.n_tokens} tokens, ablation: {run.ablation.describe()}"
    )


def fmt_heads(lm, run, r, a) -> str:
    from .roles import ROLES

    lines = [header(lm, run)]
    lines.append(
        f"induction measured on the {r.induction_source} ({r.n_induction_queries} queries), "
        f"duplicate-token on the {r.duplicate_source} ({r.n_duplicate_queries} queries)"
    )
    for role in ROLES:
        top = ", ".join(f"{l}.{h} {v:.3f}" for l, h, v in r.top(role, min(a.top, 5)))
        lines.append(f"{role:>16}: {top}")
    for role in ROLES:
        lines.append(f"\n{role} (layers x heads)")
        lines += grid(r.scores(role))
    return "\n".join(lines)


def fmt_sweep(lm, run, r, a) -> str:
    lines = [header(lm, run), f"metric: {r.metric.describe(lm.tokenizer)} = {r.base_value:.4f}"]
    lines.append(f"change when ablated ({r.mode}), largest first:")
    for kind, l, h, d in r.top(a.top):
        name = f"{l}.{h}" if kind == "head" else f"L{l}.{kind}"
        lines.append(f"  {name:>10} {d:+.4f}")
    lines.append("\nheads (layers x heads)")
    lines += grid(r.heads)
    lines.append("\nattention, mlp (layers)")
    lines += grid(np.stack([r.attn, r.mlp], 1))
    return "\n".join(lines)


def fmt_lens(lm, run, r, a) -> str:
    from .common import check_position

    p = check_position(run, a.position)
    lines = [header(lm, run), f"logit lens at position {p} ({r.tokens[p]!r})"]
    for i, name in enumerate(r.layers):
        t = "" if r.target is None else f"   p({r.target_text!r}) = {r.target_probs[i, p]:.4f}"
        lines.append(f"{name:>6}  {r.top_texts[i][p]!r:>14} {r.top_probs[i, p]:.3f}{t}")
    cols = range(max(0, len(r.tokens) - 8), len(r.tokens))
    lines.append("\ntop token per layer (last 8 positions)")
    lines.append(" " * 7 + "".join(f"{r.tokens[j][:10]!r:>13}" for j in cols))
    for i, name in enumerate(r.layers):
        lines.append(f"{name:>6} " + "".join(f"{r.top_texts[i][j][:10]!r:>13}" for j in cols))
    return "\n".join(lines)


def fmt_dla(lm, run, r, a) -> str:
    what = f"logit[{r.target_text!r}]" + ("" if r.foil is None else f" - logit[{r.foil_text!r}]")
    lines = [
        header(lm, run),
        f"direct logit attribution of {what} at position {r.position} "
        f"(final norm scale frozen at {r.norm_scale:.4g})",
        f"actual {r.logit:.4f} = sum of parts {r.total:.4f} "
        f"(embed {r.embed:.4f}, biases {r.constant + r.attn_bias.sum():.4f})",
    ]
    for kind, l, h, v in r.top(a.top):
        name = {"head": f"{l}.{h}", "embed": "embed"}.get(kind, f"L{l}.{kind}")
        lines.append(f"  {name:>12} {v:+.4f}")
    lines.append("\nheads (layers x heads)")
    lines += grid(r.heads)
    lines.append("\nmlp (layers)")
    lines += grid(r.mlp[:, None])
    return "\n".join(lines)


def fmt_patch(lm, run, r, a) -> str:
    lines = [
        header(lm, run),
        f"metric: {r.metric.describe(lm.tokenizer)}: clean {r.clean_value:.4f}, "
        f"corrupted {r.corrupted_value:.4f}",
    ]
    if r.warning:
        lines.append(f"warning: {r.warning}")
    lines.append("\nfraction restored by patching each head's output (layers x heads)")
    lines += grid(r.restored_heads)
    differ = [j for j, (c, d) in enumerate(zip(r.clean_tokens, r.corrupted_tokens)) if c != d]
    lines.append(
        "\nfraction restored by patching the residual stream entering each layer "
        f"(columns: positions; the prompts differ at {differ})"
    )
    lines += grid(r.restored_resid)
    return "\n".join(lines)


def fmt_rollout(lm, run, r, a) -> str:
    lines = [header(lm, run), f"attention rollout from position {r.position}"]
    order = np.argsort(-r.scores)[: a.top]
    for j in order:
        lines.append(f"  {j:>4} {r.tokens[j]!r:>16} {r.scores[j]:.4f}")
    lines.append("\nlayers x positions")
    lines += grid(r.layers)
    return "\n".join(lines)


FORMATS = {
    "heads": fmt_heads,
    "sweep": fmt_sweep,
    "lens": fmt_lens,
    "dla": fmt_dla,
    "patch": fmt_patch,
    "rollout": fmt_rollout,
}
