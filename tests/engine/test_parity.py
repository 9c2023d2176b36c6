"""Logits and every head's attention pattern against transformers (eager attention)."""

from __future__ import annotations

import pytest
import torch

from .helpers import ALL, hf_forward, hf_output, our_output

TOL = 1e-4


@pytest.mark.parametrize("name", ALL)
def test_logits_and_every_pattern_match_transformers(tiny, name):
    t = tiny(name)
    ids = t.ids(40, seed=1)  # 40 > mistral's sliding window of 16
    ref = hf_forward(t.hf, ids, attentions=True)
    run = t.lm.run(ids)
    s = t.lm.spec
    assert (our_output(run) - hf_output(t, ref)).abs().max().item() <= TOL
    assert len(ref.attentions) == s.n_layers
    for l in range(s.n_layers):
        ours = run.layer_patterns(l)
        assert ours.shape == (s.n_heads, 40, 40)
        for h in range(s.n_heads):
            diff = (run.pattern(l, h) - ref.attentions[l][0, h]).abs().max().item()
            assert diff <= TOL, f"{name} head {l}.{h}: {diff}"
            assert torch.equal(run.pattern(l, h), ours[h]) or torch.allclose(
                run.pattern(l, h), ours[h], atol=1e-6
            )


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox", "bert-mlm"])
def test_patterns_of_some_queries(tiny, name):
    t = tiny(name)
    run = t.lm.run(t.ids(20))
    full = run.layer_patterns(1)
    part = run.layer_patterns(1, queries=[0, 7, 19])
    torch.testing.assert_close(part, full[:, [0, 7, 19]], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "name,fmt", [("gpt2", "bin"), ("llama-gqa", "bin"), ("gpt2", "sharded"), ("qwen3", "sharded")]
)
def test_other_weight_formats(tiny, name, fmt):
    t = tiny(name, fmt)
    files = {p.name for p in t.folder.iterdir()}
    if fmt == "bin":
        assert "pytorch_model.bin" in files and not any(f.endswith(".safetensors") for f in files)
    else:
        assert "model.safetensors.index.json" in files
        assert sum(f.endswith(".safetensors") for f in files) > 1
    ids = t.ids(30, seed=2)
    ref = hf_forward(t.hf, ids, attentions=True)
    run = t.lm.run(ids)
    assert (run.logits() - ref.logits[0]).abs().max().item() <= TOL
    for l in range(t.lm.spec.n_layers):
        assert (run.layer_patterns(l) - ref.attentions[l][0]).abs().max().item() <= TOL


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa4", "mistral", "neox", "bert", "bert-mlm"])
def test_rows_sum_to_one_and_masking(tiny, name):
    t = tiny(name)
    T = 33
    run = t.lm.run(t.ids(T, seed=3))
    s = t.lm.spec
    upper = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(s.n_layers):
        for h in range(s.n_heads):
            p = run.pattern(l, h)
            assert p.dtype == torch.float32 and p.shape == (T, T)
            torch.testing.assert_close(p.sum(-1), torch.ones(T), atol=1e-5, rtol=0)
            assert (p >= 0).all()
            if s.causal:
                assert (p[upper] == 0).all()
            else:  # bidirectional: every query sees every key
                assert (p[upper] > 0).all()
            if s.sliding_window:
                far = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-s.sliding_window)
                assert (p[far] == 0).all() and far.any()


def test_pattern_rejects_unknown_heads(tiny):
    run = tiny("gpt2").lm.run([1, 2, 3])
    with pytest.raises(IndexError):
        run.pattern(3, 0)
    with pytest.raises(IndexError):
        run.pattern(0, 4)


def test_the_run_keeps_no_attention_matrices(tiny):
    """Only residual inputs, q and k per layer: nothing of size T x T is stored."""
    t = tiny("gpt2")
    T = 50
    run = t.lm.run(t.ids(T))
    s = t.lm.spec
    assert len(run.resid) == len(run.q) == len(run.k) == s.n_layers
    for l in range(s.n_layers):
        assert run.resid[l].shape == (T, s.d_model)
        assert run.q[l].shape == (s.n_heads, T, s.d_head)
        assert run.k[l].shape == (s.n_kv_heads, T, s.d_head)
    for v in vars(run).values():
        if isinstance(v, torch.Tensor):
            assert v.numel() < T * T * s.n_heads


def test_outputs_loss_and_top_k(tiny):
    t = tiny("llama-gqa")
    ids = t.ids(16, seed=4)
    run = t.lm.run(ids)
    logits = run.logits()
    assert logits.shape == (16, t.lm.spec.vocab_size)
    torch.testing.assert_close(run.logits([3, 5]), logits[[3, 5]])
    ref = torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="none")
    loss = run.loss()
    torch.testing.assert_close(loss[:-1], ref, atol=1e-5, rtol=1e-5)
    assert torch.isnan(loss[-1])
    top = run.top_k(5, k=4)
    probs = torch.softmax(logits[5], -1)
    assert top.ids == probs.topk(4).indices.tolist()
    torch.testing.assert_close(torch.tensor(top.probs), probs.topk(4).values)
    torch.testing.assert_close(torch.tensor(top.logits), logits[5, top.ids])
    torch.testing.assert_close(run.probs(5), probs)


def test_bfloat16_loads_and_runs(tiny):
    from explorer.checkpoints import load

    for name in ("gpt2", "llama-gqa", "neox", "qwen3"):
        t = tiny(name)
        lm16 = load(t.folder, dtype="bfloat16")
        assert lm16.dtype == torch.bfloat16
        ids = t.ids(24, seed=5)
        r32, r16 = t.lm.run(ids), lm16.run(ids)
        assert r16.q[0].dtype == torch.bfloat16
        l16 = r16.logits()
        assert l16.dtype == torch.float32 and torch.isfinite(l16).all()
        assert (l16 - r32.logits()).abs().max().item() < 0.05
        for l in range(t.lm.spec.n_layers):
            assert (r16.layer_patterns(l) - r32.layer_patterns(l)).abs().max().item() < 0.05


def test_head_chunks_cover_every_head_and_give_the_same_patterns(tiny, monkeypatch):
    from explorer.engine import run as run_module

    t = tiny("llama-gqa")
    run = t.lm.run(t.ids(30).tolist())
    full = [run.layer_patterns(l) for l in range(run.spec.n_layers)]
    # a budget of one head's pattern at a time forces one chunk per head
    monkeypatch.setattr(run_module, "PATTERN_BUDGET", 4 * 30 * 30)
    chunks = run.head_chunks()
    assert len(chunks) == run.spec.n_heads
    for l in range(run.spec.n_layers):
        parts = torch.cat([run.layer_patterns(l, heads=c) for c in chunks])
        assert torch.equal(parts, full[l])
        assert torch.allclose(run.mean_pattern(l), full[l].mean(0), atol=1e-6)
        assert torch.allclose(run.mean_pattern(l, [3, 7]), full[l][:, [3, 7]].mean(0), atol=1e-6)
