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


# --- offline: no test reaches the network -------------------------------------------------


class NetworkBlocked(ConnectionRefusedError):
    """Raised by any attempt to reach a host other than this machine during the tests."""


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX paths (str/bytes), abstract sockets
        return True
    host = str(address[0]) if isinstance(address, tuple) and address else ""
    return host in ("localhost", "", "::1", "0.0.0.0", "::") or host.startswith("127.")


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Make every socket connection (TCP, UDP sendto, DNS lookups) to anything but this
    machine fail for the whole run: the app and its tests must work offline. Local and unix
    sockets (Qt, multiprocessing) still work. tests/reliability/test_offline.py checks it."""
    import socket

    saved = {
        "connect": socket.socket.connect,
        "connect_ex": socket.socket.connect_ex,
        "sendto": socket.socket.sendto,
        "getaddrinfo": socket.getaddrinfo,
    }

    def guard(address):
        if not _is_local(address):
            raise NetworkBlocked(f"network access is blocked in the tests: {address!r}")

    def connect(self, address):
        guard(address)
        return saved["connect"](self, address)

    def connect_ex(self, address):
        guard(address)
        return saved["connect_ex"](self, address)

    def sendto(self, data, *args):
        guard(args[-1])
        return saved["sendto"](self, data, *args)

    def getaddrinfo(host, *args, **kw):
        guard((host.decode() if isinstance(host, bytes) else host or "",))
        return saved["getaddrinfo"](host, *args, **kw)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    yield NetworkBlocked
    socket.socket.connect = saved["connect"]
    socket.socket.connect_ex = saved["connect_ex"]
    socket.socket.sendto = saved["sendto"]
    socket.getaddrinfo = saved["getaddrinfo"]
