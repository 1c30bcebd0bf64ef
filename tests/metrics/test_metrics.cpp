// Metrics against brute force and closed forms.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <numeric>
#include <vector>

#include <Eigen/Core>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"
#include "sda/metrics/assignment.hpp"
#include "sda/metrics/ensemble.hpp"
#include "sda/metrics/health.hpp"
#include "sda/metrics/mmd.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/metrics/wasserstein1d.hpp"

namespace {

// W1 as the integral over u in (0, 1) of |F_a^-1(u) - F_b^-1(u)|, the empirical
// quantile functions being step functions with jumps at i/na and j/nb.
double quantile_integral(std::vector<double> a, std::vector<double> b) {
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::vector<double> cuts;
    for (std::size_t i = 0; i <= a.size(); ++i) cuts.push_back(double(i) / double(a.size()));
    for (std::size_t j = 0; j <= b.size(); ++j) cuts.push_back(double(j) / double(b.size()));
    std::sort(cuts.begin(), cuts.end());
    double total = 0.0;
    for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
        const double lo = cuts[k], hi = cuts[k + 1];
        if (hi <= lo) continue;
        const double u = 0.5 * (lo + hi);
        const auto qa = a[std::min(a.size() - 1, std::size_t(u * double(a.size())))];
        const auto qb = b[std::min(b.size() - 1, std::size_t(u * double(b.size())))];
        total += (hi - lo) * std::abs(qa - qb);
    }
    return total;
}

std::vector<double> uniform_sample(std::uint64_t seed, std::size_t n, double scale) {
    std::vector<double> v(n);
    sda::Generator gen(seed);
    sda::fill_uniform(v.data(), 1, n, gen);
    for (auto& x : v) x *= scale;
    return v;
}

/// A tensor of the given shape with independent U(lo, hi] entries.
sda::Tensor<double> uniform_tensor(std::uint64_t seed, const sda::Shape& shape, double lo, double hi) {
    sda::Tensor<double> x = sda::empty_tensor<double>(shape);
    sda::Generator gen(seed);
    sda::fill_uniform(x.data(), shape[0], x.size() / shape[0], gen);
    for (auto& v : x) v = lo + (hi - lo) * v;
    return x;
}

/// A tensor of the given shape with independent N(mu, s^2) entries; one draw of `gen`.
sda::Tensor<double> normal_tensor(sda::Generator& gen, const sda::Shape& shape, double mu, double s) {
    sda::Tensor<double> x = sda::empty_tensor<double>(shape);
    sda::fill_normal(x.data(), shape[0], x.size() / shape[0], gen);
    for (auto& v : x) v = mu + s * v;
    return x;
}

Eigen::MatrixXd uniform_matrix(std::uint64_t seed, std::size_t n, double lo, double hi) {
    const sda::Tensor<double> x = uniform_tensor(seed, {n, n}, lo, hi);
    Eigen::MatrixXd m(n, n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) m(i, j) = x(i, j);
    return m;
}

bool is_permutation(const std::vector<std::size_t>& p, std::size_t n) {
    std::vector<std::size_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::size_t> identity(n);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    return sorted == identity;
}

double assignment_cost(const Eigen::MatrixXd& cost, const std::vector<std::size_t>& p) {
    double total = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) total += cost(i, p[i]);
    return total;
}

/// min over all permutations p of sum_i cost(i, p(i)), by enumeration.
double brute_force_assignment(const Eigen::MatrixXd& cost) {
    std::vector<std::size_t> p(static_cast<std::size_t>(cost.rows()));
    std::iota(p.begin(), p.end(), std::size_t{0});
    double best = std::numeric_limits<double>::infinity();
    do best = std::min(best, assignment_cost(cost, p));
    while (std::next_permutation(p.begin(), p.end()));
    return best;
}

/// Euclidean distance between sample i of a and sample j of b, flattened, by a direct loop.
double sample_distance(const sda::Tensor<double>& a, std::size_t i, const sda::Tensor<double>& b, std::size_t j) {
    const std::size_t d = a.size() / a.shape()[0];
    double sum = 0.0;
    for (std::size_t k = 0; k < d; ++k) sum += std::pow(a.data()[i * d + k] - b.data()[j * d + k], 2);
    return std::sqrt(sum);
}

/// Rows of x in the order given.
sda::Tensor<double> permute_rows(const sda::Tensor<double>& x, const std::vector<std::size_t>& order) {
    sda::Tensor<double> out = sda::empty_tensor<double>(sda::shape_of(x));
    const std::size_t d = x.size() / x.shape()[0];
    for (std::size_t i = 0; i < order.size(); ++i)
        std::copy(x.data() + order[i] * d, x.data() + (order[i] + 1) * d, out.data() + i * d);
    return out;
}

/// MMD^2_u of Gretton et al. (2012), eq. 3, by direct loops over the samples.
double mmd_by_loops(const sda::Tensor<double>& a, const sda::Tensor<double>& b, double h) {
    const auto k = [h](double d) { return std::exp(-d * d / (2.0 * h * h)); };
    const std::size_t m = a.shape()[0], n = b.shape()[0];
    double aa = 0.0, bb = 0.0, ab = 0.0;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < m; ++j)
            if (i != j) aa += k(sample_distance(a, i, a, j));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
            if (i != j) bb += k(sample_distance(b, i, b, j));
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) ab += k(sample_distance(a, i, b, j));
    return aa / double(m * (m - 1)) + bb / double(n * (n - 1)) - 2.0 * ab / double(m * n);
}

