"""Checkpoint fuzzing: 800+ broken model folders, each ending in CheckpointError (or loading,
when the damage is harmless) within a time bound. See fuzz_corpus.py for the cases;
`python benchmarks/fuzz_report.py` writes the same run to benchmarks/results/fuzz.json."""

from __future__ import annotations

import json

import pytest

from . import fuzz_corpus as fuzz


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_every_broken_folder_ends_in_a_clear_error(tiny, tmp_path, report_figures):
    bases = {name: tiny(config, fmt).folder for name, (config, fmt) in fuzz.BASES.items()}
    cases = fuzz.generate()
    assert len(cases) >= 500
    assert len({c.name for c in cases}) == len(cases)
    report = fuzz.run_all(cases, bases, tmp_path)
    s = report.summary()
    report_figures(
        "checkpoint fuzz",
        f"{s['cases']} cases: {s['outcomes']} (expected {s['expected']}), "
        f"{s['problems']} problems, {s['seconds_total']} s, slowest {s['seconds_max_case']} s "
        f"({s['slowest_case']}), peak RSS +{s['peak_rss_growth_mb']} MB",
    )
    problems = [f"{o.name}: {o.problem} [{o.result}] {o.message[:200]}" for o in report.problems]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    # harmless damage really is harmless, and every category was exercised both ways
    assert s["outcomes"].get("ok", 0) >= 50 and s["outcomes"].get("error", 0) >= 500
    assert report.seconds < 120, s
    assert report.peak_rss_growth_mb < 500, s
    json.dumps(s)  # the summary is plain JSON (benchmarks/fuzz_report.py writes it)


def test_the_corpus_is_the_same_for_the_same_seed():
    a = [(c.name, c.seed, c.expect) for c in fuzz.generate()]
    b = [(c.name, c.seed, c.expect) for c in fuzz.generate()]
    assert a == b
