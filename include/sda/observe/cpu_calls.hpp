// sda/observe/cpu_calls.hpp: `apply`, `vjp` and `jvp` on CPU tensors for operators that
// are used bound (`sda::bind`), so that they can also be called directly: each call binds
// the operator to the input's event shape on `CpuBackend` (validating and building what
// binding builds), which suits code outside a sampling loop (observing a truth, metrics).
#pragma once

#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/core/tensor.hpp"

namespace sda::observe::detail {

/// Derived has `bind(event, backend)`; this adds the direct calls.
template <class Derived>
class CpuCalls {
public:
    template <class T>
    Tensor<T> apply(const Tensor<T>& x) const {
        return bound(x).apply(x);
    }
    template <class T>
    Tensor<T> vjp(const Tensor<T>& x, const Tensor<T>& v) const {
        return bound(x).vjp(x, v);
    }
    template <class T>
    Tensor<T> jvp(const Tensor<T>& x, const Tensor<T>& dx) const {
        return bound(x).jvp(x, dx);
    }

private:
    template <class T>
    auto bound(const Tensor<T>& x) const {
        sda::detail::require(x.dimension() >= 2 && x.shape()[0] >= 1, "sda::observe: input of shape ",
                             format_shape(shape_of(x)), " is not a batch [B, event...]");
        return static_cast<const Derived&>(*this).bind(event_shape_of(shape_of(x)), CpuBackend<T>{});
    }
};

}  // namespace sda::observe::detail
