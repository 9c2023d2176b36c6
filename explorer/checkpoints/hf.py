"""Load a Hugging Face model folder into the engine. Local files only; no code from the
checkpoint runs (no trust_remote_code, .bin only through torch.load(weights_only=True))."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from ..engine import LoadedModel, ModelSpec, SpecError, Tokenizer, Transformer
from ..engine.model import rotary_inv_freq
from . import architectures, memory
from .architectures.common import Config, Mapper
from .errors import CheckpointError
from .weights import WeightSource, not_a_file

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAX_CONFIG = 16 * 1024 * 1024  # a config.json is a few kB; refuse to read a huge one
MAX_TOKENIZER = 512 * 1024 * 1024  # the largest real tokenizer.json files are ~35 MB


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        why = not_a_file(folder, "config.json")
        if why:
            raise CheckpointError(f"{folder.name}: {why}")
        raise CheckpointError(f"{folder} has no config.json — is it a Hugging Face model folder?")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG:
            raise CheckpointError(f"config.json is {memory.gb(size)}: too large to be a config")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError("config.json cannot be read: it is nested too deeply") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: JSON, huge integers
        raise CheckpointError(f"config.json cannot be read: {e}"[:300]) from None
    if not isinstance(raw, dict):
        raise CheckpointError("config.json is not a JSON object")
    return raw


def model_type(raw: dict) -> str:
    kind = raw.get("model_type")
    if not kind:
        names = raw.get("architectures") or []
        for arch in names if isinstance(names, list) else []:
            kind = architectures.ARCHITECTURES.get(arch) if isinstance(arch, str) else None
            if kind:
                break
    if not isinstance(kind, str) or kind not in architectures.FAMILIES:
        shown = (
            repr(kind) if isinstance(kind, (str, type(None))) else f"of type {type(kind).__name__}"
        )
        raise CheckpointError(
            f"unsupported model_type {shown[:80]}; supported: {', '.join(architectures.SUPPORTED)}"
        )
    return kind


def build_spec(raw: dict, weights) -> ModelSpec:
    kind = model_type(raw)
    family = architectures.FAMILIES[kind]
    cfg = Config({**raw, "model_type": kind}, architectures.defaults(kind))
    try:
        return family.spec(cfg, weights)
    except SpecError as e:
        raise CheckpointError(f"config.json describes an impossible model: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError) as e:
        # a value of the wrong type somewhere the family module did not check it
        raise CheckpointError(
            f"config.json cannot describe a {kind} model: {type(e).__name__}: {e}"[:500]
        ) from None


def build_model(spec: ModelSpec, weights: WeightSource, dtype, device) -> Transformer:
    family = architectures.FAMILIES[spec.architecture]
    with torch.device("meta"):
        model = Transformer(spec)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapper = Mapper(weights, expected, family.PREFIXES)
    family.load(mapper, spec)
    missing = sorted(set(expected) - set(mapper.out))
    if missing:
        raise CheckpointError(f"the checkpoint lacks weights for: {', '.join(missing[:5])}")
    state = {k: v.to(device=device, dtype=dtype) for k, v in mapper.out.items()}
    model.load_state_dict(state, strict=True, assign=True)
    if spec.positions == "rotary":
        model.inv_freq = rotary_inv_freq(spec).to(device)
    return model.eval()


def load_tokenizer(folder: Path, raw: dict) -> Tokenizer:
    """tokenizer.json; else GPT-2's vocab.json + merges.txt; else BERT's vocab.txt."""
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt"):
        why = not_a_file(folder, name)
        if why:
            raise CheckpointError(f"the tokenizer cannot be read: {why}")
        path = folder / name
        if path.is_file() and path.stat().st_size > MAX_TOKENIZER:
            size = memory.gb(path.stat().st_size)
            raise CheckpointError(f"{name} is {size}: too large to be a tokenizer")
    try:
        if (folder / "tokenizer.json").is_file():
            return Tokenizer.from_file(folder / "tokenizer.json")
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            from tokenizers import ByteLevelBPETokenizer

            bpe = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
            # GPT-2's end-of-text token is special: never split, as transformers does
            bpe.add_special_tokens(
                [t for t in ("<|endoftext|>",) if bpe.token_to_id(t) is not None]
            )
            return Tokenizer(bpe._tokenizer)
        if (folder / "vocab.txt").is_file():
            from tokenizers import BertWordPieceTokenizer

            lower = _tokenizer_config(folder).get("do_lower_case", True)
            wp = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=bool(lower))
            return Tokenizer(wp._tokenizer)
    except (CheckpointError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # tokenizers raises plain Exceptions, or a Rust panic
        raise CheckpointError(f"the tokenizer cannot be read: {e}"[:500]) from None
    raise CheckpointError(
        f"{folder} has no tokenizer: expected tokenizer.json (or vocab.json + merges.txt, "
        "or vocab.txt)"
    )


def _tokenizer_config(folder: Path) -> dict:
    try:
        data = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def load(
    path,
    dtype: str | torch.dtype = "float32",
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load a model folder. Every failure raises CheckpointError with a readable message."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise CheckpointError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise CheckpointError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError("CUDA was asked for but is not available")
    say = progress or (lambda msg: None)
    try:
        say("reading config.json")
        raw = read_config(folder)
        kind = model_type(raw)
        say("opening weights")
        weights = WeightSource(folder)
        spec = build_spec(raw, weights)
        check_numbers(spec, weights, dtype, folder.name, device)
        say(f"building {kind} ({spec.n_layers} layers x {spec.n_heads} heads)")
        model = build_model(spec, weights, dtype, device)
        say("reading tokenizer")
        tokenizer = load_tokenizer(folder, raw)
    except CheckpointError:
        raise
    except (OSError, MemoryError) as e:
        raise CheckpointError(f"cannot load {folder.name}: {type(e).__name__}: {e}"[:500]) from None
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, RecursionError) as e:
        # a last safety net: the fuzz tests require that no case ever reaches it
        raise CheckpointError(
            f"cannot load {folder.name} ({UNEXPECTED}: {type(e).__name__}: {e})"[:500]
        ) from None
    check_tokenizer(tokenizer, spec)
    return LoadedModel(model, tokenizer, name=folder.name, path=str(folder), info={"config": raw})


UNEXPECTED = "unexpected error"


def check_numbers(
    spec: ModelSpec, weights: WeightSource, dtype, name: str, device: str = "cpu"
) -> None:
    """Refuse a config whose sizes the weight files cannot back, or that cannot fit in memory,
    from the numbers alone: before the model is built or any tensor allocated.

    A config claiming somewhat more than the files hold (a missing tensor, one layer too
    many) gets through to build_model, which names the tensor that is missing; one claiming
    more than twice as much (10**9 layers, a vocabulary of 10**12) is refused here, where
    building even an empty model of that size would hang or overflow."""
    claimed = spec.n_params()
    if claimed > 2 * weights.n_values:
        raise CheckpointError(
            f"config.json describes a model of {memory.count(claimed)} parameters, but the "
            f"weight files hold only {memory.count(weights.n_values)} values: the config does "
            "not match the weights"
        )
    n_tensors = len(weights.names())
    if 2 * spec.n_layers > n_tensors:  # every layer has at least two weight tensors
        raise CheckpointError(
            f"config.json describes {memory.count(spec.n_layers)} layers, but the weight files "
            f"hold only {n_tensors} tensors: the config does not match the weights"
        )
    memory.check_load(spec, dtype, name, device)


def check_tokenizer(tokenizer: Tokenizer, spec: ModelSpec) -> None:
    """Every id the tokenizer can produce must have a row in the embedding."""
    if tokenizer.vocab_size > spec.vocab_size:
        raise CheckpointError(
            f"the tokenizer has {tokenizer.vocab_size} tokens, the model only {spec.vocab_size}"
        )
    top = tokenizer.max_id
    if top >= spec.vocab_size:
        raise CheckpointError(
            f"the tokenizer has a token with id {top}; the model's vocabulary ends at "
            f"{spec.vocab_size - 1}"
        )
