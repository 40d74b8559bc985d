// Fused multi-step neuron kernels for the CPU: one pass over memory per time step.
//
// The same floating-point operations in the same order as neuromorph/neurons.py's pure-torch kernels (and so as
// Norse's cells): the spikes and voltages are identical bit for bit. Built with -ffp-contract=off so that no
// multiply-add is fused (a fused one rounds once instead of twice and would change the last bit).
//
// Every inner loop over neurons carries `#pragma GCC ivdep`: its buffers never alias, and without it GCC gives up
// vectorizing once a loop touches more arrays than its runtime alias checks cover (measured 4x slower).
//
// Layout: x, u, z, grad are [T, N] with the neuron dimension contiguous; x may have a zero time stride (a
// time-constant input). The state of a block of neurons stays in cache while the time loop runs over it; blocks
// run in parallel on torch's intra-op threads.
//
// The LIF forward also sums each neuron's spikes over time (counts [N], exact: whole numbers), and its backward takes
// the gradient of those counts and adds it to every step's spike gradient, so that a penalty on spike counts costs no
// pass over the [T, N] spikes in either direction (the same sums as the autograd graph of z.sum(0) would give).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kBlock = 2048;  // neurons whose state (a few floats each) stays in L1/L2 over the time loop

template <typename scalar_t, bool kIdle>
void lif_forward_block(const scalar_t* x, int64_t x_step, scalar_t* u_all, scalar_t* z_all, scalar_t* counts,
                       scalar_t* idle, int64_t n, int64_t begin, int64_t end, int64_t steps, scalar_t a,
                       scalar_t minus_b, scalar_t v_leak, scalar_t v_th, scalar_t v_reset, bool current) {
  const int64_t k = end - begin;
  std::vector<scalar_t> v_buf(k, v_leak), i_buf(k, scalar_t(0));
  scalar_t* __restrict__ v = v_buf.data();
  scalar_t* __restrict__ cur = i_buf.data();
  std::vector<scalar_t> c_buf(k, scalar_t(0));  // summed here, written once (see lif_backward_block's gc_buf)
  scalar_t* __restrict__ cnt = c_buf.data();
  std::vector<scalar_t> d_buf(k, scalar_t(0));  // idle steps: no input and the state unchanged (hw_models.activity)
  scalar_t* __restrict__ quiet = d_buf.data();
  const scalar_t one = scalar_t(1);
  const scalar_t zero = scalar_t(0);
  for (int64_t t = 0; t < steps; ++t) {
    const scalar_t* __restrict__ xt = x + t * x_step + begin;
    scalar_t* __restrict__ ut = u_all + t * n + begin;
    scalar_t* __restrict__ zt = z_all + t * n + begin;
    if (current) {
      #pragma GCC ivdep
      for (int64_t m = 0; m < k; ++m) {
        const scalar_t v_old = v[m], i_old = cur[m];
        const scalar_t j = cur[m] + xt[m];                   // j = i + x
        const scalar_t tmp = ((v_leak - v[m]) + j) * a;      // a * ((v_leak - v) + j)
        const scalar_t u = v[m] + tmp;
        cur[m] = j * minus_b + j;                            // i = j + (-b)*j
        const scalar_t z = one - static_cast<scalar_t>(u <= v_th);  // H(u - v_th): 0 where u - v_th <= 0, else 1
        ut[m] = u;
        zt[m] = z;
        cnt[m] += z;
        v[m] = z * v_reset + (one - z) * u;                  // (1 - z)*u + z*v_reset
        if (kIdle) quiet[m] += (xt[m] == zero && v[m] == v_old && cur[m] == i_old) ? one : zero;
      }
    } else {
      #pragma GCC ivdep
      for (int64_t m = 0; m < k; ++m) {
        const scalar_t v_old = v[m];
        const scalar_t tmp = ((xt[m] + v_leak) - v[m]) * a;  // a * (x + v_leak - v)
        const scalar_t u = v[m] + tmp;
        const scalar_t z = one - static_cast<scalar_t>(u <= v_th);
        ut[m] = u;
        zt[m] = z;
        cnt[m] += z;
        v[m] = z * v_reset + (one - z) * u;
        if (kIdle) quiet[m] += (xt[m] == zero && v[m] == v_old) ? one : zero;
      }
    }
  }
  std::copy(c_buf.begin(), c_buf.end(), counts + begin);
  if (kIdle) std::copy(d_buf.begin(), d_buf.end(), idle + begin);
}

