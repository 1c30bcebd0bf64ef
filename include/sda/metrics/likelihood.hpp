// sda/metrics/likelihood.hpp: how well samples explain an observation: the
// mean over samples of log N(y | A(x_b), diag(variance)), the "log-likelihood"
// the paper reports beside the log-prior, and the chi-square per observed
// value. CPU tensors (`CpuBackend`).
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>

#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/gaussian.hpp"

namespace sda::detail {

/// Calls f(r, v) for every entry of every sample: the residual y - A(x_b) and its noise variance.
template <class Op, class T, class F>
void for_residuals(const GaussianObservation<Op, CpuBackend<T>>& obs, const Tensor<T>& x, const char* who, F&& f) {
    const CpuBackend<T> be;
    require(x.dimension() >= 1 && x.shape()[0] >= 1 && be.all_finite(x), who,
                         ": need finite samples [B, event...]");
    const Tensor<T> residual = be.sub(obs.y(), obs.op().apply(x));
    const std::size_t batch = x.shape()[0], entries = residual.size() / batch;
    const Tensor<T>& variance = obs.variance();
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t e = 0; e < entries; ++e)
            f(double(residual.data()[b * entries + e]), double(variance.size() == 1 ? variance.data()[0] : variance.data()[e]));
}

}  // namespace sda::detail

namespace sda::metrics {


/// Mean over the samples x [B, event...] of log N(y | A(x_b), diag(variance)),
/// summed over the observation's entries. y may be shared or given per sample.
template <class Op, class T>
double observation_log_likelihood(const GaussianObservation<Op, CpuBackend<T>>& obs, const Tensor<T>& x) {
    double total = 0;
    sda::detail::for_residuals(obs, x, "sda::metrics::observation_log_likelihood", [&](double r, double v) {
        total += -0.5 * r * r / v - 0.5 * std::log(2.0 * std::numbers::pi * v);
    });
    return total / double(x.shape()[0]);
}

/// Chi-square per observed value: the mean over samples and observed entries of
/// (y - A(x_b))^2 / variance. For posterior samples of a linear A it is about
/// 1 + (posterior variance of A x) / (noise variance): near 1 when the posterior
/// explains the data as well as the noise allows; far above, it misses them.
template <class Op, class T>
double chi_square(const GaussianObservation<Op, CpuBackend<T>>& obs, const Tensor<T>& x) {
    double total = 0;
    std::size_t count = 0;
    sda::detail::for_residuals(obs, x, "sda::metrics::chi_square", [&](double r, double v) { total += r * r / v, ++count; });
    return total / double(count);
}

}  // namespace sda::metrics
