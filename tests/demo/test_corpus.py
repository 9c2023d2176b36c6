"""The synthetic corpus and the word-level tokenizer of the demo model."""

from __future__ import annotations

import random

from explorer.demo import corpus


def test_documents_tokenize_back_into_their_pieces():
    tok = corpus.build_tokenizer()
    rng = random.Random(0)
    for _ in range(500):
        pieces = corpus.document(rng)
        enc = tok.encode("".join(pieces))
        assert enc.tokens == pieces
        assert corpus.UNK not in enc.tokens
        assert tok.decode(enc.ids) == "".join(pieces)


def test_words_carry_their_leading_space_and_punctuation_splits():
    tok = corpus.build_tokenizer()
    text = "When Mary and John went to the store, John gave a drink to Mary.\nThe cat sat."
    assert tok.encode(text).tokens == [
        "When", " Mary", " and", " John", " went", " to", " the", " store", ",", " John",
        " gave", " a", " drink", " to", " Mary", ".", "\n", "The", " cat", " sat", ".",
    ]  # fmt: skip
    assert tok.encode("Mary  likes zebras!").tokens == ["Mary", " ", " likes", corpus.UNK, "!"]


def test_every_word_of_the_word_list_is_one_token():
    vocab = corpus.build_tokenizer().get_vocab()
    assert len(corpus.WORD_LIST) >= 200 and set(corpus.WORD_LIST) < set(corpus.ALL_WORDS)
    assert {"the", "gave", "When", "Mary"} <= set(corpus.ALL_WORDS)
    for w in corpus.ALL_WORDS:
        assert " " + w in vocab
    for n in corpus.NAMES:
        assert n in vocab and " " + n in vocab


def test_held_out_combinations_never_reach_training():
    assert not corpus.TRAIN_NAME_PAIRS & corpus.HELDOUT_NAME_PAIRS
    assert not corpus.TRAIN_PLACE_OBJECTS & corpus.HELDOUT_PLACE_OBJECTS
    assert len(corpus.HELDOUT_NAME_PAIRS) >= 50 and len(corpus.HELDOUT_PLACE_OBJECTS) >= 50
    rng = random.Random(1)
    for _ in range(2000):
        p = corpus.ioi_prompt(rng)
        assert not corpus.name_pair_held_out(p.io.strip(), p.s.strip())
        assert (p.place, p.obj) in corpus.TRAIN_PLACE_OBJECTS
    for _ in range(2000):  # plain sentences with two names avoid held-out pairs too
        names = {x.strip() for x in corpus.plain_sentence(rng)} & set(corpus.NAMES)
        if len(names) == 2:
            assert not corpus.name_pair_held_out(*names)


def test_held_out_prompts_use_held_out_combinations_only():
    rng = random.Random(2)
    held = [corpus.ioi_prompt(rng, held_out=True) for _ in range(400)]
    for p in held:
        assert corpus.name_pair_held_out(p.io.strip(), p.s.strip())
        assert (p.place, p.obj) in corpus.HELDOUT_PLACE_OBJECTS
        assert p.pieces[-1] == " to" and p.io != p.s
        assert p.pieces.count(p.s) == 2 and p.pieces.count(p.io) == 1
        assert p.text.startswith(corpus.TEMPLATES[p.template].split("{")[0])
    assert {p.io_first for p in held} == {True, False}
    assert {p.template for p in held} == set(range(len(corpus.TEMPLATES)))


def test_ioi_documents_end_with_the_indirect_object():
    rng = random.Random(4)
    names = {" " + n for n in corpus.NAMES}
    for _ in range(300):
        pieces = corpus.document(rng, corpus.Mix(induction=0, ioi=1, plain=0))
        j = next(
            j
            for j in range(len(pieces) - 2)
            if pieces[j] == " to" and pieces[j + 1] in names and pieces[j + 2] == "."
        )
        before = [x for x in pieces[:j] if x in names]
        answer = pieces[j + 1]
        assert before.count(answer) == 1 and len(before) == 3 and len(set(before)) == 2
        assert pieces[-1] == "\n"


def test_induction_documents_repeat_with_varying_periods():
    rng = random.Random(3)
    periods = set()
    for _ in range(1000):
        pieces = corpus.document(rng, corpus.Mix(induction=1, ioi=0, plain=0))
        words = pieces[:-1]
        p = len(words) // 2
        assert words[:p] == words[p:] and len(set(words[:p])) == p
        periods.add(p)
    mix = corpus.Mix()
    assert min(periods) == mix.min_period == 8 and max(periods) == mix.max_period >= 32


def test_some_induction_sequences_use_any_words():
    rng = random.Random(5)
    mix = corpus.Mix(induction=1, ioi=0, plain=0)
    content = {" " + w for w in corpus.WORD_LIST}
    docs = [corpus.document(rng, mix)[:-1] for _ in range(400)]
    share = sum(not set(d) <= content for d in docs) / len(docs)
    assert abs(share - mix.any_words) < 0.08


def test_batches_are_deterministic_given_the_seed():
    tok = corpus.build_tokenizer()
    a = corpus.Corpus(tok, seed=5).batch(4, 64)
    b = corpus.Corpus(tok, seed=5).batch(4, 64)
    c = corpus.Corpus(tok, seed=6).batch(4, 64)
    assert a.shape == (4, 65)
    assert a.equal(b) and not a.equal(c)
    assert int(a.max()) < tok.get_vocab_size()
