"""Recurrent layers through NIR: our Recurrent <-> NIR's recurrent subgraph <-> snnTorch RLeaky."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from neurosynth.hardware.nir import from_nir, read_nir, to_nir, write_nir  # noqa: E402
from neurosynth.layers import SNN, Delay, Recurrent  # noqa: E402
from neurosynth.neurons import LI, LIF, CubaLIF  # noqa: E402


def _shd_like(gen, n_in=70, hidden=24, n_out=20, neuron=None, bias=False):
    """SHD-shaped (700 -> H -> 20, scaled down): Linear -> Recurrent(LIF) -> Linear -> LIF."""
    neuron = neuron or LIF(beta=0.9, threshold=1.0, reset="zero")
    m = SNN(nn.Linear(n_in, hidden), Recurrent(hidden, neuron, bias=bias), nn.Linear(hidden, n_out),
            LIF(beta=0.85, threshold=1.0, reset="zero"))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
    return m.eval()


def _inputs(gen, T=40, B=3, n=70):
    return (torch.rand(T, B, n, generator=gen) < 0.2).float()


def _run_snntorch_graphmodule(net, x):
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = net(x[t]) if state is None else net(x[t], state)
            outs.append(out)
    return torch.stack(outs)


def test_recurrent_layer_is_written_as_nir_recurrent_subgraph(tmp_path):
    gen = torch.Generator().manual_seed(0)
    m = _shd_like(gen, bias=True)
    g = read_nir(write_nir(to_nir(m, form="snntorch"), tmp_path / "r.nir"))
    sub = g.nodes["1"]
    assert isinstance(sub, nir.NIRGraph)
    assert {k: type(v).__name__ for k, v in sub.nodes.items()} == {"input": "Input", "lif": "LIF", "w_rec": "Affine",
                                                                   "output": "Output"}
    assert sorted(sub.edges) == sorted([("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    np.testing.assert_array_equal(sub.nodes["w_rec"].weight, m[1].rec.weight.detach().numpy())
    assert sorted(g.edges) == sorted([("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")])


@pytest.mark.parametrize("neuron", [LIF(beta=0.9, threshold=1.0, reset="zero"),
                                    CubaLIF(alpha=0.6, beta=0.85, threshold=0.8)])
def test_ours_to_nir_to_ours_is_exact(tmp_path, neuron):
    gen = torch.Generator().manual_seed(1)
    m = _shd_like(gen, neuron=neuron)
    back = from_nir(read_nir(write_nir(to_nir(m), tmp_path / "r.nir")))
    assert isinstance(back[1], Recurrent) and back[1].rec.bias is None
    x = _inputs(gen)
    with torch.no_grad():
        ours, theirs = m(x), back(x)
    assert 0 < ours.sum() < ours.numel()
    assert torch.equal(ours, theirs)
    torch.testing.assert_close(back[1].rec.weight, m[1].rec.weight, rtol=0, atol=0)
    _assert_same_graph(to_nir(m), to_nir(back))  # and the imported model writes the graph we wrote


def _assert_same_graph(a, b):
    assert set(a.nodes) == set(b.nodes) and sorted(a.edges) == sorted(b.edges)
    for name, na in a.nodes.items():
        nb = b.nodes[name]
        assert type(na) is type(nb), name
        if isinstance(na, nir.NIRGraph):
            _assert_same_graph(na, nb)
            continue
        da, db = na.to_dict(), nb.to_dict()
        for key, va in da.items():
            if key != "metadata" and isinstance(va, np.ndarray):
                np.testing.assert_array_equal(va, db[key], err_msg=f"{name}.{key}")


def test_ours_to_nir_to_snntorch_identical_spikes(tmp_path):
    from snntorch.import_nir import import_from_nir

    gen = torch.Generator().manual_seed(2)
    m = _shd_like(gen, n_in=700, hidden=32)
    graph = read_nir(write_nir(to_nir(m), tmp_path / "shd.nir"))
    with contextlib.redirect_stdout(io.StringIO()):
        net = import_from_nir(graph)
    x = _inputs(gen, T=50, B=4, n=700)
    with torch.no_grad():
        ours, rec = m(x, record=True)
    theirs = _run_snntorch_graphmodule(net, x)
    assert rec["1"].sum() > 0 and 0 < ours.sum() < ours.numel()
    assert torch.equal(ours, theirs)
    # the recurrence is exercised: without it our output differs
    with torch.no_grad():
        m[1].rec.weight.zero_()
        assert not torch.equal(m(x), ours)


def _snntorch_rleaky_net(gen, n_in=20, hidden=12, n_out=5):
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(n_in, hidden)
            # reset_delay=False: snnTorch's own importer builds this; with the default reset_delay=True, RLeaky's
            # zero reset also discards the input of the step after a spike (it zeroes the whole new membrane)
            self.r = snn.RLeaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden), all_to_all=True,
                                linear_features=hidden, reset_mechanism="zero", reset_delay=False, init_hidden=True)
            self.fc2 = nn.Linear(hidden, n_out)
            self.o = snn.Leaky(beta=torch.full((n_out,), 0.8), threshold=torch.ones(n_out), reset_mechanism="zero",
                               init_hidden=True, output=True)

        def forward(self, x):
            return self.o(self.fc2(self.r(self.fc1(x))))

    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 0 and p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.7)
        net.r.beta.fill_(0.9)
        net.r.threshold.fill_(1.0)
        net.o.beta.fill_(0.8)
        net.o.threshold.fill_(1.0)
    return net


def test_snntorch_rleaky_to_nir_to_ours_identical_spikes(tmp_path):
    from snntorch import utils as sutils
    from snntorch.export_nir import export_to_nir

    gen = torch.Generator().manual_seed(3)
    net = _snntorch_rleaky_net(gen)
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(net, torch.zeros(1, 20), ignore_dims=[0])
    # snnTorch writes the recurrent layer as a flat cycle r.lif <-> r.w_rec (nirtorch flattens the subgraph)
    assert ("r.lif", "r.w_rec") in graph.edges and ("r.w_rec", "r.lif") in graph.edges
    ours = from_nir(read_nir(write_nir(graph, tmp_path / "rleaky.nir")))
    rec = next(m for m in ours if isinstance(m, Recurrent))
    assert rec.rec.bias is not None  # RLeaky's recurrent Linear has a bias: Affine
    x = _inputs(gen, T=40, B=3, n=20)
    sutils.reset(net)
    with torch.no_grad():
        theirs = torch.stack([net(x[t])[0] for t in range(x.shape[0])])
        mine = ours(x)
    assert 0 < theirs.sum() < theirs.numel()
    assert torch.equal(mine, theirs)


def test_malformed_recurrent_subgraphs_and_cycles_are_refused():
    lif = nir.LIF(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2),
                  v_reset=np.zeros(2))
    w = nir.Linear(weight=np.ones((2, 2), dtype=np.float32))
    io_nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
                "output": nir.Output(output_type={"output": np.array([2])})}
    bad_sub = nir.NIRGraph(nodes={**io_nodes, "lif": lif, "w_rec": w},
                           edges=[("input", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    g = nir.NIRGraph(nodes={**io_nodes, "r": bad_sub}, edges=[("input", "r"), ("r", "output")])
    with pytest.raises(ValueError, match="not one recurrent layer"):
        from_nir(g)
    # a cycle through two Linear nodes is not a recurrent layer
    w2 = nir.Linear(weight=np.ones((2, 2), dtype=np.float32))
    cyc = nir.NIRGraph(nodes={**io_nodes, "a": w, "b": w2, "lif": lif},
                       edges=[("input", "a"), ("a", "b"), ("b", "a"), ("a", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="branches or merges|cycle"):
        from_nir(cyc)


def test_recurrent_with_unsupported_neuron_is_refused():
    m = SNN(nn.Linear(4, 3), Recurrent(3, LIF(reset="subtract")), nn.Linear(3, 2), LI())
    with pytest.raises(ValueError, match=r"layer 1.neuron .*reset='subtract'"):
        to_nir(m)


def test_loihi_recurrent_model_exports_quantised_weights_and_delay():
    from neurosynth.arch import build
    from neurosynth.hardware.lava import qat

    torch.manual_seed(0)
    m = build(qat.loihi_rsnn_spec(10, 6, 3)).eval()
    g = to_nir(m, form="snntorch")  # the form that writes weights unchanged
    assert [type(g.nodes[k]).__name__ for k in ("0", "1", "2", "3", "4", "5")] == [
        "Linear", "Delay", "NIRGraph", "Linear", "Delay", "LIF"]
    w = g.nodes["2"].nodes["w_rec"].weight
    np.testing.assert_array_equal(w * 32, np.round(w * 32))  # Loihi's grid
    back = from_nir(g)
    x = (torch.rand(20, 2, 10) < 0.4).float()
    with torch.no_grad():
        assert torch.equal(back(x), m(x))
    assert isinstance(back[1], Delay)


def test_deep_recurrent_model_file_imports_into_snntorch(tmp_path):
    """nir.read sorts nodes by name and nirtorch fails on a recurrent subgraph met before its input: node names are
    zero-padded ("00".."12") so that the sorted order is the layer order."""
    from snntorch.import_nir import import_from_nir

    gen = torch.Generator().manual_seed(4)
    layers = []
    for _ in range(5):
        layers += [nn.Linear(8, 8), LIF(beta=0.9, reset="zero")]
    m = SNN(*layers, nn.Linear(8, 8), Recurrent(8, LIF(beta=0.9, reset="zero")), nn.Linear(8, 3), LIF(reset="zero"))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 1.5)
    graph = read_nir(write_nir(to_nir(m, input_shape=(8,)), tmp_path / "deep.nir"))
    assert list(graph.nodes)[:3] == ["00", "01", "02"] and isinstance(graph.nodes["11"], nir.NIRGraph)
    with contextlib.redirect_stdout(io.StringIO()):
        net = import_from_nir(graph)
    x = (torch.rand(30, 2, 8, generator=gen) < 0.5).float()
    with torch.no_grad():
        ours = m.eval()(x)
    assert torch.equal(_run_snntorch_graphmodule(net, x), ours)
