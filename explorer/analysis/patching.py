"""Activation patching: run the corrupted prompt, put one activation from the clean run in its
place, and measure how much of the metric comes back:

    restored = (patched - corrupted) / (clean - corrupted)

1.0 means that one activation carries everything the clean prompt changes about the metric,
0.0 that it carries nothing. Two kinds of activation are patched, one at a time:

- "head":  a head's output z (all positions) in one layer, (L, H) values;
- "resid": the residual stream entering a layer at one position, (L, T) values.

The clean and corrupted prompts must have the same number of tokens, and both runs the same
ablation (it stays in force while patching). Patched forwards start at the patched layer from
the corrupted run's cached residual stream. Patches that cannot change the metric are not
computed: a residual position identical in both runs, or (causal models) one after the last
metric position.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..engine import LoadedModel, Run
from .common import AnalysisError, Metric, array_json, finite, head_outputs, need_lm_head

MIN_GAP = 1e-6  # |clean - corrupted| below this: the restored fraction is undefined


@dataclass(frozen=True)
class PatchStep:
    kind: str  # "clean" | "corrupted" | "head" | "resid"
    layer: int  # -1 for "clean" and "corrupted"
    index: int  # the head ("head") or position ("resid"); -1 otherwise
    value: float  # the metric of the patched run
    done: int  # patched items finished, this one included
    total: int


@dataclass
class PatchResult:
    metric: Metric
    clean_tokens: list[str]
    corrupted_tokens: list[str]
    clean_value: float = float("nan")
    corrupted_value: float = float("nan")
    heads: np.ndarray = field(default=None)  # (L, H) metric with one head's z patched
    resid: np.ndarray = field(default=None)  # (L, T) metric with one residual position patched
    done: int = 0
    total: int = 0

    @classmethod
    def empty(cls, n_layers, n_heads, metric, clean_tokens, corrupted_tokens) -> PatchResult:
        T = len(clean_tokens)
        return cls(
            metric,
            clean_tokens,
            corrupted_tokens,
            heads=np.full((n_layers, n_heads), np.nan),
            resid=np.full((n_layers, T), np.nan),
        )

    def add(self, step: PatchStep) -> None:
        self.done, self.total = step.done, step.total
        if step.kind == "clean":
            self.clean_value = step.value
        elif step.kind == "corrupted":
            self.corrupted_value = step.value
        elif step.kind == "head":
            self.heads[step.layer, step.index] = step.value
        else:
            self.resid[step.layer, step.index] = step.value

    @property
    def gap(self) -> float:
        return self.clean_value - self.corrupted_value

    def restored(self, values) -> np.ndarray:
        """(values - corrupted) / (clean - corrupted); nan when clean and corrupted agree."""
        values = np.asarray(values, dtype=np.float64)
        if not abs(self.gap) > MIN_GAP:
            return np.full_like(values, np.nan)
        return (values - self.corrupted_value) / self.gap

    @property
    def restored_heads(self) -> np.ndarray:
        return self.restored(self.heads)

    @property
    def restored_resid(self) -> np.ndarray:
        return self.restored(self.resid)

    @property
    def warning(self) -> str | None:
        if not abs(self.gap) > MIN_GAP:
            return (
                "the metric is the same on the clean and the corrupted prompt, so the restored "
                "fraction is undefined: choose another metric, target or corrupted prompt"
            )
        return None

    def to_json(self) -> dict:
        return {
            "metric": self.metric.to_json(),
            "metric_text": self.metric.describe(),
            "clean_tokens": self.clean_tokens,
            "corrupted_tokens": self.corrupted_tokens,
            "clean_value": finite(self.clean_value),
            "corrupted_value": finite(self.corrupted_value),
            "heads": array_json(self.heads),
            "resid": array_json(self.resid),
            "restored_heads": array_json(self.restored_heads, 4),
            "restored_resid": array_json(self.restored_resid, 4),
            "warning": self.warning,
            "done": self.done,
            "total": self.total,
        }


def check_pair(lm: LoadedModel, clean: Run, corrupted: Run) -> None:
    need_lm_head(lm, "activation patching")
    if clean.n_tokens != corrupted.n_tokens:
        raise AnalysisError(
            f"the clean prompt has {clean.n_tokens} tokens and the corrupted one "
            f"{corrupted.n_tokens}: patching needs the same number of tokens"
        )
    if clean.ablation != corrupted.ablation:
        raise AnalysisError("the clean and corrupted runs must be under the same ablation")


class _CleanZ:
    """The clean run's per-head outputs, one layer at a time, in the model's dtype."""

    def __init__(self, lm: LoadedModel, clean: Run):
        self.lm, self.clean, self.layer, self.z = lm, clean, None, None

    def __call__(self, layer: int) -> torch.Tensor:  # (H, T, dh)
        if layer != self.layer:
            self.layer, self.z = layer, head_outputs(self.lm, self.clean, layer).to(self.lm.dtype)
        return self.z


@torch.inference_mode()
def patched_value(
    lm: LoadedModel,
    clean: Run,
    corrupted: Run,
    metric: Metric,
    heads: Iterable[tuple[int, int]] = (),
    resid: Iterable[tuple[int, int | None]] = (),
    cancel=None,
    _clean_z=None,
) -> float:
    """The metric on the corrupted run with several clean activations patched in at once.

    heads: (layer, head) pairs whose output z is taken from the clean run.
    resid: (layer, position) pairs, the residual stream entering `layer` at `position` (None:
    every position) taken from the clean run.
    """
    check_pair(lm, clean, corrupted)
    L = lm.spec.n_layers
    clean_z = _clean_z or _CleanZ(lm, clean)
    z_patch: dict[int, dict[int, torch.Tensor]] = {}
    for l, h in heads:
        z_patch.setdefault(int(l), {})[int(h)] = clean_z(int(l))[int(h)]
    by_layer: dict[int, list] = {}
    for l, p in resid:
        by_layer.setdefault(int(l), []).append(p)
    layers = set(z_patch) | set(by_layer)
    if not layers:
        return metric.of_run(corrupted)
    if not all(0 <= l < L for l in layers):
        raise AnalysisError(f"patched layers must lie in 0..{L - 1}")
    start = min(layers)

    def patch_resid(l, x):
        for p in by_layer.get(l, ()):
            if p is None:
                x[0] = clean.resid[l]
            else:
                x[0, p] = clean.resid[l][p]

    def on_layer(l, x_in, record):
        if l > start:
            patch_resid(l, x_in)  # in place: x_in is the block's fresh output

    x = corrupted.resid[start][None].clone()  # never write into the cached run
    patch_resid(start, x)
    later = any(l > start for l in by_layer)
    positions = torch.arange(corrupted.n_tokens, device=x.device)
    out = lm.model.layers(
        x,
        positions,
        start,
        corrupted.ablation,
        on_layer=on_layer if later else None,
        cancel=cancel,
        z_patch=z_patch or None,
    )
    return metric.of_final_resid(lm.model, out)


def iter_patching(
    lm: LoadedModel,
    clean: Run,
    corrupted: Run,
    metric: Metric,
    heads: bool = True,
    resid: bool = True,
    cancel=None,
) -> Iterator[PatchStep]:
    """Yield the clean and corrupted metric, then every single patch as it is computed."""
    check_pair(lm, clean, corrupted)
    s = lm.spec
    L, H, T = s.n_layers, s.n_heads, clean.n_tokens
    total = (L * H if heads else 0) + (L * T if resid else 0)
    clean_value = metric.of_run(clean)
    corrupted_value = metric.of_run(corrupted)
    yield PatchStep("clean", -1, -1, clean_value, 0, total)
    yield PatchStep("corrupted", -1, -1, corrupted_value, 0, total)
    clean_z = _CleanZ(lm, clean)
    n = 0
    if heads:
        for l in range(L):
            for h in range(H):
                v = patched_value(
                    lm, clean, corrupted, metric, [(l, h)], cancel=cancel, _clean_z=clean_z
                )
                n += 1
                yield PatchStep("head", l, h, v, n, total)
    if resid:
        no_effect_after = T
        if s.causal and not any(m == "mean" for _, _, m in corrupted.ablation.heads):
            no_effect_after = max(metric.positions)
        for l in range(L):
            for p in range(T):
                same = p > no_effect_after or torch.equal(clean.resid[l][p], corrupted.resid[l][p])
                if same:
                    v = corrupted_value
                else:
                    v = patched_value(lm, clean, corrupted, metric, resid=[(l, p)], cancel=cancel)
                n += 1
                yield PatchStep("resid", l, p, v, n, total)


def activation_patching(
    lm: LoadedModel,
    clean: Run,
    corrupted: Run,
    metric: Metric,
    heads: bool = True,
    resid: bool = True,
    cancel=None,
    progress=None,
) -> PatchResult:
    """The whole patching job at once; progress(step) is called after every step when given."""
    check_pair(lm, clean, corrupted)
    s = lm.spec
    tok = lm.tokenizer
    result = PatchResult.empty(
        s.n_layers,
        s.n_heads,
        metric,
        tok.displays(clean.tokens.tolist()),
        tok.displays(corrupted.tokens.tolist()),
    )
    for step in iter_patching(lm, clean, corrupted, metric, heads, resid, cancel):
        result.add(step)
        if progress is not None:
            progress(step)
    return result
