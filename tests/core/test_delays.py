"""Learnable per-synapse delays (neurosynth.delays): kernel, sigma -> 0 limit, gradients, export form, spec."""

import json

import pytest
import torch

import neurosynth as ns
from neurosynth.arch import build, to_spec
from neurosynth.delays import (
    DelayedLinear,
    SigmaSchedule,
    delay_kernel,
    delayed_linear,
    delayed_linear_reference,
    gaussian_taps,
    start_epoch,
)


def _layer(n_in=6, n_out=4, K=5, seed=0, **kw):
    return DelayedLinear(n_in, n_out, max_delay=K, generator=torch.Generator().manual_seed(seed), **kw)


def _spikes(T, B, N, seed=1, p=0.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, N, generator=g) < p).float()


@pytest.mark.parametrize("sigma", [0.0, 0.3, 1.0, 2.5, 12.5])
def test_kernel_sums_to_the_weight(sigma):
    m = _layer(K=25)
    k = delay_kernel(m.weight, m.delay, sigma, 25)
    assert k.shape == (4, 6, 25)
    torch.testing.assert_close(k.sum(-1), m.weight, rtol=0, atol=1e-6)
    taps = gaussian_taps(m.delay, sigma, 25)
    assert bool((taps >= 0).all())
    # the Gaussian peaks at the tap nearest to the position
    torch.testing.assert_close(taps.argmax(-1), torch.round(m.delay).long().clamp(0, 24))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_has_no_subnormal_entries_and_keeps_the_rest(dtype):
    """Far from its centre a Gaussian tap times a weight falls below the dtype's smallest normal number; such
    entries are zero in the kernel (the CPU's convolution computes with subnormals in microcode, several times
    slower), every other entry is the product itself, and the gradient still reaches weights and positions."""
    tiny = torch.finfo(dtype).tiny
    w = torch.tensor([[1.0, 0.02, -3e-3]], dtype=dtype, requires_grad=True)
    d = torch.tensor([[0.3, 4.0, 2.6]], dtype=dtype, requires_grad=True)
    sigma = 0.61 if dtype == torch.float32 else 0.2
    raw = w.detach().unsqueeze(-1) * gaussian_taps(d.detach(), sigma, 12)
    sub = (raw != 0) & (raw.abs() < tiny)
    assert bool(sub.any())  # the case exists at these values
    k = delay_kernel(w, d, sigma, 12)
    assert not bool(((k != 0) & (k.abs() < tiny)).any())
    assert torch.equal(k.detach()[~sub], raw[~sub]) and bool((k.detach()[sub] == 0).all())
    (k * torch.arange(12, dtype=dtype)).sum().backward()
    assert bool((w.grad != 0).all()) and bool((d.grad != 0).all())


def test_golden_values_of_the_hard_delays():
    """y[t] = x0[t] - 2 x1[t - 2] (+0.5 bias), written out by hand."""
    m = DelayedLinear(2, 1, max_delay=3, bias=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, -2.0]]))
        m.delay.copy_(torch.tensor([[0.2, 1.7]]))  # rounds to delays 0 and 2
        m.bias.fill_(0.5)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]).reshape(5, 1, 2)
    m.eval()
    y = m(x)[:, 0, 0]
    torch.testing.assert_close(y, torch.tensor([1.5, 0.5, 1.5, -1.5, 0.5]))
    torch.testing.assert_close(m.hard_delays(), torch.tensor([[0, 2]]))


def test_sigma_to_zero_equals_shift_and_sum():
    m = _layer(n_in=7, n_out=5, K=6, bias=True)
    x = _spikes(20, 3, 7)
    ref = delayed_linear_reference(x, m.weight.detach(), m.hard_delays(), m.bias.detach())
    m.eval()
    torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-5)
    m.train()
    m.set_sigma(0.0)
    torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-5)
    # a small positive sigma converges to the same thing when no position sits near a rounding boundary
    with torch.no_grad():
        m.delay.copy_(m.hard_delays().float() + 0.1)
    m.set_sigma(0.05)
    torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-5)


def test_gaussian_layer_equals_its_kernel_applied_by_hand():
    """Training mode: y = sum_k (w g_k) x[t-k], checked against the shift-and-sum over every tap."""
    m = _layer(n_in=3, n_out=2, K=4)
    m.set_sigma(1.3)
    x = _spikes(9, 2, 3)
    k = m.kernel().detach()
    ref = sum(delayed_linear_reference(x, k[..., d], torch.full((2, 3), d)) for d in range(4))
    torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-5)


def test_gradients_reach_weights_and_positions():
    m = _layer()
    m.set_sigma(1.0)
    x = _spikes(15, 2, 6)
    m(x).pow(2).sum().backward()
    assert m.delay.grad is not None and float(m.delay.grad.abs().sum()) > 0
    assert float(m.weight.grad.abs().sum()) > 0
    # the analytic gradient w.r.t. the positions matches finite differences
    w = m.weight.detach().double()
    d = m.delay.detach().double().requires_grad_(True)
    xd = x.double()
    assert torch.autograd.gradcheck(lambda d: delayed_linear(xd, delay_kernel(w, d, 1.0, 5)), (d,))


