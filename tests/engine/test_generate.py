"""Generation with the KV cache against full forwards; cancellation between layers."""

from __future__ import annotations

import pytest
import torch

from explorer.engine import Ablation, Cancelled, generate

from .helpers import layers_of, out_proj

N_NEW = 12


def greedy_by_full_forwards(lm, prompt, n, ablation=None):
    """Greedy decoding the slow way: a fresh full Run for every new token."""
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(lm.run(ids, ablation).logits([len(ids) - 1])[0].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "llama3-scaled", "mistral", "qwen3", "neox"])
def test_greedy_matches_transformers_generate(tiny, name):
    from transformers import GenerationConfig

    t = tiny(name)
    prompt = t.ids(20, seed=11)  # > mistral's window of 16, so the cache must slide
    cfg = GenerationConfig(
        max_new_tokens=N_NEW, min_new_tokens=N_NEW, do_sample=False, eos_token_id=None
    )
    with torch.no_grad():
        ref = t.hf.generate(prompt[None], generation_config=cfg, pad_token_id=0)
    ours = t.lm.generate(prompt.tolist(), N_NEW)
    assert ours == ref[0, 20:].tolist()
    assert ours == greedy_by_full_forwards(t.lm, prompt.tolist(), N_NEW)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mistral", "neox-seq"])
def test_greedy_under_zero_ablation_matches_full_forwards(tiny, name):
    t = tiny(name)
    prompt = t.ids(18, seed=12).tolist()
    ablation = Ablation.of([(0, 1), (1, 2), (2, 0)], attn_layers=[1], mlp_layers=[2])
    ours = t.lm.generate(prompt, N_NEW, ablation)
    assert ours == greedy_by_full_forwards(t.lm, prompt, N_NEW, ablation)
    assert ours != t.lm.generate(prompt, N_NEW)  # the ablation does change the text


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_mean_ablation_keeps_the_prompts_means_while_generating(tiny, name):
    """Each ablated head outputs its mean over the prompt, for the prompt and every new token:
    the same as a transformers forward with those fixed vectors in the head's z slice."""
    t = tiny(name)
    s = t.lm.spec
    prompt = t.ids(16, seed=13).tolist()
    heads = [(0, 2), (2, 1)]
    ablation = Ablation.of(heads, "mean")
    run = t.lm.run(prompt, ablation)
    fixed = {(l, h): run.head_means[l][h] for l, h in heads}
    blocks = layers_of(t.hf)
    ours = t.lm.generate(prompt, N_NEW, ablation)
    assert ours[0] == int(run.logits([len(prompt) - 1])[0].argmax())

    handles = []
    for (l, h), mean in fixed.items():

        def hook(module, args, h=h, mean=mean):
            z = args[0].clone()
            z[..., h * s.d_head : (h + 1) * s.d_head] = mean
            return (z,)

        handles.append(out_proj(blocks[l]).register_forward_pre_hook(hook))
    try:
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(N_NEW):
                ids.append(int(t.hf(torch.tensor([ids])).logits[0, -1].argmax()))
    finally:
        for hd in handles:
            hd.remove()
    assert ours == ids[len(prompt) :]


def test_sampling_is_deterministic_for_a_seed(tiny):
    t = tiny("llama-gqa")
    prompt = t.ids(10, seed=14).tolist()
    kw = dict(greedy=False, temperature=1.5)
    a = t.lm.generate(prompt, 20, seed=7, **kw)
    assert a == t.lm.generate(prompt, 20, seed=7, **kw)
    assert a != t.lm.generate(prompt, 20, seed=8, **kw)
    assert len(set(a)) > 3
    # top-k 1 sampling is greedy; temperature 0 is greedy
    greedy = t.lm.generate(prompt, 20)
    assert t.lm.generate(prompt, 20, greedy=False, top_k=1, seed=3) == greedy
    assert t.lm.generate(prompt, 20, greedy=False, temperature=0) == greedy
    ablated = Ablation.of([(1, 1)])
    b = t.lm.generate(prompt, 20, ablated, seed=7, **kw)
    assert b == t.lm.generate(prompt, 20, ablated, seed=7, **kw)


def test_generation_limits(tiny):
    t = tiny("gpt2-untied")  # context window of 64
    prompt = t.ids(60, seed=15).tolist()
    assert len(t.lm.generate(prompt, 50)) == 4
    first = t.lm.generate(prompt, 1)[0]
    assert t.lm.generate(prompt, 4, stop_ids={first}) == [first]
    assert t.lm.generate(prompt, 0) == []
    for name in ("bert", "bert-mlm"):
        with pytest.raises(ValueError):
            generate(tiny(name).lm.model, [1, 2, 3], 3)


def _cancel_after(n_calls):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > n_calls

    return cancel, calls


def _count_blocks(model):
    seen = []
    handles = [
        b.register_forward_hook(lambda m, a, o, l=l: seen.append(l))
        for l, b in enumerate(model.blocks)
    ]
    return seen, handles


@pytest.mark.parametrize("name", ["gpt2", "bert"])
def test_cancel_flag_stops_a_forward_between_layers(tiny, name):
    t = tiny(name)
    ids = t.ids(20)
    with pytest.raises(Cancelled):
        t.lm.run(ids, cancel=lambda: True)
    cancel, calls = _cancel_after(2)
    seen, handles = _count_blocks(t.lm.model)
    try:
        with pytest.raises(Cancelled):
            t.lm.run(ids, cancel=cancel)
    finally:
        for h in handles:
            h.remove()
    assert seen == [0, 1]  # layers 0 and 1 ran, layer 2 did not
    assert len(calls) == 3
    # a flag raised from elsewhere while layer 0 runs stops the forward before layer 1
    flag = {"stop": False}
    handle = t.lm.model.blocks[0].register_forward_hook(lambda *a: flag.update(stop=True))
    try:
        with pytest.raises(Cancelled):
            t.lm.run(ids, cancel=lambda: flag["stop"])
    finally:
        handle.remove()
    # nothing is left broken: the next run works
    run = t.lm.run(ids, cancel=lambda: False)
    assert len(run.q) == t.lm.spec.n_layers


def test_cancel_stops_rerun_and_generation_and_keeps_the_old_run(tiny):
    t = tiny("llama-gqa")
    ids = t.ids(14)
    run = t.lm.run(ids)
    logits = run.logits().clone()
    with pytest.raises(Cancelled):
        run.rerun(Ablation.of([(1, 0)]), cancel=lambda: True)
    torch.testing.assert_close(run.logits(), logits, atol=0, rtol=0)
    assert len(run.q) == t.lm.spec.n_layers
    cancel, _ = _cancel_after(t.lm.spec.n_layers * 3)  # the prompt and two new tokens
    with pytest.raises(Cancelled):
        t.lm.generate(ids.tolist(), 10, cancel=cancel)
