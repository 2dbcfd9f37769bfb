"""NIR interoperability matrix: neurosynth <-> snnTorch, Norse, Sinabs, Rockpool, Spyx (and lava-dl), both directions.

Every foreign library runs in its own throwaway virtualenv under ``--envs`` (default ``/tmp``), so their pins
(numpy 2, older nir, JAX) never touch ours. Envs are built once with ``--setup`` (``pip install --no-deps`` the
reader plus only what it imports; torch is not installed again: a ``.pth`` file appends a folder of links to this
venv's torch, so readers get the same pinned torch 2.14.1). snnTorch 1.0.0 runs from this project's venv.

Cells (one per reader x network x direction x form), each written to the JSON as soon as it is measured, so an
interrupted run resumes where it stopped (``--force`` re-measures):

- ``ours -> theirs``: our model (seeded weights) -> ``to_nir(form=...)`` -> ``.nir`` file -> the reader's import ->
  run on the same input -> output spikes compared with ours step by step;
- ``theirs -> ours``: the reader's own model of that kind (seeded) -> its NIR export -> ``.nir`` file ->
  ``from_nir`` -> compared with the reader's own output on the same input.

Verdicts: ``identical``; ``shifted`` (identical after delaying one side by ``shift`` steps); ``differs``
(``mismatch`` = fraction of output entries that differ, with the spike counts); ``not supported`` (the reader's
import or export raised: its last error line); ``not installable here`` (the pip error). Inputs: Bernoulli(0.3)
spike trains, T = 20, 4 samples, fed one sample at a time (snnTorch and Norse map NIR's per-sample
``Flatten(start_dim=0)`` onto the batch axis, see docs/nir_interop.md). Results: ``benchmarks/results/nir_interop.json``.

Usage::

    .venv/bin/python benchmarks/nir_interop.py --setup          # build the reader envs (minutes, once)
    .venv/bin/python benchmarks/nir_interop.py                  # measure every missing cell
    .venv/bin/python benchmarks/nir_interop.py --readers norse --force

The worker side (``--worker READER ...``) imports only numpy, nir and the reader: it runs inside the reader's env.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

T, B, P_SPIKE, SEED = 20, 4, 0.3, 0
DT = 1e-4
ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ("dense_lif", "cubalif", "conv_avgpool", "conv_sumpool", "recurrent", "digits")
INPUT_SHAPES = {"dense_lif": (12,), "cubalif": (12,), "conv_avgpool": (1, 8, 8), "conv_sumpool": (1, 8, 8),
                "recurrent": (12,), "digits": (64,)}
DIGITS_SAMPLES = 256  # the trained digits MLP of issue 24 (ours -> snnTorch / Norse only)
FORMS = ("portable", "snntorch", "norse")

# reader -> (pip arguments for its env (all --no-deps), version string shown in the table)
READERS: dict[str, dict] = {
    "snntorch": {"env": None, "pip": [], "version": "snnTorch 1.0.0 (nir 1.0.8, nirtorch 2.6)"},
    "norse": {"env": "nirenv_norse", "pip": ["norse==1.1.0", "nir", "nirtorch", "numpy", "h5py"],
              "version": "Norse 1.1.0"},
    "sinabs": {"env": "nirenv_sinabs", "pip": ["sinabs==3.1.3", "nir<=1.0.4", "nirtorch==1.0", "numpy", "h5py", "pbr", "matplotlib",
                                               "contourpy", "cycler", "fonttools", "kiwisolver", "packaging", "pillow",
                                               "pyparsing", "python-dateutil", "six"],
               "version": "Sinabs 3.1.3 (nir 1.0.4, nirtorch 1.0: its pins)"},
    "sinabs-nir108": {"env": "nirenv_sinabs108",
                      "pip": ["sinabs==3.1.3", "nir==1.0.8", "nirtorch==1.0", "numpy", "h5py", "pbr", "matplotlib",
                              "contourpy", "cycler", "fonttools", "kiwisolver", "packaging", "pillow", "pyparsing",
                              "python-dateutil", "six"],
                      "version": "Sinabs 3.1.3 with nir 1.0.8 (its nir<=1.0.4 pin overridden)"},
    "rockpool": {"env": "nirenv_rockpool", "pip": ["rockpool==3.1.0", "nir", "nirtorch", "numpy", "scipy", "h5py"],
                 "version": "Rockpool 3.1.0"},
    "spyx": {"env": "nirenv_spyx", "pip": None, "version": "Spyx 1.0.0 (JAX, CPU)"},
    "lava-dl": {"env": "nirenv_lavadl", "pip": ["lava-dl"], "version": "lava-dl"},
}


# ============================================================================ worker side (reader env)
def _graph_dt(graph) -> float:
    meta = dict(getattr(graph, "metadata", None) or {})
    return float(np.asarray(meta.get("dt", DT)))


def _run_torch_stateful(net, x: np.ndarray, call) -> np.ndarray:
    """Run ``net`` one sample at a time over ``x [T, B, ...]``; ``call(net, x_t, state) -> (out, state)``."""
    import torch

    outs = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            state, seq = None, []
            for t in range(x.shape[0]):
                xt = torch.as_tensor(x[t, b:b + 1], dtype=torch.float32)
                out, state = call(net, xt, state)
                seq.append(np.asarray(out.detach().float()).reshape(-1))
            outs.append(np.stack(seq))
    return np.stack(outs, 1)


def _w_snntorch_import(graph, x):
    import contextlib
    import io

    from snntorch import utils as sutils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):
        net = import_from_nir(graph)

    def call(net, xt, state):
        if state is None:
            sutils.reset(net)
            return net(xt)
        return net(xt, state)
    return _run_torch_stateful(net, x, call)


def _w_norse_import(graph, x):
    import norse.torch as nt

    net = nt.from_nir(graph, dt=_graph_dt(graph))

    def call(net, xt, state):
        return net(xt) if state is None else net(xt, state)
    return _run_torch_stateful(net, x, call)


def _w_sinabs_import(graph, x):
    import sinabs

    net = sinabs.from_nir(graph, batch_size=1)

    def call(net, xt, state):
        if state is None:
            for m in net.modules():
                if hasattr(m, "reset_states"):
                    m.reset_states()
        return net(xt), True
    return _run_torch_stateful(net, x, call)


def _w_rockpool_import(graph, x):
    import torch
    from rockpool.nn.modules import from_nir

    net = from_nir(graph)  # Rockpool's from_nir takes no dt
    outs = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            for m in net.modules():
                if m is not net and hasattr(m, "reset_state"):
                    m.reset_state()
            xb = torch.as_tensor(x[:, b], dtype=torch.float32).reshape(1, x.shape[0], -1)  # Rockpool: [B, T, N]
            out = net(xb)
            while isinstance(out, tuple):
                out = out[0]
            outs.append(np.asarray(out.detach()).reshape(x.shape[0], -1))
    return np.stack(outs, 1)


def _w_spyx_import(graph, x):
    import jax
    import jax.numpy as jnp
    import spyx

    outs = []
    for b in range(x.shape[1]):
        xb = x[:, b:b + 1]
        if xb.ndim == 5:  # Spyx runs images channels-last: [T, B, H, W, C]
            xb = xb.transpose(0, 1, 3, 4, 2)
        _, out = spyx.nir.from_nir(graph, jnp.asarray(xb), dt=_graph_dt(graph))  # [T, B, ...] in and out
        outs.append(np.asarray(jax.device_get(out)).reshape(x.shape[0], -1))
    return np.stack(outs, 1)


WORKER_IMPORT = {"snntorch": _w_snntorch_import, "norse": _w_norse_import, "sinabs": _w_sinabs_import,
                 "sinabs-nir108": _w_sinabs_import,
                 "rockpool": _w_rockpool_import, "spyx": _w_spyx_import}


def _seeded(shape, seed, scale=0.6):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _w_snntorch_export(net_name, x):
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir
    from torch import nn

    torch.manual_seed(SEED)

    def lin(i, o, seed):
        m = nn.Linear(i, o)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(_seeded((o, i), seed)))
            m.bias.copy_(torch.as_tensor(_seeded((o,), seed + 1, 0.1)))
        return m

    def leaky(n, beta=0.85):
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), reset_mechanism="zero",
                         init_hidden=True, reset_delay=False)

    if net_name == "dense_lif":
        net = nn.Sequential(lin(12, 16, 1), leaky(16), lin(16, 6, 3), leaky(6, 0.9))
    elif net_name == "cubalif":
        syn = [snn.Synaptic(alpha=torch.full((n,), 0.7), beta=torch.full((n,), 0.85), threshold=torch.ones(n),
                            reset_mechanism="zero", init_hidden=True, reset_delay=False) for n in (16, 6)]
        net = nn.Sequential(lin(12, 16, 1), syn[0], lin(16, 6, 3), syn[1])
    elif net_name == "recurrent":
        rl = snn.RLeaky(beta=torch.full((16,), 0.85), threshold=torch.ones(16), linear_features=16,
                        reset_mechanism="zero", init_hidden=True, reset_delay=False)
        with torch.no_grad():
            rl.recurrent.weight.copy_(torch.as_tensor(_seeded((16, 16), 5, 0.3)))
            rl.recurrent.bias.zero_()
        net = nn.Sequential(lin(12, 16, 1), rl, lin(16, 6, 3), leaky(6, 0.9))
    else:
        pool = nn.AvgPool2d(2) if net_name == "conv_avgpool" else None
        if pool is None:
            raise NotImplementedError("snnTorch has no sum-pooling layer to export (its NIR export maps AvgPool2d)")
        conv = nn.Conv2d(1, 4, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.as_tensor(_seeded((4, 1, 3, 3), 7)))
            conv.bias.copy_(torch.as_tensor(_seeded((4,), 8, 0.1)))
        net = nn.Sequential(conv, snn.Leaky(beta=torch.full((4, 8, 8), 0.85), threshold=torch.ones(4, 8, 8),
                                            reset_mechanism="zero", init_hidden=True, reset_delay=False),
                            pool, nn.Flatten(), lin(64, 6, 3), leaky(6, 0.9))
    for m in net.modules():
        if hasattr(m, "reset_hidden"):
            m.reset_hidden()
    graph = export_to_nir(net, torch.zeros(1, *x.shape[2:]), ignore_dims=[0])
    from snntorch import utils as sutils

    def call(net, xt, state):
        if state is None:
            sutils.reset(net)
        out = net(xt)
        return (out[0] if isinstance(out, tuple) else out), True
    return graph, _run_torch_stateful(net, x, call), DT


def _w_norse_export(net_name, x):
    import norse.torch as nt
    import torch
    from torch import nn

    dt = 1e-3  # Norse's default dt, which its to_nir writes time constants with

    def lin(i, o, seed):
        m = nn.Linear(i, o)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(_seeded((o, i), seed)))
            m.bias.copy_(torch.as_tensor(_seeded((o,), seed + 1, 0.1)))
        return m

    def lifbox(n, tau_inv=150.0):
        return nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.full((n,), tau_inv), v_th=torch.full((n,), 0.3),
                                                 v_leak=torch.zeros(n)), dt=dt)

    if net_name == "dense_lif":
        net = nt.SequentialState(lin(12, 16, 1), lifbox(16), lin(16, 6, 3), lifbox(6, 100.0))
    elif net_name == "cubalif":
        def cell(n):
            return nt.LIFCell(nt.LIFParameters(tau_syn_inv=torch.full((n,), 300.0), tau_mem_inv=torch.full((n,), 150.0),
                                               v_th=torch.full((n,), 0.3), v_leak=torch.zeros(n)), dt=dt)
        net = nt.SequentialState(lin(12, 16, 1), cell(16), lin(16, 6, 3), cell(6))
    else:
        raise NotImplementedError(f"no Norse model written for {net_name}: Norse's to_nir has no pooling and no "
                                  "recurrent export")
    graph = nt.to_nir(net, torch.zeros(1, *x.shape[2:]), dt=dt)

    def call(net, xt, state):
        return net(xt, state)
    return graph, _run_torch_stateful(net, x, call), dt


def _w_sinabs_export(net_name, x):
    import sinabs
    import sinabs.layers as sl
    import torch
    from torch import nn

    if net_name != "dense_lif":
        raise NotImplementedError(f"no Sinabs model written for {net_name}: Sinabs has no CubaLIF and no recurrent "
                                  "NIR export; its conv path is not measured here")
    lins = [nn.Linear(12, 16), nn.Linear(16, 6)]
    with torch.no_grad():
        for i, m in enumerate(lins):  # x4: Sinabs' default norm_input scales the input by 1 - exp(-1/tau)
            m.weight.copy_(torch.as_tensor(_seeded(tuple(m.weight.shape), 2 * i + 1, 2.4)))
            m.bias.copy_(torch.as_tensor(_seeded(tuple(m.bias.shape), 2 * i + 2, 0.1)))
    # Sinabs: tau in time steps, default norm_input: v = a v + (1 - a) x with a = exp(-1/tau)
    net = nn.Sequential(lins[0], sl.LIF(tau_mem=torch.full((16,), 6.0), spike_threshold=torch.ones(16)),
                        lins[1], sl.LIF(tau_mem=torch.full((6,), 10.0), spike_threshold=torch.ones(6)))
    graph = sinabs.to_nir(net, torch.zeros(1, 1, *x.shape[2:]))
    outs = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            for m in net.modules():
                if hasattr(m, "reset_states"):
                    m.reset_states()
            outs.append(net(torch.as_tensor(x[:, b:b + 1]).transpose(0, 1)).reshape(x.shape[0], -1).numpy())
    return graph, np.stack(outs, 1), 1.0  # Sinabs writes tau in steps: dt = 1


def _w_rockpool_export(net_name, x):
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch, to_nir

    if net_name not in ("dense_lif", "cubalif"):
        raise NotImplementedError(f"no Rockpool model written for {net_name} (Rockpool imports no Conv2d)")
    dt = 1e-3
    tau_syn = 2e-3 if net_name == "cubalif" else dt  # LIFTorch is a CubaLIF; tau_syn = dt is Rockpool's fastest
    lins = [LinearTorch((12, 16), weight=torch.as_tensor(_seeded((12, 16), 1)), has_bias=False),
            LinearTorch((16, 6), weight=torch.as_tensor(_seeded((16, 6), 3)), has_bias=False)]
    net = Sequential(lins[0], LIFTorch(16, tau_mem=7e-3, tau_syn=tau_syn, threshold=1.0, dt=dt),
                     lins[1], LIFTorch(6, tau_mem=1e-2, tau_syn=tau_syn, threshold=1.0, dt=dt))
    graph = to_nir(net, torch.zeros(1, 1, 12))
    outs = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            net.reset_state()
            out, _, _ = net(torch.as_tensor(x[:, b]).reshape(1, x.shape[0], -1))
            outs.append(np.asarray(out.detach()).reshape(x.shape[0], -1))
    return graph, np.stack(outs, 1), dt


def _w_spyx_export(net_name, x):
    import jax.numpy as jnp
    import spyx
    from flax import nnx

    if net_name != "dense_lif":
        raise NotImplementedError(f"no Spyx model written for {net_name}")
    rngs = nnx.Rngs(SEED)
    lins = [nnx.Linear(12, 16, rngs=rngs), nnx.Linear(16, 6, rngs=rngs)]
    for i, m in enumerate(lins):
        m.kernel[...] = jnp.asarray(_seeded((m.in_features, m.out_features), 2 * i + 1))
        m.bias[...] = jnp.asarray(_seeded((m.out_features,), 2 * i + 2, 0.1))
    model = spyx.nn.Sequential(lins[0], spyx.nn.LIF((16,), beta=0.85, rngs=rngs),
                               lins[1], spyx.nn.LIF((6,), beta=0.9, rngs=rngs))
    graph = spyx.nir.to_nir(model, {"input": np.array([12])}, {"output": np.array([6])}, dt=DT)
    outs = []
    for b in range(x.shape[1]):
        state = model.initial_state(1)
        seq = []
        for t in range(x.shape[0]):
            out, state = model(jnp.asarray(x[t, b:b + 1]), state)
            seq.append(np.asarray(out).reshape(-1))
        outs.append(np.stack(seq))
    return graph, np.stack(outs, 1), DT


WORKER_EXPORT = {"spyx": _w_spyx_export, "snntorch": _w_snntorch_export, "norse": _w_norse_export,
                 "sinabs": _w_sinabs_export, "sinabs-nir108": _w_sinabs_export,
                 "rockpool": _w_rockpool_export}


def worker_main(argv: list[str]) -> int:
    import nir

    reader, mode = argv[0], argv[1]
    if mode == "import":
        nir_path, x_path, out_path = argv[2:5]
        graph = nir.read(nir_path)
        y = WORKER_IMPORT[reader](graph, np.load(x_path))
        np.save(out_path, np.asarray(y, dtype=np.float32))
    else:
        net_name, x_path, nir_out, y_out = argv[2:6]
        fn = WORKER_EXPORT.get(reader)
        if fn is None:
            raise NotImplementedError(f"no export worker written for {reader}")
        graph, y, dt = fn(net_name, np.load(x_path))
        nir.write(nir_out, graph)
        np.save(y_out, np.asarray(y, dtype=np.float32))
        Path(y_out + ".dt").write_text(repr(dt))
    return 0


# ============================================================================ driver side (our venv)
def _our_model(net_name: str, work: Path):
    import torch
    from torch import nn

    from neurosynth.layers import SNN, Recurrent, SumPool2d
    from neurosynth.neurons import LIF, CubaLIF

    if net_name == "digits":  # `neurosynth train --epochs 3 --hidden 64 --reset zero`, cached in the work folder
        from neurosynth.apps.cli.train import train_digits
        from neurosynth.rundir import load_run

        run = work / "digits_run"
        if not (run / "model.pt").exists():
            train_digits({"out": str(run), "epochs": 3, "hidden": "64", "reset": "zero", "no_progress": True,
                          "seed": SEED, "T": T})
        return load_run(run)[0]
    gen = torch.Generator().manual_seed(SEED)

    def lin(i, o):
        m = nn.Linear(i, o)
        with torch.no_grad():
            m.weight.copy_(torch.randn(o, i, generator=gen) * 0.6)
            m.bias.copy_(torch.randn(o, generator=gen) * 0.1)
        return m

    def lif(shape, beta=0.85):
        b = torch.rand(shape, generator=gen) * 0.3 + 0.6  # per-neuron decays
        return LIF(beta=b if beta is None else beta, threshold=1.0, reset="zero", shape=shape)

    if net_name == "dense_lif":
        return SNN(lin(12, 16), lif(16, None), lin(16, 6), lif(6, 0.9))
    if net_name == "cubalif":
        return SNN(lin(12, 16), CubaLIF(alpha=0.7, beta=0.85, threshold=1.0, reset="zero", shape=16),
                   lin(16, 6), CubaLIF(alpha=0.6, beta=0.9, threshold=1.0, reset="zero", shape=6))
    if net_name == "recurrent":
        rec = Recurrent(16, LIF(beta=0.85, threshold=1.0, reset="zero", shape=16))
        with torch.no_grad():
            rec.rec.weight.copy_(torch.randn(16, 16, generator=gen) * 0.3)
            if rec.rec.bias is not None:
                rec.rec.bias.zero_()
        return SNN(lin(12, 16), rec, lin(16, 6), lif(6, 0.9))
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(4, 1, 3, 3, generator=gen) * 0.8)
        conv.bias.copy_(torch.randn(4, generator=gen) * 0.1)
    pool = nn.AvgPool2d(2) if net_name == "conv_avgpool" else SumPool2d(2, 2)
    return SNN(conv, lif((4, 8, 8), 0.85), pool, nn.Flatten(), lin(64, 6), lif(6, 0.9))


def _input(net_name: str) -> np.ndarray:
    if net_name == "digits":  # the first DIGITS_SAMPLES test digits, rate-coded as in training
        import torch

        from neurosynth.datasets.digits import digits_loaders

        _, test = digits_loaders(T=T, seed=SEED)
        xs = torch.cat([x for x, _ in test], 1)[:, :DIGITS_SAMPLES]
        return xs.numpy().astype(np.float32)
    rng = np.random.default_rng(SEED + 1)
    return (rng.random((T, B) + INPUT_SHAPES[net_name]) < P_SPIKE).astype(np.float32)


def compare(ours: np.ndarray, theirs: np.ndarray, max_shift: int = 3) -> dict:
    """The verdict for one cell: identical, shifted by k steps (theirs[t + k] == ours[t], first k steps silent),
    or differs (fraction of differing entries)."""
    ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
    res = {"spikes_ours": float(ours.sum()), "spikes_theirs": float(theirs.sum())}
    if ours.shape == theirs.shape and ours.ndim == 3:  # the class a spike-count readout would predict
        res["same_prediction"] = float((ours.sum(0).argmax(-1) == theirs.sum(0).argmax(-1)).mean())
    if ours.shape != theirs.shape:
        return {**res, "verdict": "differs", "reason": f"output shape {theirs.shape} != ours {ours.shape}"}
    if not ours.any() and not theirs.any():
        return {**res, "verdict": "no spikes", "reason": "neither side spiked: not a comparison"}
    if np.array_equal(ours, theirs):
        return {**res, "verdict": "identical", "mismatch": 0.0}
    for k in range(1, max_shift + 1):
        if np.array_equal(theirs[k:], ours[:-k]) and not theirs[:k].any():
            return {**res, "verdict": "shifted", "shift": k, "mismatch": float((ours != theirs).mean())}
    return {**res, "verdict": "differs", "mismatch": float((ours != theirs).mean())}


def _env_python(reader: str, envs: Path) -> Path:
    env = READERS[reader]["env"]
    return Path(sys.executable) if env is None else envs / env / "bin" / "python"


def _run_worker(reader: str, envs: Path, args: list[str], timeout: float = 600) -> tuple[bool, str]:
    py = _env_python(reader, envs)
    if not py.exists():
        return False, f"no env at {py.parent.parent} (run --setup)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # PYTHONHASHSEED: nirtorch's legacy loader (Norse, Sinabs, Rockpool) picks among entry nodes by set order
    env.update({"OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore", "PYTHONHASHSEED": "0"})
    p = subprocess.run([str(py), str(Path(__file__).resolve()), "--worker", reader, *args], capture_output=True,
                       text=True, timeout=timeout, env=env, cwd="/tmp")
    if p.returncode != 0:
        lines = [ln.strip() for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ("Error" in ln or "Exception" in ln) and ":" in ln and "JAX_TRACEBACK" not in ln]
        return False, (errors or lines or [f"exit {p.returncode}"])[-1][:400]
    return True, p.stderr[-400:]


def _save(results: dict, path: Path) -> None:
    from neurosynth.io import write_json

    write_json(path, results)


def setup_envs(readers: list[str], envs: Path) -> None:
    """Build each reader's env: venv, a .pth to a folder of links to our torch, then pip --no-deps."""
    base = envs / "nirtorch_base"
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    base.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(site):
        if name.split("-")[0].split(".")[0] in ("torch", "torchgen", "functorch", "nvidia", "cuda", "triton", "sympy",
                                                 "mpmath", "networkx", "jinja2", "markupsafe", "fsspec", "filelock",
                                                 "typing_extensions", "torchvision"):
            link = base / name
            if not link.exists():
                link.symlink_to(site / name)
    for r in readers:
        spec = READERS[r]
        if spec["env"] is None:
            continue
        d = envs / spec["env"]
        if (d / ".done").exists():
            continue
        subprocess.run(["python3", "-m", "venv", str(d)], check=True)
        pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
        (d / "lib" / pyver / "site-packages" / "zz_nirtorch_base.pth").write_text(str(base) + "\n")
        pip = [str(d / "bin" / "pip"), "install", "-q"]
        cmd = pip + (["spyx==1.0.0", "jax", "jaxlib"] if spec["pip"] is None else ["--no-deps", *spec["pip"]])
        p = subprocess.run(cmd, capture_output=True, text=True)
        (d.parent / f"{d.name}.pip.log").write_text(p.stdout + p.stderr)
        if p.returncode == 0:
            (d / ".done").write_text("ok\n")
        print(f"{r}: {'ok' if p.returncode == 0 else 'pip failed: ' + (p.stderr.strip().splitlines() or ['?'])[-1]}")


