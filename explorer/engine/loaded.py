"""LoadedModel: a model, its tokenizer and where it came from — what the app and CLI hold."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .generate import generate
from .interventions import Ablation
from .model import Transformer
from .run import Run
from .spec import ModelSpec
from .tokenizer import Tokenizer


class PromptError(ValueError):
    """A prompt the model cannot take: empty, or longer than its context window."""


@dataclass
class LoadedModel:
    model: Transformer
    tokenizer: Tokenizer
    name: str = "model"
    path: str = ""
    info: dict = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    @property
    def dtype(self) -> torch.dtype:
        return self.model.wte.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.wte.weight.device

    def encode(self, text: str, truncate: bool = False) -> list[int]:
        """Token ids of a prompt. Raises PromptError for an empty or over-long prompt,
        unless truncate is set, which keeps the last context_length tokens. Lone UTF-16
        surrogates (pasted from a broken clipboard) are read as U+FFFD: see clean_text."""
        return self.fit(self.tokenize(text), truncate)

    def tokenize(self, text: str) -> list[int]:
        """All token ids of a prompt, however long; PromptError when it has none."""
        if not isinstance(text, str):
            raise PromptError(f"the prompt must be text, not {type(text).__name__}")
        if not text:
            raise PromptError("the prompt is empty")
        if not text.strip():
            raise PromptError("the prompt is empty (it holds only white space)")
        ids = self.tokenizer.encode(text).ids
        if not ids:
            raise PromptError("the prompt has no tokens")
        return ids

    def fit(self, ids: list[int], truncate: bool = False) -> list[int]:
        """ids within the context window: the last context_length of them when truncate is
        set, else PromptError for too many."""
        n = self.spec.context_length
        if len(ids) > n:
            if not truncate:
                raise PromptError(
                    f"the prompt has {len(ids)} tokens; this model's context window is {n}"
                )
            ids = ids[-n:]
        return ids

    def run(self, ids, ablation: Ablation | None = None, cancel=None) -> Run:
        return Run(self.model, ids, ablation).compute(cancel)

    def generate(self, ids, n_new: int, ablation: Ablation | None = None, **kw) -> list[int]:
        return generate(self.model, ids, n_new, ablation, **kw)

    def describe(self) -> dict:
        s = self.spec
        return {
            "name": self.name,
            "architecture": s.architecture,
            "n_layers": s.n_layers,
            "n_heads": s.n_heads,
            "n_kv_heads": s.n_kv_heads,
            "d_model": s.d_model,
            "d_head": s.d_head,
            "vocab_size": s.vocab_size,
            "context_length": s.context_length,
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
        }