/// The median of the distances between distinct pairs of the pooled samples (a, b), by a full sort.
double median_pooled_distance(const sda::Tensor<double>& a, const sda::Tensor<double>& b) {
    std::vector<const sda::Tensor<double>*> set;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < a.shape()[0]; ++i) set.push_back(&a), index.push_back(i);
    for (std::size_t i = 0; i < b.shape()[0]; ++i) set.push_back(&b), index.push_back(i);
    std::vector<double> d;
    for (std::size_t p = 0; p < set.size(); ++p)
        for (std::size_t q = p + 1; q < set.size(); ++q)
            d.push_back(sample_distance(*set[p], index[p], *set[q], index[q]));
    std::sort(d.begin(), d.end());
    const std::size_t h = d.size() / 2;
    return d.size() % 2 ? d[h] : 0.5 * (d[h - 1] + d[h]);
}

/// Mean of iid replicates against its expectation: |t| = |mean - expected| / (sd / sqrt(R))
/// and the two-sided level-1e-3 quantile of Student's t with R - 1 degrees of freedom.
struct ReplicateTest {
    double t, threshold, mean, standard_error;
    bool pass() const { return std::abs(t) <= threshold; }
};

ReplicateTest replicate_test(const std::vector<double>& values, double expected) {
    const double r = static_cast<double>(values.size());
    const double mean = std::accumulate(values.begin(), values.end(), 0.0) / r;
    double ss = 0.0;
    for (const double v : values) ss += (v - mean) * (v - mean);
    const double standard_error = std::sqrt(ss / (r - 1.0) / r);
    const boost::math::students_t law(r - 1.0);
    return {(mean - expected) / standard_error, boost::math::quantile(boost::math::complement(law, 0.5e-3)), mean,
            standard_error};
}

/// CRPS of the ensemble members x_i (entry e of each) against y, by the double loop over pairs.
double crps_by_loops(const std::vector<double>& x, double y) {
    const double n = static_cast<double>(x.size());
    double error = 0.0, pairs = 0.0;
    for (const double xi : x) {
        error += std::abs(xi - y);
        for (const double xj : x) pairs += std::abs(xi - xj);
    }
    return error / n - pairs / (2.0 * n * n);
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("wasserstein1_1d: equal sizes give the mean gap of the sorted samples") {
    auto a = uniform_sample(1, 257, 3.0), b = uniform_sample(2, 257, 5.0);
    std::vector<double> sa = a, sb = b;
    std::sort(sa.begin(), sa.end());
    std::sort(sb.begin(), sb.end());
    double expected = 0.0;
    for (std::size_t i = 0; i < sa.size(); ++i) expected += std::abs(sa[i] - sb[i]) / double(sa.size());
    CHECK(sda::metrics::wasserstein1_1d(a, b) == doctest::Approx(expected).epsilon(1e-12));
}

TEST_CASE("wasserstein1_1d: unequal sizes and ties match the quantile integral") {
    auto a = uniform_sample(3, 100, 2.0), b = uniform_sample(4, 37, 2.5);
    a[5] = a[6] = a[7];  // ties inside a sample and across samples
    b[0] = a[7];
    CHECK(sda::metrics::wasserstein1_1d(a, b) == doctest::Approx(quantile_integral(a, b)).epsilon(1e-12));
    CHECK(sda::metrics::wasserstein1_1d(b, a) == doctest::Approx(quantile_integral(a, b)).epsilon(1e-12));
}

TEST_CASE("wasserstein1_1d: zero to itself, |c| to a shifted copy") {
    const auto a = uniform_sample(5, 64, 1.0);
    CHECK(sda::metrics::wasserstein1_1d(a, a) == 0.0);
    auto shifted = a;
    for (auto& x : shifted) x += 0.75;
    CHECK(sda::metrics::wasserstein1_1d(a, shifted) == doctest::Approx(0.75).epsilon(1e-12));
}

TEST_CASE("wasserstein1_1d: Gaussian closed form |1 - s| sqrt(2/pi) + shift") {
    // Quantile points of N(0, 1) and N(mu, s^2) on the same grid: the coupling is
    // monotone, so W1 -> E|(1 - s) Z - mu|; with mu = 0 that is |1 - s| sqrt(2/pi).
    const boost::math::normal standard;
    const std::size_t n = 20000;
    const double s = 1.6;
    std::vector<double> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double z = boost::math::quantile(standard, (double(i) + 0.5) / double(n));
        a[i] = z;
        b[i] = s * z;
    }
    // The grid truncates the tails: the error is below 1e-3 at n = 20000.
    CHECK(sda::metrics::wasserstein1_1d(a, b) ==
          doctest::Approx((s - 1.0) * std::sqrt(2.0 / std::numbers::pi)).epsilon(1e-3));
}

