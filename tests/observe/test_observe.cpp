// Tests of sda/observe: each operator's action, its exact VJP and JVP, and
// the validation of observations.
#include <doctest/doctest.h>

#include <limits>
#include <numeric>

#include <xtensor/xview.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/linear.hpp"
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
}
