// Tests of sda/observe: each operator's action, its exact VJP and JVP, and
// the validation of observations.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include <xtensor/xview.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/linear.hpp"
#include "sda/observe/pool.hpp"
#include "sda/observe/saturation.hpp"
#include "support/fd.hpp"
#include "support/tensors.hpp"

using sda::Shape;
using sda::Tensor;
using Backend = sda::CpuBackend<double>;
using sda::test::tensor;
namespace observe = sda::observe;

namespace {

double inner(const Tensor<double>& a, const Tensor<double>& b) {
    return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

/// For x of shape `batched`: the VJP against finite differences, and the JVP as
/// its adjoint, <J dx, v> = <dx, J^T v>.
template <class Op>
void check_derivatives(const Op& op, const Shape& batched, sda::Generator& gen) {
    const Tensor<double> x = Backend::normal(batched, gen), dx = Backend::normal(batched, gen);
    const Tensor<double> y = op.apply(x);
    const Tensor<double> v = Backend::normal(sda::shape_of(y), gen);
    const Tensor<double> g = op.vjp(x, v);
    REQUIRE(sda::shape_of(g) == batched);
    CHECK(sda::test::vjp_error([&](const Tensor<double>& p) { return op.apply(p); }, x, v, g) < 1e-6);
    const Tensor<double> jdx = op.jvp(x, dx);
    REQUIRE(sda::shape_of(jdx) == sda::shape_of(y));
    CHECK(inner(jdx, v) == doctest::Approx(inner(dx, g)).epsilon(1e-12));
    CHECK(op.output_shape(sda::event_shape_of(batched)) == sda::event_shape_of(sda::shape_of(y)));
}

}  // namespace

TEST_CASE("observe: selections pick the right entries") {
    Tensor<double> x = sda::empty_tensor<double>({2, 5, 3});
    std::iota(x.begin(), x.end(), 0.0);
    const Tensor<double> selected = observe::Select({0, 4}, {2}).apply(x);
    CHECK(selected == tensor({2, 2, 1}, {2, 14, 17, 29}));
    CHECK(observe::Subsample(2, 1).apply(x) == xt::view(x, xt::all(), xt::range(1, 5, 2)));
    CHECK(observe::Subsample(2).output_shape({5, 3}) == Shape{3, 3});
    xt::xarray<bool> mask = xt::zeros<bool>({5, 3});
    mask(1, 0) = mask(3, 2) = true;
    CHECK(observe::Mask(mask).apply(x) == Tensor<double>{{3, 11}, {18, 26}});
    const Tensor<double> dense = observe::Linear<double>(Eigen::MatrixXd::Identity(15, 15)).apply(x);
    CHECK(dense == xt::reshape_view(x, {2, 15}));
}

TEST_CASE("observe: every operator's VJP and JVP are exact") {
    sda::Generator gen(11);
    xt::xarray<bool> mask = xt::zeros<bool>({6, 2});
    mask(0, 1) = mask(2, 0) = mask(5, 1) = true;
    Eigen::MatrixXd A = Eigen::MatrixXd::Random(4, 12);
    check_derivatives(observe::Identity{}, {3, 6, 2}, gen);
    check_derivatives(observe::Select({1, 1, 4}, {0}), {3, 6, 2}, gen);  // a repeated index adds up in the VJP
    check_derivatives(observe::Select({}, {1}), {3, 6, 2}, gen);
    check_derivatives(observe::Mask(mask), {3, 6, 2}, gen);
    check_derivatives(observe::Subsample(3, 2), {3, 6, 2}, gen);
    check_derivatives(observe::Linear<double>(A), {3, 6, 2}, gen);
    check_derivatives(observe::Saturation(0.7), {3, 6, 2}, gen);
    // the chain rule of a composition, nonlinear inside and outside
    check_derivatives(observe::compose(observe::Saturation(2.0), observe::compose(observe::Linear<double>(A),
                                                                                  observe::Saturation(0.5))),
                      {3, 6, 2}, gen);
    check_derivatives(observe::AvgPool(2), {2, 3, 2, 4, 6}, gen);  // [B, L, C, H, W]
    check_derivatives(observe::AvgPool(2, 3), {2, 3, 2, 4, 6}, gen);
    check_derivatives(observe::AvgPool::last_axis(3), {3, 6, 6}, gen);
    check_derivatives(observe::compose(observe::Saturation(0.5), observe::AvgPool(2)), {2, 3, 2, 4, 6}, gen);
}

TEST_CASE("observe: AvgPool averages non-overlapping blocks of the last two axes") {
    Tensor<double> x = sda::empty_tensor<double>({1, 4, 4});
    std::iota(x.begin(), x.end(), 0.0);  // rows 0..3, 4..7, 8..11, 12..15
    const observe::AvgPool pool(2);
    // (0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, (8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4
    CHECK(pool.apply(x) == tensor({1, 2, 2}, {2.5, 4.5, 10.5, 12.5}));
    CHECK(pool.jvp(x, x) == pool.apply(x));
    // the adjoint spreads v / 4 over each block
    CHECK(pool.vjp(x, tensor({1, 2, 2}, {1, 2, 3, 4})) == tensor({1, 4, 4}, {0.25, 0.25, 0.5, 0.5,  //
                                                                           0.25, 0.25, 0.5, 0.5,  //
                                                                           0.75, 0.75, 1.0, 1.0,  //
                                                                           0.75, 0.75, 1.0, 1.0}));
    CHECK(observe::AvgPool::last_axis(2).apply(x) == tensor({1, 4, 2}, {0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5, 14.5}));
    CHECK(observe::AvgPool(1, 4).apply(x) == tensor({1, 4, 1}, {1.5, 5.5, 9.5, 13.5}));
    CHECK(observe::AvgPool(2, 3).block() == Shape{2, 3});
    CHECK(observe::AvgPool::last_axis(3).block() == Shape{3});

    // leading axes [B, L, C] are kept; against the definition, with rectangular blocks
    sda::Generator gen(5);
    const Tensor<double> fields = Backend::normal({2, 3, 2, 6, 8}, gen);
    const observe::AvgPool rect(3, 2);
    CHECK(rect.output_shape({3, 2, 6, 8}) == Shape{3, 2, 2, 4});
    const Tensor<double> y = rect.apply(fields);
    REQUIRE(sda::shape_of(y) == Shape{2, 3, 2, 2, 4});
    double worst = 0.0;
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t l = 0; l < 3; ++l)
            for (std::size_t c = 0; c < 2; ++c)
                for (std::size_t i = 0; i < 2; ++i)
                    for (std::size_t j = 0; j < 4; ++j) {
                        double sum = 0.0;
                        for (std::size_t dy = 0; dy < 3; ++dy)
                            for (std::size_t dx = 0; dx < 2; ++dx) sum += fields(b, l, c, 3 * i + dy, 2 * j + dx);
                        worst = std::max(worst, std::abs(y(b, l, c, i, j) - sum / 6.0));
                    }
    CHECK(worst < 1e-14);

