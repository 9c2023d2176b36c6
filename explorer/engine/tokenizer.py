"""Wraps tokenizers.Tokenizer: ids, and a readable string for every token."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from tokenizers import Tokenizer as HFTokenizer


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-unicode -> byte table, inverted."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> tuple[str, int]:
    """The text with UTF-16 surrogates that stand alone (a broken clipboard, undecodable bytes
    in argv) replaced by U+FFFD, and surrogate pairs joined into the character they encode.
    The tokenizers library refuses any surrogate. Returns (text, how many were replaced)."""
    if not _SURROGATE.search(text):
        return text, 0
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return fixed, fixed.count("\ufffd") - text.count("\ufffd")


@dataclass(frozen=True)
class Encoding:
    ids: list[int]
    offsets: list[tuple[int, int]]


class Tokenizer:
    def __init__(self, tok: HFTokenizer):
        self.tok = tok
        spec = json.loads(tok.to_str())
        self._byte_level = "ByteLevel" in json.dumps(spec.get("decoder")) or "ByteLevel" in (
            json.dumps(spec.get("pre_tokenizer"))
        )
        # ensure_ascii=False: Llama-style decoders name "\u2581" itself (Replace("\u2581", " "))
        decoder = json.dumps(spec.get("decoder"), ensure_ascii=False)
        self._metaspace = "Metaspace" in decoder or "\u2581" in decoder
        self._wordpiece = (spec.get("model") or {}).get("type") == "WordPiece"
        self.special_ids = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}

    @classmethod
    def from_file(cls, path) -> Tokenizer:
        return cls(HFTokenizer.from_file(str(path)))

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @property
    def max_id(self) -> int:
        """The largest id the vocabulary (with added tokens) holds; -1 when empty."""
        return max(self.tok.get_vocab(with_added_tokens=True).values(), default=-1)

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        """Ids and character offsets; lone surrogates are encoded as U+FFFD (see clean_text)."""
        text, _ = clean_text(text)
        enc = self.tok.encode(text, add_special_tokens=add_special_tokens)
        return Encoding(list(enc.ids), [tuple(o) for o in enc.offsets])

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def token_id(self, text: str) -> int | None:
        """The id of a single token given as text (' Mary'), or None when it is not one token."""
        ids = self.encode(text, add_special_tokens=False).ids
        if len(ids) == 1:
            return ids[0]
        tid = self.tok.token_to_id(text)
        return tid

    def display(self, token_id: int) -> str:
        """What the token stands for, as text: spaces and newlines kept, not Ġ or ▁."""
        piece = self.tok.id_to_token(int(token_id))
        if piece is None:
            return f"<{token_id}>"
        if int(token_id) in self.special_ids:
            return piece
        m = _BYTE_TOKEN.match(piece)
        if m:
            return bytes([int(m.group(1), 16)]).decode("utf-8", errors="replace")
        if self._byte_level:
            table = _byte_decoder()
            if all(c in table for c in piece):
                raw = bytes(table[c] for c in piece)
                return raw.decode("utf-8", errors="backslashreplace")
            return piece
        if self._metaspace:
            return piece.replace("\u2581", " ")
        if self._wordpiece:
            return piece[2:] if piece.startswith("##") else " " + piece
        return piece

    def displays(self, ids) -> list[str]:
        return [self.display(i) for i in ids]
