"""STDP rules: single-pair windows against the analytic formula, bounds, triplet/reward golden values."""

from __future__ import annotations

import math

import pytest
import torch

from neurosynth.plasticity import (
    PLASTICITY_RULES,
    Conv2d,
    Dense,
    LRSchedule,
    PlasticLayer,
    RSTDPParams,
    STDPLearner,
    STDPParams,
    TripletParams,
    apply_update,
    lr_at,
    make_params,
    stdp_init,
    stdp_step,
    triplet_init,
    triplet_step,
)

DTS = [-12, -5, -1, 1, 2, 7, 15]
W0 = 0.4

VARIANTS = {
    "pair-additive": ("stdp", STDPParams(a_plus=0.01, a_minus=0.012, tau_plus=10.0, tau_minus=15.0)),
    "pair-multiplicative": ("stdp", STDPParams(a_plus=0.02, a_minus=0.03, tau_plus=8.0, tau_minus=20.0,
                                               weight_dependence="multiplicative", mu=0.7)),
    "pair-nearest": ("stdp", STDPParams(tau_plus=6.0, tau_minus=9.0, trace="nearest")),
    "triplet-additive": ("triplet", TripletParams(a2_plus=0.01, a3_plus=0.02, a2_minus=0.012, a3_minus=0.01,
                                                  tau_plus=12.0, tau_minus=18.0)),
    "triplet-multiplicative": ("triplet", TripletParams(weight_dependence="multiplicative", mu=1.0)),
    "rstdp": ("rstdp", RSTDPParams(STDPParams(a_plus=0.02, a_minus=0.01, tau_plus=5.0, tau_minus=25.0), tau_e=30.0)),
}


def run_pair(rule: str, p, t_pre: int, t_post: int, T: int = 40, w0: float = W0, reward_at: int | None = None,
             reward: float = 1.0, connection=None, pre_shape=(1, 1), post_shape=(1, 1), pre_idx=(0, 0),
             post_idx=(0, 0), w=None):
    """Sum of lr=1 updates over T steps for one pre spike at t_pre and one post spike at t_post."""
    connection = connection or Dense()
    w = torch.full((1, 1), w0, dtype=torch.float64) if w is None else w.double()
    pre_seq = torch.zeros(T, *pre_shape, dtype=torch.float64)
    post_seq = torch.zeros(T, *post_shape, dtype=torch.float64)
    pre_seq[(t_pre, *pre_idx)] = 1.0
    post_seq[(t_post, *post_idx)] = 1.0
    r = PLASTICITY_RULES.get(rule)
    state = r.init(pre_seq[0], post_seq[0], w)
    w_start = w.clone()
    for t in range(T):
        kw = {}
        if r.needs_reward:
            kw["reward"] = reward if t == (reward_at if reward_at is not None else max(t_pre, t_post)) else 0.0
        dw, state = r.step(pre_seq[t], post_seq[t], state, w, p, connection, **kw)
        w = apply_update(w, dw, 1.0, p)
    return w - w_start


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dt", DTS)
def test_single_pair_matches_analytic_window(variant, dt):
    rule, p = VARIANTS[variant]
    t_pre = 20
    change = run_pair(rule, p, t_pre, t_pre + dt)
    expected = p.window(dt, W0)
    assert change.item() == pytest.approx(expected, rel=1e-5, abs=1e-12)
    # LTP for causal pairs, LTD for anti-causal ones
    assert (change.item() > 0) == (dt > 0)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_window_is_exponential_in_abs_dt(variant):
    rule, p = VARIANTS[variant]
    stdp = p.stdp if rule == "rstdp" else p
    tau_p, tau_m = stdp.tau_plus, stdp.tau_minus
    ltp = [run_pair(rule, p, 20, 20 + d).item() for d in (1, 2, 3)]
    ltd = [run_pair(rule, p, 20 + d, 20).item() for d in (1, 2, 3)]
    assert ltp[1] / ltp[0] == pytest.approx(math.exp(-1 / tau_p), rel=1e-5)
    assert ltp[2] / ltp[1] == pytest.approx(math.exp(-1 / tau_p), rel=1e-5)
    assert ltd[1] / ltd[0] == pytest.approx(math.exp(-1 / tau_m), rel=1e-5)


def test_simultaneous_spikes_give_no_change():
    for rule, p in VARIANTS.values():
        assert run_pair(rule, p, 10, 10).item() == 0.0


def test_window_numbers_golden():
    p = STDPParams(a_plus=0.01, a_minus=0.012, tau_plus=20.0, tau_minus=20.0)
    assert p.window(10) == pytest.approx(0.01 * math.exp(-0.5))
    assert p.window(-10) == pytest.approx(-0.012 * math.exp(-0.5))
    m = STDPParams(weight_dependence="multiplicative", w_max=2.0)
    assert m.window(20, 0.5) == pytest.approx(0.01 * 1.5 * math.exp(-1))
    assert m.window(-20, 0.5) == pytest.approx(-0.012 * 0.5 * math.exp(-1))