    // float events, as the score network produces them
    const Tensor<float> single = xt::cast<float>(fields);
    CHECK(xt::amax(xt::abs(xt::cast<double>(rect.apply(single)) - y))() < 1e-6);
}

TEST_CASE("observe: AvgPool is the adjoint of its VJP on Kolmogorov-sized fields") {
    // <A x, v> = <x, A^T v> for [B, L, C, H, W] = [8, 16, 2, 32, 32] and [4, 4, 2, 64, 64]
    sda::Generator gen(21);
    for (const auto& [op, shape] : {std::pair{observe::AvgPool(4), Shape{8, 16, 2, 32, 32}},
                                    std::pair{observe::AvgPool(2, 8), Shape{4, 4, 2, 64, 64}}}) {
        const Tensor<double> x = Backend::normal(shape, gen);
        const Tensor<double> ax = op.apply(x);
        const Tensor<double> v = Backend::normal(sda::shape_of(ax), gen);
        const Tensor<double> atv = op.vjp(x, v);
        const double scale = std::sqrt(inner(ax, ax) * inner(v, v));
        CHECK(std::abs(inner(ax, v) - inner(x, atv)) <= 1e-12 * scale);
        CHECK(op.jvp(x, x) == ax);
    }
}

TEST_CASE("observe: AvgPool composes with the other operators") {
    sda::Generator gen(8);
    const Shape batched{2, 4, 2, 4, 4};  // [B, L, C, H, W]
    // a nonlinear sensor on the coarse grid, and coarsening of saturated fields: VJPs against finite differences
    check_derivatives(observe::compose(observe::Saturation(0.3), observe::AvgPool(2)), batched, gen);
    check_derivatives(observe::compose(observe::AvgPool(2), observe::Saturation(0.3)), batched, gen);
    // sparse in time (every other state), sparse in space (some coarse cells)
    check_derivatives(observe::compose(observe::AvgPool(2), observe::Subsample(2)), batched, gen);
    xt::xarray<bool> cells = xt::zeros<bool>({4, 2, 2, 2});
    cells(0, 0, 1, 1) = cells(2, 1, 0, 0) = cells(3, 0, 0, 1) = true;
    const auto masked = observe::compose(observe::Mask(cells), observe::AvgPool(2));
    CHECK(masked.output_shape({4, 2, 4, 4}) == Shape{3});
    check_derivatives(masked, batched, gen);
    const auto sensor = observe::compose(observe::Saturation(1.5), masked);
    check_derivatives(sensor, batched, gen);

    // its matrix: each row averages one block, each entry falls in exactly one block
    const Eigen::MatrixXd P = observe::dense_matrix(observe::AvgPool(2), {1, 4, 4});
    CHECK(P.rows() == 4);
    CHECK(P.cols() == 16);
    CHECK((P.array() == 0.25).count() == 16);
    CHECK(P.rowwise().sum().isApprox(Eigen::VectorXd::Ones(4)));
    CHECK(P.colwise().sum().isApprox(Eigen::RowVectorXd::Constant(16, 0.25)));

    // as the operator of an observation of coarse velocity fields
    const sda::GaussianObservation obs(observe::AvgPool(4), Tensor<double>(xt::zeros<double>({16, 2, 8, 8})), 0.01);
    CHECK(obs.check_event({16, 2, 32, 32}) == 0);
    CHECK_THROWS_AS(obs.check_event({16, 2, 64, 64}), sda::error);
}

