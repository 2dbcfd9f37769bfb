"""The chain family of the search (``"kind": "chain"``): the hand-designed networks are points of the spaces,
the operators stay inside the space, and the spoken-digits space offers recurrence, neuron types, time constants
on the target's grid and the readout."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurosynth.arch import build
from neurosynth.neurons import NEURONS
from snn_nas.engine import canonical_json
from snn_nas.mse.builder import expand_chain
from snn_nas.mse.data import onset_aligned_counts
from snn_nas.mse.space import (
    ChainSpace,
    MSESpace,
    chain_neurons,
    fashion_recipe_point,
    fashion_space,
    make_space,
    spoken_digits_space,
    train_shd_point,
)

ROOT = Path(__file__).resolve().parents[2]


def shapes(model) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def test_fashion_recipe_is_a_point_of_the_fashion_space():
    from neurosynth.apps.recipes.csnn import RECIPES, build_spec

    space = fashion_space()
    point = fashion_recipe_point(space)
    recipe = build_spec(dict(RECIPES["cpu"]), [1, 28, 28], 10)
    assert expand_chain(point) == recipe  # the very spec `neurosynth train --arch csnn` builds
    torch.manual_seed(0)
    a = build(point)
    torch.manual_seed(0)
    b = build(recipe)
    assert shapes(a) == shapes(b)
    n = sum(p.numel() for p in a.parameters())
    # conv 1->16 3x3 (144) + BN 32, conv 16->32 (4,608) + BN 64, FC 1,568->256 (401,664) + LIF, FC 256->10 (2,570)
    assert n == sum(p.numel() for p in b.parameters()) == 409_082
    x = torch.rand(2, 3, 1, 28, 28)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))  # same seed, same network: identical outputs


def test_train_shd_default_is_a_point_of_the_spoken_digits_space():
    spec = importlib.util.spec_from_file_location("train_shd_example", ROOT / "examples" / "train_shd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    space = spoken_digits_space(140, 20)
    torch.manual_seed(1)
    a = build(train_shd_point(space, 128))
    torch.manual_seed(1)
    b = mod.build_model(128, n_in=140, n_out=20)
    assert [tuple(v.shape) for v in a.state_dict().values()] == [tuple(v.shape) for v in b.state_dict().values()]
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()) == 140 * 128 + 128 + \
        128 * 128 + 128 * 20 + 20
    b.load_state_dict(a.state_dict())  # (the two draw their initial weights in another order)
    x = torch.rand(12, 4, 140)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x))  # same weights, same outputs: the same network


@pytest.mark.parametrize("make", [lambda: fashion_space(), lambda: spoken_digits_space(140, 20)])
def test_operators_stay_in_the_space(make):
    space = make()
    rng = np.random.default_rng(0)
    specs = [space.sample(rng) for _ in range(20)]
    changed = 0
    for i in range(300):
        a, b = specs[i % 20], specs[(7 * i + 3) % 20]
        m = space.mutate(a, rng)
        c = space.crossover(a, b, rng)
        space.validate(m), space.validate(c)
        changed += canonical_json(m) != canonical_json(a)
        json.loads(canonical_json(m))
    assert changed >= 270  # a mutation is (nearly always) a change
    kinds = {len(s["blocks"]) for s in specs} | {100 + len(s["hidden"]) for s in specs}
    assert len(kinds) >= 3  # depths vary


def test_sampling_is_reproducible_and_draws_no_global_rng():
    space = fashion_space()
    torch.manual_seed(0)
    np.random.seed(0)
    state = (torch.get_rng_state(), np.random.get_state()[1].copy())
    a = [space.sample(np.random.default_rng(3)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(3)) for _ in range(3)]
    assert a == b
    assert torch.equal(torch.get_rng_state(), state[0]) and (np.random.get_state()[1] == state[1]).all()


def test_spoken_digits_space_genes_and_build():
    space = spoken_digits_space(140, 20)
    c = space.cfg
    assert set(c.recurrent) == {False, True} and set(c.readouts) == {"li", "spiking"}
    assert {"lif", "cubalif", "alif"} <= set(c.neurons)
    assert ("adlif" in c.neurons) == ("adlif" in NEURONS)  # offered as soon as it is registered
    rng = np.random.default_rng(5)
    seen = {"recurrent": set(), "neuron": set(), "readout": set(), "beta": set()}
    for _ in range(60):
        s = space.sample(rng)
        seen["readout"].add(s["readout"])
        for h in s["hidden"]:
            seen["recurrent"].add(h["recurrent"]), seen["neuron"].add(h["neuron"]), seen["beta"].add(h["beta"])
    assert seen["recurrent"] == {False, True} and seen["readout"] == {"li", "spiking"}
    assert seen["neuron"] == set(c.neurons) and seen["beta"] == set(c.betas)
    for readout in ("li", "spiking"):
        spec = space.make_spec([], [{"width": 64, "neuron": "alif", "beta": 0.9, "recurrent": True},
                                    {"width": 64, "neuron": "cubalif", "beta": 0.8, "recurrent": False}], readout, 0.9)
        seq = expand_chain(space.validate(spec))
        assert [ly["type"] for ly in seq["layers"]] == ["linear", "recurrent", "linear", "neuron", "linear", "neuron"]
        assert seq["layers"][-1]["neuron"] == ("li" if readout == "li" else "lif")
        out = build(spec)(torch.rand(6, 3, 140))
        assert out.shape == (6, 3, 20)


def test_neuron_choices_follow_the_registry(monkeypatch):
    from neurosynth.neurons import LIF

    assert chain_neurons() == tuple(n for n in ("lif", "cubalif", "alif", "adlif") if n in NEURONS)
    monkeypatch.setitem(NEURONS._entries, "adlif", LIF)  # stands in for the adLIF neuron of the networks issue
    assert "adlif" in chain_neurons() and "adlif" in spoken_digits_space(140, 20).cfg.neurons


def test_time_constants_are_snapped_to_the_target_grid():
    from neurosynth.hardware.targets import get_target

    space = spoken_digits_space(140, 20, betas=[0.9001, 0.95])
    snap = get_target("float").snap
    assert space.cfg.betas == (snap("beta", 0.9001), snap("beta", 0.95))


def test_bad_specs_and_configs_name_the_field():
    space = fashion_space()
    p = fashion_recipe_point(space)
    bad = json.loads(json.dumps(p))
    bad["blocks"][0]["width"] = 12
    with pytest.raises(ValueError, match=r"blocks\[0\]\.width"):
        space.validate(bad)
    bad = json.loads(json.dumps(p))
    bad["blocks"][1]["kernel"] = 4
    with pytest.raises(ValueError, match=r"blocks\[1\]\.kernel must be an odd"):
        space.validate(bad)
    bad = json.loads(json.dumps(p))
    bad["target"] = "loihi"
    with pytest.raises(ValueError, match="float family"):
        build(bad)
    with pytest.raises(ValueError, match="float family"):
        fashion_space(target="loihi")
    with pytest.raises(ValueError, match="unknown chain space fields"):
        fashion_space(width=[3])
    with pytest.raises(ValueError, match="space family must be one of"):
        make_space({"family": "nope"})
    sd = spoken_digits_space(140, 20)
    with pytest.raises(ValueError, match="blocks must be empty"):
        build({**train_shd_point(sd), "blocks": p["blocks"]})


def test_make_space_dispatches_on_the_family():
    assert isinstance(make_space({"input_shape": [1, 8, 8]}), MSESpace)
    assert isinstance(make_space({"family": "mse", "input_shape": [1, 8, 8]}), MSESpace)
    assert isinstance(make_space({"family": "chain", "input_shape": [64], "blocks": [0, 0], "hidden": [1, 1]}),
                      ChainSpace)


def test_onset_aligned_counts_golden():
    times = [np.array([0.10, 0.105, 0.13, 0.50]), np.array([])]
    units = [np.array([0, 4, 699, 3]), np.array([], np.int64)]
    x = onset_aligned_counts(times, units, channels=700, T=3, dt=0.02, groups=140)
    assert x.shape == (3, 2, 140)
    want = torch.zeros(3, 2, 140)
    want[0, 0, 0] = np.log1p(2.0)  # t 0.100, 0.105 -> bin 0, channels 0 and 4 -> group 0
    want[1, 0, 139] = np.log1p(1.0)  # t 0.130 -> bin 1, channel 699 -> group 139; t 0.50 is past the window
    assert torch.allclose(x, want)


@pytest.mark.parametrize("neuron", ["lif", "cubalif", "alif", "adlif"])
@pytest.mark.parametrize("beta", [0.8, 0.98])
def test_every_neuron_and_decay_of_the_space_builds(neuron, beta):
    """The space's decays go to each neuron's membrane-decay parameter (adLIF: alpha, tau_u 5-25 steps), snapped into
    its range: a point at the edge of the grid builds and runs instead of failing its evaluation."""
    spec = {"format": "neurosynth.arch/2", "kind": "chain", "plugin": "snn_nas.mse.builder", "input_shape": [20],
            "num_classes": 4, "blocks": [], "hidden": [{"width": 8, "neuron": neuron, "beta": beta, "recurrent": True}],
            "readout": "li", "readout_beta": 0.9, "batchnorm": True, "surrogate": "atan"}
    plain = expand_chain(spec)
    layer = next(lay for lay in plain["layers"] if lay.get("neuron") == neuron or lay.get("type") == "recurrent")
    params = layer.get("params") or layer.get("neuron_params") or {}
    decay = NEURONS.get(neuron).membrane_decay if hasattr(NEURONS.get(neuron), "membrane_decay") else "beta"
    if params:
        lo, hi = NEURONS.get(neuron)().param_ranges[decay][:2]
        assert lo <= params[decay] <= hi
    out = build(plain)(torch.rand(5, 3, 20))
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape[-1] == 4 and torch.isfinite(out).all()
