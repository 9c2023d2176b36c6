"""Session files without Qt: JSON round trip, strict reading, model fingerprints; data export."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from explorer.engine import Ablation
from explorer.export_data import (
    ExportError,
    Table,
    read_matrix_csv,
    table_csv,
    write_pattern,
)
from explorer.session import (
    FORMAT,
    VERSION,
    Layout,
    ModelRef,
    Scene,
    Session,
    SessionError,
    Snapshot,
    View,
    find_model,
    fingerprint,
    model_ref,
)


def sample() -> Session:
    snap = Snapshot(
        prompt="When Mary and John went to the store,\nJohn gave a drink to",
        ablation=Ablation.of([(1, 2), (0, 3)], "mean", attn_layers=[2], mlp_layers=[0]),
        mode="mean",
        position=4,
        layer=1,
        head=-1,
        target=" Mary",
        foil=" John",
    )
    return Session(
        model=ModelRef("/models/gpt2", "gpt2", "v1:abc", "../models/gpt2"),
        state=snap,
        view=View("cividis", "CET-CBD1", "dark", 1.25, 2.0),
        docks={"tokens": {"mode": "loss"}, "generation": {"n": 7, "temperature": 0.5}},
        layout=Layout(5, b"\x00\x01state\xff", b"geo\x00"),
        scenes=[
            Scene("Start", Snapshot(prompt="a b c")),
            Scene(
                "Ablated",
                snap,
                {"tokens": False, "attention": True},
                "attention",
                {"attention": {"clean": True}},
            ),
        ],
        scene=1,
    )


def test_round_trip_is_equal(tmp_path):
    s = sample()
    path = s.save(tmp_path / "talk.aexp.json")
    back = Session.load(path)
    back.app_version = s.app_version
    assert back == s
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["state"]["ablation"]["heads"] == [[0, 3, "mean"], [1, 2, "mean"]]


def test_an_empty_session_round_trips():
    s = Session()
    back = Session.loads(s.dumps())
    back.app_version = ""
    assert back == s


def bad(data: dict, key_path: str, value):
    node = data
    *parents, last = key_path.split(".")
    for k in parents:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "key_path, value, words",
    [
        ("state.layer", "3", "state.layer should be a whole number"),
        ("state.layer", True, "state.layer should be a whole number"),
        ("state.head", -2, "out of range"),
        ("state.prompt", 5, "state.prompt should be text"),
        ("state.ablation.heads", [[1, "2", "zero"]], "heads[0][1]"),
        ("state.ablation.heads", [[1, 2, "half"]], "should be one of zero, mean"),
        ("state.ablation.mode", "half", "state.ablation.mode"),
        ("view.zoom", 40, "out of range"),
        ("view.theme", "neon", "view.theme"),
        ("docks", [], "docks should be an object"),
        ("docks.tokens", 3, "docks.tokens should be an object"),
        ("layout.state", "***", "not base64"),
        ("scenes.1.docks_visible", {"tokens": "yes"}, "true or false"),
        ("scenes", {"a": 1}, "scenes should be a list"),
        ("scene", 9, "scene 9 does not exist"),
        ("model.path", "", "model.path is empty"),
    ],
)
def test_unexpected_types_are_rejected(key_path, value, words):
    data = sample().to_dict()
    with pytest.raises(SessionError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Session.loads(bad(data, key_path, value))


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"format": "something-else", "version": 1}', "not an Attention Explorer session"),
        (json.dumps({"format": FORMAT, "version": "1"}), "version should be a whole number"),
        (json.dumps({"format": FORMAT, "version": VERSION + 1}), "newer Attention Explorer"),
        ('{"format": "attention-explorer-session", "version": 1, "view": {"zoom": NaN}}', "NaN"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ],
)
def test_corrupt_and_newer_files_are_rejected(text, words):
    with pytest.raises(SessionError, match=words):
        Session.loads(text)


def test_unreadable_files(tmp_path):
    with pytest.raises(SessionError, match="cannot read"):
        Session.load(tmp_path / "missing.aexp.json")
    p = tmp_path / "binary.aexp.json"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SessionError, match="not UTF-8"):
        Session.load(p)


def test_unknown_keys_are_ignored():
    data = sample().to_dict()
    data["future_feature"] = {"x": 1}
    data["state"]["future"] = 2
    back = Session.loads(json.dumps(data))
    assert back.state == sample().state


def test_saving_never_pickles_and_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "s.aexp.json"
    sample().save(path)
    good = path.read_text(encoding="utf-8")
    assert good.startswith("{")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("explorer.session.os.replace", fail)
    with pytest.raises(SessionError, match="No space left"):
        Session(state=Snapshot(prompt="other")).save(path)
    assert path.read_text(encoding="utf-8") == good
    assert [p.name for p in tmp_path.iterdir()] == ["s.aexp.json"]


def test_fingerprint_follows_content_not_place(tiny, tmp_path):
    src = tiny("gpt2").folder
    fp = fingerprint(src)
    assert fp.startswith("v1:")
    moved = tmp_path / "moved"
    shutil.copytree(src, moved)
    assert fingerprint(moved) == fp  # a copy (new mtimes, new place) is the same model
    changed = tmp_path / "changed"
    shutil.copytree(src, changed)
    weights = next(changed.glob("*.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-10] ^= 0xFF  # one weight byte
    weights.write_bytes(bytes(raw))
    assert fingerprint(changed) != fp
    cfg = tmp_path / "cfg"
    shutil.copytree(src, cfg)
    (cfg / "config.json").write_text((src / "config.json").read_text() + " ")
    assert fingerprint(cfg) != fp
    with pytest.raises(SessionError, match="no config.json"):
        fingerprint(tmp_path)


def test_large_weight_files_are_sampled(tmp_path, monkeypatch):
    import explorer.session as S

    monkeypatch.setattr(S, "SAMPLE_BLOCK", 16)
    monkeypatch.setattr(S, "SAMPLES", 4)
    (tmp_path / "config.json").write_text("{}")
    w = tmp_path / "model.safetensors"
    header = b'{"x": {"dtype": "F32", "shape": [250], "data_offsets": [0, 1000]}}'
    w.write_bytes(len(header).to_bytes(8, "little") + header + bytes(1000))
    fp = fingerprint(tmp_path)
    reads = []
    real = S._sha256_file
    monkeypatch.setattr(S, "_sha256_file", lambda p: reads.append(p.name) or real(p))
    assert fingerprint(tmp_path) == fp
    assert reads == ["config.json"]  # the weights were sampled, not read whole
    raw = bytearray(w.read_bytes())
    raw[-1] = 1  # the last block is always sampled
    w.write_bytes(bytes(raw))
    assert fingerprint(tmp_path) != fp


def test_a_model_moved_with_its_session_is_found(tiny, tmp_path):
    talk = tmp_path / "talk"
    shutil.copytree(tiny("gpt2").folder, talk / "model")
    ref = model_ref(talk / "model", talk / "s.aexp.json")
    assert ref.relative_path == "model"
    moved = tmp_path / "usb" / "talk"
    shutil.move(str(talk), str(moved))
    assert find_model(ref, moved / "s.aexp.json") == (moved / "model").resolve()
    assert find_model(ref) is None


def test_pattern_exports_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.random((5, 5)).astype(np.float32)
    tokens = ["When", " Mary", ",", ' "x"\n', "\r"]
    write_pattern(tmp_path / "p.csv", p, tokens)
    rows, cols, values = read_matrix_csv(tmp_path / "p.csv")
    assert rows == cols == tokens
    np.testing.assert_array_equal(values.astype(np.float32), p)
    layer = rng.random((2, 5, 5)).astype(np.float32)
    write_pattern(tmp_path / "l.npz", layer, tokens, [1, 2, 3, 4, 5], {"layer": 3, "model": "m"})
    z = np.load(tmp_path / "l.npz")
    np.testing.assert_array_equal(z["attention"], layer)
    assert list(z["tokens"]) == tokens and int(z["layer"]) == 3
    assert list(z["token_ids"]) == [1, 2, 3, 4, 5]
    write_pattern(tmp_path / "p.npy", p, tokens)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), p)
    with pytest.raises(ExportError, match="use one of"):
        write_pattern(tmp_path / "p.xlsx", p, tokens)
    with pytest.raises(ExportError, match="does not fit"):
        write_pattern(tmp_path / "p.csv", p, tokens[:3])


def test_table_csv():
    t = Table(["rank", "token", "p"], [[1, " Mary", 0.5], [2, "a,b", float("nan")]])
    assert table_csv(t) == 'rank,token,p\r\n1, Mary,0.5\r\n2,"a,b",\r\n'
