"""One route into the fused kernels: the neuron modules and the Recurrent layer go through
``neurosynth.functional`` (``lif``, ``cubalif``, ``alif``, ``recurrent``), and no library module outside the
kernel machinery (``neurosynth/_ops``, ``neurosynth/_cext.py``) and ``functional.py`` imports ``neurosynth._ops``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from neurosynth import functional
from neurosynth.layers import Recurrent
from neurosynth.neurons import ALIF, IF, LIF, CubaLIF

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ("neurosynth", "snn_nas", "hardware", "datasets", "apps")  # folders installed as packages
ALLOWED = {Path("neurosynth/functional.py"), Path("neurosynth/_cext.py")}


def _imports_ops(tree: ast.AST, rel: Path) -> list[int]:
    """Line numbers of imports of ``neurosynth._ops`` (absolute, or relative from inside the core)."""
    depth = len(rel.parts) - 1  # folders below the repository root
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name == "neurosynth._ops" or a.name.startswith("neurosynth._ops.") for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level and rel.parts[0] == "neurosynth":  # resolve the relative import inside the package
                base = list(rel.parts[: depth - node.level + 1])
                mod = ".".join(base + ([mod] if mod else []))
            names = [f"{mod}.{a.name}" for a in node.names]
            if mod == "neurosynth._ops" or mod.startswith("neurosynth._ops.") or "neurosynth._ops" in names:
                lines.append(node.lineno)
    return lines


def test_only_functional_imports_the_ops():
    offenders = []
    for folder in LIBRARY:
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT)
            if rel in ALLOWED or rel.parts[:2] == ("neurosynth", "_ops"):
                continue
            for line in _imports_ops(ast.parse(f.read_text()), rel):
                offenders.append(f"{rel}:{line}")
    assert not offenders, f"import the fused kernels through neurosynth.functional, not neurosynth._ops: {offenders}"


def test_the_route_check_sees_a_relative_import():
    """The checker itself: a relative ``from ._ops...`` in a core module and an absolute one elsewhere count."""
    core = ast.parse("from ._ops.lif.autograd import lif\nfrom . import _ops\nfrom .functional import lif\n")
    assert _imports_ops(core, Path("neurosynth/layers.py")) == [1, 2]
    upper = ast.parse("import neurosynth._ops.lif\nfrom neurosynth import functional\n")
    assert _imports_ops(upper, Path("snn_nas/x.py")) == [1]


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(functional, name)

    def spy(*args, **kw):
        calls.append(name)
        return real(*args, **kw)

    monkeypatch.setattr(functional, name, spy)
    return calls


@pytest.mark.parametrize("make,fn", [(lambda: LIF(beta=0.9), "lif"), (lambda: IF(), "lif"),
                                     (lambda: LIF(beta=0.9, reset_delay=True), "lif"),
                                     (lambda: CubaLIF(), "cubalif"), (lambda: ALIF(), "alif")])
def test_fused_neurons_run_through_functional(monkeypatch, make, fn):
    calls = _count_calls(monkeypatch, fn)
    x = torch.randn(6, 2, 5, generator=torch.Generator().manual_seed(0))
    neuron = make()
    s = neuron(x)
    assert calls == [fn]
    assert s.sum() > 0, "the input should make the neurons fire"
    python = make()
    python.backend = "python"
    assert torch.equal(s, python(x)), "the functional route gives the reference loop's spikes"


@pytest.mark.parametrize("neuron", ["lif", "cubalif", "alif"])
def test_recurrent_layer_runs_through_functional(monkeypatch, neuron):
    calls = _count_calls(monkeypatch, "recurrent")
    g = torch.Generator().manual_seed(1)
    layer = Recurrent(5, neuron)
    with torch.no_grad():
        layer.rec.weight.copy_(torch.randn(5, 5, generator=g) * 0.5)
    x = torch.randn(6, 2, 5, generator=g) + 0.5
    s = layer(x)
    assert calls == ["recurrent"]
    assert s.sum() > 0, "the input should make the neurons fire"
    layer.neuron.backend = "python"
    assert torch.equal(s, layer(x)), "the functional route gives the reference loop's spikes"
