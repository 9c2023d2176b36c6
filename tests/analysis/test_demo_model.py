"""On the built-in demo model, the induction heads found by the role scores are the heads whose
ablation hurts the repeated part of its example prompt most. Skipped without the model."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.checkpoints.demo import demo_available, demo_model_dir, example_prompts

pytestmark = pytest.mark.skipif(not demo_available(), reason="resources/demo-model is missing")

INDUCTION = 0.4  # an induction score this high makes an induction head


@pytest.fixture(scope="module")
def setup():
    """The demo model, a run on its example prompt with the longest repeat, the loss of the
    repeated part as the metric, and the role scores."""
    from explorer.analysis import Metric, head_roles
    from explorer.analysis.roles import induction_mask
    from explorer.checkpoints import load

    lm = load(demo_model_dir())
    best = []
    for p in example_prompts():
        ids = lm.encode(p["text"], truncate=True)
        # positions inside the repeat whose next token is also a repeat: induction predicts it
        queries = [int(i) for i in np.flatnonzero(induction_mask(ids).any(1)) if i + 1 < len(ids)]
        if len(queries) > len(best[1] if best else []):
            best = [ids, queries]
    if len(best[1] if best else []) < 3:
        pytest.skip("no example prompt of the demo model repeats a sequence")
    ids, queries = best
    run = lm.run(ids)
    return lm, run, Metric.loss(run, queries), head_roles(lm, run)


def ranked(lm, sweep):
    s = lm.spec
    heads = [(l, h) for l in range(s.n_layers) for h in range(s.n_heads)]
    return sorted(heads, key=lambda lh: -sweep.heads[lh])


def test_the_model_copies_on_the_repeated_part(setup):
    lm, run, metric, roles = setup
    assert roles.induction_source == "prompt"
    assert metric.of_run(run) < 0.5


def test_induction_heads_are_the_heads_whose_ablation_hurts_most(setup):
    from explorer.analysis import importance_sweep

    lm, run, metric, roles = setup
    induction = [(l, h) for l, h, v in roles.top("induction", 16) if v >= INDUCTION]
    assert induction, roles.top("induction", 3)
    previous = roles.top("previous_token", 1)[0][:2]
    sweep = importance_sweep(lm, run, metric, sublayers=False)
    hurt = ranked(lm, sweep)
    # the circuit: the strongest induction head and the previous-token head it reads from
    assert set(hurt[:2]) == {induction[0], previous}, (hurt[:4], induction, previous)
    assert sweep.heads[induction[0]] > 1.0

    # all induction heads ablated together: the repeat is no longer predicted
    from explorer.engine import Ablation

    ablated = run.rerun(Ablation.of(induction))
    assert metric.of_run(ablated) > metric.of_run(run) + 2.0


def test_random_repeated_tokens_find_the_same_induction_heads(setup):
    from explorer.analysis import head_roles

    lm, run, metric, roles = setup
    first = run.tokens[: run.n_tokens // 2].tolist()
    fallback = head_roles(lm, lm.run(first[:4]), random_length=20)
    assert fallback.induction_source == "random"
    top = {(l, h) for l, h, _ in roles.top("induction", 2)}
    assert {(l, h) for l, h, _ in fallback.top("induction", 2)} == top
