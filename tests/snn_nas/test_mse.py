"""Tests of MSE-NAS: the multi-scale space, the builder (ArchSpec kind "mse"), the RDM fitnesses, evaluators."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurosynth.arch import build
from snn_nas.engine import EVALUATORS, Archive, Runner, spec_hash
from snn_nas.mse import builder  # noqa: F401  registers the "mse" kind
from snn_nas.mse.builder import EdgeOp, MotifCell
from snn_nas.mse.data import Task, fitness_batch
from snn_nas.mse.evaluator import RDMFitnessEvaluator, count_synops
from snn_nas.mse.fitness import (
    FITNESSES,
    hamming_rdm,
    label_rdm,
    network_rdm,
    pattern_dissimilarity,
    rdm_agreement,
    rdm_correlation,
    readout_rdm_capacity,
    snasnet_logdet,
)
from snn_nas.mse.space import MSESpace, MSESpaceConfig, validate_spec
from snn_nas.strategies import STRATEGIES

SMALL = {"widths": [4, 8], "stem_widths": [4], "depth": [1, 3]}


def space(shape=(1, 8, 8), **kw):
    return MSESpace(MSESpaceConfig.from_dict({"input_shape": list(shape), **SMALL, **kw}))


def tiny_task(shape=(1, 8, 8), n=40, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.rand(T, n, *shape, generator=g) * 0.3
    x[..., 0] += y.float().view(1, n, *([1] * (len(shape) - 1))) * 0.25  # class-dependent signal
    return Task("tiny", x, y, x[:, :20], y[:20], 4)


# ---- space -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 8), (64,), (2, 16, 16)])
def test_space_samples_valid_json_specs_and_operators_stay_valid(shape):
    sp = space(shape)
    rng = np.random.default_rng(0)
    pop = [sp.sample(rng) for _ in range(6)]
    for s in pop:
        assert sp.validate(json.loads(json.dumps(s))) == s
        assert s["kind"] == "mse" and s["plugin"] == "snn_nas.mse.builder"
    for _ in range(300):
        a, b = pop[int(rng.integers(6))], pop[int(rng.integers(6))]  # a may be b: no aliasing bugs
        child = sp.mutate(sp.crossover(a, b, rng), rng)
        sp.validate(child)
        pop[int(rng.integers(6))] = child
    if len(shape) == 1:
        assert not any(c["downsample"] for s in pop for c in s["cells"])


def test_space_sampling_is_reproducible_and_covers_all_scales():
    sp = space()
    a = [sp.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(1)
    specs = [sp.sample(rng) for _ in range(200)]
    nodes = [n for s in specs for c in s["cells"] for n in c["motif"]["nodes"]]
    assert {n["neuron"] for n in nodes} == set(sp.cfg.neurons) >= {"lif", "cubalif", "alif", "if"}
    assert {n["sign"] for n in nodes} == {"exc", "inh"} and {n["kernel"] for n in nodes} == {1, 3, 5}
    assert {c["motif"]["template"] for s in specs for c in s["cells"]} == {
        "ff_chain", "lateral_inhibition", "feedback", "skip", "composed"}
    assert {e[2] for s in specs for c in s["cells"] for e in c["motif"]["edges"]} == {"ff", "lat", "fb", "skip"}
    assert any(len(c["inputs"]) > 1 for s in specs for c in s["cells"])  # long-range skips
    assert any(c["downsample"] for s in specs for c in s["cells"])
    assert {len(s["cells"]) for s in specs} == {1, 2, 3}


def test_custom_registered_neuron_is_searchable():
    from neurosynth.neurons import NEURONS, NeuronModel, register_neuron

    if "mse_test_quadratic" not in NEURONS:
        @register_neuron("mse_test_quadratic")
        class Quad(NeuronModel):
            defaults = {"beta": 0.9, "threshold": 1.0}

            def charge(self, x, state, p):
                return state._replace(v=p.beta * state.v + x + 0.1 * state.v * state.v)

    sp = space(neurons=["mse_test_quadratic"])
    spec = sp.sample(np.random.default_rng(0))
    assert all(n["neuron"] == "mse_test_quadratic" for c in spec["cells"] for n in c["motif"]["nodes"])
    out = build(spec)(torch.rand(3, 2, 1, 8, 8))
    assert out.shape == (3, 2, 10)


@pytest.mark.parametrize("mutate,match", [
    (lambda s: s["cells"][0]["motif"]["nodes"][0].update(neuron="nope"), "nodes\\[0\\].neuron 'nope'"),
    (lambda s: s["cells"][0]["motif"]["nodes"][0].update(neuron="li"), "spiking"),
    (lambda s: s["cells"][0]["motif"]["nodes"][0].update(sign="both"), "sign must be one of"),
    (lambda s: s["cells"][0]["motif"]["nodes"][0].update(kernel=4), "kernel must be an odd"),
    (lambda s: s["cells"][0].update(inputs=[1]), "cells\\[0\\].inputs"),
    (lambda s: s["cells"][0]["motif"]["edges"].append([1, 1, "fb"]), "fb needs 1 <= dst < src"),
    (lambda s: s["cells"][0]["motif"]["edges"].append([0, 1, "wormhole"]), "type in"),
    (lambda s: s["cells"][0]["motif"].update(outputs=[9]), "outputs must list"),
    (lambda s: s.update(num_classes=1), "num_classes"),
    (lambda s: s["cells"][0].update(width=True), "width must be int"),
])
def test_validate_names_the_bad_field(mutate, match):
    s = space().sample(np.random.default_rng(3))
    mutate(s)
    with pytest.raises(ValueError, match=match):
        validate_spec(s)
    with pytest.raises(ValueError, match=match):
        build(s)


def test_dense_spec_cannot_downsample():
    s = space((64,)).sample(np.random.default_rng(0))
    s["cells"][0]["downsample"] = True
    with pytest.raises(ValueError, match="dense"):
        validate_spec(s)


def test_space_config_is_validated():
    with pytest.raises(ValueError, match="unknown MSE space fields"):
        MSESpace({"widthz": [4]})
    with pytest.raises(ValueError, match="not registered spiking neurons"):
        MSESpace({"neurons": ["lif", "li"]})
    with pytest.raises(ValueError, match="kernels must be odd"):
        MSESpace({"kernels": [2]})


# ---- builder -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 8), (64,)])
def test_build_from_json_is_deterministic_and_records_every_neuron(shape, tmp_path):
    from neurosynth.rundir import RunDir, load_run
    from snn_nas.mse.evaluator import build_seeded

    spec = space(shape).sample(np.random.default_rng(2))
    spec = json.loads(json.dumps(spec))
    m1, m2 = build_seeded(spec, 5), build_seeded(spec, 5)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    x = (torch.rand(4, 3, *shape, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    m1.eval()
    out, rec = m1(x, record=True)
    assert out.shape == (4, 3, 10)
    n_neurons = 1 + sum(len(c["motif"]["nodes"]) for c in spec["cells"])
    assert len(rec) == n_neurons and "stem" in rec
    assert all(set(torch.unique(r).tolist()) <= {0.0, 1.0} for r in rec.values())
    rd = RunDir(tmp_path / "run")
    rd.save_model(m1, spec)
    m3, spec3, _ = load_run(tmp_path / "run")
    assert spec3 == spec
    torch.testing.assert_close(m3(x), out)


def test_wrong_input_shape_is_a_clear_error():
    m = build(space().sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"expects input \[T, B, 1, 8, 8\]"):
        m(torch.rand(3, 2, 64))


def test_edge_signs_follow_dale_and_lateral_edges_inhibit():
    x = torch.randn(16, 4, 5, 5)
    assert (EdgeOp(True, 4, 4, 3, +1.0)(x) >= 0).all()
    assert (EdgeOp(True, 4, 4, 3, -1.0)(x) <= 0).all()
    motif = {"template": "composed", "nodes": [{"neuron": "lif", "sign": "exc", "kernel": 1}] * 2,
             "edges": [[0, 1, "ff"], [0, 2, "ff"], [1, 2, "lat"]], "outputs": [2]}
    cell = MotifCell(False, 4, motif)
    assert cell.ops["1_2_lat"].sign == -1.0 and cell.ops["0_1_ff"].sign == 1.0


def test_motif_semantics_skip_and_within_step_feedback():
    """Cell output = x2 + fb(s2) on node 1 when outputs=[1] ... checked against a hand computation."""
    torch.manual_seed(0)
    nodes = [{"neuron": "if", "sign": "exc", "kernel": 1}, {"neuron": "lif", "sign": "inh", "kernel": 1}]
    motif = {"template": "feedback", "nodes": nodes,
             "edges": [[0, 1, "ff"], [1, 2, "ff"], [0, 2, "skip"], [2, 1, "fb"]], "outputs": [1, 2]}
    cell = MotifCell(False, 6, motif).train()
    x0 = torch.randn(5, 3, 6)
    rec = {}
    out = cell(x0, rec, "c")
    from neurosynth.layers import apply_flat

    s1 = cell.neurons[0](apply_flat(cell.ops["0_1_ff"], x0))
    s2 = cell.neurons[1](apply_flat(cell.ops["1_2_ff"], s1) + x0)  # skip adds the input unchanged
    fb = apply_flat(cell.ops["2_1_fb"], s2)
    assert (fb <= 0).all()  # node 2 is inhibitory
    torch.testing.assert_close(rec["c.n1"], s1)
    torch.testing.assert_close(rec["c.n2"], s2)
    torch.testing.assert_close(out, (s1 + fb) + s2)


# ---- fitness -----------------------------------------------------------------------------------------
def test_hamming_rdm_golden():
    v = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.float)
    expected = torch.tensor([[0, 2, 2], [2, 0, 4], [2, 4, 0]], dtype=torch.double) / 4
    torch.testing.assert_close(hamming_rdm(v), expected)


def _records_from(patterns: torch.Tensor, T=2):
    """patterns [B, N] -> records with one layer [T, B, N] repeating them."""
    return {"l0": patterns.unsqueeze(0).expand(T, *patterns.shape).clone()}


def test_rdm_agreement_is_one_for_a_label_code_and_zero_for_silence():
    y = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert rdm_agreement(_records_from(onehot), y=y) == pytest.approx(1.0)
    assert rdm_agreement(_records_from(torch.zeros(8, 5)), y=y) == 0.0
    noise = (torch.rand(8, 200, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    assert abs(rdm_agreement(_records_from(noise), y=y)) < 0.5
    # a reference model with the same code agrees perfectly, whatever the labels
    assert rdm_agreement(_records_from(onehot), reference_records=_records_from(onehot * 1)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs the labels"):
        rdm_agreement(_records_from(onehot))



def _readout(z: torch.Tensor) -> torch.Tensor:
    """[B, W] -> a [T=2, B, W] readout whose time sum is z (split unevenly over the steps)."""
    return torch.stack([0.25 * z, 0.75 * z])


def test_readout_rdm_capacity_golden():
    y = torch.tensor([0, 0, 1, 1])
    # two clean class clusters on one axis: CKA = 1, one dimension (PR = 1)
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert readout_rdm_capacity({}, y=y, readout=_readout(z)) == pytest.approx(1.0)
    # a square: K = Z Z^T (already centred), PR = (tr K)^2/|K|^2 = 16/8 = 2; <K, G> = 4, |K| = sqrt 8,
    # |G| = 2 (G_ij = +-1/2) so CKA = 1/sqrt 2 and F = sqrt 2
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert readout_rdm_capacity({}, y=y, readout=_readout(z)) == pytest.approx(2 ** 0.5)
    assert FITNESSES.get("rdm") is readout_rdm_capacity and FITNESSES.get("rdm_spikes") is rdm_agreement


def test_readout_rdm_capacity_invariances_and_edge_cases():
    g = torch.Generator().manual_seed(5)
    y = torch.arange(12) % 3
    z = torch.rand(12, 6, generator=g) + y[:, None] * torch.rand(1, 6, generator=g)
    f = readout_rdm_capacity({}, y=y, readout=_readout(z))
    assert 0 < f <= 6
    perm = torch.randperm(12, generator=g)
    assert readout_rdm_capacity({}, y=y[perm], readout=_readout(z[perm])) == pytest.approx(f)  # samples
    assert readout_rdm_capacity({}, y=y, readout=_readout(3 * z + 2)) == pytest.approx(f)  # scale, shift
    assert readout_rdm_capacity({}, y=y, readout=_readout(z[:, torch.randperm(6, generator=g)])) == pytest.approx(f)
    # relabelling the classes does not matter; shuffling labels against the samples lowers the score
    assert readout_rdm_capacity({}, y=(y + 1) % 3, readout=_readout(z)) == pytest.approx(f)
    assert readout_rdm_capacity({}, y=y[perm], readout=_readout(z)) < f
    # independent numpy formula: CKA from features (HSIC), PR from singular values
    zc = z.double().numpy() - z.double().numpy().mean(0)
    yc = np.eye(3)[y.numpy()] - np.eye(3)[y.numpy()].mean(0)
    cka = np.linalg.norm(yc.T @ zc) ** 2 / (np.linalg.norm(zc.T @ zc) * np.linalg.norm(yc.T @ yc))
    sv = np.linalg.svd(zc, compute_uv=False)
    assert f == pytest.approx(cka * sv.dot(sv) ** 2 / (sv ** 4).sum())
    assert readout_rdm_capacity({}, y=y, readout=torch.zeros(2, 12, 6)) == 0.0  # silent readout
    with pytest.raises(ValueError, match="needs the readout"):
        readout_rdm_capacity({}, y=y)
    with pytest.raises(ValueError, match="needs the labels"):
        readout_rdm_capacity({}, readout=_readout(z))

def test_rdm_correlation_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(9, 9, generator=g)
    a = a + a.T
    b = (torch.rand(9, 9, generator=g) > 0.5).double()
    b = b + b.T
    i, j = np.triu_indices(9, 1)
    assert rdm_correlation(a, b, "pearson") == pytest.approx(stats.pearsonr(a.numpy()[i, j], b.numpy()[i, j])[0])
    assert rdm_correlation(a, b, "spearman") == pytest.approx(stats.spearmanr(a.numpy()[i, j], b.numpy()[i, j])[0])


def test_pattern_dissimilarity_golden():
    # two layers; layer sizes differ, each normalised by its own size
    l1 = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # [T=1, B=2, N=2]: d = 1/2
    l2 = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])  # d = 1
    assert pattern_dissimilarity({"a": l1, "b": l2}) == pytest.approx((0.5 + 1.0) / 2)
    torch.testing.assert_close(network_rdm({"a": l1, "b": l2}),
                               torch.tensor([[0, 0.75], [0.75, 0]], dtype=torch.double))


def test_snasnet_matches_the_released_formula():
    """Numpy transcription of SNASNet's find_best_neuroncell kernel (alpha = 0.5), averaged over hook calls."""
    g = torch.Generator().manual_seed(3)
    rec = {"a": (torch.rand(3, 6, 10, generator=g) < 0.3).float(), "b": (torch.rand(3, 6, 7, generator=g) < 0.6).float()}
    K, calls = np.zeros((6, 6)), 0
    for r in rec.values():
        for t in range(r.shape[0]):
            x = r[t].numpy().astype(np.float64)
            n = x.shape[1]
            sp = (x.sum(1) / n)[:, None]
            norm = (sp @ (1 - sp.T) + (1 - sp) @ sp.T) * n
            K += np.full((6, 6), n) - 0.5 / (norm + 1e-3) * (x @ (1 - x.T) + (1 - x) @ x.T)
            calls += 1
    assert snasnet_logdet(rec) == pytest.approx(np.linalg.slogdet(K / calls)[1])
    assert set(FITNESSES.names()) >= {"rdm", "rdm_spikes", "dissimilarity", "snasnet"}