TEST_CASE("wasserstein1_1d: empty or non-finite samples throw sda::error") {
    const std::vector<double> ok{1.0, 2.0};
    CHECK_THROWS_AS(sda::metrics::wasserstein1_1d({}, ok), sda::error);
    CHECK_THROWS_WITH_AS(sda::metrics::wasserstein1_1d(ok, {1.0, std::numeric_limits<double>::quiet_NaN()}),
                         doctest::Contains("NaN"), sda::error);
    CHECK_THROWS_AS(sda::metrics::wasserstein1_1d({std::numeric_limits<double>::infinity()}, ok), sda::error);
}


// --- linear_assignment ---------------------------------------------------------------------

TEST_CASE("linear_assignment: optimal against brute force over all permutations (6 x 6, 7 x 7)") {
    for (std::size_t n : {6, 7})
        for (std::uint64_t seed = 1; seed <= 6; ++seed) {
            CAPTURE(n);
            CAPTURE(seed);
            const Eigen::MatrixXd cost = uniform_matrix(100 * n + seed, n, -1.0, 2.0);  // negative costs too
            const auto p = sda::metrics::linear_assignment(cost);
            REQUIRE(is_permutation(p, n));
            CHECK(assignment_cost(cost, p) == doctest::Approx(brute_force_assignment(cost)).epsilon(1e-12));
        }
}

TEST_CASE("linear_assignment: ties (all-equal and small integer costs) and 1 x 1") {
    const auto equal = sda::metrics::linear_assignment(Eigen::MatrixXd::Constant(7, 7, 2.5));
    CHECK(is_permutation(equal, 7));

    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        // Entries in {0, 1, 2}: many optimal permutations, and ties in every Dijkstra step.
        Eigen::MatrixXd cost = uniform_matrix(seed, 7, 0.0, 3.0);
        cost = cost.array().floor().min(2.0);
        const auto p = sda::metrics::linear_assignment(cost);
        REQUIRE(is_permutation(p, 7));
        CHECK(assignment_cost(cost, p) == brute_force_assignment(cost));  // integers: exact
    }

    CHECK(sda::metrics::linear_assignment(Eigen::MatrixXd::Constant(1, 1, -3.0)) == std::vector<std::size_t>{0});
}

TEST_CASE("linear_assignment: convex 1-D costs are matched in sorted order (n = 300)") {
    // For cost (a_i - b_j)^2 the monotone (sorted) matching is optimal, at any n.
    const std::size_t n = 300;
    const auto a = uniform_sample(11, n, 4.0), b = uniform_sample(12, n, 3.0);
    Eigen::MatrixXd cost(n, n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) cost(i, j) = (a[i] - b[j]) * (a[i] - b[j]);
    std::vector<double> sa = a, sb = b;
    std::sort(sa.begin(), sa.end());
    std::sort(sb.begin(), sb.end());
    double sorted_cost = 0.0;
    for (std::size_t i = 0; i < n; ++i) sorted_cost += (sa[i] - sb[i]) * (sa[i] - sb[i]);
    const auto p = sda::metrics::linear_assignment(cost);
    REQUIRE(is_permutation(p, n));
    CHECK(assignment_cost(cost, p) == doctest::Approx(sorted_cost).epsilon(1e-10));
}

TEST_CASE("linear_assignment: non-square, empty or non-finite costs throw sda::error") {
    using sda::metrics::linear_assignment;
    CHECK_THROWS_WITH_AS(linear_assignment(Eigen::MatrixXd::Zero(2, 3)), doctest::Contains("square"), sda::error);
    CHECK_THROWS_WITH_AS(linear_assignment(Eigen::MatrixXd(0, 0)), doctest::Contains("empty"), sda::error);
    Eigen::MatrixXd cost = Eigen::MatrixXd::Zero(3, 3);
    cost(1, 2) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH_AS(linear_assignment(cost), doctest::Contains("non-finite entry (nan) at (1, 2)"), sda::error);
    cost(1, 2) = -std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(linear_assignment(cost), doctest::Contains("non-finite"), sda::error);
}

// --- wasserstein1 --------------------------------------------------------------------------

TEST_CASE("wasserstein1: zero to a permuted copy, |c| to a translated copy") {
    const sda::Tensor<double> a = uniform_tensor(21, {40, 9, 3}, -20.0, 30.0);  // Lorenz-63-like magnitudes
    std::vector<std::size_t> order(40);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::reverse(order.begin(), order.end());
    std::swap(order[3], order[17]);
    const sda::Tensor<double> permuted = permute_rows(a, order);
    CHECK(sda::metrics::wasserstein1(a, permuted) <= 1e-12);

    // W1(mu, mu + c) = |c|: the identity coupling gives |c|, and |E[X - Y]| = |c| bounds every coupling.
    const sda::Tensor<double> c = uniform_tensor(22, {1, 9, 3}, -0.5, 0.5);
    double norm = 0.0;
    for (const double v : c) norm += v * v;
    norm = std::sqrt(norm);
    const sda::Tensor<double> translated = permuted + c;  // broadcast over the samples
    CHECK(sda::metrics::wasserstein1(a, translated) == doctest::Approx(norm).epsilon(1e-10));
    CHECK(sda::metrics::wasserstein1(translated, a) == doctest::Approx(norm).epsilon(1e-10));
}

