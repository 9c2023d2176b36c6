"""Train the built-in demo model on the CPU and save it as a Hugging Face llama folder.

    python -m explorer.demo.train --out resources/demo-model

Needs torch, tokenizers and safetensors only (not transformers): the model is the engine's own
Transformer, built from a ModelSpec, trained with AdamW, and written under the names a
Hugging Face LlamaForCausalLM uses, so the app's loader and transformers both read it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine import ModelSpec, Transformer
from . import corpus


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    steps: int = 2000
    batch_size: int = 32
    length: int = 128  # tokens per training window
    lr: float = 3e-3
    min_lr_fraction: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.05
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    d_mlp: int = 256
    context_length: int = 256  # what config.json declares; rotary positions are relative
    threads: int = 1  # one thread: on a busy machine two threads spin-wait on each other
    mix_induction: float = 0.35
    mix_ioi: float = 0.40
    mix_plain: float = 0.25
    min_period: int = 8
    max_period: int = 32
    any_words: float = 0.25  # induction sequences of any words, function words too
    device: str = "cpu"
    log_every: int = 100


def demo_spec(s: Settings, vocab_size: int) -> ModelSpec:
    return ModelSpec(
        n_layers=s.n_layers,
        n_heads=s.n_heads,
        d_model=s.d_model,
        d_head=s.d_model // s.n_heads,
        d_mlp=s.d_mlp,
        vocab_size=vocab_size,
        context_length=s.context_length,
        norm="rmsnorm",
        norm_eps=1e-5,
        positions="rotary",
        rope_theta=10000.0,
        mlp="gated",
        activation="silu",
        tied_embeddings=False,
        architecture="llama",
    )


def init_weights(model: Transformer, spec: ModelSpec, seed: int) -> None:
    """GPT-2 style: N(0, 0.02) matrices, residual outputs scaled down by depth; norms at 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0)
                continue
            std = 0.02
            if name.endswith(("attn.o.weight", "mlp.down.weight")):
                std /= math.sqrt(2 * spec.n_layers)
            p.copy_(torch.randn(p.shape, generator=g) * std)


