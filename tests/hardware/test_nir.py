"""NIR export/import: equivalence with snnTorch's NIR importer, exact round trips, refusals."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from neurosynth.hardware.nir import DEFAULT_DT, from_nir, read_nir, to_nir, write_nir  # noqa: E402
from neurosynth.layers import SNN, Delay, SumPool2d  # noqa: E402
from neurosynth.neurons import ALIF, IF, LI, LIF, CubaLIF  # noqa: E402


def _randomise(model: nn.Module, gen: torch.Generator, scale: float = 0.5) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model


def _mlp(gen):
    beta = torch.rand(16, generator=gen) * 0.5 + 0.4  # per-neuron decays
    return _randomise(SNN(nn.Linear(10, 16), LIF(beta=beta, threshold=1.0, reset="zero", shape=16),
                          nn.Linear(16, 8), CubaLIF(alpha=0.7, beta=0.85, threshold=0.8, shape=8)), gen, 0.6)


def _snntorch_run(graph, x: torch.Tensor, per_sample: bool = False) -> torch.Tensor:
    """Run snnTorch's NIR import of ``graph`` on ``x [T, B, ...]`` (prints from snnTorch silenced)."""
    from snntorch import utils as sutils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):
        net = import_from_nir(graph)
    batches = [x[:, b:b + 1] for b in range(x.shape[1])] if per_sample else [x]
    outs = []
    with torch.no_grad():
        for xb in batches:
            sutils.reset(net)
            state, seq = None, []
            for t in range(xb.shape[0]):
                out, state = net(xb[t]) if state is None else net(xb[t], state)
                seq.append(out.reshape(xb.shape[1], -1))
            outs.append(torch.stack(seq))
    return torch.cat(outs, 1)


def _assert_graphs_equal(a, b):
    assert set(a.nodes) == set(b.nodes)
    assert sorted(a.edges) == sorted(b.edges)
    for name in a.nodes:
        da, db = a.nodes[name].to_dict(), b.nodes[name].to_dict()
        assert set(da) == set(db), name
        for key in da:
            va, vb = da[key], db[key]
            if isinstance(va, np.ndarray):
                assert va.dtype == np.asarray(vb).dtype, (name, key)
                assert np.array_equal(va, vb), (name, key)
            elif key != "metadata":
                assert va == vb, (name, key)


def test_mlp_matches_snntorch_import_through_a_file(tmp_path):
    gen = torch.Generator().manual_seed(0)
    model = _mlp(gen)
    path = write_nir(to_nir(model), tmp_path / "net.nir")
    graph = read_nir(path)  # nir.read
    assert [type(graph.nodes[k]).__name__ for k in ("0", "1", "2", "3")] == ["Affine", "LIF", "Affine", "CubaLIF"]
    assert graph.nodes["1"].tau.shape == (16,) and len(np.unique(graph.nodes["1"].tau)) == 16  # per-neuron
    x = torch.rand(30, 4, 10, generator=gen) * 1.5
    with torch.no_grad():
        ours = model(x)
    theirs = _snntorch_run(graph, x)
    assert 0 < ours.sum() < ours.numel()  # the comparison is not vacuous
    assert torch.equal(ours, theirs)


def test_conv_net_matches_snntorch_import(tmp_path):
    gen = torch.Generator().manual_seed(1)
    model = _randomise(SNN(nn.Conv2d(2, 4, 3, padding=1), LIF(beta=0.8, threshold=0.5, reset="zero", shape=(4, 8, 8)),
                           nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 5), LIF(beta=0.7, reset="zero", shape=5)), gen)
    graph = read_nir(write_nir(to_nir(model, input_shape=(2, 8, 8)), tmp_path / "conv.nir"))
    assert graph.nodes["3"].start_dim == 0  # NIR dims exclude the batch axis
    x = (torch.rand(20, 3, 2, 8, 8, generator=gen) < 0.3).float()
    with torch.no_grad():
        ours = model(x)
    # snnTorch 1.0 imports NIR Flatten(start_dim=0) as torch Flatten(0, -1), which also flattens the batch axis,
    # so its network only runs one sample at a time (documented in docs/hardware_nir_energy.md).
    theirs = _snntorch_run(graph, x, per_sample=True)
    assert 0 < ours.sum() < ours.numel()
    assert torch.equal(ours, theirs)


