// sda/observe/dense.hpp: `dense_matrix`, the matrix of a linear observation
// operator, found by applying it to every basis vector of the event space.
//
// For tests, for exact linear-Gaussian posteriors and for handing any linear
// operator (a selection, a subsampling, a composition) to a Kalman smoother.
// Costs one apply on a batch of N basis vectors (N the event size).
#pragma once

#include <cstddef>

#include <Eigen/Core>
#include <xtensor/xbuilder.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda::observe {

/// The M x N matrix of `op` on events of shape `event` (M the observation size);
/// meaningful only for a linear operator.
template <class Op>
    requires ObservationOperator<Op, CpuBackend<double>>
Eigen::MatrixXd dense_matrix(const Op& op, const Shape& event) {
    const std::size_t n = element_count(event);
    Tensor<double> basis = xt::zeros<double>(batch_shape(n, event));
    for (std::size_t i = 0; i < n; ++i) basis.data()[i * n + i] = 1.0;
    const Tensor<double> columns = op.apply(basis);  // [N, obs...]: row i is A e_i
    return rows_view(columns).transpose();
}

}  // namespace sda::observe
