"""Memory guard: estimate what loading a model or running a prompt needs, compare it with the
memory this process can still get, and refuse with the numbers ("needs 14.2 GB, 6.1 GB
available") instead of being killed by the operating system. No Qt, no psutil.

available_bytes() is looked up at call time, so tests replace it with monkeypatch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ..engine.run import LOSS_CHUNK, PATTERN_BUDGET
from ..engine.spec import ModelSpec
from .errors import CheckpointError

NO_LIMIT = 1 << 60  # cgroup "limits" at or above this mean none


class NotEnoughMemory(MemoryError):
    """A computation that would not fit in the memory available; the message has the numbers."""

    def __init__(self, message: str, needed: int = 0, available: int = 0):
        super().__init__(message)
        self.needed, self.available = needed, available


# --- how much is there -------------------------------------------------------------------


def available_bytes(device="cpu") -> int | None:
    """Memory this process can still allocate on device without swapping, or None when
    unknown (then no check refuses anything). CUDA: the device's free memory. CPU on Linux:
    /proc/meminfo MemAvailable, lowered by a container's cgroup limit; Windows:
    GlobalMemoryStatusEx; elsewhere None."""
    if str(device).startswith("cuda"):
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError, ValueError):
            return None
    if sys.platform.startswith("linux"):
        free = _meminfo_available()
        limited = _cgroup_available()
        values = [v for v in (free, limited) if v is not None]
        return min(values) if values else None
    if sys.platform == "win32":
        return _windows_available()
    return None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_available(
    v2: Path = Path("/sys/fs/cgroup"), v1: Path = Path("/sys/fs/cgroup/memory")
) -> int | None:
    """limit - (usage - reclaimable page cache) of the container's cgroup (v2, then v1);
    None when there is no limit."""
    for base, limit_name, usage_name, inactive in (
        (v2, "memory.max", "memory.current", "inactive_file"),
        (v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    ):
        limit = _read_int(base / limit_name)
        if limit is None or limit >= NO_LIMIT:
            continue
        usage = _read_int(base / usage_name) or 0
        cache = 0
        try:
            for line in (base / "memory.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == inactive and value.strip().isdigit():
                    cache = int(value)
        except OSError:
            pass
        return max(0, limit - max(0, usage - cache))
    return None


def _windows_available() -> int | None:  # pragma: no cover - not on the CI machines
    try:
        import ctypes

        class Status(ctypes.Structure):
            _fields_ = [
                ("dwLength", ctypes.c_ulong),
                ("dwMemoryLoad", ctypes.c_ulong),
                ("ullTotalPhys", ctypes.c_ulonglong),
                ("ullAvailPhys", ctypes.c_ulonglong),
                ("ullTotalPageFile", ctypes.c_ulonglong),
                ("ullAvailPageFile", ctypes.c_ulonglong),
                ("ullTotalVirtual", ctypes.c_ulonglong),
                ("ullAvailVirtual", ctypes.c_ulonglong),
                ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
            ]

        s = Status()
        s.dwLength = ctypes.sizeof(Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(s)):
            return int(s.ullAvailPhys)
    except (AttributeError, OSError):
        pass
    return None


def resident_bytes() -> int | None:
    """This process's resident set size (Linux /proc/self/statm), for soak tests and logs."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# --- how much is needed ------------------------------------------------------------------


def itemsize(dtype) -> int:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return torch.empty((), dtype=dtype).element_size()


def weights_bytes(spec: ModelSpec, dtype) -> int:
    """The model's weights at dtype (biases and norms left out: a lower bound)."""
    return spec.n_params() * itemsize(dtype)


def run_bytes(spec: ModelSpec, n_tokens: int, dtype, runs: int = 1) -> int:
    """Working memory of `runs` Runs of n_tokens tokens (a clean and an ablated run are 2).

    Each Run keeps the residual input, Q and K of every layer plus the final residual and
    hidden states; computing one layer needs its activations, and the panels compute one
    chunk of heads' patterns in float32 (Run.head_chunks); logits come LOSS_CHUNK
    positions at a time.
    """
    T, it, f32 = n_tokens, itemsize(dtype), 4
    d, dh, H, Hkv, L = spec.d_model, spec.d_head, spec.n_heads, spec.n_kv_heads, spec.n_layers
    kept = (L * T * (d + (H + Hkv) * dh) + 2 * T * d) * it
    mlp = (3 if spec.mlp == "gated" else 2) * spec.d_mlp
    layer = T * (3 * d + (2 * H + 2 * Hkv) * dh + mlp) * it
    patterns = 2 * min(H * T * T * f32, max(PATTERN_BUDGET, T * T * f32))  # a chunk of heads
    logits = 3 * min(T, LOSS_CHUNK) * spec.vocab_size * f32
    return runs * kept + layer + patterns + logits


# --- refusing ----------------------------------------------------------------------------


def gb(n: int | float) -> str:
    """Bytes as a short decimal size: '14.2 GB', '350 MB'."""
    if n >= 10**17:
        return f"about 10^{len(str(int(n))) - 10} GB"
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.0f} MB"
    return f"{max(n, 0) / 1e3:.0f} kB"


def count(n: int) -> str:
    """A large count, readable: '6.7 billion', '1.0e+15'."""
    if n >= 10**15:
        return f"about 10^{len(str(int(n))) - 1}"
    for unit, name in ((10**12, "trillion"), (10**9, "billion"), (10**6, "million")):
        if n >= unit:
            return f"{n / unit:.1f} {name}"
    return f"{n:,}"


def _where(device) -> str:
    return "GPU memory" if str(device).startswith("cuda") else "memory"


def check_load(spec: ModelSpec, dtype, name: str = "the model", device="cpu") -> int:
    """Raise CheckpointError when the weights at dtype cannot fit; returns the bytes needed."""
    need = weights_bytes(spec, dtype)
    have = available_bytes(device)
    if have is not None and need > have:
        dt = str(dtype).replace("torch.", "")
        raise CheckpointError(
            f"{name} needs {gb(need)} of {_where(device)} ({count(spec.n_params())} parameters "
            f"at {dt}), {gb(have)} available — close other programs or choose a smaller dtype"
        )
    return need


def max_tokens(spec: ModelSpec, dtype, runs: int, have: int) -> int:
    """The longest prompt whose runs fit in `have` bytes (0 when not even one token does)."""
    lo, hi = 0, max(1, spec.context_length)
    if run_bytes(spec, 1, dtype, runs) > have:
        return 0
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if run_bytes(spec, mid, dtype, runs) <= have:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_run(spec: ModelSpec, n_tokens: int, dtype, runs: int = 1, device="cpu") -> int:
    """Raise NotEnoughMemory when `runs` new Runs of n_tokens would not fit; returns the
    bytes needed."""
    need = run_bytes(spec, n_tokens, dtype, runs)
    have = available_bytes(device)
    if have is not None and need > have:
        fit = max_tokens(spec, dtype, runs, have)
        hint = f"; at most about {fit:,} tokens would fit" if fit else ""
        raise NotEnoughMemory(
            f"a prompt of {n_tokens:,} tokens needs {gb(need)} of {_where(device)}, "
            f"{gb(have)} available{hint}",
            need,
            have,
        )
    return need
