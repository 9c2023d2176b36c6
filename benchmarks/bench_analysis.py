"""Analysis timings: the importance sweep (every head, then every layer's attention and MLP,
ablated one at a time with the incremental recompute) on the built-in demo model when present
and on a random-weight GPT-2-small-shape model (12 x 12, d=768) at T=64; on the latter also
head roles, logit lens, direct logit attribution, attention rollout and activation patching.

Writes benchmarks/results/analysis.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
T = 64


def build_gpt2_small(folder: Path) -> Path:
    import torch
    import transformers as tf

    from tests.tiny_models import write_tokenizer

    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    torch.manual_seed(0)
    cfg = tf.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024)
    tf.GPT2LMHeadModel(cfg).save_pretrained(folder)
    write_tokenizer(folder, cfg.vocab_size)
    return folder


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """The fastest of `repeats` calls (the machine is shared: the minimum is the least noisy)
    after one untimed warm-up call when repeats > 1."""
    if repeats > 1:
        fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def sweep_entry(lm, ids, repeats: int) -> dict:
    from explorer.analysis import Metric, importance_sweep
    from explorer.engine import Ablation

    run = lm.run(ids)
    top = run.logits([len(ids) - 1])[0].topk(2).indices.tolist()
    metric = Metric.logit_diff(len(ids) - 1, top[0], top[1])
    forward_s, _ = timed(lambda: lm.run(ids), 5)
    run.rerun(Ablation.of([(0, 0)]))  # warm up the ablated path
    sweep_s, result = timed(lambda: importance_sweep(lm, run, metric), repeats)
    s = lm.spec
    return {
        "shape": f"{s.n_layers} layers x {s.n_heads} heads, d={s.d_model}",
        "tokens": len(ids),
        "items": result.total,
        "forward_seconds": round(forward_s, 4),
        "sweep_seconds": round(sweep_s, 3),
        "sweep_in_forwards": round(sweep_s / forward_s, 1),
    }


def main() -> None:
    import torch

    from explorer.analysis import (
        Metric,
        activation_patching,
        attention_rollout,
        direct_logit_attribution,
        head_roles,
        logit_lens,
    )
    from explorer.checkpoints import load
    from explorer.checkpoints.demo import demo_available, demo_model_dir

    torch.set_num_threads(2)
    # the machine is shared: the load average says how much the numbers can be trusted
    out: dict = {"threads": 2, "dtype": "float32", "device": "cpu"}
    out["load_average_before"] = round(os.getloadavg()[0], 2)

    if demo_available():
        lm = load(demo_model_dir())
        g = torch.Generator().manual_seed(0)
        n = min(T, lm.spec.context_length) // 2
        half = torch.randint(0, lm.tokenizer.vocab_size, (n,), generator=g).tolist()
        out["demo"] = sweep_entry(lm, half + half, repeats=5)
    else:
        out["demo"] = None  # resources/demo-model is not there

    folder = build_gpt2_small(Path(tempfile.gettempdir()) / "attention-explorer-bench-gpt2-small")
    lm = load(folder)
    ids = torch.randint(0, lm.spec.vocab_size, (T,), generator=torch.Generator().manual_seed(1))
    ids = ids.tolist()
    entry = sweep_entry(lm, ids, repeats=1)
    run = lm.run(ids)
    target, foil = run.logits([T - 1])[0].topk(2).indices.tolist()
    corrupted_ids = list(ids)
    corrupted_ids[T - 8] = (ids[T - 8] + 1) % lm.spec.vocab_size  # 8 positions to patch
    corrupted = lm.run(corrupted_ids)
    metric = Metric.logit_diff(T - 1, target, foil)
    others = {
        "head_roles": lambda: head_roles(lm, run),
        "logit_lens": lambda: logit_lens(lm, run, target),
        "dla": lambda: direct_logit_attribution(lm, run, target, foil),
        "rollout": lambda: attention_rollout(lm, run),
        "patching_heads_and_resid": lambda: activation_patching(lm, run, corrupted, metric),
    }
    for name, fn in others.items():
        entry[f"{name}_seconds"] = round(timed(fn, 1 if name.startswith("patch") else 3)[0], 3)
    out["gpt2_small_shape_random"] = entry
    out["load_average_after"] = round(os.getloadavg()[0], 2)

    path = ROOT / "benchmarks" / "results" / "analysis.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
