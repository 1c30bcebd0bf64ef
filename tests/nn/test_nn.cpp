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
#include "sda/nn/matmul.hpp"
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
        // the one-pass form the networks use: the same values, the slope that gives the same VJP
        Matrix z_once(3, 5), slope(3, 5), z_alone(3, 5);
        nn::activate_with_slope<double>(act, x, z_once, slope);
        nn::activate<double>(act, x, z_alone);
        CHECK(z_once == z_alone);
        CHECK(relative(Matrix(w.array() * slope.array()), fd) < 1e-6);
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

TEST_CASE("score network: composes with MarkovComposedScore, and its results depend on neither the thread count nor the gradient buffer's alignment") {
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

    // nor on where the caller's gradient buffer starts: vectorised sums peel to the
    // destination's alignment, so each start takes other scalar and packet paths
    sda::AlignedVector<float> shifted(net.parameters().size() + 16);
    for (std::size_t offset : {1, 3, 5}) {
        CAPTURE(offset);
        std::fill(shifted.begin(), shifted.end(), 0.f);
        const std::span<float> g(shifted.data() + offset, net.parameters().size());
        net.accumulate_gradient(batch, times, loss, g);
        CHECK(std::equal(g.begin(), g.end(), g1.begin()));
    }
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

namespace {

/// ||a - b|| / ||b|| over all entries
template <class A, class B>
double rms_relative(const A& a, const B& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double d = double(a.data()[i]) - double(b.data()[i]);
        num += d * d, den += double(b.data()[i]) * double(b.data()[i]);
    }
    return std::sqrt(num / den);
}

RowMatrix<float> to_float(const Matrix& m) { return m.cast<float>(); }

/// A float network with the weights of a double one.
template <class Net>
void copy_weights(const nn::ParameterSet<double>& from, Net& to) {
    REQUIRE(from.size() == to.parameters().size());
    std::copy(from.values().begin(), from.values().end(), to.parameters().values().begin());
}

nn::ScoreNetConfig lorenz_config() {
    nn::ScoreNetConfig config;
    config.event = {5, 3};  // the paper's Lorenz-63 window model, K = 2
    return config;
}

}  // namespace

TEST_CASE("nn matmul: the float products (oneDNN where linked) on strided blocks, against double") {
    // the float products read their operands through their strides: blocks of larger matrices,
    // a bias, accumulation; held to the double product within float rounding (K <= 300 terms)
    sda::Generator gen(11);
    for (auto [n, k, m] : {std::tuple{5l, 3l, 4l}, std::tuple{37l, 300l, 129l}, std::tuple{256l, 47l, 256l}}) {
        const Matrix big_x = random_matrix(n + 2, k + 3, gen), big_w = random_matrix(m + 1, k + 5, gen),
                     big_dy = random_matrix(n + 1, m + 2, gen), bias = random_matrix(1, m, gen), y0 = random_matrix(n, m + 4, gen),
                     g0 = random_matrix(m, k + 3, gen);
        const RowMatrix<float> fx = to_float(big_x), fw = to_float(big_w), fdy = to_float(big_dy), fb = to_float(bias);
        const auto X = big_x.block(1, 2, n, k), W = big_w.block(1, 3, m, k), dY = big_dy.block(1, 1, n, m);
        const auto fX = fx.block(1, 2, n, k), fW = fw.block(1, 3, m, k), fdY = fdy.block(1, 1, n, m);
        const double tol = 1e-5;

        RowMatrix<float> y = to_float(y0);  // Y = X W^T + b into the first m columns of a wider block
        nn::detail::multiply_transposed<float>(fX, fW, y.leftCols(m), fb.data(), false);
        CHECK(relative(y.leftCols(m).cast<double>(), (X * W.transpose()).rowwise() + bias.row(0)) < tol);
        CHECK(y.rightCols(4) == to_float(y0).rightCols(4));  // untouched beyond the block
        y = to_float(y0);  // Y += X W^T + b
        nn::detail::multiply_transposed<float>(fX, fW, y.leftCols(m), fb.data(), true);
        CHECK(relative(y.leftCols(m).cast<double>(), ((y0.leftCols(m) + X * W.transpose()).rowwise() + bias.row(0)).eval()) < tol);
        y = to_float(y0);  // Y += X W^T
        nn::detail::multiply_transposed<float>(fX, fW, y.leftCols(m), nullptr, true);
        CHECK(relative(y.leftCols(m).cast<double>(), y0.leftCols(m) + X * W.transpose()) < tol);

        RowMatrix<float> x = to_float(big_x);  // dX = dY W, and dX += dY W, in a block of a larger matrix
        nn::detail::multiply<float>(fdY, fW, x.block(1, 2, n, k), false);
        CHECK(relative(x.block(1, 2, n, k).cast<double>(), dY * W) < tol);
        CHECK(x.col(0) == to_float(big_x).col(0));
        x = to_float(big_x);
        nn::detail::multiply<float>(fdY, fW, x.block(1, 2, n, k), true);
        CHECK(relative(x.block(1, 2, n, k).cast<double>(), (X + dY * W).eval()) < tol);

        RowMatrix<float> g = to_float(g0);  // G += dY^T X
        nn::detail::add_transposed<float>(fdY, fX, g.leftCols(k));
        CHECK(relative(g.leftCols(k).cast<double>(), (g0.leftCols(k) + dY.transpose() * X).eval()) < tol);
        CHECK(g.rightCols(3) == to_float(g0).rightCols(3));
    }
    // mismatched shapes are refused before any product runs
    RowMatrix<float> a = RowMatrix<float>::Ones(4, 3), w = RowMatrix<float>::Ones(5, 2), y(4, 5);
    CHECK_THROWS_WITH_AS(nn::detail::multiply_transposed<float>(a, w, y, nullptr, false),
                         "sda::nn: the product X W^T of 4 x 3 by 2 x 5 into 4 x 5", sda::error);
    CHECK_THROWS_AS(nn::detail::multiply<float>(a, w, y, false), sda::error);
    CHECK_THROWS_AS(nn::detail::add_transposed<float>(a, w, y), sda::error);
}

