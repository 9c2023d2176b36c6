"""What the analyses share: the metric a sweep or a patching run measures, per-head outputs
recomputed from a Run, and small helpers for positions and JSON.

Everything here works on a LoadedModel (model + tokenizer) and a Run from the engine; nothing
imports Qt. Tensors stay in torch while computing; results hold numpy arrays and lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..engine import LoadedModel, Run

METRICS = ("logit_diff", "loss", "kl")


class AnalysisError(ValueError):
    """An analysis that cannot be done on this model or with these arguments; the message
    is one readable line (the CLI prints it, a dock shows it)."""


def check_position(run: Run, position: int | None) -> int:
    """A position in the prompt; None means the last one, negative counts from the end."""
    T = run.n_tokens
    if position is None:
        return T - 1
    p = int(position)
    if p < 0:
        p += T
    if not 0 <= p < T:
        raise AnalysisError(f"position {position} is outside the prompt (0..{T - 1})")
    return p


def check_token(lm: LoadedModel, token: int | None, what: str = "token") -> int | None:
    if token is None:
        return None
    n = lm.spec.vocab_size
    if not 0 <= int(token) < n:
        raise AnalysisError(f"{what} id {token} is outside the vocabulary (0..{n - 1})")
    return int(token)


def need_lm_head(lm: LoadedModel, what: str) -> None:
    if not lm.spec.has_lm_head:
        raise AnalysisError(f"{what} needs a language-model head; this model has none")


@dataclass(frozen=True, eq=False)
class Metric:
    """One number measured on a run's logits at some positions (averaged over them).

    kind "logit_diff": logit[target] - logit[foil] (just logit[target] without a foil).
    kind "loss":       -log p(next token), the token to predict at each position in `targets`.
    kind "kl":         KL(reference || run) = sum p_ref (log p_ref - log p_run), with the
                       reference log-probabilities taken from a run (the clean or base run).
    Build one with Metric.logit_diff, Metric.loss or Metric.kl.
    """

    kind: str
    positions: tuple[int, ...]
    target: int | None = None
    foil: int | None = None
    targets: tuple[int, ...] = ()
    reference: torch.Tensor | None = field(default=None, repr=False)  # (P, vocab) log-probs

    @classmethod
    def logit_diff(cls, position: int, target: int, foil: int | None = None) -> Metric:
        return cls("logit_diff", (int(position),), int(target), None if foil is None else int(foil))

    @classmethod
    def loss(cls, run: Run, positions, targets=None) -> Metric:
        """Loss of the next token at each position (mean); targets default to the prompt's
        own next tokens, so the last position needs an explicit target."""
        positions = (positions,) if isinstance(positions, int) else tuple(positions)
        positions = tuple(check_position(run, p) for p in positions)
        if not positions:
            raise AnalysisError("the loss metric needs at least one position")
        if targets is None:
            if max(positions) >= run.n_tokens - 1:
                raise AnalysisError(
                    "the last position has no next token in the prompt: give a target token"
                )
            targets = [int(run.tokens[p + 1]) for p in positions]
        targets = (targets,) if isinstance(targets, int) else tuple(int(t) for t in targets)
        if len(targets) != len(positions):
            raise AnalysisError("the loss metric needs one target per position")
        return cls("loss", positions, targets=targets)

    @classmethod
    @torch.inference_mode()
    def kl(cls, reference: Run, positions) -> Metric:
        """KL divergence from the reference run's next-token distribution at these positions."""
        positions = (positions,) if isinstance(positions, int) else tuple(positions)
        positions = tuple(check_position(reference, p) for p in positions)
        ref = F.log_softmax(reference.logits(list(positions)), dim=-1)
        return cls("kl", positions, reference=ref)

    def describe(self, tokenizer=None) -> str:
        """The metric in words; token ids are shown as text when a tokenizer is given."""
        pos = ",".join(map(str, self.positions))

        def tok(i):
            return repr(tokenizer.display(i)) if tokenizer is not None else str(i)

        if self.kind == "logit_diff":
            foil = "" if self.foil is None else f" - logit[{tok(self.foil)}]"
            return f"logit[{tok(self.target)}]{foil} at {pos}"
        if self.kind == "loss":
            return f"loss of the next token at {pos}"
        return f"KL(reference || run) at {pos}"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "positions": list(self.positions),
            "target": self.target,
            "foil": self.foil,
            "targets": list(self.targets),
        }

    @torch.inference_mode()
    def value(self, logits: torch.Tensor) -> float:
        """The metric from logits (P, vocab) at self.positions, in that order."""
        logits = logits.float()
        if self.kind == "logit_diff":
            v = logits[:, self.target]
            if self.foil is not None:
                v = v - logits[:, self.foil]
        elif self.kind == "loss":
            logp = F.log_softmax(logits, dim=-1)
            idx = torch.as_tensor(self.targets, device=logp.device)[:, None]
            v = -logp.gather(1, idx)[:, 0]
        else:
            logp = F.log_softmax(logits, dim=-1)
            ref = self.reference.to(logp.device)
            v = (ref.exp() * (ref - logp)).sum(-1)
        return float(v.mean())

    def of_run(self, run: Run) -> float:
        return self.value(run.logits(list(self.positions)))

    @torch.inference_mode()
    def of_final_resid(self, model, x: torch.Tensor) -> float:
        """The metric from a final residual stream x (T, d) or (1, T, d)."""
        x = x.reshape(-1, x.shape[-1])[list(self.positions)]
        return self.value(model.logits(model.final(x)))


@torch.inference_mode()
def head_outputs(lm: LoadedModel, run: Run, layer: int, positions=None) -> torch.Tensor:
    """Each head's output z of one layer, (H, P, dh) in float32, before W_O.

    Rebuilt from the run: z = pattern @ V with V from the layer's own modules reading
    Run.resid[layer], and the run's ablation of this layer's heads applied (zero, or the mean
    the run recorded). positions: the query positions (all when None).
    """
    s = lm.spec
    block = lm.model.blocks[layer]
    x = block.attn_input(run.resid[layer][None])  # (1, T, d)
    T = x.shape[1]
    v = block.attn.v(x).view(1, T, s.n_kv_heads, s.d_head).transpose(1, 2)[0]  # (Hkv, T, dh)
    v = v.float().repeat_interleave(s.n_heads // s.n_kv_heads, dim=0)  # (H, T, dh)
    pattern = run.layer_patterns(layer, positions)  # (H, P, T)
    z = pattern @ v  # (H, P, dh)
    heads, attn_off, _ = run.ablation.layer(layer)
    if heads and not attn_off:
        z = z.clone()
        for h, mode in heads:
            if mode == "zero":
                z[h] = 0
            else:
                z[h] = run.head_means[layer][h].float()
    return z


def finite(x) -> float | None:
    """A float for JSON: None for nan/inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def array_json(a: np.ndarray, digits: int = 6):
    """A numpy array as nested lists with nan -> None, rounded for readable JSON."""
    a = np.asarray(a, dtype=np.float64)
    out = np.round(a, digits).astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()
