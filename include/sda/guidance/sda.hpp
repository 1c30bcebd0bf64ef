// sda/guidance/sda.hpp: the likelihood score of score-based data assimilation,
// and its detached variant (Rozet & Louppe 2023, "Stable likelihood score").
//
//   log p(y | x(t)) ~= -1/2 sum (y - A(x_hat))^2 / (Sigma_y + gamma (sigma / mu)^2),
// the extra gamma (sigma/mu)^2 accounting for the spread of x given x(t). Its
// gradient flows through x_hat = (x - sigma eps) / mu, hence through the model
// (an input VJP). The detached variant treats d x_hat / d x(t) as I / mu: one
// network evaluation per step instead of a forward and a backward pass.
#pragma once

#include "sda/core/check.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/guidance/tweedie.hpp"
#include "sda/observe/concepts.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

template <bool Detached>
struct SDAGuidance {
    double gamma = 1e-2;  ///< weight of the (sigma / mu)^2 variance inflation; the paper uses 3e-2 on Lorenz-63

    void validate() const { detail::check_non_negative(gamma, "sda::SDAGuidance: gamma"); }

    template <EpsModel M, class O>
        requires(Detached || ScoreModel<M>)
    tensor_t<M> eps(const M& model, const O& obs, const tensor_t<M>& x, double t) const {
        const auto be = model.backend();
        const double mu = model.schedule().mu(t), sigma = model.schedule().sigma(t);
        auto step = [&](const tensor_t<M>& eps, auto&& pull_back) {
            const tensor_t<M> x_hat = detail::denoise(be, x, eps, mu, sigma);
            const tensor_t<M> residual = be.sub(obs.y(), obs.op().apply(x_hat));
            const tensor_t<M> variance = be.add_scalar(obs.variance(), gamma * (sigma / mu) * (sigma / mu));
            // gradient of log p(y | x_hat) with respect to x_hat, then to x(t)
            const tensor_t<M> grad = pull_back(obs.op().vjp(x_hat, be.div(residual, variance)));
            return be.axpby(1.0, eps, -sigma, grad);
        };
        if constexpr (Detached) {
            return step(model.eps(x, t), [&](const tensor_t<M>& g) { return be.scale(1.0 / mu, g); });
        } else {
            const auto lin = linearize(model, x, t);
            return step(lin.eps(), [&](const tensor_t<M>& g) { return detail::denoise_vjp(be, lin, g, mu, sigma); });
        }
    }
};

/// SDA likelihood score through the model's input VJP ("SDA-gamma").
using SDA = SDAGuidance<false>;
/// SDA likelihood score with d x_hat / d x(t) taken as I / mu.
using DetachedSDA = SDAGuidance<true>;

}  // namespace sda
