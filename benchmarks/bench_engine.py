"""Engine vs transformers (and TransformerLens when installed), side by side in one run.

A random-weight GPT-2-small-shape model (12 layers x 12 heads, d=768, vocab 50257) is built with
transformers, saved to a temporary folder and loaded with our loader. For T = 64, 256, 1024 it
times, interleaved so that a busy machine slows every variant alike, the median of several runs:

  ours          LoadedModel.run (keeps the residual input, Q and K of every layer: any head's
                pattern on demand) + logits of the last position
  hf_sdpa       transformers forward, sdpa attention, logits of the last position only
  hf_eager_attn transformers forward, eager attention, output_attentions=True
  tl_cache      TransformerLens run_with_cache on the same weights (only when installed)
  rerun_l11     toggling one head in layer 11: Run.rerun recomputes layer 11 only
  rerun_l6      toggling one head in layer 6: Run.rerun recomputes layers 6..11

and at T=1024 the memory our Run keeps (and the peak extra memory while computing it) against
the size of the attentions transformers returns. Writes benchmarks/results/engine.json.

Run with `make bench`; about two minutes on two cores.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Idle OpenMP threads sleep instead of spinning: on a machine shared with other work, spinning
# threads fight the other processes and every parallel region waits for a busy core (2-3x
# slower on this 2-core machine). Applies to every variant alike; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.checkpoints import load  # noqa: E402

THREADS = 2
LENGTHS = (64, 256, 1024)
REPEATS = {64: 7, 256: 5, 1024: 7}
TARGETS = {
    "ours_vs_hf_sdpa": ("<=", 1.05),
    "ours_vs_hf_eager_attn@1024": ("<=", 0.6),
    "rerun_l11_vs_full@1024": ("<=", 0.15),
    "rerun_l6_vs_full@1024": ("<=", 0.65),
    "memory_kept_vs_hf_attentions@1024": ("<=", 0.2),
    "memory_peak_extra_vs_hf_attentions@1024": ("<=", 0.2),
}


def build_checkpoint(folder: Path):
    """Random GPT-2-small-shape weights saved with save_pretrained, plus a byte tokenizer."""
    import transformers as T
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    cfg = T.GPT2Config(
        n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024, bos_token_id=0
    )
    torch.manual_seed(0)
    T.GPT2LMHeadModel(cfg).save_pretrained(folder)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE({c: i for i, c in enumerate(sorted(alphabet))}, []))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(folder / "tokenizer.json"))


def load_hf(folder: Path, attn: str):
    import transformers as T

    return T.GPT2LMHeadModel.from_pretrained(folder, attn_implementation=attn).eval()


def load_transformer_lens(hf_model):
    """A HookedTransformer with the same weights, or the reason there is none."""
    try:
        import transformer_lens as tl
    except Exception as e:  # not installed: the optional column is skipped
        return None, f"not installed ({type(e).__name__})"
    try:
        from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

        c = hf_model.config
        cfg = tl.HookedTransformerConfig(
            n_layers=c.n_layer,
            d_model=c.n_embd,
            n_heads=c.n_head,
            d_head=c.n_embd // c.n_head,
            d_mlp=4 * c.n_embd,
            d_vocab=c.vocab_size,
            n_ctx=c.n_positions,
            act_fn="gelu_new",
            normalization_type="LN",
            default_prepend_bos=False,
        )
        model = tl.HookedTransformer(cfg)
        model.load_state_dict(convert_gpt2_weights(hf_model, cfg), strict=False)
        return model.eval(), ""
    except Exception as e:  # e.g. TransformerLens 4.x has no HookedTransformer
        return None, f"{type(e).__name__}: {e}"[:200]


def rss_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset VmHWM (Linux: writing 5 to clear_refs), so the next peak is this step's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_extra_bytes(fn) -> tuple[object, int | None]:
    """Call fn() and return (its result, peak resident memory above the start, in bytes)."""
    gc.collect()
    ok = reset_peak()
    before = rss_kb("VmRSS")
    result = fn()
    peak = rss_kb("VmHWM")
    if not ok or before is None or peak is None:
        return result, None
    return result, (peak - before) * 1024


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind these tensors (views are counted once)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()
    return total


def run_cache_bytes(run) -> int:
    return tensor_bytes([*run.resid, *run.q, *run.k, *run.head_means, run.final_resid, run.hidden])


def time_once(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def bench_length(T, lm, hf_sdpa, hf_eager, tl_model) -> dict:
    g = torch.Generator().manual_seed(T)
    ids = torch.randint(0, 50257, (T,), generator=g)
    batch = ids[None]
    base = lm.run(ids)  # the run an ablation toggle starts from
    last = [T - 1]

    def ours():
        lm.run(ids).logits(last)

    def sdpa():
        hf_sdpa(batch, logits_to_keep=1)

    def eager_attn():
        hf_eager(batch, output_attentions=True, logits_to_keep=1)

    def rerun(layer):
        return lambda: base.rerun(base.ablation.toggled(layer, 0)).logits(last)

    variants = {
        "ours": ours,
        "hf_sdpa": sdpa,
        "hf_eager_attn": eager_attn,
        "rerun_l11": rerun(11),
        "rerun_l6": rerun(6),
    }
    if tl_model is not None:
        variants["tl_cache"] = lambda: tl_model.run_with_cache(batch)
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        for fn in variants.values():  # warm-up
            fn()
        for _ in range(REPEATS[T]):
            for name, fn in variants.items():
                wall, used = time_once(fn)
                times[name].append(wall)
                cpu[name].append(used)
                gc.collect()
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "T": T,
        "repeats": REPEATS[T],
        "median_ms": {k: round(v * 1000, 2) for k, v in med.items()},
        "median_cpu_ms": {k: round(v * 1000, 2) for k, v in med_cpu.items()},
        "all_ms": {k: [round(x * 1000, 1) for x in v] for k, v in times.items()},
        "ratios": ratios(med),
        "cpu_time_ratios": ratios(med_cpu),
    }


def ratios(med: dict) -> dict:
    out = {
        "ours_vs_hf_sdpa": round(med["ours"] / med["hf_sdpa"], 3),
        "ours_vs_hf_eager_attn": round(med["ours"] / med["hf_eager_attn"], 3),
        "rerun_l11_vs_full": round(med["rerun_l11"] / med["ours"], 3),
        "rerun_l6_vs_full": round(med["rerun_l6"] / med["ours"], 3),
    }
    if "tl_cache" in med:
        out["ours_vs_tl_cache"] = round(med["ours"] / med["tl_cache"], 3)
    return out


def bench_memory(folder: Path) -> dict:
    """Memory at T=1024, measured in a fresh process.

    MALLOC_MMAP_THRESHOLD_ makes glibc return large freed blocks to the system, so resident
    memory follows live tensors and the peak above the starting point is the step's own.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    cmd = [sys.executable, __file__, "--memory-child", str(folder)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_child(folder: Path) -> int:
    torch.set_num_threads(THREADS)
    lm = load(folder)
    hf_eager = load_hf(folder, "eager")
    T = 1024
    ids = torch.randint(0, 50257, (T,), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        hf_eager(ids[None, :64], output_attentions=True, logits_to_keep=1)  # warm-up
        lm.run(ids[:64]).logits([63])
        run, ours_peak = peak_extra_bytes(lambda: lm.run(ids))
        kept = run_cache_bytes(run)
        del run
        out, hf_peak = peak_extra_bytes(
            lambda: hf_eager(ids[None], output_attentions=True, logits_to_keep=1)
        )
        attn = tensor_bytes(out.attentions)
        del out
    mb = 1 / 2**20
    print(
        json.dumps(
            {
                "T": T,
                "hf_attentions_mb": round(attn * mb, 1),
                "ours_run_cache_mb": round(kept * mb, 1),
                "ours_peak_extra_mb": None if ours_peak is None else round(ours_peak * mb, 1),
                "hf_eager_attn_peak_extra_mb": None if hf_peak is None else round(hf_peak * mb, 1),
                "ratio_run_cache_vs_hf_attentions": round(kept / attn, 3),
                "ratio_peak_extra_vs_hf_attentions": None
                if ours_peak is None
                else round(ours_peak / attn, 3),
            }
        )
    )
    return 0


def check(results, memory) -> dict:
    by_t = {r["T"]: r["ratios"] for r in results}
    worst_sdpa = max(r["ours_vs_hf_sdpa"] for r in by_t.values())
    got = {
        "ours_vs_hf_sdpa": worst_sdpa,
        "ours_vs_hf_eager_attn@1024": by_t[1024]["ours_vs_hf_eager_attn"],
        "rerun_l11_vs_full@1024": by_t[1024]["rerun_l11_vs_full"],
        "rerun_l6_vs_full@1024": by_t[1024]["rerun_l6_vs_full"],
        "memory_kept_vs_hf_attentions@1024": memory["ratio_run_cache_vs_hf_attentions"],
        "memory_peak_extra_vs_hf_attentions@1024": memory["ratio_peak_extra_vs_hf_attentions"],
    }
    return {
        k: {
            "value": v,
            "target": f"{TARGETS[k][0]} {TARGETS[k][1]}",
            "met": None if v is None else v <= TARGETS[k][1],
        }
        for k, v in got.items()
    }


def table(results, memory, targets, tl_note) -> str:
    cols = ["ours", "hf_sdpa", "hf_eager_attn", "tl_cache", "rerun_l11", "rerun_l6"]
    lines = ["median ms (" + ", ".join(f"T={r['T']}: {r['repeats']} runs" for r in results) + ")"]
    lines.append(f"{'T':>6} " + " ".join(f"{c:>14}" for c in cols))
    for r in results:
        m = r["median_ms"]
        lines.append(
            f"{r['T']:>6} " + " ".join(f"{m[c]:>14.1f}" if c in m else f"{'-':>14}" for c in cols)
        )
    lines.append("")
    lines.append("ratios of wall-clock time")
    rcols = [
        "ours_vs_hf_sdpa",
        "ours_vs_hf_eager_attn",
        "ours_vs_tl_cache",
        "rerun_l11_vs_full",
        "rerun_l6_vs_full",
    ]
    lines.append(f"{'T':>6} " + " ".join(f"{c:>22}" for c in rcols))
    for r in results:
        x = r["ratios"]
        lines.append(
            f"{r['T']:>6} " + " ".join(f"{x[c]:>22.3f}" if c in x else f"{'-':>22}" for c in rcols)
        )
    lines.append("")
    lines.append("ratios of process CPU time (less sensitive to other work on the machine)")
    for r in results:
        x = r["cpu_time_ratios"]
        lines.append(
            f"{r['T']:>6} " + " ".join(f"{x[c]:>22.3f}" if c in x else f"{'-':>22}" for c in rcols)
        )
    lines.append("")
    lines.append(
        f"memory at T=1024: transformers' attentions {memory['hf_attentions_mb']} MB; "
        f"our Run keeps {memory['ours_run_cache_mb']} MB "
        f"({memory['ratio_run_cache_vs_hf_attentions']}x); peak extra while computing it "
        f"{memory['ours_peak_extra_mb']} MB ({memory['ratio_peak_extra_vs_hf_attentions']}x); "
        f"transformers eager+attentions peak extra {memory['hf_eager_attn_peak_extra_mb']} MB"
    )
    if tl_note:
        lines.append(f"TransformerLens: skipped, {tl_note}")
    lines.append("")
    lines.append("targets")
    for k, v in targets.items():
        value = "n/a" if v["value"] is None else f"{v['value']:.3f}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[v["met"]]
        lines.append(f"  {k:<40} {value:>7}  target {v['target']:<8} {verdict}")
    return "\n".join(lines)


def main() -> int:
    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gpt2-small-random"
        build_checkpoint(folder)
        lm = load(folder)
        hf_sdpa = load_hf(folder, "sdpa")
        hf_eager = load_hf(folder, "eager")
        tl_model, tl_note = load_transformer_lens(hf_sdpa)
        # the same weights everywhere: a quick parity check before timing anything
        with torch.inference_mode():
            ids = torch.arange(100, 132)
            diff = (lm.run(ids).logits() - hf_sdpa(ids[None]).logits[0]).abs().max().item()
        assert diff < 1e-3, f"our model and transformers disagree ({diff})"
        results = []
        for T in LENGTHS:
            results.append(bench_length(T, lm, hf_sdpa, hf_eager, tl_model))
            print(f"T={T} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        del lm, hf_sdpa, hf_eager, tl_model
        gc.collect()
        memory = bench_memory(folder)
    targets = check(results, memory)
    load_after = os.getloadavg()
    report = {
        "model": "random GPT-2 small shape (12 layers, 12 heads, d=768, vocab 50257), float32",
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "notes": [
            "ours = LoadedModel.run (residual input, Q, K per layer kept) + last-position logits",
            "hf_* = transformers GPT2LMHeadModel with logits_to_keep=1 (last position only)",
            "rerun_lN = Run.rerun toggling head N.0 from a cached run (recompute from layer N)",
            "runs interleaved across variants; medians of wall-clock time (targets) and of "
            "process CPU time. A load average above the thread count means other work shared "
            "the cores: absolute times are then inflated, ratios less so",
            "memory measured in a fresh process with MALLOC_MMAP_THRESHOLD_=131072",
        ],
        "parity_max_abs_logit_diff": diff,
        "transformer_lens": "measured" if not tl_note else f"skipped: {tl_note}",
        "lengths": results,
        "memory": memory,
        "targets": targets,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = ROOT / "benchmarks" / "results" / "engine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results, memory, targets, tl_note))
    print(
        f"\nload average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cpus; "
        f"wrote {out.relative_to(ROOT)} ({report['seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-child"]:
        sys.exit(memory_child(Path(sys.argv[2])))
    sys.exit(main())
