"""Lava's simulator (Loihi2SimCfg) against the torch model (float) and our integer reference (fixed)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from lava_helpers import convnet, mlp, spikes

from neurosynth.errors import MissingExtraError
from neurosynth.hardware.lava import compat
from neurosynth.hardware.lava.builder import run_lava, to_lava
from neurosynth.hardware.lava.ir import LoihiExportError, extract
from neurosynth.hardware.lava.reference import simulate, torch_layer_spikes
from neurosynth.hardware.lava.verify import verify

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def test_patch_source_fixes_only_byteencoder():
    src = "@dataclass\nclass ByteEncoder:\n    x: int = 0\n\n@dataclass\nclass Other:\n    y: int = 0\n"
    out = compat.patch_source(src)
    assert out.count("@dataclass(unsafe_hash=True)\nclass ByteEncoder:") == 1
    assert "@dataclass\nclass Other:" in out
    assert compat.patch_source(out) == out  # idempotent


def test_missing_lava_raises_missing_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("lava") else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"neurosynth\[lava\]"):
        compat.import_lava()


@pytest.mark.lava
@needs_lava
def test_compat_imports_original_module_with_hashable_byteencoder():
    compat.import_lava()
    vm = sys.modules["lava.magma.compiler.var_model"]
    assert vm.__file__.endswith("lava/magma/compiler/var_model.py") and "site-packages" in vm.__file__
    assert vm.ByteEncoder.__hash__ is not None
    assert vm.CoreEncoder().x == vm.ByteEncoder()


@pytest.mark.lava
@needs_lava
def test_to_lava_builds_the_documented_graph():
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    m, _ = mlp(alpha=0.5, beta=0.8, threshold=1.25)
    g = to_lava(m, mode="fixed", num_steps=3)
    assert isinstance(g.source, RingBuffer)
    assert [type(p) for p in g.synapses] == [Dense, Dense] and [type(p) for p in g.neurons] == [LIF, LIF]
    w = g.synapses[0].weights.init
    np.testing.assert_array_equal(w, extract(m).stages[0].int_weight())
    lif = g.neurons[0]
    assert (lif.du.init, lif.dv.init, lif.vth.init) == (2047, round(0.2 * 4096), 80)


@pytest.mark.lava
@needs_lava
def test_lava_float_equals_torch_and_fixed_equals_reference_mlp():
    m, _ = mlp(alpha=0.4)
    x = spikes(12, 5, 20)
    ts = torch_layer_spikes(m, x)
    lf = run_lava(m, x, "float", copies=2, slots=3)  # 2 replicas x 3 slots: exercises both batching paths
    for t_sp, l_sp in zip(ts, lf.spikes):
        assert t_sp.any()
        np.testing.assert_array_equal(l_sp, t_sp)
    ref = simulate(extract(m), x, "fixed")
    lx = run_lava(m, x, "fixed", copies=2, slots=3)
    for a, b in zip(lx.spikes, ref.spikes):
        assert b.any()
        np.testing.assert_array_equal(a, b)


@pytest.mark.lava
@needs_lava
def test_single_sample_run_equals_batched_run():
    m, _ = mlp(alpha=0.3)
    x = spikes(10, 3, 20, seed=4)
    batched = run_lava(m, x, "fixed", copies=1, slots=8)
    single = run_lava(m, x[:, 1:2], "fixed")
    for a, b in zip(single.spikes, batched.spikes):
        np.testing.assert_array_equal(a[:, 0], b[:, 1])


@pytest.mark.lava
@needs_lava
def test_runs_leave_nothing_in_lavas_global_registries():
    """lava-nc keeps every process and Var ever built in two singletons; a long check (one graph per run) grew
    by hundreds of MB per run until a Lava process was killed. Finished runs must leave them as they were."""
    import weakref

    from lava.magma.core.process.process import ProcessServer
    from lava.magma.core.process.variable import VarServer

    import neurosynth.hardware.lava.builder as builder

    m, _ = mlp(alpha=0.3)
    x = spikes(10, 2, 20, seed=5)
    run_lava(m, x[:, :1], "fixed", copies=1, slots=1)  # Lava imported and warmed up
    n_proc, n_var = len(ProcessServer().processes), len(VarServer().vars)
    built = []
    real_build = builder.build_graph

    def build(*a, **k):
        g = real_build(*a, **k)
        built.append(weakref.ref(g.synapses[0]))
        return g

    builder.build_graph = build
    try:
        run_lava(m, x, "fixed", copies=1, slots=1)  # two runs, two graphs
    finally:
        builder.build_graph = real_build
    assert len(built) == 2
    assert (len(ProcessServer().processes), len(VarServer().vars)) == (n_proc, n_var)
    import gc

    gc.collect()
    assert all(r() is None for r in built)  # the runs' processes (and their weights) are freed


@pytest.mark.lava
@needs_lava
def test_conv_network_float_equals_torch():
    m, _ = convnet()
    x = spikes(8, 3, 2, 6, 6)
    ts = torch_layer_spikes(m, x)
    lf = run_lava(m, x, "float", input_shape=(2, 6, 6))
    for t_sp, l_sp in zip(ts, lf.spikes):
        assert t_sp.any()
        np.testing.assert_array_equal(l_sp, t_sp)


@pytest.mark.lava
@needs_lava
def test_model_without_delay_matches_after_per_layer_shift():
    m, _ = mlp(delay=False)
    x = spikes(10, 2, 20)
    rep = verify(m, x, modes=("float",))
    assert rep["lava_lag_steps"] == [1, 2]
    assert rep["float_exact"] and sum(rep["float_spikes"].values()) > 0


@pytest.mark.lava
@needs_lava
def test_subtract_reset_is_refused_before_building():
    from neurosynth.layers import SNN
    from neurosynth.neurons import LIF

    m = SNN(torch.nn.Linear(3, 2, bias=False), LIF(reset="subtract"))
    with pytest.raises(LoihiExportError, match="reset='zero'"):
        to_lava(m)


@pytest.mark.lava
@needs_lava
def test_file_recorder_equals_lava_ringbuffer_sink():
    from lava_helpers import pooled_convnet

    from neurosynth.hardware.lava.builder import build_graph, replicate

    m, spec = pooled_convnet()
    net = replicate(extract(m, tuple(spec["input_shape"])), 2)
    x = spikes(6, 1, *net.input_shape, seed=3)[:, 0].numpy().astype(np.int32)
    a = build_graph(net, x, "fixed", sink="file")
    rec_dir = a.record_dir
    fast = a.run()
    slow = build_graph(net, x, "fixed", sink="ringbuffer").run()
    assert not __import__("os").path.exists(rec_dir)  # the memmaps are removed after the run
    assert len(fast) == len(slow) == len(net.stages)
    for f, s in zip(fast, slow):
        assert f.dtype == s.dtype == bool and f.shape == s.shape
        np.testing.assert_array_equal(f, s)
    assert sum(int(f.sum()) for f in fast) > 0


@pytest.mark.lava
@needs_lava
def test_conv_parameters_above_lavas_int8_are_refused_and_auto_copies_stays_below():
    from lava_helpers import pooled_convnet

    from neurosynth.hardware.lava.builder import CONV_INT8_MAX, auto_copies, replicate

    m, spec = pooled_convnet()  # pooling layer: groups = 4 channels
    shape = tuple(spec["input_shape"])
    net = extract(m, shape)
    x = spikes(3, 32, *shape)
    with pytest.raises(ValueError, match=r"conv layer 3: groups \(128,\) exceeds 127.*fewer copies"):
        run_lava(net, x, "fixed", copies=32)  # 4 * 32 = 128 groups: Lava would wrap them to -128
    r = auto_copies(net, 1000)
    assert 1 <= r and max(s.groups for s in replicate(net, r).stages) <= CONV_INT8_MAX


@pytest.mark.slow
@pytest.mark.lava
@needs_lava
def test_a_failing_lava_run_raises_instead_of_hanging(tmp_path):
    """Lava's stop() after a failed run waits forever (lava-nc 0.10); LavaGraph.run terminates the processes and
    re-raises. The failure is provoked by lifting our int8 guard: 176 groups wrap to -80 in Lava's Conv model,
    which then raises inside its process (how 11 copies of a 16-channel pooled net stalled before)."""
    import subprocess
    from pathlib import Path

    script = tmp_path / "fail.py"
    script.write_text(
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from lava_helpers import pooled_convnet, spikes\n"
        "from neurosynth.hardware.lava import builder\n"
        "from neurosynth.hardware.lava.ir import extract\n"
        "builder.CONV_INT8_MAX = 10 ** 6\n"
        "m, spec = pooled_convnet()\n"
        "net = builder.replicate(extract(m, tuple(spec['input_shape'])), 44)\n"  # pooling groups 4 * 44 = 176
        "x = spikes(3, 1, *net.input_shape)[:, 0].numpy().astype(np.int32)\n"
        "try:\n"
        "    builder.build_graph(net, x, 'float').run()\n"
        "except RuntimeError as e:\n"
        "    print('RAISED', type(e).__name__, flush=True)\n"
        "    sys.exit(3)\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 3 and "RAISED RuntimeError" in p.stdout, p.stderr[-2000:]


@pytest.mark.lava
@needs_lava
def test_a_graph_built_but_never_run_leaves_no_recording_files():
    import gc
    import os

    m, _ = mlp()
    g = to_lava(m, num_steps=2)
    folder = g.record_dir
    assert os.path.isdir(folder)
    del g
    gc.collect()
    assert not os.path.exists(folder)
