"""NIR export forms (portable / snntorch / norse): where the factor tau/dt goes, exact round trips for every form,
NIR's own equation reproduced by a reference interpreter, foreign folded graphs, and which readers run a file.

What the foreign readers do is measured by ``benchmarks/nir_interop.py`` (docs/nir_interop.md); these tests check
what our side guarantees, without those libraries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from neurosynth.hardware.nir import (  # noqa: E402
    NIR_FORMS,
    from_nir,
    identical_readers,
    read_nir,
    to_nir,
    write_nir,
)
from neurosynth.layers import SNN, Recurrent, SumPool2d  # noqa: E402
from neurosynth.neurons import LIF, CubaLIF  # noqa: E402

FORMS = ["portable", "snntorch", "norse"]
DT = 1e-4


def _model(gen: torch.Generator) -> SNN:
    """Per-neuron-tau LIF, bias-free Linear into a one-tau LIF, a CubaLIF and a recurrent LIF layer."""
    lins = [nn.Linear(10, 16), nn.Linear(16, 12, bias=False), nn.Linear(12, 8), nn.Linear(8, 5)]
    rec = Recurrent(8, LIF(beta=0.85, threshold=0.9, reset="zero", shape=8))
    model = SNN(lins[0], LIF(beta=torch.rand(16, generator=gen) * 0.4 + 0.5, threshold=1.0, reset="zero", shape=16),
                lins[1], LIF(beta=0.8, threshold=1.0, reset="zero", shape=12),
                lins[2], rec, lins[3], CubaLIF(alpha=0.7, beta=0.9, threshold=0.8, reset="zero", shape=5))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
    return model.eval()


def _x(gen, T=25, B=3, n=10):
    return (torch.rand(T, B, n, generator=gen) < 0.3).float()


def test_forms_put_the_factor_where_they_say():
    gen = torch.Generator().manual_seed(0)
    model = _model(gen)
    r_of = {}
    for form in FORMS:
        g = to_nir(model, form=form)
        assert g.metadata["form"] == form
        tau1, tau3 = g.nodes["1"].tau, g.nodes["3"].tau
        r_of[form] = (g.nodes["1"].r, g.nodes["3"].r, g.nodes["5"].nodes["lif"].r)
        w = model[2].weight.detach().numpy()
        if form == "snntorch":
            assert np.allclose(g.nodes["3"].r, tau3 / DT) and type(g.nodes["2"]).__name__ == "Linear"
            np.testing.assert_array_equal(g.nodes["2"].weight, w)
        else:  # one-tau layer: r = 1, factor in the weights (a bias-free Affine)
            assert np.array_equal(g.nodes["3"].r, np.ones(12)) and type(g.nodes["2"]).__name__ == "Affine"
            np.testing.assert_allclose(g.nodes["2"].weight, w * (tau3[:, None] / DT), rtol=1e-6)
            assert not g.nodes["2"].bias.any() and int(g.nodes["2"].metadata["bias"]) == 0
            assert np.array_equal(g.nodes["5"].nodes["lif"].r, np.ones(8))  # recurrent: w_rec scaled too
        per_neuron_folded = form == "norse"  # tau varies over layer 1: only the norse form folds it
        assert np.allclose(g.nodes["1"].r, 1.0 if per_neuron_folded else tau1 / DT)
        cuba = g.nodes["7"]  # CubaLIF keeps r = tau_mem/dt, w_in = tau_syn/dt in every form
        assert np.allclose(cuba.r, cuba.tau_mem / DT) and np.allclose(cuba.w_in, cuba.tau_syn / DT)
    assert sorted(NIR_FORMS.names()) == sorted(FORMS)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_round_trips_exactly_through_a_file(tmp_path, form):
    gen = torch.Generator().manual_seed(1)
    model = _model(gen)
    g1 = read_nir(write_nir(to_nir(model, form=form), tmp_path / "m.nir"))
    back = from_nir(g1)
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(va, vb), (ka, kb)  # unscaled weights restored bit for bit from metadata
    x = _x(gen)
    with torch.no_grad():
        ours, theirs = model(x), back(x)
    assert 0 < ours.sum() < ours.numel()
    assert torch.equal(ours, theirs)
    g2 = to_nir(back, form=form)
    for name, node in g1.nodes.items():
        if hasattr(node, "weight"):
            np.testing.assert_array_equal(node.weight, g2.nodes[name].weight)


def _nir_reference(graph, x: np.ndarray) -> np.ndarray:
    """NIR's equations stepped with forward Euler (dt from metadata) in float64, one sample at a time, as an
    independent reader would: Affine; LIF ``v += dt/tau (-v + r I)``, spike ``v > v_th``, ``v = v_reset``."""
    dt = float(graph.metadata["dt"])
    order = ["input"]
    succ = {a: b for a, b in graph.edges}
    while order[-1] in succ:
        order.append(succ[order[-1]])
    out = []
    for b in range(x.shape[1]):
        state: dict = {}
        seq = []
        for t in range(x.shape[0]):
            h = x[t, b].astype(np.float64)
            for name in order:
                n = graph.nodes[name]
                kind = type(n).__name__
                if kind == "Affine":
                    h = n.weight.astype(np.float64) @ h + n.bias
                elif kind == "LIF":
                    v = state.get(name, np.zeros_like(h))
                    v = v + dt / n.tau * (-v + n.r * h)
                    s = (v > n.v_threshold).astype(np.float64)
                    state[name] = np.where(s > 0, n.v_reset, v)
                    h = s
            seq.append(h)
        out.append(np.stack(seq))
    return np.stack(out, 1)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_is_what_nirs_equation_says(form):
    """Each form, read literally (no reader conventions), gives our spikes: the forms differ only in where the
    factor tau/dt sits. (float64 reference vs our float32: the check is on spike trains, seeded.)"""
    gen = torch.Generator().manual_seed(2)
    model = SNN(nn.Linear(10, 16), LIF(beta=torch.rand(16, generator=gen) * 0.3 + 0.6, threshold=1.0, reset="zero",
                                       shape=16), nn.Linear(16, 6), LIF(beta=0.85, threshold=1.0, reset="zero", shape=6))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
    x = _x(gen, T=20, B=4)
    with torch.no_grad():
        ours = model(x).numpy()
    ref = _nir_reference(to_nir(model, form=form), x.numpy())
    assert 0 < ours.sum() < ours.size
    np.testing.assert_array_equal(ref, ours)


def test_a_foreign_folded_graph_imports_with_the_factor_moved_into_the_weights():
    """A graph with r = 1 and no neurosynth metadata (what Norse or any r = 1 writer produces)."""
    gen = torch.Generator().manual_seed(3)
    w1, b1 = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32), np.zeros(6, np.float32)
    tau = np.full(6, 5e-4)  # beta = 0.8 at dt = 1e-4
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}), "a": nir.Affine(w1, b1),
                            "lif": nir.LIF(tau=tau, r=np.ones(6), v_leak=np.zeros(6), v_threshold=np.full(6, 0.2),
                                           v_reset=np.zeros(6)),
                            "output": nir.Output(output_type={"output": np.array([6])})},
                     edges=[("input", "a"), ("a", "lif"), ("lif", "output")])
    m = from_nir(g, dt=1e-4)
    np.testing.assert_allclose(m[0].weight.detach().numpy(), w1 * 0.2, rtol=1e-6)  # r dt/tau = 0.2
    assert torch.allclose(m[1].beta, torch.tensor(0.8))
    x = _x(gen, T=15, B=2, n=4)
    with torch.no_grad():
        ours = m(x).numpy()
    assert np.array_equal(ours, _nir_reference(nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata={"dt": 1e-4}),
                                               x.numpy()))


def test_a_neuron_with_extra_gain_and_no_weights_before_it_is_refused():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                            "lif": nir.LIF(tau=np.full(3, 5e-4), r=np.ones(3), v_leak=np.zeros(3),
                                           v_threshold=np.ones(3), v_reset=np.zeros(3)),
                            "output": nir.Output(output_type={"output": np.array([3])})},
                     edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="no Linear/Affine/Conv2d precedes it"):
        from_nir(g, dt=1e-4)


def test_the_norse_form_refuses_a_neuron_with_nothing_to_fold_into():
    model = SNN(nn.Conv2d(1, 2, 3, padding=1), LIF(beta=0.8, reset="zero", shape=(2, 4, 4)), SumPool2d(2),
                LIF(beta=0.9, reset="zero", shape=(2, 2, 2)))
    with pytest.raises(ValueError, match="follows SumPool2d"):
        to_nir(model, (1, 4, 4), form="norse")
    g = to_nir(model, (1, 4, 4))  # portable: that layer keeps r = tau/dt
    assert np.allclose(g.nodes["3"].r, g.nodes["3"].tau / DT) and np.allclose(g.nodes["1"].r, 1.0)


def test_identical_readers_follows_the_measured_matrix():
    gen = torch.Generator().manual_seed(4)
    uniform = SNN(nn.Linear(10, 8), LIF(beta=0.8, reset="zero", shape=8), nn.Linear(8, 4),
                  CubaLIF(alpha=0.7, beta=0.9, reset="zero", shape=4))
    assert identical_readers(to_nir(uniform)) == {"snnTorch 1.0.0": None, "Norse 1.1.0": None}
    assert "r != 1" in identical_readers(to_nir(uniform, form="snntorch"))["Norse 1.1.0"]
    assert identical_readers(to_nir(uniform, form="snntorch"))["snnTorch 1.0.0"] is None
    per_neuron = SNN(nn.Linear(10, 8), LIF(beta=torch.rand(8, generator=gen) * 0.5 + 0.4, reset="zero", shape=8))
    portable = identical_readers(to_nir(per_neuron))
    assert portable["snnTorch 1.0.0"] is None and "r != 1" in portable["Norse 1.1.0"]
    norse = identical_readers(to_nir(per_neuron, form="norse"))
    assert norse["Norse 1.1.0"] is None and "per-neuron tau" in norse["snnTorch 1.0.0"]
    avg = SNN(nn.Conv2d(1, 2, 3, padding=1), LIF(beta=0.8, reset="zero", shape=(2, 4, 4)), nn.AvgPool2d(2))
    assert "AvgPool2d" in identical_readers(to_nir(avg, (1, 4, 4)))["Norse 1.1.0"]
    assert "dt = 0.001" in identical_readers(to_nir(uniform, dt=1e-3))["snnTorch 1.0.0"]
    from neurosynth.neurons import IF

    with_if = identical_readers(to_nir(SNN(nn.Linear(4, 3), IF(threshold=1.0, reset="zero", shape=3))))
    assert "IF" in with_if["snnTorch 1.0.0"] and "not measured" in with_if["Norse 1.1.0"]


def test_read_nir_accepts_a_batch_axis_in_the_input_type(tmp_path):
    """Norse's and Sinabs' exporters record the sample's batch axis ([1, N]); nir's type check rejects it."""
    w = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 4])}), "a": nir.Affine(w, np.zeros(3)),
                            "output": nir.Output(output_type={"output": np.array([1, 3])})},
                     edges=[("input", "a"), ("a", "output")], type_check=False)
    nir.write(tmp_path / "b.nir", g)
    with pytest.raises(ValueError, match="Type inference"):
        nir.read(tmp_path / "b.nir")
    m = from_nir(read_nir(tmp_path / "b.nir"))
    assert m.nir_input_shape == [4]
    np.testing.assert_array_equal(m[0].weight.detach().numpy(), w)


@pytest.mark.parametrize("form", FORMS)
def test_a_non_leaky_lif_keeps_r_equal_tau_over_dt_and_round_trips(form):
    """beta = 1 gives tau = r = inf: nothing finite to fold, and r dt/tau = inf/inf must read back as 1."""
    gen = torch.Generator().manual_seed(5)
    model = SNN(nn.Linear(6, 5), LIF(beta=1.0, threshold=1.0, reset="zero", shape=5),
                nn.Linear(5, 3), CubaLIF(alpha=1.0, beta=0.9, threshold=1.0, reset="zero", shape=3)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
    g = to_nir(model, form=form)
    assert np.all(np.isinf(g.nodes["1"].r)) and np.all(np.isfinite(g.nodes["0"].weight))
    back = from_nir(g)
    x = _x(gen, T=20, B=3, n=6)
    with torch.no_grad():
        ours, theirs = model(x), back(x)
    assert 0 < ours.sum() and torch.equal(ours, theirs)
