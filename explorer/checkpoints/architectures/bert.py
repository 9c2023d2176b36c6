"""BERT: bidirectional, post-LN, learned + token-type positions; MLM head when present."""

from __future__ import annotations

from ...engine.spec import ModelSpec
from ..errors import CheckpointError
from .common import Config, Mapper

MODEL_TYPES = ("bert",)
DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "tie_word_embeddings": True,
    "position_embedding_type": "absolute",
}
PREFIXES = ("bert.", "")
MLM = "cls.predictions.transform.dense.weight"


def spec(cfg: Config, weights) -> ModelSpec:
    d, H = cfg.int("hidden_size"), cfg.int("num_attention_heads")
    if d % H:
        raise CheckpointError(f"config.json: hidden_size {d} is not a multiple of heads {H}")
    if cfg.get("position_embedding_type") != "absolute":
        raise CheckpointError("only absolute position embeddings are supported for BERT")
    has_mlm = MLM in weights
    tied = cfg.bool("tie_word_embeddings") or "cls.predictions.decoder.weight" not in weights
    return ModelSpec(
        n_layers=cfg.int("num_hidden_layers"),
        n_heads=H,
        d_model=d,
        d_head=d // H,
        d_mlp=cfg.int("intermediate_size"),
        vocab_size=cfg.int("vocab_size"),
        context_length=cfg.int("max_position_embeddings"),
        norm="layernorm",
        norm_eps=cfg.float("layer_norm_eps"),
        positions="learned",
        mlp="gelu",
        activation=cfg.activation("hidden_act", "gelu"),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        causal=False,
        post_ln=True,
        final_norm=False,
        embedding_norm=True,
        token_types=cfg.int("type_vocab_size"),
        lm_head="bert_mlm" if has_mlm else "none",
        unembed_bias=has_mlm,
        tied_embeddings=tied,
        architecture="bert",
    )


def load(m: Mapper, s: ModelSpec) -> None:
    e = "embeddings."
    m.put("wte.weight", e + "word_embeddings.weight")
    m.put("wpe.weight", e + "position_embeddings.weight")
    m.put("wtt.weight", e + "token_type_embeddings.weight")
    m.put("ln_emb.weight", e + "LayerNorm.weight")
    m.put("ln_emb.bias", e + "LayerNorm.bias")
    for l in range(s.n_layers):
        p, o = f"encoder.layer.{l}.", f"blocks.{l}."
        for ours, theirs in (("q", "query"), ("k", "key"), ("v", "value")):
            for wb in ("weight", "bias"):
                m.put(o + f"attn.{ours}.{wb}", p + f"attention.self.{theirs}.{wb}")
        for wb in ("weight", "bias"):
            m.put(o + f"attn.o.{wb}", p + f"attention.output.dense.{wb}")
            m.put(o + f"ln1.{wb}", p + f"attention.output.LayerNorm.{wb}")
            m.put(o + f"mlp.up.{wb}", p + f"intermediate.dense.{wb}")
            m.put(o + f"mlp.down.{wb}", p + f"output.dense.{wb}")
            m.put(o + f"ln2.{wb}", p + f"output.LayerNorm.{wb}")
    if s.lm_head == "bert_mlm":
        head = Mapper(m.src, m.expected)
        c = "cls.predictions."
        for wb in ("weight", "bias"):
            m.out[f"mlm_dense.{wb}"] = head.raw(c + f"transform.dense.{wb}")
            m.out[f"mlm_norm.{wb}"] = head.raw(c + f"transform.LayerNorm.{wb}")
        bias = c + "bias" if head.has(c + "bias") else c + "decoder.bias"
        m.out["unembed_b"] = head.raw(bias, (s.vocab_size,))
        if not s.tied_embeddings:
            m.out["unembed.weight"] = head.raw(c + "decoder.weight", (s.vocab_size, s.d_model))
