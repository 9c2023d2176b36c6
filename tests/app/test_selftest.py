"""`attention-explorer --self-test` from source, its failure modes, and the app icon files."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

import explorer.checkpoints.demo as demo
from explorer.app import selftest
from explorer.app.main import main as app_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The self-test sets torch's thread count for its process; give the tests theirs back."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.skipif(not demo.demo_available(), reason="resources/demo-model is not there")
def test_self_test_passes_on_the_demo_model(capsys):
    assert app_main(["--self-test"]) == 0
    out = capsys.readouterr().out
    assert "self-test passed" in out
    assert "FAIL" not in out
    assert out.splitlines()[-1].endswith(" passed, 0 failed")
    for name in ("window: attention dock renders", "engine: generation (ablated, greedy)"):
        assert f"ok   {name}" in out


@pytest.fixture
def tiny_resources(tiny, tmp_path, monkeypatch):
    """A resources folder whose demo model is a tiny llama, with expectations written for it."""
    res = tmp_path / "resources"
    res.mkdir()
    (res / "demo-model").symlink_to(tiny("llama").folder, target_is_directory=True)
    monkeypatch.setattr(demo, "resources_dir", lambda: res)
    selftest.write_expectations()
    return res


def run(**kw) -> tuple[int, str]:
    out = io.StringIO()
    return selftest.run_self_test(out=out, **kw), out.getvalue()


def test_self_test_fails_when_a_number_is_off(tiny_resources):
    path = tiny_resources / "selftest.json"
    exp = json.loads(path.read_text())
    assert exp["model"] == selftest.fingerprint(tiny_resources / "demo-model")
    exp["expect"]["top_clean"][0][1] += 0.01  # one probability off by more than the tolerance
    exp["expect"]["generation_ablated"][0] += 1
    exp["expect"]["margins_ablated"][0] = 5.0  # not a near tie: the token must match
    path.write_text(json.dumps(exp))
    code, out = run(timeout=30)
    assert code == 1
    assert "FAIL engine: forward, top-5 next tokens" in out
    assert "FAIL window: predictions (clean)" in out
    assert "FAIL engine: generation (ablated, greedy)" in out
    assert "ok   engine: attention pattern" in out  # the rest still passes
    assert "ok   window: attention dock renders" in out
    assert out.splitlines()[-1].endswith(" passed, 4 failed")


def test_self_test_refuses_expectations_for_other_weights(tiny_resources):
    path = tiny_resources / "selftest.json"
    exp = json.loads(path.read_text())
    exp["model"] = "0" * 16
    path.write_text(json.dumps(exp))
    code, out = run()
    assert code == 1
    assert "FAIL expectations are for this demo model" in out
    assert "--write" in out  # it says how to renew them


def test_self_test_without_a_demo_model_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "resources_dir", lambda: tmp_path)
    code, out = run()
    assert code == 1
    assert "FAIL demo model present" in out


def test_greedy_comparison_forgives_only_near_ties():
    assert selftest.same_greedy([1, 2, 3], [1, 2, 3], [1, 1, 1], 1e-3)[0]
    assert selftest.same_greedy([1, 9, 9], [1, 2, 3], [1, 1e-4, 1], 1e-3)[0]
    assert not selftest.same_greedy([1, 9, 3], [1, 2, 3], [1, 0.5, 1], 1e-3)[0]
    assert not selftest.same_greedy([1], [1, 2], [1, 1], 1e-3)[0]


def test_window_icon_and_icon_files(qapp):
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    assert icons.main(["--check"]) == 0  # every PNG size is committed
    sizes = {s.width() for s in qapp.windowIcon().availableSizes()}
    assert {16, 32, 48, 256} <= sizes
    assert qapp.desktopFileName() == "attention-explorer"


def test_ico_and_icns_hold_every_size(tmp_path):
    from PySide6.QtGui import QImageReader

    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    for path, want in (
        (icons.write_ico(tmp_path / "a.ico"), [16, 24, 32, 48, 64, 128, 256]),
        (icons.write_icns(tmp_path / "a.icns"), [16, 32, 64, 128, 256, 512, 32, 64, 256, 512]),
    ):
        r = QImageReader(str(path))
        got = []
        for i in range(r.imageCount()):
            r.jumpToImage(i)
            got.append(r.read().width())
        assert got == want, path.name
