// tests/support/fd.hpp: finite-difference checks of vector-Jacobian products.
//
// For f: [B, n...] -> [B, m...] and a cotangent v, the VJP g = (df/dx)^T v is
// the gradient of phi(x) = <v, f(x)>. Each entry of g is compared with the
// central difference (phi(x + h e_j) - phi(x - h e_j)) / 2h, in double precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>

#include "sda/core/tensor.hpp"

namespace sda::test {

/// Central-difference gradient of a scalar function of a tensor.
template <class F>
Tensor<double> gradient_fd(F&& phi, const Tensor<double>& x, double h = 1e-5) {
    Tensor<double> grad = empty_tensor<double>(shape_of(x));
    Tensor<double> point = x;
    for (std::size_t j = 0; j < x.size(); ++j) {
        const double keep = point.data()[j];
        point.data()[j] = keep + h;
        const double up = phi(point);
        point.data()[j] = keep - h;
        const double down = phi(point);
        point.data()[j] = keep;
        grad.data()[j] = (up - down) / (2.0 * h);
    }
    return grad;
}

/// max |a - b| / max(max |b|, floor)
inline double relative_max_error(const Tensor<double>& a, const Tensor<double>& b, double floor = 1e-300) {
    double worst = 0.0, scale = floor;
    for (std::size_t j = 0; j < a.size(); ++j) {
        worst = std::max(worst, std::abs(a.data()[j] - b.data()[j]));
        scale = std::max(scale, std::abs(b.data()[j]));
    }
    return worst / scale;
}

/// max_j |g_j - fd_j| / max(max_j |fd_j|, 1e-12): the relative error of a VJP g
/// against the central-difference gradient of phi(x) = <v, f(x)>.
template <class F>
double vjp_error(F&& f, const Tensor<double>& x, const Tensor<double>& v, const Tensor<double>& g,
                 double h = 1e-5) {
    const Tensor<double> fd = gradient_fd(
        [&](const Tensor<double>& point) {
            const Tensor<double> y = f(point);
            return std::inner_product(y.begin(), y.end(), v.begin(), 0.0);
        },
        x, h);
    return relative_max_error(g, fd, 1e-12);
}

}  // namespace sda::test
