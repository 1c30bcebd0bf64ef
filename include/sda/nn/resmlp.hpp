// sda/nn/resmlp.hpp: the residual multi-layer perceptron of the paper's code.
//
// For widths (in, h_1, ..., h_n, out): for each consecutive pair (a, b), a
// Linear(a, b) when the width changes, then a residual block
//   x + Linear(act(Linear(LayerNorm(x))))
// of width b. Parameters are named like the PyTorch nn.Sequential it mirrors:
// "<name>.<i>.weight" for a projection at position i, "<name>.<i>.1.*" and
// "<name>.<i>.3.*" for a residual block's two Linear layers.
//
// The input may be given as rows X plus a constant tail row appended to each
// (the time embedding at one diffusion time): the first projection then costs
// a GEMM on X alone plus one matrix-vector product for the tail.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/memory.hpp"
#include "sda/nn/activation.hpp"
#include "sda/nn/layer_norm.hpp"
#include "sda/nn/linear.hpp"
#include "sda/nn/matmul.hpp"
#include "sda/nn/parameters.hpp"

namespace sda::nn {

template <class T>
class ResMLP {
public:
    using ConstRef = Eigen::Ref<const RowMatrix<T>>;
    using Ref = Eigen::Ref<RowMatrix<T>>;
    using Row = Eigen::Matrix<T, 1, Eigen::Dynamic>;

    struct Block {
        bool projected = false;  ///< a Linear changes the width before the residual block
        Linear<T> projection;
        Linear<T> first, second;
        std::size_t width = 0;
        std::string projection_name, first_name, second_name;
    };

    /// What backward needs of a forward pass, per block.
    struct Cache {
        struct Entry {
            RowMatrix<T> projection_input;  // blocks > 0 with a projection
            RowMatrix<T> normed, slope;     // LayerNorm output, the activation's derivative f'(pre)
            RowMatrix<T> act;               // the activation, when parameter gradients will be asked for
            AlignedVector<T> rstd;
        };
        std::vector<Entry> blocks;
        RowMatrix<T> input;  // [X, tail], kept when parameter gradients will be asked for
    };

    ResMLP() = default;
    ResMLP(ParameterSet<T>& params, const std::string& name, std::size_t in, std::size_t out,
           const std::vector<std::size_t>& hidden, Activation activation, LayerNorm<T> norm)
        : in_(in), out_(out), activation_(activation), norm_(norm) {
        sda::detail::require(in > 0 && out > 0, "sda::nn::ResMLP: in and out features must be positive");
        std::vector<std::size_t> widths{in};
        widths.insert(widths.end(), hidden.begin(), hidden.end());
        widths.push_back(out);
        std::size_t position = 0;
        for (std::size_t k = 0; k + 1 < widths.size(); ++k) {
            sda::detail::require(widths[k + 1] > 1, "sda::nn::ResMLP: widths must exceed 1 (LayerNorm)");
            Block block;
            block.width = widths[k + 1];
            if (widths[k] != widths[k + 1]) {
                block.projected = true;
                block.projection_name = name + "." + std::to_string(position++);
                block.projection = Linear<T>(params, block.projection_name, widths[k], widths[k + 1]);
            }
            const std::string residual = name + "." + std::to_string(position++);
            block.first_name = residual + ".1", block.second_name = residual + ".3";
            block.first = Linear<T>(params, block.first_name, block.width, block.width);
            block.second = Linear<T>(params, block.second_name, block.width, block.width);
            blocks_.push_back(std::move(block));
        }
    }

    void initialise(ParameterSet<T>& params, Generator& gen) const {
        for (const Block& block : blocks_) {
            if (block.projected) block.projection.initialise(params, block.projection_name, gen);
            block.first.initialise(params, block.first_name, gen);
            block.second.initialise(params, block.second_name, gen);
        }
    }

    std::size_t in() const { return in_; }
    std::size_t out() const { return out_; }
    const std::vector<Block>& blocks() const { return blocks_; }
    Activation activation() const { return activation_; }
    const LayerNorm<T>& norm() const { return norm_; }

    /// FLOPs of the GEMMs of one forward row (2 per multiply-add).
    double forward_flops_per_row() const {
        double flops = 0;
        for (const Block& b : blocks_)
            flops += 2.0 * (b.projected ? double(b.projection.in * b.projection.out) : 0.0) + 4.0 * double(b.width * b.width);
        return flops;
    }

