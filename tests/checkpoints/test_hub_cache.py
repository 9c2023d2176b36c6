"""The local Hugging Face cache is listed from disk alone."""

from __future__ import annotations

import shutil

from explorer.checkpoints.hub_cache import cache_dir, list_cached_models


def test_lists_snapshots_of_the_cache(tiny, tmp_path, monkeypatch):
    root = tmp_path / "hub"
    snap = root / "models--acme--tiny-gpt2" / "snapshots" / "abc123"
    shutil.copytree(tiny("gpt2").folder, snap)
    other = root / "models--acme--mystery" / "snapshots" / "def456"
    other.mkdir(parents=True)
    (other / "config.json").write_text('{"model_type": "mamba"}')
    (root / "datasets--x--y").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    assert cache_dir() == root
    found = {m.repo_id: m for m in list_cached_models()}
    assert set(found) == {"acme/tiny-gpt2", "acme/mystery"}
    assert found["acme/tiny-gpt2"].supported and found["acme/tiny-gpt2"].model_type == "gpt2"
    assert found["acme/tiny-gpt2"].path == snap
    assert found["acme/tiny-gpt2"].size_bytes > 0
    assert not found["acme/mystery"].supported


def test_hf_home_and_missing_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_dir() == tmp_path / "hf" / "hub"
    assert list_cached_models() == []