def measure(readers: list[str], envs: Path, out: Path, work: Path, force: bool) -> dict:
    import torch

    from neurosynth.hardware.nir import from_nir, read_nir, to_nir, write_nir
    from neurosynth.hardware.nir.export import identical_readers

    results = json.loads(out.read_text()) if out.exists() else {}
    results.setdefault("cells", {})
    results["config"] = {"T": T, "B": B, "p_spike": P_SPIKE, "seed": SEED, "dt": DT, "networks": list(NETWORKS),
                         "forms": list(FORMS), "command": "python benchmarks/nir_interop.py"}
    results.setdefault("versions", {})
    import platform

    import nir

    results["versions"]["neurosynth"] = f"this checkout (nir {nir.__version__}, torch {torch.__version__})"
    results["machine"] = f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, CPU only"
    work.mkdir(parents=True, exist_ok=True)
    for net_name in NETWORKS:
        x = _input(net_name)
        np.save(work / f"{net_name}_x.npy", x)
        model = _our_model(net_name, work).eval()
        with torch.no_grad():
            ours = model(torch.as_tensor(x)).numpy()
        np.save(work / f"{net_name}_ours.npy", ours)
        for form in FORMS:
            graph = to_nir(model, INPUT_SHAPES[net_name], dt=DT, form=form)
            write_nir(graph, work / f"{net_name}_{form}.nir")
            results.setdefault("predicted", {})[f"{net_name}/{form}"] = identical_readers(graph)
    for reader in readers:
        results["versions"][reader] = READERS[reader]["version"]
        env = READERS[reader]["env"]
        pip_log = Path(envs) / f"{env}.pip.log" if env else None
        installed = env is None or (envs / env / ".done").exists()
        for net_name in NETWORKS:
            for key, args in _cells(reader, net_name, work):
                if key in results["cells"] and not force:
                    continue
                t0 = time.time()
                if not installed:
                    err = pip_log.read_text().strip().splitlines()[-1] if pip_log and pip_log.exists() else "no env"
                    cell = {"verdict": "not installable here", "reason": err[:400]}
                elif args[0] == "import":
                    ok, msg = _run_worker(reader, envs, args)
                    cell = (compare(np.load(work / f"{net_name}_ours.npy"), np.load(args[3])) if ok
                            else {"verdict": "not supported", "reason": msg})
                else:
                    ok, msg = _run_worker(reader, envs, args)
                    if not ok:
                        cell = {"verdict": "not supported", "reason": msg}
                    else:
                        try:
                            back = from_nir(read_nir(args[3]), dt=float(Path(args[4] + ".dt").read_text()))
                            with torch.no_grad():
                                y = back(torch.as_tensor(np.load(work / f"{net_name}_x.npy"))).numpy()
                            cell = compare(y, np.load(args[4]))  # ours: the imported model; theirs: the reader's
                        except Exception as e:  # noqa: BLE001 - the cell records what our importer said
                            cell = {"verdict": "not supported", "reason": f"neurosynth from_nir: {e}"[:400],
                                    "our_side": True}
                cell["seconds"] = round(time.time() - t0, 2)
                results["cells"][key] = cell
                _save(results, out)
                print(f"{key}: {cell['verdict']}" + (f" ({cell.get('reason') or cell.get('mismatch')})"
                                                     if cell["verdict"] != "identical" else ""), flush=True)
    results["prediction_check"] = _check_predictions(results)
    _save(results, out)
    return results


