// Fused LIF recurrence for neurosynth's fused backend (CPU, float32/float64).
//
// Registered as torch ops (torch.ops.neurosynth_lif.*) through TORCH_LIBRARY, with light headers only, so
// the first-use build takes seconds, not a minute. The Python side (neurosynth/_cext.py) makes every tensor
// contiguous, broadcasts the per-neuron parameters and allocates the outputs; this file only runs loops.
//
// Layout: x is [T, M] (time-first, everything after time flattened); per-neuron values have M elements or
// one shared element. Each at::parallel_for chunk owns a slice of neurons and runs the whole time loop over
// it: one parallel region per layer and sequence. The arithmetic mirrors the pure-torch path of
// neurosynth/engine.py operation by operation (every product and sum rounded on its own; compiled with
// -ffp-contract=off so no FMA is formed), which keeps the spikes bit-identical to it.
//
// Modes: 0 subtract, 1 zero, 2 none, 3 subtract_delayed (snnTorch: h_t = beta*v_{t-1} + x_t - thr*s_{t-1}).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>

namespace {

constexpr int64_t kGrain = 512;

void check(const at::Tensor& t, at::ScalarType dtype, int64_t numel, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "neurosynth_lif: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == dtype, "neurosynth_lif: ", name, " has the wrong dtype");
  TORCH_CHECK(t.is_contiguous(), "neurosynth_lif: ", name, " must be contiguous");
  TORCH_CHECK(t.numel() == numel, "neurosynth_lif: ", name, " has ", t.numel(), " elements, expected ", numel);
}

template <typename scalar_t, int MODE>
void lif_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ v0,
                        const scalar_t* __restrict__ beta, const scalar_t* __restrict__ thr, scalar_t* s, scalar_t* h, scalar_t* v, int64_t T,
                        int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) v[i] = v0[i];
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* xt = x + t * M;
      scalar_t* ht = h + t * M;
      scalar_t* st = s + t * M;
      const scalar_t* sp = (t > 0) ? s + (t - 1) * M : s;
      for (int64_t i = b; i < e; ++i) {
        const scalar_t bv = beta[i] * v[i];
        scalar_t hh = xt[i] + bv;
        const scalar_t th = thr[i];
        if (MODE == 3 && t > 0) {
          const scalar_t r = th * sp[i];
          hh = hh - r;
        }
        const scalar_t ss = hh > th ? scalar_t(1) : scalar_t(0);
        ht[i] = hh;
        st[i] = ss;
        if (MODE == 0) {
          const scalar_t r = th * ss;
          v[i] = hh - r;
        } else if (MODE == 1) {
          v[i] = hh * (scalar_t(1) - ss);
        } else {
          v[i] = hh;
        }
      }
    }
  });
}

// x [T, M], v0 [M], beta/thr [M] (broadcast by the caller); writes s, h [T, M] and v [M] (the final membrane).
void lif_forward(const at::Tensor& x, const at::Tensor& v0, const at::Tensor& beta, const at::Tensor& thr,
                 int64_t mode, const at::Tensor& s, const at::Tensor& h, const at::Tensor& v) {
  TORCH_CHECK(x.dim() >= 1, "neurosynth_lif: x must be [T, ...]");
  TORCH_CHECK(mode >= 0 && mode <= 3, "neurosynth_lif: mode must be 0..3");
  const auto dtype = x.scalar_type();
  const int64_t T = x.size(0);
  const int64_t N = x.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(x, dtype, N, "x");
  check(s, dtype, N, "spikes");
  check(h, dtype, N, "h");
  check(v0, dtype, M, "v0");
  check(v, dtype, M, "v");
  check(beta, dtype, M, "beta");
  check(thr, dtype, M, "threshold");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_lif_forward", [&] {
    const scalar_t* bp = beta.const_data_ptr<scalar_t>();
    const scalar_t* tp = thr.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* v0p = v0.const_data_ptr<scalar_t>();
    scalar_t* sp = s.mutable_data_ptr<scalar_t>();
    scalar_t* hp = h.mutable_data_ptr<scalar_t>();
    scalar_t* vp = v.mutable_data_ptr<scalar_t>();
    switch (mode) {
      case 0: lif_forward_kernel<scalar_t, 0>(xp, v0p, bp, tp, sp, hp, vp, T, M); break;
      case 1: lif_forward_kernel<scalar_t, 1>(xp, v0p, bp, tp, sp, hp, vp, T, M); break;
      case 2: lif_forward_kernel<scalar_t, 2>(xp, v0p, bp, tp, sp, hp, vp, T, M); break;
      default: lif_forward_kernel<scalar_t, 3>(xp, v0p, bp, tp, sp, hp, vp, T, M); break;
    }
  });
}