    /// Y = f([X, tail]) for each row; `tail` (in - X.cols() entries) may be null when X has all
    /// `in` columns. With a cache, keeps what backward needs: for input VJPs only,
    /// or also for parameter gradients when `keep_input`. `low`: the parameters in bfloat16
    /// for bfloat16 products (sda/nn/matmul.hpp), or null.
    void forward(const T* p, const ConstRef& X, const T* tail, Ref Y, Cache* cache = nullptr, bool keep_input = false,
                 const BFloat16* low = nullptr) const {
        const Eigen::Index n = X.rows();
        const auto tail_size = static_cast<Eigen::Index>(in_) - X.cols();
        sda::detail::require(tail_size == 0 || (tail_size > 0 && tail != nullptr), "sda::nn::ResMLP: input has ",
                        X.cols(), " columns and no tail, expected ", in_);
        if (cache) {
            cache->blocks.resize(blocks_.size());
            if (keep_input) cache->input = full_input(X, tail);
            else cache->input.resize(0, 0);
        }
        // Buffers swap with the cache's: a cache used again keeps its storage (no allocation).
        RowMatrix<T> h, normed, pre, act, slope;
        AlignedVector<T> rstd;
        for (std::size_t k = 0; k < blocks_.size(); ++k) {
            const Block& block = blocks_[k];
            auto* entry = cache ? &cache->blocks[k] : nullptr;
            if (k == 0) {
                if (block.projected) {
                    // [X, tail] W^T + b = X W_x^T + (W_tail tail + b)
                    const auto W = block.projection.W(p);
                    Row offset = block.projection.b(p);
                    if (tail_size > 0)
                        offset.noalias() +=
                            (W.rightCols(tail_size) * Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(tail, tail_size))
                                .transpose();
                    h.resize(n, W.rows());
                    detail::multiply_transposed<T>(X, W.leftCols(X.cols()), h, offset.data(), false,
                                                   low ? low + block.projection.weight : nullptr);
                } else {
                    h = full_input(X, tail);
                }
            } else if (block.projected) {
                RowMatrix<T> next(n, static_cast<Eigen::Index>(block.width));
                block.projection.forward(p, h, next, low);
                if (entry) entry->projection_input = std::move(h);
                h = std::move(next);
            }
            // residual block: h += act(LN(h) W1^T + b1) W2^T + b2
            const auto w = static_cast<Eigen::Index>(block.width);
            if (entry) {
                std::swap(normed, entry->normed), std::swap(slope, entry->slope), std::swap(rstd, entry->rstd);
                if (keep_input) std::swap(act, entry->act);
            }
            normed.resize(n, w), pre.resize(n, w), act.resize(n, w), rstd.resize(static_cast<std::size_t>(n));
            norm_.forward(h, normed, rstd.data());
            block.first.forward(p, normed, pre, low);
            if (entry) {
                slope.resize(n, w);
                activate_with_slope<T>(activation_, pre, act, slope);
            } else {
                activate<T>(activation_, pre, act);
            }
            block.second.forward(p, act, h, low, /*accumulate=*/true);
            if (entry) {
                std::swap(normed, entry->normed), std::swap(slope, entry->slope), std::swap(rstd, entry->rstd);
                if (keep_input) std::swap(act, entry->act);
                else entry->act.resize(0, 0);
            }
        }
        Y = h;
    }

    /// Backward from the cotangent dY of the outputs: accumulates parameter
    /// gradients into `g` (if not null; the forward pass must have kept its
    /// input) and writes the cotangent of input columns [first_column,
    /// first_column + columns) into `dX` (if not null). `low` as for `forward` (input VJPs only).
    void backward(const T* p, const Cache& cache, const ConstRef& dY, T* g, RowMatrix<T>* dX, Eigen::Index first_column,
                  Eigen::Index columns, const BFloat16* low = nullptr) const {
        sda::detail::require(!g || cache.input.cols() == static_cast<Eigen::Index>(in_),
                        "sda::nn::ResMLP::backward: parameter gradients need a forward pass that kept its input");
        const Eigen::Index n = dY.rows();
        RowMatrix<T> dh = dY, d_pre, d_normed;
        for (std::size_t k = blocks_.size(); k-- > 0;) {
            const Block& block = blocks_[k];
            const auto& entry = cache.blocks[k];
            const auto w = static_cast<Eigen::Index>(block.width);
            // h_out = h_in + act(pre) W2^T + b2, pre = normed W1^T + b1, normed = LN(h_in)
            if (g) block.second.backward_params(entry.act, dh, g);
            d_pre.resize(n, w);
            block.second.backward_input(p, dh, d_pre, false, low);
            d_pre.array() *= entry.slope.array();
            if (g) block.first.backward_params(entry.normed, d_pre, g);
            d_normed.resize(n, w);
            block.first.backward_input(p, d_pre, d_normed, false, low);
            norm_.backward(entry.normed, entry.rstd.data(), d_normed, dh, /*accumulate=*/true);  // dh is d h_in
            if (block.projected && k > 0) {
                if (g) block.projection.backward_params(entry.projection_input, dh, g);
                RowMatrix<T> below(n, static_cast<Eigen::Index>(block.projection.in));
                block.projection.backward_input(p, dh, below, false, low);
                dh = std::move(below);
            } else if (block.projected) {
                if (g) block.projection.backward_params(cache.input, dh, g);
                if (dX) {
                    dX->resize(n, columns);
                    detail::multiply<T>(dh, block.projection.W(p).middleCols(first_column, columns), *dX, false,
                                        low ? low + block.projection.weight + first_column : nullptr);
                }
            } else if (k == 0) {
                if (dX) *dX = dh.middleCols(first_column, columns);
            }
        }
    }

private:
    RowMatrix<T> full_input(const ConstRef& X, const T* tail) const {
        RowMatrix<T> full(X.rows(), static_cast<Eigen::Index>(in_));
        full.leftCols(X.cols()) = X;
        const auto tail_size = static_cast<Eigen::Index>(in_) - X.cols();
        if (tail_size > 0) full.rightCols(tail_size).rowwise() = Eigen::Map<const Row>(tail, tail_size);
        return full;
    }

    std::size_t in_ = 0, out_ = 0;
    Activation activation_ = Activation::silu;
    LayerNorm<T> norm_;
    std::vector<Block> blocks_;
};

}  // namespace sda::nn