def _check_predictions(results: dict) -> dict:
    """Does ``identical_readers`` (what the export message prints) agree with the measured cells?"""
    short = {"snnTorch 1.0.0": "snntorch", "Norse 1.1.0": "norse"}
    agree, disagree = 0, []
    for key, pred in results.get("predicted", {}).items():
        net_name, form = key.split("/")
        for reader, says in pred.items():
            cell = results["cells"].get(f"{short[reader]}/{net_name}/ours->theirs/{form}")
            if cell is None:
                continue
            if (cell["verdict"] == "identical") == (says is None):
                agree += 1
            else:
                disagree.append(f"{reader} {key}")
    return {"agree": agree, "disagree": disagree}


def _cells(reader: str, net_name: str, work: Path):
    if net_name == "digits" and reader not in ("snntorch", "norse"):
        return
    for form in FORMS:
        yield (f"{reader}/{net_name}/ours->theirs/{form}",
               ["import", str(work / f"{net_name}_{form}.nir"), str(work / f"{net_name}_x.npy"),
                str(work / f"{reader}_{net_name}_{form}_y.npy")])
    if net_name == "digits":
        return
    yield (f"{reader}/{net_name}/theirs->ours",
           ["export", net_name, str(work / f"{net_name}_x.npy"), str(work / f"{reader}_{net_name}_export.nir"),
            str(work / f"{reader}_{net_name}_export_y.npy")])


