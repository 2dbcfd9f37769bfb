// Fused LIF / CubaLIF / ALIF recurrences for neurosynth's fused backend (CPU, float32/float64).
//
// Registered as torch ops (torch.ops.neurosynth_lif.*) through TORCH_LIBRARY, with light headers only, so
// the first-use build takes seconds, not a minute. The Python side (neurosynth/_cext.py) makes every tensor
// contiguous, broadcasts the per-neuron parameters and allocates the outputs; this file only runs loops.
//
// Layout: x is [T, M] (time-first, everything after time flattened); per-neuron values have M elements. Each at::parallel_for chunk owns a slice of neurons and runs the whole time loop over
// it: one parallel region per layer and sequence. The arithmetic mirrors the pure-torch references
// (neurosynth/_ops/<op>/reference.py) operation by operation (every product and sum rounded on its own; compiled with
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

// The step math every neuron shares (inlined into the row loops, which stay vectorised):
// the membrane after the reset (0 subtract: h - th*s; 1 zero: h*(1-s); 2 none and 3 delayed: h) ...
template <typename scalar_t, int MODE>
inline scalar_t reset_v(scalar_t hh, scalar_t th, scalar_t ss) {
  if (MODE == 0) {
    const scalar_t r = th * ss;
    return hh - r;
  } else if (MODE == 1) {
    return hh * (scalar_t(1) - ss);
  }
  return hh;
}

// ... and its derivative d = dv/dh by DK (0: 1; 1: 1 - th*sg; 2: 1 - s; 3: (1 - s) - h*sg), see neurosynth._ops.common.DKIND.
template <typename scalar_t, int DK>
inline scalar_t reset_slope(scalar_t hh, scalar_t th, scalar_t sg) {
  if (DK == 0) {
    return scalar_t(1);
  } else if (DK == 1) {
    return scalar_t(1) - th * sg;
  }
  const scalar_t ns = hh > th ? scalar_t(0) : scalar_t(1);
  return DK == 2 ? ns : ns - hh * sg;
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
    v[i] = reset_v<scalar_t, MODE>(hh, th, ss);
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
    const scalar_t d = reset_slope<scalar_t, DK>(hh, th, sg);
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


// ---------------------------------------------------------------------------------------------------------
// CubaLIF (neurosynth/_ops/cubalif/reference.py): i = alpha*i + x; h = beta*v + i; s = h > thr; v = reset(h).
template <typename scalar_t, int MODE, bool SAVE_I>
void cuba_forward_row(const scalar_t* __restrict__ x, const scalar_t* __restrict__ alpha,
                      const scalar_t* __restrict__ beta, const scalar_t* __restrict__ thr, scalar_t* __restrict__ h,
                      scalar_t* __restrict__ s, scalar_t* __restrict__ iseq, scalar_t* __restrict__ i,
                      scalar_t* __restrict__ v, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const scalar_t ai = alpha[k] * i[k];
    const scalar_t ii = ai + x[k];
    i[k] = ii;
    if (SAVE_I) iseq[k] = ii;
    const scalar_t bv = beta[k] * v[k];
    const scalar_t hh = bv + ii;
    const scalar_t th = thr[k];
    const scalar_t ss = hh > th ? scalar_t(1) : scalar_t(0);
    h[k] = hh;
    s[k] = ss;
    v[k] = reset_v<scalar_t, MODE>(hh, th, ss);
  }
}

template <typename scalar_t, int MODE, bool SAVE_I>
void cuba_forward_kernel(const scalar_t* x, const scalar_t* alpha, const scalar_t* beta, const scalar_t* thr,
                         scalar_t* s, scalar_t* h, scalar_t* iseq, scalar_t* i, scalar_t* v, int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = t * M + b;
      cuba_forward_row<scalar_t, MODE, SAVE_I>(x + o, alpha + b, beta + b, thr + b, h + o, s + o,
                                               SAVE_I ? iseq + o : nullptr, i + b, v + b, n);
    }
  });
}

