// sda/nn/unet.hpp: the U-Net of the paper's code (Rozet & Louppe 2023,
// sda/nn.py), on channels-last feature maps (see sda/nn/conv.hpp).
//
// Levels l = 0..L-1 with channels c_l on grids halved at each level. Down:
// head_l (a convolution, stride 2 for l > 0), then blocks; up, from the
// deepest level: blocks, then tail_l = LayerNorm, nearest upsampling and a
// convolution to c_{l-1}, plus the skip connection (the output of level l-1
// on the way down); tail_0 is a convolution to the output channels. Every
// block is a modulated residual block,
//   x + conv(act(conv(LayerNorm(x + Linear(m)))))
// with m the modulation (the time embedding) shifting each channel and the
// LayerNorm over the channels of each pixel (N - 1 variance, as zuko's).
// Parameters are named as in the PyTorch module ("heads.0.weight",
// "descent.1.0.project.0.weight", "ascent.0.2.residue.3.bias", ...).
// Passes that will not ask for parameter gradients (sampling: eps, its VJP)
// run the convolutions with `ConvAlgorithm::fastest` (in oneDNN: Winograd's
// for the 3 x 3 ones, weights transformed once); training passes with the
// direct algorithm, as the weights change at every step.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"
#include "sda/nn/activation.hpp"
#include "sda/nn/conv.hpp"
#include "sda/nn/layer_norm.hpp"
#include "sda/nn/linear.hpp"
#include "sda/nn/parameters.hpp"

namespace sda::nn {

template <class T>
class UNet {
public:
    using ConstRef = Eigen::Ref<const RowMatrix<T>>;
    using Ref = Eigen::Ref<RowMatrix<T>>;

    struct Block {
        Linear<T> project;     ///< modulation -> per-channel shift
        Conv<T> first, second;
        std::string name;
    };
    struct Level {
        std::size_t channels = 0;
        Grid grid;
        Conv<T> head, tail;  ///< tail: to the output (level 0) or to c_{l-1} after upsampling
        std::vector<Block> down, up;
        std::string head_name, tail_name;
    };

    /// What backward needs of a forward pass.
    struct Cache {
        struct BlockEntry {
            RowMatrix<T> normed, slope;  // LayerNorm output, the activation's derivative f'(pre)
            RowMatrix<T> act;            // the activation, when parameter gradients will be asked for
            AlignedVector<T> rstd;
        };
        struct LevelEntry {
            RowMatrix<T> head_input;   // level 0: only when parameter gradients will be asked for
            RowMatrix<T> tail_input;   // level 0: input of the last convolution; else the tail's LayerNorm output
            AlignedVector<T> tail_rstd;
            std::vector<BlockEntry> down, up;
        };
        std::vector<LevelEntry> levels;
    };

    UNet() = default;
    /// A U-Net on `grid` (height 1 for spatial = 1) from `in` to `out` channels,
    /// modulated by `modulation` features, with `channels[l]` channels and
    /// `blocks[l]` residual blocks (each way) at level l.
    UNet(ParameterSet<T>& params, const std::string& name, std::size_t spatial, Grid grid, std::size_t in, std::size_t out,
         std::size_t modulation, const std::vector<std::size_t>& channels, const std::vector<std::size_t>& blocks,
         std::size_t kernel, Padding padding, Activation activation, LayerNorm<T> norm)
        : spatial_(spatial), grid_(grid), in_(in), out_(out), modulation_(modulation), activation_(activation), norm_(norm) {
        const std::size_t L = channels.size();
        sda::detail::require(L >= 1 && blocks.size() == L, "sda::nn::UNet: ", L, " levels of channels but ", blocks.size(),
                             " of blocks");
        for (std::size_t c : channels)
            sda::detail::require(c >= 2, "sda::nn::UNet: every level needs at least 2 channels (LayerNorm over channels)");
        const std::size_t divisor = std::size_t(1) << (L - 1);
        sda::detail::require(grid.width % divisor == 0 && (spatial == 1 || grid.height % divisor == 0),
                             "sda::nn::UNet: a grid of ", grid.height, " x ", grid.width, " cannot be halved ", L - 1,
                             " times (", L, " levels)");
        Grid g = grid;
        for (std::size_t l = 0; l < L; ++l) {
            Level level;
            level.channels = channels[l];
            if (l > 0) g = {spatial == 2 ? g.height / 2 : 1, g.width / 2};
            level.grid = g;
            const std::string top = std::to_string(L - 1 - l);  // ascent and tails are listed from the deepest level
            level.head_name = name + ".heads." + std::to_string(l) + (l > 0 ? ".0" : "");
            level.head = Conv<T>(params, level.head_name, spatial, l > 0 ? channels[l - 1] : in, channels[l], kernel,
                                 l > 0 ? 2 : 1, padding);
            const auto make_block = [&](const std::string& block_name) {
                Block block;
                block.name = block_name;
                block.project = Linear<T>(params, block_name + ".project.0", modulation, channels[l]);
                block.first = Conv<T>(params, block_name + ".residue.1", spatial, channels[l], channels[l], kernel, 1, padding);
                block.second = Conv<T>(params, block_name + ".residue.3", spatial, channels[l], channels[l], kernel, 1, padding);
                return block;
            };
            for (std::size_t b = 0; b < blocks[l]; ++b)
                level.down.push_back(make_block(name + ".descent." + std::to_string(l) + "." + std::to_string(b)));
            for (std::size_t b = 0; b < blocks[l]; ++b)
                level.up.push_back(make_block(name + ".ascent." + top + "." + std::to_string(b)));
            level.tail_name = name + ".tails." + top + (l > 0 ? ".2" : "");
            level.tail = Conv<T>(params, level.tail_name, spatial, channels[l], l > 0 ? channels[l - 1] : out, kernel, 1, padding);
            levels_.push_back(std::move(level));
        }
    }

