"""The training script, on a tiny run: it saves a folder that both loaders read alike."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from explorer.checkpoints import load
from explorer.demo import corpus
from explorer.demo.train import Settings, main, train

from .helpers import transformers_logits

TINY = Settings(
    steps=3,
    batch_size=2,
    length=16,
    warmup=1,
    n_layers=2,
    n_heads=2,
    d_model=16,
    d_mlp=24,
    context_length=32,
    threads=1,
)
TEXT = "When Mary and John went to the store, John gave a drink to"


def _quiet(*a, **k):
    pass


def test_tiny_run_saves_a_hugging_face_llama_folder(tmp_path):
    before = torch.get_num_threads()
    model, spec = train(TINY, tmp_path, log=_quiet)
    assert torch.get_num_threads() == before  # train() restores the caller's thread count
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json"):
        assert (tmp_path / name).is_file()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 2
    assert not any(p.requires_grad for p in model.parameters())

    lm = load(tmp_path)
    assert lm.spec.n_heads == 2 and lm.spec.vocab_size == spec.vocab_size
    ids = lm.encode(TEXT)
    assert lm.tokenizer.display(ids[1]) == " Mary"
    with torch.inference_mode():
        ours = lm.run(ids).logits()
        trained = model(torch.tensor([ids]))[0]
    torch.testing.assert_close(ours, trained, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(transformers_logits(tmp_path, ids), ours, atol=1e-4, rtol=1e-4)


def test_training_is_deterministic_given_the_seed():
    a, _ = train(TINY, log=_quiet)
    b, _ = train(TINY, log=_quiet)
    c, _ = train(Settings(**{**TINY.__dict__, "seed": 1}), log=_quiet)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(sa[k].equal(sb[k]) for k in sa)
    assert not all(sa[k].equal(sc[k]) for k in sa)


def test_training_changes_the_weights_and_lowers_the_loss():
    s = Settings(**{**TINY.__dict__, "steps": 30, "lr": 1e-2, "warmup": 5})
    losses = []
    train(s, log=lambda msg: losses.append(msg))
    first = float(losses[1].split("loss")[1].split()[0])
    last = float(losses[-1].split("loss")[1].split()[0])
    assert last < first - 0.3, losses


def test_cli_runs_without_transformers(tmp_path):
    """make demo-model's entry point; transformers is a dev dependency only."""
    code = (
        "import sys\n"
        "from explorer.demo.train import main\n"
        f"rc = main(['--out', {str(tmp_path)!r}, '--steps', '2', '--batch-size', '2',"
        " '--length', '16', '--n-layers', '1', '--n-heads', '2', '--d-model', '16',"
        " '--d-mlp', '16', '--threads', '1', '--no-report'])\n"
        "assert 'transformers' not in sys.modules, 'training imported transformers'\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "saved to" in done.stdout
    assert load(tmp_path).spec.n_layers == 1


def test_main_parses_settings(tmp_path, capsys):
    rc = main(
        ["--out", str(tmp_path), "--steps", "1", "--batch-size", "1", "--length", "8"]
        + ["--n-layers", "1", "--n-heads", "1", "--d-model", "8", "--d-mlp", "8"]
        + ["--threads", "1", "--no-report", "--seed", "7"]
    )
    assert rc == 0
    meta = json.loads((tmp_path / "training.json").read_text())
    assert meta["settings"]["seed"] == 7 and meta["settings"]["steps"] == 1
    assert load(tmp_path).tokenizer.vocab_size == len(corpus.vocabulary())
