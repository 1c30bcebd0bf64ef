// sda/metrics/pairwise.hpp: checks of sample sets [N, ...] and the squared
// Euclidean distances between their flattened samples, shared by the set
// metrics (sda/metrics/assignment.hpp, sda/metrics/mmd.hpp).
//
// Distances come from one GEMM, ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y, in
// double on samples centred at the pooled mean; pairs where cancellation could
// dominate are recomputed directly, so coinciding samples are exactly 0 apart.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

#include <Eigen/Core>

#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"

namespace sda::detail {

/// Throws unless `a` and `b` are sets `[N, ...]` of at least `min_size` finite
/// samples of one shape, and of equal N when `equal_sizes`; `what` names the caller.
template <class T>
void check_sample_sets(const Tensor<T>& a, const Tensor<T>& b, std::string_view what, std::size_t min_size,
                       bool equal_sizes) {
    for (const auto* x : {&a, &b}) {
        const char* name = x == &a ? "a" : "b";
        require(x->dimension() >= 1, what, ": ", name, " has rank 0, expected a set of samples [N, ...]");
        require(x->shape()[0] >= min_size, what, ": ", name, " has shape ", format_shape(shape_of(*x)),
                ", expected at least ", min_size, " sample", min_size == 1 ? "" : "s");
        require(x->size() > 0, what, ": ", name, " has empty samples (shape ", format_shape(shape_of(*x)), ")");
    }
    const Shape event_a = event_shape_of(shape_of(a)), event_b = event_shape_of(shape_of(b));
    require(event_a == event_b, what, ": samples of a have shape ", format_shape(event_a),
            " but samples of b have shape ", format_shape(event_b));
    require(!equal_sizes || a.shape()[0] == b.shape()[0], what, ": a has N = ", a.shape()[0], " samples but b has N = ",
            b.shape()[0], "; the sets must have equal sizes");
    check_finite(a, concat(what, ": a"));
    check_finite(b, concat(what, ": b"));
}

/// The M x N matrix of squared Euclidean distances between the flattened samples
/// of `a` [M, ...] and `b` [N, ...] (same sample shape, both non-empty).
template <class T>
Eigen::MatrixXd squared_distances(const Tensor<T>& a, const Tensor<T>& b) {
    const auto a_rows = rows_view(a);
    const auto b_rows = rows_view(b);
    const double pooled = static_cast<double>(a_rows.rows() + b_rows.rows());
    // Centring shrinks the norms of sets far from the origin (Lorenz-63's z is near 25), so that
    // the cancellation below, and the direct recomputation that repairs it, stay rare.
    const Eigen::RowVectorXd centre =
        (a_rows.template cast<double>().colwise().sum() + b_rows.template cast<double>().colwise().sum()) / pooled;
    const RowMatrix<double> x = a_rows.template cast<double>().rowwise() - centre;
    const RowMatrix<double> y = b_rows.template cast<double>().rowwise() - centre;
    const Eigen::VectorXd x_norms = x.rowwise().squaredNorm();
    const Eigen::VectorXd y_norms = y.rowwise().squaredNorm();

    Eigen::MatrixXd d2(x.rows(), y.rows());
    d2.noalias() = -2.0 * x * y.transpose();
    d2.colwise() += x_norms;
    d2.rowwise() += y_norms.transpose();
    // The GEMM form errs by a few ulps of ||x||^2 + ||y||^2; where d2 is not well
    // above that (near or coinciding samples, rounding below 0) recompute it
    // directly, which also clamps it at 0. Few pairs qualify unless samples coincide.
    for (Eigen::Index j = 0; j < d2.cols(); ++j)
        for (Eigen::Index i = 0; i < d2.rows(); ++i)
            if (d2(i, j) <= 1e-4 * (x_norms(i) + y_norms(j))) d2(i, j) = (x.row(i) - y.row(j)).squaredNorm();
    return d2;
}

}  // namespace sda::detail
