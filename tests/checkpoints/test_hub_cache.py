"""Models already in the local Hugging Face cache are listed without any network access."""

from __future__ import annotations

import json
import os
import shutil

from explorer.checkpoints.hub_cache import cache_dir, list_cached_models


def snapshot(root, repo, rev, src=None, config=None):
    snap = root / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
    if src is not None:
        shutil.copytree(src, snap)
    else:
        snap.mkdir(parents=True)
    if config is not None:
        (snap / "config.json").write_text(json.dumps(config))
    return snap


def test_lists_cached_models(tiny, tmp_path):
    root = tmp_path / "hub"
    snapshot(root, "someone/tiny-gpt2", "aaa", tiny("gpt2").folder)
    newer = snapshot(root, "someone/tiny-llama", "old", tiny("llama").folder)
    os.utime(newer, (1, 1))
    newest = snapshot(root, "someone/tiny-llama", "new", tiny("llama").folder)
    snapshot(root, "google/t5-small", "ccc", config={"model_type": "t5"})
    snapshot(root, "broken/empty", "ddd")  # no config.json: not a model
    (root / "datasets--x--y").mkdir()
    found = {m.repo_id: m for m in list_cached_models(root)}
    assert set(found) == {"someone/tiny-gpt2", "someone/tiny-llama", "google/t5-small"}
    assert found["someone/tiny-gpt2"].supported and found["someone/tiny-gpt2"].model_type == "gpt2"
    assert found["someone/tiny-llama"].path == newest
    assert found["someone/tiny-llama"].size_bytes > 0
    assert not found["google/t5-small"].supported
    assert list_cached_models(tmp_path / "nowhere") == []


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