TEST_CASE("wasserstein1: trajectory sets against brute force over all permutations") {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        CAPTURE(seed);
        const std::size_t n = 6 + seed % 2;
        const sda::Tensor<double> a = uniform_tensor(2 * seed, {n, 4, 3}, 0.0, 1.0);
        const sda::Tensor<double> b = uniform_tensor(2 * seed + 1, {n, 4, 3}, 0.3, 1.5);
        Eigen::MatrixXd distance(n, n);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < n; ++j) distance(i, j) = sample_distance(a, i, b, j);
        const double expected = brute_force_assignment(distance) / double(n);
        CHECK(sda::metrics::wasserstein1(a, b) == doctest::Approx(expected).epsilon(1e-12));
    }
}

TEST_CASE("wasserstein1: 1-D sets agree with wasserstein1_1d, in double and float") {
    // Equal-size 1-D samples: the sorted matching is an optimal assignment for |x - y|.
    const std::size_t n = 200;
    const auto a = uniform_sample(31, n, 3.0), b = uniform_sample(32, n, 5.0);
    sda::Tensor<double> ta = sda::empty_tensor<double>({n}), tb = sda::empty_tensor<double>({n});
    std::copy(a.begin(), a.end(), ta.begin());
    std::copy(b.begin(), b.end(), tb.begin());
    const double expected = sda::metrics::wasserstein1_1d(a, b);
    CHECK(sda::metrics::wasserstein1(ta, tb) == doctest::Approx(expected).epsilon(1e-10));

    // float samples: the same numbers rounded to float, so W1 moves by at most their rounding.
    const sda::Tensor<float> fa = xt::cast<float>(ta), fb = xt::cast<float>(tb);
    std::vector<double> ra(fa.begin(), fa.end()), rb(fb.begin(), fb.end());
    CHECK(sda::metrics::wasserstein1(fa, fb) == doctest::Approx(sda::metrics::wasserstein1_1d(ra, rb)).epsilon(1e-10));
}

TEST_CASE("wasserstein1: unequal sizes, shapes, empty or non-finite sets throw sda::error") {
    using sda::metrics::wasserstein1;
    const sda::Tensor<double> a = uniform_tensor(41, {5, 4, 3}, 0.0, 1.0);
    CHECK_THROWS_WITH_AS(wasserstein1(a, uniform_tensor(42, {6, 4, 3}, 0.0, 1.0)),
                         doctest::Contains("a has N = 5 samples but b has N = 6"), sda::error);
    CHECK_THROWS_WITH_AS(wasserstein1(a, uniform_tensor(43, {5, 3, 4}, 0.0, 1.0)),
                         doctest::Contains("samples of a have shape [4, 3] but samples of b have shape [3, 4]"),
                         sda::error);
    CHECK_THROWS_WITH_AS(wasserstein1(a, sda::Tensor<double>(sda::empty_tensor<double>({0, 4, 3}))),
                         doctest::Contains("b has shape [0, 4, 3]"), sda::error);
    CHECK_THROWS_WITH_AS(wasserstein1(sda::Tensor<double>(3.0), a), doctest::Contains("rank 0"), sda::error);
    sda::Tensor<double> bad = a;
    bad(2, 1, 0) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(wasserstein1(a, bad), doctest::Contains("b has a non-finite entry"), sda::error);
    bad(2, 1, 0) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH_AS(wasserstein1(bad, a), doctest::Contains("a has a non-finite entry (nan)"), sda::error);
}

// --- mmd -----------------------------------------------------------------------------------

TEST_CASE("mmd: a hand-computed case, negative as the unbiased estimate may be") {
    // a = {0, 1}, b = {0, 2}, h = 1, k(d) = exp(-d^2 / 2):
    //   aa: 2 k(1) / 2 = e^-1/2;  bb: 2 k(2) / 2 = e^-2;
    //   ab: (k(0) + k(2) + k(1) + k(1)) * 2 / 4 = (1 + e^-2 + 2 e^-1/2) / 2;
    //   MMD^2_u = (e^-2 - 1) / 2.
    // The pooled pair distances are {0, 1, 1, 1, 2, 2}: the median heuristic also gives h = 1.
    sda::Tensor<double> a = sda::empty_tensor<double>({2, 1}), b = sda::empty_tensor<double>({2, 1});
    a(0, 0) = 0.0, a(1, 0) = 1.0, b(0, 0) = 0.0, b(1, 0) = 2.0;
    const double expected = (std::exp(-2.0) - 1.0) / 2.0;
    CHECK(sda::metrics::mmd(a, b, 1.0) == doctest::Approx(expected).epsilon(1e-14));
    CHECK(sda::metrics::mmd(a, b) == doctest::Approx(expected).epsilon(1e-14));
}

