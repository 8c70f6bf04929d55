"""tinyattn.save / tinyattn.load: round trips, atomic writes, clear errors, exact resumption."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn as nn
import tinyattn.optim as optim
from tinyattn import kernels
from tinyattn.io import CheckpointError, load, save
from tinyattn.random import generator

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_state_dict_round_trip_keeps_names_dtypes_and_values(tmp_path):
    ta.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 4, padding_idx=0), nn.LSTM(4, 3, num_layers=2))
    sd = model.state_dict()
    path = tmp_path / "model.npz"
    save(sd, path)
    back = load(path)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and np.array_equal(back[k], sd[k])
    with np.load(path, allow_pickle=False) as raw:       # readable by plain NumPy, same names
        assert set(sd) <= set(raw.files)
    other = nn.Sequential(nn.Embedding(7, 4, padding_idx=0), nn.LSTM(4, 3, num_layers=2))
    other.load_state_dict(back)
    assert all(np.array_equal(a, b) for a, b in zip(other.state_dict().values(), sd.values()))


def test_nested_structures_round_trip(tmp_path):
    obj = {"model": {"w": np.arange(6, dtype=np.int32).reshape(2, 3), "t": ta.tensor([1.5, 2.5])},
           "state": {0: {"step": 3, "exp_avg": np.ones(2)}, 7: {}},
           "groups": [{"lr": 0.1, "betas": (0.9, 0.999), "nesterov": False, "name": None,
                       "big": 2 ** 100, "tiny": 1e-300, "nan": float("nan")}],
           "scalar": np.float32(2.5), "flag": np.array(True)}
    save(obj, tmp_path / "c.npz")
    back = load(tmp_path / "c.npz")
    assert np.array_equal(back["model"]["w"], obj["model"]["w"])
    assert back["model"]["w"].dtype == np.int32
    assert np.array_equal(back["model"]["t"], [1.5, 2.5]) and back["model"]["t"].dtype == np.float32
    assert list(back["state"]) == [0, 7] and back["state"][0]["step"] == 3
    g = back["groups"][0]
    assert g["betas"] == (0.9, 0.999) and isinstance(g["betas"], tuple)
    assert g["lr"] == 0.1 and g["nesterov"] is False and g["name"] is None
    assert g["big"] == 2 ** 100 and g["tiny"] == 1e-300 and np.isnan(g["nan"])
    assert back["scalar"].dtype == np.float32 and back["scalar"] == 2.5
    assert back["flag"].dtype == bool


def test_save_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        save(nn.Linear(2, 2), tmp_path / "m.npz")
    with pytest.raises(TypeError, match="dtype object"):
        save({"x": np.array([object()])}, tmp_path / "m.npz")
    with pytest.raises(TypeError, match="keys"):
        save({(1, 2): np.ones(1)}, tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())                 # nothing half-written was left behind


def test_plain_npz_loads_as_flat_dict(tmp_path):
    np.savez(tmp_path / "p.npz", **{"0.weight": np.ones((2, 3)), "0.bias": np.zeros(2)})
    d = load(tmp_path / "p.npz")
    nn.Sequential(nn.Linear(3, 2)).load_state_dict(d)


def test_truncated_and_corrupt_files_are_reported(tmp_path):
    path = tmp_path / "c.npz"
    save({"w": np.arange(1000.0)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(path)
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF                        # inside the array's bytes
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="c.npz"):
        load(path)
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError):
        load(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "missing.npz")


def test_description_mismatch_is_reported(tmp_path):
    path = tmp_path / "c.npz"
    meta = ('{"format": "tinyattn-checkpoint-1", "tree": {"dict": [["str", "w", {"array": "w"}]]},'
            ' "arrays": {"w": ["<f8", [3]]}}')
    np.savez(path, w=np.ones(4), __tinyattn__=np.array(meta))
    with pytest.raises(CheckpointError, match="description says"):
        load(path)


def test_loading_copies_into_the_model_dtype(tmp_path):
    m = nn.Linear(3, 2)
    save(m.state_dict(), tmp_path / "m.npz")
    d = nn.Linear(3, 2).double()
    d.load_state_dict(load(tmp_path / "m.npz"))
    assert d.weight.dtype == np.float64
    assert np.array_equal(d.weight.numpy(), m.weight.numpy().astype(np.float64))


_KILLED_SAVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import numpy.lib.format as npy_format
    from tinyattn.io import save

    path = sys.argv[1]
    save({"w": np.full(20000, 1.0)}, path)                # the previous, complete checkpoint

    def stall_mid_write(fp, array, *args, **kwargs):     # write part of the array, then hang
        fp.write(b"\\x00" * 4096)
        fp.flush()
        print("MID-WRITE", flush=True)
        time.sleep(120)

    npy_format.write_array = stall_mid_write
    save({"w": np.full(20000, 2.0)}, path)
""")