    void initialise(ParameterSet<T>& params, Generator& gen) const {
        for (const Level& level : levels_) {
            level.head.initialise(params, level.head_name, gen);
            for (const auto* blocks : {&level.down, &level.up})
                for (const Block& block : *blocks) {
                    block.project.initialise(params, block.name + ".project.0", gen);
                    block.first.initialise(params, block.name + ".residue.1", gen);
                    block.second.initialise(params, block.name + ".residue.3", gen);
                }
            level.tail.initialise(params, level.tail_name, gen);
        }
    }

    std::size_t spatial() const { return spatial_; }
    Grid grid() const { return grid_; }
    std::size_t in() const { return in_; }
    std::size_t out() const { return out_; }
    std::size_t modulation() const { return modulation_; }
    const std::vector<Level>& levels() const { return levels_; }

    /// FLOPs of the convolutions and projections of one sample's forward pass.
    double forward_flops() const {
        double flops = 0;
        for (std::size_t l = 0; l < levels_.size(); ++l) {
            const Level& level = levels_[l];
            flops += level.head.flops(1, l > 0 ? levels_[l - 1].grid : grid_);
            for (const auto* blocks : {&level.down, &level.up})
                for (const Block& block : *blocks)
                    flops += block.first.flops(1, level.grid) + block.second.flops(1, level.grid) +
                             2.0 * double(modulation_ * level.channels);
            flops += level.tail.flops(1, l > 0 ? levels_[l - 1].grid : grid_);
        }
        return flops;
    }

