"""One transformer, built from a ModelSpec. Readable first: shapes in the comments.

Weights are stored the way torch.nn.Linear stores them (out, in). Architecture modules in
explorer/checkpoints map their checkpoint names onto the names used here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .interventions import Ablation
from .spec import ModelSpec


class Cancelled(Exception):
    """Raised between layers when the caller's cancel flag is set."""


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return {
        "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu,
        "relu": F.relu,
    }[name]


class Norm(nn.Module):
    def __init__(self, spec: ModelSpec, dim: int | None = None, rms: bool | None = None):
        super().__init__()
        dim = dim or spec.d_model
        self.rms = spec.norm == "rmsnorm" if rms is None else rms
        self.eps = spec.norm_eps
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)
        use_bias = not self.rms and spec.norm_bias
        self.bias = nn.Parameter(torch.zeros(dim), requires_grad=False) if use_bias else None

    def forward(self, x):
        if not self.rms:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        # computed in float32 as the reference implementations do
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def linear(d_in: int, d_out: int, bias: bool) -> nn.Linear:
    layer = nn.Linear(d_in, d_out, bias=bias)
    layer.requires_grad_(False)
    return layer


def embedding(n: int, d: int) -> nn.Embedding:
    # an uninitialised table: the weights are loaded or trained, and nn.init.normal_ on the
    # meta device costs ~1.7 s of lazy torch._dynamo imports at model load
    return nn.Embedding(n, d, _weight=torch.empty(n, d)).requires_grad_(False)


def rotary_inv_freq(spec: ModelSpec) -> torch.Tensor:
    dim = spec.rotary_dim
    # on the CPU even while a model is built on the meta device (meta ops import torch._dynamo)
    steps = torch.arange(0, dim, 2, dtype=torch.int64, device="cpu").float()
    inv = 1.0 / (spec.rope_theta ** (steps / dim))
    p = spec.rope_scaling_params
    if spec.rope_scaling == "linear":
        inv = inv / p[0]
    elif spec.rope_scaling == "llama3":
        factor, low, high, old_ctx = p
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old_ctx / low, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_ctx / high) * ~(wavelen > old_ctx / low)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin, rotary_dim: int):
    """x (B, H, T, dh); cos, sin (T, rotary_dim). Rotates the first rotary_dim features."""
    if rotary_dim == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    xr, xp = x[..., :rotary_dim], x[..., rotary_dim:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        s = spec
        self.spec = s
        self.q = linear(s.d_model, s.n_heads * s.d_head, s.qkv_bias)
        self.k = linear(s.d_model, s.n_kv_heads * s.d_head, s.qkv_bias)
        self.v = linear(s.d_model, s.n_kv_heads * s.d_head, s.qkv_bias)
        self.o = linear(s.n_heads * s.d_head, s.d_model, s.out_bias)
        if s.qk_norm:
            self.q_norm = Norm(s, s.d_head, rms=True)
            self.k_norm = Norm(s, s.d_head, rms=True)

    def qk(self, x, rope):
        """Queries (B, H, T, dh) and keys (B, Hkv, T, dh) after q/k norm and rotary."""
        s = self.spec
        B, T, _ = x.shape
        q = self.q(x).view(B, T, s.n_heads, s.d_head).transpose(1, 2)
        k = self.k(x).view(B, T, s.n_kv_heads, s.d_head).transpose(1, 2)
        if s.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            cos, sin = rope
            q = apply_rotary(q, cos, sin, s.rotary_dim)
            k = apply_rotary(k, cos, sin, s.rotary_dim)
        return q, k

    def forward(self, x, rope, heads=(), record=None, cache=None, head_means=None, z_patch=None):
        """x (B, T, d) -> (B, T, d). heads: ((head, mode), ...) to ablate.

        record: a dict that receives this layer's q, k and per-head output means.
        cache: [k, v] of earlier positions (generation); extended in place.
        head_means: fixed (H, dh) means for mean-ablation (generation after the prompt).
        z_patch: {head: z (T, dh)} replacing those heads' outputs, after any ablation
            (activation patching).
        """
        s = self.spec
        B, T, _ = x.shape
        q, k = self.qk(x, rope)
        v = self.v(x).view(B, T, s.n_kv_heads, s.d_head).transpose(1, 2)
        if record is not None:
            record["q"], record["k"] = q, k
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat((cache[0], k), dim=2)
                v = torch.cat((cache[1], v), dim=2)
            cache[0], cache[1] = k, v
        mask = attention_mask(s, T, k.shape[2], x.device)
        z = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=s.causal and mask is None and T > 1,
            scale=s.scale,
            enable_gqa=s.n_kv_heads != s.n_heads,
        )  # (B, H, T, dh)
        if heads:
            z = ablate_heads(z, heads, head_means)
        if z_patch:
            z = z.clone()
            for h, zh in z_patch.items():
                z[:, h] = zh.to(z.dtype)
        if record is not None and "mean_z" in record:
            record["mean_z"] = z.mean(dim=2)[0]
        z = z.transpose(1, 2).reshape(B, T, s.n_heads * s.d_head)
        return self.o(z)


