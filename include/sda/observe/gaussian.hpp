// sda/observe/gaussian.hpp: `GaussianObservation`, the observation model
// p(y | x) = N(y | A(x), diag(variance)) that guidance conditions on.
//
// y is either one observation shared by the whole batch, of shape [obs...], or
// one per sample, [B, obs...]. The noise variance is a scalar or per entry
// ([obs...]). Both are validated here, where they enter sda. `guide` binds the
// operator to the prior's events once (`bind`), before sampling.
#pragma once

#include <cstddef>
#include <utility>

#include "sda/backend/concepts.hpp"
#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda {

template <class BoundOp, Backend B>
class BoundGaussianObservation;

template <class Op, Backend B = CpuBackend<double>>
class GaussianObservation {
public:
    using backend_type = B;
    using tensor_type = typename B::tensor_type;
    using operator_type = Op;

    /// Noise of one variance for every entry.
    GaussianObservation(Op op, tensor_type y, double variance, B backend = {})
        : GaussianObservation(std::move(op), std::move(y), backend.add_scalar(backend.zeros({}), variance), backend) {}

    /// Noise variance per entry, of shape [obs...] (or a rank-0 scalar).
    GaussianObservation(Op op, tensor_type y, tensor_type variance, B backend = {})
        : op_(std::move(op)), y_(std::move(y)), variance_(std::move(variance)), backend_(std::move(backend)) {
        static_assert(ObservationOperator<Op, B>,
                      "sda::GaussianObservation: Op must satisfy sda::ObservationOperator for this backend");
        const Shape ys = backend_.shape(y_), vs = backend_.shape(variance_);
        detail::require(!ys.empty(), "sda::GaussianObservation: y must have at least one axis");
        detail::require(backend_.all_finite(y_), "sda::GaussianObservation: y has a NaN or Inf entry");
        detail::require(backend_.all_finite(variance_) && backend_.min(variance_) > 0.0,
                        "sda::GaussianObservation: noise variance must be finite and positive everywhere "
                        "(smallest entry ",
                        backend_.min(variance_), ")");
        const bool matches = vs.empty() || vs == ys || (vs.size() + 1 == ys.size() && vs == event_shape_of(ys));
        detail::require(matches, "sda::GaussianObservation: noise variance of shape ", format_shape(vs),
                        " does not match y of shape ", format_shape(ys));
    }

    const Op& op() const { return op_; }
    const tensor_type& y() const { return y_; }
    const tensor_type& variance() const { return variance_; }
    const B& backend() const { return backend_; }

    /// Checks y against A's output for events of shape `event`; throws `sda::error`
    /// naming both shapes when they disagree. Returns the batch size y was given
    /// for (0 when one y is shared by the batch).
    std::size_t check_event(const Shape& event) const {
        const Shape expected = op_.output_shape(event);
        const Shape ys = backend_.shape(y_);
        if (ys == expected) return 0;
        detail::require(ys.size() == expected.size() + 1 && event_shape_of(ys) == expected,
                        "sda::GaussianObservation: y has shape ", format_shape(ys), " but the operator maps events ",
                        format_shape(event), " to observations ", format_shape(expected));
        return ys[0];
    }

    /// The observation with its operator bound to events of shape `event` (`sda::bind`): what
    /// guidance reads at every step. Checks y against the operator's output first.
    auto bind(const Shape& event) const {
        check_event(event);
        return BoundGaussianObservation<bound_operator_t<Op, B>, B>(sda::bind(op_, event, backend_), y_, variance_,
                                                                    backend_);
    }

private:
    Op op_;
    tensor_type y_;
    tensor_type variance_;
    B backend_;
};

/// A `GaussianObservation` whose operator is bound to an event shape (made by its `bind`).
template <class BoundOp, Backend B>
class BoundGaussianObservation {
public:
    using backend_type = B;
    using tensor_type = typename B::tensor_type;

    BoundGaussianObservation(BoundOp op, tensor_type y, tensor_type variance, B backend)
        : op_(std::move(op)), y_(std::move(y)), variance_(std::move(variance)), backend_(std::move(backend)) {}

    const BoundOp& op() const { return op_; }
    const tensor_type& y() const { return y_; }
    const tensor_type& variance() const { return variance_; }
    const B& backend() const { return backend_; }

private:
    BoundOp op_;
    tensor_type y_;
    tensor_type variance_;
    B backend_;
};

template <class Op, class T>
GaussianObservation(Op, Tensor<T>, double) -> GaussianObservation<Op, CpuBackend<T>>;
template <class Op, class T>
GaussianObservation(Op, Tensor<T>, Tensor<T>) -> GaussianObservation<Op, CpuBackend<T>>;

}  // namespace sda
