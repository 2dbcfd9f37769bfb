"""Run directories written by release 0.1.0 (``tests/fixtures/runs_0_1_0/``, never regenerated) keep loading.

Their ``arch.json`` is ``neurosynth.arch/1`` with ``"plugin": "neurosynth.hardware.lava.qat"``, the module path
that became ``"target": "loihi"`` in ``neurosynth.arch/2`` (``neurosynth.arch.LEGACY_PLUGINS``). Each model is
rebuilt by ``load_run`` and its forward pass is checked against an independent computation from the state dict
and the ArchSpec numbers (Loihi weight grid, one-step delay, zero-reset LIF/CubaLIF written out here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from neurosynth.arch import FORMAT, LEGACY_PLUGINS, upgrade
from neurosynth.io import read_json
from neurosynth.rundir import load_run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runs_0_1_0"
RUNS = ["train_loihi", "mse_loihi_best"]


def _loihi_weight(w: torch.Tensor) -> torch.Tensor:  # even integers in [-256, 254] over 64
    return torch.clamp(torch.round(w * 32) * 2, -256, 254) / 64


def _reference_forward(spec: dict, state: dict, x: torch.Tensor) -> torch.Tensor:
    """The output spikes of a release-0.1.0 Loihi sequential spec, from its state dict, without neurosynth layers."""
    for i, layer in enumerate(spec["layers"]):
        ty = layer["type"]
        if ty == "qlinear":
            x = F.linear(x, _loihi_weight(state[f"{i}.weight"]))
        elif ty == "qconv2d":
            T, B = x.shape[:2]
            y = F.conv2d(x.flatten(0, 1), _loihi_weight(state[f"{i}.weight"]), stride=layer.get("stride", 1),
                         padding=layer.get("padding", 0))
            x = y.reshape(T, B, *y.shape[1:])
        elif ty == "delay":
            x = torch.cat([torch.zeros_like(x[:1]), x[:-1]], 0)
        elif ty == "flatten":
            x = x.flatten(2)
        elif ty == "neuron":
            assert layer["reset"] == "zero" and layer["neuron"] in ("lif", "cubalif")
            p = layer["params"]
            cur = torch.zeros_like(x[0])
            v = torch.zeros_like(x[0])
            out = []
            for t in range(x.shape[0]):
                cur = p.get("alpha", 0.0) * cur + x[t] if layer["neuron"] == "cubalif" else x[t]
                h = p["beta"] * v + cur
                s = (h > p["threshold"]).to(x.dtype)
                v = h * (1 - s)
                out.append(s)
            x = torch.stack(out)
        else:
            raise AssertionError(f"layer type {ty} is not in the 0.1.0 Loihi family")
    return x


@pytest.fixture(params=RUNS)
def old_run(request, tmp_path) -> Path:
    dst = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, dst)
    return dst


def test_fixtures_are_the_old_format():
    for name in RUNS:
        arch = read_json(FIXTURES / name / "arch.json")
        assert arch["format"] == "neurosynth.arch/1" and arch["plugin"] == "neurosynth.hardware.lava.qat"
        assert read_json(FIXTURES / name / "run.json")["format"] == "neurosynth.run/1"


def test_upgrade_maps_the_old_module_path_to_the_target():
    old = read_json(FIXTURES / "train_loihi" / "arch.json")
    new = upgrade(old)
    assert new["format"] == FORMAT == "neurosynth.arch/2"
    assert new["target"] == "loihi" and "plugin" not in new
    assert {k: v for k, v in new.items() if k not in ("format", "target")} == \
        {k: v for k, v in old.items() if k not in ("format", "plugin")}
    assert old["plugin"] == "neurosynth.hardware.lava.qat"  # the input is not modified
    assert upgrade(new) is new  # current specs pass through
    assert set(LEGACY_PLUGINS) == {"neurosynth.hardware.lava.qat"}


def test_load_run_rebuilds_the_model_and_its_forward_matches_the_state_dict(old_run):
    model, spec, _ = load_run(old_run)
    assert spec["target"] == "loihi" and spec["format"] == FORMAT
    state = torch.load(old_run / "model.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    from neurosynth.datasets.digits import load_digits_split
    from neurosynth.encoding import encode

    _, _, xte, _ = load_digits_split(image=len(spec["input_shape"]) == 3)
    x = encode("rate", xte[:16], 16, generator=torch.Generator().manual_seed(0)).float()  # the runs' test digits
    with torch.no_grad():
        out = model(x)
    want = _reference_forward(read_json(old_run / "arch.json"), state, x)
    assert out.shape == (16, 16, 10)
    assert torch.equal(out, want)
    assert out.sum() > 0  # the check is not vacuous: the network spikes on this input


def test_export_loihi_and_energy_still_work_on_old_runs(old_run, tmp_path):
    pytest.importorskip("h5py")
    from neurosynth.apps.cli import main

    out = tmp_path / f"{old_run.name}.h5"
    assert main(["export", "loihi", "--model", str(old_run), "--out", str(out)]) == 0
    assert out.is_file() and out.with_name(out.stem + ".manifest.json").is_file()
    from neurosynth.hardware.lava.netx import read_netx

    net = read_netx(out)
    n_layers = sum(layer["type"] == "neuron" for layer in read_json(old_run / "arch.json")["layers"])
    assert len(net.stages) == n_layers
    energy = tmp_path / f"{old_run.name}.energy.json"
    extra = []
    shape = read_json(old_run / "arch.json")["input_shape"]
    if len(shape) == 3:  # `energy` feeds digits as [T, B, 64] (its dataset lookup); give image inputs as a file
        x = (torch.rand((8, 8, *shape), generator=torch.Generator().manual_seed(0)) < 0.5).float()
        torch.save(x, tmp_path / "inputs.pt")
        extra = ["--inputs", str(tmp_path / "inputs.pt")]
    assert main(["energy", "--model", str(old_run), "--samples", "8", "--out", str(energy), "--no-progress",
                 *extra]) == 0
    doc = read_json(energy)
    assert doc["snn"]["cost_model"] == "loihi"  # the energy model of the run's target
    assert doc["counts"]["syn_ops"] > 0


@pytest.mark.slow
def test_export_loihi_verify_in_lava_on_an_old_run(tmp_path):
    pytest.importorskip("lava.magma")
    from neurosynth.apps.cli import main

    run = tmp_path / "train_loihi"
    shutil.copytree(FIXTURES / "train_loihi", run)
    out = tmp_path / "net.h5"
    assert main(["export", "loihi", "--model", str(run), "--out", str(out), "--verify", "4", "--modes",
                 "fixed"]) == 0
    rep = read_json(out.with_name("net.manifest.json"))["results"]["verification"]
    assert rep["fixed_exact"] is True and rep["samples"] == 4


def test_unknown_future_formats_are_refused_with_the_readable_ones_named(tmp_path):
    from neurosynth.arch import build
    from neurosynth.errors import UserError
    from neurosynth.rundir import read_marker

    with pytest.raises(ValueError, match="neurosynth.arch/1.*neurosynth.arch/2"):
        build({"format": "neurosynth.arch/3", "kind": "sequential", "layers": [{"type": "flatten"}]})
    run = tmp_path / "future"
    shutil.copytree(FIXTURES / "train_loihi", run)
    (run / "run.json").write_text('{"format": "neurosynth.run/3", "kind": "train", "complete": true}')
    with pytest.raises(UserError, match="neurosynth.run/3"):
        read_marker(run)
    with pytest.raises(UserError, match="cannot read"):
        load_run(run)


def test_runs_written_today_name_the_target_and_reload(tmp_path):
    from neurosynth.apps.cli import main

    out = tmp_path / "train_loihi"
    assert main(["train", "--dataset", "digits", "--loihi", "--epochs", "1", "--T", "4", "--hidden", "8", "--out",
                 str(out), "--no-progress"]) == 0
    arch = read_json(out / "arch.json")
    assert arch["format"] == "neurosynth.arch/2" and arch["target"] == "loihi" and "plugin" not in arch
    assert read_json(out / "run.json")["format"] == "neurosynth.run/2"
    model, spec, _ = load_run(out)
    assert spec == arch
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    x = (torch.rand((6, 3, 64), generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.no_grad():
        assert torch.equal(model(x), _reference_forward(arch, state, x))
