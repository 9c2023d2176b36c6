"""Nothing in a checkpoint runs: a .bin whose pickle would execute code is refused."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from explorer.checkpoints import CheckpointError, load


class RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class RunsPython:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def bin_folder(tiny, tmp_path, name="gpt2"):
    """A copy of a .bin checkpoint folder whose pytorch_model.bin we may replace."""
    dst = tmp_path / "model"
    shutil.copytree(tiny(name, "bin").folder, dst)
    return dst


@pytest.mark.parametrize("payload", [RunsShell, RunsPython])
@pytest.mark.parametrize("where", ["value", "top"])
def test_a_pickle_that_would_run_code_is_refused(tiny, tmp_path, payload, where):
    folder = bin_folder(tiny, tmp_path)
    marker = tmp_path / "marker"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    evil = payload(marker)
    obj = evil if where == "top" else {**state, "transformer.h.0.attn.c_attn.weight": evil}
    torch.save(obj, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused"):
        load(folder)
    assert not marker.exists()
    # the payload is real: an unsafe load would run it
    torch.load(folder / "pytorch_model.bin", weights_only=False)
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_legacy_raw_pickle_is_refused(tiny, tmp_path):
    folder = bin_folder(tiny, tmp_path)
    marker = tmp_path / "marker"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": RunsShell(marker)}))
    with pytest.raises(CheckpointError):
        load(folder)
    assert not marker.exists()


def test_an_evil_shard_is_refused(tiny, tmp_path):
    folder = bin_folder(tiny, tmp_path, "llama-gqa")
    marker = tmp_path / "marker"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    names = sorted(state)
    half = len(names) // 2
    torch.save({n: state[n] for n in names[:half]}, folder / "pytorch_model-00001-of-00002.bin")
    torch.save(
        {**{n: state[n] for n in names[half:]}, "extra": RunsPython(marker)},
        folder / "pytorch_model-00002-of-00002.bin",
    )
    (folder / "pytorch_model.bin").unlink()
    weight_map = {
        n: f"pytorch_model-0000{1 + (i >= half)}-of-00002.bin" for i, n in enumerate(names)
    }
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match="refused"):
        load(folder)
    assert not marker.exists()


def test_a_sharded_bin_loads(tiny, tmp_path):
    folder = bin_folder(tiny, tmp_path, "llama-gqa")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    names = sorted(state)
    shards = {n: f"part-{i % 2}.bin" for i, n in enumerate(names)}
    for part in ("part-0.bin", "part-1.bin"):
        torch.save({n: state[n] for n in names if shards[n] == part}, folder / part)
    (folder / "pytorch_model.bin").unlink()
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": shards}))
    ids = [5, 6, 7, 8]
    ref = tiny("llama-gqa").lm.run(ids).logits()
    torch.testing.assert_close(load(folder).run(ids).logits(), ref, atol=1e-6, rtol=0)


def test_safetensors_win_over_a_bin_in_the_same_folder(tiny, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny("gpt2").folder, dst)
    marker = tmp_path / "marker"
    torch.save({"w": RunsShell(marker)}, dst / "pytorch_model.bin")
    load(dst).run([1, 2])
    assert not marker.exists()


@pytest.mark.parametrize("target", ["../outside.safetensors", "/etc/passwd", "sub/x.safetensors"])
def test_an_index_pointing_outside_the_folder_is_refused(tiny, tmp_path, target):
    dst = tmp_path / "model"
    shutil.copytree(tiny("gpt2", "sharded").folder, dst)
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = target
    (dst / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="outside the folder"):
        load(dst)


def test_a_bin_that_is_not_a_state_dict(tiny, tmp_path):
    folder = bin_folder(tiny, tmp_path)
    for obj in ([torch.zeros(2)], {"w": 3}, torch.zeros(3)):
        torch.save(obj, folder / "pytorch_model.bin")
        with pytest.raises(CheckpointError):
            load(folder)
    (folder / "pytorch_model.bin").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load(folder)


def test_the_loader_never_trusts_remote_code(tiny, tmp_path):
    """A config asking for custom code (auto_map) is read as plain data: no .py file runs."""
    dst = tmp_path / "model"
    shutil.copytree(tiny("llama").folder, dst)
    marker = tmp_path / "marker"
    (dst / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    cfg = json.loads((dst / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (dst / "config.json").write_text(json.dumps(cfg))
    load(dst).run([1, 2, 3])
    assert not marker.exists()
