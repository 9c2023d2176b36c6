"""The headless CLI: `attention-explorer inspect` (in-process via main, plus one subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.cli import main
from explorer.engine import Ablation

PROMPT = "When Mary and John went to the store, John gave a drink to"
MODEL_FIELDS = {
    "architecture",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "d_model",
    "vocab_size",
    "context_length",
}


def inspect(capsys, *args):
    code = main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def inspect_json(capsys, *args):
    code, out, err = inspect(capsys, *args, "--json")
    assert code == 0, err
    assert out.count("\n") == 1  # one JSON object on one line
    return json.loads(out)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_json_schema_and_values(tiny, capsys, name):
    t = tiny(name)
    out = inspect_json(capsys, t.folder, "--prompt", PROMPT, "--top-k", 4)
    lm = t.lm
    s = lm.spec
    assert MODEL_FIELDS <= set(out["model"])
    assert out["model"]["architecture"] == s.architecture
    assert out["model"]["n_layers"] == s.n_layers and out["model"]["n_heads"] == s.n_heads
    assert out["model"]["n_kv_heads"] == s.n_kv_heads and out["model"]["d_model"] == s.d_model
    assert out["model"]["vocab_size"] == s.vocab_size
    assert out["model"]["context_length"] == s.context_length
    ids = lm.encode(PROMPT)
    assert [tok["id"] for tok in out["tokens"]] == ids
    assert [tok["text"] for tok in out["tokens"]] == lm.tokenizer.displays(ids)
    assert "".join(tok["text"] for tok in out["tokens"]) == PROMPT
    assert len(out["positions"]) == len(ids)
    run = lm.run(ids)
    loss = run.loss()
    for i, pos in enumerate(out["positions"]):
        assert set(pos) >= {"loss", "top_k"}
        if i == len(ids) - 1:
            assert pos["loss"] is None
        else:
            assert pos["loss"] == pytest.approx(float(loss[i]), abs=1e-5)
        assert len(pos["top_k"]) == 4
        top = run.top_k(i, 4)
        assert [e["id"] for e in pos["top_k"]] == top.ids
        for e in pos["top_k"]:
            assert set(e) == {"id", "text", "logit", "prob"}
            assert isinstance(e["id"], int) and isinstance(e["text"], str)
            assert 0 <= e["prob"] <= 1
            assert e["text"] == lm.tokenizer.display(e["id"])
        probs = [e["prob"] for e in pos["top_k"]]
        assert probs == sorted(probs, reverse=True)
        assert pos["top_k"][0]["logit"] == pytest.approx(float(run.logits([i])[0].max()), abs=1e-5)


def test_json_for_bert_with_and_without_mlm_head(tiny, capsys):
    out = inspect_json(capsys, tiny("bert").folder, "--prompt", "When Mary went")
    assert out["model"]["architecture"] == "bert"
    assert out["tokens"][0]["text"] == "[CLS]" and out["tokens"][-1]["text"] == "[SEP]"
    assert all(p["loss"] is None and p["top_k"] == [] for p in out["positions"])
    out = inspect_json(capsys, tiny("bert-mlm").folder, "--prompt", "When Mary went", "--top-k", 3)
    assert all(p["loss"] is None and len(p["top_k"]) == 3 for p in out["positions"])


@pytest.mark.parametrize("name", ["gpt2", "neox", "bert"])
def test_save_npz(tiny, capsys, tmp_path, name):
    t = tiny(name)
    path = tmp_path / "out.npz"
    code, out, err = inspect(capsys, t.folder, "--prompt", PROMPT, "--save-npz", path)
    assert code == 0, err
    assert out.strip()  # the readable table
    data = np.load(path)
    s = t.lm.spec
    ids = t.lm.encode(PROMPT)
    T = len(ids)
    run = t.lm.run(ids)
    assert data["token_ids"].tolist() == ids
    assert data["hidden"].shape == (T, s.d_model)
    np.testing.assert_allclose(data["hidden"], run.hidden.numpy(), atol=1e-6)
    att = data["attention"]
    assert att.shape == (s.n_layers, s.n_heads, T, T) and att.dtype == np.float32
    for l in range(s.n_layers):
        for h in range(s.n_heads):
            np.testing.assert_allclose(att[l, h], run.pattern(l, h).numpy(), atol=1e-6)
    if s.has_lm_head:
        assert data["logits"].shape == (T, s.vocab_size)
        np.testing.assert_allclose(data["logits"], run.logits().numpy(), atol=1e-5)
    else:
        assert "logits" not in data


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablate_reflects_the_engine(tiny, capsys, tmp_path, mode):
    t = tiny("llama-gqa")
    path = tmp_path / "ablated.npz"
    ablate = "0.1,2.3,1.0"
    out = inspect_json(
        capsys,
        t.folder,
        "--prompt",
        PROMPT,
        "--ablate",
        ablate,
        "--ablate-mode",
        mode,
        "--save-npz",
        path,
    )
    ids = t.lm.encode(PROMPT)
    ablation = Ablation.parse(ablate, mode)
    run = t.lm.run(ids, ablation)
    clean = t.lm.run(ids)
    assert out["ablation"] == ablation.describe()
    data = np.load(path)
    np.testing.assert_allclose(data["logits"], run.logits().numpy(), atol=1e-5)
    assert not np.allclose(data["logits"], clean.logits().numpy(), atol=1e-3)
    np.testing.assert_allclose(data["attention"][2], run.layer_patterns(2).numpy(), atol=1e-6)
    assert not np.allclose(data["attention"][2], clean.layer_patterns(2).numpy(), atol=1e-4)
    np.testing.assert_allclose(data["attention"][0], clean.layer_patterns(0).numpy(), atol=1e-6)
    for i, pos in enumerate(out["positions"][:-1]):
        assert pos["loss"] == pytest.approx(float(run.loss()[i]), abs=1e-5)
        assert [e["id"] for e in pos["top_k"]] == run.top_k(i, 5).ids


def test_ablate_sublayers(tiny, capsys, tmp_path):
    t = tiny("gpt2")
    path = tmp_path / "sub.npz"
    out = inspect_json(
        capsys, t.folder, "--prompt", PROMPT, "--ablate", "L1.attn,L2.mlp,0.3", "--save-npz", path
    )
    ablation = Ablation.of([(0, 3)], attn_layers=[1], mlp_layers=[2])
    assert out["ablation"] == ablation.describe()
    run = t.lm.run(t.lm.encode(PROMPT), ablation)
    np.testing.assert_allclose(np.load(path)["logits"], run.logits().numpy(), atol=1e-5)
    for i, pos in enumerate(out["positions"][:-1]):
        assert pos["loss"] == pytest.approx(float(run.loss()[i]), abs=1e-5)
        assert [e["id"] for e in pos["top_k"]] == run.top_k(i, 5).ids


def test_bfloat16_option(tiny, capsys):
    out = inspect_json(capsys, tiny("gpt2").folder, "--prompt", PROMPT, "--dtype", "bfloat16")
    assert out["model"]["dtype"] == "bfloat16"
    assert all(np.isfinite(p["top_k"][0]["prob"]) for p in out["positions"])


def unsupported_folder(tiny, tmp_path):
    folder = tmp_path / "t5"
    shutil.copytree(tiny("gpt2").folder, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="t5", architectures=["T5ForConditionalGeneration"])
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize(
    "case,expect",
    [
        ("missing folder", "no such folder"),
        ("unsupported", "unsupported model_type"),
        ("not a model", "config.json"),
        ("empty prompt", "empty"),
        ("blank prompt", "empty"),
        ("too long", "context window is 64"),
        ("bad ablate", "LAYER.HEAD"),
        ("no such head", "no such head"),
        ("no such layer", "no such head"),
        ("no such sublayer", "L2.mlp"),
        ("bad npz path", "cannot write"),
    ],
)
def test_bad_input_exits_with_one_line(tiny, capsys, tmp_path, case, expect):
    folder = tiny("gpt2-untied").folder  # context window of 64
    args = {
        "missing folder": [tmp_path / "nowhere", "--prompt", "hi"],
        "unsupported": [unsupported_folder(tiny, tmp_path), "--prompt", "hi"],
        "not a model": [tmp_path, "--prompt", "hi"],
        "empty prompt": [folder, "--prompt", ""],
        "blank prompt": [folder, "--prompt", "  \n "],
        "too long": [folder, "--prompt", "the lazy dog " * 40],
        "bad ablate": [folder, "--prompt", "hi", "--ablate", "one.two"],
        "no such head": [folder, "--prompt", "hi", "--ablate", "0.2"],
        "no such layer": [folder, "--prompt", "hi", "--ablate", "0.1,7.0"],
        "no such sublayer": [folder, "--prompt", "hi", "--ablate", "L1.attn,L2.mlp"],
        "bad npz path": [folder, "--prompt", "hi", "--save-npz", tmp_path / "no" / "x.npz"],
    }[case]
    code, out, err = inspect(capsys, *args, "--json")
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("attention-explorer:"), err
    assert expect in err
    assert "Traceback" not in err


def test_argparse_errors_exit_2(tiny, capsys):
    folder = tiny("gpt2").folder
    for args in (
        [folder],  # no --prompt
        [folder, "--prompt", "hi", "--ablate-mode", "half"],
        [folder, "--prompt", "hi", "--top-k", "many"],
    ):
        with pytest.raises(SystemExit) as e:
            main(["inspect", *map(str, args)])
        assert e.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


def test_subprocess(tiny, tmp_path):
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "explorer", "inspect", str(tiny("gpt2").folder)]
    res = subprocess.run(
        [*cmd, "--prompt", PROMPT, "--json", "--top-k", "2"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["tokens"]) == len(out["positions"]) == len(tiny("gpt2").lm.encode(PROMPT))
    ids = torch.tensor([tok["id"] for tok in out["tokens"]])
    run = tiny("gpt2").lm.run(ids)
    assert [e["id"] for e in out["positions"][3]["top_k"]] == run.top_k(3, 2).ids
    bad = subprocess.run(
        [sys.executable, "-m", "explorer", "inspect", str(tmp_path / "nowhere"), "--prompt", "x"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0
    assert bad.stdout == "" and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