TEST_CASE("mmd: the U-statistic against direct loops, fixed and median bandwidth") {
    // (20, 15) samples give 595 pooled pairs (odd), (4, 4) give 28 (even: the median is a mean of two).
    for (const auto& [m, n] : {std::pair<std::size_t, std::size_t>{20, 15}, {4, 4}}) {
        CAPTURE(m);
        const sda::Tensor<double> a = uniform_tensor(51 + m, {m, 5, 2}, 0.0, 1.0);
        const sda::Tensor<double> b = uniform_tensor(52 + m, {n, 5, 2}, 0.2, 1.3);
        CHECK(sda::metrics::mmd(a, b, 0.7) == doctest::Approx(mmd_by_loops(a, b, 0.7)).epsilon(1e-12));
        const double h = median_pooled_distance(a, b);
        CHECK(sda::metrics::mmd(a, b) == doctest::Approx(mmd_by_loops(a, b, h)).epsilon(1e-12));
        CHECK(sda::metrics::mmd(a, b) != doctest::Approx(mmd_by_loops(a, b, 0.7)).epsilon(1e-6));  // h matters
        // float samples give the float-rounded numbers' statistic
        const sda::Tensor<float> fa = xt::cast<float>(a), fb = xt::cast<float>(b);
        const sda::Tensor<double> ra = xt::cast<double>(fa), rb = xt::cast<double>(fb);
        CHECK(sda::metrics::mmd(fa, fb, 0.7) == doctest::Approx(mmd_by_loops(ra, rb, 0.7)).epsilon(1e-12));
    }
}

TEST_CASE("mmd: unbiased, mean 0 over replicates of small sets from one law") {
    // m = n = 10 from N(0, I_2), h = 1: the V-statistic (with the diagonal) would sit
    // (1 - 1/3)(1/m + 1/n) = 0.13 above 0, many standard errors of this mean.
    sda::Generator gen(61);
    std::vector<double> values;
    for (int r = 0; r < 2000; ++r) {
        const sda::Tensor<double> a = normal_tensor(gen, {10, 2}, 0.0, 1.0);
        const sda::Tensor<double> b = normal_tensor(gen, {10, 2}, 0.0, 1.0);
        values.push_back(sda::metrics::mmd(a, b, 1.0));
    }
    const auto test = replicate_test(values, 0.0);
    CAPTURE(test.mean);
    CAPTURE(test.standard_error);
    CHECK(test.pass());
    CHECK(test.standard_error < 0.01);  // the test resolves the V-statistic's bias
}

TEST_CASE("mmd: Gaussian closed form 2 c (1 - exp(-|mu|^2 / (2(h^2 + 2 s^2)))) within its Monte-Carlo error") {
    // X ~ N(0, s^2 I_d), Y ~ N(mu, s^2 I_d), k = exp(-|x - y|^2 / (2 h^2)): X - X' ~ N(0, 2 s^2 I_d) gives
    // E k(X, X') = c = (h^2 / (h^2 + 2 s^2))^(d/2), and E k(X, Y) = c exp(-|mu|^2 / (2 (h^2 + 2 s^2))).
    // The estimate is unbiased: the mean of 40 replicates of N = 500 is judged by its t statistic.
    const double s = 1.0, h = 1.5, shift = 0.6;
    const std::size_t N = 500;
    const double c = std::pow(h * h / (h * h + 2.0 * s * s), 1.5);  // d = 3
    const double expected = 2.0 * c * (1.0 - std::exp(-shift * shift / (2.0 * (h * h + 2.0 * s * s))));
    sda::Generator gen(62);
    std::vector<double> values;
    for (int r = 0; r < 40; ++r) {
        const sda::Tensor<double> x = normal_tensor(gen, {N, 1, 3}, 0.0, s);
        sda::Tensor<double> y = normal_tensor(gen, {N, 1, 3}, 0.0, s);
        xt::view(y, xt::all(), 0, 0) += shift;  // mu = (shift, 0, 0)
        values.push_back(sda::metrics::mmd(x, y, h));
    }
    const auto test = replicate_test(values, expected);
    CAPTURE(expected);
    CAPTURE(test.mean);
    CAPTURE(test.standard_error);
    CHECK(test.pass());
    CHECK(test.standard_error < 0.1 * expected);  // tight enough to tell h from h / sqrt(2)
}

TEST_CASE("mmd: too few samples, other shapes, NaN and bad bandwidths throw sda::error") {
    using sda::metrics::mmd;
    const sda::Tensor<double> a = uniform_tensor(71, {5, 3}, 0.0, 1.0);
    CHECK_THROWS_WITH_AS(mmd(a, uniform_tensor(72, {1, 3}, 0.0, 1.0)),
                         doctest::Contains("b has shape [1, 3], expected at least 2 samples"), sda::error);
    CHECK_THROWS_WITH_AS(mmd(a, uniform_tensor(73, {5, 2}, 0.0, 1.0)),
                         doctest::Contains("samples of a have shape [3] but samples of b have shape [2]"), sda::error);
    CHECK_NOTHROW(mmd(a, uniform_tensor(74, {7, 3}, 0.0, 1.0)));  // sizes may differ
    sda::Tensor<double> bad = a;
    bad(4, 2) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH_AS(mmd(bad, a), doctest::Contains("a has a non-finite entry"), sda::error);
    CHECK_THROWS_WITH_AS(mmd(a, a, -1.0), doctest::Contains("bandwidth must be finite and non-negative"), sda::error);
    CHECK_THROWS_WITH_AS(mmd(a, a, std::numeric_limits<double>::infinity()), doctest::Contains("bandwidth"),
                         sda::error);
    const sda::Tensor<double> same = xt::ones<double>({6, 3});
    CHECK_THROWS_WITH_AS(mmd(same, same), doctest::Contains("median heuristic gives bandwidth 0"), sda::error);
}

