"""ALIF on CPU: the C++ kernels of ``neurosynth/_csrc`` (through :mod:`neurosynth._cext`); bfloat16/float16
input is converted to float32 once (the reference's arithmetic), spikes are returned in the input dtype."""

from __future__ import annotations

from ... import _cext
from ..common import acc_dtype, surrogate_code
from ..lif.cpu import available  # noqa: F401  (same rule: CPU, C++ built, any float dtype)


def forward(x, v0, a0, beta, thr, rho, b, mode: int):
    acc = acc_dtype(x.dtype)
    out = _cext.alif_forward(x.to(acc), v0, a0, beta, thr, rho, b, mode)
    if out is None:
        return None
    s, h, a_seq, v, a = out
    return (s if x.dtype == acc else s.to(x.dtype)), h, a_seq, v, a


def backward(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode: int, detach_reset: bool, sur,
             need_param: bool):
    return _cext.alif_backward(h, a_seq, a0, g_s, g_h_out, g_v, g_a, beta, thr, rho, b, mode, detach_reset,
                               surrogate_code(sur), need_param)
