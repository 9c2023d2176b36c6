"""Activation patching: clean into clean changes nothing, patching the whole residual stream
restores 100%, single head patches equal a transformers hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explorer.analysis import (
    AnalysisError,
    Metric,
    activation_patching,
    iter_patching,
    patched_value,
)
from explorer.engine import Ablation, Cancelled
from tests.analysis.helpers import hf_capture_z, hf_logits, hf_patch_z


def pair(t, n=12, where=(5,)):
    """A clean prompt and a corrupted one that differs at the given positions."""
    clean = t.ids(n, seed=4)
    corrupted = clean.clone()
    for p in where:
        corrupted[p] = (clean[p] + 17) % t.lm.spec.vocab_size
    return clean, corrupted


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox"])
def test_clean_into_clean_changes_nothing(tiny, name):
    t = tiny(name)
    lm = t.lm
    clean = lm.run(t.ids(10, seed=1))
    metric = Metric.logit_diff(9, 5, 6)
    r = activation_patching(lm, clean, clean, metric)
    np.testing.assert_allclose(r.heads, r.clean_value, atol=1e-5)
    np.testing.assert_allclose(r.resid, r.clean_value, atol=1e-5)
    assert np.isnan(r.restored_heads).all() and r.warning  # clean == corrupted: undefined


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox"])
def test_patching_everything_restores_everything(tiny, name):
    t = tiny(name)
    lm = t.lm
    c, k = pair(t, where=(3, 7))
    clean, corrupted = lm.run(c), lm.run(k)
    metric = Metric.logit_diff(11, 5, 6)
    r = activation_patching(lm, clean, corrupted, metric, heads=False, resid=False)
    assert abs(r.gap) > 1e-4
    for l in range(lm.spec.n_layers):
        # the whole residual stream entering any layer
        v = patched_value(lm, clean, corrupted, metric, resid=[(l, None)])
        assert r.restored(v) == pytest.approx(1.0, abs=1e-4)
        # or just the positions where the prompts differ, at layer 0 ...
    v = patched_value(lm, clean, corrupted, metric, resid=[(0, 3), (0, 7)])
    assert r.restored(v) == pytest.approx(1.0, abs=1e-4)
    # ... and patching every head's output in every layer plus the layer-0 positions
    heads = [(l, h) for l in range(lm.spec.n_layers) for h in range(lm.spec.n_heads)]
    v = patched_value(lm, clean, corrupted, metric, heads=heads, resid=[(0, 3), (0, 7)])
    assert r.restored(v) == pytest.approx(1.0, abs=1e-4)


def test_resid_map_for_a_one_token_difference(tiny):
    t = tiny("gpt2")
    lm = t.lm
    c, k = pair(t, where=(5,))
    clean, corrupted = lm.run(c), lm.run(k)
    r = activation_patching(lm, clean, corrupted, Metric.logit_diff(9, 5, 6))
    restored = r.restored_resid
    np.testing.assert_allclose(restored[0], np.eye(12)[5], atol=1e-4)  # layer 0: only pos 5
    assert (restored[:, :5] == 0).all()  # before the difference nothing changes
    assert (restored[:, 10:] == 0).all()  # after the metric position nothing can
    assert r.done == r.total == 3 * 4 + 3 * 12
    data = json.loads(json.dumps(r.to_json()))
    assert data["restored_resid"][0][5] == pytest.approx(1.0, abs=1e-4)


def test_head_patches_equal_a_transformers_hook(tiny):
    t = tiny("gpt2")
    lm, s = t.lm, t.lm.spec
    c, k = pair(t, where=(2, 6))
    clean, corrupted = lm.run(c), lm.run(k)
    metric = Metric.logit_diff(11, 30, 40)
    r = activation_patching(lm, clean, corrupted, metric, resid=False)
    for l, h in [(0, 1), (1, 3), (2, 0)]:
        store: dict = {}
        with hf_capture_z(t.hf, l, store):
            hf_logits(t.hf, c)
        with hf_patch_z(t.hf, l, h, s.d_head, store["z"]):
            logits = hf_logits(t.hf, k)
        want = float(logits[11, 30] - logits[11, 40])
        assert r.heads[l, h] == pytest.approx(want, abs=1e-4), (l, h)
    assert np.isnan(r.resid).all()


def test_patching_keeps_the_ablation_and_the_cached_runs(tiny):
    t = tiny("neox")
    lm = t.lm
    c, k = pair(t, where=(4,))
    ablation = Ablation.of([(0, 1)], "mean", mlp_layers=[0])
    ablation = Ablation(ablation.heads | {(1, 2, "zero")}, frozenset(), ablation.mlp_layers)
    clean, corrupted = lm.run(c, ablation), lm.run(k, ablation)
    before = [x.clone() for x in corrupted.resid]
    metric = Metric.loss(clean, 10)
    r = activation_patching(lm, clean, corrupted, metric)
    assert all(torch.equal(a, b) for a, b in zip(before, corrupted.resid))
    # with mean ablation every position matters, so nothing after the metric is skipped
    for l in range(lm.spec.n_layers):
        v = patched_value(lm, clean, corrupted, metric, resid=[(l, None)])
        assert r.restored(v) == pytest.approx(1.0, abs=1e-4)
    assert r.restored_heads[1, 2] == pytest.approx(0.0, abs=1e-6)  # a zeroed head stays zero


def test_mismatches_and_cancel(tiny):
    t = tiny("gpt2")
    lm = t.lm
    a, b = lm.run(t.ids(8)), lm.run(t.ids(9))
    with pytest.raises(AnalysisError, match="same number of tokens"):
        activation_patching(lm, a, b, Metric.logit_diff(3, 1))
    with pytest.raises(AnalysisError, match="ablation"):
        activation_patching(lm, a, lm.run(t.ids(8), Ablation.of([(0, 0)])), Metric.kl(a, 3))
    gen = iter_patching(lm, a, a, Metric.logit_diff(3, 1), cancel=lambda: True)
    assert [next(gen).kind, next(gen).kind] == ["clean", "corrupted"]
    with pytest.raises(Cancelled):
        next(gen)
