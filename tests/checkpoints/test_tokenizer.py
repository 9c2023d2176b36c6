"""Our tokenizer (as the loader builds it) against transformers' fast tokenizers."""

from __future__ import annotations

import shutil

import pytest

from explorer.checkpoints import load
from explorer.checkpoints.hf import load_tokenizer

TEXTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The quick brown fox jumps over the lazy dog. 1234567890",
    "naïve café, Ærøskøbing, Straße, ﬁne — “quotes” ‘too’ … 1½",
    "Ελληνικά, русский, עברית, العربية, हिन्दी, 日本語の文章, 한국어, 中文字符",
    "emoji 😀🎉 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 keycap 1️⃣",
    "spaces   runs      and\ttabs\t\tand\nnewlines\n\n\nand\r\nwindows",
    "   leading and trailing spaces   ",
    "\n\nstarts with newlines",
    "combining e\u0301 and zero\u200bwidth and nbsp\u00a0here",
    "code: def f(x):\n    return x ** 2  # comment\n",
    "MiXeD CaSe WoRdS and UPPER lower",
    "a",
    " ",
]
CORPUS = [
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The quick brown fox jumps over the lazy dog. 1234567890",
    "attention heads read the residual stream\n\nand write to it again",
    "naïve café Straße emoji 😀 日本語",
] * 20


def assert_same_ids(ours, theirs, texts=TEXTS, special=True):
    for text in texts:
        want = theirs(text, add_special_tokens=special)["input_ids"]
        got = ours.encode(text, add_special_tokens=special).ids
        assert got == want, repr(text)


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_tokenizer_json_matches_transformers(tiny, name):
    from transformers import PreTrainedTokenizerFast

    t = tiny(name)
    theirs = PreTrainedTokenizerFast(tokenizer_file=str(t.folder / "tokenizer.json"))
    assert_same_ids(t.lm.tokenizer, theirs, special=False)
    assert_same_ids(t.lm.tokenizer, theirs, special=True)


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path_factory.mktemp("bpe")
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS, vocab_size=310, special_tokens=["<|endoftext|>"])
    tok.save_model(str(folder))
    return folder


@pytest.fixture(scope="module")
def wordpiece_files(tmp_path_factory):
    from tokenizers import BertWordPieceTokenizer

    folder = tmp_path_factory.mktemp("wordpiece")
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(CORPUS, vocab_size=300)
    tok.save_model(str(folder))
    return folder


def test_gpt2_vocab_and_merges_fallback_matches_transformers(bpe_files):
    from transformers import GPT2TokenizerFast

    assert {p.name for p in bpe_files.iterdir()} == {"vocab.json", "merges.txt"}
    ours = load_tokenizer(bpe_files, {})
    theirs = GPT2TokenizerFast.from_pretrained(bpe_files)  # reads vocab.json + merges.txt
    assert_same_ids(ours, theirs)
    assert_same_ids(ours, theirs, ["one<|endoftext|>two", "<|endoftext|>"])
    assert ours.decode(ours.encode(TEXTS[4]).ids) == TEXTS[4]


def test_bert_vocab_txt_fallback_matches_transformers(wordpiece_files):
    from transformers import BertTokenizerFast

    assert {p.name for p in wordpiece_files.iterdir()} == {"vocab.txt"}
    ours = load_tokenizer(wordpiece_files, {})
    theirs = BertTokenizerFast.from_pretrained(wordpiece_files)  # reads vocab.txt
    assert_same_ids(ours, theirs, special=True)
    assert_same_ids(ours, theirs, special=False)
    assert_same_ids(ours, theirs, ["[CLS] mary [MASK] john [SEP]"])


def test_fallbacks_through_the_loader(tiny, tmp_path, bpe_files, wordpiece_files):
    """A model folder without tokenizer.json loads its tokenizer from the older files."""
    for name, files in (("gpt2", bpe_files), ("bert-mlm", wordpiece_files)):
        folder = tmp_path / name
        shutil.copytree(tiny(name).folder, folder)
        (folder / "tokenizer.json").unlink()
        for f in files.iterdir():
            shutil.copy(f, folder / f.name)
        lm = load(folder)
        ref = load_tokenizer(files, {})
        for text in TEXTS[:6]:
            assert lm.tokenizer.encode(text).ids == ref.encode(text).ids
            assert lm.encode(text) == ref.encode(text).ids
        lm.run(lm.encode(TEXTS[0]))


def test_display_shows_text_not_byte_symbols(tiny, bpe_files):
    for tok in (tiny("gpt2").lm.tokenizer, load_tokenizer(bpe_files, {})):
        ids = tok.encode("When Mary went\nto the\tstore  now").ids
        shown = tok.displays(ids)
        assert "".join(shown) == "When Mary went\nto the\tstore  now"
        assert " Mary" in shown and "\n" in "".join(shown)
        assert not any(c in "".join(shown) for c in "ĠĊĉ")
        mary = tok.token_id(" Mary")
        assert mary is not None and tok.display(mary) == " Mary"
        nl = tok.encode("\n").ids
        assert [tok.display(i) for i in nl] == ["\n"]
        # an emoji split over several byte tokens still reads back whole when joined
        emoji = tok.encode("😀").ids
        assert len(emoji) > 1
        assert tok.decode(emoji) == "😀"
        eot = tok.token_id("<|endoftext|>")
        if eot is not None and eot in tok.special_ids:
            assert tok.display(eot) == "<|endoftext|>"


def test_display_of_wordpiece_tokens(tiny, wordpiece_files):
    for tok in (tiny("bert").lm.tokenizer, load_tokenizer(wordpiece_files, {})):
        ids = tok.encode("When Mary went").ids
        shown = tok.displays(ids)
        assert shown[0] == "[CLS]" and shown[-1] == "[SEP]"
        assert "".join(shown[1:-1]).strip().lower() == "when mary went"
        assert not any("##" in s for s in shown)


def test_display_of_metaspace_and_byte_fallback_tokens():
    """Llama-style: "\u2581" for spaces, <0x0A> byte tokens in the vocabulary."""
    import json

    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, trainers

    from explorer.engine import Tokenizer

    def llama_style(model):
        tok = HFTokenizer(model)
        tok.normalizer = normalizers.Sequence(
            [normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]
        )
        tok.decoder = decoders.Sequence(
            [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
        )
        return tok

    trained = llama_style(models.BPE())
    trained.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300))
    model = json.loads(trained.to_str())["model"]
    vocab = {f"<0x{i:02X}>": i for i in range(256)}
    vocab.update({p: 256 + i for i, p in enumerate(model["vocab"])})
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Tokenizer(llama_style(models.BPE(vocab, merges, byte_fallback=True)))
    ids = tok.encode("When Mary went").ids
    assert "".join(tok.displays(ids)) == " When Mary went"
    assert tok.display(tok.tok.token_to_id("<0x0A>")) == "\n"
    assert "\n" in tok.displays(tok.encode("a\nb").ids)
