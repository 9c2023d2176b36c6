"""Generation that reuses a Run's cache equals generation with its own prefill."""

from __future__ import annotations

import pytest

from explorer.engine import Ablation
from explorer.engine.generate import generate, generate_from_run

ABLATIONS = [
    Ablation(),
    Ablation.of([(0, 1), (1, 0)], "zero"),
    Ablation.of([(1, 1)], "mean"),
    Ablation.of([], attn_layers=[1], mlp_layers=[0]),
]


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mistral", "neox", "qwen3"])
@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda a: a.describe())
def test_generate_from_run_equals_generate(tiny, name, ablation):
    t = tiny(name)
    ids = t.ids(20, seed=3).tolist()
    run = t.lm.run(ids, ablation)
    want = generate(t.lm.model, ids, 12, ablation)
    assert generate_from_run(run, 12) == want
    # a rerun's cache (shared prefix) serves as well
    base = t.lm.run(ids)
    assert generate_from_run(base.rerun(ablation), 12) == want


def test_sampled_generation_from_run_is_seeded(tiny):
    t = tiny("llama")
    ids = t.ids(10).tolist()
    run = t.lm.run(ids)
    a = generate_from_run(run, 10, greedy=False, seed=5)
    assert a == generate_from_run(run, 10, greedy=False, seed=5)
    assert a == generate(t.lm.model, ids, 10, greedy=False, seed=5)
