"""A Run: one prompt through the model, keeping what any panel may ask for later.

Per layer it keeps the residual input and the queries and keys (L x T x d each), never the
L x H x T x T attention: pattern(layer, head) is rebuilt on demand from Q and K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .interventions import Ablation
from .model import Transformer, key_mask

LOSS_CHUNK = 128  # positions per logits chunk: vocab x T logits are large
PATTERN_BUDGET = 1 << 28  # bytes of float32 patterns computed at once (256 MiB)


@dataclass
class TopK:
    ids: list[int]
    probs: list[float]
    logits: list[float]


class Run:
    def __init__(self, model: Transformer, tokens, ablation: Ablation | None = None):
        self.model = model
        self.spec = model.spec
        device = next(model.parameters()).device
        self.tokens = torch.as_tensor(tokens, dtype=torch.long, device=device).reshape(-1)
        self.ablation = ablation or Ablation()
        self.resid: list[torch.Tensor] = []  # residual input of each layer, (T, d)
        self.q: list[torch.Tensor] = []  # (H, T, dh)
        self.k: list[torch.Tensor] = []  # (Hkv, T, dh)
        self.head_means: list[torch.Tensor] = []  # (H, dh), output means (mean ablation)
        self.final_resid: torch.Tensor | None = None  # (T, d)
        self.hidden: torch.Tensor | None = None  # after the final norm, (T, d)
        self.recomputed_from: int = 0  # the first layer this run computed itself
        self._loss: torch.Tensor | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    # --- computing ----------------------------------------------------------------------

    @torch.inference_mode()
    def compute(self, cancel=None, start: int = 0, x=None) -> Run:
        m = self.model
        positions = torch.arange(self.n_tokens, device=self.tokens.device)
        if x is None:
            x = m.embed(self.tokens[None], positions)
        del self.resid[start:], self.q[start:], self.k[start:], self.head_means[start:]
        records = []

        def on_layer(l, x_in, record):
            self.resid.append(x_in[0])
            records.append(record)

        x = m.layers(x, positions, start, self.ablation, on_layer=on_layer, cancel=cancel)
        for r in records:
            self.q.append(r["q"][0])
            self.k.append(r["k"][0])
            self.head_means.append(r["mean_z"])
        self.final_resid = x[0]
        self.hidden = m.final(x)[0]
        self.recomputed_from = start
        return self

    def rerun(self, ablation: Ablation, cancel=None) -> Run:
        """A new Run under another ablation, recomputing only from the first changed layer.

        The layers before it share this run's cached tensors (no copies).
        """
        start = self.ablation.first_difference(ablation)
        new = Run(self.model, self.tokens, ablation)
        if start is None:
            start = self.spec.n_layers
        new.resid, new.q, new.k = self.resid[:start], self.q[:start], self.k[:start]
        new.head_means = self.head_means[:start]
        if start == self.spec.n_layers:
            new.final_resid, new.hidden, new._loss = self.final_resid, self.hidden, self._loss
            new.recomputed_from = start
            return new
        return new.compute(cancel, start, self.resid[start][None])

    # --- reading ------------------------------------------------------------------------

    @torch.inference_mode()
    def pattern(self, layer: int, head: int) -> torch.Tensor:
        """softmax(q k^T / sqrt(d_k)) of one head, (T, T) float32, rows sum to 1."""
        s = self.spec
        if not (0 <= layer < s.n_layers and 0 <= head < s.n_heads):
            raise IndexError(f"no head {layer}.{head} in a {s.n_layers}x{s.n_heads} model")
        q = self.q[layer][head].float()
        k = self.k[layer][head // (s.n_heads // s.n_kv_heads)].float()
        scores = (q @ k.T) * s.scale
        mask = self._mask(scores.shape[0], scores.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def head_chunks(self, rows: int | None = None) -> list[slice]:
        """Head ranges whose (heads, rows, T) float32 patterns fit in PATTERN_BUDGET bytes,
        so that many heads x long prompts never hold every head's T x T at once."""
        H, T = self.spec.n_heads, self.n_tokens
        per = max(1, PATTERN_BUDGET // (4 * T * (rows or T)))
        return [slice(a, min(a + per, H)) for a in range(0, H, per)]

    @torch.inference_mode()
    def mean_pattern(self, layer: int, queries=None) -> torch.Tensor:
        """The mean over heads of one layer's patterns, (T, T) or (len(queries), T), summed a
        chunk of heads at a time."""
        rows = None if queries is None else len(queries)
        total = None
        for c in self.head_chunks(rows):
            part = self.layer_patterns(layer, queries, heads=c).sum(0)
            total = part if total is None else total + part
        return total / self.spec.n_heads

    @torch.inference_mode()
    def layer_patterns(self, layer: int, queries=None, heads=None) -> torch.Tensor:
        """Heads of one layer (all, or a slice), (H, T, T) or (H, len(queries), T).
        For long prompts iterate over head_chunks() rather than asking for all heads."""
        s = self.spec
        group = s.n_heads // s.n_kv_heads
        q = self.q[layer].float()
        k = self.k[layer].float().repeat_interleave(group, dim=0)
        if heads is not None:
            q, k = q[heads], k[heads]
        mask = self._mask(self.n_tokens, q.device)
        if queries is not None:
            q = q[:, queries]
            mask = None if mask is None else mask[queries]
        scores = (q @ k.transpose(1, 2)) * s.scale
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def _mask(self, T: int, device):
        return key_mask(self.spec, T, T, device)

    @torch.inference_mode()
    def logits(self, positions=None) -> torch.Tensor:
        """Logits (P, vocab) in float32 for the positions asked (all when None)."""
        h = self.hidden if positions is None else self.hidden[torch.as_tensor(positions)]
        return self.model.logits(h).float()

    @torch.inference_mode()
    def loss(self) -> torch.Tensor:
        """Per-position loss of the actual next token, (T,); the last position is nan.
        All nan for a model that does not predict the next token (BERT)."""
        if self._loss is None:
            T = self.n_tokens
            out = torch.full((T,), float("nan"))
            last = T - 1 if self.spec.causal and self.spec.has_lm_head else 0
            for a in range(0, last, LOSS_CHUNK):
                b = min(a + LOSS_CHUNK, T - 1)
                logp = F.log_softmax(self.logits(range(a, b)), dim=-1)
                out[a:b] = -logp.gather(1, self.tokens[a + 1 : b + 1, None]).squeeze(1).cpu()
            self._loss = out
        return self._loss

    @torch.inference_mode()
    def position_stats(self, k: int = 10):
        """Loss (T,), top-k ids (T, k) and probs (T, k) at every position, in one chunked pass.

        For a causal model the loss is of the next token; otherwise (BERT) it is nan.
        """
        T = self.n_tokens
        k = min(k, self.spec.vocab_size)
        loss = torch.full((T,), float("nan"))
        ids = torch.zeros((T, k), dtype=torch.long)
        probs = torch.zeros((T, k))
        for a in range(0, T, LOSS_CHUNK):
            b = min(a + LOSS_CHUNK, T)
            logp = F.log_softmax(self.logits(range(a, b)), dim=-1)
            p, i = logp.topk(k, dim=-1)
            ids[a:b], probs[a:b] = i.cpu(), p.exp().cpu()
            if self.spec.causal:
                n = min(b, T - 1) - a
                if n > 0:
                    nxt = self.tokens[a + 1 : a + 1 + n, None]
                    loss[a : a + n] = -logp[:n].gather(1, nxt).squeeze(1).cpu()
        if self.spec.causal:
            self._loss = loss
        return loss, ids, probs

    @torch.inference_mode()
    def top_k(self, position: int, k: int = 10) -> TopK:
        logits = self.logits([position])[0]
        probs = torch.softmax(logits, dim=-1)
        p, ids = probs.topk(min(k, logits.shape[0]))
        return TopK(ids.tolist(), p.tolist(), logits[ids].tolist())

    @torch.inference_mode()
    def probs(self, position: int) -> torch.Tensor:
        return torch.softmax(self.logits([position])[0], dim=-1)
