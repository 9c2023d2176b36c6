"""Helpers every architecture module shares: typed config reading, rope settings, and a
mapper that fills our state dict from checkpoint tensors with shape checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import CheckpointError
from ..weights import WeightSource

ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
}


def short(v, limit: int = 60) -> str:
    """repr(v), cut to a length a message can show."""
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(v) -> float:
    """A JSON number as a float; TypeError for text, true/false and anything else."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{short(v)} is not a number")
    return float(v)


class Config:
    """config.json values with the defaults of the matching transformers config class."""

    def __init__(self, raw: dict, defaults: dict):
        self.raw = raw
        self.defaults = defaults

    def get(self, key: str, default=None):
        if key in self.raw and self.raw[key] is not None:
            return self.raw[key]
        return self.defaults.get(key, default)

    def int(self, key: str, default=None, positive: bool = True) -> int:
        v = self.get(key, default)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or (positive and v <= 0):
            raise CheckpointError(f"config.json: {key} must be a positive integer, got {short(v)}")
        return v

    def float(self, key: str, default=None) -> float:
        v = self.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise CheckpointError(f"config.json: {key} must be a finite number, got {short(v)}")
        return float(v)

    def bool(self, key: str, default=None) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise CheckpointError(f"config.json: {key} must be true or false, got {short(v)}")
        return v

    def activation(self, key: str, default: str) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or v not in ACTIVATIONS:
            raise CheckpointError(
                f"config.json: activation {short(v)} is not supported "
                f"(supported: {sorted(ACTIVATIONS)})"
            )
        return ACTIVATIONS[v]


def rope_settings(cfg: Config, partial_default: float = 1.0) -> dict:
    """ModelSpec rotary fields from either the new rope_parameters or the legacy keys."""
    params = cfg.get("rope_parameters") or {}
    legacy = cfg.get("rope_scaling") or {}
    if not isinstance(params, dict) or not isinstance(legacy, dict):
        raise CheckpointError("config.json: rope_parameters / rope_scaling must be objects")
    merged = {**legacy, **params}
    theta = merged.get("rope_theta", cfg.get("rope_theta", cfg.get("rotary_emb_base", 10000.0)))
    partial = merged.get(
        "partial_rotary_factor",
        cfg.get("partial_rotary_factor", cfg.get("rotary_pct", partial_default)),
    )
    kind = merged.get("rope_type", merged.get("type", "default"))
    try:
        theta, partial = number(theta), number(partial)
        if kind == "default":
            scaling, p = "none", ()
        elif kind == "linear":
            scaling, p = "linear", (number(merged["factor"]),)
        elif kind == "llama3":
            scaling = "llama3"
            p = (
                number(merged["factor"]),
                number(merged["low_freq_factor"]),
                number(merged["high_freq_factor"]),
                number(merged["original_max_position_embeddings"]),
            )
        else:
            raise CheckpointError(
                f"config.json: rope type {short(kind)} is not supported (supported: default, "
                "linear, llama3)"
            )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"config.json: incomplete rope settings ({e})") from None
    finite = all(map(math.isfinite, (theta, partial, *p)))
    if not finite or not (theta > 0 and 0 < partial <= 1) or any(not x > 0 for x in p):
        raise CheckpointError("config.json: rope settings out of range")
    return {
        "rope_theta": theta,
        "rope_scaling": scaling,
        "rope_scaling_params": p,
        "partial": partial,
    }


class Mapper:
    """Fills our state dict from checkpoint tensors, checking every shape on the way."""

    def __init__(self, src: WeightSource, expected: dict[str, tuple], prefixes=("",)):
        self.src = src
        self.expected = expected
        self.prefixes = prefixes
        self.out: dict[str, torch.Tensor] = {}

    def name(self, theirs: str) -> str:
        """The checkpoint's name for a tensor, trying the base-model prefixes in turn."""
        for p in self.prefixes:
            if p + theirs in self.src:
                return p + theirs
        raise CheckpointError(f"the checkpoint has no tensor {self.prefixes[0] + theirs!r}")

    def has(self, theirs: str) -> bool:
        return any(p + theirs in self.src for p in self.prefixes)

    def raw(self, theirs: str, shape: tuple | None = None) -> torch.Tensor:
        full = self.name(theirs)
        t = self.src.get(full)
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise CheckpointError(
                f"tensor {full!r} has shape {tuple(t.shape)}, the config implies {tuple(shape)}"
            )
        if not t.is_floating_point():
            raise CheckpointError(f"tensor {full!r} has dtype {t.dtype}, expected floating point")
        return t

    def put(self, ours: str, theirs: str, fn: Callable | None = None) -> None:
        if ours not in self.expected:
            return  # a tensor this spec does not use (e.g. a bias the spec turned off)
        want = self.expected[ours]
        t = self.raw(theirs, None if fn else want)
        if fn is not None:
            t = fn(t)
            if tuple(t.shape) != want:
                raise CheckpointError(
                    f"tensor {self.name(theirs)!r} gives shape {tuple(t.shape)} for {ours}, "
                    f"the config implies {want}"
                )
        self.out[ours] = t

    def put_value(self, ours: str, t: torch.Tensor) -> None:
        if ours in self.expected:
            self.out[ours] = t