// --- ensemble scores -----------------------------------------------------------------------

TEST_CASE("rmse, spread, spread_skill: hand-computed values") {
    // Members (1, 0) and (3, 4), truth (2, 0): mean (2, 2), errors (0, 2), rmse = sqrt(4 / 2);
    // unbiased variances 2 and 8, spread = sqrt(5).
    sda::Tensor<double> x = sda::empty_tensor<double>({2, 2}), truth = sda::empty_tensor<double>({2});
    x(0, 0) = 1.0, x(0, 1) = 0.0, x(1, 0) = 3.0, x(1, 1) = 4.0;
    truth(0) = 2.0, truth(1) = 0.0;
    CHECK(sda::metrics::rmse(x, truth) == doctest::Approx(std::sqrt(2.0)).epsilon(1e-15));
    CHECK(sda::metrics::spread(x) == doctest::Approx(std::sqrt(5.0)).epsilon(1e-15));
    CHECK(sda::metrics::spread_skill(x, truth) == doctest::Approx(std::sqrt(2.5)).epsilon(1e-15));
    // CRPS per entry: entry 0: (1 + 1)/2 - (2 * 2) / (2 * 4) = 0.5; entry 1: (0 + 4)/2 - (2 * 4) / 8 = 1.
    CHECK(sda::metrics::crps(x, truth) == doctest::Approx(0.75).epsilon(1e-15));
}

TEST_CASE("ensemble scores against direct loops, with truth [1, ...] as the member shape") {
    for (const std::size_t N : {2, 3, 17}) {
        CAPTURE(N);
        const sda::Tensor<double> x = uniform_tensor(80 + N, {N, 6, 3}, -2.0, 2.0);
        const sda::Tensor<double> truth = uniform_tensor(90 + N, {1, 6, 3}, -1.0, 1.0);
        const std::size_t E = 18;
        double squared_error = 0.0, variance = 0.0, score = 0.0;
        for (std::size_t e = 0; e < E; ++e) {
            std::vector<double> members;
            for (std::size_t i = 0; i < N; ++i) members.push_back(x.data()[i * E + e]);
            const double mean = std::accumulate(members.begin(), members.end(), 0.0) / double(N);
            squared_error += (mean - truth.data()[e]) * (mean - truth.data()[e]);
            for (const double v : members) variance += (v - mean) * (v - mean) / double(N - 1);
            score += crps_by_loops(members, truth.data()[e]);
        }
        const sda::Tensor<double> member_shaped = xt::view(truth, 0);
        for (const auto* y : {&truth, &member_shaped}) {
            CHECK(sda::metrics::rmse(x, *y) == doctest::Approx(std::sqrt(squared_error / E)).epsilon(1e-13));
            CHECK(sda::metrics::crps(x, *y) == doctest::Approx(score / E).epsilon(1e-13));
            CHECK(sda::metrics::spread_skill(x, *y) ==
                  doctest::Approx(std::sqrt(variance / E) / std::sqrt(squared_error / E)).epsilon(1e-13));
        }
        CHECK(sda::metrics::spread(x) == doctest::Approx(std::sqrt(variance / E)).epsilon(1e-13));
    }
}

TEST_CASE("moments and per-state scores against direct loops") {
    // N members of trajectories of L = 5 states of 2 x 3 entries
    for (const std::size_t N : {2, 7}) {
        CAPTURE(N);
        const std::size_t L = 5, S = 6;
        const sda::Tensor<double> x = uniform_tensor(100 + N, {N, L, 2, 3}, -2.0, 2.0);
        const sda::Tensor<double> truth = uniform_tensor(110 + N, {L, 2, 3}, -1.0, 1.0);
        const sda::Tensor<double> mean = sda::metrics::ensemble_mean(x), sd = sda::metrics::ensemble_std(x);
        REQUIRE(sda::shape_of(mean) == sda::Shape{L, 2, 3});
        const auto rmse = sda::metrics::rmse_per_state(x, truth);
        const auto member = sda::metrics::member_rmse_per_state(x, truth);
        const auto spread = sda::metrics::spread_per_state(x);
        REQUIRE(rmse.size() == L);
        for (std::size_t i = 0; i < L; ++i) {
            double squared_error = 0, variance = 0, member_error = 0;
            for (std::size_t e = i * S; e < (i + 1) * S; ++e) {
                double m = 0;
                for (std::size_t n = 0; n < N; ++n) m += x.data()[n * L * S + e] / double(N);
                double v = 0;
                for (std::size_t n = 0; n < N; ++n) v += std::pow(x.data()[n * L * S + e] - m, 2) / double(N - 1);
                CHECK(mean.data()[e] == doctest::Approx(m).epsilon(1e-13));
                CHECK(sd.data()[e] == doctest::Approx(std::sqrt(v)).epsilon(1e-13));
                squared_error += std::pow(m - truth.data()[e], 2) / double(S);
                variance += v / double(S);
            }
            for (std::size_t n = 0; n < N; ++n) {
                double own = 0;
                for (std::size_t e = i * S; e < (i + 1) * S; ++e) own += std::pow(x.data()[n * L * S + e] - truth.data()[e], 2);
                member_error += std::sqrt(own / double(S)) / double(N);
            }
            CHECK(rmse[i] == doctest::Approx(std::sqrt(squared_error)).epsilon(1e-13));
            CHECK(spread[i] == doctest::Approx(std::sqrt(variance)).epsilon(1e-13));
            CHECK(member[i] == doctest::Approx(member_error).epsilon(1e-13));
            CHECK(member[i] >= rmse[i]);  // a single sample errs more than the mean (Jensen)
        }
    }
    // a one-member "ensemble" is a point estimate: its per-state RMSE is that of the point
    const sda::Tensor<double> point = uniform_tensor(120, {1, 5, 2, 3}, -1.0, 1.0);
    CHECK(sda::metrics::rmse_per_state(point, sda::Tensor<double>(xt::zeros<double>({5, 2, 3})))[2] ==
          doctest::Approx(std::sqrt(xt::mean(xt::square(xt::view(point, 0, 2)))())).epsilon(1e-13));
    CHECK_THROWS_AS(sda::metrics::spread_per_state(point), sda::error);  // one member has no spread
    CHECK_THROWS_AS(sda::metrics::rmse_per_state(sda::Tensor<double>(xt::zeros<double>({3, 4})),
                                                 sda::Tensor<double>(xt::zeros<double>({5}))),
                    sda::error);
}

