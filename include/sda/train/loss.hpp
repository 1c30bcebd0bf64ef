// sda/train/loss.hpp: the denoising score-matching loss of Rozet & Louppe (2023),
// for any schedule:
//   L = E_{x, t ~ U(0,1), z ~ N(0, I)} || eps(mu(t) x + sigma(t) z, t) - z ||^2,
// averaged over the batch and the event's entries; with per-sample weights w,
// (sum_b w_b err_b) / (sum_b w_b), as the paper's code.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"
#include "sda/nn/concepts.hpp"

namespace sda::train {

/// A noised batch: x(t) = mu x + sigma z with its t and z.
template <class T>
struct NoisedBatch {
    Tensor<T> xt, z;
    std::vector<double> t;
};

/// Draws t ~ U(0, 1) per sample and z ~ N(0, I) (two draws of `gen`).
template <class Schedule, class T>
NoisedBatch<T> noise_batch(const Schedule& schedule, const Tensor<T>& x, Generator& gen) {
    const std::size_t batch = x.shape()[0], n = x.size() / batch;
    NoisedBatch<T> out{empty_tensor<T>(shape_of(x)), empty_tensor<T>(shape_of(x)), std::vector<double>(batch)};
    fill_uniform(out.t.data(), 1, batch, gen);
    for (double& t : out.t) t = 1.0 - t;  // (0, 1] -> [0, 1)
    fill_normal(out.z.data(), batch, n, gen);
    for (std::size_t b = 0; b < batch; ++b) {
        const T mu = static_cast<T>(schedule.mu(out.t[b])), sigma = static_cast<T>(schedule.sigma(out.t[b]));
        for (std::size_t i = b * n; i < (b + 1) * n; ++i) out.xt.data()[i] = mu * x.data()[i] + sigma * out.z.data()[i];
    }
    return out;
}

namespace detail {
template <class T>
std::vector<double> normalised_weights(std::span<const T> weights, std::size_t batch) {
    std::vector<double> w(batch, 1.0);
    if (weights.empty()) return w;
    sda::detail::require(weights.size() == batch, "sda::train: ", weights.size(), " weights for ", batch, " samples");
    double sum = 0;
    for (std::size_t b = 0; b < batch; ++b) {
        sda::detail::require(std::isfinite(double(weights[b])) && weights[b] >= 0, "sda::train: weight ", b,
                             " is not finite and non-negative");
        sum += double(weights[b]);
    }
    sda::detail::require(sum > 0, "sda::train: the weights sum to zero");
    for (std::size_t b = 0; b < batch; ++b) w[b] = double(weights[b]) * static_cast<double>(batch) / sum;
    return w;
}

/// The loss of one row of a noised batch and its derivative, as `accumulate_gradient` asks for:
/// row b of the call is row `first + b` of `noised` (n entries each), weighted w[first + b] scale.
template <class T>
auto denoising_row_loss(const NoisedBatch<T>& noised, std::size_t n, const std::vector<double>& w, double scale,
                        std::size_t first = 0) {
    return [&noised, &w, n, scale, first](std::size_t b, const auto& eps, auto&& d_eps) {
        const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> z(noised.z.data() + (first + b) * n,
                                                                      static_cast<Eigen::Index>(n));
        const T factor = static_cast<T>(w[first + b] * scale);
        d_eps = (T(2) * factor) * (eps - z);
        return double(factor) * double((eps - z).squaredNorm());
    };
}
}  // namespace detail

/// The loss on one batch of clean samples `x`, and its gradient added to `grad`.
template <nn::TrainableScoreModel M>
double denoising_loss_gradient(const M& model, const tensor_t<M>& x, Generator& gen,
                               std::span<typename M::scalar_type> grad,
                               std::span<const typename M::scalar_type> weights = {}) {
    const auto noised = noise_batch(model.schedule(), x, gen);
    const std::size_t batch = x.shape()[0], n = x.size() / batch;
    const std::vector<double> w = detail::normalised_weights(weights, batch);
    const double scale = 1.0 / static_cast<double>(batch * n);
    return model.accumulate_gradient(noised.xt, noised.t, detail::denoising_row_loss(noised, n, w, scale), grad);
}

/// The loss on one batch, without gradient (validation).
template <nn::TrainableScoreModel M>
double denoising_loss(const M& model, const tensor_t<M>& x, Generator& gen) {
    const auto noised = noise_batch(model.schedule(), x, gen);
    const auto eps = model.forward(noised.xt, noised.t);
    double sum = 0;
    for (std::size_t i = 0; i < eps.size(); ++i) {
        const double d = double(eps.data()[i]) - double(noised.z.data()[i]);
        sum += d * d;
    }
    return sum / static_cast<double>(eps.size());
}

}  // namespace sda::train
