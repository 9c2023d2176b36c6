"""A seeded generator of broken model folders, and the harness that loads each one.

Every case starts from a copy of a small, valid base checkpoint and damages it one way:
truncated or garbled safetensors headers and data, wrong dtypes and shapes, missing and extra
tensors, absurd config.json values, broken tokenizers, missing files, symlink loops, folders
and pipes where files belong, weight indexes pointing outside the folder, pickles that would
run code. A case says what must happen:

    "error": the loader raises CheckpointError with a specific one-line message
    "ok":    the damage is harmless (an extra tensor, float16 weights): the model loads, and a
             prompt runs through it
    "any":   either of the two (random byte flips may or may not matter)

Never another exception, a hang, a large allocation, or code from the file running.
Used by tests/reliability/test_fuzz_checkpoints.py and benchmarks/fuzz_report.py.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import re
import resource
import shutil
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

SEED = 20240508
CASE_LIMIT_S = 5.0  # one case may take this long at most (most take ~5 ms)
HANG_LIMIT_S = 60  # a case running longer is a hang: the process dumps its stack and exits
AVAILABLE = 1 << 30  # the memory the loader is told is available while fuzzing (1 GiB)
PROMPT = "When Mary and John went to the store, John gave a drink to"

BASES = {  # base name -> (tiny_models config, format)
    "gpt2": ("gpt2", "safetensors"),
    "llama": ("llama-gqa", "sharded"),
    "bin": ("gpt2", "bin"),
}


@dataclass
class Case:
    name: str  # category/kind#n
    category: str
    base: str
    expect: str  # "error" | "ok" | "any"
    make: Callable[[Path, random.Random], None]
    seed: int
    evil: bool = False  # plants a payload that would create the marker file if it ran


@dataclass
class Outcome:
    name: str
    category: str
    expect: str
    result: str  # "error" | "ok" | "crash"
    message: str
    seconds: float
    problem: str = ""  # empty when the case behaved


@dataclass
class Report:
    outcomes: list = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_growth_mb: float = 0.0

    @property
    def problems(self) -> list:
        return [o for o in self.outcomes if o.problem]

    def summary(self) -> dict:
        by_cat: dict = {}
        for o in self.outcomes:
            c = by_cat.setdefault(o.category, Counter())
            c[o.result] += 1
        slowest = max(self.outcomes, key=lambda o: o.seconds, default=None)
        return {
            "seed": SEED,
            "cases": len(self.outcomes),
            "outcomes": dict(Counter(o.result for o in self.outcomes)),
            "expected": dict(Counter(o.expect for o in self.outcomes)),
            "problems": len(self.problems),
            "by_category": {k: dict(v) for k, v in sorted(by_cat.items())},
            "seconds_total": round(self.seconds, 2),
            "seconds_max_case": round(slowest.seconds, 3) if slowest else 0.0,
            "slowest_case": slowest.name if slowest else "",
            "peak_rss_growth_mb": round(self.peak_rss_growth_mb, 1),
            "available_memory_told": AVAILABLE,
        }


# --- file helpers ---------------------------------------------------------------------------


def replace_file(path: Path, data: bytes | str) -> None:
    """Write a new file in place of whatever is there (a link is replaced, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def read_st(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_st(path: Path, header, data: bytes, raw_header: bytes | None = None) -> None:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    replace_file(path, struct.pack("<Q", len(h)) + h + data)


def weight_file(folder: Path, rng: random.Random) -> Path:
    files = sorted(folder.glob("*.safetensors"))
    return rng.choice(files)


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update({k: v.clone() for k, v in load_file(f).items()})
    return out


def save_tensors(folder: Path, state: dict) -> None:
    """Write state as one model.safetensors in place of the base's weight files."""
    from safetensors.torch import save_file

    for f in folder.glob("*.safetensors"):
        f.unlink()
    remove(folder / "model.safetensors.index.json")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    data = fn(data) or data
    replace_file(path, json.dumps(data))


def nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


# --- the generator --------------------------------------------------------------------------

GPT2_INTS = ["n_embd", "n_layer", "n_head", "n_positions", "vocab_size", "n_inner"]
LLAMA_INTS = [
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "max_position_embeddings", "vocab_size", "head_dim",
]  # fmt: skip
BAD_INTS = [
    0, -1, -(2**63), 2**63, 2**64 + 1, 10**12, 10**30, 10**300, 1e308, 2.5, "8", "", [8],
    {"n": 8}, True, False, float("nan"), float("inf"), -float("inf"),
]  # fmt: skip
BAD_FLOATS = [0, 0.0, -1e-5, float("nan"), float("inf"), -float("inf"), "1e-5", [1e-5], True, {}]
BAD_BOOLS = ["yes", 1, 0, "true", [], {}, 2.0]
BAD_STRINGS = [5, [], {}, ["gelu"], "", "x" * 10_000, "gelu\x00", True]
EVIL_CALLS = ["system", "exec", "eval", "popen", "import", "touch"]


class Gen:
    """Builds the list of cases; each case's damage is random but fixed by its seed."""

    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)
        self.cases: list[Case] = []
        self.counts: Counter = Counter()

    def add(self, category, kind, base, expect, make, evil=False):
        self.counts[(category, kind)] += 1
        name = f"{category}/{kind}#{self.counts[(category, kind)]}"
        self.cases.append(Case(name, category, base, expect, make, self.rng.getrandbits(32), evil))

    def build(self) -> list[Case]:
        for step in (
            self.safetensors_truncated, self.safetensors_length, self.safetensors_header_bytes,
            self.safetensors_header_json, self.safetensors_data, self.tensors, self.config,
            self.config_file, self.tokenizer, self.files, self.index, self.pickles,
        ):  # fmt: skip
            step()
        return self.cases

    # --- safetensors, byte level ----------------------------------------------------------

    def safetensors_truncated(self):
        for base in ("gpt2", "llama"):
            for i in range(20):

                def make(folder, rng, i=i):
                    f = weight_file(folder, rng)
                    raw = f.read_bytes()
                    (n,) = struct.unpack("<Q", raw[:8])
                    cut = [
                        0, 4, 7, 8, 9, 8 + n // 2, 8 + n, 8 + n + 1, len(raw) - 1,
                        rng.randrange(8 + n, len(raw)),
                    ][i % 10] if i < 10 else rng.randrange(0, len(raw))  # fmt: skip
                    replace_file(f, raw[:cut])

                self.add("safetensors-bytes", "truncated", base, "error", make)

    def safetensors_length(self):
        choices = ["zero", "one", "seven", "filesize", "u64max", "2^63", "huge", "random",
                   "minus-pad", "plus1", "plus8", "minus1"]  # fmt: skip
        for base in ("gpt2", "llama"):
            for kind in choices:

                def make(folder, rng, kind=kind):
                    f = weight_file(folder, rng)
                    raw = f.read_bytes()
                    (n,) = struct.unpack("<Q", raw[:8])
                    value = {
                        "zero": 0, "one": 1, "seven": 7, "filesize": len(raw), "u64max": 2**64 - 1,
                        "2^63": 2**63, "huge": 100_000_001, "random": rng.getrandbits(64),
                        "minus-pad": max(2, n - 2), "plus1": n + 1, "plus8": n + 8,
                        "minus1": n - 1,
                    }[kind]  # fmt: skip
                    replace_file(f, struct.pack("<Q", value) + raw[8:])

                expect = "any" if kind == "minus-pad" else "error"
                self.add("safetensors-bytes", f"length-{kind}", base, expect, make)

    def safetensors_header_bytes(self):
        for i in range(50):

            def make(folder, rng):
                f = weight_file(folder, rng)
                raw = bytearray(f.read_bytes())
                (n,) = struct.unpack("<Q", raw[:8])
                for _ in range(rng.randint(1, 8)):
                    pos = 8 + rng.randrange(n)
                    raw[pos] = rng.choice([rng.randrange(256), ord("{"), ord('"'), ord("9"), 0])
                replace_file(f, bytes(raw))

            self.add("safetensors-bytes", "header-flip", ("gpt2", "llama")[i % 2], "any", make)

    def safetensors_data(self):
        for i in range(30):

            def make(folder, rng):
                f = weight_file(folder, rng)
                raw = bytearray(f.read_bytes())
                (n,) = struct.unpack("<Q", raw[:8])
                for _ in range(rng.randint(1, 64)):
                    pos = rng.randrange(8 + n, len(raw) - 4)
                    pos -= (pos - 8 - n) % 4
                    pattern = rng.choice([b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\xff" * 4])
                    raw[pos : pos + 4] = pattern if rng.random() < 0.5 else rng.randbytes(4)
                replace_file(f, bytes(raw))

            self.add("safetensors-data", "garbled-values", ("gpt2", "llama")[i % 2], "ok", make)

    # --- safetensors, header JSON ---------------------------------------------------------

    def safetensors_header_json(self):
        def entry_edit(kind, expect, fn):
            for base in ("gpt2", "llama"):

                def make(folder, rng, fn=fn):
                    f = weight_file(folder, rng)
                    header, data = read_st(f)
                    names = sorted(k for k in header if k != "__metadata__")
                    name = rng.choice(names)
                    out = fn(header, name, rng, data)
                    if isinstance(out, bytes):
                        write_st(f, None, data, raw_header=out)
                    else:
                        write_st(f, header, data)

                self.add("safetensors-header", kind, base, expect, make)

        def set_dtype(value):
            def fn(h, name, rng, data):
                h[name]["dtype"] = value

            return fn

        for value in ["F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "XYZ", "f32",
                      5, None, ["F32"]]:  # fmt: skip
            entry_edit(f"dtype-{value}", "error", set_dtype(value))

        def set_shape(kind):
            def fn(h, name, rng, data):
                shape = h[name]["shape"]
                h[name]["shape"] = {
                    "append1": shape + [1],
                    "drop": shape[:-1],
                    "double": [2 * s for s in shape],
                    "negative": [-s for s in shape] or [-1],
                    "huge": [2**40] * 3,
                    "overflow": [2**64 - 1, 2**64 - 1],
                    "float": [float(s) + 0.5 for s in shape] or [0.5],
                    "string": [str(s) for s in shape] or ["1"],
                    "scalar": [],
                    "zero": [0] + shape[1:],
                    "notalist": 7,
                    "nested": [shape],
                }[kind]

            return fn

        for kind in ["append1", "drop", "double", "negative", "huge", "overflow", "float",
                     "string", "scalar", "zero", "notalist", "nested"]:  # fmt: skip
            entry_edit(f"shape-{kind}", "error", set_shape(kind))

        def set_offsets(kind):
            def fn(h, name, rng, data):
                a, b = h[name]["data_offsets"]
                h[name]["data_offsets"] = {
                    "reversed": [b, a],
                    "beyond": [a, len(data) + 4],
                    "far": [10**18, 10**18 + (b - a)],
                    "negative": [-4, b - a - 4],
                    "float": [a + 0.5, b],
                    "string": [str(a), str(b)],
                    "three": [a, b, b],
                    "missing": None,
                    "huge": [0, 2**70],
                }[kind]
                if h[name]["data_offsets"] is None:
                    del h[name]["data_offsets"]

            return fn

        for kind in ["reversed", "beyond", "far", "negative", "float", "string", "three",
                     "missing", "huge"]:  # fmt: skip
            entry_edit(f"offsets-{kind}", "error", set_offsets(kind))

        def shift(h, name, rng, data):  # overlapping: shifted by one element
            a, b = h[name]["data_offsets"]
            h[name]["data_offsets"] = [a + 4, b + 4] if b + 4 <= len(data) else [a - 4, b - 4]

        entry_edit("offsets-overlap", "any", shift)

        def drop(h, name, rng, data):
            del h[name]

        entry_edit("entry-dropped", "error", drop)

        def alias(h, name, rng, data):
            h["extra.alias.weight"] = dict(h[name])

        entry_edit("entry-alias", "any", alias)

        def whole(value):
            def fn(h, name, rng, data):
                return value

            return fn

        for kind, value in [
            ("list", b"[1, 2, 3]"), ("string", b'"header"'), ("number", b"42"), ("null", b"null"),
            ("empty", b""), ("spaces", b" " * 64), ("not-utf8", b'{"\xff\xfe": 1}'),
            ("nested-deep", nested(100_000).encode()), ("nested-dict", b'{"a":' * 5000 + b"1" + b"}" * 5000),
            ("bigint", b'{"x": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}'),
            ("nan", b'{"x": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}'),
        ]:  # fmt: skip
            entry_edit(f"header-{kind}", "error", whole(value))

        def metadata(value):
            def fn(h, name, rng, data):
                h["__metadata__"] = value

            return fn

        for kind, value in [("int", {"format": 5}), ("list", [1]), ("string", "pt"),
                            ("nested", {"a": {"b": "c"}}), ("null", None)]:  # fmt: skip
            entry_edit(f"metadata-{kind}", "any", metadata(value))

        def duplicate(h, name, rng, data):
            text = json.dumps(h)
            extra = json.dumps({name: h[name]})[1:-1]
            return (text[:-1] + ", " + extra + "}").encode()

        entry_edit("duplicate-key", "any", duplicate)

    # --- tensors ----------------------------------------------------------------------------

    def tensors(self):
        def edit(kind, expect, fn, bases=("gpt2", "llama")):
            for base in bases:

                def make(folder, rng, fn=fn):
                    state = tensors(folder)
                    name = rng.choice(sorted(state))
                    fn(state, name, rng)
                    save_tensors(folder, state)

                self.add("tensors", kind, base, expect, make)

        for _i in range(8):

            def drop(state, name, rng):
                del state[name]

            edit("missing", "error", drop)

        for _i in range(5):

            def extra(state, name, rng):
                for j in range(rng.randint(1, 3)):
                    shape = [rng.randint(0, 9) for _ in range(rng.randint(0, 3))]
                    dtype = rng.choice([torch.float32, torch.int64, torch.uint8, torch.bool])
                    key = rng.choice([f"junk.{j}", f"{name}.extra{j}", f"lm_head.{j}.bias"])
                    state[key] = torch.zeros(shape, dtype=dtype)

            edit("extra", "ok", extra)

        for dtype, expect in [
            (torch.float16, "ok"), (torch.bfloat16, "ok"), (torch.float64, "ok"),
            (torch.float8_e4m3fn, "ok"), (torch.int8, "error"), (torch.int32, "error"),
            (torch.int64, "error"), (torch.uint8, "error"), (torch.bool, "error"),
            (torch.complex64, "error"),
        ]:  # fmt: skip

            def cast(state, name, rng, dtype=dtype):
                state[name] = state[name].to(dtype)

            edit(f"dtype-{str(dtype)[6:]}", expect, cast)

        for kind in ["transposed", "flattened", "row-dropped", "row-added", "scalar", "empty",
                     "extra-dim"]:  # fmt: skip

            def reshape(state, name, rng, kind=kind):
                t = state[name]
                if kind == "transposed":
                    t = t.reshape(-1, 1) if t.dim() == 1 else t.T
                    if tuple(t.shape) == tuple(state[name].shape):
                        t = t[:-1]
                state[name] = {
                    "transposed": lambda: t,
                    "flattened": lambda: t.reshape(-1) if t.dim() > 1 else t.reshape(1, -1),
                    "row-dropped": lambda: t[:-1],
                    "row-added": lambda: torch.cat([t, t[:1]]),
                    "scalar": lambda: t.reshape(-1)[0].clone(),
                    "empty": lambda: t[:0],
                    "extra-dim": lambda: t[None],
                }[kind]()

            edit(f"shape-{kind}", "error", reshape)

        for kind in ["garbled", "case", "suffix"]:

            def rename(state, name, rng, kind=kind):
                t = state.pop(name)
                new = {
                    "garbled": name[: len(name) // 2] + "Z" + name[len(name) // 2 + 1 :],
                    "case": name.upper(),
                    "suffix": name + ".orig",
                }[kind]
                state[new] = t

            edit(f"renamed-{kind}", "error", rename)

        def unprefix(state, name, rng):
            for k in list(state):
                for p in ("transformer.", "model."):
                    if k.startswith(p):
                        state[k[len(p) :]] = state.pop(k)

        edit("prefix-stripped", "ok", unprefix)

        for value in (float("nan"), float("inf"), 1e38):

            def fill(state, name, rng, value=value):
                state[name] = torch.full_like(state[name], value)

            edit(f"filled-{value}", "ok", fill)

        def none(state, name, rng):
            state.clear()

        edit("no-tensors", "error", none)

    # --- config.json --------------------------------------------------------------------------

    def config(self):
        def cfg(kind, base, expect, fn):
            def make(folder, rng, fn=fn):
                edit_json(folder / "config.json", lambda c: fn(c, rng))

            self.add("config", kind, base, expect, make)

        for base, keys in (("gpt2", GPT2_INTS), ("llama", LLAMA_INTS)):
            for key in keys:
                for value in self.rng.sample(BAD_INTS, 9):

                    def put(c, rng, key=key, value=value):
                        c[key] = value

                    cfg(f"{key}={value!r}"[:40], base, "error", put)
                for delta in (-1, 1):

                    def nudge(c, rng, key=key, delta=delta):
                        c[key] = c.get(key) or 8
                        c[key] += delta

                    # one layer fewer than the weights hold is a valid (truncated) model; a
                    # rotary model's context window has no weights
                    fewer = delta == -1 and key in ("n_layer", "num_hidden_layers")
                    ok = fewer or key == "max_position_embeddings"
                    cfg(f"{key}{delta:+d}", base, "ok" if ok else "error", nudge)
                cfg(f"{key}=null", base, "any", lambda c, rng, key=key: c.__setitem__(key, None))
        for base, thin in (
            ("gpt2", {"n_layer": 15_000, "n_embd": 1, "n_head": 1, "n_inner": 1, "vocab_size": 1}),
            ("llama", {"num_hidden_layers": 5_000, "hidden_size": 1, "num_attention_heads": 1,
                       "num_key_value_heads": 1, "head_dim": 2, "intermediate_size": 1,
                       "vocab_size": 1}),
        ):  # fmt: skip
            # fewer parameters than the files hold, but thousands of layers: refused before
            # the (empty) model is built, which would take seconds
            cfg("many-thin-layers", base, "error", lambda c, rng, thin=thin: c.update(thin))
        floats = {"gpt2": ["layer_norm_epsilon"], "llama": ["rms_norm_eps", "rope_theta"]}
        for base, keys in floats.items():
            for key in keys:
                for value in BAD_FLOATS:

                    def put(c, rng, key=key, value=value):
                        where = c["rope_parameters"] if key == "rope_theta" else c
                        where[key] = value

                    cfg(f"{key}={value!r}"[:40], base, "error", put)
        bools = {"gpt2": ["tie_word_embeddings", "scale_attn_weights"],
                 "llama": ["attention_bias", "mlp_bias", "tie_word_embeddings"]}  # fmt: skip
        for base, keys in bools.items():
            for key in keys:
                for value in BAD_BOOLS[:4]:
                    cfg(f"{key}={value!r}", base, "error",
                        lambda c, rng, key=key, value=value: c.__setitem__(key, value))  # fmt: skip
        strings = {"gpt2": "activation_function", "llama": "hidden_act"}
        for base, key in strings.items():
            for value in BAD_STRINGS:
                cfg(f"{key}={value!r}"[:40], base, "error",
                    lambda c, rng, key=key, value=value: c.__setitem__(key, value))  # fmt: skip
        for base in ("gpt2", "llama"):
            for value in BAD_STRINGS + [None, "mamba", "GPT2", "llama "]:

                def kind(c, rng, value=value):
                    c["model_type"] = value
                    c["architectures"] = rng.choice([None, 5, "x", [5], [[1]], [{}], ["Nope"]])

                cfg(f"model_type={value!r}"[:40], base, "error", kind)
            for arch in (["GPT2LMHeadModel"], ["LlamaForCausalLM"]):
                match = arch[0].startswith("GPT2") == (base == "gpt2")

                def by_arch(c, rng, arch=arch):
                    del c["model_type"]
                    c["architectures"] = arch

                cfg(f"architectures={arch[0]}", base, "ok" if match else "error", by_arch)
            for _j in range(3):

                def junk(c, rng):
                    for i in range(rng.randint(1, 5)):
                        c[f"unknown_{i}"] = rng.choice([None, 1, "x", [1, {}], {"a": [None]}])
                    c["torch_dtype"] = rng.choice(["float64", 5, None, "int8"])

                cfg("unknown-keys", base, "ok", junk)
        for value in [
            "default", [1], 5, {"rope_type": "yarn", "factor": 2.0}, {"rope_type": "linear"},
            {"rope_type": "linear", "factor": float("inf")}, {"rope_type": "llama3", "factor": 8},
            {"rope_type": "default", "rope_theta": float("nan")},
            {"rope_type": "default", "partial_rotary_factor": 0}, {"rope_type": None},
            {"rope_type": ["linear"]},
        ]:  # fmt: skip
            cfg(f"rope={value!r}"[:40], "llama", "error",
                lambda c, rng, value=value: c.__setitem__("rope_parameters", value))  # fmt: skip

    def config_file(self):
        contents = {
            "empty": b"", "truncated": None, "binary": bytes(range(256)) * 4, "list": b"[1, 2]",
            "string": b'"gpt2"', "null": b"null", "number": b"3", "utf16": None, "bom": None,
            "nested-deep": nested(100_000).encode(), "bigint": b'{"n_layer": ' + b"7" * 5000 + b"}",
            "nan-literal": None, "latin1": b'{"model_type": "gpt2\xe9"}', "nul": b"\x00" * 100,
            "dup-keys": None,
        }  # fmt: skip
        for base in ("gpt2", "llama"):
            for kind, content in contents.items():

                def make(folder, rng, kind=kind, content=content):
                    path = folder / "config.json"
                    text = path.read_text()
                    data = {
                        "truncated": text[: rng.randrange(1, len(text) - 1)].encode(),
                        "utf16": text.encode("utf-16"),
                        "bom": b"\xef\xbb\xbf" + text.encode(),
                        "nan-literal": re.sub(
                            r'"vocab_size": \d+', '"vocab_size": NaN', text
                        ).encode(),
                        "dup-keys": text.replace("{", '{"model_type": 7, ', 1).encode(),
                    }.get(kind, content)
                    replace_file(path, data)

                # a duplicate key: the last one wins in Python's json, the real model_type
                expect = "ok" if kind == "dup-keys" else "error"
                self.add("config-file", kind, base, expect, make)

            def huge(folder, rng):
                path = folder / "config.json"
                remove(path)
                with open(path, "wb") as f:
                    f.truncate(17 * 1024 * 1024)  # sparse: larger than any config

            self.add("config-file", "huge", base, "error", huge)

    # --- tokenizers ---------------------------------------------------------------------------

    def tokenizer(self):
        def tok(kind, expect, fn, base="gpt2"):
            def make(folder, rng, fn=fn):
                path = folder / "tokenizer.json"
                fn(path, json.loads(path.read_text()), rng)

            self.add("tokenizer", kind, base, expect, make)

        def write(value):
            return lambda p, t, rng: replace_file(p, value)

        for kind, value in [("empty", b""), ("garbage", bytes(range(256))), ("list", b"[]"),
                            ("object", b"{}"), ("null", b"null"), ("nested", nested(50_000)),
                            ("not-utf8", b"\xff\xfe\x00{")]:  # fmt: skip
            tok(kind, "error", write(value))
        for _i in range(6):
            tok("truncated", "error",
                lambda p, t, rng: replace_file(p, p.read_text()[: rng.randrange(1, 4000)]))  # fmt: skip

        def shifted(p, t, rng):  # ids beyond the model's vocabulary
            t["model"]["vocab"] = {k: v + 1000 for k, v in t["model"]["vocab"].items()}
            replace_file(p, json.dumps(t))

        tok("ids-beyond-vocab", "error", shifted)

        def added(p, t, rng):
            t["added_tokens"].append({"id": rng.choice([320, 5000, 2**31]), "content": "<x>",
                                      "single_word": False, "lstrip": False, "rstrip": False,
                                      "normalized": False, "special": True})  # fmt: skip
            replace_file(p, json.dumps(t))

        for _i in range(3):
            tok("added-token-beyond-vocab", "error", added)

        for key, values in {
            "model": [None, 5, "BPE", {"type": "Nope"}, {"type": "BPE", "vocab": 5}, []],
            "pre_tokenizer": [5, {"type": "Nope"}, {"type": "Split", "pattern": {"Regex": "("},
                              "behavior": "Isolated", "invert": False}],
            "normalizer": [5, {"type": "Nope"}, {"type": "Replace", "pattern": {"Regex": "["},
                           "content": ""}],
            "decoder": [5, {"type": "Nope"}],
            "added_tokens": [5, [{"id": -1, "content": "x"}], [{"content": 5}], "x"],
            "post_processor": [5, {"type": "Nope"}],
        }.items():  # fmt: skip
            for value in values:

                def put(p, t, rng, key=key, value=value):
                    t[key] = value
                    replace_file(p, json.dumps(t))

                tok(f"{key}={json.dumps(value)}"[:40], "error", put)

        def missing(p, t, rng):
            remove(p)

        tok("missing", "error", missing)
        tok("missing", "error", missing, base="llama")

        def fallback(good_vocab, good_merges):
            def make(p, t, rng):
                remove(p)
                vocab = t["model"]["vocab"]
                merges = [" ".join(m) if isinstance(m, list) else m for m in t["model"]["merges"]]
                (p.parent / "vocab.json").write_text(
                    json.dumps(vocab) if good_vocab else rng.choice(["{", "[]", '{"a": "b"}', ""])
                )
                (p.parent / "merges.txt").write_text(
                    "#version: 0.2\n" + "\n".join(merges) if good_merges
                    else rng.choice(["a\n", "x y z w\n" * 3, "\x00\n", "Ġ Ġ\nnot-in-vocab q\n"])
                )  # fmt: skip

            return make

        tok("fallback-vocab-merges", "ok", fallback(True, True))
        for _i in range(4):
            tok("fallback-broken-vocab", "error", fallback(False, True))
        for _i in range(4):
            tok("fallback-broken-merges", "any", fallback(True, False))

        def config_junk(p, t, rng):
            replace_file(
                p.parent / "tokenizer_config.json", rng.choice([b"{", b"[]", nested(9999)])
            )

        tok("tokenizer_config-broken", "ok", config_junk)

    # --- files and folders ----------------------------------------------------------------

    def files(self):
        def fs(kind, base, expect, fn):
            self.add("files", kind, base, expect, fn)

        targets = {"gpt2": ["config.json", "model.safetensors", "tokenizer.json"],
                   "llama": ["config.json", "model.safetensors.index.json", "tokenizer.json",
                             "model-00002-of-00006.safetensors"],
                   "bin": ["config.json", "pytorch_model.bin", "tokenizer.json"]}  # fmt: skip
        replacements = ["missing", "folder", "link-loop", "link-dangling", "pipe", "empty",
                        "link-dev-zero", "link-to-folder", "link-chain-loop"]  # fmt: skip
        for base, names in targets.items():
            for name in names:
                for kind in replacements:

                    def make(folder, rng, name=name, kind=kind):
                        path = folder / name
                        remove(path)
                        if kind == "folder":
                            path.mkdir()
                            (path / "x").write_text("x")
                        elif kind == "link-loop":
                            os.symlink(path, path)
                        elif kind == "link-dangling":
                            os.symlink(folder / "nowhere", path)
                        elif kind == "pipe":
                            os.mkfifo(path)
                        elif kind == "empty":
                            path.write_bytes(b"")
                        elif kind == "link-dev-zero":
                            os.symlink("/dev/zero", path)
                        elif kind == "link-to-folder":
                            os.symlink(folder, path)
                        elif kind == "link-chain-loop":
                            os.symlink(folder / "b", path)
                            os.symlink(path, folder / "b")

                    # the index is optional: without it the shards are found by their names
                    harmless = name.endswith(".index.json") and kind == "missing"
                    fs(f"{name}-{kind}", base, "ok" if harmless else "error", make)

        def folder_is(kind):
            def make(folder, rng):
                shutil.rmtree(folder)
                if kind == "file":
                    folder.write_text("{}")
                elif kind == "link-loop":
                    os.symlink(folder, folder)
                elif kind == "link-dangling":
                    os.symlink(folder.parent / "gone", folder)

            return make

        for kind in ("missing", "file", "link-loop", "link-dangling"):
            fs(f"folder-{kind}", "gpt2", "error", folder_is(kind))

        def junk_files(folder, rng):
            for _i in range(rng.randint(1, 6)):
                name = rng.choice(["notes.txt", "README.md", "x.py", "pytorch_model.bin",
                                   "optimizer.pt", "training_args.bin", ".hidden", "a b.json"])  # fmt: skip
                replace_file(folder / name, rng.randbytes(rng.randint(0, 300)))

        for _i in range(4):
            fs("junk-files", "gpt2", "ok", junk_files)

        def subfolder_models(folder, rng):
            shutil.copytree(folder, folder.parent / "_sub")
            shutil.move(str(folder.parent / "_sub"), str(folder / "sub"))

        fs("nested-model-folder", "gpt2", "ok", subfolder_models)

    # --- weight index -----------------------------------------------------------------------

    def index(self):
        def idx(kind, expect, fn):
            def make(folder, rng, fn=fn):
                path = folder / "model.safetensors.index.json"
                data = json.loads(path.read_text())
                out = fn(data, folder, rng)
                replace_file(path, out if isinstance(out, (bytes, str)) else json.dumps(data))

            self.add("index", kind, "llama", expect, make)

        for target in ["../outside.safetensors", "/etc/passwd", "sub/x.safetensors", "..", ".",
                       "", " ", "a\x00b", "C:\\x.safetensors", "..\\x.safetensors", "~/x",
                       "model.safetensors.index.json", "tokenizer.json", "config.json",
                       "missing-00001.safetensors"]:  # fmt: skip

            def point(data, folder, rng, target=target):
                key = rng.choice(sorted(data["weight_map"]))
                data["weight_map"][key] = target

            idx(f"points-to={target!r}"[:40], "error", point)

        def all_to_one(data, folder, rng):
            first = sorted(set(data["weight_map"].values()))[0]
            data["weight_map"] = {k: first for k in data["weight_map"]}

        idx("subset-of-shards", "error", all_to_one)

        def shuffled(data, folder, rng):
            shards = sorted(set(data["weight_map"].values()))
            keys = sorted(data["weight_map"])
            data["weight_map"] = {k: shards[i % len(shards)] for i, k in enumerate(keys)}

        idx("shards-shuffled", "ok", shuffled)

        for kind, content in [("garbage", b"\x00\xff"), ("list", b"[]"), ("empty", b""),
                              ("map-list", b'{"weight_map": []}'), ("map-ints", b'{"weight_map": {"a": 1}}'),
                              ("map-empty", b'{"weight_map": {}}'), ("no-map", b'{"metadata": {}}'),
                              ("nested", nested(100_000))]:  # fmt: skip
            expect = "error"
            idx(f"index-{kind}", expect, lambda data, folder, rng, content=content: content)

        def shard_broken(kind):
            def fn(data, folder, rng):
                shard = folder / rng.choice(sorted(set(data["weight_map"].values())))
                remove(shard)
                if kind == "folder":
                    shard.mkdir()
                elif kind == "loop":
                    os.symlink(shard, shard)
                elif kind == "outside-link":
                    os.symlink("/etc/hostname", shard)
                elif kind == "garbage":
                    shard.write_bytes(rng.randbytes(200))

            return fn

        for kind in ("missing", "folder", "loop", "outside-link", "garbage"):
            idx(f"shard-{kind}", "error", shard_broken(kind))

    # --- pickles ------------------------------------------------------------------------------

    def pickles(self):
        def pk(kind, expect, fn, evil=False):
            def make(folder, rng, fn=fn):
                path = folder / "pytorch_model.bin"
                fn(path, rng, folder.parent / f"marker-{folder.name}")

            self.add("pickle", kind, "bin", expect, make, evil=evil)

        for call in EVIL_CALLS:
            for where in ("top", "value", "nested", "key-list"):

                def evil(path, rng, marker, call=call, where=where):
                    state = torch.load(path, weights_only=True)
                    payload = Payload(call, marker)
                    obj = {
                        "top": payload,
                        "value": {**state, rng.choice(sorted(state)): payload},
                        "nested": {**state, "extra": {"deeper": [payload]}},
                        "key-list": [state, payload],
                    }[where]
                    remove(path)
                    torch.save(obj, path)

                pk(f"evil-{call}-{where}", "error", evil, evil=True)

        for call in ("system", "exec"):

            def legacy_evil(path, rng, marker, call=call):
                import pickle

                replace_file(path, pickle.dumps({"w": Payload(call, marker)}))

            pk(f"legacy-raw-pickle-{call}", "error", legacy_evil, evil=True)

            def legacy_torch_evil(path, rng, marker, call=call):
                state = torch.load(path, weights_only=True)
                remove(path)
                torch.save({**state, "x": Payload(call, marker)}, path,
                           _use_new_zipfile_serialization=False)  # fmt: skip

            pk(f"legacy-torch-{call}", "error", legacy_torch_evil, evil=True)

        def legacy_ok(path, rng, marker):
            state = torch.load(path, weights_only=True)
            remove(path)
            torch.save(state, path, _use_new_zipfile_serialization=False)

        pk("legacy-format", "ok", legacy_ok)

        for _i in range(8):

            def truncated(path, rng, marker):
                raw = path.read_bytes()
                replace_file(path, raw[: rng.randrange(0, len(raw) - 1)])

            pk("truncated", "error", truncated)
        for _i in range(8):

            def flipped(path, rng, marker):
                raw = bytearray(path.read_bytes())
                for _ in range(rng.randint(1, 16)):
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
                replace_file(path, bytes(raw))

            pk("byte-flips", "any", flipped)

        for kind in ["list", "int", "str", "none", "tuple", "set", "nested-dict", "int-keys",
                     "tensor", "ordered-dict", "parameter", "int-weights"]:  # fmt: skip

            def other(path, rng, marker, kind=kind):
                import collections

                state = torch.load(path, weights_only=True)
                obj = {
                    "list": list(state.values()), "int": 3, "str": "weights", "none": None,
                    "tuple": tuple(state.values()), "set": {1, 2},
                    "nested-dict": {"state_dict": state}, "int-keys": dict(enumerate(state.values())),
                    "tensor": torch.zeros(3), "ordered-dict": collections.OrderedDict(state),
                    "parameter": {k: torch.nn.Parameter(v) for k, v in state.items()},
                    "int-weights": {k: v.long() for k, v in state.items()},
                }[kind]  # fmt: skip
                remove(path)
                torch.save(obj, path)

            ok = kind in ("ordered-dict", "parameter")
            pk(f"not-a-state-dict-{kind}", "ok" if ok else "error", other)

        def zero_bytes(path, rng, marker):
            replace_file(path, b"")

        pk("empty-file", "error", zero_bytes)


class Payload:
    """A pickle payload that would leave a marker file behind if it were ever executed."""

    def __init__(self, call: str, marker: Path):
        self.call, self.marker = call, str(marker)

    def __reduce__(self):
        import builtins
        import subprocess

        m = self.marker
        code = f"open({m!r}, 'w').write('pwned')"
        return {
            "system": (os.system, (f"touch '{m}'",)),
            "exec": (builtins.exec, (code,)),
            "eval": (builtins.eval, (code,)),
            "popen": (subprocess.Popen, (["touch", m],)),
            "import": (builtins.__import__, ("antigravity",)),
            "touch": (Path.touch, (Path(m),)),
        }[self.call]


def generate(seed: int = SEED) -> list[Case]:
    return Gen(seed).build()


# --- the harness --------------------------------------------------------------------------


def run_case(case: Case, base: Path, work: Path) -> Outcome:
    """Build the case's folder from the base, load it, and judge what happened."""
    from explorer.checkpoints import CheckpointError, load
    from explorer.checkpoints.hf import UNEXPECTED

    folder = work / case.name.replace("/", "_").replace("#", "_")[:80]
    marker = folder.parent / f"marker-{folder.name}"
    shutil.copytree(base, folder, symlinks=True)
    case.make(folder, random.Random(case.seed))
    result, message, problem = "crash", "", ""
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True)
    t0 = time.perf_counter()
    try:
        lm = load(folder)
        ids = lm.encode(PROMPT, truncate=True)
        run = lm.run(ids)
        logits = run.logits([len(ids) - 1])
        assert logits.shape == (1, lm.spec.vocab_size)
        result = "ok"
    except CheckpointError as e:
        result, message = "error", str(e)
        if not message or "Traceback" in message or len(message) > 600:
            problem = "the error message is empty, too long or a traceback"
        elif UNEXPECTED in message:
            problem = "only the loader's last safety net caught it"
    except BaseException as e:  # noqa: BLE001 - anything else is what the fuzzer looks for
        message = f"{type(e).__name__}: {e}"[:400]
        problem = "an exception other than CheckpointError"
        if isinstance(e, KeyboardInterrupt):
            raise
    finally:
        seconds = time.perf_counter() - t0
        faulthandler.cancel_dump_traceback_later()
    if not problem and case.expect != "any" and result != case.expect:
        problem = f"expected {case.expect}, got {result}"
    if not problem and seconds > CASE_LIMIT_S:
        problem = f"took {seconds:.1f} s"
    if marker.exists():
        problem = "a payload from the file ran"
    cleanup(folder)
    cleanup(marker)
    return Outcome(case.name, case.category, case.expect, result, message, seconds, problem)


def cleanup(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)  # links inside are removed, never followed


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_all(cases: list[Case], bases: dict[str, Path], work: Path) -> Report:
    """Run every case with the memory guard told AVAILABLE bytes are free (so the outcome does
    not depend on this machine's memory)."""
    from explorer.checkpoints import memory

    real = memory.available_bytes
    memory.available_bytes = lambda device="cpu": AVAILABLE
    report = Report()
    rss0 = max_rss_mb()
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            for case in cases:
                report.outcomes.append(run_case(case, bases[case.base], work))
    finally:
        memory.available_bytes = real
    report.seconds = time.perf_counter() - t0
    report.peak_rss_growth_mb = max_rss_mb() - rss0
    return report


def build_bases(root: Path) -> dict[str, Path]:
    """The base checkpoints, built with transformers (a test-only dependency)."""
    from tests import tiny_models

    out = {}
    for name, (config, fmt) in BASES.items():
        folder = root / name
        if not (folder / "config.json").is_file():
            tiny_models.build(config, folder, fmt=fmt)
        out[name] = folder
    return out