def test_triplet_post_pre_post_golden():
    p = TripletParams(a2_plus=0.01, a3_plus=0.05, a2_minus=0.012, a3_minus=0.02, tau_plus=10.0, tau_minus=20.0,
                      tau_x=50.0, tau_y=40.0)
    T, w = 30, torch.full((1, 1), 0.5)
    pre, post = torch.zeros(T, 1, 1), torch.zeros(T, 1, 1)
    post[0], pre[5], post[10] = 1, 1, 1
    state, total = triplet_init(pre[0], post[0]), 0.0
    for t in range(T):
        dw, state = triplet_step(pre[t], post[t], state, w, p)
        total += dw.item()
    ltd = -0.012 * math.exp(-5 / 20)  # r2 = 0 before the first pre spike
    ltp = math.exp(-5 / 10) * (0.01 + 0.05 * math.exp(-10 / 40))  # o2 from the first post spike
    assert total == pytest.approx(ltd + ltp, rel=1e-6)


def test_nearest_vs_all_to_all_traces():
    two_pre = torch.zeros(20, 1, 1)
    two_pre[2] = two_pre[5] = 1
    post = torch.zeros(20, 1, 1)
    post[8] = 1
    out = {}
    for mode in ("all", "nearest"):
        p = STDPParams(tau_plus=10.0, trace=mode)
        s, w, tot = stdp_init(two_pre[0], post[0]), torch.full((1, 1), 0.5), 0.0
        for t in range(20):
            dw, s = stdp_step(two_pre[t], post[t], s, w, p)
            tot += dw.item()
        out[mode] = tot
    assert out["all"] == pytest.approx(0.01 * (math.exp(-0.6) + math.exp(-0.3)))
    assert out["nearest"] == pytest.approx(0.01 * math.exp(-0.3))


def test_rstdp_reward_delay_and_sign():
    p = VARIANTS["rstdp"][1]
    for delay in (0, 4, 11):
        got = run_pair("rstdp", p, 10, 13, reward_at=13 + delay, reward=0.5).item()
        assert got == pytest.approx(p.window(3, reward=0.5, delay=delay), rel=1e-5)
    # a negative reward turns LTP into depression; no reward, no change
    assert run_pair("rstdp", p, 10, 13, reward=-1.0).item() < 0
    assert run_pair("rstdp", p, 10, 13, reward=0.0).item() == 0.0


def test_batched_dense_reduce():
    p = STDPParams(a_plus=0.01, a_minus=0.01, tau_plus=10.0, tau_minus=10.0)
    dts = [3, -4, 6]
    T = 40
    pre, post = torch.zeros(T, 3, 2), torch.zeros(T, 3, 1)
    for b, d in enumerate(dts):
        pre[20, b, 1] = 1
        post[20 + d, b, 0] = 1
    for reduce, scale in (("sum", 1.0), ("mean", 1 / 3)):
        w = torch.full((1, 2), 0.5)
        s = stdp_init(pre[0], post[0])
        tot = torch.zeros(1, 2)
        for t in range(T):
            dw, s = stdp_step(pre[t], post[t], s, w, p, Dense(reduce))
            tot += dw
        assert tot[0, 0].item() == 0.0  # input 0 never spiked
        assert tot[0, 1].item() == pytest.approx(scale * sum(p.window(d) for d in dts), rel=1e-5)


@pytest.mark.parametrize("dt", [-3, 2])
def test_conv_pair_hits_the_right_kernel_entry(dt):
    p = STDPParams(a_plus=0.01, a_minus=0.012, tau_plus=10.0, tau_minus=10.0)
    conn = Conv2d(kernel_size=3, padding=1)
    w = torch.full((2, 1, 3, 3), 0.5)
    # pre spike at pixel (2, 3); post spike in channel 1 at output position (3, 2):
    # the kernel offset is pre - post + 1 = (0, 2)
    change = run_pair("stdp", p, 10, 10 + dt, connection=conn, pre_shape=(1, 1, 5, 5), post_shape=(1, 2, 5, 5),
                      pre_idx=(0, 0, 2, 3), post_idx=(0, 1, 3, 2), w=w)
    expected = torch.zeros_like(w)
    expected[1, 0, 0, 2] = p.window(dt)
    torch.testing.assert_close(change, expected.double(), rtol=1e-5, atol=1e-9)


