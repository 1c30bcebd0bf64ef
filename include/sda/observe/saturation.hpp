// sda/observe/saturation.hpp: `Saturation`, a nonlinear point-wise operator
// A(x) = s tanh(x / s), a sensor that clips smoothly at +-s (DESIGN.md section 3).
//
// Its Jacobian is diagonal, 1 - tanh(x / s)^2, so JVP and VJP are the same product.
#pragma once

#include <cmath>

#include <xtensor/xmath.hpp>

#include "sda/core/check.hpp"
#include "sda/core/tensor.hpp"
#include "sda/observe/concepts.hpp"

namespace sda::observe {

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

private:
    template <class T>
    Tensor<T> derivative(const Tensor<T>& x) const {
        const T s = static_cast<T>(scale_);
        return T(1) - xt::square(xt::tanh(x / s));
    }

    double scale_;
};

static_assert(ObservationOperator<Saturation, Tensor<double>>);

}  // namespace sda::observe
