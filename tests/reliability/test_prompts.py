"""Prompts a workshop will paste: empty, white space, 100k characters, longer than the context
window, control characters, right-to-left text, emoji, unpaired surrogates. Each gets a clear
message or a correct result, in the engine, the CLI and the window."""

from __future__ import annotations

import json
import time

import pytest

from explorer.engine import PromptError
from explorer.engine.tokenizer import clean_text
from tests.app.conftest import open_model, wait_ready

CONTROL = "tab\there\rcarriage \x00nul \x1b[31mescape\x1b[0m \x7f del \u200b zero-width \x0c"
RTL = "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eevil override\u202c end"
EMOJI = "family \U0001f469\u200d\U0001f469\u200d\U0001f467 flag \U0001f3f3\ufe0f\u200d\U0001f308 \U0001f600!"
SURROGATES = "broken \ud800 paste \udfff and a pair \ud83d\ude00 joined"
NORMAL = [CONTROL, RTL, EMOJI]


@pytest.fixture
def lm(tiny):
    return tiny("gpt2").lm


@pytest.mark.parametrize("text", ["", None, b"bytes", 5])
def test_empty_or_non_text_prompts_are_refused(lm, text):
    with pytest.raises(PromptError, match="empty|must be text"):
        lm.encode(text)


@pytest.mark.parametrize("text", [" ", "\n\n\t  ", "\u00a0\u2003"])
def test_white_space_only_is_refused_with_a_reason(lm, text):
    with pytest.raises(PromptError, match="empty .*white space"):
        lm.encode(text)


@pytest.mark.parametrize("text", NORMAL, ids=["control", "rtl", "emoji"])
def test_unusual_characters_are_tokenized_exactly(lm, text):
    ids = lm.encode(text)
    assert lm.tokenizer.decode(ids) == text  # byte-level BPE loses nothing
    run = lm.run(ids)
    assert run.logits().isfinite().all()
    shown = lm.tokenizer.displays(ids)  # a token holding part of a character shows its bytes
    assert len(shown) == len(ids) and "".join(shown).encode("utf-8")


def test_unpaired_surrogates_are_read_as_replacement_characters(lm):
    with pytest.raises(Exception):  # noqa: B017 - what the tokenizers library does by itself
        lm.tokenizer.tok.encode(SURROGATES)
    fixed, n = clean_text(SURROGATES)
    assert n == 2
    assert fixed == "broken \ufffd paste \ufffd and a pair \U0001f600 joined"
    assert lm.encode(SURROGATES) == lm.encode(fixed)
    assert clean_text("plain") == ("plain", 0)
    assert clean_text("\ufffd already")[1] == 0  # only what was replaced is counted


def test_a_100k_character_prompt(lm):
    text = ("When Mary and John went to the store, John gave a drink to Mary. " * 1600)[:100_000]
    n = lm.spec.context_length
    t0 = time.perf_counter()
    with pytest.raises(PromptError, match=r"has \d+ tokens; this model's context window is 128"):
        lm.encode(text)
    ids = lm.encode(text, truncate=True)
    assert len(ids) == n and ids == lm.tokenizer.encode(text).ids[-n:]
    lm.run(ids).loss()
    assert time.perf_counter() - t0 < 10


def cli(capsys, *args):
    from explorer.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_refuses_a_prompt_longer_than_the_window_and_empty_ones(tiny, capsys):
    folder = str(tiny("gpt2").folder)
    code, _, err = cli(capsys, "inspect", folder, "--prompt", "the store " * 200)
    assert code == 2 and "context window is 128" in err and "Traceback" not in err
    for text in ("", "   "):
        code, _, err = cli(capsys, "inspect", folder, "--prompt", text)
        assert code == 2 and "empty" in err


