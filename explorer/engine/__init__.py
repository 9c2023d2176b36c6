"""The attention engine: torch only, no Qt."""

from .generate import generate
from .interventions import Ablation
from .loaded import LoadedModel, PromptError
from .model import Cancelled, Transformer
from .run import Run
from .spec import ModelSpec, SpecError
from .tokenizer import Tokenizer

__all__ = [
    "Ablation",
    "Cancelled",
    "LoadedModel",
    "ModelSpec",
    "PromptError",
    "Run",
    "SpecError",
    "Tokenizer",
    "Transformer",
    "generate",
]
