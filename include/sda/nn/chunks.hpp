// sda/nn/chunks.hpp: how the networks split a batch over threads.
//
// A batch is cut into fixed chunks of rows, each processed by one oneTBB task
// with single-threaded Eigen kernels; per-chunk gradients are summed in chunk
// order. The chunking depends only on the batch size, never on the thread
// count, so results are identical on 1 or 64 cores.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Core>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "sda/core/memory.hpp"

namespace sda::nn::detail {

/// Runs body(begin, end) over fixed chunks of `chunk` rows of a batch, in parallel.
template <class Body>
void for_chunks(std::size_t batch, std::size_t chunk, Body&& body) {
    const std::size_t chunks = (batch + chunk - 1) / chunk;
    tbb::parallel_for(std::size_t{0}, chunks, [&](std::size_t c) { body(c * chunk, std::min(batch, (c + 1) * chunk)); });
}

/// sum <- (sum if `onto`, else 0) + parts[0] + parts[1] + ..., added in that order for each
/// entry (so, bit for bit, one process's chunk order), in one pass of parallel blocks:
/// element-wise work, whose result does not depend on the split.
template <class T>
void add_in_order(std::span<T> sum, std::span<const AlignedVector<T>> parts, bool onto) {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, sum.size(), std::size_t(1) << 15), [&](const auto& r) {
        const auto n = static_cast<Eigen::Index>(r.size());
        Eigen::Map<Array> s(sum.data() + r.begin(), n);
        std::size_t k = 0;
        if (!onto) {
            if (parts.empty()) {
                s.setZero();
                return;
            }
            s = Eigen::Map<const Array>(parts[0].data() + r.begin(), n);
            k = 1;
        }
        for (; k < parts.size(); ++k) s += Eigen::Map<const Array>(parts[k].data() + r.begin(), n);
    });
}

/// Runs body(c, begin, end, gradient, loss) per chunk in parallel, where chunk 0
/// accumulates into `grad` itself and chunk c > 0 into a zeroed buffer, then
/// adds the buffers to `grad` in chunk order; returns the sum of the chunks'
/// `loss` values (in chunk order).
template <class T, class Body>
double accumulate_chunks(std::size_t batch, std::size_t chunk, std::span<T> grad, Body&& body) {
    const std::size_t chunks = (batch + chunk - 1) / chunk;
    std::vector<AlignedVector<T>> partial(chunks > 0 ? chunks - 1 : 0);
    std::vector<double> losses(chunks, 0.0);
    tbb::parallel_for(std::size_t{0}, chunks, [&](std::size_t c) {
        T* g = grad.data();
        if (c > 0) {
            partial[c - 1].assign(grad.size(), T(0));
            g = partial[c - 1].data();
        }
        body(c * chunk, std::min(batch, (c + 1) * chunk), g, losses[c]);
    });
    if (!partial.empty()) add_in_order<T>(grad, partial, /*onto=*/true);
    double total = 0.0;
    for (double l : losses) total += l;
    return total;
}

}  // namespace sda::nn::detail