def _short(cell: dict | None) -> str:
    if cell is None:
        return "-"
    v = cell["verdict"]
    if v == "identical":
        return "identical"
    if v == "shifted":
        return f"identical after {cell['shift']} step(s)"
    if v == "differs":
        if "mismatch" not in cell:
            return "differs (output shape)"
        return f"differs {100 * cell['mismatch']:.1f}% ({cell['spikes_theirs']:.0f} vs {cell['spikes_ours']:.0f} spikes)"
    return v


def table(results: dict) -> str:
    """The matrix as a markdown table: one row per reader and direction (and form), one column per network."""
    cells = results["cells"]
    rows = ["| reader | direction | " + " | ".join(NETWORKS) + " |", "|---|---|" + "---|" * len(NETWORKS)]
    for reader in READERS:
        if not any(k.startswith(reader + "/") for k in cells):
            continue
        name = results.get("versions", {}).get(reader, reader)
        for direction in [f"ours->theirs/{f}" for f in FORMS] + ["theirs->ours"]:
            label = direction.replace("ours->theirs/", "ours -> theirs, ").replace("theirs->ours", "theirs -> ours")
            rows.append(f"| {name} | {label} | "
                        + " | ".join(_short(cells.get(f"{reader}/{n}/{direction}")) for n in NETWORKS) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", default=",".join(READERS), help="comma separated; default: all")
    ap.add_argument("--envs", default="/tmp", help="folder holding the readers' throwaway venvs")
    ap.add_argument("--work", default="/tmp/nir_interop", help="scratch folder for .nir files and spikes")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "nir_interop.json"))
    ap.add_argument("--setup", action="store_true", help="build the reader envs (pip) and exit")
    ap.add_argument("--force", action="store_true", help="re-measure cells already in the JSON")
    ap.add_argument("--table", action="store_true", help="print the JSON's matrix as a markdown table and exit")
    args = ap.parse_args(argv)
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    unknown = sorted(set(readers) - set(READERS))
    if unknown:
        ap.error(f"unknown readers {unknown}; known: {', '.join(READERS)}")
    if args.setup:
        setup_envs(readers, Path(args.envs))
        return 0
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    measure(readers, Path(args.envs), Path(args.out), Path(args.work), args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
