"""The committed demo model in resources/demo-model: it loads everywhere and its circuits are
really there (measured by explorer.demo.report, the same code as `attention-explorer
demo-report`)."""

from __future__ import annotations

import json

import pytest
import torch

from explorer.checkpoints import load
from explorer.checkpoints.demo import demo_available, demo_model_dir, example_prompts
from explorer.demo import corpus
from explorer.demo.report import check, report

from .helpers import transformers_logits

FOLDER = demo_model_dir()
pytestmark = pytest.mark.skipif(not demo_available(), reason="no demo model in resources/")


@pytest.fixture(scope="module")
def lm():
    return load(FOLDER)


@pytest.fixture(scope="module")
def measured(lm):
    return report(lm, seed=1234)


def test_the_folder_is_small_and_standard():
    files = {p.name: p.stat().st_size for p in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert sum(files.values()) <= 10 * 1024 * 1024
    cfg = json.loads((FOLDER / "config.json").read_text())
    assert cfg["model_type"] == "llama"
    assert cfg["num_hidden_layers"] <= 4 and cfg["num_attention_heads"] <= 4


def test_loads_with_our_loader_and_with_transformers_alike(lm):
    ids = lm.encode("When Mary and John went to the store, John gave a drink to")
    assert lm.tokenizer.displays(ids)[:2] == ["When", " Mary"]
    ours = lm.run(ids).logits()
    theirs = transformers_logits(FOLDER, ids)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    assert lm.tokenizer.vocab_size == len(corpus.vocabulary())


def test_the_issue_requirements_hold(measured):
    assert check(measured) == []


def test_induction(measured):
    ind = measured["induction"]
    assert ind["loss_repeated_half"] <= 0.5
    assert abs(ind["loss_first_half"] - ind["chance_loss"]) < 0.5
    assert max(max(r) for r in ind["induction_scores"]) >= 0.5
    assert max(max(r) for r in ind["previous_token_scores"]) >= 0.5
    assert ind["ablation_loss_increase"] >= 1.0
    # previous-token heads sit below the induction heads they feed
    first_prev = min(int(h.split(".")[0]) for h in ind["previous_token_heads"])
    assert first_prev < int(ind["best_induction_head"]["head"].split(".")[0])


def test_ioi(measured):
    io = measured["ioi"]
    assert io["accuracy"] >= 0.95 and io["mean_logit_diff"] >= 2.0
    assert io["logit_diff_drop_top_heads"] >= max(1.0, 0.3 * io["mean_logit_diff"])
    assert io["accuracy_top_heads_ablated"] < io["accuracy"]
    drops = [h["logit_diff_drop"] for h in io["head_ranking"]]
    assert drops == sorted(drops, reverse=True) and len(drops) == 16


def test_example_prompts_show_each_circuit(lm):
    prompts = example_prompts()
    names = [p["name"] for p in prompts]
    assert len(names) == len(set(names)) >= 4
    kinds = " ".join(names).lower()
    assert "induction" in kinds and "ioi" in kinds and "plain" in kinds
    unk = lm.tokenizer.tok.token_to_id(corpus.UNK)
    for p in prompts:
        ids = lm.encode(p["text"])
        assert unk not in ids, p["name"]
        if "never seen together" in p["name"] or "never seen together" in p.get("description", ""):
            pieces = lm.tokenizer.displays(ids)
            names = [x.strip() for x in pieces if x.strip() in corpus.NAMES]
            assert corpus.name_pair_held_out(*sorted(set(names))), p["name"]
        if "target" not in p:
            continue
        target = lm.tokenizer.token_id(p["target"])
        assert target is not None, p["target"]
        logits = lm.run(ids).logits([len(ids) - 1])[0]
        assert int(logits.argmax()) == target, p["name"]
        if "foil" in p:
            foil = lm.tokenizer.token_id(p["foil"])
            assert logits[target] - logits[foil] >= 2.0, p["name"]


def test_demo_report_cli_prints_the_same_measurements(measured, capsys):
    from explorer.cli import main

    assert main(["demo-report", "--seed", "1234"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads(json.dumps(measured))  # deterministic given the seed


def test_readme_reports_the_measurements(measured):
    text = (FOLDER / "README.md").read_text()
    saved = json.loads((FOLDER / "report.json").read_text())
    assert saved["ioi"]["top_heads"] == measured["ioi"]["top_heads"]
    assert saved["induction"]["induction_heads"] == measured["induction"]["induction_heads"]
    assert f"{measured['ioi']['mean_logit_diff']:.2f}" in text
    for head in measured["induction"]["induction_heads"] + measured["ioi"]["top_heads"]:
        assert head in text
