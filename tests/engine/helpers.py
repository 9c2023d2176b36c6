"""Reference computations with transformers for the engine tests."""

from __future__ import annotations

import contextlib

import torch

CAUSAL = [
    "gpt2",
    "gpt2-untied",
    "llama",
    "llama-gqa",
    "llama-gqa4",
    "llama-linear",
    "llama3-scaled",
    "mistral",
    "qwen2",
    "qwen3",
    "neox",
    "neox-seq",
    "neox-nobias",
]
ALL = CAUSAL + ["bert", "bert-mlm"]


@torch.no_grad()
def hf_forward(hf, ids, attentions: bool = False):
    """transformers forward on ids (T,) with batch 1."""
    return hf(torch.as_tensor(ids)[None], output_attentions=attentions)


def hf_output(t, out) -> torch.Tensor:
    """What our model's logits (or hidden states, for BertModel) should equal, (T, V|d)."""
    if t.lm.spec.has_lm_head:
        return out.logits[0]
    return out.last_hidden_state[0]


def our_output(run) -> torch.Tensor:
    return run.logits() if run.spec.has_lm_head else run.hidden.float()


def layers_of(hf):
    """The list of transformer blocks of a transformers model."""
    base = getattr(hf, "base_model", hf)
    for path in ("h", "layers", "encoder.layer"):
        obj = base
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise AttributeError(f"no layers in {type(hf).__name__}")


def out_proj(block):
    """The attention output projection, whose input is the concatenated head outputs z."""
    for path in ("attn.c_proj", "self_attn.o_proj", "attention.dense", "attention.output.dense"):
        obj = block
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise AttributeError(f"no output projection in {type(block).__name__}")


def attn_sublayer(block):
    """(module, kind): the module whose output is the attention sublayer's contribution."""
    for name in ("attn", "self_attn", "attention"):
        if hasattr(block, name):
            mod = getattr(block, name)
            # BERT adds the residual inside BertSelfOutput: zero its dense output instead
            return (mod.output.dense, "tensor") if hasattr(mod, "output") else (mod, "tuple")
    raise AttributeError(type(block).__name__)


def mlp_sublayer(block):
    if hasattr(block, "mlp"):
        return block.mlp
    return block.output.dense  # BERT: BertOutput.dense, before its residual + LayerNorm


@contextlib.contextmanager
def hf_head_ablation(hf, heads, mode: str, n_heads: int, d_head: int):
    """Zero or mean-replace heads' slices of the output projection's input (z)."""
    blocks = layers_of(hf)
    handles = []
    by_layer: dict = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    for l, hs in by_layer.items():

        def pre_hook(module, args, hs=hs):
            z = args[0].clone()  # (B, T, H*dh)
            for h in hs:
                sl = slice(h * d_head, (h + 1) * d_head)
                if mode == "zero":
                    z[..., sl] = 0
                else:
                    z[..., sl] = z[..., sl].mean(dim=1, keepdim=True)
            return (z,) + tuple(args[1:])

        handles.append(out_proj(blocks[l]).register_forward_pre_hook(pre_hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def hf_sublayer_ablation(hf, attn_layers=(), mlp_layers=()):
    """Make the attention / MLP sublayer of these layers add nothing to the residual."""
    blocks = layers_of(hf)
    handles = []

    def zero_tuple(module, args, output):
        if isinstance(output, tuple):
            return (torch.zeros_like(output[0]),) + tuple(output[1:])
        return torch.zeros_like(output)

    for l in attn_layers:
        mod, _ = attn_sublayer(blocks[l])
        handles.append(mod.register_forward_hook(zero_tuple))
    for l in mlp_layers:
        handles.append(mlp_sublayer(blocks[l]).register_forward_hook(zero_tuple))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
