"""Offline: the tests run with the network blocked (tests/conftest.py, no_network), and the
app never tries to reach it."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NETWORK_MODULES = {
    "socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx", "aiohttp", "ftplib",
    "smtplib", "xmlrpc", "websocket", "websockets", "huggingface_hub", "transformers",
    "PySide6.QtNetwork", "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets",
}  # fmt: skip
NETWORK_CALLS = ("from_pretrained", "hf_hub_download", "snapshot_download", "urlopen", "openUrl")


def test_the_guard_blocks_remote_hosts(no_network):
    with pytest.raises(no_network):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(no_network):
        socket.getaddrinfo("huggingface.co", 443)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(no_network):
        s.connect(("93.184.216.34", 80))
    assert s.connect_ex is not None
    with pytest.raises(no_network):
        s.connect_ex(("1.1.1.1", 443))
    s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(no_network):
        u.sendto(b"\x00", ("8.8.8.8", 53))
    u.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("https://huggingface.co/api/models", timeout=1)


def test_local_sockets_still_work():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got = []

    def accept():
        conn, _ = server.accept()
        got.append(conn.recv(5))
        conn.close()

    t = threading.Thread(target=accept)
    t.start()
    c = socket.create_connection(server.getsockname(), timeout=5)
    c.sendall(b"hello")
    c.close()
    t.join(5)
    server.close()
    assert got == [b"hello"]
    a, b = socket.socketpair()
    a.sendall(b"x")
    assert b.recv(1) == b"x"
    a.close()
    b.close()


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_the_app_imports_nothing_that_reaches_a_network():
    files = sorted((ROOT / "explorer").rglob("*.py"))
    assert len(files) > 20
    bad = []
    for f in files:
        for mod in imported_modules(f):
            parts = mod.split(".")
            if any(".".join(parts[:i]) in NETWORK_MODULES for i in range(1, len(parts) + 1)):
                bad.append(f"{f.relative_to(ROOT)}: {mod}")
        text = f.read_text(encoding="utf-8")
        bad += [f"{f.relative_to(ROOT)}: {c}" for c in NETWORK_CALLS if c in text]
        if "trust_remote_code=True" in text:
            bad.append(f"{f.relative_to(ROOT)}: trust_remote_code=True")
    assert not bad, bad


def test_loading_and_running_makes_no_connection(tiny, monkeypatch):
    from explorer.checkpoints import load

    calls = []
    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, lambda *a, _n=name: calls.append(_n))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: calls.append("getaddrinfo"))
    lm = load(tiny("llama").folder)
    ids = lm.encode("When Mary and John went to the store")
    lm.run(ids).loss()
    lm.generate(ids, 5)
    assert calls == []


def test_a_fresh_process_loads_without_hub_or_http_libraries(tiny):
    """In a process of its own (nothing imported by other tests), loading and running a
    model imports no Hugging Face hub or HTTP client library."""
    code = f"""
import sys
from explorer.checkpoints import load
from explorer.session import Session
lm = load({str(tiny("gpt2").folder)!r})
lm.run(lm.encode("hello there")).loss()
Session().dumps()
net = ("huggingface_hub", "transformers", "requests", "httpx", "urllib3", "aiohttp")
print(sorted(m for m in sys.modules if m.split(".")[0] in net))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