TEST_CASE("crps: a single member scores its mean absolute error") {
    const sda::Tensor<double> x = uniform_tensor(101, {1, 7}, -3.0, 3.0);
    const sda::Tensor<double> truth = uniform_tensor(102, {7}, -3.0, 3.0);
    double expected = 0.0;
    for (std::size_t e = 0; e < 7; ++e) expected += std::abs(x(0, e) - truth(e)) / 7.0;
    CHECK(sda::metrics::crps(x, truth) == doctest::Approx(expected).epsilon(1e-14));
    CHECK(sda::metrics::rmse(x, truth) >= expected);  // the root mean square bounds the mean
    sda::Tensor<double> scalar = sda::empty_tensor<double>({1}), y = sda::Tensor<double>(0.25);
    scalar(0) = -1.5;
    CHECK(sda::metrics::crps(scalar, y) == doctest::Approx(1.75).epsilon(1e-15));
}

TEST_CASE("crps: Gaussian ensembles against s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)] plus the N^2 bias") {
    // The N^2 estimator's mean is CRPS + E|X - X'| / (2N) = CRPS + s / (N sqrt(pi)) (the "fair"
    // N(N - 1) form has mean CRPS). Means of iid replicates are judged by their t statistic; at
    // N = 10 the bias is many standard errors, at N = 1000 the estimate approaches the closed form.
    const boost::math::normal standard;
    const double mu = 0.3, s = 1.5, y_value = 1.0;
    const double z = (y_value - mu) / s;
    const double closed_form = s * (z * (2.0 * boost::math::cdf(standard, z) - 1.0) +
                                    2.0 * boost::math::pdf(standard, z) - 1.0 / std::sqrt(std::numbers::pi));
    const sda::Tensor<double> y(y_value);
    sda::Generator gen(111);
    for (const auto& [N, R] : {std::pair<std::size_t, int>{10, 4000}, {1000, 200}}) {
        CAPTURE(N);
        std::vector<double> values;
        for (int r = 0; r < R; ++r) values.push_back(sda::metrics::crps(normal_tensor(gen, {N}, mu, s), y));
        const double bias = s / (double(N) * std::sqrt(std::numbers::pi));
        const auto test = replicate_test(values, closed_form + bias);
        CAPTURE(closed_form);
        CAPTURE(test.mean);
        CAPTURE(test.standard_error);
        CHECK(test.pass());
        if (N == 10) CHECK(bias > 5.0 * test.threshold * test.standard_error);  // the fair form would fail
    }
}

TEST_CASE("rank_histogram: hand-computed ranks, ties shared among the ranks they could take") {
    // Members (0, 1, 2) in each of 4 entries; truths -1 (rank 0), 1.5 (rank 2), 5 (rank 3) and 1
    // (tied with one member: ranks 1 and 2, half each).
    sda::Tensor<double> x = sda::empty_tensor<double>({3, 4}), truth = sda::empty_tensor<double>({4});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t e = 0; e < 4; ++e) x(i, e) = double(i);
    truth(0) = -1.0, truth(1) = 1.5, truth(2) = 5.0, truth(3) = 1.0;
    const std::vector<double> counts = sda::metrics::rank_histogram(x, truth);
    REQUIRE(counts.size() == 4);
    CHECK(counts[0] == 1.0);
    CHECK(counts[1] == 0.5);
    CHECK(counts[2] == 1.5);
    CHECK(counts[3] == 1.0);
    // all members equal to the truth: every rank a quarter
    const sda::Tensor<double> same = xt::ones<double>({3, 1}), one = xt::ones<double>({1});
    for (const double c : sda::metrics::rank_histogram(same, one)) CHECK(c == 0.25);
}

