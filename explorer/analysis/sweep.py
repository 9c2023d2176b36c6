"""Importance sweep: ablate each head, and each layer's attention and MLP, one at a time on top
of a base ablation, and measure how a metric changes.

    for step in iter_sweep(lm, run, metric):       # a generator: stop between items
        result.add(step)                           # or send the step to the GUI thread

The first step has kind "base" (the metric under the base ablation alone); then, layer by
layer, every head ("head"), the layer's whole attention ("attn") and its MLP ("mlp"). Each
step's delta is value - base value: for a logit difference a negative delta means the
component helped; for a loss or a KL divergence a positive delta means it did. Components the
base ablation already switches off are skipped (nan in the result).

Every item reuses the base run's cached residual stream below the ablated layer
(Run.rerun), so layer l costs n_layers - l layers of compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..engine import Ablation, LoadedModel, Run
from ..engine.interventions import MODES
from .common import AnalysisError, Metric, array_json, finite, need_lm_head


@dataclass(frozen=True)
class SweepStep:
    kind: str  # "base" | "head" | "attn" | "mlp"
    layer: int  # -1 for "base"
    head: int  # -1 unless kind == "head"
    value: float  # the metric with this component ablated (on top of the base)
    delta: float  # value - base value
    done: int  # items finished, this one included (0 for "base")
    total: int


@dataclass
class SweepResult:
    metric: Metric
    base: Ablation
    mode: str
    base_value: float = float("nan")
    heads: np.ndarray = field(default=None)  # (L, H) deltas, nan when not computed
    attn: np.ndarray = field(default=None)  # (L,) deltas of whole attention layers
    mlp: np.ndarray = field(default=None)  # (L,) deltas of MLPs
    done: int = 0
    total: int = 0

    @classmethod
    def empty(cls, n_layers: int, n_heads: int, metric: Metric, base: Ablation, mode: str):
        return cls(
            metric,
            base,
            mode,
            heads=np.full((n_layers, n_heads), np.nan),
            attn=np.full(n_layers, np.nan),
            mlp=np.full(n_layers, np.nan),
        )

    def add(self, step: SweepStep) -> None:
        self.done, self.total = step.done, step.total
        if step.kind == "base":
            self.base_value = step.value
        elif step.kind == "head":
            self.heads[step.layer, step.head] = step.delta
        elif step.kind == "attn":
            self.attn[step.layer] = step.delta
        else:
            self.mlp[step.layer] = step.delta

    def top(self, k: int = 10) -> list[tuple[str, int, int, float]]:
        """The k components with the largest |delta| as (kind, layer, head, delta)."""
        items = [("head", l, h, d) for (l, h), d in np.ndenumerate(self.heads)]
        items += [("attn", l, -1, d) for l, d in enumerate(self.attn)]
        items += [("mlp", l, -1, d) for l, d in enumerate(self.mlp)]
        items = [(k_, int(l), int(h), float(d)) for k_, l, h, d in items if np.isfinite(d)]
        return sorted(items, key=lambda t: -abs(t[3]))[:k]

    def to_json(self) -> dict:
        return {
            "metric": self.metric.to_json(),
            "metric_text": self.metric.describe(),
            "base_ablation": self.base.describe(),
            "mode": self.mode,
            "base_value": finite(self.base_value),
            "heads": array_json(self.heads),
            "attn": array_json(self.attn),
            "mlp": array_json(self.mlp),
            "done": self.done,
            "total": self.total,
            "top": [list(t) for t in self.top(10)],
        }


def sweep_items(spec, base: Ablation, mode: str, heads: bool = True, sublayers: bool = True):
    """The (kind, layer, head, ablation) items of a sweep, layer by layer."""
    ablated = {(l, h) for l, h, _ in base.heads}
    for l in range(spec.n_layers):
        if heads and l not in base.attn_layers:
            for h in range(spec.n_heads):
                if (l, h) not in ablated:
                    one = Ablation(base.heads | {(l, h, mode)}, base.attn_layers, base.mlp_layers)
                    yield "head", l, h, one
        if sublayers and l not in base.attn_layers:
            yield "attn", l, -1, Ablation(base.heads, base.attn_layers | {l}, base.mlp_layers)
        if sublayers and l not in base.mlp_layers:
            yield "mlp", l, -1, Ablation(base.heads, base.attn_layers, base.mlp_layers | {l})


def iter_sweep(
    lm: LoadedModel,
    run: Run,
    metric: Metric,
    base: Ablation | None = None,
    mode: str = "zero",
    heads: bool = True,
    sublayers: bool = True,
    cancel=None,
) -> Iterator[SweepStep]:
    """Yield SweepSteps as they are computed (see the module docstring).

    base: the ablation the sweep adds to (default: the run's own). mode: how the swept heads
    are ablated, "zero" or "mean". cancel: passed to the engine, which raises
    engine.Cancelled between layers when it returns True.
    """
    need_lm_head(lm, "the importance sweep")
    if mode not in MODES:
        raise AnalysisError(f"ablation mode must be one of {MODES}, got {mode!r}")
    base = run.ablation if base is None else base
    base_run = run if base == run.ablation else run.rerun(base, cancel)
    items = list(sweep_items(lm.spec, base, mode, heads, sublayers))
    total = len(items)
    base_value = metric.of_run(base_run)
    yield SweepStep("base", -1, -1, base_value, 0.0, 0, total)
    for n, (kind, l, h, ablation) in enumerate(items, 1):
        value = metric.of_run(base_run.rerun(ablation, cancel))
        yield SweepStep(kind, l, h, value, value - base_value, n, total)


def importance_sweep(
    lm: LoadedModel,
    run: Run,
    metric: Metric,
    base: Ablation | None = None,
    mode: str = "zero",
    heads: bool = True,
    sublayers: bool = True,
    cancel=None,
    progress=None,
) -> SweepResult:
    """The whole sweep at once; progress(step) is called after every item when given."""
    base = run.ablation if base is None else base
    s = lm.spec
    result = SweepResult.empty(s.n_layers, s.n_heads, metric, base, mode)
    for step in iter_sweep(lm, run, metric, base, mode, heads, sublayers, cancel):
        result.add(step)
        if progress is not None:
            progress(step)
    return result