def ablate_heads(z, heads, head_means=None):
    """z (B, H, T, dh): zero a head's output or replace it by its mean over positions."""
    z = z.clone()
    for h, mode in heads:
        if mode == "zero":
            z[:, h] = 0
        elif head_means is not None:
            z[:, h] = head_means[h].to(z.dtype)
        else:
            z[:, h] = z[:, h].mean(dim=1, keepdim=True)
    return z


def key_mask(spec: ModelSpec, t_q: int, t_k: int, device):
    """(t_q, t_k) bool: the keys each of the last t_q queries may see; None when all of them
    (a bidirectional model). Causal, and the sliding window where the model has one."""
    if not spec.causal:
        return None
    qpos = torch.arange(t_k - t_q, t_k, device=device)[:, None]
    kpos = torch.arange(t_k, device=device)[None, :]
    allowed = kpos <= qpos
    if spec.sliding_window and t_k > spec.sliding_window:
        allowed &= kpos > qpos - spec.sliding_window
    return allowed


def attention_mask(spec: ModelSpec, t_q: int, t_k: int, device):
    """key_mask where the simple causal flag of SDPA cannot express it, else None."""
    needs_window = spec.sliding_window and t_k > spec.sliding_window
    if not needs_window and (t_q == t_k or t_q == 1):
        return None
    return key_mask(spec, t_q, t_k, device)


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.gated = spec.mlp == "gated"
        self.act = activation(spec.activation)
        self.up = linear(spec.d_model, spec.d_mlp, spec.mlp_bias)
        if self.gated:
            self.gate = linear(spec.d_model, spec.d_mlp, spec.mlp_bias)
        self.down = linear(spec.d_mlp, spec.d_model, spec.mlp_bias)

    def forward(self, x):
        if self.gated:
            return self.down(self.act(self.gate(x)) * self.up(x))
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.ln1 = Norm(spec)
        self.attn = Attention(spec)
        self.ln2 = Norm(spec)
        self.mlp = MLP(spec)

    def attn_input(self, x):
        return x if self.spec.post_ln else self.ln1(x)

    def forward(self, x, rope, layer_ablation=((), False, False), **attn_kw):
        heads, attn_off, mlp_off = layer_ablation
        s = self.spec
        record = attn_kw.get("record")
        if attn_off and record is not None:
            # q, k are still recorded so the head's pattern can be shown
            record["q"], record["k"] = self.attn.qk(self.attn_input(x), rope)
        if s.post_ln:  # BERT
            a = 0 if attn_off else self.attn(x, rope, heads, **attn_kw)
            x = self.ln1(x + a)
            m = 0 if mlp_off else self.mlp(x)
            return self.ln2(x + m)
        if attn_off:
            a = torch.zeros_like(x)
        else:
            a = self.attn(self.ln1(x), rope, heads, **attn_kw)
        if s.parallel_residual:  # GPT-NeoX: both sublayers read the same x
            m = 0 if mlp_off else self.mlp(self.ln2(x))
            return x + a + m
        x = x + a
        return x if mlp_off else x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        s = spec
        self.spec = s
        self.wte = embedding(s.vocab_size, s.d_model)
        if s.positions == "learned":
            n_pos = s.context_length + s.position_offset
            self.wpe = embedding(n_pos, s.d_model)
        else:
            self.register_buffer("inv_freq", rotary_inv_freq(s), persistent=False)
        if s.token_types:
            self.wtt = embedding(s.token_types, s.d_model)
        if s.embedding_norm:
            self.ln_emb = Norm(s)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layers))
        if s.final_norm:
            self.ln_f = Norm(s)
        if s.lm_head == "bert_mlm":
            self.mlm_dense = linear(s.d_model, s.d_model, True)
            self.mlm_norm = Norm(s)
        if s.lm_head != "none" and not s.tied_embeddings:
            self.unembed = linear(s.d_model, s.vocab_size, False)
        if s.unembed_bias:
            self.unembed_b = nn.Parameter(torch.zeros(s.vocab_size), requires_grad=False)

    # --- pieces, so that a Run can recompute from any layer -------------------------------

    def rope(self, positions):
        """cos, sin (T, rotary_dim) for these absolute positions, or None without rotary."""
        if self.spec.positions != "rotary":
            return None
        freqs = positions.float()[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        dtype = self.wte.weight.dtype
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def embed(self, tokens, positions):
        """tokens (B, T), positions (T,) -> residual stream (B, T, d)."""
        x = self.wte(tokens)
        if self.spec.positions == "learned":
            x = x + self.wpe(positions + self.spec.position_offset)
        if self.spec.token_types:
            x = x + self.wtt.weight[0]
        if self.spec.embedding_norm:
            x = self.ln_emb(x)
        return x

    def final(self, x):
        """Residual stream after the last layer -> hidden state the unembedding reads."""
        return self.ln_f(x) if self.spec.final_norm else x

    def unembed_matrix(self):
        return self.wte.weight if self.spec.tied_embeddings else self.unembed.weight

    def logits(self, hidden):
        """hidden (..., d) -> logits (..., vocab)."""
        s = self.spec
        if s.lm_head == "none":
            raise ValueError("this model has no language-model head")
        if s.lm_head == "bert_mlm":
            hidden = self.mlm_norm(activation(s.activation)(self.mlm_dense(hidden)))
        out = F.linear(hidden, self.unembed_matrix())
        return out + self.unembed_b if s.unembed_bias else out

    def layers(
        self,
        x,
        positions,
        start: int = 0,
        ablation: Ablation | None = None,
        on_layer=None,
        cancel=None,
        caches=None,
        head_means=None,
        z_patch=None,
    ):
        """Run layers start.. on residual x (B, T, d). on_layer(l, x_in, record) sees each one.

        z_patch: {layer: {head: z (T, dh)}}, head outputs to put in place of the computed ones.
        """
        rope = self.rope(positions)
        ablation = ablation or Ablation()
        for l in range(start, self.spec.n_layers):
            if cancel is not None and cancel():
                raise Cancelled()
            record = {"mean_z": None} if on_layer is not None else None
            if on_layer is not None:
                on_layer(l, x, record)
            kw = {"record": record}
            if caches is not None:
                kw["cache"] = caches[l]
            if head_means is not None:
                kw["head_means"] = head_means[l]
            if z_patch and l in z_patch:
                kw["z_patch"] = z_patch[l]
            x = self.blocks[l](x, rope, ablation.layer(l), **kw)
        return x

    def forward(self, tokens, ablation: Ablation | None = None):
        """Plain forward: tokens (B, T) -> logits (B, T, vocab)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.layers(self.embed(tokens, positions), positions, ablation=ablation)
        return self.logits(self.final(x))