def test_conv_matches_conv2d_weight_gradient():
    g = torch.Generator().manual_seed(0)
    pre = torch.rand(2, 3, 6, 6, generator=g)
    post = torch.rand(2, 4, 3, 3, generator=g)
    conn = Conv2d(kernel_size=3, stride=2, padding=1, reduce="sum")
    ref = torch.nn.grad.conv2d_weight(pre, (4, 3, 3, 3), post, stride=2, padding=1)
    torch.testing.assert_close(conn.correlate(pre, post), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_weights_stay_within_bounds(variant):
    rule, p = VARIANTS[variant]
    g = torch.Generator().manual_seed(1)
    T, B, n_in, n_out = 60, 4, 10, 5
    pre = (torch.rand(T, B, n_in, generator=g) < 0.5).float()
    post = (torch.rand(T, B, n_out, generator=g) < 0.5).float()
    w = torch.rand(n_out, n_in, generator=g) * (p.w_max - p.w_min) + p.w_min
    r = PLASTICITY_RULES.get(rule)
    state = r.init(pre[0], post[0], w)
    for t in range(T):
        kw = {"reward": 3.0 * (1 if t % 2 else -1)} if r.needs_reward else {}
        dw, state = r.step(pre[t], post[t], state, w, p, Dense("sum"), **kw)
        w = apply_update(w, dw, 50.0, p)  # a huge learning rate drives weights to the bounds
        assert float(w.min()) >= p.w_min and float(w.max()) <= p.w_max
    assert float(w.min()) == p.w_min or float(w.max()) == p.w_max  # the bounds were actually hit


def test_soft_bound_update_shrinks_near_bounds():
    p = STDPParams(weight_dependence="multiplicative", a_plus=0.1, a_minus=0.1)
    assert p.window(1, 0.99) < p.window(1, 0.5) < p.window(1, 0.01)
    assert abs(p.window(-1, 0.01)) < abs(p.window(-1, 0.99))


def test_learning_rate_schedules_golden():
    assert lr_at(LRSchedule("constant", lr=0.3), 99) == 0.3
    assert lr_at(LRSchedule("exponential", lr=1.0, gamma=0.5), 3) == 0.125
    assert lr_at(LRSchedule("step", lr=1.0, gamma=0.1, step_size=10), 25) == pytest.approx(0.01)
    lin = LRSchedule("linear", lr=1.0, lr_final=0.0, total_steps=4)
    assert [lr_at(lin, s) for s in (0, 1, 4, 9)] == [1.0, 0.75, 0.0, 0.0]
    cos = LRSchedule("cosine", lr=1.0, lr_final=0.2, total_steps=2)
    assert lr_at(cos, 1) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unknown schedule kind"):
        LRSchedule("warp")


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="w_max"):
        STDPParams(w_min=1.0, w_max=0.5)
    with pytest.raises(ValueError, match="weight_dependence"):
        STDPParams(weight_dependence="log")
    with pytest.raises(ValueError, match="tau_plus"):
        STDPParams(tau_plus=0)
    with pytest.raises(ValueError, match="unknown STDPParams"):
        make_params("stdp", a_pluss=1.0)
    with pytest.raises(ValueError, match="unknown plasticity rule"):
        PLASTICITY_RULES.get("bcm")
    s = stdp_init(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="do not match the trace state"):
        stdp_step(torch.zeros(3, 3), torch.zeros(3, 4), s, torch.zeros(4, 3), STDPParams())


def test_learner_matches_functional_and_schedule():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        layer.weight.uniform_(0.2, 0.8)
    w0 = layer.weight.detach().clone()
    p = STDPParams(a_plus=0.05, a_minus=0.04)
    learner = STDPLearner(layer, "stdp", p, schedule=LRSchedule("exponential", lr=1.0, gamma=0.9))
    g = torch.Generator().manual_seed(2)
    pre = (torch.rand(10, 2, 6, generator=g) < 0.4).float()
    post = (torch.rand(10, 2, 3, generator=g) < 0.4).float()
    learner.observe(pre, post)
    w, s = w0, stdp_init(pre[0], post[0])
    for t in range(10):
        dw, s = stdp_step(pre[t], post[t], s, w, p)
        w = apply_update(w, dw, 0.9**t, p)
    torch.testing.assert_close(layer.weight.detach(), w)
    assert learner.updates == 10
    with pytest.raises(ValueError, match="takes no reward"):
        learner.step(pre[0], post[0], reward=1.0)
    rl = STDPLearner(torch.nn.Linear(6, 3), "rstdp")
    with pytest.raises(ValueError, match="needs a reward"):
        rl.step(pre[0], post[0])


def test_plastic_layer_learns_only_in_train_mode_and_outside_autograd():
    from neurosynth.neurons import LIF

    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    pl = PlasticLayer(layer, LIF(beta=0.9, threshold=1.0), rule="stdp", a_plus=0.05, a_minus=0.01)
    x = (torch.rand(20, 3, 8, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    pl.eval()
    out = pl(x)
    assert out.shape == (20, 3, 4)
    assert torch.equal(layer.weight.detach(), torch.full((4, 8), 0.5))
    pl.train()
    out = pl(x)
    assert out.sum() > 0
    assert not torch.equal(layer.weight.detach(), torch.full((4, 8), 0.5))
    assert layer.weight.grad is None
    assert not any(k.startswith("learner.") for k in pl.state_dict())  # the weight is stored once


def test_plastic_conv_layer_runs_batched():
    from neurosynth.neurons import IF

    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(0.3)
    pl = PlasticLayer(conv, IF(threshold=1.0), rule="triplet", a2_plus=0.01, w_max=0.5)
    x = (torch.rand(6, 2, 2, 5, 5, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    y = pl(x)
    assert y.shape == (6, 2, 3, 5, 5)
    w = conv.weight.detach()
    assert float(w.max()) <= 0.5 and not torch.allclose(w, torch.full_like(w, 0.3))
