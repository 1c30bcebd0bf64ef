// sda/observe/linear.hpp: `Identity` and `Linear` (a dense matrix A over the
// flattened event), the linear operators of the linear-Gaussian tests. Both run
// on any backend: `Linear` copies its matrix to the backend when bound.
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "sda/backend/concepts.hpp"
#include "sda/backend/cpu.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"
#include "sda/observe/cpu_calls.hpp"

namespace sda::observe {

/// A(x) = x, on any backend's tensors.
struct Identity {
    Shape output_shape(const Shape& event) const { return event; }
    template <class X>
    X apply(const X& x) const { return x; }
    template <class X>
    X vjp(const X&, const X& v) const { return v; }
    template <class X>
    X jvp(const X&, const X& dx) const { return dx; }
};

/// A(x) = A vec(x) for an M x N matrix A, N the event size: [B, event...] -> [B, M].
/// One GEMM per call: Y = X A^T, and the VJP G = V A.
template <class T = double>
class Linear : public detail::CpuCalls<Linear<T>> {
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
    /// Bound to events of shape `event` on `backend`: the matrix copied there once; A(x) and
    /// the VJP are one matrix product each (`matmul`, `matmul_adjoint`).
    template <Backend B>
    auto bind(const Shape& event, const B& backend) const {
        output_shape(event);
        const std::vector<double> values = as_double();
        return Bound<B>(backend, backend.from_host(values, {std::size_t(matrix_.rows()), std::size_t(matrix_.cols())}));
    }

private:
    template <Backend B>
    class Bound {
    public:
        using tensor_type = typename B::tensor_type;
        Bound(B backend, tensor_type matrix) : backend_(std::move(backend)), matrix_(std::move(matrix)) {}
        tensor_type apply(const tensor_type& x) const { return backend_.matmul(x, matrix_); }
        tensor_type vjp(const tensor_type& x, const tensor_type& v) const {
            return backend_.reshape(backend_.matmul_adjoint(v, matrix_), backend_.shape(x));
        }
        tensor_type jvp(const tensor_type&, const tensor_type& dx) const { return apply(dx); }

    private:
        B backend_;
        tensor_type matrix_;
    };

    /// The matrix's entries, row-major, as doubles (what `from_host` takes).
    std::vector<double> as_double() const {
        std::vector<double> out(static_cast<std::size_t>(matrix_.size()));
        Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(out.data(), matrix_.rows(),
                                                                                          matrix_.cols()) =
            matrix_.template cast<double>();
        return out;
    }

    matrix_type matrix_;
};

static_assert(ObservationOperator<Identity, CpuBackend<double>>);
static_assert(ObservationOperator<Linear<double>, CpuBackend<double>>);

}  // namespace sda::observe
