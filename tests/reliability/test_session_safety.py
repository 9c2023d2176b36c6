"""Session files are data, never code: every value of an unexpected type, anywhere in the
file, is refused with SessionError or read into the right type; nothing is unpickled."""

from __future__ import annotations

import copy
import json
import os
import pickle

import pytest

from explorer.engine import Ablation
from explorer.session import Layout, ModelRef, Scene, Session, SessionError, Snapshot, View

WEIRD = [
    None, True, False, 0, -1, 2**70, 1.5, float("nan"), float("inf"), "", "x", "\ud800",
    [], [[]], {}, {"a": {"b": [1]}}, [None, 1, "a"],
]  # fmt: skip


def sample() -> Session:
    snap = Snapshot(
        prompt="When Mary and John went to the store",
        ablation=Ablation.of([(1, 2)], "mean", attn_layers=[0], mlp_layers=[1]),
        mode="mean", position=3, layer=1, head=2, target=" Mary", foil=" John",
    )  # fmt: skip
    return Session(
        model=ModelRef("/models/x", "x", "v1:abc", "../x"),
        state=snap,
        view=View("viridis", "CET-D1A", "dark", 1.5, 2.0),
        docks={"generation": {"n": 7, "sample": False}, "tokens": {"color_by": "loss"}},
        layout=Layout(5, b"state", b"geometry"),
        scenes=[Scene("one", snap, {"tokens": True}, "attention", {"attention": {"clean": True}})],
        scene=0,
    )


def paths(node, prefix=()):
    """Every (path) to a value inside a JSON tree, containers included."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def put(tree, path, value):
    tree = copy.deepcopy(tree)
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return tree


def check_types(s: Session):
    """A Session read from a file holds only the types its fields promise."""
    assert s.model is None or all(
        isinstance(getattr(s.model, f), str) for f in ("path", "name", "fingerprint")
    )
    st = s.state
    assert isinstance(st.prompt, str) and isinstance(st.ablation, Ablation)
    for name in ("position", "layer", "head"):
        v = getattr(st, name)
        assert isinstance(v, int) and not isinstance(v, bool)
    assert isinstance(s.view.zoom, float) and isinstance(s.view.theme, str)
    assert all(isinstance(k, str) and isinstance(v, dict) for k, v in s.docks.items())
    assert all(isinstance(sc, Scene) for sc in s.scenes)
    assert isinstance(s.scene, int) and -1 <= s.scene < max(1, len(s.scenes))
    assert s.layout is None or isinstance(s.layout.state, bytes)
    # whatever was read can be written again and reads back the same
    text = s.dumps()
    text.encode("utf-8")
    back = Session.loads(text)
    back.app_version = s.app_version
    assert back == s


def test_every_value_of_an_unexpected_type_is_refused_or_read_safely(report_figures):
    base = sample().to_dict()
    outcomes = {"refused": 0, "read": 0}
    for path in list(paths(base)):
        if not path:
            continue
        for value in WEIRD:
            data = put(base, path, value)
            try:
                s = Session.from_dict(data)
            except SessionError as e:
                assert str(e) and "\n" not in str(e)
                outcomes["refused"] += 1
                continue
            check_types(s)
            outcomes["read"] += 1
    total = sum(outcomes.values())
    report_figures("session type fuzz", f"{total} files: {outcomes}")
    assert total > 800 and outcomes["refused"] > 500


def test_the_same_through_json_text():
    """Through Session.loads: NaN and Infinity literals are refused, not read as numbers."""
    base = sample().to_dict()
    for path in [("view", "zoom"), ("state", "layer"), ("docks", "generation", "n")]:
        for value in (float("nan"), float("inf"), -float("inf")):
            with pytest.raises(SessionError):
                Session.loads(json.dumps(put(base, path, value)))


def test_a_session_holding_unpaired_surrogates_can_be_saved_again(tmp_path):
    """JSON can escape a lone surrogate ("\\ud800"); reading it as U+FFFD keeps the session
    writable (before, saving it again raised UnicodeEncodeError)."""
    data = sample().to_dict()
    data["state"]["prompt"] = "a\ud800b"
    data["docks"]["generation"]["note\udfff"] = "x\udc80"
    s = Session.loads(json.dumps(data))
    assert s.state.prompt == "a\ufffdb"
    assert s.docks["generation"]["note\ufffd"] == "x\ufffd"
    path = s.save(tmp_path / "s.aexp.json")
    assert Session.load(path).state.prompt == "a\ufffdb"


class Boom:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_a_pickled_session_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.aexp.json"
    for payload in (pickle.dumps(Boom(marker)), pickle.dumps({"format": Boom(marker)}, 0)):
        path.write_bytes(payload)
        with pytest.raises(SessionError):
            Session.load(path)
    assert not marker.exists()