@pytest.mark.parametrize("text", NORMAL + [SURROGATES], ids=["control", "rtl", "emoji", "surr"])
def test_cli_handles_unusual_prompts(tiny, capsys, lm, text):
    code, out, err = cli(capsys, "inspect", str(tiny("gpt2").folder), "--prompt", text, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [t["id"] for t in data["tokens"]] == lm.encode(text)


# --- the window -------------------------------------------------------------------------

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.mark.parametrize("text", NORMAL, ids=["control", "rtl", "emoji"])
def test_window_shows_unusual_prompts_exactly(qtbot, window, tiny, text):
    m = tiny("gpt2")
    open_model(qtbot, window, m.folder, PROMPT)
    window.prompt.editor.setPlainText(text)
    qtbot.waitUntil(lambda: window.state.run.ids != m.lm.encode(PROMPT), timeout=10000)
    wait_ready(qtbot, window)
    typed = window.prompt.text()  # Qt keeps these characters as they are (\r becomes \n)
    assert window.state.run.ids == m.lm.encode(typed)
    assert window.docks["tokens"].view.texts == m.lm.tokenizer.displays(m.lm.encode(typed))
    assert window.prompt.notice.text() == ""


def test_window_white_space_and_100k_characters(qtbot, window, tiny):
    m = tiny("gpt2")
    open_model(qtbot, window, m.folder, PROMPT)
    before = window.state.run
    window.prompt.editor.setPlainText("\n\t   \n")
    qtbot.waitUntil(lambda: "white space" in window.prompt.notice.text(), timeout=10000)
    assert window.state.run is before
    text = ("The quick brown fox jumps over the lazy dog. " * 2300)[:100_000]
    window.prompt.editor.setPlainText(text)
    qtbot.waitUntil(lambda: "left out" in window.prompt.notice.text(), timeout=30000)
    wait_ready(qtbot, window)
    n = m.lm.spec.context_length
    assert window.state.run.ids == m.lm.encode(window.prompt.text(), truncate=True)
    assert len(window.state.run.ids) == n
    total = len(m.lm.tokenizer.encode(window.prompt.text()).ids)
    assert f"the first {total - n} tokens were left out" in window.prompt.notice.text()


def test_window_says_when_surrogates_were_replaced(qtbot, window, tiny):
    """Qt drops unpaired surrogates typed or pasted into the editor; a prompt that reaches the
    worker another way (a session, a script) has them replaced, and the notice says so."""
    from explorer.app.compute import RunRequest

    m = tiny("gpt2")
    open_model(qtbot, window, m.folder, PROMPT)
    rid = window.controller.submit(RunRequest(SURROGATES, window.state.ablation))
    qtbot.waitUntil(lambda: window.state.run.run_id == rid, timeout=10000)
    assert "2 character(s)" in window.prompt.notice.text()
    assert window.state.run.ids == m.lm.encode(clean_text(SURROGATES)[0])
    window.prompt.editor.setPlainText(SURROGATES)  # through Qt: nothing left to replace
    qtbot.waitUntil(lambda: window.state.run.run_id != rid, timeout=10000)
    wait_ready(qtbot, window)
    assert window.state.run.ids == m.lm.encode(window.prompt.text())
    assert "character(s)" not in window.prompt.notice.text()


def test_window_refuses_a_run_that_would_not_fit_in_memory(qtbot, window, tiny, monkeypatch):
    from explorer.checkpoints import memory

    m = tiny("gpt2")
    open_model(qtbot, window, m.folder, PROMPT)
    before = window.state.run
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 50_000)
    window.prompt.editor.setPlainText(PROMPT + " again")
    qtbot.waitUntil(lambda: "available" in window.prompt.notice.text(), timeout=10000)
    notice = window.prompt.notice.text()
    assert "needs" in notice and "50 kB available" in notice, notice
    assert window.state.run is before  # the previous results stay
    monkeypatch.undo()
    window.prompt.editor.setPlainText(PROMPT + " once more")
    qtbot.waitUntil(lambda: window.state.run is not before, timeout=10000)
    wait_ready(qtbot, window)
    assert window.prompt.notice.text() == ""
