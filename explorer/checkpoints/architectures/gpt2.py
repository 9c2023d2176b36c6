"""GPT-2: learned positions, pre-LN, GELU MLP, Conv1D weights stored (in, out)."""

from __future__ import annotations

from ...engine.spec import ModelSpec
from ..errors import CheckpointError
from .common import Config, Mapper

MODEL_TYPES = ("gpt2",)
DEFAULTS = {
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "tie_word_embeddings": True,
}
PREFIXES = ("transformer.", "")


def spec(cfg: Config, weights) -> ModelSpec:
    d, H = cfg.int("n_embd"), cfg.int("n_head")
    if cfg.bool("scale_attn_by_inverse_layer_idx") or not cfg.bool("scale_attn_weights"):
        raise CheckpointError("GPT-2 attention scaling variants are not supported")
    if d % H:
        raise CheckpointError(f"config.json: n_embd {d} is not a multiple of n_head {H}")
    tied = cfg.bool("tie_word_embeddings") or "lm_head.weight" not in weights
    return ModelSpec(
        n_layers=cfg.int("n_layer"),
        n_heads=H,
        d_model=d,
        d_head=d // H,
        d_mlp=cfg.int("n_inner", 4 * d),
        vocab_size=cfg.int("vocab_size"),
        context_length=cfg.int("n_positions"),
        norm="layernorm",
        norm_eps=cfg.float("layer_norm_epsilon"),
        positions="learned",
        mlp="gelu",
        activation=cfg.activation("activation_function", "gelu_new"),
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        tied_embeddings=tied,
        architecture="gpt2",
    )


def load(m: Mapper, s: ModelSpec) -> None:
    d = s.d_model
    m.put("wte.weight", "wte.weight")
    m.put("wpe.weight", "wpe.weight")
    T = lambda t: t.transpose(0, 1) if t.dim() == 2 else t  # noqa: E731  Conv1D: (in, out)
    for l in range(s.n_layers):
        p, o = f"h.{l}.", f"blocks.{l}."
        for ln, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
            m.put(o + ours + ".weight", p + ln + ".weight")
            m.put(o + ours + ".bias", p + ln + ".bias")
        w = m.raw(p + "attn.c_attn.weight", (d, 3 * d))
        b = m.raw(p + "attn.c_attn.bias", (3 * d,))
        for i, name in enumerate("qkv"):
            m.put_value(o + f"attn.{name}.weight", w[:, i * d : (i + 1) * d].T)
            m.put_value(o + f"attn.{name}.bias", b[i * d : (i + 1) * d])
        m.put(o + "attn.o.weight", p + "attn.c_proj.weight", T)
        m.put(o + "attn.o.bias", p + "attn.c_proj.bias")
        m.put(o + "mlp.up.weight", p + "mlp.c_fc.weight", T)
        m.put(o + "mlp.up.bias", p + "mlp.c_fc.bias")
        m.put(o + "mlp.down.weight", p + "mlp.c_proj.weight", T)
        m.put(o + "mlp.down.bias", p + "mlp.c_proj.bias")
    m.put("ln_f.weight", "ln_f.weight")
    m.put("ln_f.bias", "ln_f.bias")
    if not s.tied_embeddings:
        m.out["unembed.weight"] = Mapper(m.src, m.expected).raw("lm_head.weight", (s.vocab_size, d))