TEST_CASE("observe: AvgPool rejects factors and events that do not fit") {
    CHECK_THROWS_WITH_AS(observe::AvgPool(0), "sda::observe::AvgPool: the pooling factor must be >= 1, got (fy, fx) = (0, 0)",
                         sda::error);
    CHECK_THROWS_AS(observe::AvgPool(2, 0), sda::error);
    CHECK_THROWS_AS(observe::AvgPool::last_axis(0), sda::error);
    const observe::AvgPool pool(4);
    CHECK_THROWS_WITH_AS(pool.output_shape({16, 2, 30, 32}),
                         "sda::observe::AvgPool: events of shape [16, 2, 30, 32] do not split into 4 x 4 blocks (30 is "
                         "not a multiple of 4)",
                         sda::error);
    CHECK_THROWS_WITH_AS(observe::AvgPool(2, 3).output_shape({4, 8}),
                         "sda::observe::AvgPool: events of shape [4, 8] do not split into 2 x 3 blocks (8 is not a "
                         "multiple of 3)",
                         sda::error);
    CHECK_THROWS_WITH_AS(pool.output_shape({32}),
                         "sda::observe::AvgPool: a 4 x 4 pool needs events of 2 or more axes, got shape [32]",
                         sda::error);
    CHECK(observe::AvgPool::last_axis(4).output_shape({32}) == Shape{8});
    CHECK_THROWS_AS(observe::AvgPool::last_axis(4).output_shape({32, 6}), sda::error);
    CHECK_THROWS_AS(observe::AvgPool::last_axis(4).output_shape({}), sda::error);
    // the same checks where batches enter
    const Tensor<double> x = xt::zeros<double>({2, 3, 8, 6});
    CHECK_THROWS_AS(pool.apply(x), sda::error);
    CHECK_THROWS_AS(pool.vjp(x, Tensor<double>(xt::zeros<double>({2, 3, 2, 1}))), sda::error);
    CHECK_THROWS_AS(pool.apply(Tensor<double>(xt::zeros<double>({8}))), sda::error);
    const observe::AvgPool two(2);
    CHECK_NOTHROW(two.apply(x));
    CHECK_THROWS_WITH_AS(two.vjp(x, Tensor<double>(xt::zeros<double>({2, 3, 4, 4}))),
                         "sda::observe::AvgPool: cotangent of shape [2, 3, 4, 4] does not match the observation "
                         "[2, 3, 4, 3]",
                         sda::error);
}