// dispatch helpers for the AT_DISPATCH lambdas below (a #define cannot sit inside a macro argument)
#define NS_CUBA(MODE)                                                                             \
  if (save) cuba_forward_kernel<scalar_t, MODE, true>(xp, ap, bp, tp, sp, hp, qp, ip, vp, T, M); \
  else cuba_forward_kernel<scalar_t, MODE, false>(xp, ap, bp, tp, sp, hp, qp, ip, vp, T, M)
#define NS_CB(S) cuba_backward_dk<scalar_t, S>(dk, has_gho, save_gh, hp, gsp, ghop, gvp, gip, ap, bp, tp, ps, cs, gxp, ghp, T, M)
#define NS_AM(S, MD) alif_backward_flags<scalar_t, S, MD>(attached, has_gho, save_p, hp, qp, a0p, gsp, ghop, gvp, gap, bp, tp, rp, cp, ps, cs, ghp, gthp, gasp, T, M)
#define NS_AB(A, G, S) alif_backward_kernel<scalar_t, SUR, MODE, A, G, S>(h, aseq, a0, gs, gho, gv0, ga0, beta, thr, rho, bb, p, c, gh, gth, gas, T, M)
#define NS_AS(S) switch (mode) { case 0: NS_AM(S, 0); break; case 1: NS_AM(S, 1); break; default: NS_AM(S, 2); break; }

// x [T, M]; alpha/beta/thr [M]; i, v [M] hold the initial state on entry and the final state on exit.
void cubalif_forward(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& beta, const at::Tensor& thr,
                     int64_t mode, const at::Tensor& s, const at::Tensor& h, const std::optional<at::Tensor>& iseq,
                     const at::Tensor& i, const at::Tensor& v) {
  TORCH_CHECK(x.dim() >= 1 && mode >= 0 && mode <= 2, "neurosynth cubalif: bad arguments");
  const auto dtype = x.scalar_type();
  const int64_t T = x.size(0), N = x.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(x, dtype, N, "x"); check(s, dtype, N, "spikes"); check(h, dtype, N, "h");
  check(alpha, dtype, M, "alpha"); check(beta, dtype, M, "beta"); check(thr, dtype, M, "threshold");
  check(i, dtype, M, "i"); check(v, dtype, M, "v");
  const bool save = iseq.has_value() && iseq->defined();
  if (save) check(*iseq, dtype, N, "i_seq");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_cubalif_forward", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* ap = alpha.const_data_ptr<scalar_t>();
    const scalar_t* bp = beta.const_data_ptr<scalar_t>();
    const scalar_t* tp = thr.const_data_ptr<scalar_t>();
    scalar_t* sp = s.mutable_data_ptr<scalar_t>();
    scalar_t* hp = h.mutable_data_ptr<scalar_t>();
    scalar_t* qp = save ? iseq->mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* ip = i.mutable_data_ptr<scalar_t>();
    scalar_t* vp = v.mutable_data_ptr<scalar_t>();
    switch (mode) {
      case 0: NS_CUBA(0); break;
      case 1: NS_CUBA(1); break;
      default: NS_CUBA(2); break;
    }
  });
}

// Backward: gh = a + d*gv; gx = gh + gi; then gv = beta*gh, gi = alpha*gx (carries gv, gi [n] per chunk).
template <typename scalar_t, int SUR, int DK, bool HAS_GHO, bool SAVE_GH>
void cuba_backward_row(const scalar_t* __restrict__ h, const scalar_t* __restrict__ gs,
                       const scalar_t* __restrict__ gho, const scalar_t* __restrict__ alpha,
                       const scalar_t* __restrict__ beta, const scalar_t* __restrict__ thr, scalar_t p, scalar_t c,
                       scalar_t* __restrict__ gv, scalar_t* __restrict__ gi, scalar_t* __restrict__ gx,
                       scalar_t* __restrict__ gh_out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const scalar_t hh = h[k];
    const scalar_t th = thr[k];
    const scalar_t sg = surrogate_grad<scalar_t, SUR>(hh - th, p, c);
    scalar_t a = gs[k] * sg;
    if (HAS_GHO) a = a + gho[k];
    const scalar_t d = reset_slope<scalar_t, DK>(hh, th, sg);
    const scalar_t g = a + d * gv[k];
    const scalar_t x = g + gi[k];
    gx[k] = x;
    if (SAVE_GH) gh_out[k] = g;
    gv[k] = beta[k] * g;
    gi[k] = alpha[k] * x;
  }
}

