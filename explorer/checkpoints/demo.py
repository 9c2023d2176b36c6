"""Where the built-in demo model and example prompts live, from source or a frozen bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def demo_model_dir() -> Path:
    return resources_dir() / "demo-model"


def demo_available() -> bool:
    d = demo_model_dir()
    return (d / "config.json").is_file() and any(d.glob("*.safetensors"))


def resolve_model(name: str) -> Path:
    """'demo' means the built-in model; anything else is a folder path."""
    return demo_model_dir() if name == "demo" else Path(name).expanduser()


def example_prompts() -> list[dict]:
    """Named example prompts: [{name, text, target?, foil?, description?}]."""
    path = resources_dir() / "prompts.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("prompts", data) if isinstance(data, dict) else data
    return [p for p in items if isinstance(p, dict) and isinstance(p.get("text"), str)]
