"""Hardware targets as data (``neurosynth.hardware.targets``): the built-in entries, and a new target registered
in this file alone (a "toy" chip with its own weight and threshold grids) that the search space, the lowering,
``arch.build``, the CLI's ``--target`` choices and the exporter selection accept without touching other files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurosynth import arch
from neurosynth.hardware.targets import (
    TARGETS,
    Target,
    exporter_for,
    exporters,
    get_target,
    target_of,
)
from neurosynth.hardware.targets import loihi as loihi_target


def test_builtin_targets_are_data():
    assert TARGETS.names() == ["float", "loihi", "nir"]
    lo = get_target("loihi")
    assert lo.synapse == ("qconv2d", "qlinear") and lo.synapse_delay == 1 and lo.exporter == "loihi"
    assert lo.cost_model == "loihi" and lo.resources is loihi_target.loihi2_resources
    assert get_target("nir").downsample == "sumpool" and get_target("nir").exporter == "nir"
    assert not get_target("float").lowers and get_target("float").exporter is None
    assert exporters() == {"loihi": ["loihi"], "nir": ["nir"]}
    assert lo.layers == ("qconv2d", "qlinear", "delay", "neuron", "flatten") and get_target("float").layers == ()
    assert set(get_target("nir").layers) == {"conv2d", "linear", "sumpool2d", "neuron", "flatten"}
    with pytest.raises(ValueError, match="float, loihi, nir"):
        get_target("tpu")


def test_loihi_grids_are_the_qat_grids():
    from neurosynth.hardware.lava import qat

    for name in ("W_SCALE", "W_STEP", "W_MIN", "W_MAX", "TH_SCALE", "VTH_MAX", "DECAY_UNITY"):
        assert getattr(qat, name) == getattr(loihi_target, name)
    assert loihi_target.snap("threshold", 1.3) == qat.snap_threshold(1.3) == 83 / 64
    assert loihi_target.snap("beta", 0.9) == 1 - 410 / 4096 and loihi_target.snap("alpha", 1.0) == 1 - 1 / 4096
    w = torch.tensor([0.01, 0.02, -5.0, 5.0])
    assert torch.equal(loihi_target.quantize(w), torch.tensor([0.0, 2 / 64, -256 / 64, 254 / 64]))


def test_the_targets_package_imports_no_torch_lava_or_nir():
    import subprocess
    import sys

    code = ("import sys, neurosynth.hardware.targets as t; assert t.TARGETS.names(); "
            "print(sorted(m for m in ('torch', 'lava', 'nir', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_target_of_reads_new_and_old_specs():
    assert target_of({"format": arch.FORMAT, "kind": "sequential", "target": "loihi"}).name == "loihi"
    assert target_of({"format": "neurosynth.arch/1", "plugin": "neurosynth.hardware.lava.qat"}).name == "loihi"
    assert target_of({"format": arch.FORMAT, "kind": "sequential", "layers": []}).name == "float"
    assert exporter_for({"format": "neurosynth.arch/1", "plugin": "neurosynth.hardware.lava.qat"}) == "loihi"


# ----------------------------------------------------------------------------- a new target in one file
TOY_W_STEP = 0.25  # the toy chip stores weights as multiples of 1/4 in [-2, 2]
TOY_TH_STEP = 0.125


def toy_quantize(w: torch.Tensor) -> torch.Tensor:
    q = torch.clamp(torch.round(w / TOY_W_STEP) * TOY_W_STEP, -2.0, 2.0)
    return w + (q - w).detach()


class ToyLinear(nn.Linear):
    def effective_weight(self):
        return toy_quantize(self.weight)

    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


class ToyConv2d(nn.Conv2d):
    def effective_weight(self):
        return toy_quantize(self.weight)

    def forward(self, x):
        return self._conv_forward(x, self.effective_weight(), self.bias)


def _toy_layers():
    if "toylinear" in arch.LAYERS:
        return
    arch.layer_type("toylinear")(lambda c: ToyLinear(c["in_features"], c["out_features"], bias=c.get("bias", False)))
    arch.layer_type("toyconv2d")(lambda c: ToyConv2d(c["in_channels"], c["out_channels"], c["kernel_size"],
                                                     stride=c.get("stride", 1), padding=c.get("padding", 0),
                                                     bias=c.get("bias", False)))


def toy_snap(param: str, value: float) -> float:
    return max(round(value / TOY_TH_STEP), 1) * TOY_TH_STEP if param == "threshold" else round(value, 2)


TOY = Target(name="toy", description="a toy chip: LIF only, weights on a 1/4 grid", neurons=("lif",),
             edge_types=("ff",), multi_output=False, max_inputs=1, readouts=("spiking",), input="spikes",
             synapse=("toyconv2d", "toylinear"), downsample="sumpool", snap=toy_snap, quantize=toy_quantize,
             exporter="nir", register_layers=_toy_layers)


@pytest.fixture
def toy():
    TARGETS.add("toy", TOY)
    try:
        yield TOY
    finally:
        TARGETS._entries.pop("toy", None)  # leave the registry as the other tests expect it
        arch._TARGETS_LOADED.discard("toy")


def test_a_new_target_works_in_the_space_the_lowering_the_builder_and_the_export(toy):
    from snn_nas.mse.space import MSESpace, MSESpaceConfig
    from snn_nas.mse.spec import validate_spec
    from snn_nas.mse.targets import check_deployable, lower

    sp = MSESpace(MSESpaceConfig.from_dict({"input_shape": [1, 8, 8], "target": "toy", "widths": [4, 8],
                                            "stem_widths": [4], "depth": [1, 2], "max_nodes": 2}))
    rng = np.random.default_rng(0)
    pop = [sp.sample(rng) for _ in range(4)]
    for _ in range(30):
        child = sp.mutate(sp.crossover(pop[int(rng.integers(4))], pop[int(rng.integers(4))], rng), rng)
        validate_spec(child)
        check_deployable(child, "toy")
        pop[int(rng.integers(4))] = child
    spec = next(s for s in pop if any(c["downsample"] for c in s["cells"])) if any(
        c["downsample"] for s in pop for c in s["cells"]) else pop[0]
    assert {n["neuron"] for s in pop for c in s["cells"] for n in c["motif"]["nodes"]} == {"lif"}
    seq = lower(spec, "toy")
    assert seq["target"] == "toy" and seq["format"] == arch.FORMAT and "plugin" not in seq
    types = [layer["type"] for layer in seq["layers"]]
    assert "delay" not in types and "qconv2d" not in types and {"toyconv2d", "toylinear"} <= set(types)
    assert set(types) <= set(toy.layers)
    assert {layer["params"]["threshold"] for layer in seq["layers"] if layer["type"] == "neuron"} == {1.0}
    assert exporter_for(seq) == "nir" and exporters()["nir"] == ["nir", "toy"]
    model = arch.build(seq)  # arch.build registers the toy layer types through the target's hook
    syn = [m for m in model.modules() if isinstance(m, (ToyLinear, ToyConv2d))]
    assert syn and all(torch.all(torch.remainder(m.effective_weight(), TOY_W_STEP) == 0) for m in syn)
    x = (torch.rand((6, 2, 1, 8, 8), generator=torch.Generator().manual_seed(0)) < 0.5).float()
    assert model(x).shape == (6, 2, int(spec["num_classes"]))
    nir = pytest.importorskip("nir")
    from neurosynth.hardware.nir import to_nir

    graph = to_nir(model, seq["input_shape"], form="snntorch")  # the unfolded form: weights as the grid gives them
    assert isinstance(graph, nir.NIRGraph)
    w = [n.weight for n in graph.nodes.values() if isinstance(n, (nir.Affine, nir.Linear))]
    assert w and all(np.all(np.remainder(a, TOY_W_STEP) == 0) for a in w)  # the exporter used the toy grid


def test_the_cli_offers_a_new_target(toy):
    from neurosynth.apps.cli import build_parser

    args = build_parser().parse_args(["search", "mse", "--target", "toy", "--out", "x"])
    assert args.target == "toy"


def test_a_target_of_another_distribution_loads_through_its_entry_point():
    """``arch.build`` of a spec naming a target no module has registered yet calls the ``register_layers`` function
    the ``neurosynth.targets`` entry-point group declares for it (fresh process: nothing registered before)."""
    import subprocess
    import sys

    code = """
import importlib.metadata as md
from neurosynth import arch
ep = md.EntryPoint(name="chipx", value="neurosynth.hardware.targets.loihi:register_layers", group="neurosynth.targets")
md.entry_points = lambda group=None, **kw: [ep] if group == "neurosynth.targets" else []
assert "qlinear" not in arch.LAYERS
m = arch.build({"format": arch.FORMAT, "kind": "sequential", "target": "chipx", "input_shape": [3],
                "layers": [{"type": "qlinear", "in_features": 3, "out_features": 2}]})
print(type(m[0]).__name__, "chipx" in arch._TARGETS_LOADED)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["QLinear", "True"]
