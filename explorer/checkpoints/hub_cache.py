"""Models already in the local Hugging Face cache, found without any network access."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import architectures
from .errors import CheckpointError
from .hf import model_type, read_config


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    path: Path  # the snapshot folder
    model_type: str
    supported: bool
    size_bytes: int


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def list_cached_models(root: Path | None = None) -> list[CachedModel]:
    """Every models--owner--name/snapshots/<rev> holding a config.json, newest snapshot first."""
    root = root or cache_dir()
    found = []
    if not root.is_dir():
        return found
    for repo in sorted(root.glob("models--*")):
        snaps = [p for p in (repo / "snapshots").glob("*") if (p / "config.json").is_file()]
        if not snaps:
            continue
        snap = max(snaps, key=lambda p: p.stat().st_mtime)
        try:
            kind = model_type(read_config(snap))
            ok = True
        except CheckpointError:
            kind, ok = "unknown", False
        size = sum(f.stat().st_size for f in snap.iterdir() if f.suffix in (".safetensors", ".bin"))
        repo_id = repo.name[len("models--") :].replace("--", "/")
        found.append(CachedModel(repo_id, snap, kind, ok and kind in architectures.FAMILIES, size))
    return found