    /// Y = UNet(X, M) for X [n * pixels, in], M [n or 1, modulation] (one row is shared
    /// by all samples), Y [n * pixels, out]. With a cache, keeps what backward needs;
    /// `keep_input` also keeps X, for parameter gradients.
    void forward(const T* p, const ConstRef& X, std::size_t n, const ConstRef& M, Ref Y, Cache* cache = nullptr,
                 bool keep_input = false) const {
        sda::detail::require(X.rows() == static_cast<Eigen::Index>(n * grid_.pixels()) &&
                                 X.cols() == static_cast<Eigen::Index>(in_) && M.cols() == static_cast<Eigen::Index>(modulation_) &&
                                 (M.rows() == 1 || M.rows() == static_cast<Eigen::Index>(n)),
                             "sda::nn::UNet: input ", X.rows(), " x ", X.cols(), " with modulation ", M.rows(), " x ", M.cols(),
                             " for ", n, " samples of ", grid_.pixels(), " pixels, ", in_, " channels, ", modulation_,
                             " modulation features");
        const std::size_t L = levels_.size();
        // training (parameter gradients to come): weights change every step, so the direct algorithm
        const ConvAlgorithm algorithm = keep_input ? ConvAlgorithm::direct : ConvAlgorithm::fastest;
        if (cache) cache->levels.assign(L, {});
        RowMatrix<T> h;
        std::vector<RowMatrix<T>> memory(L);
        for (std::size_t l = 0; l < L; ++l) {
            const Level& level = levels_[l];
            RowMatrix<T> next(static_cast<Eigen::Index>(n * level.grid.pixels()), static_cast<Eigen::Index>(level.channels));
            if (l == 0) {
                level.head.forward(p, X, n, grid_, next, algorithm);
                if (cache && keep_input) cache->levels[0].head_input = X;
            } else {
                level.head.forward(p, h, n, levels_[l - 1].grid, next, algorithm);
                if (cache) cache->levels[l].head_input = std::move(h);
            }
            h = std::move(next);
            if (cache) cache->levels[l].down.resize(level.down.size());
            for (std::size_t b = 0; b < level.down.size(); ++b)
                block_forward(p, level.down[b], h, n, level.grid, M, cache ? &cache->levels[l].down[b] : nullptr, keep_input,
                              algorithm);
            if (l + 1 < L) memory[l] = h;
        }
        for (std::size_t l = L; l-- > 0;) {
            const Level& level = levels_[l];
            if (cache) cache->levels[l].up.resize(level.up.size());
            for (std::size_t b = 0; b < level.up.size(); ++b)
                block_forward(p, level.up[b], h, n, level.grid, M, cache ? &cache->levels[l].up[b] : nullptr, keep_input,
                              algorithm);
            if (l == 0) {
                level.tail.forward(p, h, n, grid_, Y, algorithm);
                if (cache) cache->levels[0].tail_input = std::move(h);
                break;
            }
            const Grid above = levels_[l - 1].grid;
            AlignedVector<T> rstd(static_cast<std::size_t>(h.rows()));
            norm_.forward(h, h, rstd.data());
            RowMatrix<T> up(static_cast<Eigen::Index>(n * above.pixels()), h.cols());
            upsample<T>(h, n, level.grid, spatial_, up);
            RowMatrix<T> next(up.rows(), static_cast<Eigen::Index>(levels_[l - 1].channels));
            level.tail.forward(p, up, n, above, next, algorithm);
            next += memory[l - 1];
            if (cache) cache->levels[l].tail_input = std::move(h), cache->levels[l].tail_rstd = std::move(rstd);
            h = std::move(next);
        }
    }

    /// Backward from dY: accumulates parameter gradients into `g` (if not null; the
    /// forward pass must have kept its input), writes d/dX into `dX` and adds
    /// d/dM into `dM` (each if not null; dM shaped like M).
    void backward(const T* p, const Cache& cache, const ConstRef& dY, std::size_t n, const ConstRef& M, T* g,
                  RowMatrix<T>* dX, RowMatrix<T>* dM) const {
        const std::size_t L = levels_.size();
        sda::detail::require(cache.levels.size() == L, "sda::nn::UNet::backward: the cache holds no forward pass");
        sda::detail::require(!g || cache.levels[0].head_input.rows() > 0,
                             "sda::nn::UNet::backward: parameter gradients need a forward pass that kept its input");
        const ConvAlgorithm algorithm = g ? ConvAlgorithm::direct : ConvAlgorithm::fastest;  // as in forward
        RowMatrix<T> dh;
        std::vector<RowMatrix<T>> d_memory(L);
        for (std::size_t l = 0; l < L; ++l) {
            const Level& level = levels_[l];
            const auto& entry = cache.levels[l];
            if (l == 0) {
                if (g) level.tail.backward_params(entry.tail_input, n, grid_, dY, g);
                dh.resize(static_cast<Eigen::Index>(n * grid_.pixels()), static_cast<Eigen::Index>(level.channels));
                level.tail.backward_input(p, dY, n, grid_, dh, false, algorithm);
            } else {
                const Grid above = levels_[l - 1].grid;
                d_memory[l - 1] = dh;
                const auto c = static_cast<Eigen::Index>(level.channels);
                RowMatrix<T> d_up(static_cast<Eigen::Index>(n * above.pixels()), c);
                level.tail.backward_input(p, dh, n, above, d_up, false, algorithm);
                if (g) {
                    RowMatrix<T> up(d_up.rows(), c);
                    upsample<T>(entry.tail_input, n, level.grid, spatial_, up);
                    level.tail.backward_params(up, n, above, dh, g);
                }
                RowMatrix<T> d_normed(static_cast<Eigen::Index>(n * level.grid.pixels()), c);
                upsample_adjoint<T>(d_up, n, level.grid, spatial_, d_normed);
                dh.resize(d_normed.rows(), c);
                norm_.backward(entry.tail_input, entry.tail_rstd.data(), d_normed, dh);
            }
            for (std::size_t b = level.up.size(); b-- > 0;)
                block_backward(p, level.up[b], entry.up[b], dh, n, level.grid, M, g, dM, algorithm);
        }
        for (std::size_t l = L; l-- > 0;) {
            const Level& level = levels_[l];
            const auto& entry = cache.levels[l];
            if (l + 1 < L) dh += d_memory[l];
            for (std::size_t b = level.down.size(); b-- > 0;)
                block_backward(p, level.down[b], entry.down[b], dh, n, level.grid, M, g, dM, algorithm);
            const Grid below = l > 0 ? levels_[l - 1].grid : grid_;
            if (g) level.head.backward_params(entry.head_input, n, below, dh, g);
            if (l > 0) {
                RowMatrix<T> d_below(static_cast<Eigen::Index>(n * below.pixels()), static_cast<Eigen::Index>(levels_[l - 1].channels));
                level.head.backward_input(p, dh, n, below, d_below, false, algorithm);
                dh = std::move(d_below);
            } else if (dX) {
                dX->resize(static_cast<Eigen::Index>(n * grid_.pixels()), static_cast<Eigen::Index>(in_));
                level.head.backward_input(p, dh, n, grid_, *dX, false, algorithm);
            }
        }
    }

private:
    /// h <- h + second(act(first(LN(h + shift)))), shift = project(M) per sample. With a cache
    /// entry, keeps LN's output and rstd, the activation's slope, and the activation when
    /// `keep_act` (parameter gradients).
    void block_forward(const T* p, const Block& block, RowMatrix<T>& h, std::size_t n, Grid grid, const ConstRef& M,
                       typename Cache::BlockEntry* entry, bool keep_act, ConvAlgorithm algorithm) const {
        const Eigen::Index c = h.cols(), px = static_cast<Eigen::Index>(grid.pixels());
        RowMatrix<T> shift(M.rows(), c);
        block.project.forward(p, M, shift);
        RowMatrix<T> normed = h;
        for (Eigen::Index b = 0; b < static_cast<Eigen::Index>(n); ++b)
            normed.middleRows(b * px, px).rowwise() += shift.row(M.rows() == 1 ? 0 : b);
        AlignedVector<T> rstd(static_cast<std::size_t>(h.rows()));
        norm_.forward(normed, normed, rstd.data());
        RowMatrix<T> pre(h.rows(), c), act(h.rows(), c);
        block.first.forward(p, normed, n, grid, pre, algorithm);
        if (entry) {
            entry->slope.resize(h.rows(), c);
            activate_with_slope<T>(activation_, pre, act, entry->slope);
        } else {
            activate<T>(activation_, pre, act);
        }
        RowMatrix<T> residue(h.rows(), c);
        block.second.forward(p, act, n, grid, residue, algorithm);
        h += residue;
        if (entry) {
            entry->normed = std::move(normed), entry->rstd = std::move(rstd);
            if (keep_act) entry->act = std::move(act);
        }
    }