template <typename scalar_t, int SUR, int DK, bool HAS_GHO, bool SAVE_GH>
void cuba_backward_kernel(const scalar_t* h, const scalar_t* gs, const scalar_t* gho, const scalar_t* gv0,
                          const scalar_t* gi0, const scalar_t* alpha, const scalar_t* beta, const scalar_t* thr,
                          scalar_t p, scalar_t c, scalar_t* gx, scalar_t* gh, int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    std::vector<scalar_t> gv(gv0 + b, gv0 + e), gi(gi0 + b, gi0 + e);
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = t * M + b;
      cuba_backward_row<scalar_t, SUR, DK, HAS_GHO, SAVE_GH>(h + o, gs + o, HAS_GHO ? gho + o : nullptr, alpha + b,
                                                             beta + b, thr + b, p, c, gv.data(), gi.data(), gx + o,
                                                             SAVE_GH ? gh + o : nullptr, n);
    }
  });
}

template <typename scalar_t, int SUR, int DK>
void cuba_backward_flags(bool has_gho, bool save_gh, const scalar_t* h, const scalar_t* gs, const scalar_t* gho,
                         const scalar_t* gv0, const scalar_t* gi0, const scalar_t* alpha, const scalar_t* beta,
                         const scalar_t* thr, scalar_t p, scalar_t c, scalar_t* gx, scalar_t* gh, int64_t T,
                         int64_t M) {
  if (has_gho) {
    if (save_gh) cuba_backward_kernel<scalar_t, SUR, DK, true, true>(h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M);
    else cuba_backward_kernel<scalar_t, SUR, DK, true, false>(h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M);
  } else {
    if (save_gh) cuba_backward_kernel<scalar_t, SUR, DK, false, true>(h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M);
    else cuba_backward_kernel<scalar_t, SUR, DK, false, false>(h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M);
  }
}

template <typename scalar_t, int SUR>
void cuba_backward_dk(int64_t dk, bool has_gho, bool save_gh, const scalar_t* h, const scalar_t* gs,
                      const scalar_t* gho, const scalar_t* gv0, const scalar_t* gi0, const scalar_t* alpha,
                      const scalar_t* beta, const scalar_t* thr, scalar_t p, scalar_t c, scalar_t* gx, scalar_t* gh,
                      int64_t T, int64_t M) {
  switch (dk) {
    case 0: cuba_backward_flags<scalar_t, SUR, 0>(has_gho, save_gh, h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M); break;
    case 1: cuba_backward_flags<scalar_t, SUR, 1>(has_gho, save_gh, h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M); break;
    case 2: cuba_backward_flags<scalar_t, SUR, 2>(has_gho, save_gh, h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M); break;
    default: cuba_backward_flags<scalar_t, SUR, 3>(has_gho, save_gh, h, gs, gho, gv0, gi0, alpha, beta, thr, p, c, gx, gh, T, M); break;
  }
}

