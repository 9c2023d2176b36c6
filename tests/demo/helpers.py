"""Shared by the demo tests: logits from transformers for a model folder."""

from __future__ import annotations

import torch


def transformers_logits(folder, ids: list[int]) -> torch.Tensor:
    """(T, vocab) logits of the folder's model through transformers (eager attention)."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager")
    hf.eval()
    with torch.inference_mode():
        return hf(torch.tensor([ids])).logits[0].float()
