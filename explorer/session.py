"""Session files: what the app shows, saved as JSON, so it reopens exactly (no Qt, no pickle).

A session holds the model (its path and a fingerprint of its files, so a moved or changed model
is noticed), the prompt, the ablation, the selected position/layer/head, target and foil, the
view (colour maps, theme, zoom), each dock's settings, the dock layout and an ordered list of
scenes (named snapshots a presenter steps through).

    {"format": "attention-explorer-session", "version": 1, "app_version": "0.1.0",
     "model": {"path": "/models/gpt2", "relative_path": "../models/gpt2", "name": "gpt2",
               "fingerprint": "v1:9f2c…"},
     "state": {"prompt": "…", "ablation": {"mode": "zero", "heads": [[1, 2, "zero"]],
               "attn_layers": [], "mlp_layers": []},
               "position": -1, "layer": 1, "head": 2, "target": " Mary", "foil": " John"},
     "view": {"colormap": "viridis", "diverging": "CET-D1A", "theme": "dark",
              "zoom": 1.0, "presentation_zoom": 1.5},
     "docks": {"attention": {"clean": false}, "generation": {"n": 20, …}, …},
     "layout": {"version": 5, "state": "<base64 of saveState>", "geometry": "<base64>"},
     "scenes": [{"name": "Name movers", "state": {…}, "docks_visible": {"tokens": true, …},
                 "focus": "attention", "docks": {…}}],
     "scene": 0}

Reading is strict: a file that is not JSON, is not a session, holds a value of the wrong type
or was written by a newer version raises SessionError and nothing is returned. Keys this
version does not know are ignored, so a file written by an older version still reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .engine.interventions import MODES, Ablation
from .engine.tokenizer import clean_text

FORMAT = "attention-explorer-session"
VERSION = 1
EXTENSION = ".aexp.json"
FILE_FILTER = f"Attention Explorer session (*{EXTENSION})"
MAX_BYTES = 32 * 1024 * 1024  # a session is small; refuse to read anything huge
THEMES = ("system", "light", "dark")
ZOOM_RANGE = (0.5, 4.0)
MAX_DEPTH = 16  # nesting of the free-form dock settings

# files whose content decides what the model computes, hashed (small) or sampled (large)
HASHED_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "vocab.txt",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAMPLE_BLOCK = 64 * 1024
SAMPLES = 32  # blocks read from a large weight file: a few MB at most, whatever its size


class SessionError(Exception):
    """A session file that cannot be used; the message says why, in one sentence."""


# --- the data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    path: str
    name: str = ""
    fingerprint: str = ""
    relative_path: str = ""  # from the session file's folder, when both were on one disk


@dataclass(frozen=True)
class Snapshot:
    """What the panels show: the prompt, the ablation and the selection."""

    prompt: str = ""
    ablation: Ablation = Ablation()
    mode: str = "zero"  # the mode new ablations get
    position: int = -1  # -1: the last token
    layer: int = 0
    head: int = 0  # -1: the layer average
    target: str = ""
    foil: str = ""


@dataclass(frozen=True)
class Scene:
    """A named snapshot plus which docks are visible, which has the focus, their settings."""

    name: str
    state: Snapshot = Snapshot()
    docks_visible: dict = field(default_factory=dict)  # dock name -> bool
    focus: str = ""  # a dock name, or "" for none
    docks: dict = field(default_factory=dict)  # dock name -> that dock's settings

    def renamed(self, name: str) -> Scene:
        return replace(self, name=name)


@dataclass(frozen=True)
class Layout:
    version: int
    state: bytes = b""  # QMainWindow.saveState
    geometry: bytes = b""  # QMainWindow.saveGeometry


@dataclass
class View:
    colormap: str = "viridis"
    diverging: str = "CET-D1A"
    theme: str = "system"
    zoom: float = 1.0
    presentation_zoom: float = 1.5


@dataclass
class Session:
    model: ModelRef | None = None
    state: Snapshot = Snapshot()
    view: View = field(default_factory=View)
    docks: dict = field(default_factory=dict)  # dock name -> settings dict
    layout: Layout | None = None
    scenes: list = field(default_factory=list)  # of Scene
    scene: int = -1  # the scene last shown, -1 for none
    app_version: str = ""

    # --- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        from . import __version__

        return {
            "format": FORMAT,
            "version": VERSION,
            "app_version": __version__,
            "model": None if self.model is None else _model_to_dict(self.model),
            "state": _snapshot_to_dict(self.state),
            "view": {
                "colormap": self.view.colormap,
                "diverging": self.view.diverging,
                "theme": self.view.theme,
                "zoom": self.view.zoom,
                "presentation_zoom": self.view.presentation_zoom,
            },
            "docks": _copy_json(self.docks),
            "layout": None if self.layout is None else _layout_to_dict(self.layout),
            "scenes": [_scene_to_dict(s) for s in self.scenes],
            "scene": self.scene,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d) -> Session:
        r = _Reader()
        _require(isinstance(d, dict), "the file does not hold a JSON object")
        if d.get("format") != FORMAT:
            raise SessionError("this is not an Attention Explorer session file")
        version = r.int(d.get("version"), "version", lo=1)
        if version > VERSION:
            raise SessionError(
                f"this session was saved by a newer Attention Explorer (session format "
                f"{version}; this version reads format {VERSION} and older): update the app"
            )
        model = r.opt(d, "model", dict, "model")
        view = r.opt(d, "view", dict, "view") or {}
        docks = r.opt(d, "docks", dict, "docks") or {}
        layout = r.opt(d, "layout", dict, "layout")
        scenes = r.opt(d, "scenes", list, "scenes") or []
        s = cls(
            model=None if model is None else _model_from_dict(r, model),
            state=_snapshot_from_dict(r, r.opt(d, "state", dict, "state") or {}, "state"),
            view=View(
                colormap=r.name(view.get("colormap", "viridis"), "view.colormap"),
                diverging=r.name(view.get("diverging", "CET-D1A"), "view.diverging"),
                theme=r.choice(view.get("theme", "system"), THEMES, "view.theme"),
                zoom=r.float(view.get("zoom", 1.0), "view.zoom", *ZOOM_RANGE),
                presentation_zoom=r.float(
                    view.get("presentation_zoom", 1.5), "view.presentation_zoom", *ZOOM_RANGE
                ),
            ),
            docks=_docks_from_dict(r, docks, "docks"),
            layout=None if layout is None else _layout_from_dict(r, layout),
            scenes=[_scene_from_dict(r, sc, f"scenes[{i}]") for i, sc in enumerate(scenes)],
            scene=r.int(d.get("scene", -1), "scene", lo=-1),
            app_version=r.str(d.get("app_version", ""), "app_version"),
        )
        if s.scene >= len(s.scenes):
            raise SessionError(f"scene {s.scene} does not exist (the file has {len(s.scenes)})")
        return s

    @classmethod
    def loads(cls, text: str) -> Session:
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except ValueError as e:
            if isinstance(e, json.JSONDecodeError):
                raise SessionError(
                    f"the file is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
                ) from None
            raise SessionError(str(e)) from None
        except RecursionError:
            raise SessionError("the file is nested too deeply") from None
        return cls.from_dict(data)

    # --- files ---------------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write atomically (a half-written file never replaces a good one)."""
        path = Path(path)
        try:
            text = self.dumps()
        except (ValueError, TypeError) as e:  # NaN, a non-JSON value, an unpaired surrogate
            raise SessionError(f"the session cannot be written as JSON: {e}"[:300]) from None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".session-", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
                    f.write(text)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise SessionError(f"cannot write {path}: {e.strerror or e}") from None
        return path

    @classmethod
    def load(cls, path) -> Session:
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise SessionError(f"{path.name} is too large to be a session ({size} bytes)")
            raw = path.read_bytes()
        except OSError as e:
            raise SessionError(f"cannot read {path}: {e.strerror or e}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SessionError(f"{path.name} is not a text file (not UTF-8)") from None
        return cls.loads(text)


# --- the model's fingerprint ----------------------------------------------------------------


def fingerprint(folder) -> str:
    """A cheap identity of a model folder's content, the same wherever the folder is copied.

    config, tokenizer and index files are hashed whole; each weight file contributes its name,
    size, its safetensors header (names, shapes, dtypes) and SAMPLES blocks spread over its
    bytes. Reading a few MB identifies a multi-GB model: a retrained or fine-tuned model
    differs in almost every block. Modification times are left out (a copy changes them).
    """
    folder = Path(folder)
    entries = []
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError as e:
        raise SessionError(f"cannot read the model folder {folder}: {e.strerror or e}") from None
    for name in names:
        p = folder / name
        try:
            if name in HASHED_FILES or name.endswith(".index.json"):
                entries.append([name, p.stat().st_size, _sha256_file(p)])
            elif name.endswith(WEIGHT_SUFFIXES):
                entries.append([name, p.stat().st_size, _sample_hash(p)])
        except OSError as e:
            raise SessionError(f"cannot read {p}: {e.strerror or e}") from None
    if not any(e[0] == "config.json" for e in entries):
        raise SessionError(f"{folder} is not a model folder (no config.json)")
    blob = json.dumps(entries, separators=(",", ":")).encode()
    return "v1:" + hashlib.sha256(blob).hexdigest()


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sample_hash(p: Path) -> str:
    size = p.stat().st_size
    if size <= SAMPLES * SAMPLE_BLOCK * 2:
        return _sha256_file(p)
    h = hashlib.sha256()
    with p.open("rb") as f:
        if p.suffix == ".safetensors":  # 8-byte little-endian header length, then the header
            n = int.from_bytes(f.read(8), "little")
            if 0 < n <= min(size - 8, 100 * 1024 * 1024):
                h.update(f.read(n))
        step = (size - SAMPLE_BLOCK) / (SAMPLES - 1)
        for i in range(SAMPLES):
            f.seek(int(i * step))
            h.update(f.read(SAMPLE_BLOCK))
    return h.hexdigest()


# --- writing ------------------------------------------------------------------------------


def _ablation_to_dict(a: Ablation, mode: str) -> dict:
    return {
        "mode": mode,
        "heads": [[l, h, m] for l, h, m in sorted(a.heads)],
        "attn_layers": sorted(a.attn_layers),
        "mlp_layers": sorted(a.mlp_layers),
    }


def _snapshot_to_dict(s: Snapshot) -> dict:
    return {
        "prompt": s.prompt,
        "ablation": _ablation_to_dict(s.ablation, s.mode),
        "position": s.position,
        "layer": s.layer,
        "head": s.head,
        "target": s.target,
        "foil": s.foil,
    }


def _scene_to_dict(s: Scene) -> dict:
    return {
        "name": s.name,
        "state": _snapshot_to_dict(s.state),
        "docks_visible": dict(s.docks_visible),
        "focus": s.focus,
        "docks": _copy_json(s.docks),
    }


def _model_to_dict(m: ModelRef) -> dict:
    return {
        "path": m.path,
        "relative_path": m.relative_path,
        "name": m.name,
        "fingerprint": m.fingerprint,
    }


def _layout_to_dict(l: Layout) -> dict:
    return {
        "version": l.version,
        "state": base64.b64encode(l.state).decode("ascii"),
        "geometry": base64.b64encode(l.geometry).decode("ascii"),
    }


def _copy_json(value):
    """A deep copy that is plain JSON (raises ValueError on anything else)."""
    return json.loads(json.dumps(value, allow_nan=False))


# --- reading ------------------------------------------------------------------------------


def _no_constant(name):
    raise ValueError(f"the file holds {name}, which is not a number JSON allows")


def _require(ok: bool, message: str):
    if not ok:
        raise SessionError(message)


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    return {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}.get(
        type(v), type(v).__name__
    )


class _Reader:
    """Typed access with messages that say where the bad value is."""

    def bad(self, where: str, want: str, v) -> SessionError:
        return SessionError(f"{where} should be {want}, not {_kind(v)} ({_short(v)})")

    def int(self, v, where: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.bad(where, "a whole number", v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise SessionError(f"{where} is out of range ({v})")
        return v

    def float(self, v, where: str, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.bad(where, "a number", v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise SessionError(f"{where} is out of range ({v}; allowed {lo} … {hi})")
        return float(v)

    def str(self, v, where: str, limit: int = 10_000_000) -> str:
        if not isinstance(v, str):
            raise self.bad(where, "text", v)
        if len(v) > limit:
            raise SessionError(f"{where} is too long ({len(v)} characters)")
        # JSON may escape unpaired UTF-16 surrogates ("\ud800"), which no file can store as
        # UTF-8: read them as U+FFFD, or saving the session again would fail
        return clean_text(v)[0]

    def bool(self, v, where: str) -> bool:
        if not isinstance(v, bool):
            raise self.bad(where, "true or false", v)
        return v

    def name(self, v, where: str) -> str:
        return self.str(v, where, limit=200)

    def choice(self, v, choices, where: str) -> str:
        v = self.str(v, where, limit=200)
        if v not in choices:
            raise SessionError(f"{where} should be one of {', '.join(choices)}, not {v!r}")
        return v

    def opt(self, d: dict, key: str, typ, where: str):
        v = d.get(key)
        if v is None:
            return None
        if not isinstance(v, typ):
            raise self.bad(where, "an object" if typ is dict else "a list", v)
        return v

    def json(self, v, where: str, depth: int = 0):
        """A free-form JSON value (dock settings): plain types, finite numbers, not too deep."""
        if depth > MAX_DEPTH:
            raise SessionError(f"{where} is nested too deeply")
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str):
                    raise SessionError(f"{where} has a key that is not text")
            return {clean_text(k)[0]: self.json(x, f"{where}.{k}", depth + 1) for k, x in v.items()}
        if isinstance(v, list):
            return [self.json(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]
        if isinstance(v, float) and not math.isfinite(v):
            raise self.bad(where, "a finite number", v)
        if isinstance(v, str):
            return clean_text(v)[0]
        if v is None or isinstance(v, (int, float, bool)):
            return v
        raise self.bad(where, "a JSON value", v)


def _short(v) -> str:
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:39] + "…"


def _ablation_from_dict(r: _Reader, d, where: str) -> tuple[Ablation, str]:
    if not isinstance(d, dict):
        raise r.bad(where, "an object", d)
    mode = r.choice(d.get("mode", "zero"), MODES, f"{where}.mode")
    heads = r.opt(d, "heads", list, f"{where}.heads") or []
    out = []
    for i, item in enumerate(heads):
        w = f"{where}.heads[{i}]"
        if not isinstance(item, list) or len(item) != 3:
            raise r.bad(w, "[layer, head, mode]", item)
        out.append(
            (r.int(item[0], w + "[0]", lo=0), r.int(item[1], w + "[1]", lo=0),
             r.choice(item[2], MODES, w + "[2]"))
        )  # fmt: skip
    layers = {}
    for key in ("attn_layers", "mlp_layers"):
        items = r.opt(d, key, list, f"{where}.{key}") or []
        layers[key] = frozenset(r.int(x, f"{where}.{key}[{i}]", lo=0) for i, x in enumerate(items))
    return Ablation(frozenset(out), layers["attn_layers"], layers["mlp_layers"]), mode


def _snapshot_from_dict(r: _Reader, d, where: str) -> Snapshot:
    if not isinstance(d, dict):
        raise r.bad(where, "an object", d)
    ablation, mode = _ablation_from_dict(r, d.get("ablation", {}), f"{where}.ablation")
    return Snapshot(
        prompt=r.str(d.get("prompt", ""), f"{where}.prompt"),
        ablation=ablation,
        mode=mode,
        position=r.int(d.get("position", -1), f"{where}.position", lo=-1),
        layer=r.int(d.get("layer", 0), f"{where}.layer", lo=0),
        head=r.int(d.get("head", 0), f"{where}.head", lo=-1),
        target=r.str(d.get("target", ""), f"{where}.target", limit=1000),
        foil=r.str(d.get("foil", ""), f"{where}.foil", limit=1000),
    )


def _docks_from_dict(r: _Reader, d, where: str) -> dict:
    if not isinstance(d, dict):
        raise r.bad(where, "an object", d)
    out = {}
    for name, settings in d.items():
        if not isinstance(settings, dict):
            raise r.bad(f"{where}.{name}", "an object", settings)
        out[name] = r.json(settings, f"{where}.{name}")
    return out


def _scene_from_dict(r: _Reader, d, where: str) -> Scene:
    if not isinstance(d, dict):
        raise r.bad(where, "an object", d)
    visible = r.opt(d, "docks_visible", dict, f"{where}.docks_visible") or {}
    return Scene(
        name=r.str(d.get("name", ""), f"{where}.name", limit=500),
        state=_snapshot_from_dict(r, d.get("state", {}), f"{where}.state"),
        docks_visible={k: r.bool(v, f"{where}.docks_visible.{k}") for k, v in visible.items()},
        focus=r.name(d.get("focus", ""), f"{where}.focus"),
        docks=_docks_from_dict(r, d.get("docks", {}), f"{where}.docks"),
    )


def _model_from_dict(r: _Reader, d: dict) -> ModelRef:
    path = r.str(d.get("path"), "model.path", limit=10_000)
    _require(bool(path), "model.path is empty")
    return ModelRef(
        path=path,
        name=r.str(d.get("name", ""), "model.name", limit=1000),
        fingerprint=r.str(d.get("fingerprint", ""), "model.fingerprint", limit=200),
        relative_path=r.str(d.get("relative_path", ""), "model.relative_path", limit=10_000),
    )


def _layout_from_dict(r: _Reader, d: dict) -> Layout:
    def b64(key):
        text = r.str(d.get(key, ""), f"layout.{key}", limit=MAX_BYTES)
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise SessionError(f"layout.{key} is not base64") from None

    return Layout(r.int(d.get("version"), "layout.version", lo=0), b64("state"), b64("geometry"))


# --- model references ---------------------------------------------------------------------


def model_ref(folder, session_path=None, name: str = "") -> ModelRef:
    """A reference to a model folder, with its fingerprint and (when it can) its path
    relative to the session file's folder, so a folder moved together with the session is
    found again."""
    folder = Path(folder).resolve()
    rel = ""
    if session_path is not None:
        try:
            rel = os.path.relpath(folder, Path(session_path).resolve().parent)
        except ValueError:  # another drive (Windows)
            rel = ""
    return ModelRef(str(folder), name or folder.name, fingerprint(folder), rel)


def candidate_paths(ref: ModelRef, session_path=None) -> list[Path]:
    """Where to look for a session's model: where it was, then next to the session file."""
    out = [Path(ref.path)]
    if ref.relative_path and session_path is not None:
        out.append((Path(session_path).resolve().parent / ref.relative_path).resolve())
    return out


def matches(folder, ref: ModelRef) -> bool:
    """The folder holds the model the reference was saved with (False when unreadable)."""
    try:
        return Path(folder, "config.json").is_file() and (
            not ref.fingerprint or fingerprint(folder) == ref.fingerprint
        )
    except SessionError:
        return False


def find_model(ref: ModelRef, session_path=None) -> Path | None:
    """The first candidate folder whose fingerprint matches the reference, or None."""
    for p in candidate_paths(ref, session_path):
        if matches(p, ref):
            return p
    return None
