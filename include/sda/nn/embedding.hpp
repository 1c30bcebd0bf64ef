// sda/nn/embedding.hpp: the time embedding of the score network, as in the
// paper's code: sinusoidal features [cos(pi k t), sin(pi k t)], k = 1..F, then
// Linear(2F, hidden), SiLU, Linear(hidden, features).
//
// Parameter names follow the PyTorch module ("<name>.0.*", "<name>.2.*"); the
// frequency buffer "<name>.freqs" is written to checkpoints for strict loading
// in PyTorch but is not trained.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>
#include <string>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/nn/activation.hpp"
#include "sda/nn/linear.hpp"
#include "sda/nn/parameters.hpp"

namespace sda::nn {

template <class T>
struct TimeEmbedding {
    using Ref = Eigen::Ref<RowMatrix<T>>;

    std::size_t frequencies = 16, hidden = 256, features = 32;
    Linear<T> first, second;

    /// What backward needs of a forward pass.
    struct Cache {
        RowMatrix<T> sinusoids, pre;  // [n, 2F], [n, hidden]
    };

    TimeEmbedding() = default;
    TimeEmbedding(ParameterSet<T>& params, const std::string& name, std::size_t frequencies_, std::size_t hidden_,
                  std::size_t features_)
        : frequencies(frequencies_), hidden(hidden_), features(features_),
          first(params, name + ".0", 2 * frequencies_, hidden_), second(params, name + ".2", hidden_, features_) {}

    void initialise(ParameterSet<T>& params, const std::string& name, Generator& gen) const {
        first.initialise(params, name + ".0", gen);
        second.initialise(params, name + ".2", gen);
    }

    /// The buffer of the PyTorch module: pi k, k = 1..F.
    std::vector<T> freqs() const {
        std::vector<T> out(frequencies);
        for (std::size_t k = 0; k < frequencies; ++k) out[k] = static_cast<T>(std::numbers::pi * double(k + 1));
        return out;
    }

    /// E = embedding(t) for each t, rows of E ([n, features]); `cache` may be null.
    void forward(const T* p, std::span<const double> t, Ref E, Cache* cache = nullptr) const {
        const auto n = static_cast<Eigen::Index>(t.size()), f = static_cast<Eigen::Index>(frequencies);
        RowMatrix<T> sinusoids(n, 2 * f);
        for (Eigen::Index i = 0; i < n; ++i)
            for (Eigen::Index k = 0; k < f; ++k) {
                const double angle = std::numbers::pi * double(k + 1) * t[static_cast<std::size_t>(i)];
                sinusoids(i, k) = static_cast<T>(std::cos(angle));
                sinusoids(i, f + k) = static_cast<T>(std::sin(angle));
            }
        RowMatrix<T> pre(n, static_cast<Eigen::Index>(hidden));
        first.forward(p, sinusoids, pre);
        RowMatrix<T> act(pre.rows(), pre.cols());
        activate<T>(Activation::silu, pre, act);
        second.forward(p, act, E);
        if (cache) cache->sinusoids = std::move(sinusoids), cache->pre = std::move(pre);
    }

    /// Accumulates the parameter gradients for the cotangent dE of the embeddings.
    void backward(const T* p, const Cache& cache, const Eigen::Ref<const RowMatrix<T>>& dE, T* g) const {
        RowMatrix<T> act(cache.pre.rows(), cache.pre.cols()), slope(act.rows(), act.cols());
        activate_with_slope<T>(Activation::silu, cache.pre, act, slope);  // one logistic for both
        second.backward_params(act, dE, g);
        RowMatrix<T> d_act(act.rows(), act.cols());
        second.backward_input(p, dE, d_act);
        d_act.array() *= slope.array();
        first.backward_params(cache.sinusoids, d_act, g);
    }
};

}  // namespace sda::nn
