"""LIF on CPU: the C++ kernels of ``neurosynth/_csrc`` (through :mod:`neurosynth._cext`).

float32/float64 run natively; bfloat16/float16 input is converted to float32 once (membrane accumulated in
float32, spikes returned in the input dtype), which is the reference's arithmetic, so spikes stay identical.
"""

from __future__ import annotations

import torch

from ... import _cext
from ..common import acc_dtype, surrogate_code

_HALF = (torch.bfloat16, torch.float16)


def available(x: torch.Tensor) -> bool:
    if x.device.type != "cpu":
        return False
    probe = x if x.dtype not in _HALF else x.new_empty(0, dtype=torch.float32)
    return _cext.available(probe)


def forward(x, v0, beta, thr, mode: int):
    acc = acc_dtype(x.dtype)
    xa = x.to(acc)
    out = _cext.lif_forward(xa, v0.to(acc), beta.to(acc), thr.to(acc), int(mode))
    if out is None:
        return None
    s, h, v = out
    return (s if x.dtype == acc else s.to(x.dtype)), h, v


def backward(h, g_s, g_h_out, g_v, beta, thr, mode: int, detach_reset: bool, sur):
    code = surrogate_code(sur)
    if code is None:
        return None
    acc = h.dtype
    return _cext.lif_backward(h, None if g_s is None else g_s.to(acc), None if g_h_out is None else g_h_out.to(acc),
                              None if g_v is None else g_v.to(acc), beta.to(acc), thr.to(acc), int(mode),
                              bool(detach_reset), code)