// kCounts: gc (the counts' gradient, [N]) is added to every step's spike gradient.
template <typename scalar_t, bool kCounts>
void lif_backward_block(const scalar_t* gz, const scalar_t* gc, const scalar_t* u_all, scalar_t* gx, int64_t n,
                        int64_t begin, int64_t end, int64_t steps, scalar_t a, scalar_t one_minus_a,
                        scalar_t one_minus_b, scalar_t v_th, scalar_t v_reset, bool current) {
  const int64_t k = end - begin;
  std::vector<scalar_t> g_buf(k, scalar_t(0)), j_buf(k, scalar_t(0));
  scalar_t* __restrict__ carry_v = g_buf.data();  // dL/dv of the new voltage, from later steps
  scalar_t* __restrict__ carry_j = j_buf.data();  // dL/dj of the next step's current jump
  // the counts' gradient of this block, in a buffer of its own like the carries (read through the input pointer, the
  // loop lost its vectorization: measured 3.5x slower)
  std::vector<scalar_t> gc_buf = kCounts ? std::vector<scalar_t>(gc + begin, gc + end) : std::vector<scalar_t>(1);
  const scalar_t* __restrict__ gct = gc_buf.data();
  const scalar_t one = scalar_t(1);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t off = t * n + begin;
    const scalar_t* __restrict__ ut = u_all + off;
    const scalar_t* __restrict__ gzt = gz + off;
    scalar_t* __restrict__ gxt = gx + off;
    #pragma GCC ivdep
    for (int64_t m = 0; m < k; ++m) {
      const scalar_t u = ut[m];
      scalar_t s = std::abs(u - v_th) + one;
      s = one / (s * s);                                     // SuperSpike: 1/(|u - v_th| + 1)**2
      const scalar_t g = carry_v[m];
      const scalar_t gzm = kCounts ? gzt[m] + gct[m] : gzt[m];  // the step's and the counts' gradient
      scalar_t d = (-(u + (-v_reset)) * g + gzm) * s;        // (gz + G*(v_reset - u)) * s
      const scalar_t z = one - static_cast<scalar_t>(u <= v_th);  // the spike, recomputed: one read less
      d = (d + g) - g * z;                                   // + G*(1 - z)
      if (current) {
        carry_j[m] = carry_j[m] * one_minus_b + a * d;
        gxt[m] = carry_j[m];
      } else {
        gxt[m] = d * a;
      }
      carry_v[m] = d * one_minus_a;
    }
  }
}

template <typename scalar_t, bool kIdle>
void li_forward_block(const scalar_t* x, int64_t x_step, scalar_t* out, scalar_t* idle, int64_t n, int64_t begin,
                      int64_t end, int64_t steps, scalar_t a, scalar_t minus_b, scalar_t v_leak) {
  const int64_t k = end - begin;
  std::vector<scalar_t> v_buf(k, v_leak), i_buf(k, scalar_t(0)), d_buf(k, scalar_t(0));
  scalar_t* __restrict__ v = v_buf.data();
  scalar_t* __restrict__ cur = i_buf.data();
  scalar_t* __restrict__ quiet = d_buf.data();
  const scalar_t zero = scalar_t(0), one = scalar_t(1);
  for (int64_t t = 0; t < steps; ++t) {
    const scalar_t* __restrict__ xt = x + t * x_step + begin;
    scalar_t* __restrict__ ot = out + t * n + begin;
    #pragma GCC ivdep
    for (int64_t m = 0; m < k; ++m) {
      const scalar_t v_old = v[m], i_old = cur[m];
      const scalar_t j = cur[m] + xt[m];
      v[m] = v[m] + ((v_leak - v[m]) + j) * a;
      ot[m] = v[m];
      cur[m] = j * minus_b + j;
      if (kIdle) quiet[m] += (xt[m] == zero && v[m] == v_old && cur[m] == i_old) ? one : zero;
    }
  }
  if (kIdle) std::copy(d_buf.begin(), d_buf.end(), idle + begin);
}

template <typename scalar_t>
void li_backward_block(const scalar_t* gy, scalar_t* gx, int64_t n, int64_t begin, int64_t end, int64_t steps,
                       scalar_t a, scalar_t one_minus_a, scalar_t one_minus_b) {
  const int64_t k = end - begin;
  std::vector<scalar_t> d_buf(k, scalar_t(0)), j_buf(k, scalar_t(0));
  scalar_t* __restrict__ d = d_buf.data();
  scalar_t* __restrict__ carry_j = j_buf.data();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const scalar_t* __restrict__ gyt = gy + t * n + begin;
    scalar_t* __restrict__ gxt = gx + t * n + begin;
    #pragma GCC ivdep
    for (int64_t m = 0; m < k; ++m) {
      d[m] = d[m] * one_minus_a + gyt[m];
      carry_j[m] = carry_j[m] * one_minus_b + a * d[m];
      gxt[m] = carry_j[m];
    }
  }
}