// h, g_s [T, M]; g_h_out [T, M] or absent; g_v, g_i [M]; writes g_x [T, M] and (if given) g_h [T, M].
void cubalif_backward(const at::Tensor& h, const at::Tensor& g_s, const std::optional<at::Tensor>& g_h_out,
                      const at::Tensor& g_v, const at::Tensor& g_i, const at::Tensor& alpha, const at::Tensor& beta,
                      const at::Tensor& thr, int64_t dk, int64_t sur, double p, double c, const at::Tensor& g_x,
                      const std::optional<at::Tensor>& g_h) {
  TORCH_CHECK(h.dim() >= 1 && dk >= 0 && dk <= 3 && sur >= 0 && sur <= 5, "neurosynth cubalif: bad backward variant");
  const auto dtype = h.scalar_type();
  const int64_t T = h.size(0), N = h.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(h, dtype, N, "h"); check(g_s, dtype, N, "g_s"); check(g_x, dtype, N, "g_x");
  check(g_v, dtype, M, "g_v"); check(g_i, dtype, M, "g_i");
  check(alpha, dtype, M, "alpha"); check(beta, dtype, M, "beta"); check(thr, dtype, M, "threshold");
  const bool has_gho = g_h_out.has_value() && g_h_out->defined();
  if (has_gho) check(*g_h_out, dtype, N, "g_h_out");
  const bool save_gh = g_h.has_value() && g_h->defined();
  if (save_gh) check(*g_h, dtype, N, "g_h");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_cubalif_backward", [&] {
    const scalar_t* hp = h.const_data_ptr<scalar_t>();
    const scalar_t* gsp = g_s.const_data_ptr<scalar_t>();
    const scalar_t* ghop = has_gho ? g_h_out->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* gvp = g_v.const_data_ptr<scalar_t>();
    const scalar_t* gip = g_i.const_data_ptr<scalar_t>();
    const scalar_t* ap = alpha.const_data_ptr<scalar_t>();
    const scalar_t* bp = beta.const_data_ptr<scalar_t>();
    const scalar_t* tp = thr.const_data_ptr<scalar_t>();
    scalar_t* gxp = g_x.mutable_data_ptr<scalar_t>();
    scalar_t* ghp = save_gh ? g_h->mutable_data_ptr<scalar_t>() : nullptr;
    const scalar_t ps = static_cast<scalar_t>(p), cs = static_cast<scalar_t>(c);
    switch (sur) {
      case 0: NS_CB(0); break;
      case 1: NS_CB(1); break;
      case 2: NS_CB(2); break;
      case 3: NS_CB(3); break;
      case 4: NS_CB(4); break;
      default: NS_CB(5); break;
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// ALIF (neurosynth/_ops/alif/reference.py): h = x + beta*v; th = thr + b*a; s = h > th; v = reset(h, th);
// a = rho*a + s.
template <typename scalar_t, int MODE>
void alif_forward_row(const scalar_t* __restrict__ x, const scalar_t* __restrict__ beta,
                      const scalar_t* __restrict__ thr, const scalar_t* __restrict__ rho,
                      const scalar_t* __restrict__ bb, scalar_t* __restrict__ h, scalar_t* __restrict__ s,
                      scalar_t* __restrict__ aseq, scalar_t* __restrict__ v, scalar_t* __restrict__ a, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const scalar_t bv = beta[k] * v[k];
    const scalar_t hh = x[k] + bv;
    const scalar_t ba = bb[k] * a[k];
    const scalar_t th = thr[k] + ba;
    const scalar_t ss = hh > th ? scalar_t(1) : scalar_t(0);
    h[k] = hh;
    s[k] = ss;
    v[k] = reset_v<scalar_t, MODE>(hh, th, ss);
    const scalar_t ra = rho[k] * a[k];
    const scalar_t an = ra + ss;
    a[k] = an;
    aseq[k] = an;
  }
}

template <typename scalar_t, int MODE>
void alif_forward_kernel(const scalar_t* x, const scalar_t* beta, const scalar_t* thr, const scalar_t* rho,
                         const scalar_t* bb, scalar_t* s, scalar_t* h, scalar_t* aseq, scalar_t* v, scalar_t* a,
                         int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = t * M + b;
      alif_forward_row<scalar_t, MODE>(x + o, beta + b, thr + b, rho + b, bb + b, h + o, s + o, aseq + o, v + b,
                                       a + b, n);
    }
  });
}