def test_eval_uses_rounded_positions_and_export_equals_eval():
    m = _layer(K=8)
    with torch.no_grad():
        m.delay.copy_(torch.linspace(-3, 10, m.delay.numel()).reshape(m.delay.shape))  # some out of range
    d = m.hard_delays()
    assert d.dtype == torch.int64 and int(d.min()) == 0 and int(d.max()) == 7
    x = _spikes(30, 2, 6)
    m.eval()
    torch.testing.assert_close(m(x), delayed_linear_reference(x, m.weight.detach(), d), rtol=0, atol=1e-5)
    m.clamp_params_()
    assert float(m.delay.detach().min()) == 0.0 and float(m.delay.detach().max()) == 7.0


def test_streaming_in_chunks_equals_the_whole_sequence():
    m = _layer(K=6).eval()
    net = ns.SNN(m, ns.LIF(reset="zero"))
    x = _spikes(25, 3, 6)
    whole = net(x)
    a, st = net(x[:7], return_state=True)
    b, st = net(x[7:9], state=st, return_state=True)
    c = net(x[9:], state=st)
    torch.testing.assert_close(torch.cat([a, b, c]), whole)


def test_init_uses_the_generator():
    a, b, c = _layer(seed=3), _layer(seed=3), _layer(seed=4)
    torch.testing.assert_close(a.delay, b.delay)
    assert not torch.equal(a.delay, c.delay)
    assert float(a.delay.detach().min()) >= 0 and float(a.delay.detach().max()) <= 4


def test_schedule_and_start_epoch():
    s = SigmaSchedule(init=None, final=0.25, anneal_fraction=0.5)
    sig = [s.sigma(e, 10, 25) for e in range(10)]
    assert sig[0] == pytest.approx(12.5)
    assert sig[5:] == [0.25] * 5
    assert all(a > b for a, b in zip(sig[:5], sig[1:6]))
    assert sig[1] / sig[0] == pytest.approx((0.25 / 12.5) ** (1 / 5))
    net = ns.SNN(_layer(K=9, anneal_fraction=0.5), ns.LIF(), _layer(n_in=4, n_out=2, K=3, sigma_init=2.0))
    start_epoch(net, 0, 4)
    assert float(net[0].sigma) == pytest.approx(4.5) and float(net[2].sigma) == pytest.approx(2.0)
    start_epoch(net, 3, 4)
    assert float(net[0].sigma) == pytest.approx(0.23) and float(net[2].sigma) == pytest.approx(0.23)
    with pytest.raises(ValueError, match="anneal_fraction"):
        SigmaSchedule(anneal_fraction=0)
    with pytest.raises(ValueError, match="max_delay"):
        DelayedLinear(3, 2, max_delay=0)


def test_fit_anneals_and_keeps_positions_in_range():
    torch.manual_seed(0)
    net = ns.SNN(_layer(n_in=6, n_out=8, K=4, anneal_fraction=0.5), ns.LIF(), torch.nn.Linear(8, 3), ns.LIF())
    x = _spikes(12, 8, 6)
    y = torch.arange(8) % 3
    ns.fit(net, [(x, y)], epochs=2, lr=0.5, progress=False)  # a huge step pushes positions out of range
    assert float(net[0].sigma) == pytest.approx(0.23)
    assert float(net[0].delay.detach().min()) >= 0 and float(net[0].delay.detach().max()) <= 3


def test_json_spec_round_trip(tmp_path):
    net = ns.SNN(_layer(K=7, bias=True, sigma_init=3.0, sigma_final=0.5, anneal_fraction=0.3), ns.LIF(reset="zero"))
    spec = json.loads(json.dumps(to_spec(net, input_shape=[6])))
    assert spec["layers"][0] == {"type": "delayed_linear", "in_features": 6, "out_features": 4, "max_delay": 7,
                                 "bias": True, "sigma_init": 3.0, "sigma_final": 0.5, "anneal_fraction": 0.3}
    net2 = build(spec)
    net2.load_state_dict(net.state_dict())
    x = _spikes(10, 2, 6)
    net.eval()
    net2.eval()
    torch.testing.assert_close(net2(x), net(x))
    assert to_spec(net2, input_shape=[6]) == spec
    from neurosynth.rundir import RunDir, load_run

    with RunDir.create(tmp_path / "run", kind="train") as run:
        run.save_model(net, spec)
        run.write_json("metrics.json", {})
    model, spec3, _ = load_run(tmp_path / "run")
    model.eval()
    torch.testing.assert_close(model(x), net(x))
    with pytest.raises(ValueError, match="no fields"):
        build({**spec, "layers": [{**spec["layers"][0], "delays": 3}]})


def test_mlp_spec_with_delays():
    from neurosynth.arch import mlp_spec

    spec = mlp_spec(6, [5], 3, readout="li", max_delay=4, reset="zero")
    assert [layer["type"] for layer in spec["layers"]] == ["delayed_linear", "neuron", "delayed_linear", "neuron"]
    net = build(spec)
    assert isinstance(net[0], DelayedLinear) and net[0].max_delay == 4 and net[0].bias is None
    assert net(_spikes(7, 2, 6)).shape == (7, 2, 3)
    assert [layer["type"] for layer in mlp_spec(6, [5], 3)["layers"]][0] == "linear"  # unchanged without delays