// Lava's bit-accurate CUBA LIF (export/loihi_cuba.py, _CubaFixedPoint) in float64, which holds its integers
// exactly: the same operations in the same order as the torch version, so the same values bit for bit.
template <bool kIdle>
void cuba_forward_block(const double* a_in, int64_t a_step, double* pre, double* spikes, double* volts,
                        double* idle, int64_t n, int64_t begin, int64_t end, int64_t steps, double k_u, double k_v,
                        double threshold, double gain, double limit) {
  const int64_t k = end - begin;
  std::vector<double> u_buf(k, 0.0), v_buf(k, 0.0), d_buf(k, 0.0);
  double* __restrict__ u = u_buf.data();
  double* __restrict__ v = v_buf.data();
  double* __restrict__ quiet = d_buf.data();  // idle steps: no input and (u, v) unchanged
  for (int64_t t = 0; t < steps; ++t) {
    const double* __restrict__ at = a_in + t * a_step + begin;
    double* __restrict__ pt = pre + t * n + begin;
    double* __restrict__ zt = spikes + t * n + begin;
    double* __restrict__ vt = volts == nullptr ? nullptr : volts + t * n + begin;
    #pragma GCC ivdep
    for (int64_t m = 0; m < k; ++m) {
      const double u_old = u[m], v_old = v[m];
      const double current = std::trunc(u[m] * k_u) + at[m] * gain;
      double wrapped = current > limit ? current - 2.0 * limit : current;
      wrapped = wrapped <= -limit ? current + 2.0 * limit : wrapped;  // as Lava writes it
      u[m] = wrapped;
      double voltage = std::trunc(v[m] * k_v) + wrapped;
      voltage = voltage < -limit + 1.0 ? -limit + 1.0 : (voltage > limit - 1.0 ? limit - 1.0 : voltage);
      pt[m] = voltage;
      const double z = voltage > threshold ? 1.0 : 0.0;
      zt[m] = z;
      v[m] = (1.0 - z) * voltage;
      if (volts != nullptr) vt[m] = v[m];
      if (kIdle) quiet[m] += (at[m] == 0.0 && wrapped == u_old && v[m] == v_old) ? 1.0 : 0.0;
    }
  }
  if (kIdle) std::copy(d_buf.begin(), d_buf.end(), idle + begin);
}

// g_volts may be null (the voltage output was not used: a hidden layer); the spikes are recomputed from pre.
// kSum: the input was the same at every step (a time-constant input broadcast over T), and g_in [N] gets its
// gradient summed over the steps (in reverse time order) instead of [T, N] written and summed again by autograd.
template <bool kSum>
void cuba_backward_block(const double* g_spikes, const double* g_volts, const double* pre, double* g_in, int64_t n,
                         int64_t begin, int64_t end, int64_t steps, double k_u, double k_v, double threshold,
                         double volts, double gain, bool spiking) {
  const int64_t k = end - begin;
  std::vector<double> dv_buf(k, 0.0), du_buf(k, 0.0), sum_buf(kSum ? k : 0, 0.0);
  double* __restrict__ d_v = dv_buf.data();
  double* __restrict__ d_u = du_buf.data();
  double* __restrict__ total = sum_buf.data();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t off = t * n + begin;
    #pragma GCC ivdep
    for (int64_t m = 0; m < k; ++m) {
      const double nv = (g_volts == nullptr ? 0.0 : g_volts[off + m]) + k_v * d_v[m];
      const double z = pre[off + m] > threshold ? 1.0 : 0.0;
      double dv = nv * (1.0 - z);
      if (spiking) {
        const double p = pre[off + m];
        double s = std::abs(p - threshold) / volts + 1.0;
        s = 1.0 / (s * s);
        dv = dv + (g_spikes[off + m] - nv * p) * s / volts;
      }
      d_v[m] = dv;
      d_u[m] = dv + k_u * d_u[m];
      if (kSum) {
        total[m] += gain * d_u[m];
      } else {
        g_in[off + m] = gain * d_u[m];
      }
    }
  }
  if (kSum) std::copy(sum_buf.begin(), sum_buf.end(), g_in + begin);
}