// x [T, M]; beta/thr/rho/b [M]; v, a [M] hold the initial state on entry and the final state on exit.
void alif_forward(const at::Tensor& x, const at::Tensor& beta, const at::Tensor& thr, const at::Tensor& rho,
                  const at::Tensor& bb, int64_t mode, const at::Tensor& s, const at::Tensor& h,
                  const at::Tensor& aseq, const at::Tensor& v, const at::Tensor& a) {
  TORCH_CHECK(x.dim() >= 1 && mode >= 0 && mode <= 2, "neurosynth alif: bad arguments");
  const auto dtype = x.scalar_type();
  const int64_t T = x.size(0), N = x.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(x, dtype, N, "x"); check(s, dtype, N, "spikes"); check(h, dtype, N, "h"); check(aseq, dtype, N, "a_seq");
  check(beta, dtype, M, "beta"); check(thr, dtype, M, "threshold"); check(rho, dtype, M, "rho");
  check(bb, dtype, M, "b"); check(v, dtype, M, "v"); check(a, dtype, M, "a");
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_alif_forward", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* bp = beta.const_data_ptr<scalar_t>();
    const scalar_t* tp = thr.const_data_ptr<scalar_t>();
    const scalar_t* rp = rho.const_data_ptr<scalar_t>();
    const scalar_t* cp = bb.const_data_ptr<scalar_t>();
    scalar_t* sp = s.mutable_data_ptr<scalar_t>();
    scalar_t* hp = h.mutable_data_ptr<scalar_t>();
    scalar_t* qp = aseq.mutable_data_ptr<scalar_t>();
    scalar_t* vp = v.mutable_data_ptr<scalar_t>();
    scalar_t* ap = a.mutable_data_ptr<scalar_t>();
    switch (mode) {
      case 0: alif_forward_kernel<scalar_t, 0>(xp, bp, tp, rp, cp, sp, hp, qp, vp, ap, T, M); break;
      case 1: alif_forward_kernel<scalar_t, 1>(xp, bp, tp, rp, cp, sp, hp, qp, vp, ap, T, M); break;
      default: alif_forward_kernel<scalar_t, 2>(xp, bp, tp, rp, cp, sp, hp, qp, vp, ap, T, M); break;
    }
  });
}

// Backward (see the reference): carries gv, ga [n] per chunk.
template <typename scalar_t, int SUR, int MODE, bool ATTACHED, bool HAS_GHO, bool SAVE_P>
void alif_backward_row(const scalar_t* __restrict__ h, const scalar_t* __restrict__ aprev,
                       const scalar_t* __restrict__ gs, const scalar_t* __restrict__ gho,
                       const scalar_t* __restrict__ beta, const scalar_t* __restrict__ thr,
                       const scalar_t* __restrict__ rho, const scalar_t* __restrict__ bb, scalar_t p, scalar_t c,
                       scalar_t* __restrict__ gv, scalar_t* __restrict__ ga, scalar_t* __restrict__ gh,
                       scalar_t* __restrict__ gth_out, scalar_t* __restrict__ gas_out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const scalar_t hh = h[k];
    const scalar_t ba = bb[k] * aprev[k];
    const scalar_t th = thr[k] + ba;
    const scalar_t sg = surrogate_grad<scalar_t, SUR>(hh - th, p, c);
    const scalar_t ss = hh > th ? scalar_t(1) : scalar_t(0);
    const scalar_t gvk = gv[k], gak = ga[k];
    scalar_t g = gs[k] + gak;
    if (ATTACHED && MODE == 0) g = g - th * gvk;
    if (ATTACHED && MODE == 1) g = g - hh * gvk;
    const scalar_t gss = g * sg;
    scalar_t ghk = gss;
    if (HAS_GHO) ghk = ghk + gho[k];
    ghk = ghk + (MODE == 1 ? (scalar_t(1) - ss) * gvk : gvk);
    const scalar_t gth = MODE == 0 ? -gss - ss * gvk : -gss;
    gh[k] = ghk;
    if (SAVE_P) {
      gth_out[k] = gth;
      gas_out[k] = gak;
    }
    gv[k] = beta[k] * ghk;
    ga[k] = rho[k] * gak + bb[k] * gth;
  }
}

