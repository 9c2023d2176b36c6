"""Checkpoint fuzzing, reported: runs the seeded corpus of broken model folders that
tests/reliability/test_fuzz_checkpoints.py runs, and writes the count of cases and their
outcomes (per category, with one example message each) to benchmarks/results/fuzz.json.

    .venv/bin/python benchmarks/fuzz_report.py [--seed N]

About 15 s on two cores (the base checkpoints are built with transformers first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "fuzz.json"

# Measured once with this corpus against the loader as it was before the fixes (commit
# 907ab78), each case in a forked process with a 10 s limit.
BEFORE_FIXES = {
    "commit": "907ab78",
    "cases": 875,
    "problems": 64,
    "exceptions_other_than_CheckpointError": 35,
    "hangs_over_10_s": 9,
    "absurd_configs_that_loaded": 16,
    "unbounded_error_messages": 4,
    "examples": [
        "n_layer=10**12: building the empty model on the meta device never finished",
        "vocab_size=2**63: TypeError (int64 overflow) from torch.empty",
        "config.json nested 100,000 deep: RecursionError",
        "a 5000-digit integer in config.json or a safetensors header: ValueError",
        "model_type as a list: TypeError: unhashable type",
        "tokenizer ids beyond the embedding: IndexError at the first run",
        "layer_norm_epsilon=Infinity, rope_theta='1e-5' or true: loaded",
        "model.safetensors.index.json as a folder or a link loop: silently ignored",
    ],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    import torch

    from tests.reliability import fuzz_corpus as fuzz

    torch.set_num_threads(1)
    seed = fuzz.SEED if a.seed is None else a.seed
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        t0 = time.perf_counter()
        bases = fuzz.build_bases(Path(tmp) / "bases")
        build_s = time.perf_counter() - t0
        cases = fuzz.generate(seed)
        work = Path(tmp) / "work"
        work.mkdir()
        report = fuzz.run_all(cases, bases, work)
    summary = report.summary()
    summary["seed"] = seed
    examples: dict = {}
    for o in report.outcomes:
        examples.setdefault(o.category, {}).setdefault(o.result, f"{o.name}: {o.message}"[:240])
    out = {
        "what": "broken model folders loaded with explorer.checkpoints.load; every case must "
        "end in CheckpointError, or load and run when the damage is harmless",
        "summary": summary,
        "examples": examples,
        "problems": [
            {"case": o.name, "problem": o.problem, "result": o.result, "message": o.message}
            for o in report.problems
        ],
        "before_fixes": BEFORE_FIXES,
        "base_build_seconds": round(build_s, 1),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    s = summary
    print(
        f"{s['cases']} cases: {s['outcomes']} (expected {s['expected']}); {s['problems']} "
        f"problems; {s['seconds_total']} s, slowest case {s['seconds_max_case']} s"
    )
    for cat, counts in s["by_category"].items():
        print(f"  {cat:20s} {counts}")
    print(f"wrote {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