def _all_layers_model(gen):
    return _randomise(SNN(
        nn.Conv2d(2, 3, 3, padding=1, bias=False), CubaLIF(alpha=0.6, beta=0.9, threshold=0.4, shape=(3, 6, 6)),
        SumPool2d(2), IF(threshold=0.7, reset="zero", shape=(3, 3, 3)),
        nn.Conv2d(3, 4, 3, padding=1), LIF(beta=0.75, threshold=0.3, reset="zero", shape=(4, 3, 3)),
        nn.AvgPool2d(3), nn.Flatten(), nn.Linear(4, 6, bias=False), LIF(beta=0.5, reset="zero", shape=6),
        nn.Dropout(0.2), nn.Linear(6, 3), Delay(2), LI(beta=torch.tensor([0.9, 0.8, 0.95]), shape=3),
    ), gen).eval()


@pytest.mark.parametrize("form", ["portable", "snntorch", "norse"])
def test_model_to_nir_to_model_is_identical(tmp_path, form):
    gen = torch.Generator().manual_seed(2)
    model = _all_layers_model(gen)
    graph = read_nir(write_nir(to_nir(model, input_shape=(2, 6, 6), form=form), tmp_path / "all.nir"))
    kinds = [type(n).__name__ for k, n in sorted(graph.nodes.items()) if k not in ("input", "output")]
    linear = "Linear" if form == "snntorch" else "Affine"  # folded into: written as an Affine with zero bias
    assert sorted(kinds) == sorted(["Conv2d", "CubaLIF", "SumPool2d", "IF", "Conv2d", "LIF", "AvgPool2d", "Flatten",
                                    linear, "LIF", "Affine", "Delay", "LI"])  # Dropout skipped
    back = from_nir(graph)
    x = torch.rand(12, 2, 2, 6, 6, generator=gen) * 2
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    assert back[0].bias is None  # bias=False survives through metadata
    ours = {k: v for k, v in model.state_dict().items()}
    theirs = back.state_dict()
    assert len(ours) == len(theirs)
    for (ka, va), (kb, vb) in zip(ours.items(), theirs.items()):
        assert va.shape == vb.shape and torch.equal(va, vb), (ka, kb)


@pytest.mark.parametrize("form", ["portable", "snntorch", "norse"])
def test_nir_to_model_to_nir_round_trips_exactly(tmp_path, form):
    gen = torch.Generator().manual_seed(3)
    g1 = read_nir(write_nir(to_nir(_all_layers_model(gen), input_shape=(2, 6, 6), form=form), tmp_path / "a.nir"))
    back = from_nir(g1)
    assert back.arch_spec["input_shape"] == [2, 6, 6]  # the imported model can be saved as a run directory
    g2 = to_nir(back, form=form)  # input shape from the imported graph
    _assert_graphs_equal(g1, g2)
    g3 = read_nir(write_nir(g2, tmp_path / "b.nir"))
    _assert_graphs_equal(g1, g3)


def test_foreign_float64_time_constants_come_back_to_float32_precision():
    tau = np.array([5e-4, 2e-3, 1e-3])
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([2])}),
        nir.Affine(weight=np.ones((3, 2), dtype=np.float32), bias=np.zeros(3, dtype=np.float32)),
        nir.LIF(tau=tau, r=tau / DEFAULT_DT, v_leak=np.zeros(3), v_threshold=np.ones(3)),
        nir.Output(output_type={"output": np.array([3])}),
    )
    model = from_nir(graph)
    lif = [m for m in model if isinstance(m, LIF)][0]
    assert torch.allclose(lif.beta, torch.tensor([0.8, 0.95, 0.9]), rtol=0, atol=1e-7)
    back = to_nir(model)
    lif_node = [n for n in back.nodes.values() if isinstance(n, nir.LIF)][0]
    np.testing.assert_allclose(lif_node.tau, tau, rtol=1e-5)


def test_metadata_records_dt_reset_and_discretisation(tmp_path):
    gen = torch.Generator().manual_seed(4)
    model = _mlp(gen)
    graph = read_nir(write_nir(to_nir(model, dt=1e-3), tmp_path / "m.nir"))
    assert float(graph.metadata["dt"]) == 1e-3
    assert "1 - dt/tau" in str(graph.metadata["discretisation"])
    lif = graph.nodes["1"]
    assert lif.metadata["reset"] == "zero" and float(lif.metadata["dt"]) == 1e-3
    np.testing.assert_allclose(lif.tau, 1e-3 / (1 - model[1].beta.double().numpy()))
    np.testing.assert_array_equal(lif.v_reset, 0)
    # from_nir reads dt back from the metadata, so the decays are recovered exactly
    back = from_nir(graph)
    assert torch.equal(back[1].beta, model[1].beta)
    assert torch.equal(back[3].alpha, model[3].alpha)


