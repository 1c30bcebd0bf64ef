// sda/train/windows.hpp: `WindowDataset`, every window of 2K+1 consecutive
// states of a set of trajectories, cut on the fly (nothing is copied until a
// batch is asked for), shuffled per epoch with the explicit generator.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::train {

/// A uniformly shuffled copy of 0..n-1 (Fisher-Yates on 64-bit Philox draws;
/// the same generator state gives the same order on every platform).
inline std::vector<std::size_t> permutation(std::size_t n, Generator& gen) {
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    if (n < 2) return order;
    std::vector<double> u(n);
    fill_uniform(u.data(), 1, n, gen);
    for (std::size_t i = n - 1; i > 0; --i) {
        // u in (0, 1]: j uniform in [0, i]
        const auto j = std::min(i, static_cast<std::size_t>((1.0 - u[i]) * static_cast<double>(i + 1)));
        std::swap(order[i], order[j]);
    }
    return order;
}

template <class T>
class WindowDataset {
public:
    /// Windows of `window` states of `trajectories` ([N, L, S...]).
    WindowDataset(Tensor<T> trajectories, std::size_t window)
        : data_(std::make_shared<const Tensor<T>>(std::move(trajectories))), window_(window) {
        const Shape shape = shape_of(*data_);
        sda::detail::require(shape.size() >= 2 && shape[0] >= 1, "sda::train::WindowDataset: trajectories of shape ",
                        format_shape(shape), " are not [N, L, ...]");
        sda::detail::require(window >= 1 && window <= shape[1], "sda::train::WindowDataset: window ", window,
                        " does not fit trajectories of ", shape[1], " states");
        trajectories_ = shape[0], length_ = shape[1];
        state_ = data_->size() / (trajectories_ * length_);
        // NaN in the data turned every weight of a trained network into NaN, silently
        const std::size_t per = length_ * state_;
        for (std::size_t i = 0; i < data_->size(); ++i)
            sda::detail::require(std::isfinite(data_->data()[i]), "sda::train::WindowDataset: trajectory ", i / per,
                                 " has a non-finite value (", data_->data()[i], ") at state ", (i % per) / state_);
        per_trajectory_ = length_ - window_ + 1;
        event_ = shape;
        event_.erase(event_.begin());
        event_[0] = window_;
    }

    std::size_t size() const { return trajectories_ * per_trajectory_; }
    const Shape& event_shape() const { return event_; }
    const Tensor<T>& trajectories() const { return *data_; }

    /// The windows with these indices, [indices.size(), window, S...].
    Tensor<T> batch(std::span<const std::size_t> indices) const {
        Tensor<T> out = empty_tensor<T>(batch_shape(indices.size(), event_));
        const std::size_t stride = window_ * state_;
        for (std::size_t b = 0; b < indices.size(); ++b) {
            sda::detail::require(indices[b] < size(), "sda::train::WindowDataset: window ", indices[b], " of ", size());
            const std::size_t trajectory = indices[b] / per_trajectory_, start = indices[b] % per_trajectory_;
            std::memcpy(out.data() + b * stride, data_->data() + (trajectory * length_ + start) * state_, stride * sizeof(T));
        }
        return out;
    }

private:
    std::shared_ptr<const Tensor<T>> data_;
    std::size_t window_, trajectories_ = 0, length_ = 0, state_ = 0, per_trajectory_ = 0;
    Shape event_;
};

}  // namespace sda::train
