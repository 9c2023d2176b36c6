"""The engine's z_patch hook: head outputs replaced during a forward (activation patching)."""

from __future__ import annotations

import pytest
import torch

from explorer.engine import Ablation
from tests.analysis.helpers import hf_capture_z, hf_logits, hf_patch_z


def forward(lm, ids, z_patch=None, ablation=None):
    m = lm.model
    tokens = torch.as_tensor(ids)[None]
    pos = torch.arange(tokens.shape[1])
    with torch.inference_mode():
        x = m.layers(m.embed(tokens, pos), pos, ablation=ablation, z_patch=z_patch)
        return m.logits(m.final(x))[0].float()


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox"])
def test_patching_zeros_equals_zero_ablation(tiny, name):
    t = tiny(name)
    lm, ids = t.lm, t.ids(12)
    s = lm.spec
    zeros = torch.zeros(len(ids), s.d_head)
    patched = forward(lm, ids, {1: {2: zeros}, 0: {0: zeros}})
    ablated = lm.run(ids, Ablation.of([(1, 2), (0, 0)])).logits()
    torch.testing.assert_close(patched, ablated, atol=1e-5, rtol=1e-5)


def test_no_patch_and_empty_patch_change_nothing(tiny):
    lm, ids = tiny("gpt2").lm, tiny("gpt2").ids(12)
    plain = lm.run(ids).logits()
    assert torch.equal(forward(lm, ids), plain)
    assert torch.equal(forward(lm, ids, {}), plain)
    assert torch.equal(forward(lm, ids, {1: {}}), plain)


def test_patch_overrides_an_ablation_of_the_same_head(tiny):
    t = tiny("gpt2")
    lm, ids, s = t.lm, t.ids(12), t.lm.spec
    store: dict = {}
    with hf_capture_z(t.hf, 1, store):
        hf_logits(t.hf, ids)
    z = store["z"][0].view(len(ids), s.n_heads, s.d_head)[:, 3]  # the head's own output
    patched = forward(lm, ids, {1: {3: z}}, Ablation.of([(1, 3)]))
    torch.testing.assert_close(patched, lm.run(ids).logits(), atol=1e-5, rtol=1e-5)


def test_patching_a_head_from_another_prompt_matches_a_transformers_hook(tiny):
    """Clean z of head (1, 2) into the corrupted forward, here and with a transformers hook."""
    t = tiny("gpt2")
    lm, s = t.lm, t.lm.spec
    clean, corrupted = t.ids(12, seed=1), t.ids(12, seed=2)
    store: dict = {}
    with hf_capture_z(t.hf, 1, store):
        hf_logits(t.hf, clean)
    with hf_patch_z(t.hf, 1, 2, s.d_head, store["z"]):
        expected = hf_logits(t.hf, corrupted)
    z = store["z"][0].view(len(clean), s.n_heads, s.d_head)[:, 2]  # (T, dh)
    got = forward(lm, corrupted, {1: {2: z}})
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
