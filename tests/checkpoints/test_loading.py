"""Loader: formats, and one clear CheckpointError (never another exception) for bad folders."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from explorer.checkpoints import CheckpointError, load
from explorer.checkpoints.architectures import SUPPORTED


def copy(tiny, name, tmp_path, fmt="safetensors"):
    dst = tmp_path / f"{name}-copy"
    shutil.copytree(tiny(name, fmt).folder, dst)
    return dst


def edit_config(folder, **changes):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is DELETE:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


DELETE = object()


def load_or_checkpoint_error(folder):
    """Loads, or raises CheckpointError: anything else fails the test."""
    try:
        lm = load(folder)
    except CheckpointError as e:
        msg = str(e)
        assert msg and "\n" not in msg.strip() and "Traceback" not in msg
        return e
    lm.run([1, 2, 3])  # whatever loads must also run
    return None


def test_load_describes_the_model(tiny):
    lm = tiny("llama-gqa").lm
    d = lm.describe()
    assert d["architecture"] == "llama" and d["n_layers"] == 3
    assert (d["n_heads"], d["n_kv_heads"], d["d_model"], d["d_head"]) == (4, 2, 32, 8)
    assert d["vocab_size"] == 320 and d["context_length"] == 128
    assert d["dtype"] == "float32" and d["device"] == "cpu"
    assert lm.info["config"]["model_type"] == "llama"


def test_model_type_from_architectures_alone(tiny, tmp_path):
    folder = copy(tiny, "gpt2", tmp_path)
    edit_config(folder, model_type=DELETE)
    assert load(folder).spec.architecture == "gpt2"


def test_safetensors_are_memory_mapped_not_copied(tiny):
    """A weight that needs no transform still points into the file's mapping."""
    from explorer.checkpoints.weights import WeightSource

    src = WeightSource(tiny("llama").folder)
    a = src.get("model.embed_tokens.weight")
    assert a.shape == (320, 32)
    assert "model.layers.0.self_attn.q_proj.weight" in src.names()


