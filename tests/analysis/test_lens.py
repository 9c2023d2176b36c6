"""Logit lens: the last row is the model's real prediction; earlier rows equal transformers'
hidden states read through its own final norm and head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explorer.analysis import AnalysisError, logit_lens
from explorer.engine import Ablation


@pytest.mark.parametrize("name", ["gpt2", "llama", "neox"])
def test_last_row_is_the_real_prediction(tiny, name):
    t = tiny(name)
    lm, ids = t.lm, t.ids(16)
    run = lm.run(ids, Ablation.of([(1, 0)]))
    r = logit_lens(lm, run, target=7)
    logits = run.logits()
    probs = torch.softmax(logits, -1)
    np.testing.assert_array_equal(r.top_ids[-1], logits.argmax(-1).numpy())
    np.testing.assert_allclose(r.top_probs[-1], probs.max(-1).values.numpy(), atol=1e-6)
    np.testing.assert_allclose(r.target_probs[-1], probs[:, 7].numpy(), atol=1e-6)
    ranks = (logits > logits[:, 7:8]).sum(-1).numpy()
    np.testing.assert_array_equal(r.target_ranks[-1], ranks)
    assert r.layers == ["embed"] + [f"L{l}" for l in range(lm.spec.n_layers)]
    assert r.top_ids.shape == (lm.spec.n_layers + 1, 16)


def test_rows_equal_transformers_hidden_states_through_its_head(tiny):
    t = tiny("gpt2")
    lm, ids = t.lm, t.ids(16)
    r = logit_lens(lm, lm.run(ids), target=11)
    with torch.no_grad():
        out = t.hf(ids[None], output_hidden_states=True)
        # hidden_states[l] is the input of block l; the last one already has ln_f applied
        for l in range(lm.spec.n_layers):
            logits = t.hf.lm_head(t.hf.transformer.ln_f(out.hidden_states[l]))[0]
            probs = torch.softmax(logits, -1)
            np.testing.assert_array_equal(r.top_ids[l], logits.argmax(-1).numpy())
            np.testing.assert_allclose(r.target_probs[l], probs[:, 11].numpy(), atol=1e-5)
    assert r.top_texts[0][3] == lm.tokenizer.display(int(r.top_ids[0, 3]))
    data = json.loads(json.dumps(r.to_json()))
    assert data["target"] == 11 and len(data["top_texts"]) == lm.spec.n_layers + 1


def test_without_target_and_errors(tiny):
    lm = tiny("gpt2").lm
    r = logit_lens(lm, lm.run([5, 6, 7]))
    assert r.target_probs is None and "target_probs" not in r.to_json()
    with pytest.raises(AnalysisError):
        logit_lens(lm, lm.run([5, 6, 7]), target=10**6)
    bert = tiny("bert").lm
    with pytest.raises(AnalysisError):
        logit_lens(bert, bert.run([5, 6, 7]))
