"""Llama family: llama, mistral, qwen2, qwen3. Rotary, RMSNorm, SwiGLU, grouped-query attention;
qwen2 has q/k/v biases, qwen3 has q/k RMSNorm per head."""

from __future__ import annotations

from ...engine.spec import ModelSpec
from ..errors import CheckpointError
from .common import Config, Mapper, rope_settings, short

MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
_BASE = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
}
DEFAULTS = {
    "llama": _BASE,
    "mistral": {
        **_BASE,
        "intermediate_size": 14336,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "sliding_window": 4096,
    },
    "qwen2": {
        **_BASE,
        "vocab_size": 151936,
        "intermediate_size": 22016,
        "max_position_embeddings": 32768,
    },
    "qwen3": {
        **_BASE,
        "vocab_size": 151936,
        "intermediate_size": 22016,
        "max_position_embeddings": 32768,
        "head_dim": 128,
    },
}
PREFIXES = ("model.", "")


def spec(cfg: Config, weights) -> ModelSpec:
    kind = cfg.get("model_type")
    d, H = cfg.int("hidden_size"), cfg.int("num_attention_heads")
    Hkv = cfg.int("num_key_value_heads", H)
    d_head = cfg.int("head_dim", d // H if d % H == 0 else None)
    rope = rope_settings(cfg)
    window = 0
    if kind == "mistral":
        window = cfg.get("sliding_window") or 0
    elif cfg.get("use_sliding_window", False):
        types = cfg.get("layer_types") or []
        if any(t != "full_attention" for t in types):
            raise CheckpointError("per-layer sliding-window attention is not supported yet")
    if not isinstance(window, int) or isinstance(window, bool) or window < 0:
        raise CheckpointError(
            f"config.json: sliding_window must be an integer, got {short(window)}"
        )
    bias = cfg.bool("attention_bias")
    return ModelSpec(
        n_layers=cfg.int("num_hidden_layers"),
        n_heads=H,
        n_kv_heads=Hkv,
        d_model=d,
        d_head=d_head,
        d_mlp=cfg.int("intermediate_size"),
        vocab_size=cfg.int("vocab_size"),
        context_length=cfg.int("max_position_embeddings"),
        norm="rmsnorm",
        norm_eps=cfg.float("rms_norm_eps"),
        positions="rotary",
        rotary_dim=int(d_head * rope["partial"]) // 2 * 2,
        rope_theta=rope["rope_theta"],
        rope_scaling=rope["rope_scaling"],
        rope_scaling_params=rope["rope_scaling_params"],
        mlp="gated",
        activation=cfg.activation("hidden_act", "silu"),
        qkv_bias=bias or kind == "qwen2",
        out_bias=bias,
        mlp_bias=cfg.bool("mlp_bias") if kind == "llama" else False,
        qk_norm=kind == "qwen3",
        tied_embeddings=cfg.bool("tie_word_embeddings") or "lm_head.weight" not in weights,
        sliding_window=window,
        architecture=kind,
    )


def load(m: Mapper, s: ModelSpec) -> None:
    m.put("wte.weight", "embed_tokens.weight")
    for l in range(s.n_layers):
        p, o = f"layers.{l}.", f"blocks.{l}."
        m.put(o + "ln1.weight", p + "input_layernorm.weight")
        m.put(o + "ln2.weight", p + "post_attention_layernorm.weight")
        for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
            m.put(o + f"attn.{ours}.weight", p + f"self_attn.{theirs}.weight")
            m.put(o + f"attn.{ours}.bias", p + f"self_attn.{theirs}.bias")
        m.put(o + "attn.q_norm.weight", p + "self_attn.q_norm.weight")
        m.put(o + "attn.k_norm.weight", p + "self_attn.k_norm.weight")
        for ours, theirs in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
            m.put(o + f"mlp.{ours}.weight", p + f"mlp.{theirs}.weight")
            m.put(o + f"mlp.{ours}.bias", p + f"mlp.{theirs}.bias")
    m.put("ln_f.weight", "norm.weight")
    if not s.tied_embeddings:
        m.out["unembed.weight"] = Mapper(m.src, m.expected).raw(
            "lm_head.weight", (s.vocab_size, s.d_model)
        )