def hf_state_dict(model: Transformer, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Our parameter names -> Hugging Face llama names (the reverse of checkpoints/llama.py)."""
    ours = {k: v.detach().float().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    out = {"model.embed_tokens.weight": ours["wte.weight"]}
    for l in range(spec.n_layers):
        o, p = f"blocks.{l}.", f"model.layers.{l}."
        out[p + "input_layernorm.weight"] = ours[o + "ln1.weight"]
        out[p + "post_attention_layernorm.weight"] = ours[o + "ln2.weight"]
        for a, b in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
            out[p + f"self_attn.{b}.weight"] = ours[o + f"attn.{a}.weight"]
        for a, b in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
            out[p + f"mlp.{b}.weight"] = ours[o + f"mlp.{a}.weight"]
    out["model.norm.weight"] = ours["ln_f.weight"]
    out["lm_head.weight"] = ours["unembed.weight"]
    return out


def hf_config(spec: ModelSpec, tokenizer) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.d_model,
        "intermediate_size": spec.d_mlp,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "num_key_value_heads": spec.n_kv_heads,
        "head_dim": spec.d_head,
        "hidden_act": "silu",
        "max_position_embeddings": spec.context_length,
        "rms_norm_eps": spec.norm_eps,
        "rope_theta": spec.rope_theta,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "bos_token_id": None,
        "eos_token_id": tokenizer.token_to_id("\n"),
        "pad_token_id": tokenizer.token_to_id(corpus.UNK),
    }


def save(folder: Path, model: Transformer, spec: ModelSpec, tokenizer, meta: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(model, spec), str(folder / "model.safetensors"), {"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(spec, tokenizer), indent=2) + "\n")
    tokenizer.save(str(folder / "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": corpus.UNK,
        "pad_token": corpus.UNK,
        "model_max_length": spec.context_length,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    (folder / "training.json").write_text(json.dumps(meta, indent=2) + "\n")


def lr_at(step: int, s: Settings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (s.min_lr_fraction + (1 - s.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


def train(s: Settings, out: Path | None = None, log=print) -> tuple[Transformer, ModelSpec]:
    """Train with settings s; save to out (a Hugging Face folder) when given."""
    threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        return _train(s, out, log)
    finally:
        torch.set_num_threads(threads)


def _train(s: Settings, out: Path | None, log) -> tuple[Transformer, ModelSpec]:
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    tokenizer = corpus.build_tokenizer()
    spec = demo_spec(s, tokenizer.get_vocab_size())
    model = Transformer(spec)
    init_weights(model, spec, s.seed)
    model.to(s.device)
    model.requires_grad_(True).train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": s.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=s.lr,
        betas=(0.9, 0.95),
    )
    mix = corpus.Mix(
        s.mix_induction, s.mix_ioi, s.mix_plain, s.min_period, s.max_period, s.any_words
    )
    data = corpus.Corpus(tokenizer, seed=s.seed, mix=mix)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"demo model: {spec.n_layers} layers x {spec.n_heads} heads, d={spec.d_model}, "
        f"vocab {spec.vocab_size}, {n_params / 1e6:.2f}M parameters; {s.steps} steps"
    )
    t0 = time.perf_counter()
    smooth = None
    for step in range(s.steps):
        batch = data.batch(s.batch_size, s.length).to(s.device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, s)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % s.log_every == 0 or step == s.steps - 1:
            el = time.perf_counter() - t0
            log(f"step {step:5d}  loss {smooth:.3f}  lr {lr_at(step, s):.2e}  {el:6.0f}s")
    model.requires_grad_(False).eval()
    seconds = time.perf_counter() - t0
    if out is not None:
        meta = {
            "settings": asdict(s),
            "train_seconds": round(seconds, 1),
            "final_loss": round(smooth, 4),
            "torch": torch.__version__,
        }
        save(Path(out), model, spec, tokenizer, meta)
        log(f"saved to {out} after {seconds:.0f}s")
    return model, spec


def measure(out: Path, log=print) -> list[str]:
    """Measure a saved model: write report.json and README.md into its folder; returns the
    checks that fail (see report.check)."""
    from ..checkpoints import load
    from .report import check, report, write_readme

    r = report(load(out))
    (out / "report.json").write_text(json.dumps(r, indent=2) + "\n")
    meta = json.loads((out / "training.json").read_text())
    st = meta["settings"]
    device = "CPU" if st["device"] == "cpu" else st["device"]
    note = (
        f"Trained by `make demo-model` for {st['steps']} steps of {st['batch_size']} x "
        f"{st['length']} tokens in {meta['train_seconds'] / 60:.1f} minutes on "
        f"{st['threads']} {device} thread(s) (torch {meta['torch']}, seed {st['seed']}, "
        f"final training loss {meta['final_loss']:.2f})."
    )
    write_readme(out, r, note)
    log(json.dumps(r, indent=2))
    failed = check(r)
    for f in failed:
        print(f"CHECK FAILED: {f}", file=sys.stderr)
    return failed


def main(argv=None) -> int:
    d = Settings()
    p = argparse.ArgumentParser(prog="python -m explorer.demo.train", description=__doc__)
    p.add_argument("--out", required=True, help="the model folder to write")
    for f, v in asdict(d).items():
        p.add_argument("--" + f.replace("_", "-"), type=type(v), default=v)
    p.add_argument("--no-report", action="store_true", help="skip measuring the saved model")
    p.add_argument("--report-only", action="store_true", help="measure the model already in --out")
    a = vars(p.parse_args(argv))
    out = Path(a.pop("out"))
    no_report, report_only = a.pop("no_report"), a.pop("report_only")
    if not report_only:
        train(Settings(**a), out)
    if no_report:
        return 0
    return 1 if measure(out) else 0


if __name__ == "__main__":
    sys.exit(main())
