"""Head role scores against loops over Run.pattern."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis import AnalysisError, head_roles
from explorer.analysis.roles import duplicate_mask, induction_mask

# token 7 opens, then a 6-token span repeated twice, with a duplicate (9) inside the prefix
REPEATED = [7, 9, 11, 9, 20, 21, 22, 23, 24, 25, 30, 20, 21, 22, 23, 24, 25, 31]


def expected_scores(run, l, h, tokens, min_repeat=4):
    """The four scores of one head by plain loops over its (T, T) pattern."""
    A = run.pattern(l, h).numpy()
    T = len(tokens)
    prev = np.mean([A[i, i - 1] for i in range(1, T)])
    sink = np.mean([A[i, 0] for i in range(1, T)])
    dup = [
        sum(A[i, j] for j in range(i) if tokens[j] == tokens[i])
        for i in range(T)
        if tokens[i] in tokens[:i]
    ]
    ind = []
    for i in range(T):
        targets = []
        for j in range(i - 1):
            if tokens[j] != tokens[i]:
                continue
            # the aligned equal span through (j, i)
            d, a, b = i - j, j, j
            while a - 1 >= 0 and tokens[a - 1] == tokens[a - 1 + d]:
                a -= 1
            while b + 1 + d < T and tokens[b + 1] == tokens[b + 1 + d]:
                b += 1
            if b - a + 1 >= min_repeat:
                targets.append(j + 1)
        if targets:
            ind.append(sum(A[i, k] for k in targets))
    return prev, sink, np.mean(dup) if dup else np.nan, np.mean(ind) if ind else np.nan


def test_masks_by_hand():
    # "a b c d a b c d": query 4 (a) -> target 1 (b), ..., query 7 (d) -> target 4 (a)
    m = induction_mask([1, 2, 3, 4, 1, 2, 3, 4], min_repeat=4)
    assert sorted(zip(*np.nonzero(m))) == [(4, 1), (5, 2), (6, 3), (7, 4)]
    assert not induction_mask([1, 2, 3, 4, 1, 2, 3, 4], min_repeat=5).any()
    same = induction_mask([5, 5, 5, 5, 5, 5], min_repeat=4)
    assert not np.triu(same).any()  # the target is always before the query
    d = duplicate_mask([1, 2, 1, 1])
    assert sorted(zip(*np.nonzero(d))) == [(2, 0), (3, 0), (3, 2)]


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_scores_equal_loops_over_the_pattern(tiny, name):
    lm = tiny(name).lm
    run = lm.run(REPEATED)
    r = head_roles(lm, run)
    assert r.induction_source == "prompt" and r.duplicate_source == "prompt"
    assert r.n_induction_queries == 6  # the second copy of the span
    assert r.random_tokens is None
    s = lm.spec
    for l in range(s.n_layers):
        for h in range(s.n_heads):
            prev, sink, dup, ind = expected_scores(run, l, h, REPEATED)
            np.testing.assert_allclose(
                [r.previous_token[l, h], r.sink[l, h], r.duplicate_token[l, h], r.induction[l, h]],
                [prev, sink, dup, ind],
                atol=1e-6,
            )


def test_without_a_repeat_the_scores_come_from_a_random_repeated_sequence(tiny):
    lm = tiny("gpt2").lm
    prompt = [3, 4, 5, 6, 8, 10, 12]
    run = lm.run(prompt)
    r = head_roles(lm, run, random_length=10, seed=3)
    assert r.induction_source == r.duplicate_source == "random"
    rt = r.random_tokens
    assert rt[0] == 3 and rt[1:11] == rt[11:] and len(set(rt[1:11])) == 10
    assert 3 not in rt[1:] and not set(rt) & lm.tokenizer.special_ids
    assert r.n_induction_queries == 10 - 1 + 1  # every token of the second copy
    other = lm.run(rt)
    for l, h in [(0, 0), (2, 3)]:
        prev, sink, dup, ind = expected_scores(other, l, h, rt)
        assert r.induction[l, h] == pytest.approx(ind, abs=1e-6)
        assert r.duplicate_token[l, h] == pytest.approx(dup, abs=1e-6)
        prev, sink, _, _ = expected_scores(run, l, h, prompt)
        assert r.previous_token[l, h] == pytest.approx(prev, abs=1e-6)
        assert r.sink[l, h] == pytest.approx(sink, abs=1e-6)


def test_top_sorts_and_json_is_plain(tiny):
    import json

    lm = tiny("gpt2").lm
    r = head_roles(lm, lm.run(REPEATED))
    top = r.top("induction", 3)
    assert [v for _, _, v in top] == sorted((v for _, _, v in top), reverse=True)
    assert top[0][2] == pytest.approx(np.nanmax(r.induction))
    data = json.loads(json.dumps(r.to_json()))
    assert len(data["sink"]) == lm.spec.n_layers and data["induction_source"] == "prompt"
    assert r.best_role().shape == (lm.spec.n_layers, lm.spec.n_heads)
    with pytest.raises(AnalysisError):
        r.scores("nonsense")


def test_bidirectional_model_and_one_token(tiny):
    lm = tiny("bert").lm
    run = lm.run(REPEATED[:10])
    r = head_roles(lm, run)
    A = run.pattern(1, 2).numpy()
    assert r.sink[1, 2] == pytest.approx(A[:, 0].mean(), abs=1e-6)  # every query counts
    one = head_roles(tiny("gpt2").lm, tiny("gpt2").lm.run([5]), random_length=6)
    assert np.isnan(one.previous_token).all() and np.isnan(one.sink).all()
    assert np.isfinite(one.induction).all()
