"""Ablations: a frozen, hashable description of what is switched off."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MODES = ("zero", "mean")


@dataclass(frozen=True)
class Ablation:
    """Heads as (layer, head, mode); whole sublayers by layer index.

    mode "zero": the head's output z is 0. mode "mean": z is replaced by its mean over the
    positions of the prompt in this run. A switched-off sublayer adds nothing to the residual.
    """

    heads: frozenset = frozenset()  # of (layer, head, mode)
    attn_layers: frozenset = frozenset()
    mlp_layers: frozenset = frozenset()

    @classmethod
    def of(
        cls,
        heads: Iterable[tuple[int, int]] = (),
        mode: str = "zero",
        attn_layers: Iterable[int] = (),
        mlp_layers: Iterable[int] = (),
    ) -> Ablation:
        if mode not in MODES:
            raise ValueError(f"ablation mode must be one of {MODES}, got {mode!r}")
        return cls(
            frozenset((int(l), int(h), mode) for l, h in heads),
            frozenset(int(l) for l in attn_layers),
            frozenset(int(l) for l in mlp_layers),
        )

    @classmethod
    def parse(cls, text: str, mode: str = "zero") -> Ablation:
        """'1.2,3.0' -> heads (1, 2) and (3, 0). 'L3.attn' / 'L3.mlp' switch sublayers off."""
        heads, attn, mlp = [], [], []
        for item in filter(None, (s.strip() for s in text.split(","))):
            a, _, b = item.partition(".")
            try:
                if b in ("attn", "mlp"):
                    (attn if b == "attn" else mlp).append(int(a.lstrip("Ll")))
                else:
                    heads.append((int(a), int(b)))
            except ValueError:
                raise ValueError(
                    f"cannot read ablation {item!r}: use LAYER.HEAD, e.g. 3.1"
                ) from None
        return cls.of(heads, mode, attn, mlp)

    def __bool__(self) -> bool:
        return bool(self.heads or self.attn_layers or self.mlp_layers)

    def layer(self, layer: int) -> tuple:
        """Everything that applies to one layer, hashable and comparable."""
        heads = tuple(sorted((h, m) for l, h, m in self.heads if l == layer))
        return heads, layer in self.attn_layers, layer in self.mlp_layers

    def layers(self) -> set[int]:
        return {l for l, _, _ in self.heads} | set(self.attn_layers) | set(self.mlp_layers)

    def first_difference(self, other: Ablation) -> int | None:
        """The first layer whose interventions differ, or None when they are the same."""
        changed = [l for l in self.layers() | other.layers() if self.layer(l) != other.layer(l)]
        return min(changed) if changed else None

    def toggled(self, layer: int, head: int, mode: str = "zero") -> Ablation:
        kept = frozenset(x for x in self.heads if x[:2] != (layer, head))
        if len(kept) == len(self.heads):
            kept = kept | {(layer, head, mode)}
        return Ablation(kept, self.attn_layers, self.mlp_layers)

    def with_mode(self, mode: str) -> Ablation:
        if mode not in MODES:
            raise ValueError(f"ablation mode must be one of {MODES}, got {mode!r}")
        return Ablation(
            frozenset((l, h, mode) for l, h, _ in self.heads), self.attn_layers, self.mlp_layers
        )

    def describe(self) -> str:
        parts = [f"{l}.{h}" + ("" if m == "zero" else f"({m})") for l, h, m in sorted(self.heads)]
        parts += [f"L{l}.attn" for l in sorted(self.attn_layers)]
        parts += [f"L{l}.mlp" for l in sorted(self.mlp_layers)]
        return ",".join(parts) or "none"


NONE = Ablation()
