"""Measure the demo model's circuits with the engine: nothing here is hard-coded.

report(lm) returns a JSON-able dict:
- induction: loss on fresh random word sequences repeated once (periods 8-32), first half vs
  repeated half; per-head induction and previous-token scores; the induction heads and what
  zero-ablating them does to the repeated half's loss;
- ioi: accuracy and mean logit difference (indirect object minus subject) on held-out
  name-pair / place-object combinations; every head ranked by how much zero-ablating it lowers
  the logit difference, and the effect of ablating the top heads together;
- plain: mean loss on fresh plain sentences;
- induction_longer_periods, induction_any_words: the same induction measurement beyond what
  the issue requires (periods 33-60; words of the whole vocabulary, function words too).

The corpus's held-out combinations and word lists come from explorer.demo.corpus, so the
prompts are new to the model but drawn from its own vocabulary. Deterministic given the seed.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from pathlib import Path

import torch

from ..engine import Ablation, LoadedModel
from . import corpus

INDUCTION_THRESHOLD = 0.4  # a head with at least this induction score counts as an induction head
PREV_THRESHOLD = 0.5
TOP_IOI_HEADS = 3


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _ids(lm: LoadedModel, pieces: list[str]) -> list[int]:
    vocab = lm.tokenizer.tok.get_vocab()
    missing = [p for p in pieces if p not in vocab]
    if missing:
        raise ValueError(f"the model's tokenizer lacks the demo pieces {missing[:5]}")
    return [vocab[p] for p in pieces]


def _head_name(l: int, h: int) -> str:
    return f"{l}.{h}"


def induction(lm: LoadedModel, seed: int, n: int = 40, periods=(8, 32), words=None) -> dict:
    s = lm.spec
    rng = random.Random(seed)
    pool = corpus.WORD_LIST if words is None else words
    first, rep = [], []
    ind = torch.zeros(s.n_layers, s.n_heads)
    prev = torch.zeros(s.n_layers, s.n_heads)
    runs = []
    for _ in range(n):
        p = rng.randint(*periods)
        seq = corpus.induction_words(rng, p, pool)
        run = lm.run(_ids(lm, seq + seq))
        loss = run.loss()
        first.append(loss[: p - 1].mean().item())  # predicting words 2..p
        rep.append(loss[p : 2 * p - 1].mean().item())  # predicting repeated words 2..p
        q = torch.arange(p, 2 * p)
        q1 = torch.arange(1, 2 * p)
        for l in range(s.n_layers):
            a = run.layer_patterns(l)  # (H, T, T)
            ind[l] += a[:, q, q - p + 1].mean(dim=1)
            prev[l] += a[:, q1, q1 - 1].mean(dim=1)
        runs.append((run, p))
    ind /= n
    prev /= n
    order = sorted(
        ((l, h) for l in range(s.n_layers) for h in range(s.n_heads)),
        key=lambda lh: -ind[lh].item(),
    )
    heads = [lh for lh in order if ind[lh] >= INDUCTION_THRESHOLD] or order[:1]
    prev_heads = sorted(
        (
            (l, h)
            for l in range(s.n_layers)
            for h in range(s.n_heads)
            if prev[l, h] >= PREV_THRESHOLD
        ),
        key=lambda lh: -prev[lh].item(),
    )

    def rep_loss(ablation: Ablation) -> float:
        return sum(r.rerun(ablation).loss()[p : 2 * p - 1].mean().item() for r, p in runs) / n

    base = sum(rep) / n
    ablated = rep_loss(Ablation.of(heads=heads, mode="zero"))
    single = {
        _head_name(*lh): _r(rep_loss(Ablation.of(heads=[lh], mode="zero")) - base) for lh in heads
    }
    prev_ablated = rep_loss(Ablation.of(heads=prev_heads, mode="zero")) if prev_heads else base
    return {
        "sequences": n,
        "periods": list(periods),
        "word_list_size": len(pool),
        "chance_loss": _r(math.log(len(pool))),
        "loss_first_half": _r(sum(first) / n),
        "loss_repeated_half": _r(base),
        "induction_scores": [[_r(x) for x in row] for row in ind.tolist()],
        "previous_token_scores": [[_r(x) for x in row] for row in prev.tolist()],
        "induction_heads": [_head_name(*lh) for lh in heads],
        "previous_token_heads": [_head_name(*lh) for lh in prev_heads],
        "best_induction_head": {"head": _head_name(*order[0]), "score": _r(ind[order[0]])},
        "loss_repeated_half_ablated": _r(ablated),
        "ablation_loss_increase": _r(ablated - base),
        "ablation_loss_increase_each": single,
        "loss_repeated_half_prev_heads_ablated": _r(prev_ablated),
    }


def _ioi_batches(lm: LoadedModel, prompts):
    """Prompts grouped by length (names are single tokens, so by template): tensors."""
    groups = defaultdict(list)
    for p in prompts:
        groups[len(p.pieces)].append(p)
    tid = lm.tokenizer.tok.token_to_id
    out = []
    for _, ps in sorted(groups.items()):
        tokens = torch.tensor([_ids(lm, p.pieces) for p in ps], device=lm.device)
        io = torch.tensor([tid(p.io) for p in ps], device=lm.device)
        s = torch.tensor([tid(p.s) for p in ps], device=lm.device)
        out.append((tokens, io, s))
    return out


@torch.inference_mode()
def _logit_diffs(lm: LoadedModel, batches, ablation: Ablation | None = None):
    diffs, correct = [], []
    for tokens, io, s in batches:
        logits = lm.model(tokens, ablation)[:, -1].float()
        d = logits.gather(1, io[:, None]) - logits.gather(1, s[:, None])
        diffs.append(d[:, 0])
        correct.append(logits.argmax(-1) == io)
    return torch.cat(diffs), torch.cat(correct)


def _ioi_attention(lm: LoadedModel, prompts, head) -> dict:
    """Where a head looks from the final " to": the indirect object, the subject's first and
    second mention, the final token itself, or elsewhere (and at which word most)."""
    roles = defaultdict(float)
    other = defaultdict(float)
    for p in prompts:
        row = lm.run(_ids(lm, p.pieces)).pattern(*head)[-1].tolist()
        s_pos = [i for i, x in enumerate(p.pieces) if x == p.s]
        for i, (piece, a) in enumerate(zip(p.pieces, row)):
            if piece == p.io:
                roles["indirect_object"] += a
            elif i == s_pos[0]:
                roles["subject_first"] += a
            elif i == s_pos[1]:
                roles["subject_second"] += a
            elif i == len(row) - 1:
                roles["itself"] += a
            else:
                roles["elsewhere"] += a
                other[piece] += a
    out = {
        k: _r(roles[k] / len(prompts))
        for k in ("indirect_object", "subject_first", "subject_second", "itself", "elsewhere")
    }
    out["elsewhere_mostly"] = max(other, key=other.get) if other else None
    return out


def ioi(lm: LoadedModel, seed: int, n: int = 240) -> dict:
    s = lm.spec
    rng = random.Random(seed + 1)
    prompts = [corpus.ioi_prompt(rng, held_out=True) for _ in range(n)]
    batches = _ioi_batches(lm, prompts)
    diff, top1 = _logit_diffs(lm, batches)
    base = diff.mean().item()
    drops = {}
    for l in range(s.n_layers):
        for h in range(s.n_heads):
            d, _ = _logit_diffs(lm, batches, Ablation.of(heads=[(l, h)], mode="zero"))
            drops[(l, h)] = base - d.mean().item()
    ranked = sorted(drops, key=lambda lh: -drops[lh])
    top = ranked[:TOP_IOI_HEADS]
    d_top, top1_top = _logit_diffs(lm, batches, Ablation.of(heads=top, mode="zero"))
    # where the top heads look from the final " to": at the indirect object or the subject
    attn = {_head_name(*lh): _ioi_attention(lm, prompts[:60], lh) for lh in top}
    return {
        "prompts": n,
        "held_out": "name pairs and place/object pairs never seen together in training",
        "accuracy": _r((diff > 0).float().mean()),
        "top1_accuracy": _r(top1.float().mean()),
        "mean_logit_diff": _r(base),
        "min_logit_diff": _r(diff.min()),
        "head_ranking": [
            {"head": _head_name(*lh), "logit_diff_drop": _r(drops[lh])} for lh in ranked
        ],
        "top_heads": [_head_name(*lh) for lh in top],
        "top_heads_attention_from_last_token": attn,
        "mean_logit_diff_top_heads_ablated": _r(d_top.mean()),
        "accuracy_top_heads_ablated": _r((d_top > 0).float().mean()),
        "logit_diff_drop_top_heads": _r(base - d_top.mean().item()),
    }


def _longer(lm: LoadedModel, seed: int) -> dict:
    """Beyond the required periods: does induction reach further back? (informational)"""
    lo, hi = 33, min(60, len(corpus.WORD_LIST), (lm.spec.context_length) // 2)
    r = induction(lm, seed + 3, n=20, periods=(lo, hi))
    keys = ("periods", "loss_first_half", "loss_repeated_half", "best_induction_head")
    return {k: r[k] for k in keys}


def _any_words(lm: LoadedModel, seed: int) -> dict:
    """Sequences of any vocabulary words, function words too (informational)."""
    r = induction(lm, seed + 4, n=20, words=corpus.ALL_WORDS)
    keys = ("word_list_size", "chance_loss", "loss_first_half", "loss_repeated_half")
    return {k: r[k] for k in keys}


def plain(lm: LoadedModel, seed: int, n: int = 40) -> dict:
    rng = random.Random(seed + 2)
    losses = []
    for _ in range(n):
        pieces = corpus.plain_sentence(rng)
        losses.append(lm.run(_ids(lm, pieces)).loss()[:-1].mean().item())
    return {"sentences": n, "mean_loss": _r(sum(losses) / n)}


def report(lm: LoadedModel, seed: int = 1234) -> dict:
    torch.manual_seed(seed)
    return {
        "model": lm.describe(),
        "seed": seed,
        "induction": induction(lm, seed),
        "induction_longer_periods": _longer(lm, seed),
        "induction_any_words": _any_words(lm, seed),
        "ioi": ioi(lm, seed),
        "plain": plain(lm, seed),
    }


def _heads(names) -> str:
    return ", ".join(names) if names else "none"


def write_readme(folder: Path, r: dict, train_note: str = "") -> None:
    """resources/demo-model/README.md: what the model is and what to look for, measured."""
    m, ind, io = r["model"], r["induction"], r["ioi"]
    longer = r.get("induction_longer_periods")
    ranking = ", ".join(
        f"{x['head']} ({x['logit_diff_drop']:+.2f})" for x in io["head_ranking"][:6]
    )
    each = ", ".join(f"{h}: +{v:.2f}" for h, v in ind["ablation_loss_increase_each"].items())
    lines = [
        "# The built-in demo model",
        "",
        f"A {m['n_layers']}-layer, {m['n_heads']}-head llama-style transformer "
        f"(d_model {m['d_model']}, {m['n_params'] / 1e6:.2f}M parameters, a "
        f"{m['vocab_size']}-token word-level vocabulary, context {m['context_length']}) trained "
        "from scratch on a synthetic corpus by `make demo-model` (`explorer/demo/train.py`). "
        'Words carry their leading space (`" Mary"`); a word outside the vocabulary becomes '
        "`<unk>`.",
        "",
        "The corpus mixes random word sequences repeated once, indirect object sentences "
        '("When Mary and John went to the store, John gave a drink to" -> " Mary") and plain '
        "templated sentences. Everything below is measured, not assumed: "
        f"`attention-explorer demo-report` prints it as JSON (seed {r['seed']}; "
        "`report.json` beside this file holds the full output). Heads are named LAYER.HEAD, "
        "counting from 0. The example prompts in `resources/prompts.json` show each circuit.",
        "",
        "## Induction",
        "",
        f"On {ind['sequences']} fresh random sequences of {ind['periods'][0]}-"
        f"{ind['periods'][1]} words repeated once:",
        "",
        f"- Loss on the first half: {ind['loss_first_half']:.2f} nats (chance: ln "
        f"{ind['word_list_size']} = {ind['chance_loss']:.2f}); on the repeated half: "
        f"{ind['loss_repeated_half']:.3f} nats.",
        f"- Induction heads (induction score >= {INDUCTION_THRESHOLD}): "
        f"{_heads(ind['induction_heads'])}; the best is {ind['best_induction_head']['head']} "
        f"(score {ind['best_induction_head']['score']:.2f}). Select a token in the second half: "
        "the head looks at the token after the earlier copy of that token.",
        f"- Previous-token heads (score >= {PREV_THRESHOLD}): "
        f"{_heads(ind['previous_token_heads'])}. They sit below the induction heads and feed "
        "them: zero-ablating them raises the repeated half's loss to "
        f"{ind['loss_repeated_half_prev_heads_ablated']:.2f} nats.",
        "- Zero-ablating the induction heads raises the repeated half's loss by "
        f"{ind['ablation_loss_increase']:.2f} nats (to {ind['loss_repeated_half_ablated']:.2f}); "
        f"one at a time: {each}.",
    ]
    if longer:
        lines.append(
            f"- Longer periods ({longer['periods'][0]}-{longer['periods'][1]} words): repeated-half "
            f"loss {longer['loss_repeated_half']:.2f} nats (first half "
            f"{longer['loss_first_half']:.2f})."
        )
    anyw = r.get("induction_any_words")
    if anyw:
        lines.append(
            f"- Sequences of any of the {anyw['word_list_size']} vocabulary words (function "
            f'words such as " the" and " to" too): repeated-half loss '
            f"{anyw['loss_repeated_half']:.2f} nats (first half {anyw['loss_first_half']:.2f})."
        )
    lines += [
        "",
        "## Indirect object identification",
        "",
        f"On {io['prompts']} prompts whose name pair and place/object pair never occur together "
        "in training (eight templates, both name orders):",
        "",
        f"- The indirect object beats the subject in {io['accuracy']:.0%} of prompts (it is the "
        f"top prediction in {io['top1_accuracy']:.0%}); mean logit difference "
        f"{io['mean_logit_diff']:.2f}, smallest {io['min_logit_diff']:.2f}.",
        f"- Heads ranked by how much zero-ablating each alone lowers the logit difference: "
        f"{ranking}.",
        f"- Zero-ablating the top {len(io['top_heads'])} ({_heads(io['top_heads'])}) together "
        f"lowers it by {io['logit_diff_drop_top_heads']:.2f} to "
        f"{io['mean_logit_diff_top_heads_ablated']:.2f} (the indirect object then wins in "
        f"{io['accuracy_top_heads_ablated']:.0%}).",
        '- Where those heads look from the final " to" (mean attention):',
    ]
    for h, a in io["top_heads_attention_from_last_token"].items():
        where = f", mostly {a['elsewhere_mostly']!r}" if a.get("elsewhere_mostly") else ""
        lines.append(
            f"  - {h}: indirect object {a['indirect_object']:.2f}, subject (first mention) "
            f"{a['subject_first']:.2f}, subject (second mention) {a['subject_second']:.2f}, "
            f"itself {a['itself']:.2f}, elsewhere {a['elsewhere']:.2f}{where}."
        )
    lines += [
        "",
        "## Plain text",
        "",
        f"Mean loss on fresh templated sentences: {r['plain']['mean_loss']:.2f} nats.",
        "",
    ]
    if train_note:
        lines += ["## Training", "", train_note, ""]
    (Path(folder) / "README.md").write_text("\n".join(lines), encoding="utf-8")


def check(r: dict) -> list[str]:
    """The issue's requirements on a report; returns what fails (empty when all hold)."""
    ind, io = r["induction"], r["ioi"]
    fails = []
    if ind["loss_repeated_half"] > 0.5:
        fails.append(f"repeated-half loss {ind['loss_repeated_half']} > 0.5")
    if abs(ind["loss_first_half"] - ind["chance_loss"]) > 0.5:
        fails.append(f"first-half loss {ind['loss_first_half']} not near {ind['chance_loss']}")
    if max(max(row) for row in ind["induction_scores"]) < 0.5:
        fails.append("no head with induction score >= 0.5")
    if max(max(row) for row in ind["previous_token_scores"]) < 0.5:
        fails.append("no head with previous-token score >= 0.5")
    if ind["ablation_loss_increase"] < 1.0:
        fails.append(f"ablating induction heads adds only {ind['ablation_loss_increase']} nats")
    if io["accuracy"] < 0.95:
        fails.append(f"IOI accuracy {io['accuracy']} < 0.95")
    if io["mean_logit_diff"] < 2.0:
        fails.append(f"IOI mean logit difference {io['mean_logit_diff']} < 2")
    if io["logit_diff_drop_top_heads"] < max(1.0, 0.3 * io["mean_logit_diff"]):
        fails.append(
            f"ablating the top IOI heads lowers the logit diff by only "
            f"{io['logit_diff_drop_top_heads']}"
        )
    return fails
