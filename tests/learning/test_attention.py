"""Bio-inspired attention variants: equivalences with softmax attention, competition invariants, causality."""

from __future__ import annotations

import math

import pytest
import torch

from neurosynth.attention import (
    ATTENTION,
    GainModulatedAttention,
    MultiHeadAttention,
    OscillatoryGatedAttention,
    competitive_weights,
    gain_modulated_attention,
    oscillatory_attention,
    sdpa,
    softmax_attention,
    theta_gate,
)


def qkv(B=2, H=3, L=7, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, L, D, generator=g, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("is_causal", [False, True])
def test_explicit_softmax_equals_fused_sdpa(is_causal):
    q, k, v = qkv()
    mask = torch.rand(7, 7, generator=torch.Generator().manual_seed(1)) > 0.3
    mask |= torch.eye(7, dtype=torch.bool)
    for m in (None, mask):
        torch.testing.assert_close(softmax_attention(q, k, v, m, is_causal), sdpa(q, k, v, m, is_causal))


def test_competitive_weights_golden_and_invariants():
    s = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # mean 3: only keys above 3 survive
    w1 = competitive_weights(s, None, power=1.0)
    torch.testing.assert_close(w1, torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    s = torch.tensor([[0.0, 1.0, 5.0, 6.0]])  # mean 3 -> rectified [0, 0, 2, 3]
    torch.testing.assert_close(competitive_weights(s, None, 1.0), torch.tensor([[0, 0, 0.4, 0.6]]))
    torch.testing.assert_close(competitive_weights(s, None, 2.0), torch.tensor([[0, 0, 4 / 13, 9 / 13]]))
    # winner-take-more: a larger power gives the winner more
    assert competitive_weights(s, None, 4.0)[0, 3] > competitive_weights(s, None, 2.0)[0, 3]
    # all equal -> uniform over the visible keys; masked keys get nothing
    eq = torch.zeros(1, 4)
    vis = torch.tensor([[True, True, False, True]])
    torch.testing.assert_close(competitive_weights(eq, vis, 2.0), torch.tensor([[1 / 3, 1 / 3, 0, 1 / 3]]))


def test_competitive_rows_sum_to_one_and_respect_causality():
    q, k, v = qkv(L=9)
    s = q @ k.transpose(-2, -1)
    vis = torch.ones(9, 9, dtype=torch.bool).tril()
    w = competitive_weights(s, vis, 2.5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 9, dtype=torch.float64))
    assert bool((w[..., ~vis] == 0).all())
    assert bool((w >= 0).all())


def test_theta_gate_golden_and_periodic():
    t = torch.arange(16.0)
    omega, phase, sharp = torch.tensor([2 * math.pi / 8]), torch.tensor([0.0]), torch.tensor([3.0])
    g = theta_gate(t, omega, phase, sharp, floor=0.1)
    assert g[0, 0].item() == pytest.approx(0.1 + 0.9 / (1 + math.exp(-3.0)))
    assert g[0, 4].item() == pytest.approx(0.1 + 0.9 / (1 + math.exp(3.0)))
    torch.testing.assert_close(g[:, :8], g[:, 8:])
    assert float(g.min()) >= 0.1


def test_oscillatory_reduces_to_gated_softmax():
    q, k, v = qkv()
    const = torch.full((3, 7), 0.7, dtype=torch.float64)
    enc_q = torch.rand(3, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = oscillatory_attention(q, k, v, None, True, encode_k=const, encode_q=enc_q, floor=0.05)
    # a constant write gate leaves the softmax unchanged; the read gate scales each query's output
    ref = sdpa(q, k, v, is_causal=True) * (1 - enc_q + 0.05)[None, :, :, None]
    torch.testing.assert_close(out, ref)
    # a write gate is a multiplicative weight on each key
    enc_k = torch.rand(3, 7, generator=torch.Generator().manual_seed(6), dtype=torch.float64) + 0.1
    out = oscillatory_attention(q, k, v, encode_k=enc_k, encode_q=torch.zeros(3, 7, dtype=torch.float64))
    w = torch.softmax(q @ k.transpose(-2, -1) / 2.0, -1) * enc_k[None, :, None, :]
    torch.testing.assert_close(out, (w / w.sum(-1, keepdim=True)) @ v)


def test_gain_modulation_multiplies_softmax_weights():
    q, k, v = qkv()
    g = torch.rand(2, 3, 1, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.2
    out = gain_modulated_attention(q, k, v, log_gain=g.log())
    w = torch.softmax(q @ k.transpose(-2, -1) / 2.0, -1) * g
    torch.testing.assert_close(out, (w / w.sum(-1, keepdim=True)) @ v)
    torch.testing.assert_close(gain_modulated_attention(q, k, v, log_gain=torch.zeros(1, 1, 1, 7,
                                                                                    dtype=torch.float64)),
                               sdpa(q, k, v))


def test_gain_module_starts_as_standard_and_takes_external_context():
    q, k, v = (t.float() for t in qkv())
    m = GainModulatedAttention(num_heads=3, head_dim=4)
    torch.testing.assert_close(m(q, k, v), sdpa(q, k, v))
    with pytest.raises(ValueError, match="context"):
        m.set_context(torch.zeros(2, 5))
    m2 = GainModulatedAttention(num_heads=3, head_dim=4, context_dim=5)
    with torch.no_grad():
        m2.context_proj.normal_()
    m2.set_context(torch.randn(2, 5))
    assert not torch.allclose(m2(q, k, v), sdpa(q, k, v))


@pytest.mark.parametrize("name", ATTENTION.names())
def test_every_variant_is_causal_differentiable_and_shape_preserving(name):
    q, k, v = (t.float().requires_grad_() for t in qkv(L=8))
    core = ATTENTION.get(name)(num_heads=3, head_dim=4)
    out = core(q, k, v, None, True)
    assert out.shape == (2, 3, 8, 4)
    out.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
    # causality: changing the last key/value leaves the earlier outputs unchanged
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, :, -1] += 5
    v2[:, :, -1] -= 3
    out2 = core(q.detach(), k2, v2, None, True)
    torch.testing.assert_close(out2[:, :, :-1], out.detach()[:, :, :-1])


@pytest.mark.parametrize("name", ATTENTION.names())
def test_multihead_wrapper_builds_every_variant(name):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, attention=name)
    x = torch.randn(3, 10, 16)
    y = mha(x, is_causal=True)
    assert y.shape == x.shape
    y.sum().backward()
    assert mha.q.weight.grad is not None


def test_bad_inputs_raise():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"q \[B, H, Lq, D\]"):
        sdpa(q[0], k, v)
    with pytest.raises(ValueError, match="unknown attention variant"):
        MultiHeadAttention(16, 4, attention="quantum")
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="heads"):
        OscillatoryGatedAttention(num_heads=2)(q.float(), k.float(), v.float())