template <typename scalar_t, int SUR, int MODE, bool ATTACHED, bool HAS_GHO, bool SAVE_P>
void alif_backward_kernel(const scalar_t* h, const scalar_t* aseq, const scalar_t* a0, const scalar_t* gs,
                          const scalar_t* gho, const scalar_t* gv0, const scalar_t* ga0, const scalar_t* beta,
                          const scalar_t* thr, const scalar_t* rho, const scalar_t* bb, scalar_t p, scalar_t c,
                          scalar_t* gh, scalar_t* gth, scalar_t* gas, int64_t T, int64_t M) {
  at::parallel_for(0, M, kGrain, [&](int64_t b, int64_t e) {
    const int64_t n = e - b;
    std::vector<scalar_t> gv(gv0 + b, gv0 + e), ga(ga0 + b, ga0 + e);
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = t * M + b;
      const scalar_t* ap = t > 0 ? aseq + o - M : a0 + b;
      alif_backward_row<scalar_t, SUR, MODE, ATTACHED, HAS_GHO, SAVE_P>(
          h + o, ap, gs + o, HAS_GHO ? gho + o : nullptr, beta + b, thr + b, rho + b, bb + b, p, c, gv.data(),
          ga.data(), gh + o, SAVE_P ? gth + o : nullptr, SAVE_P ? gas + o : nullptr, n);
    }
  });
}

template <typename scalar_t, int SUR, int MODE>
void alif_backward_flags(bool attached, bool has_gho, bool save_p, const scalar_t* h, const scalar_t* aseq,
                         const scalar_t* a0, const scalar_t* gs, const scalar_t* gho, const scalar_t* gv0,
                         const scalar_t* ga0, const scalar_t* beta, const scalar_t* thr, const scalar_t* rho,
                         const scalar_t* bb, scalar_t p, scalar_t c, scalar_t* gh, scalar_t* gth, scalar_t* gas,
                         int64_t T, int64_t M) {
  if (attached) {
    if (has_gho) { if (save_p) NS_AB(true, true, true); else NS_AB(true, true, false); }
    else { if (save_p) NS_AB(true, false, true); else NS_AB(true, false, false); }
  } else {
    if (has_gho) { if (save_p) NS_AB(false, true, true); else NS_AB(false, true, false); }
    else { if (save_p) NS_AB(false, false, true); else NS_AB(false, false, false); }
  }
}

