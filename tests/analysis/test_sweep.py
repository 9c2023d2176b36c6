"""Importance sweep: every entry equals a fresh engine run with that component ablated."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.analysis import AnalysisError, Metric, SweepResult, importance_sweep, iter_sweep
from explorer.engine import Ablation, Cancelled


def fresh(lm, ids, ablation, pos, kind, target=None, foil=None, ref=None):
    """The metric from a fresh full run (no rerun, no Metric class)."""
    logits = lm.run(ids, ablation).logits()
    if kind == "logit_diff":
        return float(logits[pos, target] - logits[pos, foil])
    logp = F.log_softmax(logits, -1)
    if kind == "loss":
        return float(-logp[pos, ids[pos + 1]])
    return float((ref.exp() * (ref - logp[pos])).sum())


@pytest.mark.parametrize("name", ["gpt2", "neox"])
def test_entries_equal_fresh_runs_with_that_head_ablated(tiny, name):
    t = tiny(name)
    lm, ids = t.lm, t.ids(14).tolist()
    s = lm.spec
    base = Ablation.of([(1, 1)])
    run = lm.run(ids)  # the sweep reruns it under the base ablation itself
    metric = Metric.logit_diff(11, 5, 9)
    r = importance_sweep(lm, run, metric, base=base)
    ref = fresh(lm, ids, base, 11, "logit_diff", 5, 9)
    assert r.base_value == pytest.approx(ref, abs=1e-5)
    assert np.isnan(r.heads[1, 1])  # already ablated in the base
    for l in range(s.n_layers):
        for h in range(s.n_heads):
            if (l, h) == (1, 1):
                continue
            one = Ablation.of([(1, 1), (l, h)])
            want = fresh(lm, ids, one, 11, "logit_diff", 5, 9) - ref
            assert r.heads[l, h] == pytest.approx(want, abs=1e-4), (l, h)
        attn = Ablation.of([(1, 1)], attn_layers=[l])
        mlp = Ablation.of([(1, 1)], mlp_layers=[l])
        assert r.attn[l] == pytest.approx(
            fresh(lm, ids, attn, 11, "logit_diff", 5, 9) - ref, abs=1e-4
        )
        assert r.mlp[l] == pytest.approx(
            fresh(lm, ids, mlp, 11, "logit_diff", 5, 9) - ref, abs=1e-4
        )
    assert r.done == r.total == s.n_layers * s.n_heads - 1 + 2 * s.n_layers


def test_mean_mode_loss_and_kl(tiny):
    t = tiny("llama-gqa")
    lm, ids = t.lm, t.ids(12).tolist()
    run = lm.run(ids)
    loss = importance_sweep(lm, run, Metric.loss(run, 6), mode="mean", sublayers=False)
    assert loss.base_value == pytest.approx(fresh(lm, ids, None, 6, "loss"), abs=1e-5)
    for l, h in [(0, 0), (2, 3)]:
        want = fresh(lm, ids, Ablation.of([(l, h)], "mean"), 6, "loss") - loss.base_value
        assert loss.heads[l, h] == pytest.approx(want, abs=1e-4)
    assert np.isnan(loss.attn).all() and np.isnan(loss.mlp).all()

    ref = F.log_softmax(run.logits([11])[0], -1)
    kl = importance_sweep(lm, run, Metric.kl(run, 11), heads=False)
    assert kl.base_value == pytest.approx(0.0, abs=1e-6)
    for l in range(lm.spec.n_layers):
        want = fresh(lm, ids, Ablation.of(mlp_layers=[l]), 11, "kl", ref=ref)
        assert kl.mlp[l] == pytest.approx(want, abs=1e-4) and kl.mlp[l] >= 0


def test_the_generator_yields_base_first_and_stops_between_items(tiny):
    t = tiny("gpt2")
    lm, run = t.lm, t.lm.run(t.ids(10))
    gen = iter_sweep(lm, run, Metric.logit_diff(9, 3))
    first = next(gen)
    assert first.kind == "base" and first.done == 0
    steps = [next(gen) for _ in range(5)]
    assert [(s.kind, s.layer, s.head) for s in steps] == [
        ("head", 0, 0),
        ("head", 0, 1),
        ("head", 0, 2),
        ("head", 0, 3),
        ("attn", 0, -1),
    ]
    assert [s.done for s in steps] == [1, 2, 3, 4, 5] and steps[0].total == 4 * 3 + 2 * 3
    gen.close()  # a caller that stops between items
    r = SweepResult.empty(3, 4, Metric.logit_diff(9, 3), Ablation(), "zero")
    for s in [first, *steps]:
        r.add(s)
    assert r.base_value == first.value and np.isfinite(r.heads[0]).all()
    assert np.isnan(r.heads[1:]).all() and r.attn[0] == steps[4].delta
    json.dumps(r.to_json())


def test_cancel_and_bad_arguments(tiny):
    t = tiny("gpt2")
    lm, run = t.lm, t.lm.run(t.ids(10))
    with pytest.raises(Cancelled):
        list(iter_sweep(lm, run, Metric.logit_diff(9, 3), cancel=lambda: True))
    with pytest.raises(AnalysisError):
        importance_sweep(lm, run, Metric.logit_diff(9, 3), mode="half")
    with pytest.raises(AnalysisError):
        Metric.loss(run, 9)  # the last position has no next token
    with pytest.raises(AnalysisError):
        Metric.loss(run, 12)
    bert = tiny("bert").lm
    with pytest.raises(AnalysisError, match="language-model head"):
        importance_sweep(bert, bert.run([5, 6, 7]), Metric.logit_diff(1, 3))


def test_reruns_start_at_the_ablated_layer(tiny, monkeypatch):
    """Layer l's items cost n_layers - l layers: nothing below them is recomputed."""
    t = tiny("gpt2")
    lm, run = t.lm, t.lm.run(t.ids(10))
    starts = []
    real = type(run).compute

    def spy(self, cancel=None, start=0, x=None):
        starts.append(start)
        return real(self, cancel, start, x)

    monkeypatch.setattr(type(run), "compute", spy)
    with torch.inference_mode():
        importance_sweep(lm, run, Metric.logit_diff(9, 3))
    s = lm.spec
    per_layer = s.n_heads + 2
    assert starts == [l for l in range(s.n_layers) for _ in range(per_layer)]
