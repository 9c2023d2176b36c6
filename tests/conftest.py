"""Shared fixtures: tiny random-weight checkpoints built with transformers, once per session."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# The tiny test models gain nothing from threads, and on a shared machine every parallel region
# waits for a busy core (each small op then costs milliseconds): one thread keeps tests fast.
torch.set_num_threads(1)


class Tiny:
    """One tiny checkpoint: its folder, the transformers model it came from, and our load."""

    def __init__(self, name, folder, hf):
        self.name, self.folder, self.hf = name, folder, hf
        self._lm = None

    @property
    def lm(self):
        """Our LoadedModel of the folder (float32, loaded once)."""
        if self._lm is None:
            from explorer.checkpoints import load

            self._lm = load(self.folder)
        return self._lm

    def ids(self, n: int = 24, seed: int = 0) -> torch.Tensor:
        """Random token ids (n,) within the vocabulary, deterministic per seed."""
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, self.lm.spec.vocab_size, (n,), generator=g)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """tiny(name, fmt="safetensors") -> Tiny; each (name, fmt) is built once per session."""
    from tests import tiny_models

    built: dict = {}
    root = tmp_path_factory.mktemp("tiny")

    def get(name: str, fmt: str = "safetensors") -> Tiny:
        key = (name, fmt)
        if key not in built:
            folder = root / f"{name}-{fmt}"
            hf = tiny_models.build(name, folder, fmt=fmt)
            built[key] = Tiny(name, folder, hf)
        return built[key]

    return get
