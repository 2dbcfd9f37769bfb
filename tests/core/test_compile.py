"""The fused ops are torch.library custom ops: ``torch.compile(model, fullgraph=True)`` captures a whole network
(no graph break) and gives the eager results; ``opcheck`` validates their schemas, fake kernels and autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neurosynth as ns
import neurosynth._ops.alif.autograd  # noqa: F401  (registers the custom ops)
import neurosynth._ops.cubalif.autograd  # noqa: F401
import neurosynth._ops.lif.autograd  # noqa: F401
from neurosynth.layers import SNN, Recurrent


def _args():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 5, generator=g)
    st = torch.rand(2, 5, generator=g)
    p = torch.rand(5, generator=g) * 0.5 + 0.4
    return x, st, p


@pytest.mark.parametrize("op", ["lif", "cubalif", "alif"])
def test_opcheck_custom_ops(op):
    x, st, p = _args()
    x.requires_grad_()
    sur = (0, 1.0, 3.14159)
    if op == "lif":
        args = (x, st, p.clone().requires_grad_(), torch.tensor(0.6), 0, True, *sur)
        fn = torch.ops.neurosynth.lif_fwd
    elif op == "cubalif":
        args = (x, st, st.clone(), p.clone().requires_grad_(), torch.tensor(0.8), torch.tensor(0.6), 1, True, True, *sur)
        fn = torch.ops.neurosynth.cubalif_fwd
    else:
        args = (x, st, st.clone(), torch.tensor(0.9), p.clone().requires_grad_(), torch.tensor(0.9), torch.tensor(0.2),
                0, True, *sur)
        fn = torch.ops.neurosynth.alif_fwd
    torch.library.opcheck(fn, args, test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


@pytest.mark.slow
def test_compile_fullgraph_whole_network_matches_eager():
    torch.manual_seed(0)
    net = SNN(nn.Linear(6, 8), ns.LIF(beta=0.85, threshold=0.4, learn_beta=True), nn.Linear(8, 7),
              Recurrent(7, "alif", beta=0.9, threshold=0.3), nn.Linear(7, 5), ns.CubaLIF(threshold=0.3),
              nn.Linear(5, 3), ns.LI(beta=0.8))
    x = torch.rand(12, 4, 6) * 2
    ref = net(x)
    ref.sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch._dynamo.reset()
    # fullgraph=True raises on any graph break; aot_eager traces forward and backward without inductor codegen
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.sum().backward()
    assert torch.equal(out, ref)
    for p, g in zip(net.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
