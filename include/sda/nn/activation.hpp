// sda/nn/activation.hpp: point-wise activations and their derivatives.
//
// SiLU x sigma(x) (Elfwing et al., 2018), ReLU, GELU x Phi(x) in its exact erf
// form (torch's default), ELU with alpha = 1. Chosen at run time (a
// checkpoint's configuration names it); each is one vectorised Eigen pass.
// A layer whose VJP will be asked keeps the slope f'(A) of its forward pass
// (`activate_with_slope`, one pass and one transcendental per entry), so its
// backward is a product dZ * f'(A).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <unsupported/Eigen/SpecialFunctions>  // erf, vectorised

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"

namespace sda::nn {

enum class Activation { silu, relu, gelu, elu };

inline std::string_view name_of(Activation a) {
    switch (a) {
        case Activation::silu: return "SiLU";
        case Activation::relu: return "ReLU";
        case Activation::gelu: return "GELU";
        case Activation::elu: return "ELU";
    }
    return "?";
}

inline Activation activation_from_name(std::string_view name) {
    for (Activation a : {Activation::silu, Activation::relu, Activation::gelu, Activation::elu})
        if (name_of(a) == name) return a;
    sda::detail::fail("sda::nn: unknown activation \"", std::string(name), "\" (expected SiLU, ReLU, GELU or ELU)");
}

/// JSON as the name (configurations, sda/nn/config.hpp); an unknown name throws `sda::error`.
inline void to_json(nlohmann::json& j, Activation a) { j = std::string(name_of(a)); }
inline void from_json(const nlohmann::json& j, Activation& a) { a = activation_from_name(j.get<std::string>()); }

/// Z = f(A), element-wise (Z may alias A).
template <class T>
void activate(Activation a, const Eigen::Ref<const RowMatrix<T>>& A, Eigen::Ref<RowMatrix<T>> Z) {
    const auto x = A.array();
    switch (a) {
        case Activation::silu: Z.array() = x * x.logistic(); break;
        case Activation::relu: Z.array() = x.max(T(0)); break;
        case Activation::gelu: Z.array() = T(0.5) * x * (T(1) + (x * T(M_SQRT1_2)).erf()); break;
        case Activation::elu: Z.array() = (x > T(0)).select(x, x.exp() - T(1)); break;
    }
}

/// Z = f(A) and S = f'(A), element-wise, in one pass over A that evaluates each
/// transcendental once. Neither Z nor S may alias A.
template <class T>
void activate_with_slope(Activation a, const Eigen::Ref<const RowMatrix<T>>& A, Eigen::Ref<RowMatrix<T>> Z,
                         Eigen::Ref<RowMatrix<T>> S) {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    const Eigen::Index cols = A.cols();
    // blocks of entries that stay in L1 between the passes: 1024 at a time where all three are
    // dense (narrow U-Net rows would otherwise cost a loop per row), else one row at a time
    const bool dense = A.outerStride() == cols && Z.outerStride() == cols && S.outerStride() == cols;
    const Eigen::Index block = dense ? 1024 : cols;
    Array s(block);
    auto run = [&](const T* a_at, T* z_at, T* s_at, Eigen::Index n) {
        const Eigen::Map<const Array> x(a_at, n);
        Eigen::Map<Array> z(z_at, n), slope(s_at, n);
        auto sig = s.head(n);
        switch (a) {
            case Activation::silu:  // d/dx x s(x) = s(x) (1 + x (1 - s(x)))
                sig = x.logistic();
                z = x * sig;
                slope = sig * (T(1) + x * (T(1) - sig));
                break;
            case Activation::relu:
                z = x.max(T(0));
                slope = (x > T(0)).template cast<T>();
                break;
            case Activation::gelu: {  // Phi(x) + x phi(x)
                const T inv_sqrt_2pi = T(0.3989422804014327);
                sig = T(0.5) * (T(1) + (x * T(M_SQRT1_2)).erf());
                z = x * sig;
                slope = sig + x * inv_sqrt_2pi * (T(-0.5) * x.square()).exp();
                break;
            }
            case Activation::elu:
                sig = x.exp();
                z = (x > T(0)).select(x, sig - T(1));
                slope = (x > T(0)).select(T(1), sig);
                break;
        }
    };
    if (dense) {
        for (Eigen::Index at = 0, size = A.size(); at < size; at += block)
            run(A.data() + at, Z.data() + at, S.data() + at, std::min(block, size - at));
    } else {
        for (Eigen::Index i = 0; i < A.rows(); ++i)
            run(A.data() + i * A.outerStride(), Z.data() + i * Z.outerStride(), S.data() + i * S.outerStride(), cols);
    }
}

/// dA = dZ * f'(A), element-wise (dA may alias dZ).
template <class T>
void activate_backward(Activation a, const Eigen::Ref<const RowMatrix<T>>& A, const Eigen::Ref<const RowMatrix<T>>& dZ,
                       Eigen::Ref<RowMatrix<T>> dA) {
    RowMatrix<T> z(A.rows(), A.cols()), slope(A.rows(), A.cols());
    activate_with_slope<T>(a, A, z, slope);
    dA.array() = dZ.array() * slope.array();
}

}  // namespace sda::nn
