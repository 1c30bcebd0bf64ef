// sda/score/markov.hpp: `MarkovComposedScore<Model, K>`, the trajectory score
// assembled from a window score (Rozet & Louppe 2023, "How is your blanket?").
//
// For a first-order Markov chain, the score of state i given the whole noisy
// trajectory is close to its score within the window x_{i-K..i+K} (exact as
// t -> 0 for K >= 1). Given a model of windows of 2K+1 states, the composed
// model evaluates every stride-1 window of a trajectory of L >= 2K+1 states in
// one batched call and keeps, for state i, the output of the window centred on
// it; the first and last K states come from the first and last window.
#pragma once

#include <cstddef>
#include <utility>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

template <class Model, std::size_t K>
class MarkovComposedScore {
    static_assert(EpsModel<Model>, "sda::MarkovComposedScore: the window model must satisfy sda::EpsModel");

public:
    using backend_type = backend_t<Model>;
    using tensor_type = tensor_t<Model>;
    using schedule_type = schedule_t<Model>;
    static constexpr std::size_t order = K;
    static constexpr std::size_t window = 2 * K + 1;

    /// A model of trajectories of `length` states from `window_model`, whose
    /// event is a window `[2K+1, S...]` of states of shape S.
    MarkovComposedScore(Model window_model, std::size_t length) : model_(std::move(window_model)) {
        const Shape inner = model_.event_shape();
        detail::require(!inner.empty() && inner[0] == window, "sda::MarkovComposedScore<K = ", K,
                        ">: the window model's event shape ", format_shape(inner), " does not start with 2K+1 = ",
                        window, " states");
        detail::require(length >= window, "sda::MarkovComposedScore: trajectory length L = ", length,
                        " is below the window 2K+1 = ", window, " (K = ", K, ")");
        event_ = inner;
        event_[0] = length;
    }

    backend_type backend() const { return model_.backend(); }
    decltype(auto) schedule() const { return model_.schedule(); }
    const Shape& event_shape() const { return event_; }
    std::size_t length() const { return event_[0]; }
    const Model& window_model() const { return model_; }

    /// eps of a batch of trajectories [B, L, S...]: all B (L - 2K) windows in one call.
    tensor_type eps(const tensor_type& x, double t) const {
        const auto be = backend();
        return be.pick_centres(model_.eps(be.unfold(x, window), t), K, batch_of(x));
    }

    /// (d eps / d x)^T v: scatter v to the windows, pull back through the window
    /// model, and sum the overlapping windows.
    tensor_type vjp(const tensor_type& x, double t, const tensor_type& v) const
        requires ScoreModel<Model>
    {
        const auto be = backend();
        return be.unfold_adjoint(model_.vjp(be.unfold(x, window), t, be.pick_centres_adjoint(v, K)), batch_of(x));
    }

    /// Linearisation at (x, t): the windows are evaluated once, and each VJP
    /// reuses the window model's own linearisation.
    auto linearize(const tensor_type& x, double t) const
        requires ScoreModel<Model>
    {
        return Linearized(*this, x, t);
    }

private:
    std::size_t batch_of(const tensor_type& x) const { return backend().shape(x).at(0); }

    class Linearized {
    public:
        Linearized(const MarkovComposedScore& composed, const tensor_type& x, double t)
            : backend_(composed.backend()), batch_(composed.batch_of(x)),
              inner_(sda::linearize(composed.model_, backend_.unfold(x, window), t)),
              eps_(backend_.pick_centres(inner_.eps(), K, batch_)) {}
        const tensor_type& eps() const { return eps_; }
        tensor_type vjp(const tensor_type& v) const {
            return backend_.unfold_adjoint(inner_.vjp(backend_.pick_centres_adjoint(v, K)), batch_);
        }

    private:
        backend_type backend_;
        std::size_t batch_;
        decltype(sda::linearize(std::declval<const Model&>(), std::declval<const tensor_type&>(), 0.0)) inner_;
        tensor_type eps_;
    };

    Model model_;
    Shape event_;
};

}  // namespace sda
