"""The engine on a GPU equals the engine on the CPU (skipped where CUDA is not available)."""

from __future__ import annotations

import pytest
import torch

from explorer.checkpoints import load
from explorer.engine import Ablation
from explorer.engine.generate import generate_from_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

NAMES = ["gpt2", "llama-gqa", "llama3-scaled", "mistral", "qwen3", "neox", "bert-mlm"]


@pytest.fixture(autouse=True)
def exact_matmul():
    # float32 parity needs full-precision matrix products (no TF32)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("name", NAMES)
def test_cuda_float32_equals_cpu(tiny, name):
    t = tiny(name)
    gpu = load(t.folder, device="cuda")
    assert gpu.device.type == "cuda"
    ids = t.ids(40, seed=1).tolist()
    a = Ablation.of([(1, 1)], "mean", mlp_layers=[0])
    for ablation in (Ablation(), a):
        rc, rg = t.lm.run(ids, ablation), gpu.run(ids, ablation)
        if t.lm.spec.has_lm_head:
            assert (rg.logits().cpu() - rc.logits()).abs().max() < 1e-4
        assert (rg.hidden.cpu() - rc.hidden).abs().max() < 1e-4
        for l in range(t.lm.spec.n_layers):
            assert (rg.layer_patterns(l).cpu() - rc.layer_patterns(l)).abs().max() < 1e-5
    inc = gpu.run(ids).rerun(a)
    full = gpu.run(ids, a)
    assert inc.recomputed_from == 0 and torch.equal(inc.hidden, full.hidden)
    if t.lm.spec.causal and t.lm.spec.has_lm_head:
        assert generate_from_run(gpu.run(ids, a), 8) == generate_from_run(t.lm.run(ids, a), 8)


def test_cuda_bfloat16_runs_close_to_float32(tiny):
    t = tiny("llama-gqa")
    gpu = load(t.folder, device="cuda", dtype="bfloat16")
    assert gpu.dtype == torch.bfloat16
    ids = t.ids(32).tolist()
    run = gpu.run(ids)
    ref = t.lm.run(ids)
    p = run.pattern(2, 3).cpu()
    assert torch.allclose(p.sum(-1), torch.ones(len(ids)), atol=1e-4)
    assert (p - ref.pattern(2, 3)).abs().max() < 0.05
    assert (run.logits().cpu() - ref.logits()).abs().max() < 0.25
    assert len(gpu.generate(ids, 5)) == 5