// f(std::true_type{}) or f(std::false_type{}): a runtime flag as the compile-time one a block template takes.
template <typename F>
void with_flag(bool flag, F&& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

void check_input(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(x.dim() == 2, name, " must be [T, N]");
  TORCH_CHECK(x.stride(1) == 1, name, " must be contiguous over neurons");
  TORCH_CHECK(x.stride(0) == 0 || x.stride(0) == x.size(1) || x.size(0) == 1, name,
              " must have a time stride of N or 0");
}

int64_t time_stride(const torch::Tensor& x) { return x.size(0) == 1 ? 0 : x.stride(0); }

// Returns (u, z, counts, idle): the pre-reset voltages and the spikes, both [T, N], the spikes summed over time [N],
// and each neuron's idle steps [N] (no input and its state unchanged: what the energy report prices apart).
std::vector<torch::Tensor> lif_forward(const torch::Tensor& x, double a, double minus_b, double v_leak, double v_th,
                                       double v_reset, bool current, bool count_idle) {
  check_input(x, "x");
  const int64_t steps = x.size(0), n = x.size(1);
  auto u = torch::empty({steps, n}, x.options());
  auto z = torch::empty({steps, n}, x.options());
  auto counts = torch::empty({n}, x.options());
  auto idle = torch::empty({count_idle ? n : 0}, x.options());  // empty: not counted (a training step)
  const int64_t x_step = time_stride(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_forward", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* up = u.data_ptr<scalar_t>();
    scalar_t* zp = z.data_ptr<scalar_t>();
    scalar_t* cp = counts.data_ptr<scalar_t>();
    scalar_t* ip = idle.data_ptr<scalar_t>();
    at::parallel_for(0, n, kBlock, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; b += kBlock) {
        const int64_t e = std::min(b + kBlock, hi);
        with_flag(count_idle, [&](auto idle) {
          lif_forward_block<scalar_t, decltype(idle)::value>(xp, x_step, up, zp, cp, ip, n, b, e, steps, scalar_t(a),
                                                             scalar_t(minus_b), scalar_t(v_leak), scalar_t(v_th),
                                                             scalar_t(v_reset), current);
        });
      }
    });
  });
  return {u, z, counts, idle};
}

// grad_counts: the gradient of the counts [N], or an undefined tensor when the counts were not used.
torch::Tensor lif_backward(const torch::Tensor& grad_z, const c10::optional<torch::Tensor>& grad_counts,
                           const torch::Tensor& u, double a, double minus_b, double v_th, double v_reset,
                           bool current) {
  TORCH_CHECK(grad_z.is_contiguous() && u.is_contiguous(), "tensors must be contiguous");
  const bool with_counts = grad_counts.has_value() && grad_counts->defined();
  const int64_t steps = u.size(0), n = u.size(1);
  if (with_counts) {
    TORCH_CHECK(grad_counts->is_contiguous() && grad_counts->numel() == n, "grad_counts must be [N], contiguous");
  }
  auto gx = torch::empty({steps, n}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "lif_backward", [&] {
    const scalar_t* gzp = grad_z.data_ptr<scalar_t>();
    const scalar_t* gcp = with_counts ? grad_counts->data_ptr<scalar_t>() : nullptr;
    const scalar_t* up = u.data_ptr<scalar_t>();
    scalar_t* gxp = gx.data_ptr<scalar_t>();
    at::parallel_for(0, n, kBlock, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; b += kBlock) {
        const int64_t e = std::min(b + kBlock, hi);
        with_flag(with_counts, [&](auto counts) {
          lif_backward_block<scalar_t, decltype(counts)::value>(gzp, gcp, up, gxp, n, b, e, steps, scalar_t(a),
                                                                scalar_t(1.0 - a), scalar_t(1.0 + minus_b),
                                                                scalar_t(v_th), scalar_t(v_reset), current);
        });
      }
    });
  });
  return gx;
}

// Returns (voltages [T, N], idle steps [N]).
std::vector<torch::Tensor> li_forward(const torch::Tensor& x, double a, double minus_b, double v_leak,
                                      bool count_idle) {
  check_input(x, "x");
  const int64_t steps = x.size(0), n = x.size(1);
  auto out = torch::empty({steps, n}, x.options());
  auto idle = torch::empty({count_idle ? n : 0}, x.options());
  const int64_t x_step = time_stride(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "li_forward", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    scalar_t* ip = idle.data_ptr<scalar_t>();
    at::parallel_for(0, n, kBlock, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; b += kBlock) {
        const int64_t e = std::min(b + kBlock, hi);
        with_flag(count_idle, [&](auto idle) {
          li_forward_block<scalar_t, decltype(idle)::value>(xp, x_step, op, ip, n, b, e, steps, scalar_t(a),
                                                            scalar_t(minus_b), scalar_t(v_leak));
        });
      }
    });
  });
  return {out, idle};
}

