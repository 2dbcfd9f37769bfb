"""Our netx files loaded by lava-dl's own reader (``lava.lib.dl.netx.hdf5.Network``), run in fixed point.

lava-dl cannot be installed next to our torch (it pins torch 2.3), so this test loads its ``netx`` package in
isolation from a lava-dl source checkout named by ``LAVA_DL_SRC`` (the repository root, holding
``src/lava/lib/dl/netx``): ``lava.lib`` and ``lava.lib.dl`` are registered as packages pointing into the checkout and the one
slayer symbol ``netx/hdf5.py`` imports (``slayer.neuron.rf.neuron_params``, used only for resonate-and-fire
neurons) is stubbed, so no torch-pinned code runs. Skipped without ``LAVA_DL_SRC`` or lava-nc. To run it::

    git clone https://github.com/lava-nc/lava-dl /tmp/lava-dl
    LAVA_DL_SRC=/tmp/lava-dl python -m pytest tests/hardware/test_netx_lavadl.py
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from lava_helpers import convnet, mlp, pooled_convnet, rsnn, spikes

from neurosynth.hardware.lava import compat
from neurosynth.hardware.lava.ir import extract
from neurosynth.hardware.lava.netx import write_netx
from neurosynth.hardware.lava.reference import simulate

SRC = Path(os.environ.get("LAVA_DL_SRC", "/nonexistent")) / "src" / "lava"
pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(not (SRC / "lib" / "dl" / "netx" / "hdf5.py").exists(),
                       reason="set LAVA_DL_SRC to a lava-dl checkout to test with lava-dl's netx reader"),
    pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed"),
]
_STUBS = ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", "lava.lib.dl.slayer.neuron.rf")


@pytest.fixture(scope="module")
def netx_hdf5():
    compat.import_lava()
    for name, folder in (("lava.lib", SRC / "lib"), ("lava.lib.dl", SRC / "lib" / "dl")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(folder)]
        sys.modules[name] = pkg
    for name in _STUBS:
        mod = types.ModuleType(name)
        mod.__path__ = []
        sys.modules[name] = mod

    def rf_params(*_a, **_k):
        raise NotImplementedError("resonate-and-fire neurons need lava-dl's slayer")

    sys.modules[_STUBS[-1]].neuron_params = rf_params
    from lava.lib.dl.netx import hdf5

    yield hdf5
    for name in [n for n in sys.modules if n == "lava.lib" or n.startswith("lava.lib.")]:
        del sys.modules[name]


def _run_netx(hdf5, path, x, check=None):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer

    net = hdf5.Network(net_config=str(path))
    if check is not None:
        check(net)
    src = RingBuffer(data=np.transpose(x, tuple(range(x.ndim - 1, -1, -1))).astype(np.int32))
    sink = Sink(shape=net.out.shape, buffer=x.shape[0])
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=x.shape[0]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = np.asarray(sink.data.get())
    finally:
        net.stop()
    return np.transpose(out, tuple(range(out.ndim - 1, -1, -1))) > 0


def _recurrent_synapses_binary(net):
    """lava-dl #372: netx gives the recurrent synapse the *network input's* message bits; with binary input
    (input_message_bits=0, what we verify) it must be 0, i.e. binary spikes, like every other connection."""
    blocks = [b for b in net.layers if hasattr(b, "synapse_rec")]
    assert blocks, "no RecurrentDense block was built from the dense_rec layer"
    for b in blocks:
        assert int(b.synapse_rec.proc_params["num_message_bits"]) == 0
        assert int(b.synapse.proc_params["num_message_bits"]) == 0


@pytest.mark.parametrize("kind", ["mlp", "conv", "recurrent", "pooled"])
def test_lavadl_netx_runs_our_file_bit_exact(netx_hdf5, tmp_path, kind):
    m, spec = {"mlp": lambda: mlp(alpha=0.4), "conv": convnet, "recurrent": rsnn, "pooled": pooled_convnet}[kind]()
    shape = tuple(spec["input_shape"])
    net = extract(m, shape)
    path = write_netx(net, tmp_path / "net.h5")
    x = spikes(16, 1, *shape)[:, 0].numpy()
    out = _run_netx(netx_hdf5, path, x, _recurrent_synapses_binary if kind == "recurrent" else None)
    ref = simulate(net, x[:, None], "fixed").output[:, 0]
    assert ref.any()
    np.testing.assert_array_equal(out.reshape(ref.shape), ref)


def test_lavadl_372_graded_input_gives_the_recurrent_synapse_graded_message_bits(netx_hdf5, tmp_path):
    """Documents the trap we avoid: with graded network input lava-dl also makes the *recurrent* synapse of a
    first hidden dense_rec layer graded (lava-dl #372), although its input are the layer's binary spikes."""
    m, spec = rsnn()
    path = write_netx(extract(m, tuple(spec["input_shape"])), tmp_path / "net.h5")
    net = netx_hdf5.Network(net_config=str(path), input_message_bits=8)
    block = next(b for b in net.layers if hasattr(b, "synapse_rec"))
    assert int(block.synapse_rec.proc_params["num_message_bits"]) == 8


def test_lavadl_netx_reads_our_voltage_readout_bit_exact(netx_hdf5, tmp_path):
    """A voltage readout (LI last layer) loads as an ordinary CUBA block whose neurons never fire; its ``v`` after
    the last step is the integer reference's."""
    import torch
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    from neurosynth.arch import build
    from neurosynth.hardware.lava import qat

    m = build(qat.loihi_rsnn_spec(20, 16, 5, alpha=0.3, beta=0.9, layers=2, readout="voltage"))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(6.0)
    net = extract(m.eval(), (20,))
    path = write_netx(net, tmp_path / "v.h5")
    x = spikes(16, 1, 20)[:, 0].numpy()
    lnet = netx_hdf5.Network(net_config=str(path))
    src = RingBuffer(data=x.T.astype(np.int32))
    src.s_out.connect(lnet.inp)
    try:
        lnet.run(condition=RunSteps(num_steps=x.shape[0]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        v = np.asarray(lnet.layers[-1].neuron.v.get()).astype(np.int64)
    finally:
        lnet.stop()
    ref = simulate(net, x[:, None], "fixed")
    assert ref.spikes[-2].any() and not ref.output.any() and np.abs(ref.v[-1]).max() > 0
    np.testing.assert_array_equal(v, ref.v[-1][0])


def test_lavadl_netx_runs_our_neuron_biases_bit_exact(netx_hdf5, tmp_path):
    """netx's ``bias`` is the neuron's ``bias_mant`` with ``bias_exp = 6``: our QBias layers (64 b) run as trained."""
    import torch

    from neurosynth.arch import build
    from neurosynth.hardware.lava import qat

    torch.manual_seed(0)
    m = build(qat.loihi_rsnn_spec(20, 16, 5, beta=0.9, layers=2, bias=True))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g)) if name.endswith("bias") else p.mul_(6.0)
    net = extract(m.eval(), (20,))
    assert all(s.bias is not None for s in net.stages[:2])
    path = write_netx(net, tmp_path / "b.h5")
    x = spikes(16, 1, 20)[:, 0].numpy()
    out = _run_netx(netx_hdf5, path, x, _recurrent_synapses_binary)
    ref = simulate(net, x[:, None], "fixed").output[:, 0]
    assert ref.any()
    np.testing.assert_array_equal(out.reshape(ref.shape), ref)
