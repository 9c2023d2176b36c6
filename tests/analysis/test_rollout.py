"""Attention rollout against a full-matrix numpy computation from Run.pattern."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.analysis import attention_rollout


def numpy_rollout(run, add_residual=True):
    """Every layer's full (T, T) rollout, from each head's pattern."""
    s = run.spec
    T = run.n_tokens
    R = np.eye(T)
    out = []
    for l in range(s.n_layers):
        A = np.mean([run.pattern(l, h).double().numpy() for h in range(s.n_heads)], axis=0)
        if add_residual:
            A = 0.5 * A + 0.5 * np.eye(T)
        R = A @ R
        out.append(R)
    return out


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "bert"])
def test_rollout_equals_the_full_product_and_rows_sum_to_one(tiny, name):
    t = tiny(name)
    lm = t.lm
    run = lm.run(t.ids(15))
    full = numpy_rollout(run)
    for pos in (None, 6, 0):
        r = attention_rollout(lm, run, pos)
        p = 14 if pos is None else pos
        assert r.position == p
        np.testing.assert_allclose(r.layers.sum(-1), 1.0, atol=1e-5)
        for l in range(lm.spec.n_layers):
            np.testing.assert_allclose(r.layers[l], full[l][p], atol=1e-5)
        np.testing.assert_array_equal(r.scores, r.layers[-1])
        if lm.spec.causal:
            assert (r.layers[:, p + 1 :] == 0).all()


def test_without_residual_and_json(tiny):
    t = tiny("gpt2")
    lm = t.lm
    run = lm.run(t.ids(9))
    r = attention_rollout(lm, run, add_residual=False)
    np.testing.assert_allclose(r.layers[-1], numpy_rollout(run, False)[-1][8], atol=1e-5)
    data = json.loads(json.dumps(r.to_json()))
    assert len(data["layers"]) == lm.spec.n_layers and len(data["scores"]) == 9
    assert data["tokens"] == lm.tokenizer.displays(run.tokens.tolist())
