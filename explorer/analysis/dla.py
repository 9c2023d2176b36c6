"""Direct logit attribution: each head's and each MLP's direct contribution to a token's logit
(or to a logit difference) at one position.

The residual stream at the last layer is a sum of parts: the embedding, every head's output
(z_h @ W_O,h), every attention layer's output bias, and every MLP's output. The final norm is
made linear by freezing its scale at the value computed from the full residual at that position
(LayerNorm: 1 / sqrt(var + eps), and each part is centred, which is linear; RMSNorm:
1 / sqrt(mean square + eps)). Each part's contribution is then

    ((part - mean(part)) * scale * norm_weight) @ (W_U[target] - W_U[foil])

and the contributions, plus the constant from the norm's bias and the unembedding bias, sum to
the actual logit (difference). Only the direct path is counted: a head's effect through later
layers belongs to those layers. Post-LN models (BERT) normalise after every layer, so their
residual stream is not a sum of parts: they raise AnalysisError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine import Cancelled, LoadedModel, Run
from .common import AnalysisError, array_json, check_position, check_token, head_outputs


@dataclass
class DLAResult:
    position: int
    target: int
    foil: int | None
    target_text: str
    foil_text: str | None
    heads: np.ndarray  # (L, H) direct contribution of each head
    attn_bias: np.ndarray  # (L,) the attention output bias of each layer
    mlp: np.ndarray  # (L,) each MLP's output (its bias included)
    embed: float  # token (+ learned position) embedding
    constant: float  # final-norm bias and unembedding bias
    logit: float  # the actual logit (difference) the model computes
    norm_scale: float  # the frozen final-norm scale (1.0 without a final norm)

    @property
    def total(self) -> float:
        """The sum of all contributions; equals `logit` up to rounding."""
        return float(
            self.heads.sum() + self.attn_bias.sum() + self.mlp.sum() + self.embed + self.constant
        )

    def top(self, k: int = 10) -> list[tuple[str, int, int, float]]:
        """The k parts with the largest |contribution| as (kind, layer, head, value)."""
        items = [("head", l, h, v) for (l, h), v in np.ndenumerate(self.heads)]
        items += [("mlp", l, -1, v) for l, v in enumerate(self.mlp)]
        items += [("attn_bias", l, -1, v) for l, v in enumerate(self.attn_bias) if v]
        items += [("embed", -1, -1, self.embed)]
        items = [(k_, int(l), int(h), float(v)) for k_, l, h, v in items]
        return sorted(items, key=lambda t: -abs(t[3]))[:k]

    def to_json(self) -> dict:
        return {
            "position": self.position,
            "target": self.target,
            "target_text": self.target_text,
            "foil": self.foil,
            "foil_text": self.foil_text,
            "heads": array_json(self.heads),
            "attn_bias": array_json(self.attn_bias),
            "mlp": array_json(self.mlp),
            "embed": round(self.embed, 6),
            "constant": round(self.constant, 6),
            "total": round(self.total, 6),
            "logit": round(self.logit, 6),
            "norm_scale": self.norm_scale,
            "top": [list(t) for t in self.top(10)],
        }


def check_decomposable(lm: LoadedModel) -> None:
    s = lm.spec
    if s.post_ln:
        raise AnalysisError(
            "direct logit attribution needs a pre-norm model: this one (post-LN, BERT-style) "
            "normalises after every layer, so its residual stream is not a sum of parts"
        )
    if s.lm_head != "linear":
        raise AnalysisError(
            "direct logit attribution needs a linear unembedding; this model's head is "
            f"{s.lm_head!r}"
        )


@torch.inference_mode()
def direct_logit_attribution(
    lm: LoadedModel,
    run: Run,
    target: int,
    foil: int | None = None,
    position: int | None = None,
    cancel=None,
) -> DLAResult:
    """Contributions to logit[target] (- logit[foil]) at `position` (default: the last)."""
    check_decomposable(lm)
    if target is None:
        raise AnalysisError("direct logit attribution needs a target token")
    s, m = lm.spec, lm.model
    target = check_token(lm, target, "target")
    foil = check_token(lm, foil, "foil")
    p = check_position(run, position)
    U = m.unembed_matrix()
    direction = U[target].float()
    constant = 0.0
    if foil is not None:
        direction = direction - U[foil].float()
    if s.unembed_bias:
        constant += float(m.unembed_b[target]) - (0.0 if foil is None else float(m.unembed_b[foil]))

    x_final = run.final_resid[p].float()
    center = False
    scale = torch.tensor(1.0)
    weight = torch.ones_like(x_final)
    if s.final_norm:
        ln = m.ln_f
        weight = ln.weight.float()
        if ln.rms:
            scale = torch.rsqrt(x_final.pow(2).mean() + ln.eps)
        else:
            center = True
            scale = torch.rsqrt(x_final.var(unbiased=False) + ln.eps)
            if ln.bias is not None:
                constant += float(ln.bias.float() @ direction)
    read_dir = scale * weight * direction  # (d,)

    def read(v: torch.Tensor) -> torch.Tensor:
        """Parts (..., d) -> their direct contributions (...)."""
        v = v.float()
        if center:
            v = v - v.mean(-1, keepdim=True)
        return v @ read_dir

    L, H = s.n_layers, s.n_heads
    heads = np.zeros((L, H))
    attn_bias = np.zeros(L)
    mlp = np.zeros(L)
    for l in range(L):
        if cancel is not None and cancel():
            raise Cancelled()
        block = m.blocks[l]
        x = run.resid[l][p]  # (d,)
        _, attn_off, mlp_off = run.ablation.layer(l)
        a = torch.zeros_like(x, dtype=torch.float32)
        if not attn_off:
            z = head_outputs(lm, run, l, [p])[:, 0]  # (H, dh)
            w_o = block.attn.o.weight.float().view(s.d_model, H, s.d_head)  # (d, H, dh)
            per_head = torch.einsum("hk,dhk->hd", z, w_o)  # (H, d)
            heads[l] = read(per_head).cpu().numpy()
            a = per_head.sum(0)
            if block.attn.o.bias is not None:
                bias = block.attn.o.bias.float()
                attn_bias[l] = float(read(bias))
                a = a + bias
        if not mlp_off:
            mlp_in = x if s.parallel_residual else x + a.to(x.dtype)
            out = block.mlp(block.ln2(mlp_in[None]))[0]
            mlp[l] = float(read(out))
    logits = run.logits([p])[0]
    logit = float(logits[target]) - (0.0 if foil is None else float(logits[foil]))
    disp = lm.tokenizer.display
    return DLAResult(
        position=p,
        target=target,
        foil=foil,
        target_text=disp(target),
        foil_text=None if foil is None else disp(foil),
        heads=heads,
        attn_bias=attn_bias,
        mlp=mlp,
        embed=float(read(run.resid[0][p])),
        constant=constant,
        logit=logit,
        norm_scale=float(scale),
    )
