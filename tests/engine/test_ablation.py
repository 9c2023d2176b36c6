"""Ablations against transformers with hooks, and incremental recompute against a fresh run."""

from __future__ import annotations

import pytest
import torch

from explorer.engine import Ablation

from .helpers import hf_forward, hf_head_ablation, hf_output, hf_sublayer_ablation, our_output

TOL = 1e-4
FAMILIES = ["gpt2", "llama-gqa", "llama-gqa4", "qwen3", "neox", "bert", "bert-mlm"]


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("name", FAMILIES)
def test_head_ablation_matches_a_hook_on_the_output_projection(tiny, name, mode):
    t = tiny(name)
    s = t.lm.spec
    heads = [(0, 1), (1, 0), (1, s.n_heads - 1), (2, 2)]
    ids = t.ids(20, seed=6)
    with hf_head_ablation(t.hf, heads, mode, s.n_heads, s.d_head):
        ref = hf_forward(t.hf, ids, attentions=True)
    run = t.lm.run(ids, Ablation.of(heads, mode))
    assert (our_output(run) - hf_output(t, ref)).abs().max().item() <= TOL
    for l in range(s.n_layers):  # patterns downstream of an ablation change too
        assert (run.layer_patterns(l) - ref.attentions[l][0]).abs().max().item() <= TOL
    clean = t.lm.run(ids)
    assert (our_output(clean) - our_output(run)).abs().max().item() > 1e-3


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox", "neox-seq", "bert-mlm"])
@pytest.mark.parametrize("which", ["attn", "mlp", "both"])
def test_sublayer_ablation_matches_a_hook_that_zeroes_it(tiny, name, which):
    t = tiny(name)
    attn = [1] if which in ("attn", "both") else []
    mlp = [0, 2] if which in ("mlp", "both") else []
    ids = t.ids(18, seed=7)
    with hf_sublayer_ablation(t.hf, attn, mlp):
        ref = hf_forward(t.hf, ids)
    run = t.lm.run(ids, Ablation.of(attn_layers=attn, mlp_layers=mlp))
    assert (our_output(run) - hf_output(t, ref)).abs().max().item() <= TOL
    if attn:  # an attention layer switched off still shows its (unchanged input's) patterns
        p = run.pattern(1, 0)
        torch.testing.assert_close(p.sum(-1), torch.ones(18), atol=1e-5, rtol=0)


def _same_tensors(a, b):
    return all(x is y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox", "bert"])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_rerun_equals_a_fresh_run_and_reuses_earlier_layers(tiny, name, mode):
    t = tiny(name)
    s = t.lm.spec
    ids = t.ids(22, seed=8)
    base = t.lm.run(ids, Ablation.of([(0, 3)], mode))
    steps = [
        Ablation.of([(0, 3), (2, 1)], mode),  # add a head in layer 2
        Ablation.of([(0, 3), (1, 0), (2, 1)], mode),  # then one in layer 1
        Ablation.of([(0, 3), (1, 0)], mode, mlp_layers=[2]),
        Ablation.of([(1, 0)], mode, attn_layers=[2]),  # back down to layer 0
    ]
    expected_start = [2, 1, 2, 0]
    prev = base
    for ablation, start in zip(steps, expected_start):
        new = prev.rerun(ablation)
        assert new.ablation == ablation
        assert new.recomputed_from == start == prev.ablation.first_difference(ablation)
        assert _same_tensors(new.resid[:start], prev.resid[:start])
        assert _same_tensors(new.q[:start], prev.q[:start])
        assert _same_tensors(new.k[:start], prev.k[:start])
        fresh = t.lm.run(ids, ablation)
        torch.testing.assert_close(our_output(new), our_output(fresh), atol=1e-6, rtol=0)
        for l in range(s.n_layers):
            torch.testing.assert_close(new.resid[l], fresh.resid[l], atol=1e-6, rtol=0)
            torch.testing.assert_close(
                new.layer_patterns(l), fresh.layer_patterns(l), atol=1e-6, rtol=0
            )
        if s.has_lm_head and s.causal:
            torch.testing.assert_close(new.loss(), fresh.loss(), equal_nan=True)
        prev = new


def test_rerun_with_the_same_ablation_recomputes_nothing(tiny):
    t = tiny("gpt2")
    run = t.lm.run(t.ids(12), Ablation.of([(1, 1)]))
    run.loss()
    same = run.rerun(Ablation.of([(1, 1)]))
    assert same.recomputed_from == t.lm.spec.n_layers
    assert same.hidden is run.hidden and same.final_resid is run.final_resid
    assert _same_tensors(same.q, run.q) and _same_tensors(same.resid, run.resid)
    assert same.loss() is run.loss()


@pytest.mark.parametrize("name", ["gpt2", "mistral", "neox-seq", "bert-mlm"])
def test_an_ablation_at_layer_l_leaves_earlier_layers_unchanged(tiny, name):
    t = tiny(name)
    s = t.lm.spec
    ids = t.ids(20, seed=9)
    clean = t.lm.run(ids)
    for layer in range(s.n_layers):
        ablated = t.lm.run(ids, Ablation.of([(layer, 0), (layer, 2)]))
        for l in range(s.n_layers):
            same = torch.equal(ablated.layer_patterns(l), clean.layer_patterns(l))
            # layer `layer` reads an unchanged input: its own patterns are unchanged too
            assert same == (l <= layer), (layer, l)
            assert torch.equal(ablated.resid[l], clean.resid[l]) == (l <= layer)


def test_toggling_and_modes(tiny):
    t = tiny("llama-gqa")
    ids = t.ids(15, seed=10)
    run = t.lm.run(ids)
    on = run.rerun(run.ablation.toggled(2, 1))
    assert (2, 1, "zero") in on.ablation.heads and on.recomputed_from == 2
    off = on.rerun(on.ablation.toggled(2, 1))
    assert not off.ablation and off.recomputed_from == 2
    torch.testing.assert_close(off.logits(), run.logits(), atol=1e-6, rtol=0)
    mean = on.rerun(on.ablation.with_mode("mean"))
    assert mean.recomputed_from == 2
    torch.testing.assert_close(
        mean.logits(), t.lm.run(ids, Ablation.of([(2, 1)], "mean")).logits(), atol=1e-6, rtol=0
    )
    assert not torch.allclose(mean.logits(), on.logits())


def test_ablation_parse_and_describe():
    a = Ablation.parse("1.2, 3.0,L2.attn,L0.mlp", mode="mean")
    assert a.heads == {(1, 2, "mean"), (3, 0, "mean")}
    assert a.attn_layers == {2} and a.mlp_layers == {0}
    assert Ablation.parse(a.describe().replace("(mean)", ""), "mean") == a
    assert Ablation.parse("") == Ablation() and not Ablation()
    for bad in ("x", "1", "1.x", "a.b"):
        with pytest.raises(ValueError):
            Ablation.parse(bad)
    with pytest.raises(ValueError):
        Ablation.of([(0, 0)], mode="half")
    assert hash(Ablation.of([(0, 1)])) == hash(Ablation.of([(0, 1)]))
