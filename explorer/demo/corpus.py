"""The demo model's synthetic corpus and word-level tokenizer. Everything here is seeded.

Three kinds of documents, one per line ("\\n" ends each):
- induction: random words from WORD_LIST, then the same words again (the period varies, so
  the model must copy by content, not by position);
- IOI: "When Mary and John went to the store, John gave a drink to Mary." in several
  templates and both name orders; some name pairs and place/object pairs never occur in
  training (held out) so that the report can test on combinations the model has not seen;
- plain: short templated English-like sentences.

Documents are built as lists of tokenizer pieces (" Mary", ",", "\\n"); joining the pieces
gives the text, and the tokenizer splits that text back into the same pieces (tested).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import combinations

NAMES = (
    "Mary John Tom Anna James Lisa David Sarah Paul Emma Mark Kate Peter Laura Daniel Alice "
    "Michael Julia Robert Rachel Steven Grace Kevin Helen Brian Claire Jason Diana Eric Nina "
    "Adam Susan Frank Amy George Linda Henry Sophie Oliver Lucy"
).split()
PLACES = (
    "store park school office garden station market library beach restaurant hospital museum "
    "cafe bank river house farm church hotel theater airport zoo gym bakery kitchen lake forest "
    "village harbor castle"
).split()
OBJECTS = (
    "drink book ball letter cake ring bag key gift flower pen hat cup toy map coin lamp box "
    "basket bottle card candle clock kite necklace pencil phone ticket watch sandwich"
).split()
ANIMALS = "cat dog bird horse fox rabbit mouse cow sheep duck frog bear wolf goat owl lion".split()
ADJECTIVES = (
    "big small red blue green old new happy quiet bright dark warm cold tall short little busy "
    "lazy clever brave kind sunny rainy young"
).split()
FOODS = "bread apples rice soup cheese fish corn grass seeds berries".split()
TIMES = "morning evening night day week summer winter".split()
FURNITURE = "table chair shelf bed floor desk".split()
MOVES = "walked ran slept sat jumped waited played danced rested".split()
PREPS = "near in behind by at".split()
LIKES = "likes wants needs sees finds buys carries keeps loves".split()
# extra nouns that only fill plain sentences and induction sequences
NOUNS = (
    "window door road hill tree stone cloud star moon sun rain snow wind fire water sand glass "
    "paper music story song game picture garden bridge tower boat train car bus bicycle road "
    "street city country mountain island ocean field flowerpot mirror pillow blanket jacket "
    "shoe sock button ribbon rope ladder bucket hammer nail brush paint color circle square "
    "number letterbox engine wheel window roof wall corner shadow light sound voice dream idea "
    "plan question answer friend family teacher doctor farmer baker sailor king queen child "
    "baby student"
).split()

TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {obj} to",
    "When {A} and {B} got a {obj} at the {place}, {S} decided to give it to",
    "Then, {A} and {B} went to the {place}. {S} gave a {obj} to",
    "While {A} and {B} were working at the {place}, {S} gave a {obj} to",
    "After {A} and {B} went to the {place}, {S} handed a {obj} to",
    "Friends {A} and {B} found a {obj} at the {place}. {S} gave it to",
    "After the lunch, {A} and {B} went to the {place}. {S} gave a {obj} to",
    "The {place} was busy when {A} and {B} arrived. {S} threw a {obj} to",
)

PLAIN = (
    "The {adj} {animal} {move} {prep} the {place}.",
    "{N} likes the {adj} {obj}.",
    "{N} went to the {place} and bought a {obj}.",
    "{N} and {N2} played in the {place} all {time}.",
    "It was a {adj} {time}, so {N} stayed at the {place}.",
    "Every {time}, {N} walks to the {place}.",
    "{N} said that the {animal} was very {adj}.",
    "The {obj} on the {furniture} is {adj}.",
    "In the {time}, the {animal} ate some {food}.",
    "Yesterday {N} saw a {adj} {noun} near the {place}.",
    "There is a {adj} {animal} in the {place}.",
    "Where did {N} put the {obj}?",
    "What a {adj} {noun}!",
    "The {noun} was {adj} and the {noun2} was {adj2}.",
    "{N} {like} the {noun} and the {obj}.",
    "A {animal} and a {animal2} {move} {prep} the {noun}.",
)


HOLDOUT_SEED = 20240601  # fixed forever: the report must hold out what training held out
HOLDOUT_FRACTION = 0.15

PUNCTUATION = list(".,!?;:'\"-()")
PATTERN = r"\n| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]|[^\S\n]+(?!\S)|[^\S\n]+"
UNK = "<unk>"


def _template_words() -> set[str]:
    words = set()
    for t in TEMPLATES + PLAIN:
        for part in (
            t.replace(",", " ").replace(".", " ").replace("?", " ").replace("!", " ").split()
        ):
            if not part.startswith("{"):
                words.add(part)
    return words


def _words() -> list[str]:
    lists = NAMES + PLACES + OBJECTS + ANIMALS + ADJECTIVES + FOODS + TIMES + FURNITURE + NOUNS
    return sorted(_template_words() | set(lists + MOVES + PREPS + LIKES))


ALL_WORDS = _words()
"""Every word of the vocabulary (function words too), each the token " word"."""
WORD_LIST = sorted(
    set(NAMES + PLACES + OBJECTS + ANIMALS + ADJECTIVES + FOODS + TIMES + FURNITURE + NOUNS)
)
"""Content words: most induction sequences draw from these (each the token " word")."""


def vocabulary() -> list[str]:
    """Every token piece, in a fixed order: specials, whitespace, punctuation, words."""
    pieces = [UNK, "\n", " "]
    for p in PUNCTUATION:
        pieces += [p, " " + p]
    words = ALL_WORDS
    capital = sorted({w for w in words if w[0].isupper()} | set(NAMES))
    pieces += [" " + w for w in words]
    pieces += [w for w in capital]  # sentence starts: "When", "Mary"
    pieces += [" " + str(i) for i in range(10)] + [str(i) for i in range(10)]
    seen, out = set(), []
    for p in pieces:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def build_tokenizer():
    """A word-level tokenizers.Tokenizer: words keep their leading space (" Mary")."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {p: i for i, p in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([UNK])
    return tok


