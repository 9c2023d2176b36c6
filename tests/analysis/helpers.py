"""Independent reference computations for the analysis tests (transformers hooks, loops)."""

from __future__ import annotations

import contextlib

import torch

OUT_PROJ = ("attn.c_proj", "self_attn.o_proj", "attention.dense")


def hf_blocks(hf):
    base = getattr(hf, "base_model", hf)
    return base.h if hasattr(base, "h") else base.layers


def hf_out_proj(block):
    for path in OUT_PROJ:
        obj = block
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise AttributeError(type(block).__name__)


@contextlib.contextmanager
def hf_capture_z(hf, layer: int, store: dict):
    """Record the input of a layer's output projection: the heads' z, (B, T, H*dh)."""

    def pre_hook(module, args):
        store["z"] = args[0].detach().clone()

    handle = hf_out_proj(hf_blocks(hf)[layer]).register_forward_pre_hook(pre_hook)
    try:
        yield store
    finally:
        handle.remove()


@contextlib.contextmanager
def hf_patch_z(hf, layer: int, head: int, d_head: int, z_clean: torch.Tensor):
    """Replace one head's slice of the output projection's input by the clean one."""
    sl = slice(head * d_head, (head + 1) * d_head)

    def pre_hook(module, args):
        z = args[0].clone()
        z[..., sl] = z_clean[..., sl]
        return (z,) + tuple(args[1:])

    handle = hf_out_proj(hf_blocks(hf)[layer]).register_forward_pre_hook(pre_hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def hf_logits(hf, ids) -> torch.Tensor:
    return hf(torch.as_tensor(ids)[None]).logits[0].float()
