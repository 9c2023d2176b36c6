"""Tiny random-weight checkpoints built with transformers (test-only), saved to a folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

NOISE = 0.1  # std of the noise added to every weight
BASE = dict(vocab_size=320, hidden_size=32, num_hidden_layers=3, num_attention_heads=4)


def configs():
    import transformers as T

    llama = dict(BASE, intermediate_size=48, max_position_embeddings=128)
    return {
        "gpt2": T.GPT2Config(
            vocab_size=320,
            n_embd=32,
            n_layer=3,
            n_head=4,
            n_positions=128,
            tie_word_embeddings=True,
        ),
        "gpt2-untied": T.GPT2Config(
            vocab_size=320,
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=64,
            n_inner=80,
            tie_word_embeddings=False,
            activation_function="gelu",
        ),
        "llama": T.LlamaConfig(**llama, num_key_value_heads=4),
        "llama-gqa": T.LlamaConfig(
            **llama,
            num_key_value_heads=2,
            attention_bias=True,
            mlp_bias=True,
            tie_word_embeddings=True,
        ),
        "llama3-scaled": T.LlamaConfig(
            **dict(llama, max_position_embeddings=256),
            num_key_value_heads=1,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
        "llama-gqa4": T.LlamaConfig(
            **dict(llama, num_attention_heads=8), num_key_value_heads=2, head_dim=8
        ),
        "llama-linear": T.LlamaConfig(
            **llama,
            num_key_value_heads=4,
            rope_scaling={"rope_type": "linear", "factor": 2.0},
            tie_word_embeddings=True,
        ),
        "mistral": T.MistralConfig(**llama, num_key_value_heads=2, sliding_window=16),
        "qwen2": T.Qwen2Config(**llama, num_key_value_heads=2, tie_word_embeddings=True),
        "qwen3": T.Qwen3Config(**llama, num_key_value_heads=2, head_dim=16),
        "neox": T.GPTNeoXConfig(
            **dict(BASE, intermediate_size=64, max_position_embeddings=128), rotary_pct=0.25
        ),
        "neox-seq": T.GPTNeoXConfig(
            **dict(BASE, intermediate_size=64, max_position_embeddings=128),
            rotary_pct=0.5,
            use_parallel_residual=False,
        ),
        "neox-nobias": T.GPTNeoXConfig(
            **dict(BASE, intermediate_size=64, max_position_embeddings=128),
            rotary_pct=1.0,
            attention_bias=False,
            tie_word_embeddings=True,
        ),
        "bert": T.BertConfig(**BASE, intermediate_size=64, max_position_embeddings=128),
        "bert-mlm": T.BertConfig(**BASE, intermediate_size=64, max_position_embeddings=128),
    }


def build(name: str, folder: Path, seed: int = 0, fmt: str = "safetensors"):
    """Save a tiny random model named in configs() to folder; returns the transformers model.

    fmt: "safetensors" (one file), "sharded" (several files + model.safetensors.index.json) or
    "bin" (pytorch_model.bin, a plain torch.save of the state dict).
    """
    import transformers as T

    cfg = configs()[name]
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    if name == "bert":
        model = T.BertModel(cfg)
    elif name == "bert-mlm":
        model = T.BertForMaskedLM(cfg)
    else:
        model = T.AutoModelForCausalLM.from_config(cfg)
    # random init leaves norms at 1/0 and attention near uniform; perturb every weight so each
    # one matters and heads attend selectively (ablations then change outputs clearly)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * NOISE)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "bin":
        cfg.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    elif fmt == "sharded":
        model.save_pretrained(folder, max_shard_size="20KB")
    else:
        model.save_pretrained(folder)
    write_tokenizer(folder, cfg.vocab_size, wordpiece=name.startswith("bert"))
    return model


def write_tokenizer(folder: Path, vocab_size: int, wordpiece: bool = False) -> None:
    """A small tokenizer.json trained on a fixed text, its vocabulary within vocab_size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    text = [
        "When Mary and John went to the store, John gave a drink to Mary.",
        "The quick brown fox jumps over the lazy dog. 1234567890",
        "attention heads read the residual stream\n\nand write to it again",
    ] * 20
    if wordpiece:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        )
        tok.train_from_iterator(text, trainer)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        tok.decoder = decoders.WordPiece()
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"],
        )
        tok.train_from_iterator(text, trainer)
    assert tok.get_vocab_size() <= vocab_size, tok.get_vocab_size()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
