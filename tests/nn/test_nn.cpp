// Tests of sda/nn: every layer and the whole score network against finite
// differences in double precision (parameters and inputs), known values of the
// activations and normalisations, and the invariances the samplers rely on.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include <tbb/task_arena.h>

#include "sda/backend/cpu.hpp"
#include "sda/nn/activation.hpp"
#include "sda/nn/embedding.hpp"
#include "sda/nn/layer_norm.hpp"
#include "sda/nn/linear.hpp"
#include "sda/nn/resmlp.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"
#include "support/fd.hpp"
#include "support/matrices.hpp"

using sda::RowMatrix;
using sda::Tensor;
using Matrix = RowMatrix<double>;
namespace nn = sda::nn;
using sda::test::gradient_of;
using sda::test::parameter_gradient;
using sda::test::random_matrix;
using sda::test::relative;

TEST_CASE("nn activations: values and derivatives") {
    Matrix a(1, 4);
    a << -1.0, -0.2, 0.3, 1.0;
    Matrix z(1, 4);
    nn::activate<double>(nn::Activation::silu, a, z);
    CHECK(z(0, 3) == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
    nn::activate<double>(nn::Activation::gelu, a, z);
    CHECK(z(0, 3) == doctest::Approx(0.8413447460685429));  // Phi(1)
    nn::activate<double>(nn::Activation::elu, a, z);
    CHECK(z(0, 0) == doctest::Approx(std::exp(-1.0) - 1.0));
    nn::activate<double>(nn::Activation::relu, a, z);
    CHECK(z(0, 1) == 0.0);
    CHECK(z(0, 2) == 0.3);
    sda::Generator gen(1);
    const Matrix x = random_matrix(3, 5, gen), w = random_matrix(3, 5, gen);
    for (auto act : {nn::Activation::silu, nn::Activation::relu, nn::Activation::gelu, nn::Activation::elu}) {
        CAPTURE(nn::name_of(act));
        Matrix analytic(3, 5);
        nn::activate_backward<double>(act, x, w, analytic);
        const Matrix fd = gradient_of([&](const Matrix& p) {
            Matrix out(p.rows(), p.cols());
            nn::activate<double>(act, p, out);
            return (out.array() * w.array()).sum();
        }, x);
        CHECK(relative(analytic, fd) < 1e-6);
    }
    CHECK(nn::activation_from_name("GELU") == nn::Activation::gelu);
    CHECK_THROWS_AS(nn::activation_from_name("tanh"), sda::error);
}

TEST_CASE("nn layer norm: N and N - 1 variances, and the VJP") {
    sda::Generator gen(2);
    const Matrix x = random_matrix(4, 7, gen), w = random_matrix(4, 7, gen);
    for (bool unbiased : {true, false}) {
        const nn::LayerNorm<double> norm{unbiased, 1e-5};
        Matrix y(4, 7);
        std::vector<double> rstd(4);
        norm.forward(x, y, rstd.data());
        const double mean = x.row(0).mean();
        const double var = (x.row(0).array() - mean).square().sum() / (unbiased ? 6.0 : 7.0);
        CHECK(y(0, 3) == doctest::Approx((x(0, 3) - mean) / std::sqrt(var + 1e-5)));
        Matrix analytic(4, 7);
        norm.backward(y, rstd.data(), w, analytic);
        const Matrix fd = gradient_of([&](const Matrix& p) {
            Matrix out(p.rows(), p.cols());
            norm.forward(p, out);
            return (out.array() * w.array()).sum();
        }, x);
        CHECK(relative(analytic, fd) < 1e-6);
    }
}

TEST_CASE("nn linear and time embedding: parameter and input gradients") {
    sda::Generator gen(3);
    nn::ParameterSet<double> params;
    const nn::Linear<double> linear(params, "fc", 5, 3);
    const nn::TimeEmbedding<double> embedding(params, "embedding", 4, 6, 3);
    linear.initialise(params, "fc", gen);
    embedding.initialise(params, "embedding", gen);
    CHECK(params.find("fc.weight").shape == sda::Shape{3, 5});
    CHECK(params.find("embedding.2.weight").shape == sda::Shape{3, 6});

    const Matrix x = random_matrix(4, 5, gen), w = random_matrix(4, 3, gen);
    const std::vector<double> t = {0.0, 0.13, 0.5, 0.97};
    auto objective = [&]() {
        Matrix y(4, 3), e(4, 3);
        linear.forward(params.data(), x, y);
        embedding.forward(params.data(), t, e);
        return ((y + e).array() * w.array()).sum();
    };
    std::vector<double> grad(params.size(), 0.0);
    linear.backward_params(x, w, grad.data());
    typename nn::TimeEmbedding<double>::Cache cache;
    Matrix e(4, 3);
    embedding.forward(params.data(), t, e, &cache);
    embedding.backward(params.data(), cache, w, grad.data());
    CHECK(relative(grad, parameter_gradient(params.values(), objective)) < 1e-6);

    Matrix dx(4, 5);
    linear.backward_input(params.data(), w, dx);
    const Matrix fd = gradient_of([&](const Matrix& p) {
        Matrix y(4, 3);
        linear.forward(params.data(), p, y);
        return (y.array() * w.array()).sum();
    }, x);
    CHECK(relative(dx, fd) < 1e-6);
}

TEST_CASE("nn resmlp: gradients for every block layout, with and without a constant tail") {
    sda::Generator gen(4);
    // widths 7 -> 6 -> 6 -> 4 -> 3: projections first, in the middle and last; and 6 -> 6 -> 3 without a first projection
    for (auto [in, hidden] : {std::pair{7ul, std::vector<std::size_t>{6, 6, 4}}, std::pair{6ul, std::vector<std::size_t>{6}}}) {
        for (auto act : {nn::Activation::silu, nn::Activation::gelu}) {
            nn::ParameterSet<double> params;
            const nn::ResMLP<double> mlp(params, "network", in, 3, hidden, act, nn::LayerNorm<double>{true, 1e-5});
            mlp.initialise(params, gen);
            const auto cols = static_cast<Eigen::Index>(in);
            const Matrix x = random_matrix(5, cols, gen), w = random_matrix(5, 3, gen);
            auto objective = [&](const Matrix& input) {
                Matrix y(5, 3);
                mlp.forward(params.data(), input, nullptr, y);
                return (y.array() * w.array()).sum();
            };
            typename nn::ResMLP<double>::Cache cache;
            Matrix y(5, 3), dx;
            mlp.forward(params.data(), x, nullptr, y, &cache, true);
            std::vector<double> grad(params.size(), 0.0);
            mlp.backward(params.data(), cache, w, grad.data(), &dx, 0, cols);
            CHECK(relative(grad, parameter_gradient(params.values(), [&] { return objective(x); })) < 1e-6);
            CHECK(relative(dx, gradient_of(objective, x)) < 1e-6);

            // the last two input columns as a constant tail: same outputs, same VJP for the rest
            const std::vector<double> tail = {x(0, cols - 2), x(0, cols - 1)};
            Matrix broadcast = x;
            broadcast.col(cols - 2).setConstant(tail[0]);
            broadcast.col(cols - 1).setConstant(tail[1]);
            Matrix y_tail(5, 3), y_full(5, 3), dx_tail;
            mlp.forward(params.data(), broadcast.leftCols(cols - 2), tail.data(), y_tail, &cache);
            mlp.forward(params.data(), broadcast, nullptr, y_full);
            CHECK(relative(y_tail, y_full) < 1e-12);
            mlp.backward(params.data(), cache, w, nullptr, &dx_tail, 0, cols - 2);
            CHECK(relative(dx_tail, gradient_of(objective, broadcast).leftCols(cols - 2)) < 1e-6);
        }
    }
}

namespace {

nn::ScoreNetConfig small_config() {
    nn::ScoreNetConfig config;
    config.event = {3, 2};
    config.embedding = 4;
    config.width = 8;
    config.depth = 2;
    config.frequencies = 3;
    config.embedding_hidden = 5;
    return config;
}

}  // namespace

TEST_CASE("score network: eps, its input VJP and the training gradient against finite differences") {
    sda::Generator gen(5);
    const nn::ScoreNet<sda::VPCosine, double> net(sda::VPCosine{}, small_config(), gen);
    static_assert(sda::ScoreModel<decltype(net)>);
    const Tensor<double> x = sda::CpuBackend<double>::normal({4, 3, 2}, gen), v = sda::CpuBackend<double>::normal({4, 3, 2}, gen);
    for (double t : {0.05, 0.6}) {
        const Tensor<double> g = net.vjp(x, t, v);
        CHECK(sda::test::vjp_error([&](const Tensor<double>& p) { return net.eps(p, t); }, x, v, g) < 1e-6);
        // the per-sample-time path agrees with the shared-time path
        const std::vector<double> times(4, t);
        CHECK(sda::test::relative_max_error(net.forward(x, times), net.eps(x, t)) < 1e-12);
        // linearize, caching or recomputing, gives the same eps and VJP
        const auto lin = net.linearize(x, t);
        CHECK(sda::test::relative_max_error(lin.vjp(v), g) < 1e-12);
        CHECK(sda::test::relative_max_error(lin.eps(), net.eps(x, t)) < 1e-12);
    }

    // d/dtheta of sum_b <w_b, eps(x_b, t_b)>, with a different t per sample
    nn::ScoreNet<sda::VPCosine, double> trainable = net;
    const std::vector<double> times = {0.1, 0.4, 0.7, 0.95};
    const Tensor<double> w = sda::CpuBackend<double>::normal({4, 3, 2}, gen);
    std::vector<double> grad(trainable.parameters().size(), 0.0);
    const double value = trainable.accumulate_gradient(x, times, [&](std::size_t b, const auto& eps, auto&& d_eps) {
        const Eigen::Map<const Eigen::Matrix<double, 1, 6>> wb(w.data() + 6 * b);
        d_eps = wb;
        return eps.dot(wb);
    }, grad);
    auto objective = [&] {
        const Tensor<double> eps = trainable.forward(x, times);
        return std::inner_product(eps.begin(), eps.end(), w.begin(), 0.0);
    };
    CHECK(value == doctest::Approx(objective()));
    CHECK(relative(grad, parameter_gradient(trainable.parameters().values(), objective)) < 1e-6);
}

TEST_CASE("score network: composes with MarkovComposedScore, and its results do not depend on the thread count") {
    sda::Generator gen(6);
    nn::ScoreNetConfig config = small_config();
    config.event = {5, 2};  // K = 2
    const nn::ScoreNet<sda::VPCosine, double> window(sda::VPCosine{}, config, gen);
    const sda::MarkovComposedScore<decltype(window), 2> composed(window, 9);
    const Tensor<double> x = sda::CpuBackend<double>::normal({2, 9, 2}, gen), v = sda::CpuBackend<double>::normal({2, 9, 2}, gen);
    CHECK(sda::test::vjp_error([&](const Tensor<double>& p) { return composed.eps(p, 0.3); }, x, v, composed.vjp(x, 0.3, v)) <
          1e-6);

    nn::ScoreNetConfig wide = small_config();
    wide.width = 64;
    const nn::ScoreNet<sda::VPCosine, float> net(sda::VPCosine{}, wide, gen);
    const Tensor<float> batch = sda::CpuBackend<float>::normal({1000, 3, 2}, gen);
    Tensor<float> one, two;
    std::vector<float> g1(net.parameters().size(), 0.f), g2(net.parameters().size(), 0.f);
    const std::vector<double> times(1000, 0.5);
    auto loss = [](std::size_t, const auto& eps, auto&& d_eps) {
        d_eps = eps;
        return 0.5 * double(eps.squaredNorm());
    };
    tbb::task_arena(1).execute([&] { one = net.eps(batch, 0.3), net.accumulate_gradient(batch, times, loss, g1); });
    tbb::task_arena(2).execute([&] { two = net.eps(batch, 0.3), net.accumulate_gradient(batch, times, loss, g2); });
    CHECK(one == two);
    CHECK(g1 == g2);
}

TEST_CASE("score network: bad configurations and inputs throw sda::error") {
    sda::Generator gen(7);
    nn::ScoreNetConfig config = small_config();
    config.event = {1};
    CHECK_THROWS_AS(nn::ScoreNet<sda::VPCosine>(sda::VPCosine{}, config, gen), sda::error);
    const nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, small_config(), gen);
    CHECK_THROWS_WITH_AS(net.eps(Tensor<float>(xt::zeros<float>({2, 2, 3})), 0.5),
                         "sda::nn::ScoreNet: input has shape [2, 2, 3], expected [B, 3, 2] with B >= 1", sda::error);
}
