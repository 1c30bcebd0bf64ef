// sda/observe/compose.hpp: composition of observation operators, (A2 o A1)(x).
//
// Chain rule: JVP = J2(A1 x) J1(x) dx, VJP = J1(x)^T J2(A1 x)^T v. Binding binds
// each operator to the events it sees.
#pragma once

#include <utility>

#include "sda/backend/concepts.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda::observe {

/// Applies `inner` first, then `outer`.
template <class Outer, class Inner>
class Compose {
public:
    Compose(Outer outer, Inner inner) : outer_(std::move(outer)), inner_(std::move(inner)) {}

    Shape output_shape(const Shape& event) const { return outer_.output_shape(inner_.output_shape(event)); }

    /// Each operator bound to the events it sees: `inner` to `event`, `outer` to inner's output.
    template <Backend B>
    auto bind(const Shape& event, const B& backend) const {
        auto inner = sda::bind(inner_, event, backend);
        auto outer = sda::bind(outer_, inner_.output_shape(event), backend);
        return Compose<decltype(outer), decltype(inner)>(std::move(outer), std::move(inner));
    }

    template <class X>
    X apply(const X& x) const { return outer_.apply(inner_.apply(x)); }
    template <class X>
    X vjp(const X& x, const X& v) const { return inner_.vjp(x, outer_.vjp(inner_.apply(x), v)); }
    template <class X>
    X jvp(const X& x, const X& dx) const { return outer_.jvp(inner_.apply(x), inner_.jvp(x, dx)); }

    const Outer& outer() const { return outer_; }
    const Inner& inner() const { return inner_; }

private:
    Outer outer_;
    Inner inner_;
};

/// `compose(outer, inner)`: the operator x -> outer(inner(x)).
template <class Outer, class Inner>
Compose<Outer, Inner> compose(Outer outer, Inner inner) {
    return {std::move(outer), std::move(inner)};
}

}  // namespace sda::observe
