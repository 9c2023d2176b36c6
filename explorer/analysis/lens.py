"""Logit lens: read the residual stream at every layer boundary through the final norm and the
unembedding, as if the model stopped there.

Row 0 is the embedding (the input of layer 0), row l the output of layer l - 1 (the input of
layer l, Run.resid[l]), and the last row, n_layers, the output of the last layer — the model's
real prediction. Each cell holds the top token and its probability, and the probability of a
chosen target token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine import Cancelled, LoadedModel, Run
from ..engine.run import LOSS_CHUNK
from .common import array_json, check_token, need_lm_head


@dataclass
class LensResult:
    layers: list[str]  # row labels: "embed", "L0", ..., "L{n-1}" (output of that layer)
    tokens: list[str]  # the prompt's tokens as text (columns)
    top_ids: np.ndarray  # (L + 1, T) int
    top_probs: np.ndarray  # (L + 1, T)
    top_texts: list[list[str]]  # (L + 1, T)
    target: int | None = None
    target_text: str | None = None
    target_probs: np.ndarray | None = None  # (L + 1, T)
    target_ranks: np.ndarray | None = None  # (L + 1, T) int, 0 = the top token

    def to_json(self) -> dict:
        out = {
            "layers": self.layers,
            "tokens": self.tokens,
            "top_ids": self.top_ids.tolist(),
            "top_texts": self.top_texts,
            "top_probs": array_json(self.top_probs, 5),
            "target": self.target,
            "target_text": self.target_text,
        }
        if self.target_probs is not None:
            out["target_probs"] = array_json(self.target_probs, 6)
            out["target_ranks"] = self.target_ranks.tolist()
        return out


def lens_labels(n_layers: int) -> list[str]:
    return ["embed"] + [f"L{l}" for l in range(n_layers)]


@torch.inference_mode()
def logit_lens(lm: LoadedModel, run: Run, target: int | None = None, cancel=None) -> LensResult:
    """Top token, its probability and the target's probability at every layer and position."""
    need_lm_head(lm, "the logit lens")
    target = check_token(lm, target, "target")
    m = lm.model
    L, T = lm.spec.n_layers, run.n_tokens
    top_ids = np.zeros((L + 1, T), dtype=np.int64)
    top_probs = np.zeros((L + 1, T))
    t_probs = np.zeros((L + 1, T)) if target is not None else None
    t_ranks = np.zeros((L + 1, T), dtype=np.int64) if target is not None else None
    streams = list(run.resid) + [run.final_resid]
    for row, x in enumerate(streams):
        if cancel is not None and cancel():
            raise Cancelled()
        for a in range(0, T, LOSS_CHUNK):
            b = min(a + LOSS_CHUNK, T)
            logits = m.logits(m.final(x[a:b])).float()  # (P, vocab)
            probs = torch.softmax(logits, dim=-1)
            p, i = probs.max(-1)
            top_ids[row, a:b] = i.cpu().numpy()
            top_probs[row, a:b] = p.cpu().numpy()
            if target is not None:
                t_logit = logits[:, target : target + 1]
                t_probs[row, a:b] = probs[:, target].cpu().numpy()
                t_ranks[row, a:b] = (logits > t_logit).sum(-1).cpu().numpy()
    texts: dict[int, str] = {}

    def disp(i: int) -> str:
        if i not in texts:
            texts[i] = lm.tokenizer.display(i)
        return texts[i]

    return LensResult(
        layers=lens_labels(L),
        tokens=lm.tokenizer.displays(run.tokens.tolist()),
        top_ids=top_ids,
        top_probs=top_probs,
        top_texts=[[disp(int(i)) for i in row] for row in top_ids],
        target=target,
        target_text=None if target is None else disp(target),
        target_probs=t_probs,
        target_ranks=t_ranks,
    )
