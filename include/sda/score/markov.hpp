// sda/score/markov.hpp: `MarkovComposedScore<Model, K>`, the trajectory score
// assembled from a window score (Rozet & Louppe 2023, "How is your blanket?").
//
// For a first-order Markov chain, the score of state i given the whole noisy
// trajectory is close to its score within the window x_{i-K..i+K} (exact as
// t -> 0 for K >= 1). Given a model of windows of 2K+1 states, the composed
// model evaluates every stride-1 window of a trajectory of L >= 2K+1 states in
// one batched call and keeps, for state i, the output of the window centred on
// it; the first and last K states come from the first and last window. The
// windows and the centres are gathers (and their adjoints scatter-adds) over
// index lists built once, when the composition is constructed.
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

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
        // the positions of one trajectory's windows, and of each state's window output, built once
        const std::size_t state = element_count(inner) / window, windows = length - 2 * K;
        std::vector<std::size_t> unfold, centres;
        unfold.reserve(windows * window * state), centres.reserve(length * state);
        for (std::size_t w = 0; w < windows; ++w)
            for (std::size_t k = 0; k < window * state; ++k) unfold.push_back(w * state + k);
        for (std::size_t i = 0; i < length; ++i) {
            // state i comes from window w at position j: the first K from the first window, the
            // last K from the last, every other from the window centred on it
            const std::size_t w = i < K ? 0 : (i >= length - K ? windows - 1 : i - K), j = i - w;
            for (std::size_t s = 0; s < state; ++s) centres.push_back((w * window + j) * state + s);
        }
        const auto be = backend();
        unfold_ = be.index(std::move(unfold));
        centres_ = be.index(std::move(centres));
        windows_flat_ = {windows * element_count(inner)};
    }

    backend_type backend() const { return model_.backend(); }
    decltype(auto) schedule() const { return model_.schedule(); }
    const Shape& event_shape() const { return event_; }
    std::size_t length() const { return event_[0]; }
    const Model& window_model() const { return model_; }

    /// eps of a batch of trajectories [B, L, S...]: all B (L - 2K) windows in one call.
    tensor_type eps(const tensor_type& x, double t) const { return centres(model_.eps(windows(x), t)); }

    /// (d eps / d x)^T v: scatter v to the windows, pull back through the window
    /// model, and sum the overlapping windows.
    tensor_type vjp(const tensor_type& x, double t, const tensor_type& v) const
        requires ScoreModel<Model>
    {
        return windows_adjoint(model_.vjp(windows(x), t, centres_adjoint(v)));
    }

    /// Linearisation at (x, t): the windows are evaluated once, and each VJP
    /// reuses the window model's own linearisation.
    auto linearize(const tensor_type& x, double t) const
        requires ScoreModel<Model>
    {
        return Linearized(*this, x, t);
    }

    // --- the composition's four maps, each a gather or a scatter-add -------------------

    /// Every stride-1 window of the trajectories x [B, L, S...]: [B (L - 2K), 2K+1, S...].
    tensor_type windows(const tensor_type& x) const {
        const auto be = backend();
        const std::size_t batch = batch_of(x);
        return be.reshape(be.gather(x, unfold_, windows_flat_), batch_shape(batch * count(), model_.event_shape()));
    }
    /// The adjoint of `windows`: each window's entries added back to its states, [B, L, S...].
    tensor_type windows_adjoint(const tensor_type& g) const {
        const auto be = backend();
        return be.scatter_add(per_trajectory(g), unfold_, event_);
    }
    /// The trajectory of window outputs e [B (L - 2K), 2K+1, S...]: state i from the window
    /// centred on it, the first and last K from the first and last window; [B, L, S...].
    tensor_type centres(const tensor_type& e) const { return backend().gather(per_trajectory(e), centres_, event_); }
    /// The adjoint of `centres`: v [B, L, S...] placed in zero windows, [B (L - 2K), 2K+1, S...].
    tensor_type centres_adjoint(const tensor_type& v) const {
        const auto be = backend();
        const std::size_t batch = batch_of(v);
        return be.reshape(be.scatter_add(v, centres_, windows_flat_), batch_shape(batch * count(), model_.event_shape()));
    }

private:
    std::size_t count() const { return event_[0] - 2 * K; }
    std::size_t batch_of(const tensor_type& x) const {
        const Shape shape = backend().shape(x);
        detail::require(!shape.empty() && shape[0] >= 1, "sda::MarkovComposedScore: input of shape ",
                        format_shape(shape), " is not a batch");
        return shape[0];
    }
    /// Window tensors [B W, 2K+1, S...] viewed as [B, W (2K+1) S...], one row per trajectory.
    tensor_type per_trajectory(const tensor_type& w) const {
        const auto be = backend();
        const Shape shape = be.shape(w);
        detail::require(!shape.empty() && shape[0] % count() == 0, "sda::MarkovComposedScore: ", format_shape(shape),
                        " is not a batch of ", count(), " windows per trajectory");
        return be.reshape(w, {shape[0] / count(), windows_flat_[0]});
    }

    class Linearized {
    public:
        Linearized(const MarkovComposedScore& composed, const tensor_type& x, double t)
            : composed_(&composed), inner_(sda::linearize(composed.model_, composed.windows(x), t)),
              eps_(composed.centres(inner_.eps())) {}
        const tensor_type& eps() const { return eps_; }
        tensor_type vjp(const tensor_type& v) const {
            return composed_->windows_adjoint(inner_.vjp(composed_->centres_adjoint(v)));
        }

    private:
        const MarkovComposedScore* composed_;
        decltype(sda::linearize(std::declval<const Model&>(), std::declval<const tensor_type&>(), 0.0)) inner_;
        tensor_type eps_;
    };

    Model model_;
    Shape event_;
    typename backend_type::index_type unfold_, centres_;
    Shape windows_flat_;
};

/// Calls `f(std::integral_constant<std::size_t, K>{})` for the order K = `order` chosen at run
/// time, 1 <= order <= Kmax, and returns what it returns (the same type for every K): how a
/// program that reads K from its command line builds a `MarkovComposedScore<Model, K>`.
///   sda::dispatch_order<4>(k, [&](auto K) { sda::MarkovComposedScore<Net, K> prior(net, 65); ... });
/// Throws `sda::error` naming the range for any other order.
template <std::size_t Kmax, class F>
decltype(auto) dispatch_order(std::size_t order, F&& f) {
    static_assert(Kmax >= 1, "sda::dispatch_order: Kmax must be at least 1");
    detail::require(order >= 1 && order <= Kmax, "sda::dispatch_order: the Markov order K must lie in [1, ", Kmax,
                    "], got ", order);
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
        using Result = decltype(f(std::integral_constant<std::size_t, 1>{}));
        if constexpr (std::is_void_v<Result>) {
            ((order == I + 1 ? (f(std::integral_constant<std::size_t, I + 1>{}), true) : false) || ...);
        } else {
            std::optional<Result> result;
            ((order == I + 1 ? (result.emplace(f(std::integral_constant<std::size_t, I + 1>{})), true) : false) || ...);
            return Result(std::move(*result));
        }
    }(std::make_index_sequence<Kmax>{});
}

}  // namespace sda
