// sda/train/adamw.hpp: AdamW with torch.optim.AdamW's semantics (Loshchilov &
// Hutter, "Decoupled weight decay regularization", ICLR 2019).
//
// Per step k (from 1), with the operations in the order of torch's
// single-tensor implementation:
//   p <- p (1 - lr wd)                      decoupled weight decay
//   m <- m + (1 - b1) (g - m),  v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^k)) m / (sqrt(v) / sqrt(1 - b2^k) + eps)
// (the division by sqrt(1 - b2^k) taken as a product with its inverse).
// On one flat parameter buffer, in parallel chunks of vectorised Eigen array
// expressions (element-wise, so the result does not depend on the thread count).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "sda/core/check.hpp"
#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"

namespace sda::train {

struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;  ///< torch's default; the paper uses 1e-3

    void validate() const {
        sda::detail::check_positive(lr, "sda::train::AdamW: lr");
        sda::detail::require(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
                        "sda::train::AdamW: betas must lie in [0, 1), got ", beta1, " and ", beta2);
        sda::detail::check_positive(eps, "sda::train::AdamW: eps");
        sda::detail::check_non_negative(weight_decay, "sda::train::AdamW: weight_decay");
    }
};

template <class T>
class AdamW {
public:
    AdamW(std::size_t parameters, AdamWOptions options)
        : options_(options), exp_avg_(parameters, T(0)), exp_avg_sq_(parameters, T(0)) {
        options_.validate();
    }

    const AdamWOptions& options() const { return options_; }
    std::uint64_t steps() const { return steps_; }
    AlignedVector<T>& exp_avg() { return exp_avg_; }
    AlignedVector<T>& exp_avg_sq() { return exp_avg_sq_; }
    const AlignedVector<T>& exp_avg() const { return exp_avg_; }
    const AlignedVector<T>& exp_avg_sq() const { return exp_avg_sq_; }
    void set_steps(std::uint64_t steps) { steps_ = steps; }

    /// One update of `params` with `grad`, at learning rate `lr` (the scheduled one).
    void step(std::span<T> params, std::span<const T> grad, double lr) {
        sda::detail::require(params.size() == exp_avg_.size() && grad.size() == exp_avg_.size(),
                        "sda::train::AdamW::step: ", params.size(), " parameters and ", grad.size(),
                        " gradients for an optimiser of ", exp_avg_.size());
        ++steps_;
        const double k = static_cast<double>(steps_);
        const T decay = static_cast<T>(1.0 - lr * options_.weight_decay);
        const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2);
        const T step_size = static_cast<T>(lr / (1.0 - std::pow(options_.beta1, k)));
        // torch divides sqrt(v) by sqrt(1 - beta2^k); a product with its inverse differs from
        // that by about an ulp and spares one of the step's two vector divisions
        const T inverse_correction2 = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(options_.beta2, k)));
        const T eps = static_cast<T>(options_.eps);
        using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
        // the four updates run on blocks of 1024 entries that stay in L1: one pass over memory, not four
        constexpr std::size_t block = 1024;
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, params.size(), 1 << 15), [&](const auto& r) {
            for (std::size_t begin = r.begin(); begin < r.end(); begin += block) {
                const auto n = static_cast<Eigen::Index>(std::min(block, r.end() - begin));
                const auto at = static_cast<Eigen::Index>(begin);
                Eigen::Map<Array> p(params.data() + at, n), m(exp_avg_.data() + at, n), v(exp_avg_sq_.data() + at, n);
                const Eigen::Map<const Array> g(grad.data() + at, n);
                m += (T(1) - b1) * (g - m);
                v = v * b2 + (T(1) - b2) * g.square();
                p = p * decay - step_size * m / (v.sqrt() * inverse_correction2 + eps);
            }
        });
    }

private:
    AdamWOptions options_;
    AlignedVector<T> exp_avg_, exp_avg_sq_;
    std::uint64_t steps_ = 0;
};

/// The 2-norm of `grad`: squares summed in T over runs of 256 entries (Eigen's vectorised
/// reduction; a relative error of about 1e-6 in float) and those sums in double, in fixed blocks
/// run in parallel and added in order, so the result does not depend on the thread count.
template <class T>
double gradient_norm(std::span<const T> grad) {
    constexpr std::size_t block = std::size_t(1) << 14, run = 256;
    const std::size_t blocks = (grad.size() + block - 1) / block;
    std::vector<double> squares(blocks);
    using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
    tbb::parallel_for(std::size_t{0}, blocks, [&](std::size_t i) {
        const std::size_t end = std::min(grad.size(), (i + 1) * block);
        double sum = 0;
        for (std::size_t begin = i * block; begin < end; begin += run) {
            const auto n = static_cast<Eigen::Index>(std::min(run, end - begin));
            sum += double(Eigen::Map<const Vector>(grad.data() + begin, n).squaredNorm());
        }
        squares[i] = sum;
    });
    double total = 0;
    for (double s : squares) total += s;
    return std::sqrt(total);
}

/// torch.nn.utils.clip_grad_norm_: scales `grad` so its 2-norm is at most
/// `max_norm` (coefficient max_norm / (norm + 1e-6)); returns the norm before.
template <class T>
double clip_grad_norm(std::span<T> grad, double max_norm) {
    sda::detail::check_positive(max_norm, "sda::train::clip_grad_norm: max_norm");
    const double norm = gradient_norm(std::span<const T>(grad)), coefficient = max_norm / (norm + 1e-6);
    if (coefficient < 1.0)
        for (T& value : grad) value = static_cast<T>(value * coefficient);
    return norm;
}

}  // namespace sda::train