TEST_CASE("rank_histogram: flat for an exchangeable truth (chi-square), U-shaped for an under-dispersed ensemble") {
    const std::size_t N = 9, E = 5000;
    sda::Generator gen(131);
    const sda::Tensor<double> x = normal_tensor(gen, {N, E}, 0.0, 1.0), truth = normal_tensor(gen, {E}, 0.0, 1.0);
    const std::vector<double> counts = sda::metrics::rank_histogram(x, truth);
    REQUIRE(counts.size() == N + 1);
    CHECK(std::accumulate(counts.begin(), counts.end(), 0.0) == doctest::Approx(double(E)));
    // Pearson's statistic with N degrees of freedom, against its 1 - 1e-4 quantile
    const double expected = double(E) / double(N + 1);
    double chi2 = 0;
    for (const double c : counts) chi2 += (c - expected) * (c - expected) / expected;
    const double limit = boost::math::quantile(boost::math::chi_squared(double(N)), 1.0 - 1e-4);
    CAPTURE(chi2);
    CHECK(chi2 < limit);
    // members at half the truth's spread: the truth falls outside them far more often
    const sda::Tensor<double> narrow = x * 0.5;
    const std::vector<double> u = sda::metrics::rank_histogram(narrow, truth);
    CHECK(u.front() > 2.0 * expected);
    CHECK(u.back() > 2.0 * expected);
    CHECK(u[N / 2] < expected);
    CHECK_THROWS_AS(sda::metrics::rank_histogram(x, normal_tensor(gen, {E + 1}, 0.0, 1.0)), sda::error);
    sda::Tensor<double> bad = truth;
    bad(3) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH_AS(sda::metrics::rank_histogram(x, bad), doctest::Contains("truth has a non-finite entry"), sda::error);
}

TEST_CASE("ensemble scores: bad shapes, too few members and NaN throw sda::error") {
    using namespace sda::metrics;
    const sda::Tensor<double> x = uniform_tensor(121, {4, 5, 3}, 0.0, 1.0);
    const sda::Tensor<double> truth = uniform_tensor(122, {5, 3}, 0.0, 1.0);
    CHECK_THROWS_WITH_AS(rmse(x, uniform_tensor(123, {3, 5}, 0.0, 1.0)),
                         doctest::Contains("truth has shape [3, 5], expected the member shape [5, 3] or [1, 5, 3]"),
                         sda::error);
    CHECK_THROWS_WITH_AS(crps(x, uniform_tensor(124, {2, 5, 3}, 0.0, 1.0)), doctest::Contains("truth has shape"),
                         sda::error);
    CHECK_THROWS_WITH_AS(spread(uniform_tensor(125, {1, 5, 3}, 0.0, 1.0)),
                         doctest::Contains("expected at least 2 members"), sda::error);
    CHECK_THROWS_WITH_AS(crps(sda::Tensor<double>(sda::empty_tensor<double>({0, 5, 3})), truth),
                         doctest::Contains("ensemble x has shape [0, 5, 3]"), sda::error);
    sda::Tensor<double> bad = x;
    bad(3, 4, 2) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH_AS(crps(bad, truth), doctest::Contains("ensemble x has a non-finite entry"), sda::error);
    CHECK_THROWS_WITH_AS(spread(bad), doctest::Contains("non-finite"), sda::error);
    sda::Tensor<double> bad_truth = truth;
    bad_truth(0, 0) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(rmse(x, bad_truth), doctest::Contains("truth has a non-finite entry"), sda::error);
    const sda::Tensor<double> exact = xt::ones<double>({3, 2}) * 0.5, at = xt::ones<double>({2}) * 0.5;
    CHECK_THROWS_WITH_AS(spread_skill(exact, at), doctest::Contains("rmse 0"), sda::error);
}

}  // TEST_SUITE

TEST_CASE("sample_health: non-finite, out-of-bound and healthy samples, and take_samples") {
    sda::Tensor<float> x = xt::zeros<float>({5, 3, 2});
    x(1, 2, 1) = std::numeric_limits<float>::quiet_NaN();
    x(2, 0, 0) = -10.5f;                                     // beyond the bound 10
    x(3, 1, 0) = 10.0f;                                      // on it: healthy
    x(4, 0, 1) = std::numeric_limits<float>::infinity(), x(4, 1, 1) = 20.0f;  // non-finite wins
    const auto health = sda::metrics::sample_health(x, 10.0);
    CHECK(health.healthy == std::vector<std::size_t>{0, 3});
    CHECK(health.non_finite == std::vector<std::size_t>{1, 4});
    CHECK(health.outside == std::vector<std::size_t>{2});
    CHECK(health.bad() == 3);
    const sda::Tensor<float> kept = sda::metrics::take_samples(x, health.healthy);
    REQUIRE(sda::shape_of(kept) == sda::Shape{2, 3, 2});
    CHECK(kept(1, 1, 0) == 10.0f);
    CHECK(xt::sum(xt::abs(kept))() == 10.0f);
    CHECK(sda::metrics::sample_health(sda::Tensor<double>(xt::zeros<double>({0, 4})), 1.0).healthy.empty());
    CHECK_THROWS_WITH_AS(sda::metrics::sample_health(x, 0.0),
                         "sda::metrics::sample_health: bound must be finite and positive, got 0", sda::error);
    CHECK_THROWS_WITH_AS(sda::metrics::take_samples(x, {5}), "sda::metrics::take_samples: sample 5 is out of range for 5 samples",
                         sda::error);
}
