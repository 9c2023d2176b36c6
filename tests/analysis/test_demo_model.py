"""On the built-in demo model, the induction heads found by the role scores are the heads whose
ablation hurts the repeated half of a repeated sequence most. Skipped without the model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.checkpoints.demo import demo_available, demo_model_dir

pytestmark = pytest.mark.skipif(not demo_available(), reason="resources/demo-model is missing")

INDUCTION = 0.4  # an induction score this high makes an induction head
PREVIOUS = 0.5  # previous-token heads feed induction heads: ablating them hurts as well


@pytest.fixture(scope="module")
def lm():
    from explorer.checkpoints import load

    return load(demo_model_dir())


def word_tokens(lm) -> list[int]:
    """Tokens that are a space and a lowercase word, the kind the demo was trained on."""
    n = min(lm.spec.vocab_size, lm.tokenizer.vocab_size)
    word = re.compile(r"^ [a-z]{2,}$")
    return [i for i in range(n) if word.match(lm.tokenizer.display(i))]


def test_induction_heads_are_the_heads_whose_ablation_hurts_the_repeat(lm):
    from explorer.analysis import Metric, head_roles, importance_sweep

    words = word_tokens(lm)
    assert len(words) >= 40
    rng = np.random.default_rng(0)
    n = min(16, (lm.spec.context_length - 1) // 2)
    half = rng.choice(words, size=n, replace=False).tolist()
    ids = half + half
    run = lm.run(ids)
    roles = head_roles(lm, run)
    assert roles.induction_source == "prompt" and roles.n_induction_queries == n

    # mean loss of the repeated half: predicting tokens n+1 .. 2n-1
    metric = Metric.loss(run, range(n, 2 * n - 1))
    assert metric.of_run(run) < Metric.loss(run, range(0, n - 1)).of_run(run)  # it copies
    sweep = importance_sweep(lm, run, metric, sublayers=False)

    s = lm.spec
    heads = [(l, h) for l in range(s.n_layers) for h in range(s.n_heads)]
    hurt = sorted(heads, key=lambda lh: -sweep.heads[lh])
    induction = [lh for lh in heads if roles.induction[lh] >= INDUCTION]
    induction = induction or [roles.top("induction", 1)[0][:2]]
    partners = [lh for lh in heads if roles.previous_token[lh] >= PREVIOUS]
    allowed = set(hurt[: len(induction) + len(partners)])
    assert set(induction) <= allowed, (induction, partners, hurt[:6])
    best = roles.top("induction", 1)[0][:2]
    assert best in hurt[:3] and sweep.heads[best] > 0.1
