// sda/observe/gather.hpp: selection operators, A x = x[indices]: `Select`
// (states x coordinates), `Mask` (a boolean mask over the event) and
// `Subsample` (every stride-th state).
//
// A selection is linear, so its JVP is itself and its VJP scatters v back into
// zeros shaped like x (adding where an index repeats): the backend's gather and
// scatter_add over an index list that `bind` validates and builds once.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "sda/backend/concepts.hpp"
#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"
#include "sda/observe/cpu_calls.hpp"

namespace sda::observe {

namespace detail {

/// Flat indices into an event, with the observation shape they form.
struct Selection {
    std::vector<std::size_t> indices;
    Shape shape;
};

/// A selection bound to an event shape on a backend: the index list built once.
template <Backend B>
class BoundGather {
public:
    using tensor_type = typename B::tensor_type;

    BoundGather(B backend, Selection selection, Shape event)
        : backend_(std::move(backend)), index_(backend_.index(std::move(selection.indices))),
          shape_(std::move(selection.shape)), event_(std::move(event)) {}

    tensor_type apply(const tensor_type& x) const { return backend_.gather(x, index_, shape_); }
    tensor_type vjp(const tensor_type& x, const tensor_type& v) const {
        const Shape vs = backend_.shape(v), expected = batch_shape(backend_.shape(x).at(0), shape_);
        sda::detail::require(vs == expected, "sda::observe: cotangent of shape ", format_shape(vs),
                             " does not match the observation ", format_shape(expected));
        return backend_.scatter_add(v, index_, event_);
    }
    tensor_type jvp(const tensor_type&, const tensor_type& dx) const { return apply(dx); }

private:
    B backend_;
    typename B::index_type index_;
    Shape shape_, event_;
};

/// Selection operators differ only in `Derived::select(event)`, which returns
/// the flat indices of the observed entries and the observation shape, and
/// throws when the event does not fit. `bind` computes it once; `apply`, `vjp`
/// and `jvp` on CPU tensors bind at every call (for use outside sampling loops).
template <class Derived>
class Gather : public CpuCalls<Derived> {
public:
    Shape output_shape(const Shape& event) const { return self().select(event).shape; }

    template <Backend B>
    BoundGather<B> bind(const Shape& event, const B& backend) const {
        return {backend, self().select(event), event};
    }

private:
    const Derived& self() const { return static_cast<const Derived&>(*this); }
};

}  // namespace detail

/// Observes chosen states (axis 0 of the event) and, within each, chosen
/// coordinates of the flattened state: [B, L, S...] -> [B, |states|, |coords|].
/// An empty list selects everything along that axis.
class Select : public detail::Gather<Select> {
public:
    Select(std::vector<std::size_t> states, std::vector<std::size_t> coords)
        : states_(std::move(states)), coords_(std::move(coords)) {}

    detail::Selection select(const Shape& event) const {
        sda::detail::require(!event.empty(), "sda::observe::Select: the event must have a state axis");
        const std::size_t length = event[0], features = element_count(event) / std::max<std::size_t>(length, 1);
        for (std::size_t s : states_)
            sda::detail::require(s < length, "sda::observe::Select: state index ", s, " is out of range for ",
                                 length, " states");
        for (std::size_t c : coords_)
            sda::detail::require(c < features, "sda::observe::Select: coordinate index ", c,
                                 " is out of range for states of ", features, " entries");
        const std::size_t ns = states_.empty() ? length : states_.size();
        const std::size_t nc = coords_.empty() ? features : coords_.size();
        detail::Selection out{{}, {ns, nc}};
        out.indices.reserve(ns * nc);
        for (std::size_t i = 0; i < ns; ++i)
            for (std::size_t j = 0; j < nc; ++j)
                out.indices.push_back((states_.empty() ? i : states_[i]) * features +
                                      (coords_.empty() ? j : coords_[j]));
        return out;
    }

private:
    std::vector<std::size_t> states_, coords_;
};

/// Observes the entries where `mask` is true: [B, event...] -> [B, count], in
/// row-major order. The mask has the event's shape.
class Mask : public detail::Gather<Mask> {
public:
    explicit Mask(const xt::xarray<bool>& mask) : event_(shape_of(mask)) {
        for (std::size_t i = 0; i < mask.size(); ++i)
            if (mask.data()[i]) indices_.push_back(i);
        sda::detail::require(!indices_.empty(), "sda::observe::Mask: the mask selects no entry");
    }

    detail::Selection select(const Shape& event) const {
        sda::detail::require(event == event_, "sda::observe::Mask: mask of shape ", format_shape(event_),
                             " applied to events of shape ", format_shape(event));
        return {indices_, {indices_.size()}};
    }

private:
    Shape event_;
    std::vector<std::size_t> indices_;
};

/// Observes every `stride`-th state from `offset`: [B, L, S...] -> [B, ceil((L - offset) / stride), S...].
class Subsample : public detail::Gather<Subsample> {
public:
    explicit Subsample(std::size_t stride, std::size_t offset = 0) : stride_(stride), offset_(offset) {
        sda::detail::require(stride >= 1, "sda::observe::Subsample: stride must be >= 1, got ", stride);
    }

    detail::Selection select(const Shape& event) const {
        sda::detail::require(!event.empty() && offset_ < event[0], "sda::observe::Subsample: offset ", offset_,
                             " is out of range for events of shape ", format_shape(event));
        const std::size_t length = event[0], state = element_count(event) / length;
        const std::size_t kept = (length - offset_ + stride_ - 1) / stride_;
        detail::Selection out{{}, event};
        out.shape[0] = kept;
        out.indices.reserve(kept * state);
        for (std::size_t i = 0; i < kept; ++i)
            for (std::size_t j = 0; j < state; ++j) out.indices.push_back((offset_ + i * stride_) * state + j);
        return out;
    }

private:
    std::size_t stride_, offset_;
};

static_assert(ObservationOperator<Select, CpuBackend<double>>);
static_assert(ObservationOperator<Mask, CpuBackend<float>>);
static_assert(ObservationOperator<Subsample, CpuBackend<double>>);

}  // namespace sda::observe
