"""Head roles: how much each head behaves like a previous-token, induction, duplicate-token or
attention-sink head on the current prompt.

All four scores are averages of attention weights taken from Run.layer_patterns (one layer at a
time), so they lie in [0, 1]:

- previous_token[l, h]  = mean over query positions i >= 1 of A[i, i-1].
- duplicate_token[l, h] = mean over queries i whose token occurred earlier of
                          sum of A[i, j] over the earlier positions j < i with token[j] == token[i].
- induction[l, h]       = mean over queries i in the repeated part of the sequence of
                          sum of A[i, j+1] over the earlier occurrences j of i's token in it:
                          attention from a repeated token to the token after its earlier
                          occurrence. Query i "repeats" position j (j + 1 < i) when token[i] ==
                          token[j] inside aligned equal spans of at least `min_repeat` tokens
                          (token[i-k..i-k+n] == token[j-k..j-k+n], n >= min_repeat).
- sink[l, h]            = mean over query positions i >= 1 of A[i, 0] (attention to the first
                          token, BOS where the tokenizer adds one); over all positions for a
                          bidirectional model.

When the prompt has no repeated span (no duplicate token) the induction (duplicate) score is
measured on a generated sequence instead: the prompt's first token followed by `random_length`
distinct random tokens, repeated twice, run under the same ablation. `induction_source` and
`duplicate_source` say which was used ("prompt" or "random").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine import Cancelled, LoadedModel, Run
from .common import AnalysisError, array_json

ROLES = ("previous_token", "induction", "duplicate_token", "sink")


@dataclass
class HeadRoles:
    previous_token: np.ndarray  # (L, H)
    induction: np.ndarray  # (L, H), nan when no query qualifies
    duplicate_token: np.ndarray  # (L, H)
    sink: np.ndarray  # (L, H)
    induction_source: str  # "prompt" | "random"
    duplicate_source: str  # "prompt" | "random"
    random_tokens: list[int] | None  # the generated sequence, when one was used
    n_induction_queries: int
    n_duplicate_queries: int

    def scores(self, role: str) -> np.ndarray:
        if role not in ROLES:
            raise AnalysisError(f"role must be one of {ROLES}, got {role!r}")
        return getattr(self, role)

    def top(self, role: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The k highest-scoring heads for a role as (layer, head, score), best first."""
        s = self.scores(role)
        flat = np.where(np.isfinite(s), s, -np.inf).ravel()
        order = np.argsort(-flat, kind="stable")[:k]
        H = s.shape[1]
        return [(int(i // H), int(i % H), float(s.flat[i])) for i in order if np.isfinite(flat[i])]

    def best_role(self) -> np.ndarray:
        """(L, H) index into ROLES of each head's highest score (for badges)."""
        stack = np.stack([np.nan_to_num(self.scores(r), nan=-1.0) for r in ROLES])
        return stack.argmax(0)

    def to_json(self) -> dict:
        return {
            "roles": list(ROLES),
            **{r: array_json(self.scores(r), 4) for r in ROLES},
            "induction_source": self.induction_source,
            "duplicate_source": self.duplicate_source,
            "random_tokens": self.random_tokens,
            "n_induction_queries": self.n_induction_queries,
            "n_duplicate_queries": self.n_duplicate_queries,
            "top": {r: [list(t) for t in self.top(r, 5)] for r in ROLES},
        }


def duplicate_mask(tokens) -> np.ndarray:
    """(T, T) bool: [i, j] when j < i and token[j] == token[i]."""
    t = np.asarray(tokens)
    eq = t[:, None] == t[None, :]
    return np.tril(eq, k=-1)


def induction_mask(tokens, min_repeat: int = 4) -> np.ndarray:
    """(T, T) bool: [i, j + 1] when query i repeats position j (see the module docstring)."""
    t = np.asarray(tokens)
    T = len(t)
    out = np.zeros((T, T), dtype=bool)
    for d in range(2, T):  # i = j + d; d >= 2 keeps the target j + 1 before i
        eq = t[d:] == t[:-d]  # eq[j] <=> token[j + d] == token[j]
        if not eq.any():
            continue
        # lengths of runs of equal tokens along this diagonal, spread over their members
        padded = np.concatenate(([False], eq, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= min_repeat:
                j = np.arange(a, b)
                out[j + d, j + 1] = True
    return out


def repeated_random_tokens(lm: LoadedModel, length: int = 20, first=None, seed: int = 0):
    """[first] + R + R with R `length` distinct random non-special tokens (first optional)."""
    s = lm.spec
    length = max(1, min(length, (s.context_length - 1) // 2))
    n = min(s.vocab_size, lm.tokenizer.vocab_size)
    banned = set(lm.tokenizer.special_ids) | ({int(first)} if first is not None else set())
    pool = np.array([i for i in range(n) if i not in banned])
    if len(pool) < length:
        raise AnalysisError("the vocabulary is too small for a random repeated sequence")
    rng = np.random.default_rng(seed)
    r = rng.choice(pool, size=length, replace=False).tolist()
    return ([] if first is None else [int(first)]) + r + r


@torch.inference_mode()
def _masked_scores(run: Run, mask: np.ndarray, cancel=None) -> tuple[np.ndarray, int]:
    """(L, H) mean over rows with any mask entry of the attention summed over the mask."""
    s = run.spec
    rows = np.flatnonzero(mask.any(1))
    out = np.full((s.n_layers, s.n_heads), np.nan)
    if len(rows) == 0:
        return out, 0
    m = torch.as_tensor(mask[rows], dtype=torch.float32)
    for l in range(s.n_layers):
        if cancel is not None and cancel():
            raise Cancelled()
        for c in run.head_chunks(len(rows)):
            p = run.layer_patterns(l, rows.tolist(), heads=c).cpu()  # (h, R, T)
            out[l, c] = (p * m).sum(-1).mean(-1).numpy()
    return out, len(rows)


@torch.inference_mode()
def head_roles(
    lm: LoadedModel,
    run: Run,
    min_repeat: int = 4,
    random_length: int = 20,
    seed: int = 0,
    cancel=None,
) -> HeadRoles:
    """Role scores of every head on this run's prompt (see the module docstring)."""
    s = lm.spec
    tokens = run.tokens.cpu().numpy()
    T = len(tokens)
    L, H = s.n_layers, s.n_heads
    prev = np.full((L, H), np.nan)
    sink = np.full((L, H), np.nan)
    first = 1 if s.causal else 0
    if T > first:
        for l in range(L):
            if cancel is not None and cancel():
                raise Cancelled()
            for c in run.head_chunks():
                p = run.layer_patterns(l, heads=c).cpu()  # (h, T, T)
                sink[l, c] = p[:, first:, 0].mean(-1).numpy()
                if T > 1:
                    i = torch.arange(1, T)
                    prev[l, c] = p[:, i, i - 1].mean(-1).numpy()

    random_run = None
    random_tokens = None
    random_length = max(random_length, min_repeat)

    def random():
        nonlocal random_run, random_tokens
        if random_run is None:
            random_tokens = repeated_random_tokens(lm, random_length, tokens[0], seed)
            random_run = lm.run(random_tokens, run.ablation, cancel=cancel)
        return random_run, np.asarray(random_tokens)

    ind_mask = induction_mask(tokens, min_repeat)
    ind_source, ind_run = "prompt", run
    if not ind_mask.any():
        ind_source = "random"
        ind_run, rt = random()
        ind_mask = induction_mask(rt, min_repeat)
    induction, n_ind = _masked_scores(ind_run, ind_mask, cancel)

    dup_mask = duplicate_mask(tokens)
    dup_source, dup_run = "prompt", run
    if not dup_mask.any():
        dup_source = "random"
        dup_run, rt = random()
        dup_mask = duplicate_mask(rt)
    duplicate, n_dup = _masked_scores(dup_run, dup_mask, cancel)
    return HeadRoles(
        previous_token=prev,
        induction=induction,
        duplicate_token=duplicate,
        sink=sink,
        induction_source=ind_source,
        duplicate_source=dup_source,
        random_tokens=random_tokens,
        n_induction_queries=n_ind,
        n_duplicate_queries=n_dup,
    )