TEST_CASE("score network: the float network equals the double one within float rounding") {
    // eps, its VJP and the training gradient of a Lorenz-size float network (oneDNN's products
    // where linked) against the same weights in double
    sda::Generator gen(12);
    const nn::ScoreNet<sda::VPCosine, double> exact(sda::VPCosine{}, lorenz_config(), gen);
    nn::ScoreNet<sda::VPCosine, float> net(sda::VPCosine{}, lorenz_config());
    copy_weights(exact.parameters(), net);
    const Tensor<double> x = sda::CpuBackend<double>::normal({300, 5, 3}, gen), v = sda::CpuBackend<double>::normal({300, 5, 3}, gen);
    const Tensor<float> fx = xt::cast<float>(x), fv = xt::cast<float>(v);
    for (double t : {0.05, 0.5, 0.95}) {
        CHECK(rms_relative(net.eps(fx, t), exact.eps(x, t)) < 1e-5);
        CHECK(rms_relative(net.vjp(fx, t, fv), exact.vjp(x, t, v)) < 1e-5);
    }
    const std::vector<double> times(300, 0.3);
    std::vector<double> g(exact.parameters().size(), 0.0);
    std::vector<float> fg(g.size(), 0.f);
    auto loss = [](std::size_t, const auto& eps, auto&& d_eps) {
        d_eps = eps;
        return 0.5 * double(eps.squaredNorm());
    };
    exact.accumulate_gradient(x, times, loss, g);
    net.accumulate_gradient(fx, times, loss, fg);
    CHECK(rms_relative(fg, g) < 1e-5);
}

TEST_CASE("score network: bfloat16 sampling stays within bfloat16 rounding of float, and training is untouched") {
    sda::Generator gen(13);
    nn::ScoreNet<sda::VPCosine, float> net(sda::VPCosine{}, lorenz_config(), gen);
    CHECK(net.sampling_precision() == nn::Precision::float32);
    nn::ScoreNet<sda::VPCosine, double> exact(sda::VPCosine{}, lorenz_config());
    CHECK_THROWS_WITH_AS(exact.set_sampling_precision(nn::Precision::bfloat16),
                         doctest::Contains("bfloat16 sampling is implemented for float MLP networks only"), sda::error);
    const std::string unavailable = nn::detail::bfloat16_unavailable();
    if (!unavailable.empty()) {
        MESSAGE("bfloat16 not tested here: " << unavailable);
        CHECK_THROWS_WITH_AS(net.set_sampling_precision(nn::Precision::bfloat16), doctest::Contains(unavailable.c_str()), sda::error);
        return;
    }
    const Tensor<float> x = sda::CpuBackend<float>::normal({600, 5, 3}, gen), v = sda::CpuBackend<float>::normal({600, 5, 3}, gen);
    const std::vector<double> times(600, 0.3);
    auto loss = [](std::size_t, const auto& eps, auto&& d_eps) {
        d_eps = eps;
        return 0.5 * double(eps.squaredNorm());
    };
    std::vector<float> g32(net.parameters().size(), 0.f), g16(g32.size(), 0.f);
    net.accumulate_gradient(x, times, loss, g32);
    const Tensor<float> forward32 = net.forward(x, times);
    std::vector<Tensor<float>> eps32, vjp32;
    for (double t : {0.05, 0.5, 0.95}) eps32.push_back(net.eps(x, t)), vjp32.push_back(net.vjp(x, t, v));

    net.set_sampling_precision(nn::Precision::bfloat16);
    CHECK(net.sampling_precision() == nn::Precision::bfloat16);
    // bfloat16 keeps 8 significant bits: each product's inputs are rounded by at most 2^-9
    // relative, about 1e-3 on average; through the network's 12 products, with LayerNorms
    // between them, the outputs move by about that much, far above float's 1e-6 (below)
    int k = 0;
    for (double t : {0.05, 0.5, 0.95}) {
        const double e_eps = rms_relative(net.eps(x, t), eps32[k]), e_vjp = rms_relative(net.vjp(x, t, v), vjp32[k]);
        CHECK(e_eps > 1e-4);  // the products did run in bfloat16
        CHECK(e_eps < 2e-2);
        CHECK(e_vjp > 1e-4);
        CHECK(e_vjp < 2e-2);
        const auto lin = net.linearize(x, t);  // the same bfloat16 pass, kept for the VJP
        CHECK(lin.eps() == net.eps(x, t));
        CHECK(lin.vjp(v) == net.vjp(x, t, v));
        ++k;
    }
    // training and the per-sample-time forward stay in float, bit for bit
    net.accumulate_gradient(x, times, loss, g16);
    CHECK(g16 == g32);
    CHECK(net.forward(x, times) == forward32);
    // and back to float: the float results again
    net.set_sampling_precision(nn::Precision::float32);
    CHECK(net.eps(x, 0.5) == eps32[1]);
}