def _split_pairs(items, rng: random.Random) -> tuple[set, set]:
    """All unordered pairs (each sorted alphabetically), split into training and held out."""
    pairs = sorted(tuple(sorted(p)) for p in combinations(items, 2))
    rng.shuffle(pairs)
    n = int(len(pairs) * HOLDOUT_FRACTION)
    return set(pairs[n:]), set(pairs[:n])


_r = random.Random(HOLDOUT_SEED)
TRAIN_NAME_PAIRS, HELDOUT_NAME_PAIRS = _split_pairs(NAMES, _r)
_place_obj = [(p, o) for p in PLACES for o in OBJECTS]
_r.shuffle(_place_obj)
HELDOUT_PLACE_OBJECTS = set(_place_obj[: int(len(_place_obj) * HOLDOUT_FRACTION)])
TRAIN_PLACE_OBJECTS = set(_place_obj[int(len(_place_obj) * HOLDOUT_FRACTION) :])
del _r, _place_obj


def name_pair_held_out(a: str, b: str) -> bool:
    return tuple(sorted((a, b))) in HELDOUT_NAME_PAIRS


def fill(template: str, **slots) -> list[str]:
    """A template with its slots filled, as tokenizer pieces."""
    text = template.format(**slots)
    return re.findall(PATTERN, text)


@dataclass(frozen=True)
class IOIPrompt:
    pieces: list  # the prompt, ending in " to"
    io: str  # the indirect object, e.g. " Mary" (the right answer)
    s: str  # the subject, e.g. " John" (the foil)
    template: int
    io_first: bool
    place: str = ""
    obj: str = ""

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def ioi_prompt(rng: random.Random, held_out: bool = False, template: int | None = None):
    """One IOI prompt on training combinations, or (held_out) on held-out ones only."""
    pairs = HELDOUT_NAME_PAIRS if held_out else TRAIN_NAME_PAIRS
    places = HELDOUT_PLACE_OBJECTS if held_out else TRAIN_PLACE_OBJECTS
    pair = _choice_sorted(rng, pairs)
    io, s = pair if rng.random() < 0.5 else pair[::-1]
    place, obj = _choice_sorted(rng, places)
    t = rng.randrange(len(TEMPLATES)) if template is None else template
    io_first = rng.random() < 0.5
    a, b = (io, s) if io_first else (s, io)
    pieces = fill(TEMPLATES[t], A=a, B=b, S=s, place=place, obj=obj)
    return IOIPrompt(pieces, " " + io, " " + s, t, io_first, place, obj)


