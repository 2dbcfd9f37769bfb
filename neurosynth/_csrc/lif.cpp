// Fused LIF recurrence for neurosynth's fused backend (CPU, float32/float64).
//
// Registered as torch ops (torch.ops.neurosynth_lif.*) through TORCH_LIBRARY, with light headers only, so
// the first-use build takes seconds, not a minute. The Python side (neurosynth/_cext.py) makes every tensor
// contiguous, broadcasts the per-neuron parameters and allocates the outputs; this file only runs loops.
//
// Layout: x is [T, M] (time-first, everything after time flattened); per-neuron values have M elements. Each at::parallel_for chunk owns a slice of neurons and runs the whole time loop over
// it: one parallel region per layer and sequence. The arithmetic mirrors the pure-torch path of
// neurosynth/engine.py operation by operation (every product and sum rounded on its own; compiled with
// -ffp-contract=off so no FMA is formed), which keeps the spikes bit-identical to it.
//
// Modes: 0 subtract, 1 zero, 2 none, 3 subtract_delayed (snnTorch: h_t = beta*v_{t-1} + x_t - thr*s_{t-1}).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace {

constexpr int64_t kGrain = 512;

void check(const at::Tensor& t, at::ScalarType dtype, int64_t numel, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "neurosynth_lif: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == dtype, "neurosynth_lif: ", name, " has the wrong dtype");
  TORCH_CHECK(t.is_contiguous(), "neurosynth_lif: ", name, " must be contiguous");
  TORCH_CHECK(t.numel() == numel, "neurosynth_lif: ", name, " has ", t.numel(), " elements, expected ", numel);
}

