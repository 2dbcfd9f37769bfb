"""netx HDF5 files: the lava-dl layout, round trips, refusals, and rebuilding the network in Lava."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from lava_helpers import convnet, mlp, spikes

from neurosynth.hardware.lava import compat
from neurosynth.hardware.lava.ir import LoihiExportError, extract
from neurosynth.hardware.lava.netx import read_netx, validate_netx, write_netx
from neurosynth.hardware.lava.reference import simulate


def _type(ds) -> str:
    v = ds[()]
    return (v.reshape(-1)[0] if isinstance(v, np.ndarray) else v).decode("ascii")


def test_mlp_file_follows_netx_layout(tmp_path):
    m, _ = mlp(alpha=0.5, beta=0.8, threshold=1.25)
    net = extract(m)
    path = write_netx(net, tmp_path / "net.h5")
    assert validate_netx(path) == []
    with h5py.File(path, "r") as f:
        assert sorted(f["layer"].keys()) == ["0", "1", "2"]
        assert f["layer/0/type"].dtype == np.dtype("S10") and f["layer/0/type"].shape == (1,)
        assert [_type(f[f"layer/{i}/type"]) for i in range(3)] == ["input", "dense", "dense"]
        assert f["layer/0/shape"][()].tolist() == [20] and "neuron" not in f["layer/0"]
        g = f["layer/1"]
        assert g["shape"][()].tolist() == [16]
        w = g["weight"][()]
        assert w.shape == (16, 20) and np.issubdtype(w.dtype, np.integer)
        assert w.min() >= -256 and w.max() <= 254 and not (w % 2).any()
        np.testing.assert_array_equal(w, np.round(m[0].effective_weight().detach().numpy() * 64))
        n = g["neuron"]
        assert n["type"][()].decode() == "CUBA"
        assert (n["iDecay"][()], n["vDecay"][()], n["vThMant"][()]) == (2048, round(0.2 * 4096), 80)
        assert not f["layer/2"].attrs  # netx reads datasets only; our metadata sits on the file


def test_conv_file_fields_and_round_trip(tmp_path):
    m, _ = convnet()
    net = extract(m, (2, 6, 6))
    path = write_netx(net, tmp_path / "conv.h5")
    assert validate_netx(path) == []
    with h5py.File(path, "r") as f:
        assert [_type(f[f"layer/{i}/type"]) for i in range(5)] == ["input", "conv", "conv", "flatten", "dense"]
        g = f["layer/1"]
        assert g["shape"][()].tolist() == [4, 3, 6] and g["weight"].shape == (4, 2, 3, 3)
        assert g["stride"][()].tolist() == [2, 1] and g["padding"][()].tolist() == [1, 1]
        assert int(f["layer/2/groups"][()]) == 2
    back = read_netx(path)
    assert [(a.kind, a.in_shape, a.out_shape) for a in back.layers] == \
           [(a.kind, a.in_shape, a.out_shape) for a in net.layers]
    x = spikes(8, 3, 2, 6, 6)
    for a, b in zip(simulate(back, x, "fixed").spikes, simulate(net, x, "fixed").spikes):
        np.testing.assert_array_equal(a, b)


def test_refused_model_writes_nothing(tmp_path):
    from neurosynth.layers import SNN
    from neurosynth.neurons import LIF

    raw = SNN(torch.nn.Linear(20, 4, bias=False), LIF(reset="zero"))
    with torch.no_grad():
        raw[0].weight.fill_(5.0)
    out = tmp_path / "bad.h5"
    with pytest.raises(LoihiExportError, match="8-bit range"):
        write_netx(extract(raw), out)
    assert list(tmp_path.iterdir()) == []


def test_validate_flags_what_netx_cannot_load(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g.create_dataset("shape", data=[2])
        g.create_dataset("weight", data=np.full((2, 3), 0.5))
        p = f.create_group("layer/1")
        p.create_dataset("type", (1,), "S10", [b"pool"])
    problems = " | ".join(validate_netx(path))
    assert "weights must be integers" in problems and "neuron" in problems and "'pool'" in problems
    with pytest.raises(LoihiExportError, match="not a netx file"):
        read_netx(path)


@pytest.mark.lava
@pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")
def test_network_rebuilt_from_file_runs_bit_exact_in_lava(tmp_path):
    from neurosynth.hardware.lava.builder import run_lava

    m, _ = convnet()
    net = extract(m, (2, 6, 6))
    back = read_netx(write_netx(net, tmp_path / "conv.h5"))
    x = spikes(8, 3, 2, 6, 6)
    lx = run_lava(back, x, "fixed", copies=3)
    for a, b in zip(lx.spikes, simulate(net, x, "fixed").spikes):
        assert b.any()
        np.testing.assert_array_equal(a, b)
