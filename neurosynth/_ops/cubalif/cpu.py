"""CubaLIF on CPU: the C++ kernels of ``neurosynth/_csrc`` (through :mod:`neurosynth._cext`); bfloat16/float16
input is converted to float32 once (the reference's arithmetic), spikes are returned in the input dtype."""

from __future__ import annotations

from ... import _cext
from ..common import acc_dtype, surrogate_code
from ..lif.cpu import available  # noqa: F401  (same rule: CPU, C++ built, any float dtype)


def forward(x, i0, v0, alpha, beta, thr, mode: int, save_i: bool):
    acc = acc_dtype(x.dtype)
    out = _cext.cubalif_forward(x.to(acc), i0, v0, alpha, beta, thr, mode, save_i)
    if out is None:
        return None
    s, h, i_seq, i, v = out
    return (s if x.dtype == acc else s.to(x.dtype)), h, i_seq, i, v


def backward(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode: int, detach_reset: bool, sur, need_gh: bool):
    return _cext.cubalif_backward(h, g_s, g_h_out, g_v, g_i, alpha, beta, thr, mode, detach_reset,
                                  surrogate_code(sur), need_gh)