def test_label_rdm():
    torch.testing.assert_close(label_rdm(torch.tensor([0, 0, 1])),
                               torch.tensor([[0, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=torch.double))


# ---- evaluator + search ------------------------------------------------------------------------------
def test_rdm_evaluator_is_seeded_and_leaves_global_rng_alone():
    task = tiny_task()
    x, y = fitness_batch(task, 16, 0)
    assert sorted(torch.bincount(y).tolist()) == [4, 4, 4, 4]  # class-balanced
    ev = RDMFitnessEvaluator(x, y)
    spec = space().sample(np.random.default_rng(4))
    state = torch.get_rng_state()
    r1, r2 = ev.evaluate(spec, 11), ev.evaluate(spec, 11)
    assert torch.equal(state, torch.get_rng_state())
    assert r1["scores"] == r2["scores"] and r1["fitness"] == r1["scores"]["rdm"]
    assert r1["objectives"] == [-r1["fitness"], float(r1["params"])]
    assert 0 <= r1["firing_rate"] <= 1 and r1["synops"] > 0
    assert ev.evaluate(spec, 12)["scores"] != r1["scores"]
    assert "mse_rdm" in EVALUATORS and "mse_train" in EVALUATORS


def test_count_synops_of_a_linear_layer():
    m = torch.nn.Sequential(torch.nn.Linear(4, 3))
    from neurosynth.layers import SNN

    net = SNN(*m)
    x = torch.tensor([[[1.0, 0, 0, 1], [0, 0, 0, 0]], [[1.0, 1, 1, 1], [0, 1, 0, 0]]])  # [T=2, B=2, 4]
    assert count_synops(net, x) == pytest.approx((2 + 0 + 4 + 1) * 3 / 2)


@pytest.mark.parametrize("strategy", ["ga", "nsga2"])
def test_search_on_tiny_task_fills_the_archive(strategy, tmp_path):
    task = tiny_task()
    x, y = fitness_batch(task, 16, 0)
    sp = space(num_classes=4)
    st = STRATEGIES.get(strategy)(sp, np.random.default_rng(0))
    with Archive(tmp_path / "a.sqlite") as a:
        s = Runner(sp, st, RDMFitnessEvaluator(x, y), a, generations=3, population=4, seed=0, progress=False).run()
        recs = a.records()
    assert s["evaluations"] == len(recs) == len({r["hash"] for r in recs})
    assert len(s["history"]) == 3
    assert s["best"]["fitness"] == max(r["fitness"] for r in recs if r["status"] == "ok")
    best = s["best"]["spec"]
    assert spec_hash(best) == s["best"]["hash"]
    assert build(best)(x).shape[-1] == 4


@pytest.mark.slow
def test_mse_search_serial_and_two_workers_agree(tmp_path):
    task = tiny_task()
    x, y = fitness_batch(task, 16, 0)
    tables = []
    for w in (0, 2):
        # built-in neurons only: neurons that other tests register in this process do not exist in the
        # spawned workers, so sampling them would make every worker evaluation fail
        sp = space(num_classes=4, neurons=["lif", "cubalif", "alif", "if"])
        st = STRATEGIES.get("ga")(sp, np.random.default_rng(0))
        with Archive(tmp_path / f"{w}.sqlite") as a:
            Runner(sp, st, RDMFitnessEvaluator(x, y), a, generations=2, population=4, seed=0, workers=w,
                   progress=False).run()
            tables.append({r["hash"]: (r["fitness"], r["metrics"]["scores"], r["generation"]) for r in a.records()})
    assert tables[0] == tables[1]