torch::Tensor li_backward(const torch::Tensor& grad_y, double a, double minus_b) {
  TORCH_CHECK(grad_y.is_contiguous(), "grad_y must be contiguous");
  const int64_t steps = grad_y.size(0), n = grad_y.size(1);
  auto gx = torch::empty({steps, n}, grad_y.options());
  AT_DISPATCH_FLOATING_TYPES(grad_y.scalar_type(), "li_backward", [&] {
    const scalar_t* gyp = grad_y.data_ptr<scalar_t>();
    scalar_t* gxp = gx.data_ptr<scalar_t>();
    at::parallel_for(0, n, kBlock, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; b += kBlock) {
        li_backward_block<scalar_t>(gyp, gxp, n, b, std::min(b + kBlock, hi), steps, scalar_t(a),
                                    scalar_t(1.0 - a), scalar_t(1.0 + minus_b));
      }
    });
  });
  return gx;
}

// Returns (pre-reset voltage, spikes, voltage after the reset), each [T, N] float64 (the last empty unless
// with_volts: a hidden layer passes on its spikes only), and each compartment's idle steps [N]; a_in [T, N] float64
// (time stride N or 0).
std::vector<torch::Tensor> cuba_forward(const torch::Tensor& a_in, double k_u, double k_v, double threshold,
                                        double gain, double limit, bool with_volts, bool count_idle) {
  check_input(a_in, "a_in");
  TORCH_CHECK(a_in.scalar_type() == torch::kFloat64, "a_in must be float64");
  const int64_t steps = a_in.size(0), n = a_in.size(1);
  auto pre = torch::empty({steps, n}, a_in.options());
  auto spikes = torch::empty({steps, n}, a_in.options());
  auto volts = with_volts ? torch::empty({steps, n}, a_in.options()) : torch::empty({0}, a_in.options());
  const int64_t a_step = time_stride(a_in);
  const double* ap = a_in.data_ptr<double>();
  double *pp = pre.data_ptr<double>(), *zp = spikes.data_ptr<double>();
  double* vp = with_volts ? volts.data_ptr<double>() : nullptr;
  auto idle = torch::empty({count_idle ? n : 0}, a_in.options());
  double* ip = idle.data_ptr<double>();
  at::parallel_for(0, n, kBlock, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b += kBlock) {
      const int64_t e = std::min(b + kBlock, hi);
      with_flag(count_idle, [&](auto idle) {
        cuba_forward_block<decltype(idle)::value>(ap, a_step, pp, zp, vp, ip, n, b, e, steps, k_u, k_v, threshold,
                                                  gain, limit);
      });
    }
  });
  return {pre, spikes, volts, idle};
}

// g_volts: the voltage output's gradient, or undefined when that output was not used.
// sum_time: the gradient of a time-constant input, [1, N] summed over the steps (else [T, N]).
torch::Tensor cuba_backward(const torch::Tensor& g_spikes, const c10::optional<torch::Tensor>& g_volts,
                            const torch::Tensor& pre, double k_u, double k_v, double threshold, double volts,
                            double gain, bool spiking, bool sum_time) {
  const bool with_volts = g_volts.has_value() && g_volts->defined();
  TORCH_CHECK(g_spikes.is_contiguous() && pre.is_contiguous() && (!with_volts || g_volts->is_contiguous()),
              "tensors must be contiguous");
  const int64_t steps = pre.size(0), n = pre.size(1);
  auto g_in = torch::empty({sum_time ? 1 : steps, n}, pre.options());
  const double* gz = g_spikes.data_ptr<double>();
  const double* gv = with_volts ? g_volts->data_ptr<double>() : nullptr;
  const double* pp = pre.data_ptr<double>();
  double* gp = g_in.data_ptr<double>();
  at::parallel_for(0, n, kBlock, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b += kBlock) {
      with_flag(sum_time, [&](auto sum) {
        cuba_backward_block<decltype(sum)::value>(gz, gv, pp, gp, n, b, std::min(b + kBlock, hi), steps, k_u, k_v,
                                                  threshold, volts, gain, spiking);
      });
    }
  });
  return g_in;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lif_forward", &lif_forward, "LIF/LIFBox over T steps: (u, z, spike counts, idle steps)");
  m.def("lif_backward", &lif_backward, "dL/dx of the LIF/LIFBox spikes");
  m.def("li_forward", &li_forward, "LI over T steps: (voltages, idle steps)");
  m.def("li_backward", &li_backward, "dL/dx of the LI voltages");
  m.def("cuba_forward", &cuba_forward, "Lava's bit-accurate CUBA LIF over T steps: (pre-reset v, spikes, v)");
  m.def("cuba_backward", &cuba_backward, "straight-through dL/da_in of the CUBA LIF");
}
