"""Learning rules: gradients and propagated errors against their defining formulas (hand-computed)."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from neurosynth import rules
from neurosynth.rules import BioConv2d, BioLinear, Conv2dFeedback

W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # (out=2, in=3)
X = torch.tensor([[1.0, 2.0, 3.0]])
G = torch.tensor([[1.0, -1.0]])  # dL/dy with L = (y * G).sum()
B = torch.tensor([[0.5, 0.25, -1.0], [2.0, -0.5, 1.0]])


def _linear(rule, **kw):
    layer = BioLinear(3, 2, bias=True, rule=rule, **kw)
    with torch.no_grad():
        layer.weight.copy_(W)
        layer.bias.zero_()
    return layer


def _grads(layer, x=X, g=G):
    x = x.clone().requires_grad_(True)
    (layer(x) * g).sum().backward()
    return x.grad, layer.weight.grad, layer.bias.grad


def test_registry_names():
    assert rules.RULES.names() == ["bp", "brsf", "dfa", "fa", "frsf", "usf"]
    with pytest.raises(ValueError, match="registered learning rules"):
        rules.get_rule("nope")


def test_bp_linear_hand_values():
    gx, gw, gb = _grads(_linear("bp"))
    # g W = [1*1 - 0, 1*(-2) - 3, 0.5 + 1]
    assert torch.allclose(gx, torch.tensor([[1.0, -5.0, 1.5]]))
    assert torch.allclose(gw, torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]))
    assert torch.allclose(gb, torch.tensor([1.0, -1.0]))


def test_fa_linear_uses_B_for_error_and_local_weight_grad():
    layer = _linear("fa")
    layer.weight_backward.copy_(B)
    gx, gw, _ = _grads(layer)
    # g B = [0.5 - 2, 0.25 + 0.5, -1 - 1]
    assert torch.allclose(gx, torch.tensor([[-1.5, 0.75, -2.0]]))
    assert torch.allclose(gw, torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]))
    assert "weight_backward" in layer.state_dict()
    assert all(p is not layer.weight_backward for p in layer.parameters())


def test_usf_linear_is_scaled_sign_of_W():
    gx, gw, _ = _grads(_linear("usf"))
    s = math.sqrt(2.0 / (3 + 2))
    # sign(W) = [[1,-1,1],[0,1,-1]]; g sign(W) = [1, -2, 2]
    assert torch.allclose(gx, s * torch.tensor([[1.0, -2.0, 2.0]]))
    assert torch.allclose(gw, torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]))


def test_frsf_linear_fixed_magnitude_times_sign():
    layer = _linear("frsf")
    layer.feedback_magnitude.copy_(B.abs())
    gx, _, _ = _grads(layer)
    # |B| o sign(W) = [[0.5,-0.25,1],[0,0.5,-1]]; g(...) = [0.5, -0.75, 2]
    assert torch.allclose(gx, torch.tensor([[0.5, -0.75, 2.0]]))
    before = layer.feedback_magnitude.clone()
    rules.step(layer)  # frSF has no per-step state
    assert torch.equal(before, layer.feedback_magnitude)


def test_brsf_redraws_only_on_step_and_is_reproducible():
    layer = _linear("brsf", generator=torch.Generator().manual_seed(3))
    R0 = layer.feedback_magnitude.clone()
    gx, _, _ = _grads(layer)
    expected = G @ (R0 * torch.sign(W))
    assert torch.allclose(gx, expected)
    layer.eval()
    layer(X)
    layer.train()
    layer(X)  # extra forward passes never redraw
    assert torch.equal(R0, layer.feedback_magnitude)
    sd = {k: v.clone() for k, v in layer.state_dict().items()}
    rules.step(layer)
    R1 = layer.feedback_magnitude.clone()
    assert not torch.equal(R0, R1) and int(layer.feedback_step) == 1
    assert (R1 >= 0).all()
    other = _linear("brsf", generator=torch.Generator().manual_seed(99))
    other.load_state_dict(sd)
    rules.step(other)  # a reloaded layer continues the same sequence of R
    assert torch.equal(other.feedback_magnitude, R1)


def test_attach_redraws_after_optimizer_step():
    layer = _linear("brsf")
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    handle = rules.attach(layer, opt)
    R0 = layer.feedback_magnitude.clone()
    _grads(layer)
    opt.step()
    assert not torch.equal(R0, layer.feedback_magnitude)
    handle.remove()


def test_dfa_sends_output_error_directly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    rules.convert(net, "dfa", output_dim=2)
    x = torch.randn(5, 3, requires_grad=True)
    g = torch.randn(5, 2)
    h = F.relu(net[0](x)).detach()
    (net(x) * g).sum().backward()
    B1, B2 = net[0].weight_backward, net[2].weight_backward
    assert B1.shape == (2, 3) and B2.shape == (2, 4)
    # input error of layer 1: e B1, with e = g (the output error)
    assert torch.allclose(x.grad, g @ B1, atol=1e-6)
    # hidden delta: (e B2) * relu'(a1); weight grad of layer 1 = delta^T x
    delta = (g @ B2) * (h > 0).float()
    assert torch.allclose(net[0].weight.grad, delta.t() @ x.detach(), atol=1e-6)
    assert torch.allclose(net[2].weight.grad, g.t() @ h, atol=1e-6)


def test_dfa_without_capture_raises():
    layer = BioLinear(3, 2, rule="dfa", output_dim=2)
    x = torch.randn(1, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not attached"):
        layer(x)
    with pytest.raises(ValueError, match="output_dim"):
        BioLinear(3, 2, rule="dfa")


def _conv_loop_reference(x, w, g):
    """Plain loops: stride 1, no padding, one channel in and out. Returns (dL/dx with kernel w, dL/dw)."""
    H, Wd = x.shape
    k = w.shape[0]
    gx = torch.zeros_like(x)
    gw = torch.zeros_like(w)
    for i in range(H - k + 1):
        for j in range(Wd - k + 1):
            gx[i:i + k, j:j + k] += g[i, j] * w
            gw += g[i, j] * x[i:i + k, j:j + k]
    return gx, gw


def test_fa_conv_matches_loop_reference():
    x = torch.arange(9.0).reshape(3, 3)
    Wk = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    Bk = torch.tensor([[0.3, 0.1], [-0.2, 0.4]])
    g = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    layer = BioConv2d(1, 1, 2, bias=False, rule="fa")
    with torch.no_grad():
        layer.weight.copy_(Wk.view(1, 1, 2, 2))
    layer.weight_backward.copy_(Bk.view(1, 1, 2, 2))
    xi = x.view(1, 1, 3, 3).clone().requires_grad_(True)
    (layer(xi) * g.view(1, 1, 2, 2)).sum().backward()
    gx_ref, gw_ref = _conv_loop_reference(x, Bk, g)
    assert torch.allclose(xi.grad.view(3, 3), gx_ref)
    assert torch.allclose(layer.weight.grad.view(2, 2), gw_ref)
    # hand check of two entries: dL/dw[0,0] = 1*0 + 2*1 - 1*3 + 0.5*4 = 1
    assert layer.weight.grad.view(2, 2)[0, 0].item() == pytest.approx(1.0)
    # dL/dx[0,0] only sees window (0,0) through B[0,0]: 1 * 0.3
    assert xi.grad.view(3, 3)[0, 0].item() == pytest.approx(0.3)


@pytest.mark.parametrize("groups,dilation,stride", [(1, 1, 1), (4, 1, 1), (4, 2, 1), (2, 1, 2), (4, 2, 2)])
def test_conv_function_with_B_equal_W_matches_autograd(groups, dilation, stride):
    """BP through the custom Function (B = W) equals autograd, incl. depthwise (groups>1) and dilation."""
    g0 = torch.Generator().manual_seed(groups * 10 + dilation + stride)
    x = torch.randn(2, 4, 9, 9, generator=g0, dtype=torch.float64)
    w = torch.randn(8, 4 // groups, 3, 3, generator=g0, dtype=torch.float64)
    b = torch.randn(8, generator=g0, dtype=torch.float64)
    pad = (dilation, dilation)
    x1, w1, b1 = (t.clone().requires_grad_(True) for t in (x, w, b))
    x2, w2, b2 = (t.clone().requires_grad_(True) for t in (x, w, b))
    y1 = Conv2dFeedback.apply(x1, w1, b1, w1.detach(), (stride, stride), pad, (dilation, dilation), groups)
    y2 = F.conv2d(x2, w2, b2, stride, pad, dilation, groups)
    gy = torch.randn(y2.shape, generator=g0, dtype=torch.float64)
    (y1 * gy).sum().backward()
    (y2 * gy).sum().backward()
    assert torch.allclose(y1, y2)
    for a, c in ((x1, x2), (w1, w2), (b1, b2)):
        assert torch.allclose(a.grad, c.grad, atol=1e-10)


def test_fa_depthwise_conv_error_is_conv_transpose_of_B():
    torch.manual_seed(1)
    layer = BioConv2d(4, 4, 3, padding=2, dilation=2, groups=4, rule="fa")
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    gy = torch.randn(2, 4, 6, 6)
    (layer(x) * gy).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    (F.conv2d(xr, layer.weight_backward, None, 1, 2, 2, 4) * gy).sum().backward()
    assert torch.allclose(x.grad, xr.grad, atol=1e-6)
    wr = layer.weight.detach().clone().requires_grad_(True)
    (F.conv2d(x.detach(), wr, layer.bias.detach(), 1, 2, 2, 4) * gy).sum().backward()
    assert torch.allclose(layer.weight.grad, wr.grad, atol=1e-6)


def test_dfa_conv_shapes_and_formula():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, groups=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    rules.convert(net, "dfa")
    assert net[0].weight_backward.shape == (5, 2, 3, 3)
    x = torch.randn(2, 2, 4, 4, requires_grad=True)
    g = torch.randn(2, 5)
    (net(x) * g).sum().backward()
    tiled = g[:, :, None, None].expand(2, 5, 4, 4)
    ref = torch.nn.grad.conv2d_input(x.shape, net[0].weight_backward, tiled, 1, 1, 1, 1)
    assert torch.allclose(x.grad, ref, atol=1e-6)


def test_convert_shares_parameters_and_assign_validates():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))
    w = net[0].weight
    rules.convert(net, "usf", exclude=("2",))
    assert isinstance(net[0], BioConv2d) and net[0].weight is w
    assert type(net[2]) is nn.Linear
    rules.assign(net, {"2": "fa"})
    assert rules.rule_map(net) == {"0": "usf", "2": "fa"}
    with pytest.raises(ValueError, match="no module named"):
        rules.assign(net, {"9": "fa"})
    with pytest.raises(ValueError, match="not a Linear/Conv2d"):
        rules.assign(net, {"1": "fa"})


def test_alignment_angle_helper():
    layer = _linear("fa")
    layer.weight_backward.copy_(W)
    assert rules.alignment_angle(layer) == pytest.approx(0.0, abs=1e-6)
    layer.weight_backward.copy_(-W)
    assert rules.alignment_angle(layer) == pytest.approx(180.0)
    layer.weight_backward.copy_(torch.tensor([[3.0, 1.0, -2.0], [0.0, 0.0, 0.0]]))  # <B, W> = 3 - 2 - 1 = 0
    assert rules.alignment_angle(layer) == pytest.approx(90.0)
    assert rules.alignment_angle(_linear("bp")) == 0.0
    assert rules.alignment_angle(_linear("usf")) < 90.0  # sign concordance keeps B within 90 degrees of W


def test_hebbian_conv_update_semantics():
    torch.manual_seed(0)
    layer = rules.HebbianConv2d(2, 3, 3, padding=1, hebb_lr=0.1)
    x = torch.randn(4, 2, 5, 5)
    layer.eval()
    layer(x)
    rules.step(layer)
    assert torch.count_nonzero(layer.hebbian_weight) == 0  # eval passes never update
    layer.train()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    rules.attach(layer, opt)
    y = layer(x)
    expected_delta = layer.hebbian_delta(x, y.detach())
    w_before = layer.weight.detach().clone()
    y.square().mean().backward()
    sgd_step = -0.5 * layer.weight.grad.clone()
    opt.step()
    assert torch.allclose(layer.hebbian_weight, expected_delta)  # H got exactly the Hebbian update
    assert torch.allclose(layer.weight.detach(), w_before + sgd_step)  # W got exactly the SGD update
    assert int(layer.hebbian_steps) == 1
    sd = layer.state_dict()
    assert "hebbian_weight" in sd and "hebbian_steps" in sd
    assert "hebbian_weight" not in dict(layer.named_parameters())


def test_hebbian_delta_layout_matches_loops():
    layer = rules.HebbianConv2d(2, 1, 2, hebb_lr=1.0)
    x = torch.arange(18.0).reshape(1, 2, 3, 3) / 10
    with torch.no_grad():
        y = layer(x)
    d = layer.hebbian_delta(x, y)
    ref = torch.zeros(1, 2, 2, 2)
    L = 4
    for i in range(2):
        for j in range(2):
            patch = x[0, :, i:i + 2, j:j + 2]
            patch = patch / patch.norm()
            out = y[0, :, i, j] / y[0, :, i, j].norm()
            ref[0] += out[0] * patch / L
    assert torch.allclose(d, ref, atol=1e-6)


def test_predictive_coding_conv():
    torch.manual_seed(0)
    pc = rules.PredictiveCodingConv2d(3, 4, 3, stride=2, padding=1, steps=0)
    x = torch.randn(2, 3, 7, 7)
    assert torch.allclose(pc(x), F.relu(pc.ff(x)))
    pc.steps = 2
    y = pc(x)
    assert y.shape == (2, 4, 4, 4)
    assert pc.predict(y, x.shape).shape == x.shape
    y.sum().backward()
    assert pc.error_weights.grad is not None and pc.generative.grad is not None
