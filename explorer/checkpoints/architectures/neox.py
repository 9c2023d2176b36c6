"""GPT-NeoX (Pythia): partial rotary, parallel residual, fused per-head q/k/v."""

from __future__ import annotations

from ...engine.spec import ModelSpec
from ..errors import CheckpointError
from .common import Config, Mapper, rope_settings

MODEL_TYPES = ("gpt_neox",)
DEFAULTS = {
    "vocab_size": 50432,
    "hidden_size": 6144,
    "num_hidden_layers": 44,
    "num_attention_heads": 64,
    "intermediate_size": 24576,
    "hidden_act": "gelu",
    "max_position_embeddings": 2048,
    "layer_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "use_parallel_residual": True,
    "attention_bias": True,
}
PREFIXES = ("gpt_neox.", "")


def spec(cfg: Config, weights) -> ModelSpec:
    d, H = cfg.int("hidden_size"), cfg.int("num_attention_heads")
    if d % H:
        raise CheckpointError(f"config.json: hidden_size {d} is not a multiple of heads {H}")
    rope = rope_settings(cfg, partial_default=0.25)
    d_head = d // H
    bias = cfg.bool("attention_bias")
    return ModelSpec(
        n_layers=cfg.int("num_hidden_layers"),
        n_heads=H,
        d_model=d,
        d_head=d_head,
        d_mlp=cfg.int("intermediate_size"),
        vocab_size=cfg.int("vocab_size"),
        context_length=cfg.int("max_position_embeddings"),
        norm="layernorm",
        norm_eps=cfg.float("layer_norm_eps"),
        positions="rotary",
        rotary_dim=max(2, int(d_head * rope["partial"]) // 2 * 2),
        rope_theta=rope["rope_theta"],
        rope_scaling=rope["rope_scaling"],
        rope_scaling_params=rope["rope_scaling_params"],
        mlp="gelu",
        activation=cfg.activation("hidden_act", "gelu"),
        parallel_residual=cfg.bool("use_parallel_residual"),
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=True,
        tied_embeddings=cfg.bool("tie_word_embeddings") or "embed_out.weight" not in weights,
        architecture="gpt_neox",
    )


def load(m: Mapper, s: ModelSpec) -> None:
    H, dh, d = s.n_heads, s.d_head, s.d_model
    m.put("wte.weight", "embed_in.weight")
    for l in range(s.n_layers):
        p, o = f"layers.{l}.", f"blocks.{l}."
        for ln, ours in (("input_layernorm", "ln1"), ("post_attention_layernorm", "ln2")):
            m.put(o + ours + ".weight", p + ln + ".weight")
            m.put(o + ours + ".bias", p + ln + ".bias")
        # rows are laid out (head, q|k|v, d_head)
        w = m.raw(p + "attention.query_key_value.weight", (3 * d, d)).view(H, 3, dh, d)
        for i, name in enumerate("qkv"):
            m.put_value(o + f"attn.{name}.weight", w[:, i].reshape(H * dh, d))
        if s.qkv_bias:
            b = m.raw(p + "attention.query_key_value.bias", (3 * d,)).view(H, 3, dh)
            for i, name in enumerate("qkv"):
                m.put_value(o + f"attn.{name}.bias", b[:, i].reshape(H * dh))
        m.put(o + "attn.o.weight", p + "attention.dense.weight")
        m.put(o + "attn.o.bias", p + "attention.dense.bias")
        m.put(o + "mlp.up.weight", p + "mlp.dense_h_to_4h.weight")
        m.put(o + "mlp.up.bias", p + "mlp.dense_h_to_4h.bias")
        m.put(o + "mlp.down.weight", p + "mlp.dense_4h_to_h.weight")
        m.put(o + "mlp.down.bias", p + "mlp.dense_4h_to_h.bias")
    m.put("ln_f.weight", "final_layer_norm.weight")
    m.put("ln_f.bias", "final_layer_norm.bias")
    if not s.tied_embeddings:
        m.out["unembed.weight"] = Mapper(m.src, m.expected).raw(
            "embed_out.weight", (s.vocab_size, d)
        )