// h, a_seq, g_s [T, M]; a0, g_v, g_a [M]; g_h_out [T, M] or absent; writes g_h and (if given) g_theta, g_a_seq.
void alif_backward(const at::Tensor& h, const at::Tensor& aseq, const at::Tensor& a0, const at::Tensor& g_s,
                   const std::optional<at::Tensor>& g_h_out, const at::Tensor& g_v, const at::Tensor& g_a,
                   const at::Tensor& beta, const at::Tensor& thr, const at::Tensor& rho, const at::Tensor& bb,
                   int64_t mode, bool attached, int64_t sur, double p, double c, const at::Tensor& g_h,
                   const std::optional<at::Tensor>& g_theta, const std::optional<at::Tensor>& g_aseq) {
  TORCH_CHECK(h.dim() >= 1 && mode >= 0 && mode <= 2 && sur >= 0 && sur <= 5, "neurosynth alif: bad backward variant");
  const auto dtype = h.scalar_type();
  const int64_t T = h.size(0), N = h.numel();
  if (N == 0) return;
  const int64_t M = N / T;
  check(h, dtype, N, "h"); check(aseq, dtype, N, "a_seq"); check(g_s, dtype, N, "g_s"); check(g_h, dtype, N, "g_h");
  check(a0, dtype, M, "a0"); check(g_v, dtype, M, "g_v"); check(g_a, dtype, M, "g_a");
  check(beta, dtype, M, "beta"); check(thr, dtype, M, "threshold"); check(rho, dtype, M, "rho"); check(bb, dtype, M, "b");
  const bool has_gho = g_h_out.has_value() && g_h_out->defined();
  if (has_gho) check(*g_h_out, dtype, N, "g_h_out");
  const bool save_p = g_theta.has_value() && g_theta->defined();
  if (save_p) {
    check(*g_theta, dtype, N, "g_theta");
    TORCH_CHECK(g_aseq.has_value() && g_aseq->defined(), "neurosynth alif: g_a_seq needed with g_theta");
    check(*g_aseq, dtype, N, "g_a_seq");
  }
  AT_DISPATCH_FLOATING_TYPES(dtype, "neurosynth_alif_backward", [&] {
    const scalar_t* hp = h.const_data_ptr<scalar_t>();
    const scalar_t* qp = aseq.const_data_ptr<scalar_t>();
    const scalar_t* a0p = a0.const_data_ptr<scalar_t>();
    const scalar_t* gsp = g_s.const_data_ptr<scalar_t>();
    const scalar_t* ghop = has_gho ? g_h_out->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* gvp = g_v.const_data_ptr<scalar_t>();
    const scalar_t* gap = g_a.const_data_ptr<scalar_t>();
    const scalar_t* bp = beta.const_data_ptr<scalar_t>();
    const scalar_t* tp = thr.const_data_ptr<scalar_t>();
    const scalar_t* rp = rho.const_data_ptr<scalar_t>();
    const scalar_t* cp = bb.const_data_ptr<scalar_t>();
    scalar_t* ghp = g_h.mutable_data_ptr<scalar_t>();
    scalar_t* gthp = save_p ? g_theta->mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* gasp = save_p ? g_aseq->mutable_data_ptr<scalar_t>() : nullptr;
    const scalar_t ps = static_cast<scalar_t>(p), cs = static_cast<scalar_t>(c);
    switch (sur) {
      case 0: NS_AS(0); break;
      case 1: NS_AS(1); break;
      case 2: NS_AS(2); break;
      case 3: NS_AS(3); break;
      case 4: NS_AS(4); break;
      default: NS_AS(5); break;
    }
  });
}

#undef NS_CUBA
#undef NS_CB
#undef NS_AM
#undef NS_AB
#undef NS_AS

}  // namespace

TORCH_LIBRARY(neurosynth_lif, lib) {
  lib.def("lif_forward(Tensor x, Tensor v0, Tensor beta, Tensor thr, int mode, Tensor(a!) s, Tensor(b!) h, "
          "Tensor(c!) v) -> ()",
          &lif_forward);
  lib.def("lif_backward(Tensor h, Tensor g_s, Tensor? g_h_out, Tensor g_v, Tensor beta, Tensor thr, int dk, "
          "int sur, float p, float c, Tensor(a!) g_h) -> ()",
          &lif_backward);
  lib.def("cubalif_forward(Tensor x, Tensor alpha, Tensor beta, Tensor thr, int mode, Tensor(a!) s, Tensor(b!) h, "
          "Tensor(c!)? i_seq, Tensor(d!) i, Tensor(e!) v) -> ()",
          &cubalif_forward);
  lib.def("cubalif_backward(Tensor h, Tensor g_s, Tensor? g_h_out, Tensor g_v, Tensor g_i, Tensor alpha, Tensor beta, "
          "Tensor thr, int dk, int sur, float p, float c, Tensor(a!) g_x, Tensor(b!)? g_h) -> ()",
          &cubalif_backward);
  lib.def("alif_forward(Tensor x, Tensor beta, Tensor thr, Tensor rho, Tensor b, int mode, Tensor(a!) s, "
          "Tensor(b!) h, Tensor(c!) a_seq, Tensor(d!) v, Tensor(e!) a) -> ()",
          &alif_forward);
  lib.def("alif_backward(Tensor h, Tensor a_seq, Tensor a0, Tensor g_s, Tensor? g_h_out, Tensor g_v, Tensor g_a, "
          "Tensor beta, Tensor thr, Tensor rho, Tensor b, int mode, bool attached, int sur, float p, float c, "
          "Tensor(a!) g_h, Tensor(b!)? g_theta, Tensor(c!)? g_a_seq) -> ()",
          &alif_backward);
}
