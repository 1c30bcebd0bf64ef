// sda/metrics/likelihood.hpp: how well samples explain an observation: the
// mean over samples of log N(y | A(x_b), diag(variance)), the "log-likelihood"
// the paper reports beside the log-prior. CPU tensors (`CpuBackend`).
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>

#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/gaussian.hpp"

namespace sda::metrics {

/// Mean over the samples x [B, event...] of log N(y | A(x_b), diag(variance)),
/// summed over the observation's entries. y may be shared or given per sample.
template <class Op, class T>
double observation_log_likelihood(const GaussianObservation<Op, CpuBackend<T>>& obs, const Tensor<T>& x) {
    const CpuBackend<T> be;
    sda::detail::require(x.dimension() >= 1 && x.shape()[0] >= 1 && be.all_finite(x),
                         "sda::metrics::observation_log_likelihood: need finite samples [B, event...]");
    const Tensor<T> residual = be.sub(obs.y(), obs.op().apply(x));
    const std::size_t batch = x.shape()[0], entries = residual.size() / batch;
    const Tensor<T>& variance = obs.variance();
    double total = 0;
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t e = 0; e < entries; ++e) {
            const double v = double(variance.size() == 1 ? variance.data()[0] : variance.data()[e]);
            const double r = double(residual.data()[b * entries + e]);
            total += -0.5 * r * r / v - 0.5 * std::log(2.0 * std::numbers::pi * v);
        }
    return total / double(batch);
}

}  // namespace sda::metrics