TEST_CASE("observe: dense_matrix recovers a linear operator's matrix") {
    Eigen::MatrixXd A = Eigen::MatrixXd::Random(3, 8);
    CHECK(observe::dense_matrix(observe::Linear<double>(A), {4, 2}).isApprox(A));
    const Eigen::MatrixXd S = observe::dense_matrix(observe::Select({1, 3}, {1}), {4, 2});
    Eigen::MatrixXd expected = Eigen::MatrixXd::Zero(2, 8);
    expected(0, 3) = expected(1, 7) = 1.0;
    CHECK(S == expected);
}

TEST_CASE("observe: operators reject events that do not fit") {
    CHECK_THROWS_WITH_AS(observe::Select({7}, {}).output_shape({5, 3}),
                         "sda::observe::Select: state index 7 is out of range for 5 states", sda::error);
    CHECK_THROWS_WITH_AS(observe::Select({}, {3}).output_shape({5, 3}),
                         "sda::observe::Select: coordinate index 3 is out of range for states of 3 entries", sda::error);
    CHECK_THROWS_AS(observe::Subsample(0), sda::error);
    CHECK_THROWS_AS(observe::Subsample(2, 5).output_shape({5, 3}), sda::error);
    CHECK_THROWS_AS(observe::Mask(xt::zeros<bool>({2, 2})), sda::error);
    CHECK_THROWS_WITH_AS(observe::Linear<double>(Eigen::MatrixXd::Ones(2, 6)).output_shape({5, 3}),
                         "sda::observe::Linear: a 2 x 6 matrix cannot act on events of shape [5, 3] (15 entries)",
                         sda::error);
    CHECK_THROWS_AS(observe::Saturation(-1.0), sda::error);
}

TEST_CASE("observe: an operator is validated and its index built once, when bound, then only shapes are checked") {
    const Backend cpu;
    // binding validates against the event: the error comes at bind time, never inside a sampling loop
    CHECK_THROWS_WITH_AS(sda::bind(observe::Select({7}, {}), {5, 3}, cpu),
                         "sda::observe::Select: state index 7 is out of range for 5 states", sda::error);
    CHECK_THROWS_AS(sda::bind(observe::AvgPool(3), {2, 4, 4}, cpu), sda::error);
    CHECK_THROWS_AS(sda::bind(observe::Linear<double>(Eigen::MatrixXd::Ones(2, 6)), {5, 3}, cpu), sda::error);
    // a composition binds each operator to what it sees: Select sees Subsample's 2 states, not 3
    CHECK_NOTHROW(sda::bind(observe::Select({2}, {}), {3, 3}, cpu));
    CHECK_THROWS_AS(sda::bind(observe::compose(observe::Select({2}, {}), observe::Subsample(2)), {3, 3}, cpu),
                    sda::error);
    // the bound selection equals the unbound one, and refuses a cotangent of the wrong shape
    const observe::Select select({0, 3}, {2, 0});
    const auto bound = sda::bind(select, {4, 3}, cpu);
    const Tensor<double> x = tensor({2, 4, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,  //
                                                12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23});
    CHECK(bound.apply(x) == select.apply(x));
    CHECK(bound.apply(x) == tensor({2, 2, 2}, {2, 0, 11, 9, 14, 12, 23, 21}));
    CHECK_THROWS_WITH_AS(bound.vjp(x, Tensor<double>(xt::zeros<double>({2, 2, 3}))),
                         "sda::observe: cotangent of shape [2, 2, 3] does not match the observation [2, 2, 2]", sda::error);
    // guide binds the observation to the prior's events: an operator that does not fit fails there
    const sda::GaussianObservation obs(observe::Select({0, 3}, {0}), Tensor<double>(xt::zeros<double>({2, 1})), 0.1);
    const auto bound_obs = obs.bind({4, 3});
    CHECK(bound_obs.op().apply(x) == tensor({2, 2, 1}, {0, 9, 12, 21}));
    CHECK_THROWS_AS(obs.bind({3, 3}), sda::error);
}

