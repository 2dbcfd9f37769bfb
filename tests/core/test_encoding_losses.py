import pytest
import torch

from neurosynth import encoding
from neurosynth.losses import LOSSES, accuracy, firing_rate_regularizer, get_loss


def test_rate_encoder_is_reproducible_and_has_the_right_rate(gen):
    x = torch.tensor([[0.0, 0.25, 1.0]]).expand(2000, 3)
    s = encoding.rate(x, T=10, generator=gen)
    assert s.shape == (10, 2000, 3)
    rates = s.mean((0, 1))
    assert rates[0] == 0 and rates[2] == 1
    assert abs(float(rates[1]) - 0.25) < 0.01
    g2 = torch.Generator().manual_seed(1234)
    assert torch.equal(s, encoding.rate(x, T=10, generator=g2))


def test_latency_encoder_one_spike_earlier_for_larger_values():
    x = torch.tensor([[1.0, 0.5, 0.0]])
    s = encoding.latency(x, T=11)
    assert s.shape == (11, 1, 3)
    assert s.sum(0).tolist() == [[1.0, 1.0, 0.0]]
    assert s[:, 0, 0].nonzero().item() == 0 and s[:, 0, 1].nonzero().item() == 5


def test_delta_encoder_spikes_on_changes():
    sig = torch.tensor([0.0, 0.05, 0.2, 0.2, 0.0]).view(5, 1, 1)
    s = encoding.delta(sig, threshold=0.1, off_spikes=True)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 0.0, -1.0]


def test_encoders_refuse_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoding.rate(torch.tensor([2.0]), T=3)
    with pytest.raises(ValueError, match="NaN"):
        encoding.rate(torch.tensor([float("nan")]), T=3)
    with pytest.raises(ValueError, match="registered encoders"):
        encoding.encode("morse", torch.zeros(1), 3)


def test_losses_golden_values():
    out = torch.zeros(4, 2, 3)
    out[:, 0, 1] = 1  # sample 0: 4 spikes on class 1
    out[:2, 1, 2] = 1  # sample 1: 2 spikes on class 2
    y = torch.tensor([1, 0])
    ce = get_loss("rate_ce")
    counts = out.sum(0)
    torch.testing.assert_close(ce(out, y), torch.nn.functional.cross_entropy(counts, y))
    assert ce.predict(out).tolist() == [1, 2]
    mse = get_loss("count_mse")
    goal = torch.tensor([[0.4, 3.2, 0.4], [3.2, 0.4, 0.4]])
    torch.testing.assert_close(mse(out, y), torch.nn.functional.mse_loss(counts, goal))
    mm = get_loss("max_membrane_ce")
    mem = torch.randn(5, 2, 3)
    torch.testing.assert_close(mm(mem, y), torch.nn.functional.cross_entropy(mem.max(0).values, y))
    assert accuracy(torch.tensor([1, 2]), y) == 0.5
    assert {"rate_ce", "count_mse", "max_membrane_ce", "mean_membrane_ce"} <= set(LOSSES.names())
    with pytest.raises(ValueError, match=r"\[T, B, C\]"):
        ce(torch.zeros(2, 3), y)


def test_firing_rate_regularizer():
    rec = {"a": torch.full((10, 2, 4), 0.25), "b": torch.zeros(10, 2, 4)}
    r = firing_rate_regularizer(rec, target=0.05, weight=2.0)
    assert float(r) == pytest.approx(2.0 * ((0.2**2) + (0.05**2)) / 2)
    assert float(firing_rate_regularizer(rec, target=0.05, upper_only=True)) == pytest.approx(0.2**2 / 2)
