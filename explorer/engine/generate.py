"""Greedy or sampled continuation with a KV cache, under an ablation."""

from __future__ import annotations

import torch

from .interventions import Ablation
from .model import Cancelled, Transformer


@torch.inference_mode()
def generate(
    model: Transformer,
    tokens,
    n_new: int,
    ablation: Ablation | None = None,
    greedy: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    cancel=None,
    stop_ids=(),
) -> list[int]:
    """The n_new tokens that follow `tokens`.

    Mean ablation uses each head's mean output over the prompt's positions for every new token,
    so the ablation stays the same intervention while the text grows.
    """
    s = model.spec
    if not s.causal or not s.has_lm_head:
        raise ValueError("generation needs a causal model with a language-model head")
    device = next(model.parameters()).device
    prompt = torch.as_tensor(tokens, dtype=torch.long, device=device).reshape(1, -1)
    room = s.context_length - prompt.shape[1]
    n_new = max(0, min(n_new, room))
    ablation = ablation or Ablation()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    caches = [[None, None] for _ in range(s.n_layers)]
    means: list = [None] * s.n_layers

    def record_means(l, x, record):
        records.append(record)

    records: list = []
    positions = torch.arange(prompt.shape[1], device=device)
    x = model.layers(
        model.embed(prompt, positions),
        positions,
        ablation=ablation,
        on_layer=record_means,
        cancel=cancel,
        caches=caches,
    )
    means = [r["mean_z"] for r in records]
    last = x[:, -1]
    return decode(model, last, prompt.shape[1], n_new, ablation, caches, means, gen, greedy,
                  temperature, top_k, cancel, stop_ids)  # fmt: skip


@torch.inference_mode()
def generate_from_run(
    run,
    n_new: int,
    greedy: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    cancel=None,
    stop_ids=(),
) -> list[int]:
    """Like generate(run.model, run.tokens, ..., run.ablation) but without a second prefill:
    the KV cache is built from the run's cached keys and residual inputs (only the values are
    projected again), and the first token comes from the run's final hidden state."""
    model, s = run.model, run.spec
    if not s.causal or not s.has_lm_head:
        raise ValueError("generation needs a causal model with a language-model head")
    n_new = max(0, min(n_new, s.context_length - run.n_tokens))
    caches = []
    for l, block in enumerate(model.blocks):
        if cancel is not None and cancel():
            raise Cancelled()
        x = block.attn_input(run.resid[l][None])  # (1, T, d)
        v = block.attn.v(x).view(1, run.n_tokens, s.n_kv_heads, s.d_head).transpose(1, 2)
        caches.append([run.k[l][None], v])
    gen = torch.Generator(device="cpu").manual_seed(seed)
    last = run.final_resid[None, -1]
    return decode(model, last, run.n_tokens, n_new, run.ablation, caches, run.head_means, gen,
                  greedy, temperature, top_k, cancel, stop_ids)  # fmt: skip


def decode(model, last, n_prompt, n_new, ablation, caches, means, gen, greedy, temperature, top_k,
           cancel, stop_ids) -> list[int]:  # fmt: skip
    """The token loop: last is the residual (1, d) after the final layer at the last position."""
    device = last.device
    x = last[:, None]
    out: list[int] = []
    for _ in range(n_new):
        logits = model.logits(model.final(x[:, -1])).float()[0]
        nxt = pick(logits, greedy, temperature, top_k, gen)
        out.append(nxt)
        if nxt in stop_ids or len(out) == n_new:
            break
        pos = torch.tensor([n_prompt + len(out) - 1], device=device)
        x = model.layers(
            model.embed(torch.tensor([[nxt]], device=device), pos),
            pos,
            ablation=ablation,
            cancel=cancel,
            caches=caches,
            head_means=means,
        )
    return out


def pick(logits, greedy, temperature, top_k, gen) -> int:
    if greedy or temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[0])).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1).cpu()
    return int(torch.multinomial(probs, 1, generator=gen))
