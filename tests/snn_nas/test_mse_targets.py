"""MSE-NAS deployment targets: every candidate of --target loihi / nir lowers to a plain SNN the exporters
accept; anything else is refused by the space; the Loihi 2 resource estimate; the worker-init error cause."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from neurosynth.arch import build
from neurosynth.hardware.targets.loihi import (
    LOIHI2_NEURONS_PER_CORE,
    LOIHI2_SRAM_BYTES_PER_CORE,
    loihi2_resources,
)
from snn_nas.mse import builder  # noqa: F401  registers the "mse" kind
from snn_nas.mse.data import Task
from snn_nas.mse.evaluator import RDMFitnessEvaluator
from snn_nas.mse.space import MSESpace, MSESpaceConfig
from snn_nas.mse.targets import check_deployable, get_target, lower

SMALL = {"widths": [4, 8], "stem_widths": [4], "depth": [1, 3], "max_nodes": 2}


def space(target, shape=(1, 8, 8), **kw):
    return MSESpace(MSESpaceConfig.from_dict({"input_shape": list(shape), "target": target, **SMALL, **kw}))


@pytest.mark.parametrize("target", ["loihi", "nir"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (64,)])
def test_every_candidate_and_offspring_is_a_deployable_chain(target, shape):
    sp = space(target, shape)
    rng = np.random.default_rng(0)
    pop = [sp.sample(rng) for _ in range(6)]
    for _ in range(200):
        a, b = pop[int(rng.integers(6))], pop[int(rng.integers(6))]
        child = sp.mutate(sp.crossover(a, b, rng), rng)
        sp.validate(child)
        check_deployable(child, target)
        pop[int(rng.integers(6))] = child
    for s in pop:
        assert s["target"] == target and s["readout"] == "spiking"
        assert all(c["inputs"] == [i] for i, c in enumerate(s["cells"]))
        seq = lower(s, target)
        assert seq["kind"] == "sequential"
        types = [layer["type"] for layer in seq["layers"]]
        assert set(types) <= set(get_target(target).layers)  # only the layer types the target runs
        assert "batchnorm2d" not in types and "avgpool2d" not in types
        neurons = [layer for layer in seq["layers"] if layer["type"] == "neuron"]
        assert {n["neuron"] for n in neurons} <= {"lif", "cubalif"} and {n["reset"] for n in neurons} == {"zero"}
        if target == "loihi":  # every synapse is QAT and followed by one step of delay
            syn = [i for i, t in enumerate(types) if t in ("qconv2d", "qlinear")]
            assert syn and all(types[i + 1] == "delay" for i in syn)
            assert "conv2d" not in types and "linear" not in types and "sumpool2d" not in types
        else:
            assert "delay" not in types and "qconv2d" not in types
    # more than one layer type appears (the space is not degenerate)
    kinds = {n["neuron"] for s in pop for c in s["cells"] for n in c["motif"]["nodes"]}
    assert kinds == {"lif", "cubalif"}


@pytest.mark.parametrize("edit, match", [
    (lambda s: s["cells"][0]["motif"]["edges"].append([0, 1, "skip"]), "skip"),
    (lambda s: s["cells"][0]["motif"]["nodes"][0].update(neuron="alif"), "alif"),
    (lambda s: s.update(readout="li"), "graded"),
    (lambda s: s["cells"][0]["motif"].update(outputs=[1, 2]) if len(s["cells"][0]["motif"]["nodes"]) > 1
     else s["cells"][0]["motif"].update(outputs=[]), "outputs"),
    (lambda s: s["cells"][0]["motif"]["nodes"][0].update(sign="inh"), "sign"),
])
def test_the_space_refuses_what_loihi_cannot_run(edit, match):
    sp = space("loihi")
    s = sp.sample(np.random.default_rng(1))
    s = json.loads(json.dumps(s))
    edit(s)
    with pytest.raises(ValueError, match=match):
        sp.validate(s)


def test_long_range_inputs_are_refused():
    sp = space("loihi", depth=[2, 2])
    s = sp.sample(np.random.default_rng(2))
    s["cells"][1]["inputs"] = [0, 1]
    with pytest.raises(ValueError, match="sequential"):
        sp.validate(s)


def test_non_deployable_neurons_are_refused_by_the_config():
    with pytest.raises(ValueError, match="cannot be deployed"):
        space("loihi", neurons=["lif", "alif"])


def test_lowered_network_passes_the_loihi_extractor_and_nir_export():
    pytest.importorskip("h5py")
    from neurosynth.hardware.lava.ir import check_fixed, extract

    sp = space("loihi")
    rng = np.random.default_rng(3)
    for _ in range(4):
        s = sp.sample(rng)
        m = build(s)
        assert type(m).__name__ == "SNN"
        net = extract(m, (1, 8, 8))
        check_fixed(net)
        assert len(net.stages) == sum(len(c["motif"]["nodes"]) for c in s["cells"]) + 2
        assert all(st.delayed for st in net.stages)
    nir = pytest.importorskip("nir")
    from neurosynth.hardware.nir import to_nir

    s = space("nir").sample(np.random.default_rng(4))
    g = to_nir(build(s), input_shape=(1, 8, 8))
    assert isinstance(g, nir.NIRGraph)


def test_loihi2_resource_estimate_golden():
    seq = {"input_shape": [100], "layers": [
        {"type": "qlinear", "in_features": 100, "out_features": 9000, "bias": False}, {"type": "delay", "steps": 1},
        {"type": "neuron", "neuron": "lif", "shape": [9000]},
        {"type": "qlinear", "in_features": 9000, "out_features": 10, "bias": False}, {"type": "delay", "steps": 1},
        {"type": "neuron", "neuron": "lif", "shape": [10]}]}
    r = loihi2_resources(seq)
    assert r["neurons"] == 9010 and r["synapses"] == 9000 * 100 + 10 * 9000
    # layer 1: 9000 neurons -> 2 cores by neurons (8192/core); 900 kB of 8-bit weights -> 7 cores of 128 KiB
    assert r["layers"][0]["cores"] == max(-(-9000 // LOIHI2_NEURONS_PER_CORE), -(-900_000 // LOIHI2_SRAM_BYTES_PER_CORE))
    assert r["layers"][0]["cores"] == 7 and r["layers"][1]["cores"] == 1 and r["cores"] == 8
    assert r["fits_one_chip"]


def test_loihi2_resource_estimate_counts_recurrent_pooling_and_delayed_synapses():
    from neurosynth.hardware.targets.loihi_qat import loihi_mlp_spec, loihi_pooled_conv_spec, loihi_rsnn_spec

    r = loihi2_resources(loihi_rsnn_spec(140, 256, 20, layers=2))
    assert r["neurons"] == 256 + 256 + 20  # the recurrent layers' neurons are counted
    assert r["synapses"] == (140 * 256 + 256 * 256) + (256 * 256 + 256 * 256) + 256 * 20
    assert [layer["synapses"] for layer in r["layers"]] == [140 * 256 + 256 * 256, 2 * 256 * 256, 256 * 20]
    pooled = loihi2_resources(loihi_pooled_conv_spec((2, 8, 8), [4], 12, 5))
    # conv 2->4 (3x3) on 8x8, the 2x2 sum pooling (depthwise: fan-in 4) on 4x4, FC 64->12, FC 12->5
    assert [layer["synapses"] for layer in pooled["layers"]] == [4 * 64 * 18, 4 * 16 * 4, 12 * 64, 5 * 12]
    delayed = loihi2_resources(loihi_mlp_spec(10, [8], 3, max_delay=5))
    assert delayed["synapses"] == 10 * 8 + 8 * 3
    assert delayed["synapse_bytes"] == -(-(10 * 8 + 8 * 3) * 14 // 8)  # 8-bit weight + 6-bit delay per synapse


def _task():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 4
    x = (torch.rand(4, 40, 1, 8, 8, generator=g) < 0.3).float()
    return Task("tiny", x, y, x[:, :20], y[:20], 4)


def test_rdm_evaluator_scores_lowered_candidates_with_loihi_costs():
    t = _task()
    sp = space("loihi", num_classes=4)
    ev = RDMFitnessEvaluator(t.x_train, t.y_train, cost="synops,loihi_cores", fitness_T=2)
    assert ev.x.shape[0] == 2
    s = sp.sample(np.random.default_rng(5))
    r = ev.evaluate(s, 0)
    assert len(r["objectives"]) == 3 and r["objectives"][2] == r["loihi_cores"] >= 1
    assert r["loihi_neurons"] == loihi2_resources(lower(s, "loihi"))["neurons"]
    assert set(r["scores"]) >= {"rdm", "snasnet"} and r["firing_rate"] > 0
    with pytest.raises(ValueError, match="cost"):
        RDMFitnessEvaluator(t.x_train, t.y_train, cost="flops")


class _Unloadable:  # pickled by reference; removed from the module before the worker unpickles it
    pass


def test_worker_that_cannot_load_the_evaluator_reports_the_cause(monkeypatch):
    from snn_nas.engine import runner

    payload = pickle.dumps(_Unloadable())
    monkeypatch.delattr(sys.modules[__name__], "_Unloadable")
    monkeypatch.setattr(runner, "_WORKER_INIT_ERROR", None)
    monkeypatch.setattr(runner, "_WORKER_EVALUATOR", None)
    runner._init_worker(payload)
    rec = runner._worker_eval({"a": 1}, 0)
    assert rec["status"] == "failed"
    assert "_Unloadable" in rec["error"] and "register" in rec["error"] and "worker died" not in rec["error"]


def test_cli_search_mse_target_loihi_writes_an_exportable_best_model(tmp_path):
    out = tmp_path / "s"
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps({"widths": [4], "stem_widths": [4], "depth": [1, 1], "max_nodes": 1}))
    r = subprocess.run([sys.executable, "-m", "neurosynth", "search", "mse", "--fidelity", "none", "--target", "loihi", "--population", "2",
                        "--generations", "1", "--fitness-batch", "20", "--fitness-T", "3", "--T", "4",
                        "--space", str(space_file), "--out", str(out), "--train-best", "1", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    arch = json.loads((out / "best_model" / "arch.json").read_text())
    assert arch["kind"] == "sequential" and arch["target"] == "loihi" and "plugin" not in arch
    assert json.loads((out / "best_model" / "searched_spec.json").read_text())["target"] == "loihi"
    from neurosynth.hardware.lava.ir import extract
    from neurosynth.rundir import load_run

    model, spec, _ = load_run(out / "best_model")
    extract(model, tuple(spec["input_shape"]))
    man = json.loads((out / "best_model" / "manifest.json").read_text())
    assert man["config"]["encoding"] == "rate" and man["config"]["T"] == 4
    bad = subprocess.run([sys.executable, "-m", "neurosynth", "search", "mse", "--fidelity", "none", "--target", "loihi", "--encoding",
                          "direct", "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "spike" in bad.stderr
    short = subprocess.run([sys.executable, "-m", "neurosynth", "search", "mse", "--fidelity", "none", "--target", "loihi", "--T", "8",
                            "--fitness-T", "2", "--out", str(tmp_path / "y")], capture_output=True, text=True,
                           timeout=300)
    assert short.returncode == 2 and "silent" in short.stderr
