"""ModelSpec: the architecture facts the one transformer implementation is built from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rotary")
MLPS = ("gelu", "gated")
ACTIVATIONS = ("gelu", "gelu_tanh", "silu", "relu")
ROPE_SCALINGS = ("none", "linear", "llama3")
LM_HEADS = ("linear", "bert_mlm", "none")
MAX_SIZE = 2**31 - 1  # no dimension of a real model comes near this; larger ones are errors


class SpecError(ValueError):
    """A spec whose numbers cannot describe a model."""


@dataclass(frozen=True)
class ModelSpec:
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    vocab_size: int
    context_length: int
    n_kv_heads: int = 0  # 0 means n_heads (no grouped-query attention)
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    positions: str = "learned"
    rotary_dim: int = 0  # 0 means d_head (full rotary); < d_head is partial rotary
    rope_theta: float = 10000.0
    rope_scaling: str = "none"
    # llama3: (factor, low_freq_factor, high_freq_factor, original_context); linear: (factor,)
    rope_scaling_params: tuple = ()
    mlp: str = "gelu"
    activation: str = "gelu"
    parallel_residual: bool = False
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = True  # LayerNorm with a bias (RMSNorm never has one)
    qk_norm: bool = False
    tied_embeddings: bool = False
    causal: bool = True
    post_ln: bool = False  # BERT: x = LN(x + sublayer(x))
    final_norm: bool = True
    embedding_norm: bool = False  # BERT: LayerNorm right after the embeddings
    token_types: int = 0  # BERT token-type embeddings (type 0 is used)
    position_offset: int = 0
    lm_head: str = "linear"
    unembed_bias: bool = False
    sliding_window: int = 0  # 0 means none
    attn_scale: float = 0.0  # 0 means 1/sqrt(d_head)
    architecture: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        for name in ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "vocab_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise SpecError(f"{name} must be a positive integer, got {v!r}")
        c = self.context_length
        if not isinstance(c, int) or isinstance(c, bool) or c <= 0:
            raise SpecError(f"context_length must be a positive integer, got {c!r}")
        for name in ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "vocab_size",
                     "context_length", "n_kv_heads", "token_types", "sliding_window"):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, int) and v > MAX_SIZE:
                raise SpecError(f"{name} {v:.3g} is larger than any model's (at most {MAX_SIZE})")
        if self.n_kv_heads == 0:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.n_kv_heads <= 0 or self.n_heads % self.n_kv_heads:
            raise SpecError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.positions == "rotary" and self.rotary_dim == 0:
            object.__setattr__(self, "rotary_dim", self.d_head)
        if self.positions == "rotary" and (
            self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.d_head
        ):
            raise SpecError(
                f"rotary_dim {self.rotary_dim} must be even and <= d_head {self.d_head}"
            )
        for name, allowed in (
            ("norm", NORMS),
            ("positions", POSITIONS),
            ("mlp", MLPS),
            ("activation", ACTIVATIONS),
            ("rope_scaling", ROPE_SCALINGS),
            ("lm_head", LM_HEADS),
        ):
            if getattr(self, name) not in allowed:
                raise SpecError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (isinstance(self.norm_eps, (int, float)) and 0 < self.norm_eps < math.inf):
            raise SpecError(f"norm_eps must be positive, got {self.norm_eps!r}")
        if self.sliding_window < 0:
            raise SpecError("sliding_window must be >= 0")

    @property
    def scale(self) -> float:
        return self.attn_scale or self.d_head**-0.5

    @property
    def has_lm_head(self) -> bool:
        return self.lm_head != "none"

    def n_params(self) -> int:
        """Approximate parameter count (weights only), for the status bar and memory checks."""
        d, L = self.d_model, self.n_layers
        attn = d * self.d_head * (self.n_heads * 2 + self.n_kv_heads * 2)
        mlp = d * self.d_mlp * (3 if self.mlp == "gated" else 2)
        emb = self.vocab_size * d * (1 if self.tied_embeddings or not self.has_lm_head else 2)
        if self.positions == "learned":
            emb += self.context_length * d
        return L * (attn + mlp) + emb

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