// One time step over a contiguous slice of n neurons. Kept separate, with restrict-qualified pointers passed
// by value, so the compiler vectorises it (a loop inside the parallel_for lambda is not).
template <typename scalar_t, int MODE, bool SUB_PREV>
void forward_row(const scalar_t* __restrict__ x, const scalar_t* __restrict__ beta,
                 const scalar_t* __restrict__ thr, const scalar_t* __restrict__ s_prev, scalar_t* __restrict__ h,
                 scalar_t* __restrict__ s, scalar_t* __restrict__ v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t bv = beta[i] * v[i];
    scalar_t hh = x[i] + bv;
    const scalar_t th = thr[i];
    if (SUB_PREV) {
      const scalar_t r = th * s_prev[i];
      hh = hh - r;
    }
    const scalar_t ss = hh > th ? scalar_t(1) : scalar_t(0);
    h[i] = hh;
    s[i] = ss;
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

template <typename scalar_t, int MODE>
void lif_forward_kernel(const scalar_t* x, const scalar_t* v0, const scalar_t* beta, const scalar_t* thr,
                        scalar_t* s, scalar_t* h, scalar_t* v, int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    std::copy(v0 + b, v0 + e, v + b);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = t * M + b;
      if (MODE == 3 && t > 0) {
        forward_row<scalar_t, MODE, true>(x + o, beta + b, thr + b, s + o - M, h + o, s + o, v + b, n);
      } else {
        forward_row<scalar_t, MODE, false>(x + o, beta + b, thr + b, s, h + o, s + o, v + b, n);
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
// m and d are [T, M] (one value per step) or [M] (the same for every step); d absent means 1, g_v absent 0.
template <typename scalar_t>
void scan_row(const scalar_t* __restrict__ a, const scalar_t* __restrict__ m, const scalar_t* __restrict__ next,
              scalar_t* __restrict__ out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t p = m[i] * next[i];
    out[i] = a[i] + p;
  }
}

template <typename scalar_t>
void reverse_scan_kernel(const scalar_t* a, const scalar_t* m, bool m_full, const scalar_t* d, bool d_full,
                         const scalar_t* gv, scalar_t* gh, int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    const int64_t last = (T - 1) * M + b;
    if (gv == nullptr) {
      std::copy(a + last, a + last + n, gh + last);
    } else if (d == nullptr) {
      for (int64_t i = 0; i < n; ++i) gh[last + i] = a[last + i] + gv[b + i];
    } else {
      scan_row<scalar_t>(a + last, d_full ? d + last : d + b, gv + b, gh + last, n);
    }
    for (int64_t t = T - 2; t >= 0; --t) {
      const int64_t o = t * M + b;
      scan_row<scalar_t>(a + o, m_full ? m + o : m + b, gh + o + M, gh + o, n);
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
  check(m, dtype, m_full ? N : M, "m");
  const bool has_d = d.has_value() && d->defined();
  bool d_full = false;
  if (has_d) {
    d_full = d->numel() == N && N != M;
    check(*d, dtype, d_full ? N : M, "d");
  }
  const bool has_gv = g_v.has_value() && g_v->defined();
  if (has_gv) check(*g_v, dtype, M, "g_v");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_reverse_scan", [&] {
    reverse_scan_kernel<scalar_t>(a.const_data_ptr<scalar_t>(), m.const_data_ptr<scalar_t>(), m_full,
                                  has_d ? d->const_data_ptr<scalar_t>() : nullptr, d_full,
                                  has_gv ? g_v->const_data_ptr<scalar_t>() : nullptr,
                                  g_h.mutable_data_ptr<scalar_t>(), T, M);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Whole backward in one pass for the built-in surrogates: a_t = g_s[t] * sg(h_t - thr) + g_h_out[t],
// d_t = dv_t/dh_t, g_h[T-1] = a + d * g_v, g_h[t] = a_t + (d_t * beta) * g_h[t+1].
// SUR: 0 atan(alpha), 1 fast_sigmoid(slope), 2 sigmoid(alpha), 3 triangle(width), 4 rectangular(width),
//      5 straight_through(scale).
// DK (how d is formed): 0 d = 1 (detached subtract, none, delayed subtract), 1 subtract: 1 - thr*sg,
//      2 detached zero: 1 - s, 3 zero: (1 - s) - h*sg.
template <typename scalar_t, int SUR>
inline scalar_t surrogate_grad(scalar_t x, scalar_t p, scalar_t c) {
  if (SUR == 0) {  // (alpha/2) / (1 + (pi/2*alpha*x)^2); p = alpha/2, c = pi/2*alpha
    const scalar_t u = c * x;
    return p / (scalar_t(1) + u * u);
  } else if (SUR == 1) {  // 1 / (1 + k|x|)^2; c = k
    const scalar_t u = scalar_t(1) + c * std::abs(x);
    return scalar_t(1) / (u * u);
  } else if (SUR == 2) {  // alpha * sig(alpha x) * (1 - sig(alpha x)); c = alpha
    const scalar_t sg = scalar_t(1) / (scalar_t(1) + std::exp(-c * x));
    return c * sg * (scalar_t(1) - sg);
  } else if (SUR == 3) {  // max(0, 1 - |x|/w) / w; c = w
    const scalar_t u = scalar_t(1) - std::abs(x) / c;
    return (u > scalar_t(0) ? u : scalar_t(0)) / c;
  } else if (SUR == 4) {  // 1[|x| < w/2] / w; c = w, p = w/2
    return (std::abs(x) < p ? scalar_t(1) : scalar_t(0)) / c;
  } else {  // constant; c = scale
    return c;
  }
}

// One step of the fused backward over n neurons: out = a + f * next, with f = d * beta (ones for the last step).
template <typename scalar_t, int SUR, int DK, bool HAS_GHO>
void backward_row(const scalar_t* __restrict__ h, const scalar_t* __restrict__ gs,
                  const scalar_t* __restrict__ gho, const scalar_t* __restrict__ next,
                  const scalar_t* __restrict__ beta, const scalar_t* __restrict__ thr, scalar_t p, scalar_t c,
                  scalar_t* __restrict__ out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t hh = h[i];
    const scalar_t th = thr[i];
    const scalar_t sg = surrogate_grad<scalar_t, SUR>(hh - th, p, c);
    scalar_t a = gs[i] * sg;
    if (HAS_GHO) a = a + gho[i];
    scalar_t d;
    if (DK == 0) {
      d = scalar_t(1);
    } else if (DK == 1) {
      d = scalar_t(1) - th * sg;
    } else {
      const scalar_t ns = hh > th ? scalar_t(0) : scalar_t(1);
      d = DK == 2 ? ns : ns - hh * sg;
    }
    const scalar_t f = d * beta[i];
    out[i] = a + f * next[i];
  }
}

template <typename scalar_t, int SUR, int DK>
void lif_backward_kernel(const scalar_t* h, const scalar_t* gs, const scalar_t* gho, const scalar_t* gv,
                         const scalar_t* beta, const scalar_t* thr, scalar_t p, scalar_t c, scalar_t* gh, int64_t T,
                         int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    const std::vector<scalar_t> ones(n, scalar_t(1));
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = t * M + b;
      const scalar_t* next = t == T - 1 ? gv + b : gh + o + M;
      const scalar_t* f = t == T - 1 ? ones.data() : beta + b;  // g_h[T-1] = a + d * g_v (no beta)
      if (gho != nullptr) {
        backward_row<scalar_t, SUR, DK, true>(h + o, gs + o, gho + o, next, f, thr + b, p, c, gh + o, n);
      } else {
        backward_row<scalar_t, SUR, DK, false>(h + o, gs + o, nullptr, next, f, thr + b, p, c, gh + o, n);
      }
    }
  });
}

