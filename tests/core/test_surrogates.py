import pytest
import torch

from neurosynth.surrogate import SURROGATES, get_surrogate

NAMES = ["fast_sigmoid", "atan", "sigmoid", "triangle", "rectangular", "straight_through"]


@pytest.mark.parametrize("name", NAMES)
def test_hand_written_grad_matches_autograd_of_primitive(name):
    sur = get_surrogate(name)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    # stay off the kinks of the piecewise primitives, where the derivative is undefined
    kinks = {"triangle": [-1.0, 0.0, 1.0], "rectangular": [-0.5, 0.5]}.get(name, [])
    for k in kinks:
        x = x[(x - k).abs() > 1e-3]
    x = x.clone().requires_grad_()
    (auto,) = torch.autograd.grad(sur.primitive(x).sum(), x)
    torch.testing.assert_close(sur.grad(x.detach()), auto, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_forward_is_strict_heaviside_and_backward_uses_grad(name):
    sur = get_surrogate(name)
    x = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 2.0], requires_grad=True)
    s = sur(x)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    (g,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, sur.grad(x.detach()))


def test_hyperparameters_are_named_and_serialisable():
    s = get_surrogate("atan", alpha=3.0)
    assert s.alpha == 3.0 and s.to_dict() == {"name": "atan", "alpha": 3.0}
    assert get_surrogate(s.to_dict()) == s
    assert get_surrogate({"name": "fast_sigmoid", "slope": 10.0}).slope == 10.0
    # snnTorch's ATan gradient at 0 is alpha/2
    assert float(s.grad(torch.tensor(0.0))) == pytest.approx(1.5)


def test_unknown_surrogate_lists_registered_names():
    with pytest.raises(ValueError, match="registered surrogates: .*atan"):
        get_surrogate("nope")
    with pytest.raises(ValueError, match="takes parameters"):
        get_surrogate("atan", slope=2)
    assert set(NAMES) <= set(SURROGATES.names())
