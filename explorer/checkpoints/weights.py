"""Reading tensors from a model folder: safetensors (memory-mapped, single or sharded) or
.bin through torch.load(weights_only=True). Nothing from a checkpoint is ever executed."""

from __future__ import annotations

import errno
import json
import os
import pickle
import struct
from pathlib import Path

import torch
from safetensors import safe_open

from .errors import CheckpointError

MAX_HEADER = 100_000_000  # a safetensors header larger than this is not a real checkpoint


def not_a_file(folder: Path, name: str) -> str | None:
    """Why folder/name is present but not a readable file (a folder, a link loop, a dangling
    link, a pipe...), or None when it is a file or absent."""
    path = folder / name
    if path.is_file() or not os.path.lexists(path):
        return None
    if path.is_dir():
        return f"{name} is a folder, not a file"
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # a symlink loop (Python < 3.13)
            return f"{name} is a link that points to itself (a link loop)"
        except OSError as e:
            if e.errno == errno.ELOOP:
                return f"{name} is a link that points to itself (a link loop)"
            return f"{name} is a link to a file that does not exist"
    return f"{name} is not a regular file"


def check_safetensors_header(path: Path) -> dict:
    """Refuse a file whose header claims more than the file holds, before anything is mapped.
    Returns the header: {name: {"dtype", "shape", "data_offsets"}} (and "__metadata__")."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path.name} is truncated (no safetensors header)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(MAX_HEADER, size - 8):
            raise CheckpointError(
                f"{path.name}: safetensors header claims {n} bytes, file has {size}"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
            raise CheckpointError(
                f"{path.name}: the safetensors header is not valid JSON ({e})"[:300]
            ) from None
        except RecursionError:
            raise CheckpointError(
                f"{path.name}: the safetensors header is nested too deeply"
            ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name}: the safetensors header is not a JSON object")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            ok = 0 <= start <= end <= data
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{path.name}: tensor {name!r} lies outside the file")
    return header


def n_values(info) -> int:
    """How many values a header entry's shape holds (0 for a malformed one; safetensors itself
    refuses those when the file is opened)."""
    try:
        shape = info["shape"]
        n = 1
        for s in shape:
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                return 0
            n *= s
        return n
    except (TypeError, KeyError):
        return 0


class WeightSource:
    """Tensors of a folder by their checkpoint names."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._where: dict[str, Path] = {}
        self._open: dict[Path, object] = {}
        self._bin: dict[str, torch.Tensor] = {}
        self.n_values = 0  # values (elements) the files hold, each tensor counted once
        files = self._safetensors_files()
        if files:
            for f in files:
                header = check_safetensors_header(f)
                handle = self._handle(f)
                for name in handle.keys():
                    if name not in self._where:
                        self._where[name] = f
                        self.n_values += n_values(header.get(name))
        else:
            bins = self._bin_files()
            if not bins:
                odd = [p.name for p in folder.glob("*.safetensors")] + ["pytorch_model.bin"]
                for name in odd:
                    why = not_a_file(folder, name)
                    if why:
                        raise CheckpointError(f"cannot read the weights: {why}")
                raise CheckpointError(
                    f"no weights in {folder}: expected model.safetensors (or shards with "
                    "model.safetensors.index.json) or pytorch_model.bin"
                )
            for f in bins:
                self._bin.update(load_bin(f))
            self.n_values = sum(t.numel() for t in self._bin.values())

    def _safetensors_files(self) -> list[Path]:
        index = self.folder / "model.safetensors.index.json"
        for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            why = not_a_file(self.folder, name)
            if why:
                raise CheckpointError(f"the weight index cannot be read: {why}")
        if index.is_file():
            names = sorted(set(read_index(index).values()))
            files = [self.folder / n for n in names]
            check_shards(self.folder, files)
            return files
        return sorted(p for p in self.folder.glob("*.safetensors") if p.is_file())

    def _bin_files(self) -> list[Path]:
        index = self.folder / "pytorch_model.bin.index.json"
        if index.is_file():
            files = [self.folder / n for n in sorted(set(read_index(index).values()))]
            check_shards(self.folder, files)
            return files
        single = self.folder / "pytorch_model.bin"
        return [single] if single.is_file() else []

    def _handle(self, path: Path):
        if path not in self._open:
            try:
                self._open[path] = safe_open(str(path), framework="pt", device="cpu")
            except Exception as e:  # safetensors raises its own error types
                raise CheckpointError(f"{path.name} is not a valid safetensors file: {e}") from None
        return self._open[path]

    def names(self) -> set[str]:
        return set(self._where) | set(self._bin)

    def __contains__(self, name: str) -> bool:
        return name in self._where or name in self._bin

    def get(self, name: str) -> torch.Tensor:
        if name in self._bin:
            return self._bin[name]
        if name not in self._where:
            raise CheckpointError(f"the checkpoint has no tensor {name!r}")
        try:
            return self._handle(self._where[name]).get_tensor(name)
        except Exception as e:
            raise CheckpointError(f"cannot read tensor {name!r}: {e}") from None


def check_shards(folder: Path, files: list[Path]) -> None:
    for f in files:
        why = not_a_file(folder, f.name)
        if why:
            raise CheckpointError(f"a weight shard named in the index is unusable: {why}")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"missing weight shard(s) named in the index: {missing}"[:300])


MAX_INDEX = 64 * 1024 * 1024  # an index of 100k tensors is a few MB


def read_index(path: Path) -> dict[str, str]:
    try:
        if path.stat().st_size > MAX_INDEX:
            raise ValueError("too large")
        data = json.loads(path.read_text(encoding="utf-8"))
        mapping = data["weight_map"]
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise CheckpointError(f"{path.name} is not a valid weight index") from None
    for v in mapping.values():
        if os.sep in v or v.startswith(".") or "/" in v or "\\" in v or ":" in v:
            raise CheckpointError(f"{path.name} names a file outside the folder: {v[:100]!r}")
        if not v.strip() or "\x00" in v:
            raise CheckpointError(f"{path.name} names a file that cannot exist: {v[:100]!r}")
    return mapping


def load_bin(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True: plain tensors only, no code from the file runs."""
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused {path.name}: it holds objects other than plain tensors, which could run "
            f"code ({str(e).splitlines()[0][:200]})"
        ) from None
    except Exception as e:
        raise CheckpointError(f"cannot read {path.name}: {type(e).__name__}: {e}"[:500]) from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path.name} is not a state dict of tensors")
    return data
