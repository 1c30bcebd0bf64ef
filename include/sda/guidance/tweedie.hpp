// sda/guidance/tweedie.hpp: the denoised estimate shared by every guidance.
//
// Tweedie's formula: x_hat = E[x | x(t)] = (x(t) - sigma eps) / mu, and its
// input VJP (d x_hat / d x(t))^T g = (g - sigma (d eps / d x)^T g) / mu.
#pragma once

#include "sda/score/concepts.hpp"

namespace sda::detail {

/// x_hat = (x - sigma eps) / mu
template <Backend B>
typename B::tensor_type denoise(const B& be, const typename B::tensor_type& x, const typename B::tensor_type& eps,
                                double mu, double sigma) {
    return be.axpby(1.0 / mu, x, -sigma / mu, eps);
}

/// (d x_hat / d x)^T g = (g - sigma J^T g) / mu, J the input Jacobian of eps at the linearisation point.
template <Backend B, class Lin>
typename B::tensor_type denoise_vjp(const B& be, const Lin& lin, const typename B::tensor_type& g, double mu,
                                    double sigma) {
    return be.axpby(1.0 / mu, g, -sigma / mu, lin.vjp(g));
}

}  // namespace sda::detail