TEST_CASE("observation: y and the noise are validated where they enter") {
    const observe::Select op({0, 2}, {0});
    const Tensor<double> y = xt::zeros<double>({2, 1});
    CHECK_NOTHROW(sda::GaussianObservation(op, y, 0.01));
    CHECK_THROWS_WITH_AS(sda::GaussianObservation(op, y, -0.1),
                         "sda::GaussianObservation: noise variance must be finite and positive everywhere (smallest "
                         "entry -0.1)",
                         sda::error);
    CHECK_THROWS_AS(sda::GaussianObservation(op, y, 0.0), sda::error);
    Tensor<double> bad = y;
    bad(1, 0) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(sda::GaussianObservation(op, bad, 0.01), "sda::GaussianObservation: y has a NaN or Inf entry",
                         sda::error);
    bad(1, 0) = std::nan("");
    CHECK_THROWS_AS(sda::GaussianObservation(op, bad, 0.01), sda::error);
    const Tensor<double> per_entry = tensor({2, 1}, {0.1, std::nan("")});
    CHECK_THROWS_AS(sda::GaussianObservation(op, y, per_entry), sda::error);
    CHECK_THROWS_AS(sda::GaussianObservation(op, y, Tensor<double>{0.1, 0.2, 0.3}), sda::error);

    // y against the operator's output for the model's events
    const sda::GaussianObservation obs(op, y, 0.01);
    CHECK(obs.check_event({5, 3}) == 0);
    const sda::GaussianObservation all_coords(observe::Select({0, 2}, {}), y, 0.01);
    CHECK_THROWS_WITH_AS(all_coords.check_event({5, 3}),
                         "sda::GaussianObservation: y has shape [2, 1] but the operator maps events [5, 3] to "
                         "observations [2, 3]",
                         sda::error);
    CHECK_THROWS_AS(obs.check_event({1, 3}), sda::error);  // state 2 does not exist
    const sda::GaussianObservation batched(op, Tensor<double>(xt::zeros<double>({8, 2, 1})), 0.01);
    CHECK(batched.check_event({5, 3}) == 8);
}

#include <cmath>
#include <numbers>

#include "sda/metrics/likelihood.hpp"

TEST_CASE("observation log-likelihood: the Gaussian density of the observed entries, averaged over samples") {
    // two samples of 3 states x 2 coordinates; the first coordinate of states 0 and 2
    const Tensor<double> x = tensor({2, 3, 2}, {0.1, 9.0, -0.4, 9.0, 0.7, 9.0,  //
                                                1.0, 9.0, 0.0, 9.0, -1.0, 9.0});
    const sda::observe::Select A({0, 2}, {0});
    const Tensor<double> y = tensor({2, 1}, {0.3, 0.5});
    auto log_normal = [](double y, double m, double v) {
        return -0.5 * (y - m) * (y - m) / v - 0.5 * std::log(2.0 * std::numbers::pi * v);
    };
    const sda::GaussianObservation scalar(A, y, 0.25);
    const double expected = 0.5 * (log_normal(0.3, 0.1, 0.25) + log_normal(0.5, 0.7, 0.25) +  //
                                   log_normal(0.3, 1.0, 0.25) + log_normal(0.5, -1.0, 0.25));
    CHECK(sda::metrics::observation_log_likelihood(scalar, x) == doctest::Approx(expected).epsilon(1e-14));
    const sda::GaussianObservation per_entry(A, y, tensor({2, 1}, {0.25, 0.01}));
    const double expected2 = 0.5 * (log_normal(0.3, 0.1, 0.25) + log_normal(0.5, 0.7, 0.01) +  //
                                    log_normal(0.3, 1.0, 0.25) + log_normal(0.5, -1.0, 0.01));
    CHECK(sda::metrics::observation_log_likelihood(per_entry, x) == doctest::Approx(expected2).epsilon(1e-14));
    Tensor<double> bad = x;
    bad(1, 0, 0) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(sda::metrics::observation_log_likelihood(scalar, bad), sda::error);

    // chi-square per observed value: the mean of squared standardised residuals
    const double chi2 = ((0.3 - 0.1) * (0.3 - 0.1) / 0.25 + (0.5 - 0.7) * (0.5 - 0.7) / 0.01 +
                         (0.3 - 1.0) * (0.3 - 1.0) / 0.25 + (0.5 + 1.0) * (0.5 + 1.0) / 0.01) / 4;
    CHECK(sda::metrics::chi_square(per_entry, x) == doctest::Approx(chi2).epsilon(1e-14));
    CHECK_THROWS_AS(sda::metrics::chi_square(scalar, bad), sda::error);
}
