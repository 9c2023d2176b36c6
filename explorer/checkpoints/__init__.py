"""Checkpoint loading: Hugging Face folders into the engine. No Qt."""

from .errors import CheckpointError
from .hf import load

__all__ = ["CheckpointError", "load"]