_SORTED_CACHE: dict[int, list] = {}


def _choice_sorted(rng: random.Random, items: set):
    key = id(items)
    if key not in _SORTED_CACHE:
        _SORTED_CACHE[key] = sorted(items)
    return rng.choice(_SORTED_CACHE[key])


def induction_words(rng: random.Random, period: int, words=None) -> list[str]:
    """period distinct random words (as " word" pieces) from words (WORD_LIST), not repeated."""
    return [" " + w for w in rng.sample(WORD_LIST if words is None else words, period)]


def plain_sentence(rng: random.Random) -> list[str]:
    t = rng.choice(PLAIN)
    n, n2 = rng.sample(NAMES, 2)
    while "{N2}" in t and name_pair_held_out(n, n2):
        n, n2 = rng.sample(NAMES, 2)
    a, a2 = rng.sample(ANIMALS, 2)
    no, no2 = rng.sample(NOUNS, 2)
    adj, adj2 = rng.sample(ADJECTIVES, 2)
    return fill(
        t,
        N=n,
        N2=n2,
        adj=adj,
        adj2=adj2,
        animal=a,
        animal2=a2,
        move=rng.choice(MOVES),
        prep=rng.choice(PREPS),
        place=rng.choice(PLACES),
        obj=rng.choice(OBJECTS),
        time=rng.choice(TIMES),
        furniture=rng.choice(FURNITURE),
        food=rng.choice(FOODS),
        noun=no,
        noun2=no2,
        like=rng.choice(LIKES),
    )


@dataclass(frozen=True)
class Mix:
    """Probabilities of each document kind, and the induction periods."""

    induction: float = 0.35
    ioi: float = 0.40
    plain: float = 0.25
    min_period: int = 8
    max_period: int = 32
    any_words: float = 0.25  # the share of induction sequences drawn from ALL_WORDS


def document(rng: random.Random, mix: Mix = Mix()) -> list[str]:
    """One document (a line), as pieces ending in "\\n"."""
    r = rng.random() * (mix.induction + mix.ioi + mix.plain)
    if r < mix.induction:
        pool = ALL_WORDS if mix.any_words and rng.random() < mix.any_words else WORD_LIST
        words = induction_words(rng, rng.randint(mix.min_period, mix.max_period), pool)
        return words + words + ["\n"]
    if r < mix.induction + mix.ioi:
        p = ioi_prompt(rng)
        out = p.pieces + [p.io, "."]
        if rng.random() < 0.3:
            s = plain_sentence(rng)
            out += [" " + s[0]] + s[1:]
        return out + ["\n"]
    out = []
    for i in range(rng.randint(1, 4)):
        s = plain_sentence(rng)
        if i:
            s[0] = " " + s[0]
        out += s
    return out + ["\n"]


class Corpus:
    """Training windows of token ids: documents concatenated, the first one at position 0."""

    def __init__(self, tokenizer, seed: int, mix: Mix = Mix()):
        self.vocab = tokenizer.get_vocab()
        self.rng = random.Random(seed)
        self.mix = mix

    def ids(self, pieces: list[str]) -> list[int]:
        return [self.vocab[p] for p in pieces]

    def window(self, length: int) -> list[int]:
        out: list[int] = []
        while len(out) < length:
            out += self.ids(document(self.rng, self.mix))
        return out[:length]

    def batch(self, batch_size: int, length: int):
        """(batch_size, length + 1) int64 tensor: inputs are [:, :-1], targets [:, 1:]."""
        import torch

        return torch.tensor([self.window(length + 1) for _ in range(batch_size)])