@pytest.mark.parametrize("kind", ["t5", "gpt_bigcode", ""])
def test_unknown_model_type_names_the_supported_ones(tiny, tmp_path, kind):
    folder = copy(tiny, "gpt2", tmp_path)
    edit_config(folder, model_type=kind, architectures=["T5ForConditionalGeneration"])
    with pytest.raises(CheckpointError) as e:
        load(folder)
    msg = str(e.value)
    assert "unsupported" in msg
    for name in SUPPORTED:
        assert name in msg
    assert set(SUPPORTED) >= {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gpt_neox", "bert"}


def test_missing_things(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        load(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a folder"):
        load(tmp_path / "file.txt")
    with pytest.raises(CheckpointError, match="config.json"):
        load(tmp_path)
    folder = copy(tiny, "gpt2", tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        load(folder)
    folder = copy(tiny, "llama", tmp_path / "b")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load(folder)


def test_missing_shard_and_bad_index(tiny, tmp_path):
    folder = copy(tiny, "qwen3", tmp_path, "sharded")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[1]
    (folder / shard).unlink()
    with pytest.raises(CheckpointError, match="missing weight shard") as e:
        load(folder)
    assert shard in str(e.value)
    for bad in ("{}", "[1]", '{"weight_map": {"a": 3}}', "not json"):
        (folder / "model.safetensors.index.json").write_text(bad)
        with pytest.raises(CheckpointError, match="index"):
            load(folder)


@pytest.mark.parametrize(
    "name,tensor",
    [
        ("gpt2", "transformer.h.1.attn.c_proj.weight"),
        ("gpt2", "transformer.wpe.weight"),
        ("llama-gqa", "model.layers.2.self_attn.k_proj.weight"),
        ("neox", "gpt_neox.layers.0.attention.query_key_value.weight"),
        ("bert-mlm", "bert.encoder.layer.1.attention.self.value.bias"),
        ("bert-mlm", "cls.predictions.bias"),
    ],
)
def test_a_wrong_shape_is_named(tiny, tmp_path, name, tensor):
    folder = copy(tiny, name, tmp_path)
    path = folder / "model.safetensors"
    state = load_file(path)
    assert tensor in state, sorted(state)[:20]
    state[tensor] = torch.zeros(*[n + 1 for n in state[tensor].shape])
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load(folder)
    assert tensor in str(e.value) and "shape" in str(e.value)


@pytest.mark.parametrize(
    "name,tensor",
    [("gpt2", "transformer.h.2.mlp.c_fc.bias"), ("llama", "model.layers.1.mlp.gate_proj.weight")],
)
def test_a_missing_tensor_is_named(tiny, tmp_path, name, tensor):
    folder = copy(tiny, name, tmp_path)
    path = folder / "model.safetensors"
    state = load_file(path)
    del state[tensor]
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load(folder)
    assert tensor in str(e.value)


def test_integer_weights_are_refused(tiny, tmp_path):
    folder = copy(tiny, "llama", tmp_path)
    path = folder / "model.safetensors"
    state = load_file(path)
    name = "model.layers.0.mlp.up_proj.weight"
    state[name] = state[name].to(torch.int32)
    save_file(state, path)
    with pytest.raises(CheckpointError, match="dtype"):
        load(folder)


@pytest.mark.parametrize(
    "content", [b"", b"\x01\x02", b"\xff" * 8 + b"{}", b"\x10\0\0\0\0\0\0\0[1,2,3]  x"]
)
def test_broken_safetensors(tiny, tmp_path, content):
    folder = copy(tiny, "gpt2", tmp_path)
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load(folder)


def test_truncated_safetensors(tiny, tmp_path):
    folder = copy(tiny, "gpt2", tmp_path)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="outside the file"):
        load(folder)


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", "null", '{"model_type": 3}'])
def test_broken_config_json(tiny, tmp_path, content):
    folder = copy(tiny, "gpt2", tmp_path)
    (folder / "config.json").write_text(content)
    with pytest.raises(CheckpointError):
        load(folder)


def test_broken_tokenizer_and_too_large_vocabulary(tiny, tmp_path):
    folder = copy(tiny, "gpt2", tmp_path)
    (folder / "tokenizer.json").write_text("{ not a tokenizer")
    with pytest.raises(CheckpointError, match="tokenizer"):
        load(folder)
    folder = copy(tiny, "llama", tmp_path / "b")
    edit_config(folder, vocab_size=100)
    with pytest.raises(CheckpointError):
        load(folder)


def test_bad_dtype_and_device(tiny):
    with pytest.raises(CheckpointError, match="dtype"):
        load(tiny("gpt2").folder, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match="CUDA"):
            load(tiny("gpt2").folder, device="cuda")


BAD_VALUES = [-1, 0, "8", 2.5, True, [4], {"a": 1}]
INT_KEYS = {
    "gpt2": ["n_embd", "n_layer", "n_head", "n_positions", "vocab_size", "n_inner"],
    "llama-gqa": [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "head_dim",
        "max_position_embeddings",
        "vocab_size",
    ],
    "mistral": ["sliding_window", "num_key_value_heads"],
    "neox": ["hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings"],
    "bert-mlm": ["hidden_size", "num_attention_heads", "type_vocab_size", "vocab_size"],
}


@pytest.mark.parametrize("name", sorted(INT_KEYS))
def test_invalid_integer_config_values(tiny, tmp_path, name):
    base = copy(tiny, name, tmp_path)
    for key in INT_KEYS[name]:
        for value in BAD_VALUES:
            if key == "sliding_window" and value == 0:
                continue  # 0 means no window
            folder = tmp_path / f"{key}-{value!r}"[:60].replace("/", "_")
            shutil.copytree(base, folder)
            edit_config(folder, **{key: value})
            err = load_or_checkpoint_error(folder)
            assert err is not None, f"{name}: {key}={value!r} loaded"
            shutil.rmtree(folder)


OTHER_BAD = {
    "gpt2": {
        "layer_norm_epsilon": ["x", -1.0, 0, [1e-5]],
        "activation_function": ["swoosh", 3],
        "tie_word_embeddings": ["yes", 1],
        "scale_attn_by_inverse_layer_idx": [True, "no"],
    },
    "llama-gqa": {
        "rms_norm_eps": ["x", -1e-6],
        "rope_parameters": [
            "default",
            [1],
            {"rope_type": "yarn", "factor": 2.0},
            {"rope_type": "default", "rope_theta": "big"},
            {"rope_type": "default", "rope_theta": -10000.0},
            {"rope_type": "linear"},
            {"rope_type": "linear", "factor": -2.0},
        ],
        "rope_scaling": [{"rope_type": "llama3", "factor": 8.0}, "linear"],
        "hidden_act": ["swiglu2", 7],
        "attention_bias": ["true"],
    },
    "neox": {
        "rope_parameters": [{"partial_rotary_factor": 2.0}, {"partial_rotary_factor": "q"}],
        "use_parallel_residual": ["yes"],
        "layer_norm_eps": [0.0],
    },
    "bert-mlm": {"position_embedding_type": ["relative_key"], "layer_norm_eps": ["tiny"]},
}


@pytest.mark.parametrize("name", sorted(OTHER_BAD))
def test_invalid_other_config_values(tiny, tmp_path, name):
    base = copy(tiny, name, tmp_path)
    for key, values in OTHER_BAD[name].items():
        for value in values:
            folder = tmp_path / "case"
            shutil.copytree(base, folder)
            if key == "rope_scaling":  # the legacy key, in a config without rope_parameters
                edit_config(folder, rope_parameters=DELETE, rope_scaling=value)
            else:
                edit_config(folder, **{key: value})
            err = load_or_checkpoint_error(folder)
            assert err is not None, f"{name}: {key}={value!r} loaded"
            shutil.rmtree(folder)


def test_fewer_layers_in_config_than_weights_still_loads(tiny, tmp_path):
    """Extra tensors are ignored; more layers than the weights hold is a named error."""
    folder = copy(tiny, "gpt2", tmp_path)
    edit_config(folder, n_layer=2)
    assert load(folder).spec.n_layers == 2
    edit_config(folder, n_layer=4)
    with pytest.raises(CheckpointError, match="h.3"):
        load(folder)


@pytest.mark.parametrize(
    "changes",
    [
        {"use_sliding_window": True, "layer_types": 5},
        {"use_sliding_window": True, "layer_types": ["sliding_attention"] * 3},
        {"use_sliding_window": True, "layer_types": [None, 1, 2]},
    ],
)
def test_per_layer_sliding_windows_are_refused(tiny, tmp_path, changes):
    folder = copy(tiny, "qwen2", tmp_path)
    edit_config(folder, **changes)
    with pytest.raises(CheckpointError):
        load(folder)
