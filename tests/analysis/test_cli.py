"""`attention-explorer analyze`: the same numbers as the API, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.analysis import (
    Metric,
    activation_patching,
    direct_logit_attribution,
    head_roles,
    importance_sweep,
)
from explorer.cli import main

PROMPT = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"


def analyze(capsys, folder, *args):
    code = main(["analyze", str(folder), "--prompt", PROMPT, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def as_array(x):
    return np.array([[np.nan if v is None else v for v in row] for row in x], dtype=float)


@pytest.fixture(scope="module")
def gpt2(tiny):
    return tiny("gpt2")


def test_every_analysis_prints_json_and_text(gpt2, capsys):
    common = ["--target", " Mary", "--foil", " John", "--corrupted", CORRUPTED]
    for what in ("heads", "sweep", "lens", "dla", "patch", "rollout"):
        code, out, err = analyze(capsys, gpt2.folder, "--what", what, *common, "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["what"] == what and data["model"]["n_layers"] == 3
        assert len(data["tokens"]) == len(gpt2.lm.encode(PROMPT)) and "result" in data
        code, text, err = analyze(capsys, gpt2.folder, "--what", what, *common)
        assert code == 0 and text.startswith(gpt2.folder.name), err


def test_json_numbers_equal_the_api(gpt2, capsys):
    lm = gpt2.lm
    ids = lm.encode(PROMPT)
    run = lm.run(ids)
    mary, john = lm.tokenizer.token_id(" Mary"), lm.tokenizer.token_id(" John")
    tj = ["--target", " Mary", "--foil", " John", "--json"]

    _, out, _ = analyze(capsys, gpt2.folder, "--what", "sweep", *tj)
    sweep = importance_sweep(lm, run, Metric.logit_diff(len(ids) - 1, mary, john))
    np.testing.assert_allclose(as_array(json.loads(out)["result"]["heads"]), sweep.heads, atol=1e-5)

    _, out, _ = analyze(capsys, gpt2.folder, "--what", "dla", "--position", "9", *tj)
    dla = direct_logit_attribution(lm, run, mary, john, 9)
    res = json.loads(out)["result"]
    np.testing.assert_allclose(as_array(res["heads"]), dla.heads, atol=1e-5)
    assert res["logit"] == pytest.approx(dla.logit, abs=1e-5)

    _, out, _ = analyze(capsys, gpt2.folder, "--what", "heads", "--json")
    roles = head_roles(lm, run)
    res = json.loads(out)["result"]
    np.testing.assert_allclose(as_array(res["previous_token"]), roles.previous_token, atol=1e-4)

    _, out, _ = analyze(capsys, gpt2.folder, "--what", "patch", "--corrupted", CORRUPTED, *tj)
    patch = activation_patching(
        lm, run, lm.run(lm.encode(CORRUPTED)), Metric.logit_diff(len(ids) - 1, mary, john)
    )
    res = json.loads(out)["result"]
    np.testing.assert_allclose(as_array(res["heads"]), patch.heads, atol=1e-5)


def test_defaults_without_target(gpt2, capsys):
    lm = gpt2.lm
    run = lm.run(lm.encode(PROMPT))
    top = int(run.logits([-1])[0].argmax())
    _, out, _ = analyze(capsys, gpt2.folder, "--what", "dla", "--json")
    assert json.loads(out)["result"]["target"] == top
    _, out, _ = analyze(capsys, gpt2.folder, "--what", "sweep", "--position", "3", "--json")
    assert json.loads(out)["result"]["metric"]["kind"] == "loss"
    _, out, _ = analyze(capsys, gpt2.folder, "--what", "sweep", "--json")
    res = json.loads(out)["result"]
    assert res["metric"]["kind"] == "kl" and res["base_value"] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--what", "dla", "--target", " Mary and"], "not a single token"),
        (["--what", "patch"], "--corrupted"),
        (["--what", "patch", "--corrupted", "Mary"], "same number"),
        (["--what", "lens", "--position", "99"], "outside the prompt"),
        (["--what", "sweep", "--ablate", "7.1"], "no such head"),
        (["--what", "sweep", "--metric", "logit_diff"], "needs --target"),
    ],
)
def test_bad_input_is_one_line_on_stderr(gpt2, capsys, args, message):
    code, out, err = analyze(capsys, gpt2.folder, *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_post_ln_model_cannot_be_decomposed(tiny, capsys):
    code, _, err = analyze(capsys, tiny("bert-mlm").folder, "--what", "dla")
    assert code == 2 and "post-LN" in err
