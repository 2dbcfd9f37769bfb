r"""The autograd wrapper of a generated custom-neuron kernel (CPU C++ or Triton; same contract).

:func:`apply` runs ``(x [T, B, ...], initial states, parameters) -> (s, h, final states)`` as one
``autograd.Function`` over the whole sequence. A kernel object (``CpuKernel`` or ``TritonKernel``) provides

- ``forward(x [T, M], states [K][M] (updated in place), params [P][M], save) -> (s, h, saved)``, ``saved`` the
  K per-step states the backward reads (``None`` for one it does not);
- ``backward(T, x, saved, params, g_s, g_h, g_states [K][M] (updated in place)) -> (g_x, [g_param [M]])``.

Everything is flattened to ``M = B * features`` neurons; parameters are broadcast to one time step and their
per-neuron gradient sums are reduced back to the parameter's shape here (``reduce_to``). What is kept for
backward: the saved states (one ``[T, M]`` tensor per state variable the backward reads -- for a one-state
neuron as much as the built-in LIF keeps), ``x`` only if the hooks' derivatives read it, and the parameters.
"""

from __future__ import annotations

import torch

from ..common import reduce_to


def _flat_step(t: torch.Tensor, step_shape, dtype) -> torch.Tensor:
    return t.detach().to(dtype).expand(step_shape).reshape(-1).contiguous()


class _Sequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel, n_state: int, x, *rest):
        states0, params = rest[:n_state], rest[n_state:]
        T, step_shape, dtype = x.shape[0], x.shape[1:], kernel.cap.dtype
        xf = x.detach().reshape(T, -1).to(dtype).contiguous()
        st = [_flat_step(s, step_shape, dtype).clone() for s in states0]
        ps = [_flat_step(p, step_shape, dtype) for p in params]
        save = any(ctx.needs_input_grad[2:])
        s, h, saved = kernel.forward(xf, st, ps, save)
        ctx.kernel, ctx.n_state, ctx.T, ctx.device = kernel, n_state, T, x.device
        ctx.shapes = (x.shape, x.dtype, step_shape)
        ctx.likes = [torch.empty(t.shape, dtype=t.dtype, device="meta") for t in rest]
        ctx.saved_mask = [t is not None for t in saved]
        ctx.save_for_backward(xf if kernel.reads_x else None, *[t for t in saved if t is not None], *ps)
        outs = [s.view(x.shape).to(x.dtype), h.view(x.shape)] + [v.view(step_shape) for v in st]
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_s, g_h, *g_final):
        kernel, k = ctx.kernel, ctx.n_state
        x_shape, x_dtype, step_shape = ctx.shapes
        tensors = ctx.saved_tensors
        xf = tensors[0]
        n_saved = sum(ctx.saved_mask)
        it = iter(tensors[1:1 + n_saved])
        saved = [next(it) if m else None for m in ctx.saved_mask]
        ps = list(tensors[1 + n_saved:])
        dtype = kernel.cap.dtype
        M = ps[0].numel() if ps else int(torch.Size(step_shape).numel())

        def flat_seq(g):
            return None if g is None else g.reshape(ctx.T, -1).to(dtype).contiguous()

        g_states = [torch.zeros(M, dtype=dtype, device=ctx.device) if g is None else g.reshape(-1).to(dtype).clone() for g in g_final]
        g_x, g_p = kernel.backward(ctx.T, xf, saved, ps, flat_seq(g_s), flat_seq(g_h), g_states)
        grads = [None, None, g_x.view(x_shape).to(x_dtype) if ctx.needs_input_grad[2] else None]
        for q in range(k):
            grads.append(reduce_to(g_states[q].view(step_shape), ctx.likes[q]) if ctx.needs_input_grad[3 + q] else None)
        names = kernel.cap.param_names
        learn = dict(zip(kernel.cap.grad_params, g_p))
        for j, name in enumerate(names):
            need = ctx.needs_input_grad[3 + k + j]
            grads.append(reduce_to(learn[name].view(step_shape), ctx.likes[k + j]) if need and name in learn else None)
        return tuple(grads)


def apply(kernel, x: torch.Tensor, states0: list[torch.Tensor], params: list[torch.Tensor]):
    """``(s [T, B, ...], h [T, B, ...], [final state k [B, ...]])`` through ``kernel`` (differentiable in ``x``,
    the initial states and the parameters the kernel was generated to learn)."""
    out = _Sequence.apply(kernel, len(states0), x, *states0, *params)
    return out[0], out[1], list(out[2:])