def test_subtract_reset_is_refused_unless_asked_for():
    model = SNN(nn.Linear(4, 3), LIF(beta=0.9, reset="subtract"))
    with pytest.raises(ValueError, match=r"layer 1 .*reset='subtract'.*reset='zero'"):
        to_nir(model)
    graph = to_nir(model, allow_nonstandard_reset=True)
    node = graph.nodes["1"]
    assert node.metadata["reset"] == "subtract" and np.all(node.v_reset == 0)
    back = from_nir(graph)
    assert back[1].reset == "subtract"
    x = torch.rand(15, 2, 4) * 2
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_unsupported_layers_and_graphs_are_refused():
    with pytest.raises(ValueError, match="ALIF"):
        to_nir(SNN(nn.Linear(4, 3), ALIF(reset="zero")))
    with pytest.raises(ValueError, match=r"layer 1 \(ReLU\) has no NIR exporter; supported: .*Linear"):
        to_nir(SNN(nn.Linear(4, 3), nn.ReLU()))
    with pytest.raises(ValueError, match="input_shape"):
        to_nir(SNN(nn.Conv2d(1, 2, 3), LIF(reset="zero")))
    with pytest.raises(ValueError, match="grouped Conv2d"):
        to_nir(SNN(nn.Conv2d(4, 4, 3, groups=2), LIF(reset="zero")), input_shape=(4, 6, 6))
    branchy = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([2])}),
               "a": nir.Linear(weight=np.ones((2, 2), dtype=np.float32)),
               "b": nir.Linear(weight=np.ones((2, 2), dtype=np.float32)),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(ValueError, match="feed-forward"):
        from_nir(branchy)
    leaky = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([2])}),
        nir.LIF(tau=np.ones(2) * 1e-3, r=np.ones(2) * 10, v_leak=np.ones(2), v_threshold=np.ones(2)),
        nir.Output(output_type={"output": np.array([2])}))
    with pytest.raises(ValueError, match="v_leak"):
        from_nir(leaky)


def test_unreadable_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_nir(tmp_path / "missing.nir")
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable NIR file"):
        read_nir(bad)


@pytest.mark.slow
def test_trained_digits_model_keeps_its_accuracy_in_snntorch(tmp_path):
    """Train on digits (zero reset), export to a NIR file, run it in snnTorch: identical test predictions."""
    from neurosynth.apps.cli.train import train_digits
    from neurosynth.datasets.digits import digits_loaders
    from neurosynth.rundir import load_run

    train_digits({"out": str(tmp_path / "run"), "epochs": 3, "hidden": "64", "reset": "zero",
                            "no_progress": True, "seed": 0, "T": 20})
    model, _, _ = load_run(tmp_path / "run")
    graph = read_nir(write_nir(to_nir(model), tmp_path / "digits.nir"))
    _, test = digits_loaders(T=20, seed=0)
    ours, theirs, labels = [], [], []
    for x, y in test:
        with torch.no_grad():
            ours.append(model(x).sum(0).argmax(1))
        theirs.append(_snntorch_run(graph, x).sum(0).argmax(1))
        labels.append(y)
    ours, theirs, labels = torch.cat(ours), torch.cat(theirs), torch.cat(labels)
    acc_ours = (ours == labels).float().mean().item()
    acc_theirs = (theirs == labels).float().mean().item()
    print(f"digits test accuracy: neurosynth {acc_ours:.4f}, snnTorch via NIR {acc_theirs:.4f}")
    assert acc_ours > 0.7  # (a fresh encoding of the test set, so not exactly the training run's number)
    assert torch.equal(ours, theirs)


def test_loihi_family_model_exports_its_quantised_weights_and_delays():
    qat = pytest.importorskip("neurosynth.hardware.lava.qat")
    from neurosynth.arch import build

    torch.manual_seed(0)
    model = build(qat.loihi_mlp_spec(12, [10], 4, alpha=0.5)).eval()
    graph = to_nir(model, form="snntorch")  # the form that writes weights unchanged
    kinds = [type(graph.nodes[str(i)]).__name__ for i in range(len(graph.nodes) - 2)]
    assert kinds == ["Linear", "Delay", "CubaLIF", "Linear", "Delay", "CubaLIF"]
    w = graph.nodes["0"].weight
    assert np.array_equal(w * 64, np.round(w * 64))  # the 1/64 weight grid, not the float shadow weights
    back = from_nir(graph)
    x = (torch.rand(16, 5, 12, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
