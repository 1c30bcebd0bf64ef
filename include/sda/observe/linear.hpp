// sda/observe/linear.hpp: `Identity` and `Linear` (a dense matrix A over the
// flattened event), the linear operators of the linear-Gaussian tests.
#pragma once

#include <cstddef>
#include <utility>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda::observe {

/// A(x) = x.
struct Identity {
    Shape output_shape(const Shape& event) const { return event; }
    template <class T>
    Tensor<T> apply(const Tensor<T>& x) const { return x; }
    template <class T>
    Tensor<T> vjp(const Tensor<T>&, const Tensor<T>& v) const { return v; }
    template <class T>
    Tensor<T> jvp(const Tensor<T>&, const Tensor<T>& dx) const { return dx; }
};

/// A(x) = A vec(x) for an M x N matrix A, N the event size: [B, event...] -> [B, M].
/// One GEMM per call: Y = X A^T, and the VJP G = V A.
template <class T = double>
class Linear {
public:
    using matrix_type = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

    explicit Linear(matrix_type matrix) : matrix_(std::move(matrix)) {
        sda::detail::require(matrix_.rows() > 0 && matrix_.cols() > 0, "sda::observe::Linear: the matrix is empty");
        sda::detail::require(matrix_.allFinite(), "sda::observe::Linear: the matrix has a non-finite entry");
    }

    const matrix_type& matrix() const { return matrix_; }

    Shape output_shape(const Shape& event) const {
        sda::detail::require(element_count(event) == static_cast<std::size_t>(matrix_.cols()),
                             "sda::observe::Linear: a ", matrix_.rows(), " x ", matrix_.cols(),
                             " matrix cannot act on events of shape ", format_shape(event), " (",
                             element_count(event), " entries)");
        return {static_cast<std::size_t>(matrix_.rows())};
    }
    Tensor<T> apply(const Tensor<T>& x) const {
        const std::size_t batch = check(x);
        Tensor<T> y = empty_tensor<T>({batch, static_cast<std::size_t>(matrix_.rows())});
        rows_view(y).noalias() = rows_view(x) * matrix_.transpose();
        return y;
    }
    Tensor<T> vjp(const Tensor<T>& x, const Tensor<T>& v) const {
        const std::size_t batch = check(x);
        sda::detail::require(shape_of(v) == Shape{batch, static_cast<std::size_t>(matrix_.rows())},
                             "sda::observe::Linear: cotangent of shape ", format_shape(shape_of(v)),
                             ", expected [", batch, ", ", matrix_.rows(), "]");
        Tensor<T> g = empty_tensor<T>(shape_of(x));
        rows_view(g).noalias() = rows_view(v) * matrix_;
        return g;
    }
    Tensor<T> jvp(const Tensor<T>&, const Tensor<T>& dx) const { return apply(dx); }

private:
    std::size_t check(const Tensor<T>& x) const {
        sda::detail::require(x.dimension() >= 2 && x.shape()[0] >= 1, "sda::observe::Linear: input of shape ",
                             format_shape(shape_of(x)), " is not a batch [B, event...]");
        output_shape(event_shape_of(shape_of(x)));
        return x.shape()[0];
    }

    matrix_type matrix_;
};

static_assert(ObservationOperator<Identity, Tensor<double>>);
static_assert(ObservationOperator<Linear<double>, Tensor<double>>);

}  // namespace sda::observe
