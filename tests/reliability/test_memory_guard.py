"""Memory guard: loading a model or running a long prompt that would not fit is refused with
the numbers, before anything large is allocated."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from explorer.checkpoints import CheckpointError, load, memory
from explorer.engine import ModelSpec

GB = 10**9


def fake_llama_7b(folder):
    """A Llama-2-7B-shaped folder whose weights file is sparse: the header and the file size
    are those of the real 27 GB model, the disk holds almost nothing."""
    cfg = {
        "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
        "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    }  # fmt: skip
    d, dm, V = 4096, 11008, 32000
    shapes = {"model.embed_tokens.weight": [V, d], "lm_head.weight": [V, d],
              "model.norm.weight": [d]}  # fmt: skip
    for l in range(32):
        p = f"model.layers.{l}."
        for n in ("q", "k", "v", "o"):
            shapes[p + f"self_attn.{n}_proj.weight"] = [d, d]
        shapes[p + "mlp.gate_proj.weight"] = [dm, d]
        shapes[p + "mlp.up_proj.weight"] = [dm, d]
        shapes[p + "mlp.down_proj.weight"] = [d, dm]
        shapes[p + "input_layernorm.weight"] = [d]
        shapes[p + "post_attention_layernorm.weight"] = [d]
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)  # bfloat16
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)  # sparse
    return folder


@pytest.fixture
def available(monkeypatch):
    """available(n): make the guard believe n bytes are free."""

    def set_to(n):
        monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": n)

    return set_to


def test_a_model_too_large_for_memory_is_refused_with_the_numbers(tmp_path, available):
    folder = fake_llama_7b(tmp_path / "llama-7b")
    assert (folder / "model.safetensors").stat().st_size > 13 * GB  # sparse: no disk used
    available(6_100_000_000)
    with pytest.raises(CheckpointError) as e:
        load(folder)
    msg = str(e.value)
    assert "needs 27.0 GB" in msg and "6.1 GB available" in msg, msg
    assert "6.7 billion parameters at float32" in msg
    with pytest.raises(CheckpointError, match=r"needs 13\.5 GB .* at bfloat16"):
        load(folder, dtype="bfloat16")


def test_the_guard_runs_before_anything_is_built(tmp_path, available, monkeypatch):
    """Refused from the numbers: the model is never constructed."""
    from explorer.checkpoints import hf

    folder = fake_llama_7b(tmp_path / "llama-7b")
    built = []
    monkeypatch.setattr(hf, "build_model", lambda *a, **k: built.append(1))
    available(1 * GB)
    with pytest.raises(CheckpointError, match="needs"):
        load(folder)
    assert not built


def test_a_model_that_fits_loads(tiny, available):
    spec = tiny("gpt2").lm.spec
    available(memory.weights_bytes(spec, torch.float32) + 1)
    load(tiny("gpt2").folder)
    available(memory.weights_bytes(spec, torch.float32) - 1)
    with pytest.raises(CheckpointError, match="available"):
        load(tiny("gpt2").folder)
    available(None)  # unknown: never refuses
    load(tiny("gpt2").folder)


def test_the_run_estimate_covers_what_a_run_keeps(tiny):
    lm = tiny("llama-gqa").lm
    T = 100
    run = lm.run(list(range(T)))
    kept = sum(t.numel() * t.element_size() for t in run.resid + run.q + run.k)
    kept += run.final_resid.nbytes + run.hidden.nbytes
    est = memory.run_bytes(lm.spec, T, lm.dtype, runs=1)
    assert kept <= est < 50 * kept  # plus one layer's work, the patterns and a logits chunk
    assert memory.run_bytes(lm.spec, T, lm.dtype, runs=2) > est
    assert memory.run_bytes(lm.spec, 2 * T, lm.dtype) > est


def test_a_long_prompt_that_would_not_fit_is_refused(available):
    spec = ModelSpec(
        n_layers=32, n_heads=32, d_model=4096, d_head=128, d_mlp=11008, vocab_size=32000,
        context_length=131072, mlp="gated", norm="rmsnorm", positions="rotary",
    )  # fmt: skip
    available(6_100_000_000)
    memory.check_run(spec, 1000, torch.bfloat16)  # ~1k tokens fit
    with pytest.raises(MemoryError) as e:
        memory.check_run(spec, 100_000, torch.bfloat16, runs=2)
    msg = str(e.value)
    assert "100,000 tokens needs" in msg and "6.1 GB available" in msg, msg
    fit = int(msg.rsplit("at most about ", 1)[1].split()[0].replace(",", ""))
    assert memory.run_bytes(spec, fit, torch.bfloat16, 2) <= 6_100_000_000
    assert memory.run_bytes(spec, fit + 1, torch.bfloat16, 2) > 6_100_000_000
    assert isinstance(e.value, memory.NotEnoughMemory) and e.value.needed > e.value.available


def test_available_memory_is_read_from_the_system():
    if not Path("/proc/meminfo").is_file():
        pytest.skip("no /proc/meminfo here")
    n = memory.available_bytes()
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < n <= total
    assert memory.resident_bytes() > 10**7  # this process: torch alone is more


def test_a_container_limit_lowers_what_is_available(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory.max").write_text("2147483648\n")
    (root / "memory.current").write_text("1073741824\n")
    (root / "memory.stat").write_text("anon 1\ninactive_file 536870912\n")
    assert memory._cgroup_available(v2=root, v1=tmp_path / "none") == 2**31 - 2**30 + 2**29
    (root / "memory.max").write_text("max\n")
    assert memory._cgroup_available(v2=root, v1=tmp_path / "none") is None


@pytest.mark.parametrize(
    "n, text", [(14_200_000_000, "14.2 GB"), (350_000_000, "350 MB"), (10**30, "10^21 GB")]
)
def test_sizes_read_well(n, text):
    assert text in memory.gb(n)


def test_worker_refuses_a_run_that_would_not_fit(tiny, available):
    """The app's worker checks before each run; the message reaches the prompt notice as a
    Failure (see test_worker_faults for the window)."""
    pytest.importorskip("PySide6")
    from explorer.app.compute import LoadRequest, RunRequest, Worker

    w = Worker(lambda item: None)
    w.do_load(LoadRequest(str(tiny("gpt2").folder)))
    r = w.do_run(RunRequest("the store " * 10))
    available(1000)
    with pytest.raises(MemoryError, match="needs .* available"):
        w.do_run(RunRequest("the store " * 20))
    assert w.clean.tokens.tolist() == r.ids  # the previous run is kept


def test_on_a_gpu_the_guard_reads_the_device_memory(monkeypatch):
    spec = ModelSpec(
        n_layers=32, n_heads=32, d_model=4096, d_head=128, d_mlp=11008, vocab_size=32000,
        context_length=4096, mlp="gated",
    )  # fmt: skip
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * GB, 80 * GB))
    assert memory.available_bytes("cuda:0") == 8 * GB
    with pytest.raises(CheckpointError, match=r"13\.5 GB of GPU memory .* 8\.0 GB available"):
        memory.check_load(spec, torch.bfloat16, "llama", device="cuda")
    with pytest.raises(MemoryError, match="of GPU memory"):
        memory.check_run(spec, 50_000, torch.bfloat16, runs=2, device="cuda:0")

    def no_cuda(device=None):
        raise RuntimeError("no CUDA GPUs are available")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_cuda)
    assert memory.available_bytes("cuda") is None


def test_the_window_shows_why_a_model_was_refused(qtbot, window, tmp_path, available, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    available(6_100_000_000)
    window.load_model(str(fake_llama_7b(tmp_path / "llama-7b")))
    qtbot.waitUntil(lambda: bool(shown), timeout=10000)
    assert "needs 27.0 GB" in shown[0] and "6.1 GB available" in shown[0]
    assert window.state.model is None and window.controller._thread.is_alive()
