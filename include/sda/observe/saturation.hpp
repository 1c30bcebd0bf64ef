// sda/observe/saturation.hpp: `Saturation`, a nonlinear point-wise operator
// A(x) = s tanh(x / s), a sensor that clips smoothly at +-s (the nonlinear scenario of docs/kolmogorov.md).
//
// Its Jacobian is diagonal, 1 - tanh(x / s)^2, so JVP and VJP are the same product.
// Element-wise, so it needs no binding and runs on xtensor and torch tensors alike.
#pragma once

#include <cmath>

#include <xtensor/xmath.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/core/check.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda::observe {

template <class X>
inline constexpr bool is_xtensor = xt::is_xexpression<X>::value;

class Saturation {
public:
    explicit Saturation(double scale = 1.0) : scale_(scale) {
        sda::detail::check_positive(scale, "sda::observe::Saturation: scale");
    }

    Shape output_shape(const Shape& event) const { return event; }
    template <class T>
    Tensor<T> apply(const Tensor<T>& x) const {
        const T s = static_cast<T>(scale_);
        return s * xt::tanh(x / s);
    }
    template <class T>
    Tensor<T> vjp(const Tensor<T>& x, const Tensor<T>& v) const {
        return derivative(x) * v;
    }
    template <class T>
    Tensor<T> jvp(const Tensor<T>& x, const Tensor<T>& dx) const {
        return derivative(x) * dx;
    }

    /// The same on another library's tensors (torch::Tensor): `tanh` is found next to the type.
    template <class X>
        requires(!is_xtensor<X>)
    X apply(const X& x) const {
        return tanh(x / scale_) * scale_;
    }
    template <class X>
        requires(!is_xtensor<X>)
    X vjp(const X& x, const X& v) const {
        return derivative(x) * v;
    }
    template <class X>
        requires(!is_xtensor<X>)
    X jvp(const X& x, const X& dx) const {
        return derivative(x) * dx;
    }

private:
    template <class T>
    Tensor<T> derivative(const Tensor<T>& x) const {
        const T s = static_cast<T>(scale_);
        return T(1) - xt::square(xt::tanh(x / s));
    }
    template <class X>
        requires(!is_xtensor<X>)
    X derivative(const X& x) const {
        const X h = tanh(x / scale_);
        return 1.0 - h * h;
    }

    double scale_;
};

static_assert(ObservationOperator<Saturation, CpuBackend<double>>);

}  // namespace sda::observe