// Reverse-time linear scan into g_h [T, M]:
//   g_h[T-1] = a[T-1] + d[T-1] * g_v,   g_h[t] = a[t] + m[t] * g_h[t+1].
// m and d are [T, M] or per-neuron ([M] / [1], the same for every step); d absent means 1, g_v absent 0.
template <typename scalar_t>
void reverse_scan_kernel(const scalar_t* a, const scalar_t* m, bool m_full, int64_t m_stride,
                         const scalar_t* d, bool d_full, int64_t d_stride, const scalar_t* gv,
                         scalar_t* gh, int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t last = (T - 1) * M;
    for (int64_t i = b; i < e; ++i) {
      scalar_t c = a[last + i];
      if (gv != nullptr) {
        const scalar_t dd = d == nullptr ? scalar_t(1) : (d_full ? d[last + i] : d[i * d_stride]);
        const scalar_t p = dd * gv[i];
        c = c + p;
      }
      gh[last + i] = c;
    }
    for (int64_t t = T - 2; t >= 0; --t) {
      const scalar_t* at_ = a + t * M;
      const scalar_t* gn = gh + (t + 1) * M;
      scalar_t* gt = gh + t * M;
      if (m_full) {
        const scalar_t* mt = m + t * M;
        for (int64_t i = b; i < e; ++i) {
          const scalar_t p = mt[i] * gn[i];
          gt[i] = at_[i] + p;
        }
      } else if (m_stride == 0) {
        const scalar_t mm = m[0];
        for (int64_t i = b; i < e; ++i) {
          const scalar_t p = mm * gn[i];
          gt[i] = at_[i] + p;
        }
      } else {
        for (int64_t i = b; i < e; ++i) {
          const scalar_t p = m[i] * gn[i];
          gt[i] = at_[i] + p;
        }
      }
    }
  });
}

void reverse_scan(const at::Tensor& a, const at::Tensor& m, const std::optional<at::Tensor>& d,
                  const std::optional<at::Tensor>& g_v, const at::Tensor& g_h) {
  TORCH_CHECK(a.dim() >= 1, "neurosynth_lif: a must be [T, ...]");
  const auto dtype = a.scalar_type();
  const int64_t T = a.size(0);
  const int64_t N = a.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(a, dtype, N, "a");
  check(g_h, dtype, N, "g_h");
  const bool m_full = m.numel() == N && N != M;
  check(m, dtype, m_full ? N : (m.numel() == 1 ? 1 : M), "m");
  const bool has_d = d.has_value() && d->defined();
  bool d_full = false;
  if (has_d) {
    d_full = d->numel() == N && N != M;
    check(*d, dtype, d_full ? N : (d->numel() == 1 ? 1 : M), "d");
  }
  const bool has_gv = g_v.has_value() && g_v->defined();
  if (has_gv) check(*g_v, dtype, M, "g_v");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_reverse_scan", [&] {
    reverse_scan_kernel<scalar_t>(
        a.const_data_ptr<scalar_t>(), m.const_data_ptr<scalar_t>(), m_full, m.numel() == 1 ? 0 : 1,
        has_d ? d->const_data_ptr<scalar_t>() : nullptr, d_full, has_d && d->numel() == 1 ? 0 : 1,
        has_gv ? g_v->const_data_ptr<scalar_t>() : nullptr, g_h.mutable_data_ptr<scalar_t>(), T, M);
  });
}

}  // namespace

TORCH_LIBRARY(neurosynth_lif, lib) {
  lib.def("lif_forward(Tensor x, Tensor v0, Tensor beta, Tensor thr, int mode, Tensor(a!) s, Tensor(b!) h, "
          "Tensor(c!) v) -> ()",
          &lif_forward);
  lib.def("reverse_scan(Tensor a, Tensor m, Tensor? d, Tensor? g_v, Tensor(a!) g_h) -> ()", &reverse_scan);
}
