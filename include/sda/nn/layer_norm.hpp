// sda/nn/layer_norm.hpp: layer normalisation without affine parameters,
// y = (x - mean) / sqrt(var + eps) over each row (Ba et al., 2016).
//
// The variance divides by N (torch.nn.LayerNorm) or by N - 1 (zuko's
// LayerNorm, which the paper's code uses): a choice of the layer, so weights
// trained with either give identical outputs here. Backward, with D the divisor:
//   dx = r (dy - mean(dy) - y sum(dy y) / D),  r = 1 / sqrt(var + eps).
#pragma once

#include <cmath>
#include <cstddef>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"

namespace sda::nn {

template <class T>
struct LayerNorm {
    using ConstRef = Eigen::Ref<const RowMatrix<T>>;
    using Ref = Eigen::Ref<RowMatrix<T>>;

    bool unbiased = true;  ///< divide the variance by N - 1 (the paper's code) or by N
    double eps = 1e-5;

    double divisor(std::size_t n) const { return unbiased ? static_cast<double>(n) - 1.0 : static_cast<double>(n); }

    /// Y = normalised rows of X; `rstd[i]` = 1 / sqrt(var_i + eps) when not null. Y may alias X.
    void forward(const ConstRef& X, Ref Y, T* rstd = nullptr) const {
        const auto n = static_cast<std::size_t>(X.cols());
        const T inv_n = T(1) / static_cast<T>(n), inv_d = static_cast<T>(1.0 / divisor(n));
        for (Eigen::Index i = 0; i < X.rows(); ++i) {
            const T mean = X.row(i).sum() * inv_n;
            const T var = (X.row(i).array() - mean).square().sum() * inv_d;
            const T r = T(1) / std::sqrt(var + static_cast<T>(eps));
            Y.row(i) = (X.row(i).array() - mean) * r;
            if (rstd) rstd[i] = r;
        }
    }

    /// dX = the VJP at the rows whose output was Y; dX may alias dY. With
    /// `accumulate`, adds to dX instead (then dX must not alias dY).
    void backward(const ConstRef& Y, const T* rstd, const ConstRef& dY, Ref dX, bool accumulate = false) const {
        const auto n = static_cast<std::size_t>(Y.cols());
        const T inv_n = T(1) / static_cast<T>(n), inv_d = static_cast<T>(1.0 / divisor(n));
        for (Eigen::Index i = 0; i < Y.rows(); ++i) {
            const T mean_dy = dY.row(i).sum() * inv_n;
            const T dot = dY.row(i).dot(Y.row(i)) * inv_d;
            if (accumulate) dX.row(i).array() += rstd[i] * (dY.row(i).array() - mean_dy - Y.row(i).array() * dot);
            else dX.row(i).array() = rstd[i] * (dY.row(i).array() - mean_dy - Y.row(i).array() * dot);
        }
    }
};

}  // namespace sda::nn
