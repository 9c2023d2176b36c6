"""Direct logit attribution: the parts sum to the actual logit; a last-layer head's part equals
the frozen-norm read of what zero-ablating it removes."""

from __future__ import annotations

import json

import pytest
import torch

from explorer.analysis import AnalysisError, direct_logit_attribution
from explorer.engine import Ablation

NAMES = ["gpt2", "gpt2-untied", "llama", "llama-gqa", "neox", "neox-seq", "qwen3"]


@pytest.mark.parametrize("name", NAMES)
def test_parts_sum_to_the_logit(tiny, name):
    t = tiny(name)
    lm, ids = t.lm, t.ids(14)
    run = lm.run(ids)
    logits = run.logits()
    for pos, target, foil in [(13, 5, None), (13, 5, 9), (4, 100, 3)]:
        r = direct_logit_attribution(lm, run, target, foil, pos)
        want = float(logits[pos, target] - (0 if foil is None else logits[pos, foil]))
        assert r.logit == pytest.approx(want, abs=1e-6)
        assert abs(r.total - r.logit) < 1e-3, (name, pos, r.total, r.logit)
    assert abs(r.heads).sum() > 0 and abs(r.mlp).sum() > 0


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox"])
def test_parts_sum_under_an_ablation(tiny, name):
    t = tiny(name)
    lm, ids = t.lm, t.ids(12)
    ablation = Ablation.of([(0, 1), (2, 2)], "mean", attn_layers=[1], mlp_layers=[2])
    ablation = Ablation(
        ablation.heads | {(0, 3, "zero")}, ablation.attn_layers, ablation.mlp_layers
    )
    run = lm.run(ids, ablation)
    r = direct_logit_attribution(lm, run, 17, 4)
    assert abs(r.total - r.logit) < 1e-3
    assert (r.heads[1] == 0).all() and r.attn_bias[1] == 0 and r.mlp[2] == 0
    assert r.heads[0, 3] == 0


def test_a_last_layer_head_equals_the_frozen_read_of_its_ablation(tiny):
    """Parallel residual: ablating a last-layer head removes exactly its output from the
    final residual (the MLP reads the layer input), so its part is that difference read
    through the final norm with the clean scale."""
    t = tiny("neox")
    lm, ids = t.lm, t.ids(12)
    s, m = lm.spec, lm.model
    L = s.n_layers
    run = lm.run(ids)
    r = direct_logit_attribution(lm, run, 21, 8, position=10)
    x = run.final_resid[10].float()
    scale = 1 / torch.sqrt(x.var(unbiased=False) + m.ln_f.eps)
    direction = m.unembed_matrix()[21].float() - m.unembed_matrix()[8].float()
    assert r.norm_scale == pytest.approx(float(scale), rel=1e-5)
    for h in range(s.n_heads):
        diff = x - lm.run(ids, Ablation.of([(L - 1, h)])).final_resid[10].float()
        want = float(((diff - diff.mean()) * scale * m.ln_f.weight.float()) @ direction)
        assert r.heads[L - 1, h] == pytest.approx(want, abs=1e-4)


def test_post_ln_and_json(tiny):
    bert = tiny("bert-mlm").lm
    with pytest.raises(AnalysisError, match="post-LN"):
        direct_logit_attribution(bert, bert.run([5, 6, 7]), 3)
    lm = tiny("gpt2").lm
    run = lm.run([5, 6, 7, 8])
    with pytest.raises(AnalysisError):
        direct_logit_attribution(lm, run, 3, position=4)
    r = direct_logit_attribution(lm, run, 3)
    data = json.loads(json.dumps(r.to_json()))
    assert data["position"] == 3 and abs(data["total"] - data["logit"]) < 1e-3
    assert r.top(3)[0][3] == max((t[3] for t in r.top(100)), key=abs)
