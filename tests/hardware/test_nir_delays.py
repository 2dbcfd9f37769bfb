"""Learned per-synapse delays in NIR: the expansion (one ``Delay`` + ``Linear`` branch per delay value, summed),
read back by our importer into an identical network, with delays in seconds and dt in the metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from neurosynth.delays import DelayedLinear  # noqa: E402
from neurosynth.hardware.nir import from_nir, identical_readers, read_nir, to_nir, write_nir  # noqa: E402
from neurosynth.layers import SNN  # noqa: E402
from neurosynth.neurons import LIF, CubaLIF  # noqa: E402


def _net(bias=False):
    g = torch.Generator().manual_seed(0)
    net = SNN(DelayedLinear(12, 8, max_delay=5, bias=bias, generator=g), CubaLIF(alpha=0.7, beta=0.9, reset="zero"),
              DelayedLinear(8, 4, max_delay=3, generator=g), LIF(beta=0.85, reset="zero"))
    with torch.no_grad():
        net[0].weight.mul_(4)
        net[2].weight.mul_(4)
    return net.eval()


def _x(T=30, B=3, N=12):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(T, B, N, generator=g) < 0.4).float()


def test_expansion_has_one_branch_per_delay_value():
    net = _net()
    graph = to_nir(net, dt=1e-3)
    sub = graph.nodes["0"]
    assert isinstance(sub, nir.NIRGraph) and sub.metadata["neurosynth_layer"] == "delayed_linear"
    d = net[0].hard_delays().numpy()
    values = sorted(int(v) for v in np.unique(d))
    delays = {k: v for k, v in sub.nodes.items() if isinstance(v, nir.Delay)}
    assert sorted(int(v.metadata["steps"]) for v in delays.values()) == [v for v in values if v > 0]
    for node in delays.values():  # element-wise, in seconds
        assert node.delay.shape == (12,)
        np.testing.assert_allclose(node.delay, node.metadata["steps"] * 1e-3)
    weights = [v for v in sub.nodes.values() if isinstance(v, nir.Linear)]
    assert len(weights) == len(values)
    np.testing.assert_array_equal(np.sum([w.weight for w in weights], axis=0), net[0].weight.detach().numpy())
    assert all(r is not None for r in identical_readers(graph).values())  # no foreign reader runs Delay


@pytest.mark.parametrize("bias,form", [(False, "portable"), (True, "portable"), (False, "snntorch")])
def test_round_trip_through_a_file_is_identical(tmp_path, bias, form):
    net = _net(bias)
    graph = read_nir(write_nir(to_nir(net, dt=1e-3, form=form), tmp_path / "net.nir"))
    back = from_nir(graph).eval()
    assert isinstance(back[0], DelayedLinear) and back[0].max_delay == 5
    np.testing.assert_array_equal(back[0].hard_delays().numpy(), net[0].hard_delays().numpy())
    x = _x()
    torch.testing.assert_close(back(x), net(x), rtol=0, atol=0)
    # and NIR -> model -> NIR gives the same graph
    g2 = to_nir(back, dt=1e-3)
    for a, b in zip(sorted(graph.nodes["0"].nodes.items()), sorted(g2.nodes["0"].nodes.items())):
        assert a[0] == b[0] and type(a[1]) is type(b[1])


def test_importer_refuses_two_delays_on_one_synapse():
    graph = to_nir(_net(), dt=1e-3)
    sub = graph.nodes["0"]
    ws = [k for k, v in sub.nodes.items() if isinstance(v, nir.Linear)]
    sub.nodes[ws[1]].weight[:] = 1.0  # every synapse now also has weight on the second branch
    with pytest.raises(ValueError, match="delay branches"):
        from_nir(graph)


def test_norse_form_refuses_a_neuron_after_delays():
    """The 'norse' form folds tau/dt into the weights before every LIF; behind a delay expansion there is no single
    weight node to fold into, so it refuses (the default form keeps r = tau/dt there)."""
    with pytest.raises(ValueError, match="export with the default form"):
        to_nir(SNN(DelayedLinear(4, 3, max_delay=2), LIF(reset="zero")), form="norse")


def test_loihi_family_with_delays_round_trips():
    """A subclass (the Loihi QDelayedLinear, weights on the 8-bit grid) exports the weights it computes with."""
    from neurosynth.arch import build
    from neurosynth.hardware.targets import loihi_qat as qat

    torch.manual_seed(0)
    net = build(qat.loihi_mlp_spec(12, [8], 4, max_delay=4)).eval()
    back = from_nir(to_nir(net)).eval()
    x = _x()
    torch.testing.assert_close(back(x), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["delays", "recurrent"])
def test_loihi_neuron_bias_is_an_identity_affine_and_round_trips(tmp_path, kind):
    """The Loihi neuron bias (``QBias``, in the spoken-digits Loihi recipe's net) exports as an ``Affine`` with the
    identity matrix and the grid bias it computes with; in every form the file reads back into a network with the
    same outputs, and the bias matters (zeroing it in the file changes them)."""
    from neurosynth.arch import build
    from neurosynth.hardware.targets import loihi_qat as qat

    torch.manual_seed(0)
    spec = (qat.loihi_mlp_spec(12, [8], 4, max_delay=4, bias=True, readout="voltage") if kind == "delays" else
            qat.loihi_rsnn_spec(12, 8, 4, bias=True, readout="voltage", layers=2))
    net = build(spec).eval()
    biases = [m for m in net if isinstance(m, qat.QBias)]
    with torch.no_grad():
        for m in biases:
            m.bias.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    x = _x()
    for form in ("portable", "snntorch", "norse"):
        graph = read_nir(write_nir(to_nir(net, form=form), tmp_path / f"{kind}_{form}.nir"))
        affines = [v for v in graph.nodes.values() if v.metadata.get("neurosynth_layer") == "neuron_bias"]
        assert len(affines) == len(biases)
        if form == "snntorch":  # unfolded: the identity and the effective (grid) bias themselves
            for node, m in zip(affines, biases):
                np.testing.assert_array_equal(node.weight, np.eye(8, dtype=np.float32))
                np.testing.assert_array_equal(node.bias, m.effective_bias().detach().numpy())
                assert np.all(node.bias * 64 == np.round(node.bias * 64))
        torch.testing.assert_close(from_nir(graph).eval()(x), net(x), rtol=0, atol=0)
    graph = to_nir(net, form="snntorch")
    for node in graph.nodes.values():
        if node.metadata.get("neurosynth_layer") == "neuron_bias":
            node.bias[:] = 0.0
    assert not torch.equal(from_nir(graph).eval()(x), net(x))