def test_a_save_killed_mid_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVER, str(path)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        assert line.strip() == "MID-WRITE", f"the saver did not reach the write (said {line!r})"
        leftovers = [p for p in tmp_path.iterdir() if ".tinyattn-tmp-" in p.name]
        assert leftovers and leftovers[0].stat().st_size > 0     # the new file was being written
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    back = load(path)
    assert np.array_equal(back["w"], np.full(20000, 1.0))
    save({"w": np.zeros(3)}, path)                       # and the next save still works,
    assert np.array_equal(load(path)["w"], np.zeros(3))
    assert not [p for p in tmp_path.iterdir() if ".tinyattn-tmp-" in p.name]   # removing the stray


def test_checkpoint_error_is_public_and_a_value_error():
    assert ta.CheckpointError is CheckpointError and issubclass(CheckpointError, ValueError)


# ---------------------------------------------------------------------------- exact resumption
class _Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 5)
        self.lstm = nn.LSTM(5, 8, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(8, 6)

    def forward(self, ids):
        h, _ = self.lstm(self.embed(ids))
        return self.out(self.drop(h))


def _setup():
    ta.manual_seed(1)
    model = _Tagger()
    opt = optim.AdamW(model.parameters(), lr=1.0, weight_decay=0.01)
    sched = optim.NoamLR(opt, d_model=8, warmup_steps=3)
    return model, opt, sched


def _train(model, opt, sched, steps, first):
    for s in range(first, first + steps):
        rng = np.random.default_rng(s)
        ids = rng.integers(0, 6, (4, 5))
        logits = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, 6), np.roll(ids, 1, axis=1).reshape(-1))
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()


def test_save_load_resume_continues_bit_identically(tmp_path):
    # the plain NumPy kernels: resuming is the property here, and it needs no compiled LSTM
    with kernels.using("numpy"):
        _resume_continues_bit_identically(tmp_path)


def _resume_continues_bit_identically(tmp_path):
    model, opt, sched = _setup()
    _train(model, opt, sched, 8, 0)
    reference = model.state_dict()

    model, opt, sched = _setup()
    _train(model, opt, sched, 5, 0)
    save({"model": model.state_dict(), "optimizer": opt.state_dict(),
          "scheduler": sched.state_dict(), "rng": generator().bit_generator.state},
         tmp_path / "ckpt.npz")
    del model, opt, sched

    ta.manual_seed(12345)                                 # a fresh process would start elsewhere
    model, opt, sched = _setup()
    ckpt = load(tmp_path / "ckpt.npz")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    generator().bit_generator.state = ckpt["rng"]        # dropout masks continue too
    _train(model, opt, sched, 3, 5)
    resumed = model.state_dict()
    for k in reference:
        assert np.array_equal(resumed[k], reference[k]), f"{k} differs after resuming"


def test_optimizer_load_state_dict_rejects_a_different_model():
    a = nn.Linear(3, 2)
    opt = optim.Adam(a.parameters())
    a(ta.randn(1, 3)).sum().backward()
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="shape"):
        optim.Adam(nn.Linear(4, 2).parameters()).load_state_dict(state)
    with pytest.raises(ValueError, match="parameters"):
        optim.Adam(nn.Linear(3, 2, bias=False).parameters()).load_state_dict(state)