    /// dh <- the cotangent of the block's input, given that of its output.
    void block_backward(const T* p, const Block& block, const typename Cache::BlockEntry& entry, RowMatrix<T>& dh,
                        std::size_t n, Grid grid, const ConstRef& M, T* g, RowMatrix<T>* dM, ConvAlgorithm algorithm) const {
        const Eigen::Index c = dh.cols(), px = static_cast<Eigen::Index>(grid.pixels());
        RowMatrix<T> d_pre(dh.rows(), c), d_normed(dh.rows(), c);
        block.second.backward_input(p, dh, n, grid, d_pre, false, algorithm);
        if (g) block.second.backward_params(entry.act, n, grid, dh, g);
        d_pre.array() *= entry.slope.array();
        if (g) block.first.backward_params(entry.normed, n, grid, d_pre, g);
        block.first.backward_input(p, d_pre, n, grid, d_normed, false, algorithm);
        RowMatrix<T> d_shifted(dh.rows(), c);
        norm_.backward(entry.normed, entry.rstd.data(), d_normed, d_shifted);
        dh += d_shifted;
        if (!g && !dM) return;
        RowMatrix<T> d_shift = RowMatrix<T>::Zero(M.rows(), c);
        for (Eigen::Index b = 0; b < static_cast<Eigen::Index>(n); ++b)
            d_shift.row(M.rows() == 1 ? 0 : b) += d_shifted.middleRows(b * px, px).colwise().sum();
        if (g) block.project.backward_params(M, d_shift, g);
        if (dM) block.project.backward_input(p, d_shift, *dM, /*accumulate=*/true);
    }

    std::size_t spatial_ = 2;
    Grid grid_;
    std::size_t in_ = 0, out_ = 0, modulation_ = 0;
    Activation activation_ = Activation::silu;
    LayerNorm<T> norm_;
    std::vector<Level> levels_;
};

}  // namespace sda::nn
