"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Per layer l, the heads' attention is averaged, the identity is added for the residual
connection and the rows renormalised:  Â_l = (mean_h A_l,h + I) / 2  (rows of A sum to 1).
Rollout through layers 0..l is the product  R_l = Â_l Â_(l-1) ... Â_0,  so R_l[i, j] says how
much of position i's representation after layer l comes from input token j, if information
only moved along attention edges. Rows of every R_l sum to 1.

For a selected position p the result holds R_l[p] for every layer (a layers x tokens map) and
R_(L-1)[p], the colouring of the prompt's tokens. Patterns are read with Run.layer_patterns,
one layer at a time. In a causal model only tokens 0..p are involved, so only that block of
the matrices is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine import Cancelled, LoadedModel, Run
from .common import array_json, check_position


@dataclass
class RolloutResult:
    position: int
    tokens: list[str]  # the prompt's tokens as text
    layers: np.ndarray  # (L, T): row l = R_l[position], rollout through layers 0..l
    add_residual: bool = True

    @property
    def scores(self) -> np.ndarray:
        """(T,) the rollout from the selected position through all layers: token colouring."""
        return self.layers[-1]

    def to_json(self) -> dict:
        return {
            "position": self.position,
            "tokens": self.tokens,
            "add_residual": self.add_residual,
            "scores": array_json(self.scores),
            "layers": array_json(self.layers),
        }


@torch.inference_mode()
def rollout_matrix(run: Run, n: int | None = None, add_residual: bool = True, cancel=None):
    """Yield (layer, R_l[:n, :n]) for every layer: the rollout among the first n positions
    (all when None). In a causal model these do not depend on later positions."""
    T = run.n_tokens
    n = T if n is None else n
    if n < T and not run.spec.causal:
        raise ValueError("a bidirectional model's rollout needs every position")
    R = None
    eye = torch.eye(n)
    for l in range(run.spec.n_layers):
        if cancel is not None and cancel():
            raise Cancelled()
        A = run.mean_pattern(l, list(range(n)) if n < T else None)[:, :n].cpu()
        if add_residual:
            A = A + eye
        A = A / A.sum(-1, keepdim=True)
        R = A if R is None else A @ R
        yield l, R


def attention_rollout(
    lm: LoadedModel,
    run: Run,
    position: int | None = None,
    add_residual: bool = True,
    cancel=None,
) -> RolloutResult:
    """Rollout from `position` (default: the last) for every layer; see the module docstring."""
    p = check_position(run, position)
    T = run.n_tokens
    n = p + 1 if lm.spec.causal else T
    layers = np.zeros((lm.spec.n_layers, T))
    for l, R in rollout_matrix(run, n, add_residual, cancel):
        layers[l, :n] = R[p].double().numpy()
    return RolloutResult(p, lm.tokenizer.displays(run.tokens.tolist()), layers, add_residual)