template <typename scalar_t, int SUR>
void lif_backward_dk(int64_t dk, const scalar_t* h, const scalar_t* gs, const scalar_t* gho, const scalar_t* gv,
                     const scalar_t* beta, const scalar_t* thr, scalar_t p, scalar_t c, scalar_t* gh, int64_t T,
                     int64_t M) {
  switch (dk) {
    case 0: lif_backward_kernel<scalar_t, SUR, 0>(h, gs, gho, gv, beta, thr, p, c, gh, T, M); break;
    case 1: lif_backward_kernel<scalar_t, SUR, 1>(h, gs, gho, gv, beta, thr, p, c, gh, T, M); break;
    case 2: lif_backward_kernel<scalar_t, SUR, 2>(h, gs, gho, gv, beta, thr, p, c, gh, T, M); break;
    default: lif_backward_kernel<scalar_t, SUR, 3>(h, gs, gho, gv, beta, thr, p, c, gh, T, M); break;
  }
}

// h, g_s [T, M]; g_h_out [T, M] or absent; g_v [M]; beta/thr [M]; writes g_h [T, M].
void lif_backward(const at::Tensor& h, const at::Tensor& g_s, const std::optional<at::Tensor>& g_h_out,
                  const at::Tensor& g_v,
                  const at::Tensor& beta, const at::Tensor& thr, int64_t dk, int64_t sur, double p, double c,
                  const at::Tensor& g_h) {
  TORCH_CHECK(h.dim() >= 1, "neurosynth_lif: h must be [T, ...]");
  TORCH_CHECK(dk >= 0 && dk <= 3 && sur >= 0 && sur <= 5, "neurosynth_lif: bad backward variant");
  const auto dtype = h.scalar_type();
  const int64_t T = h.size(0);
  const int64_t N = h.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(h, dtype, N, "h");
  check(g_h, dtype, N, "g_h");
  check(beta, dtype, M, "beta");
  check(thr, dtype, M, "threshold");
  const bool has_gho = g_h_out.has_value() && g_h_out->defined();
  check(g_s, dtype, N, "g_s");
  if (has_gho) check(*g_h_out, dtype, N, "g_h_out");
  check(g_v, dtype, M, "g_v");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_lif_backward", [&] {
    const scalar_t* hp = h.const_data_ptr<scalar_t>();
    const scalar_t* gsp = g_s.const_data_ptr<scalar_t>();
    const scalar_t* ghop = has_gho ? g_h_out->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* gvp = g_v.const_data_ptr<scalar_t>();
    const scalar_t* bp = beta.const_data_ptr<scalar_t>();
    const scalar_t* tp = thr.const_data_ptr<scalar_t>();
    scalar_t* out = g_h.mutable_data_ptr<scalar_t>();
    const scalar_t ps = static_cast<scalar_t>(p), cs = static_cast<scalar_t>(c);
    switch (sur) {
      case 0: lif_backward_dk<scalar_t, 0>(dk, hp, gsp, ghop, gvp, bp, tp, ps, cs, out, T, M); break;
      case 1: lif_backward_dk<scalar_t, 1>(dk, hp, gsp, ghop, gvp, bp, tp, ps, cs, out, T, M); break;
      case 2: lif_backward_dk<scalar_t, 2>(dk, hp, gsp, ghop, gvp, bp, tp, ps, cs, out, T, M); break;
      case 3: lif_backward_dk<scalar_t, 3>(dk, hp, gsp, ghop, gvp, bp, tp, ps, cs, out, T, M); break;
      case 4: lif_backward_dk<scalar_t, 4>(dk, hp, gsp, ghop, gvp, bp, tp, ps, cs, out, T, M); break;
      default: lif_backward_dk<scalar_t, 5>(dk, hp, gsp, ghop, gvp, bp, tp, ps, cs, out, T, M); break;
    }
  });
}

}  // namespace

TORCH_LIBRARY(neurosynth_lif, lib) {
  lib.def("lif_forward(Tensor x, Tensor v0, Tensor beta, Tensor thr, int mode, Tensor(a!) s, Tensor(b!) h, "
          "Tensor(c!) v) -> ()",
          &lif_forward);
  lib.def("lif_backward(Tensor h, Tensor g_s, Tensor? g_h_out, Tensor g_v, Tensor beta, Tensor thr, int dk, "
          "int sur, float p, float c, Tensor(a!) g_h) -> ()",
          &lif_backward);
  lib.def("reverse_scan(Tensor a, Tensor m, Tensor? d, Tensor? g_v, Tensor(a!) g_h) -> ()", &reverse_scan);
}
