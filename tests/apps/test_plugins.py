"""Custom neurons from the command line: --plugin FILE.py|MODULE, the neurosynth.neurons entry points, the run's
record of the plugin it needs, and the refusal (naming the exact --plugin) of a run whose plugin is not loaded --
without importing anything on open."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from neurosynth.apps.cli import main
from neurosynth.errors import UserError
from neurosynth.neurons import NEURONS
from neurosynth.plugins import SPEC_FIELD, check_spec, load_plugin, requirements

PLUGIN = """
import torch
from pathlib import Path
from neurosynth.neurons import NeuronModel, register_neuron

Path({marker!r}).write_text("imported")

@register_neuron({name!r})
class Mine(NeuronModel):
    defaults = {{"beta": 0.9, "threshold": 1.0}}
    default_reset = "zero"
    {nir}

    def charge(self, x, state, p):
        return state._replace(v=p.beta * state.v + x)
"""


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """The neurons a test's plugin registers leave with the test (the default MSE space takes every registered
    spiking neuron, so a leaked one would change other tests' searches)."""
    import neurosynth.plugins as plugins

    monkeypatch.setattr(NEURONS, "_entries", dict(NEURONS._entries))
    monkeypatch.setattr(plugins, "PROVIDERS", dict(plugins.PROVIDERS))
    monkeypatch.setattr(plugins, "_LOADED", dict(plugins._LOADED))


def _plugin(tmp_path: Path, name: str, nir: str = "") -> Path:
    f = tmp_path / f"{name}_plugin.py"
    f.write_text(textwrap.dedent(PLUGIN.format(marker=str(tmp_path / f"{name}.imported"), name=name, nir=nir)))
    return f


def _train(tmp_path, plugin: Path, name: str) -> Path:
    out = tmp_path / "run"
    rc = main(["train", "--plugin", str(plugin), "--neuron", name, "--epochs", "1", "--T", "4", "--hidden", "16",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_train_with_plugin_records_it_and_export_nir_maps_a_declared_primitive(tmp_path, capsys):
    pytest.importorskip("nir")
    plugin = _plugin(tmp_path, "plug_lif_a", nir='nir_primitive = "lif"')
    out = _train(tmp_path, plugin, "plug_lif_a")
    spec = json.loads((out / "arch.json").read_text())
    assert spec[SPEC_FIELD] == {"plug_lif_a": str(plugin.resolve())}
    assert main(["export", "nir", "--model", str(out), "--out", str(tmp_path / "net.nir"),
                 "--plugin", str(plugin)]) == 0
    import nir

    graph = nir.read(str(tmp_path / "net.nir"))
    assert sum(isinstance(n, nir.LIF) for n in graph.nodes.values()) == 2  # hidden + output layer


def test_custom_neuron_without_nir_primitive_is_refused_with_the_reason(tmp_path, capsys):
    pytest.importorskip("nir")
    plugin = _plugin(tmp_path, "plug_own_b")
    out = _train(tmp_path, plugin, "plug_own_b")
    capsys.readouterr()
    assert main(["export", "nir", "--model", str(out), "--out", str(tmp_path / "net.nir"),
                 "--plugin", str(plugin)]) == 2
    err = capsys.readouterr().err
    assert "no NIR primitive" in err and 'nir_primitive = "lif"' in err
    assert not (tmp_path / "net.nir").exists()


@pytest.mark.parametrize("command", [["energy"], ["export", "nir"], ["export", "loihi"], ["robustness"]])
def test_a_run_needing_a_plugin_is_refused_naming_it_and_imports_nothing(tmp_path, capsys, command):
    # a run that recorded a plugin never loaded in this process: the command names the exact --plugin
    run = tmp_path / "run"
    plugin = _plugin(tmp_path, "never_loaded_c")
    import neurosynth as ns
    from neurosynth.arch import mlp_spec
    from neurosynth.rundir import RunDir

    spec = mlp_spec(4, [3], 2)
    with RunDir.create(run, kind="train") as r:
        r.save_model(ns.build(spec), spec)
    data = json.loads((run / "arch.json").read_text())
    for layer in data["layers"]:
        if layer["type"] == "neuron" and layer["neuron"] == "lif":
            layer["neuron"] = "never_loaded_c"
    data[SPEC_FIELD] = {"never_loaded_c": str(plugin)}
    (run / "arch.json").write_text(json.dumps(data))
    rc = main([*command, "--model", str(run), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"pass --plugin {plugin}" in err, err
    assert not (tmp_path / "never_loaded_c.imported").exists()  # opening the run imported nothing
    assert "never_loaded_c" not in NEURONS


def test_check_spec_without_a_record_asks_for_a_plugin():
    spec = {"format": "neurosynth.arch/2", "layers": [{"type": "neuron", "neuron": "nowhere_d"}]}
    with pytest.raises(UserError, match="not registered.*--plugin FILE.py"):
        check_spec(spec)


def test_load_plugin_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_plugin(str(tmp_path / "missing.py"))
    with pytest.raises(UserError, match="not importable"):
        load_plugin("no_such_module_e")
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match="boom"):
        load_plugin(str(bad))


def test_module_plugin_and_requirements(tmp_path, monkeypatch):
    (tmp_path / "plug_mod_f.py").write_text(textwrap.dedent(PLUGIN.format(
        marker=str(tmp_path / "m.imported"), name="plug_mod_f", nir="")))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugin("plug_mod_f") == ["plug_mod_f"]
    assert load_plugin("plug_mod_f") == ["plug_mod_f"]  # once
    assert requirements({"stem": {"neuron": "plug_mod_f"}, "cells": [{"neuron": "lif"}]}) == {
        "plug_mod_f": "plug_mod_f"}


def test_entry_point_group_registers_neurons(tmp_path, monkeypatch):
    import importlib.metadata as md

    (tmp_path / "ep_pkg_g.py").write_text(textwrap.dedent(PLUGIN.format(
        marker=str(tmp_path / "g.imported"), name="plug_ep_g", nir="")))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = md.EntryPoint(name="ep_g", value="ep_pkg_g", group="neurosynth.neurons")
    monkeypatch.setattr(md, "entry_points", lambda group=None, **kw: [ep] if group == "neurosynth.neurons" else [])
    from neurosynth.plugins import PROVIDERS, load_entry_points

    assert load_entry_points() == ["plug_ep_g"]
    assert PROVIDERS["plug_ep_g"].startswith("entry point ep_g")


def test_search_worker_processes_load_the_parents_plugins(tmp_path):
    # spawned evaluation workers import nothing of __main__: the pool hands them the --plugin list
    import pickle

    from neurosynth.plugins import loaded_plugins
    from snn_nas.engine import runner

    plugin = _plugin(tmp_path, "plug_worker_h")
    runner._init_worker(pickle.dumps({"evaluator": 1}), (str(plugin),))  # what a fresh worker runs first
    assert runner._WORKER_INIT_ERROR is None and "plug_worker_h" in NEURONS
    assert str(plugin.resolve()) in loaded_plugins()
