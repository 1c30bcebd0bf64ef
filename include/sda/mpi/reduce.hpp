// sda/mpi/reduce.hpp: sums over ranks that do not depend on how the terms are split.
//
// A floating-point sum depends on its order, so a per-sample dot product summed rank by
// rank would change in its last bits with the number of ranks. `exact_row_sums` instead
// rounds every term once to a fixed-point grid shared by all ranks, 2^(e - 88) where 2^e
// bounds the largest term, adds the integers (128 bits: exact, in any order) and rounds the
// total once to double. The result is the same for any number of ranks and any split of a
// row's terms among them, and within N 2^-88 of the largest term of the exact sum of N
// terms (2^-68 of it for a million terms: below double rounding). It costs two small
// all-reduces per call: the largest terms (4 doubles per row), then the integer sums (16
// bytes per row). Up to 2^38 terms per row across all ranks (no overflow below 2^39).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <tbb/parallel_for.h>

#include "sda/core/error.hpp"
#include "sda/mpi/environment.hpp"

namespace sda::mpi {

namespace detail {

__extension__ typedef __int128 int128;  // GCC and Clang; __extension__: no -Wpedantic warning

/// v rounded (to nearest, ties to even) to a multiple of 2^exponent, in units of 2^exponent.
inline int128 to_fixed(double v, int exponent) {
    if (v == 0.0) return 0;
    int e = 0;
    const double fraction = std::frexp(v, &e);  // v = fraction 2^e, |fraction| in [0.5, 1)
    const auto mantissa = static_cast<std::int64_t>(std::ldexp(fraction, 53));  // exact, |m| < 2^53
    const int shift = e - 53 - exponent;                                        // v = m 2^(shift + exponent)
    if (shift >= 0) return static_cast<int128>(mantissa) << shift;
    const int down = -shift;
    if (down >= 60) return 0;  // |v| < 2^(exponent - 6): rounds to 0
    const std::int64_t quotient = mantissa >> down;  // floor
    const std::int64_t remainder = mantissa - (quotient << down), half = std::int64_t{1} << (down - 1);
    return quotient + ((remainder > half || (remainder == half && (quotient & 1))) ? 1 : 0);
}

inline void add_int128(void* in, void* inout, int* length, MPI_Datatype*) {
    for (int i = 0; i < *length; ++i) {
        int128 a, b;
        std::memcpy(&a, static_cast<const char*>(in) + 16 * i, 16);
        std::memcpy(&b, static_cast<const char*>(inout) + 16 * i, 16);
        b += a;
        std::memcpy(static_cast<char*>(inout) + 16 * i, &b, 16);
    }
}

/// 16 bytes as one MPI element, and their sum as an MPI operation; made once per process.
inline MPI_Datatype int128_type() {
    static const MPI_Datatype type = [] {
        MPI_Datatype t;
        check(MPI_Type_contiguous(16, MPI_BYTE, &t), "MPI_Type_contiguous");
        check(MPI_Type_commit(&t), "MPI_Type_commit");
        return t;
    }();
    return type;
}
inline MPI_Op int128_sum() {
    static const MPI_Op op = [] {
        MPI_Op o;
        check(MPI_Op_create(&add_int128, /*commute=*/1, &o), "MPI_Op_create");
        return o;
    }();
    return op;
}

}  // namespace detail

/// What `exact_row_sums` returns: one sum per row, and the number of terms per row over all ranks.
struct RowSums {
    std::vector<double> sums;
    std::uint64_t terms = 0;
};

/// For each of `rows` rows, the sum over all ranks of `comm` of term(r, c), c < `cols` (each
/// rank its own `cols`, `rows` the same on all): exact up to the fixed-point grid and one final
/// rounding, hence bit for bit the same however the terms are split among the ranks. A NaN
/// term, or infinities of both signs, give NaN; infinities of one sign give that infinity.
/// Collective: every rank of `comm` must call it with the same `rows`.
template <class Term>
RowSums exact_row_sums(const Communicator& comm, std::size_t rows, std::size_t cols, Term&& term) {
    // pass 1: per row, the largest finite |term| and flags for NaN, +inf, -inf
    std::vector<double> extremes(4 * rows, 0.0);
    tbb::parallel_for(std::size_t{0}, rows, [&](std::size_t r) {
        double* e = extremes.data() + 4 * r;
        for (std::size_t c = 0; c < cols; ++c) {
            const double v = term(r, c);
            if (std::isnan(v)) e[1] = 1;
            else if (std::isinf(v)) e[v > 0 ? 2 : 3] = 1;
            else e[0] = std::max(e[0], std::abs(v));
        }
    });
    detail::check(MPI_Allreduce(MPI_IN_PLACE, extremes.data(), static_cast<int>(extremes.size()), MPI_DOUBLE, MPI_MAX,
                                comm.get()),
                  "MPI_Allreduce");
    // pass 2: the terms on the grid 2^(e - 88), 2^e above the largest, summed as integers (each
    // at most 2^88 in magnitude: no overflow below 2^39 terms), with the count of terms after them
    std::vector<int> grid(rows, 0);
    std::vector<detail::int128> fixed(rows + 1, 0);
    fixed[rows] = static_cast<detail::int128>(cols);
    tbb::parallel_for(std::size_t{0}, rows, [&](std::size_t r) {
        const double* e = extremes.data() + 4 * r;
        if (e[1] != 0 || e[2] != 0 || e[3] != 0 || e[0] == 0) return;
        grid[r] = std::ilogb(e[0]) + 1 - 88;
        detail::int128 sum = 0;
        for (std::size_t c = 0; c < cols; ++c) sum += detail::to_fixed(term(r, c), grid[r]);
        fixed[r] = sum;
    });
    detail::check(MPI_Allreduce(MPI_IN_PLACE, fixed.data(), static_cast<int>(rows + 1), detail::int128_type(),
                                detail::int128_sum(), comm.get()),
                  "MPI_Allreduce");
    const auto count = static_cast<std::uint64_t>(fixed[rows]);
    sda::detail::require(count <= (std::uint64_t{1} << 38), "sda::mpi::exact_row_sums: ", count,
                         " terms per row exceed the 2^38 of its 128-bit accumulators");
    RowSums out{std::vector<double>(rows, 0.0), count};
    for (std::size_t r = 0; r < rows; ++r) {
        const double* e = extremes.data() + 4 * r;
        if (e[1] != 0 || (e[2] != 0 && e[3] != 0)) out.sums[r] = std::numeric_limits<double>::quiet_NaN();
        else if (e[2] != 0) out.sums[r] = std::numeric_limits<double>::infinity();
        else if (e[3] != 0) out.sums[r] = -std::numeric_limits<double>::infinity();
        else if (e[0] != 0) out.sums[r] = std::ldexp(static_cast<double>(fixed[r]), grid[r]);
    }
    return out;
}

}  // namespace sda::mpi
