// sda/core/random.hpp: the explicit, counter-based random generator of sda.
//
// Noise comes from Philox4x32-10 (Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3", SC 2011; Debian's Random123). Every number is a pure
// function of (seed, draw, sample, element): `draw` counts the fills made with
// one Generator, `sample` is the batch index. Hence the same seed gives the
// same numbers whatever the thread count, and sample b of a batch receives the
// same noise whatever the batch size. The generator's whole state is two
// integers, so it is saved and restored exactly.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>
#include <Random123/uniform.hpp>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "sda/core/error.hpp"

namespace sda {

/// A seeded source of randomness, passed explicitly to whatever draws noise.
/// Not thread-safe: one generator per thread of control (fills are parallel inside).
class Generator {
public:
    explicit Generator(std::uint64_t seed = 0, std::uint64_t draws = 0) : seed_(seed), draws_(draws) {}

    std::uint64_t seed() const { return seed_; }
    /// Number of fills made so far; together with the seed the whole state.
    std::uint64_t draws() const { return draws_; }

    /// Reserves the key of the next fill.
    std::uint64_t next_draw() { return draws_++; }

private:
    std::uint64_t seed_;
    std::uint64_t draws_;
};

namespace detail {

enum class Distribution { normal, uniform };

/// Fills `rows x cols` values (row-major) as the block at (`first_row`, `first_col`) of an
/// array without end: the value at global row r, column c is a pure function of (seed, draw,
/// r, c), so a process holding part of a batch (its samples, or its states of every sample)
/// draws exactly the numbers that one process holding all of it would. Parallel over blocks
/// of Philox output.
template <class T>
void fill_random(T* data, std::size_t rows, std::size_t cols, std::uint64_t seed, std::uint64_t draw,
                 Distribution distribution, std::size_t first_row = 0, std::size_t first_col = 0) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "sda: random fills are defined for float and double");
    using Philox = r123::Philox4x32;
    // float: four values per Philox block from 32-bit words; double: two from 64-bit pairs.
    constexpr std::size_t per_block = std::is_same_v<T, float> ? 4 : 2;
    if (rows == 0 || cols == 0) return;
    // the Philox blocks of the global columns [first_col, first_col + cols)
    const std::size_t first_block = first_col / per_block, end_col = first_col + cols;
    const std::size_t blocks_per_row = (end_col + per_block - 1) / per_block - first_block;
    require(first_row + rows <= 0x100000000u && (end_col + per_block - 1) / per_block <= 0x100000000u,
            "sda::Generator: a fill of ", rows, " x ", cols, " values at (", first_row, ", ", first_col,
            ") exceeds the 2^32 x 2^32 counter space");
    const Philox::key_type key = {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};

    auto fill_blocks = [&](std::size_t begin, std::size_t end) {
        Philox philox;
        for (std::size_t index = begin; index < end; ++index) {
            const std::size_t row = index / blocks_per_row;
            const std::size_t block = first_block + index % blocks_per_row;
            const Philox::ctr_type counter = {{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(first_row + row),
                                               static_cast<std::uint32_t>(draw),
                                               static_cast<std::uint32_t>(draw >> 32)}};
            const Philox::ctr_type bits = philox(counter, key);
            T values[per_block];
            if constexpr (std::is_same_v<T, float>) {
                if (distribution == Distribution::normal) {
                    const auto a = r123::boxmuller(bits[0], bits[1]);
                    const auto b = r123::boxmuller(bits[2], bits[3]);
                    values[0] = a.x, values[1] = a.y, values[2] = b.x, values[3] = b.y;
                } else {
                    for (std::size_t k = 0; k < 4; ++k) values[k] = r123::u01<float>(bits[k]);
                }
            } else {
                const std::uint64_t u = bits[0] | (std::uint64_t{bits[1]} << 32);
                const std::uint64_t v = bits[2] | (std::uint64_t{bits[3]} << 32);
                if (distribution == Distribution::normal) {
                    const auto a = r123::boxmuller(u, v);
                    values[0] = a.x, values[1] = a.y;
                } else {
                    values[0] = r123::u01<double>(u), values[1] = r123::u01<double>(v);
                }
            }
            // the block's columns that fall in [first_col, end_col)
            const std::size_t from = std::max(block * per_block, first_col);
            const std::size_t to = std::min((block + 1) * per_block, end_col);
            T* out = data + row * cols - first_col;
            for (std::size_t c = from; c < to; ++c) out[c] = values[c - block * per_block];
        }
    };

    const std::size_t total = rows * blocks_per_row;
    constexpr std::size_t grain = 4096;
    if (total <= grain) {
        fill_blocks(0, total);
    } else {
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, total, grain),
                          [&](const tbb::blocked_range<std::size_t>& r) { fill_blocks(r.begin(), r.end()); });
    }
}

}  // namespace detail

/// Fills `rows x cols` values with independent N(0, 1) draws; one draw of `gen`. With
/// `first_row`, `first_col`: the block at that place of the draw's global array (what a
/// process that holds samples from `first_row`, or entries from `first_col` of each, draws).
template <class T>
void fill_normal(T* data, std::size_t rows, std::size_t cols, Generator& gen, std::size_t first_row = 0,
                 std::size_t first_col = 0) {
    detail::fill_random(data, rows, cols, gen.seed(), gen.next_draw(), detail::Distribution::normal, first_row,
                        first_col);
}

/// Fills `rows x cols` values with independent U(0, 1] draws; one draw of `gen`.
template <class T>
void fill_uniform(T* data, std::size_t rows, std::size_t cols, Generator& gen) {
    detail::fill_random(data, rows, cols, gen.seed(), gen.next_draw(), detail::Distribution::uniform);
}

}  // namespace sda
