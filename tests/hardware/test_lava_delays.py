"""Learned per-synapse delays on Loihi 2: extraction, netx ``delay`` dataset, our integer reference (Lava's
``DelayDense``: a spike sent at t arrives at t + 1 + d), Lava's simulator (float spike-exact against torch, fixed
bit-exact against the reference, every layer) and the refusals (delays > 62, on a recurrent or conv layer)."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from lava_helpers import spikes
from test_netx_lavadl import SRC, _run_netx, netx_hdf5  # noqa: F401  (netx_hdf5: the fixture loading lava-dl's netx)

from neurosynth.apps.cli import main
from neurosynth.delays import DelayedLinear
from neurosynth.hardware.lava import compat
from neurosynth.hardware.lava.ir import MAX_DELAY, LoihiExportError, LoihiLayer, check_fixed, extract
from neurosynth.hardware.lava.netx import read_netx, validate_netx, write_netx
from neurosynth.hardware.lava.reference import simulate, torch_layer_spikes
from neurosynth.layers import SNN, Recurrent
from neurosynth.neurons import LIF, CubaLIF
from neurosynth.rundir import RunDir

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc is not installed")


def delay_net(n_in=20, hidden=16, n_out=6, K=(6, 4), seed=0, gain=6.0):
    """DelayedLinear -> CubaLIF -> DelayedLinear -> LIF (zero reset), weights scaled so that it spikes."""
    g = torch.Generator().manual_seed(seed)
    net = SNN(DelayedLinear(n_in, hidden, max_delay=K[0], generator=g),
              CubaLIF(alpha=0.75, beta=0.875, threshold=1.0, reset="zero"),
              DelayedLinear(hidden, n_out, max_delay=K[1], generator=g), LIF(beta=0.875, threshold=1.0, reset="zero"))
    with torch.no_grad():
        net[0].weight.mul_(gain)
        net[2].weight.mul_(gain)
    return net.eval()


def test_extract_keeps_the_rounded_delays():
    net = delay_net()
    ln = extract(net)
    assert [s.kind for s in ln.stages] == ["dense", "dense"]
    for stage, layer in zip(ln.stages, (net[0], net[2])):
        np.testing.assert_array_equal(stage.delays, layer.hard_delays().numpy())
        assert stage.delays.dtype == np.int64 and stage.max_delay == int(layer.hard_delays().max())
    assert ln.stages[0].max_delay == 5  # some synapse uses the longest delay, K - 1
    assert ln.torch_shifts() == [1, 2]  # the per-synapse delays are in the torch model; Lava adds one step per layer


def test_reference_matches_torch_and_the_delays_matter():
    """Our float reference of Lava (DelayDense semantics) spikes exactly like the torch model, one step later
    per layer; without the delays it does not."""
    net = delay_net()
    ln = extract(net)
    x = spikes(30, 4, 20)
    xp = np.concatenate([x.numpy(), np.zeros((2, 4, 20))])
    ref = simulate(ln, xp, "float")
    ts = torch_layer_spikes(net, x)
    for r, t, s in zip(ref.spikes, ts, ln.torch_shifts()):
        assert t.sum() > 20
        np.testing.assert_array_equal(r[s:s + 30], t)
    no_delays = replace(ln, layers=tuple(replace(layer, delays=np.zeros_like(layer.delays)) for layer in ln.layers))
    assert (simulate(no_delays, xp, "float").spikes[0] != ref.spikes[0]).any()
    # fixed point on the same network is close to the float one (weights on the grid after rounding)
    fixed = simulate(ln, xp, "fixed")
    assert (fixed.spikes[0] == ref.spikes[0]).mean() > 0.95


def test_netx_file_holds_the_delay_matrix(tmp_path):
    ln = extract(delay_net())
    path = write_netx(ln, tmp_path / "net.h5")
    assert validate_netx(path) == []
    with h5py.File(path) as f:
        d = f["layer/1/delay"][()]
        assert d.dtype == np.int64 and d.shape == (16, 20)
        np.testing.assert_array_equal(d, ln.stages[0].delays)
        assert f["layer/2/delay"][()].shape == (6, 16)
    back = read_netx(path)
    for a, b in zip(back.stages, ln.stages):
        np.testing.assert_array_equal(a.delays, b.delays)
    x = spikes(20, 3, 20).numpy()
    for a, b in zip(simulate(back, x, "fixed").spikes, simulate(ln, x, "fixed").spikes):
        np.testing.assert_array_equal(a, b)


def test_refusals():
    # delays beyond what netx loads (it clips to 62)
    net = delay_net(K=(70, 4))
    with torch.no_grad():
        net[0].delay.clamp_(max=40.0)
        net[0].delay[0, 0] = 65.0
    with pytest.raises(LoihiExportError, match=r"delays up to 65 steps.*max_delay <= 63"):
        extract(net)
    with torch.no_grad():
        net[0].delay.clamp_(max=MAX_DELAY)
    assert extract(net).stages[0].max_delay == MAX_DELAY  # 62 itself is fine
    # a recurrent layer after a delayed synapse (netx's dense_rec + delay is broken)
    rnet = SNN(DelayedLinear(8, 4, max_delay=3), Recurrent(4, CubaLIF(alpha=0.5, beta=0.9, reset="zero")))
    with pytest.raises(LoihiExportError, match="recurrent layer with delays"):
        extract(rnet)
    # a bias
    with pytest.raises(LoihiExportError, match="has a bias"):
        extract(SNN(DelayedLinear(8, 4, max_delay=3, bias=True), LIF(reset="zero")))
    # hand-made networks: conv delays (netx ignores them), recurrent delays, out of range
    ln = extract(delay_net())
    conv = LoihiLayer("conv", "c", (1, 3, 3), (1, 1, 1), weight=np.ones((1, 1, 3, 3)), neuron=ln.stages[0].neuron,
                      delays=np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(LoihiExportError, match="ignores the 'delay' of conv"):
        check_fixed(replace(ln, input_shape=(1, 3, 3), layers=(conv,)))
    s0 = ln.stages[0]
    rec = replace(s0, weight_rec=np.zeros((16, 16)))
    with pytest.raises(LoihiExportError, match="delays on a recurrent layer"):
        check_fixed(replace(ln, layers=(rec, ln.layers[1])))
    far = replace(s0, delays=np.full_like(s0.delays, 63))
    with pytest.raises(LoihiExportError, match="0..62"):
        check_fixed(replace(ln, layers=(far, ln.layers[1])))


def test_validate_flags_bad_delay_datasets(tmp_path):
    path = write_netx(extract(delay_net()), tmp_path / "net.h5")
    with h5py.File(path, "a") as f:
        d = f["layer/1/delay"]
        d[0, 0] = 63
        del f["layer/2/delay"]
        f["layer/2/delay"] = np.zeros((3, 3), dtype=np.int64)
    problems = validate_netx(path)
    assert any("layer/1: delays outside 0..62" in p for p in problems)
    assert any("layer/2: delay (3, 3) must be (6, 16)" in p for p in problems)


def test_cli_refuses_long_delays_with_one_error_line(tmp_path, capsys):
    net = delay_net(K=(70, 4))
    with torch.no_grad():
        net[0].delay.clamp_(max=40.0)
        net[0].delay[3, 2] = 66.0
    from neurosynth.arch import to_spec

    rd = RunDir(tmp_path / "run")
    rd.save_model(net, to_spec(net, input_shape=[20]))
    out = tmp_path / "out" / "net.h5"
    assert main(["export", "loihi", "--model", str(rd.path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "delays up to 66 steps" in err[0]
    assert not out.exists() and not out.parent.exists() or not any(out.parent.iterdir())


@needs_lava
@pytest.mark.lava
def test_lava_runs_learned_delays_exactly(tmp_path):
    """Lava's DelayDense (float and bit-accurate) on a 20-16-6 network with delays up to 5 and 3: float spikes
    equal the torch model's, fixed-point spikes equal our integer reference, at every layer; two copies side by
    side and three samples one after the other per run (the LIFReset slots with the delays' latency)."""
    from neurosynth.hardware.lava.verify import export_verified

    net = delay_net()
    x = spikes(24, 5, 20)
    rep = export_verified(net, tmp_path / "net.h5", x, torch.arange(5) % 6, copies=2)
    assert rep["float_exact"] and rep["fixed_exact"], rep
    assert all(v > 20 for v in rep["float_spikes"].values())
    assert rep["netx_file"] == str(tmp_path / "net.h5")


# ----------------------------------------------------------------------------- lava-dl's own netx reader
@pytest.mark.lava
@pytest.mark.skipif(not (SRC / "lib" / "dl" / "netx" / "hdf5.py").exists(),
                    reason="set LAVA_DL_SRC to a lava-dl checkout to test with lava-dl's netx reader")
@needs_lava
def test_lavadl_netx_builds_delaydense_from_our_file(netx_hdf5, tmp_path):  # noqa: F811 (the imported fixture)
    """lava-dl's reader turns our ``delay`` datasets into ``DelayDense`` (max_delay 62) and runs bit-exact."""
    ln = extract(delay_net())
    path = write_netx(ln, tmp_path / "net.h5")
    x = spikes(20, 1, 20)[:, 0].numpy()

    def check(netx_net):
        kinds = [type(b.synapse).__name__ for b in netx_net.layers if hasattr(b, "synapse")]
        assert kinds == ["DelayDense", "DelayDense"], kinds

    out = _run_netx(netx_hdf5, path, x, check)
    ref = simulate(ln, x[:, None], "fixed").output[:, 0]
    assert ref.any()
    np.testing.assert_array_equal(out.reshape(ref.shape), ref)


def test_loihi_family_with_learned_delays():
    """``loihi_mlp_spec(max_delay=K)``: qdelayed_linear synapses (weights on Loihi's grid), one-step Delay, zero-reset
    neurons; the JSON spec rebuilds it, the exported integers are the trained weights times 64 and our fixed-point
    reference of Lava agrees with the torch model on nearly every spike (decays truncate on Loihi)."""
    import json

    from neurosynth.arch import build, to_spec
    from neurosynth.hardware.targets import loihi_qat as qat

    torch.manual_seed(0)
    spec = qat.loihi_mlp_spec(20, [16], 6, beta=0.875, max_delay=5)
    net = build(spec)
    with torch.no_grad():
        for layer in (net[0], net[3]):
            layer.weight.mul_(6)
    net.eval()
    assert isinstance(net[0], qat.QDelayedLinear) and spec["layers"][0]["type"] == "qdelayed_linear"
    again = build(json.loads(json.dumps(to_spec(net, spec["input_shape"]) | {"target": qat.TARGET})))
    again.load_state_dict(net.state_dict())
    x = spikes(30, 4, 20)
    assert torch.equal(again.eval()(x), net(x))
    ln = extract(net)
    assert ln.torch_shifts() == [0, 0] and [s.max_delay for s in ln.stages] == [4, 4]
    np.testing.assert_array_equal(ln.stages[0].int_weight(), (qat.quantize_weight(net[0].weight) * 64).detach()
                                  .round().long().numpy())
    ref = simulate(ln, x.numpy(), "fixed")
    ts = torch_layer_spikes(net, x)
    for r, t in zip(ref.spikes, ts):
        assert t.sum() > 20 and (r == t).mean() > 0.98
    with pytest.raises(ValueError, match="max_delay <= 63"):
        qat.QDelayedLinear(4, 2, max_delay=64)


def _biased_delay_net(seed=0):
    """``loihi_mlp_spec(max_delay=5, bias=True)``: 20-16-6, delayed synapses, a neuron bias on the hidden layer (a
    mix of signs on Loihi's 1/64 grid, some strong enough to fire a neuron on its own), dropout (training only)."""
    from neurosynth.arch import build
    from neurosynth.hardware.targets import loihi_qat as qat

    torch.manual_seed(seed)
    spec = qat.loihi_mlp_spec(20, [16], 6, beta=0.875, max_delay=5, bias=True, dropout=0.25)
    assert [e["type"] for e in spec["layers"]] == ["qdelayed_linear", "delay", "qbias", "neuron", "dropout",
                                                   "qdelayed_linear", "delay", "neuron"]
    net = qat.scale_synapses(build(spec), 6.0)  # the delayed synapses are scaled too (they were skipped before)
    with torch.no_grad():
        net[2].bias.copy_(torch.linspace(-0.3, 0.4, 16))
    return net.eval()


def test_loihi_delays_with_a_neuron_bias_export_it_per_neuron():
    """The bias after a delayed synapse is Loihi's neuron bias (netx ``bias`` next to ``delay``): the integer
    reference agrees with torch on nearly every spike, and the bias changes them (it is not dropped)."""
    from neurosynth.hardware.targets import loihi_qat as qat

    net = _biased_delay_net()
    ln = extract(net)
    assert ln.stages[0].max_delay == 4 and ln.stages[0].bias is not None and ln.stages[1].bias is None
    np.testing.assert_array_equal(ln.stages[0].int_bias(), np.round(qat.quantize_bias(net[2].bias).detach().numpy()
                                                                     * 64).astype(np.int64))
    x = spikes(30, 4, 20)
    ref = simulate(ln, x.numpy(), "fixed")
    for r, t in zip(ref.spikes, torch_layer_spikes(net, x)):
        assert t.sum() > 20 and (r == t).mean() > 0.98
    unbiased = simulate(replace(ln, layers=tuple(replace(layer, bias=None) for layer in ln.layers)), x.numpy(), "fixed")
    assert not np.array_equal(unbiased.spikes[0], ref.spikes[0])
    with pytest.raises(ValueError, match="bias=True needs alpha=0"):
        qat.loihi_mlp_spec(20, [16], 6, alpha=0.5, max_delay=5, bias=True)
    with pytest.raises(ValueError, match="dropout must be in"):
        qat.loihi_mlp_spec(20, [16], 6, dropout=1.0)
    out = qat.loihi_mlp_spec(20, [16], 6, max_delay=5, readout="voltage")["layers"][-1]
    assert out["neuron"] == "li" and out["params"]["beta"] == 1.0  # a voltage readout, as the recurrent spec's


@needs_lava
@pytest.mark.lava
def test_lava_runs_learned_delays_with_a_neuron_bias_exactly(tmp_path):
    """Lava's DelayDense feeding LIF neurons with a bias (bias_mant << 6): float spike-exact against torch,
    fixed point bit-exact against the integer reference."""
    from neurosynth.hardware.lava.verify import export_verified

    rep = export_verified(_biased_delay_net(), tmp_path / "net.h5", spikes(24, 3, 20), torch.arange(3) % 6)
    assert rep["float_exact"] and rep["fixed_exact"], rep
    assert all(v > 20 for v in rep["float_spikes"].values())
    with h5py.File(tmp_path / "net.h5") as f:
        assert f["layer/0/type"][()] == b"input" and {"delay", "bias"} <= set(f["layer/1"].keys())


def test_op_counts_treat_a_delayed_synapse_like_a_linear():
    """Energy: each input spike crosses each non-zero synapse once, delayed or not."""
    from neurosynth.hardware.energy import count_ops

    net = delay_net()
    plain = SNN(torch.nn.Linear(20, 16, bias=False), net[1], torch.nn.Linear(16, 6, bias=False), net[3])
    with torch.no_grad():
        plain[0].weight.copy_(net[0].weight)
        plain[2].weight.copy_(net[2].weight)
    x = spikes(20, 2, 20)
    a, b = count_ops(net, x), count_ops(plain, x)
    assert a.layers[0].kind == "synapse" and a.layers[0].ac_ops == b.layers[0].ac_ops > 0
    assert a.layers[0].dense_ops == b.layers[0].dense_ops


def test_read_netx_expands_scalar_and_vector_delays_as_netx_does(tmp_path):
    """slayer writes axonal delays as one value per output neuron; netx applies them to every synapse of the row."""
    ln = extract(delay_net())
    path = write_netx(ln, tmp_path / "net.h5")
    with h5py.File(path, "a") as f:
        del f["layer/1/delay"]
        f["layer/1/delay"] = np.arange(16, dtype=np.int64) % 4  # per output neuron
        del f["layer/2/delay"]
        f["layer/2/delay"] = np.int64(2)  # every synapse
    assert validate_netx(path) == []
    back = read_netx(path)
    np.testing.assert_array_equal(back.stages[0].delays, np.repeat((np.arange(16) % 4)[:, None], 20, axis=1))
    np.testing.assert_array_equal(back.stages[1].delays, np.full((6, 16), 2))


def test_train_loihi_max_delay_trains_and_exports_the_delayed_mlp(tmp_path, capsys):
    """``neurosynth train --loihi --max-delay K``: every synapse a qdelayed_linear with delays 0..K-1, reloaded as
    trained, and extracted for Lava with its per-synapse delays (what ``export loihi`` writes as netx ``delay``)."""
    from neurosynth.hardware.targets.loihi_qat import QDelayedLinear
    from neurosynth.io import read_json
    from neurosynth.rundir import load_run

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--loihi", "--max-delay", "4", "--epochs", "1", "--T", "6",
                 "--hidden", "12", "--out", str(out), "--no-progress"]) == 0
    arch = read_json(out / "arch.json")
    assert [entry["type"] for entry in arch["layers"] if entry["type"].startswith("q")] == ["qdelayed_linear"] * 2
    assert read_json(out / "manifest.json")["config"]["max_delay"] == 4
    model, _, _ = load_run(out)
    layers = [m for m in model.modules() if isinstance(m, QDelayedLinear)]
    assert len(layers) == 2 and all(m.max_delay == 4 for m in layers)
    net = extract(model, (64,))
    assert all(s.delays is not None and 0 <= s.delays.min() and s.delays.max() <= 3 for s in net.stages)
    x = spikes(10, 3, 64)
    for a, b in zip(simulate(net, x, "float").spikes, torch_layer_spikes(model, x)):
        np.testing.assert_array_equal(a, b)
    capsys.readouterr()
    for argv, msg in ((["--max-delay", "4"], "add --loihi"), (["--loihi", "--max-delay", "64"], "2..63")):
        assert main(["train", *argv, "--epochs", "1", "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and msg in err[0]
    assert not (tmp_path / "bad").exists()
