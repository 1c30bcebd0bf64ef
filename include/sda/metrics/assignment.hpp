// sda/metrics/assignment.hpp: exact minimum-cost perfect matching of a square
// cost matrix (the linear assignment problem), and the 1-Wasserstein distance
// between two equal-size sets of samples (e.g. N trajectories [N, L, D]) that
// it computes exactly.
//
// The solver is the shortest augmenting path method of Jonker & Volgenant ("A
// shortest augmenting path algorithm for dense and sparse linear assignment
// problems", Computing 38, 1987), in the form without initialisation phase
// described by Crouse ("On implementing 2D rectangular assignment algorithms",
// IEEE Trans. Aerospace and Electronic Systems 52(4), 2016): O(n^3).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/tensor.hpp"
#include "sda/metrics/pairwise.hpp"

namespace sda::metrics {

/// The permutation `col` minimising sum_i cost(i, col[i]) over all permutations
/// of 0..n-1, for a finite n x n `cost` (any sign). Ties are broken arbitrarily.
///
/// Linear-programming duality: potentials u (rows) and v (columns) are kept
/// feasible, cost(i, j) - u_i - v_j >= 0, with equality on every assigned pair.
/// Rows are inserted one at a time: from the new row, Dijkstra's algorithm on the
/// reduced costs finds the shortest alternating path to an unassigned column
/// (scanning the cheapest column first, an unassigned one on ties); the
/// potentials are then shifted by the path lengths, which keeps them feasible and
/// makes the path's edges tight, and the assignment is flipped along the path.
/// Each of the n insertions costs O(n^2); at the end the pairs are all tight,
/// so the assignment is optimal by complementary slackness.
inline std::vector<std::size_t> linear_assignment(const Eigen::MatrixXd& cost) {
    constexpr const char* what = "sda::metrics::linear_assignment";
    detail::require(cost.rows() == cost.cols(), what, ": cost matrix is ", cost.rows(), " x ", cost.cols(),
                    ", expected square");
    detail::require(cost.size() > 0, what, ": cost matrix is empty (0 x 0)");
    for (Eigen::Index j = 0; j < cost.cols(); ++j)
        for (Eigen::Index i = 0; i < cost.rows(); ++i)
            detail::require(std::isfinite(cost(i, j)), what, ": cost matrix has a non-finite entry (", cost(i, j),
                            ") at (", i, ", ", j, ")");

    const std::size_t n = static_cast<std::size_t>(cost.rows());
    constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    constexpr double infinity = std::numeric_limits<double>::infinity();
    const RowMatrix<double> c = cost;  // rows contiguous: the inner loop scans one row

    std::vector<double> u(n, 0.0), v(n, 0.0);       // dual potentials of rows and columns
    std::vector<std::size_t> col_of_row(n, none), row_of_col(n, none);
    std::vector<double> dist(n);                    // shortest reduced path length to each column
    std::vector<std::size_t> pred(n);               // row preceding each column on its shortest path
    std::vector<std::size_t> unscanned(n);          // columns not yet settled by Dijkstra
    std::vector<std::size_t> rows_seen, cols_settled;
    rows_seen.reserve(n);
    cols_settled.reserve(n);

    for (std::size_t root = 0; root < n; ++root) {
        std::fill(dist.begin(), dist.end(), infinity);
        std::iota(unscanned.begin(), unscanned.end(), std::size_t{0});
        std::size_t open = n;  // unscanned[0, open) are the columns still to settle
        rows_seen.clear();
        cols_settled.clear();

        // Dijkstra from `root` over alternating paths row -> column -> its assigned row.
        std::size_t row = root, sink = none;
        double reach = 0.0;  // length of the path to the column settled last
        while (sink == none) {
            rows_seen.push_back(row);
            const double* c_row = c.row(static_cast<Eigen::Index>(row)).data();
            const double offset = reach - u[row];
            double best = infinity;
            std::size_t best_k = 0;
            for (std::size_t k = 0; k < open; ++k) {
                const std::size_t j = unscanned[k];
                const double through_row = offset + c_row[j] - v[j];
                if (through_row < dist[j]) {
                    dist[j] = through_row;
                    pred[j] = row;
                }
                if (dist[j] < best || (dist[j] == best && row_of_col[j] == none)) {
                    best = dist[j];
                    best_k = k;
                }
            }
            reach = best;
            const std::size_t col = unscanned[best_k];
            unscanned[best_k] = unscanned[--open];
            cols_settled.push_back(col);
            if (row_of_col[col] == none)
                sink = col;
            else
                row = row_of_col[col];
        }

        // Shift the potentials: every settled column j had dist[j] <= reach, and the
        // reduced costs stay non-negative with the path's edges now tight.
        u[root] += reach;
        for (std::size_t k = 1; k < rows_seen.size(); ++k) {
            const std::size_t r = rows_seen[k];
            u[r] += reach - dist[col_of_row[r]];
        }
        for (const std::size_t j : cols_settled) v[j] -= reach - dist[j];

        // Flip the assignment along the path sink <- pred <- ... <- root.
        for (std::size_t col = sink;;) {
            const std::size_t r = pred[col];
            row_of_col[col] = r;
            std::swap(col_of_row[r], col);
            if (r == root) break;
        }
    }
    return col_of_row;
}

/// The 1-Wasserstein distance between the empirical distributions of two sets of
/// N samples each, `a` and `b` of shape [N, ...], with the Euclidean distance
/// between whole flattened samples as ground cost:
///   W1 = min over permutations s of (1/N) sum_i ||a_i - b_s(i)||,
/// exact because for equal-weight sets of equal size an optimal coupling is a
/// permutation (Birkhoff-von Neumann). Costs O(N^2 d) for the distances (one GEMM)
/// and O(N^3) for the matching.
template <class T>
double wasserstein1(const Tensor<T>& a, const Tensor<T>& b) {
    detail::check_sample_sets(a, b, "sda::metrics::wasserstein1", 1, true);
    const Eigen::MatrixXd distance = detail::squared_distances(a, b).cwiseSqrt();
    const std::vector<std::size_t> match = linear_assignment(distance);
    double total = 0.0;
    for (std::size_t i = 0; i < match.size(); ++i)
        total += distance(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(match[i]));
    return total / static_cast<double>(match.size());
}

}  // namespace sda::metrics
