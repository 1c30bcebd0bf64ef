// Tests of sda/nn/conv.hpp, unet.hpp and score_unet.hpp: convolutions against
// a direct evaluation of PyTorch's definition, every backward product against
// finite differences in double precision, and the U-Net score network as a
// ScoreModel (VJP, training gradient, composition, thread-count independence).
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include <tbb/task_arena.h>

#include "sda/backend/cpu.hpp"
#include "sda/nn/concepts.hpp"
#include "sda/nn/conv.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/nn/unet.hpp"
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

namespace {

/// PyTorch's convolution evaluated from its definition (cross-correlation), on
/// channels-last maps: y[o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] x[c, s i + u - p_h, s j + v - p_w].
Matrix direct_convolution(const nn::Conv<double>& conv, const double* p, const Matrix& X, std::size_t n, nn::Grid g) {
    const nn::Grid o = conv.output_grid(g);
    const auto kh = static_cast<long>(conv.kernel_height()), kw = static_cast<long>(conv.kernel);
    const auto H = static_cast<long>(g.height), W = static_cast<long>(g.width), s = static_cast<long>(conv.stride);
    Matrix Y = Matrix::Zero(static_cast<Eigen::Index>(n * o.pixels()), static_cast<Eigen::Index>(conv.out));
    for (long b = 0; b < long(n); ++b)
        for (long i = 0; i < long(o.height); ++i)
            for (long j = 0; j < long(o.width); ++j)
                for (long out = 0; out < long(conv.out); ++out) {
                    double sum = p[conv.bias + std::size_t(out)];
                    for (long c = 0; c < long(conv.in); ++c)
                        for (long u = 0; u < kh; ++u)
                            for (long v = 0; v < kw; ++v) {
                                long y = s * i + u - kh / 2, x = s * j + v - kw / 2;
                                if (conv.padding == nn::Padding::circular) y = (y % H + H) % H, x = (x % W + W) % W;
                                else if (y < 0 || y >= H || x < 0 || x >= W) continue;
                                sum += p[conv.weight + std::size_t(((out * long(conv.in) + c) * kh + u) * kw + v)] *
                                       X((b * H + y) * W + x, c);
                            }
                    Y((b * long(o.height) + i) * long(o.width) + j, out) = sum;
                }
    return Y;
}

nn::UNetConfig small_config(sda::Shape event = {3, 2, 8, 8}) {
    nn::UNetConfig config;
    config.event = std::move(event);
    config.channels = {4, 6};
    config.blocks = {1, 2};
    config.embedding = 3;
    config.frequencies = 2;
    config.embedding_hidden = 4;
    return config;
}

}  // namespace

TEST_CASE("nn conv: 1-D and 2-D convolutions equal the definition with both paddings and strides") {
    sda::Generator gen(21);
    struct Case {
        std::size_t spatial, in, out, kernel, stride;
        nn::Padding padding;
        nn::Grid grid;
    };
    const std::vector<Case> cases = {
        {2, 3, 4, 3, 1, nn::Padding::circular, {6, 5}}, {2, 3, 4, 3, 1, nn::Padding::zeros, {6, 5}},
        {2, 2, 5, 3, 2, nn::Padding::circular, {8, 6}}, {2, 2, 5, 3, 2, nn::Padding::zeros, {8, 6}},
        {2, 3, 2, 5, 1, nn::Padding::circular, {4, 7}}, {2, 4, 3, 1, 1, nn::Padding::zeros, {3, 3}},
        {1, 3, 4, 3, 1, nn::Padding::circular, {1, 9}}, {1, 3, 4, 5, 2, nn::Padding::zeros, {1, 10}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.spatial);
        CAPTURE(c.kernel);
        CAPTURE(c.stride);
        nn::ParameterSet<double> params;
        const nn::Conv<double> conv(params, "conv", c.spatial, c.in, c.out, c.kernel, c.stride, c.padding);
        CHECK(params.find("conv.weight").shape ==
              (c.spatial == 2 ? sda::Shape{c.out, c.in, c.kernel, c.kernel} : sda::Shape{c.out, c.in, c.kernel}));
        conv.initialise(params, "conv", gen);
        const std::size_t n = 2;
        const nn::Grid o = conv.output_grid(c.grid);
        if (c.stride == 2) CHECK(o.width == c.grid.width / 2);
        const Matrix X = random_matrix(Eigen::Index(n * c.grid.pixels()), Eigen::Index(c.in), gen);
        Matrix Y(Eigen::Index(n * o.pixels()), Eigen::Index(c.out));
        conv.forward(params.data(), X, n, c.grid, Y);
        CHECK(relative(Y, direct_convolution(conv, params.data(), X, n, c.grid)) < 1e-13);

        // backward: input and parameters, for phi = <R, conv(X)>
        const Matrix R = random_matrix(Y.rows(), Y.cols(), gen);
        Matrix dX(X.rows(), X.cols());
        conv.backward_input(params.data(), R, n, c.grid, dX);
        auto phi = [&](const Matrix& point) {
            Matrix out(Y.rows(), Y.cols());
            conv.forward(params.data(), point, n, c.grid, out);
            return (out.array() * R.array()).sum();
        };
        CHECK(relative(dX, gradient_of(phi, X)) < 1e-7);
        std::vector<double> grad(params.size(), 0.0);
        conv.backward_params(X, n, c.grid, R, grad.data());
        CHECK(relative(grad, parameter_gradient(params.values(), [&] { return phi(X); })) < 1e-7);
    }
}

TEST_CASE("nn conv: float convolutions (oneDNN where linked) equal the definition and their adjoints") {
    // The test suite links sda::dnnl: float convolutions wider than one pixel run in oneDNN.
    CHECK(nn::dnnl_convolutions);
    sda::Generator gen(27);
    struct Case {
        std::size_t spatial, in, out, kernel, stride;
        nn::Padding padding;
        nn::Grid grid;
        std::size_t n;
    };
    // small odd shapes (oneDNN's generic kernels) and the U-Net's (its AVX-512 kernels)
    const std::vector<Case> cases = {
        {2, 3, 4, 3, 1, nn::Padding::circular, {6, 5}, 2},   {2, 3, 4, 3, 1, nn::Padding::zeros, {6, 5}, 2},
        {2, 2, 5, 3, 2, nn::Padding::circular, {8, 6}, 2},   {2, 2, 5, 3, 2, nn::Padding::zeros, {8, 6}, 2},
        {2, 3, 2, 5, 1, nn::Padding::circular, {4, 7}, 2},   {2, 3, 2, 3, 2, nn::Padding::zeros, {7, 5}, 2},
        {1, 3, 4, 3, 1, nn::Padding::circular, {1, 9}, 2},   {1, 3, 4, 5, 2, nn::Padding::zeros, {1, 10}, 2},
        {2, 32, 32, 3, 1, nn::Padding::circular, {16, 16}, 3}, {2, 32, 64, 3, 2, nn::Padding::circular, {16, 16}, 2},
        {2, 48, 16, 3, 1, nn::Padding::zeros, {8, 8}, 2},    {1, 32, 32, 5, 1, nn::Padding::circular, {1, 64}, 3},
    };
    for (const Case& c : cases) {
        CAPTURE(c.spatial);
        CAPTURE(c.in);
        CAPTURE(c.kernel);
        CAPTURE(c.stride);
        nn::ParameterSet<float> params;
        const nn::Conv<float> conv(params, "conv", c.spatial, c.in, c.out, c.kernel, c.stride, c.padding);
        conv.initialise(params, "conv", gen);
        CHECK(conv.uses_dnnl());
        // the definition, in double on the same float values
        nn::ParameterSet<double> exact_params;
        const nn::Conv<double> exact(exact_params, "conv", c.spatial, c.in, c.out, c.kernel, c.stride, c.padding);
        std::copy(params.values().begin(), params.values().end(), exact_params.values().begin());
        const nn::Grid o = conv.output_grid(c.grid);
        const auto rows = Eigen::Index(c.n * c.grid.pixels()), out_rows = Eigen::Index(c.n * o.pixels());
        const RowMatrix<float> X = random_matrix(rows, Eigen::Index(c.in), gen).cast<float>();
        const RowMatrix<float> R = random_matrix(out_rows, Eigen::Index(c.out), gen).cast<float>();
        const Matrix Xd = X.cast<double>(), Rd = R.cast<double>();
        const double tolerance = 1e-5;

        RowMatrix<float> Y(out_rows, Eigen::Index(c.out));
        conv.forward(params.data(), X, c.n, c.grid, Y);
        const Matrix Y_exact = direct_convolution(exact, exact_params.data(), Xd, c.n, c.grid);
        CHECK(relative(Matrix(Y.cast<double>()), Y_exact) < tolerance);
        // the fastest algorithm (Winograd's for 3 x 3 at stride 1) to float accuracy too
        RowMatrix<float> Y_fast(out_rows, Eigen::Index(c.out));
        conv.forward(params.data(), X, c.n, c.grid, Y_fast, nn::ConvAlgorithm::fastest);
        CHECK(relative(Matrix(Y_fast.cast<double>()), Y_exact) < tolerance);

        Matrix dX_exact(rows, Eigen::Index(c.in));
        exact.backward_input(exact_params.data(), Rd, c.n, c.grid, dX_exact);
        RowMatrix<float> dX(rows, Eigen::Index(c.in));
        conv.backward_input(params.data(), R, c.n, c.grid, dX);
        CHECK(relative(Matrix(dX.cast<double>()), dX_exact) < tolerance);
        RowMatrix<float> dX_fast(rows, Eigen::Index(c.in));
        conv.backward_input(params.data(), R, c.n, c.grid, dX_fast, false, nn::ConvAlgorithm::fastest);
        CHECK(relative(Matrix(dX_fast.cast<double>()), dX_exact) < tolerance);
        // accumulating, into a block of a wider matrix (rows further apart than its columns)
        RowMatrix<float> wide = RowMatrix<float>::Ones(rows, Eigen::Index(c.in + 3));
        conv.backward_input(params.data(), R, c.n, c.grid, wide.leftCols(Eigen::Index(c.in)), /*accumulate=*/true);
        CHECK(relative(Matrix(wide.leftCols(Eigen::Index(c.in)).cast<double>()), Matrix(dX_exact.array() + 1.0)) < tolerance);
        CHECK((wide.rightCols(3).array() == 1.f).all());

        std::vector<double> grad_exact(exact_params.size(), 0.5);
        exact.backward_params(Xd, c.n, c.grid, Rd, grad_exact.data());
        std::vector<float> grad(params.size(), 0.5f);
        conv.backward_params(X, c.n, c.grid, R, grad.data());
        CHECK(relative(std::vector<double>(grad.begin(), grad.end()), grad_exact) < tolerance);

        // strided views of the input and output give the same numbers
        RowMatrix<float> X_wide = RowMatrix<float>::Zero(rows, Eigen::Index(c.in + 2)), Y_wide(out_rows, Eigen::Index(c.out + 1));
        X_wide.leftCols(Eigen::Index(c.in)) = X;
        conv.forward(params.data(), X_wide.leftCols(Eigen::Index(c.in)), c.n, c.grid, Y_wide.leftCols(Eigen::Index(c.out)));
        CHECK(Y_wide.leftCols(Eigen::Index(c.out)) == Y);
    }
    // the fastest algorithm caches transformed weights: new values in the same buffer are seen
    nn::ParameterSet<float> params;
    const nn::Conv<float> conv(params, "conv", 2, 32, 32);
    conv.initialise(params, "conv", gen);
    const nn::Grid grid{8, 8};
    const RowMatrix<float> X = random_matrix(2 * 64, 32, gen).cast<float>();
    RowMatrix<float> before(2 * 64, 32), after(2 * 64, 32), expected(2 * 64, 32);
    conv.forward(params.data(), X, 2, grid, before, nn::ConvAlgorithm::fastest);
    params.values()[conv.weight + 5] += 1.f;  // one tap of one filter
    conv.forward(params.data(), X, 2, grid, after, nn::ConvAlgorithm::fastest);
    conv.forward_im2col(params.data(), X, 2, grid, expected);
    CHECK(before != after);
    CHECK((after - expected).cwiseAbs().maxCoeff() < 1e-4f);

    // a cache smaller than two networks' weights drops the older entries and stays right
    auto& cache = nn::dnnl_kernels::detail::WeightCache::instance();
    nn::ParameterSet<float> other_params;
    const nn::Conv<float> other(other_params, "conv", 2, 32, 32);
    other.initialise(other_params, "conv", gen);
    RowMatrix<float> got(2 * 64, 32), want(2 * 64, 32);
    cache.set_budget(0);  // keeps one entry, whatever its size: that of either convolution
    conv.forward(params.data(), X, 2, grid, got, nn::ConvAlgorithm::fastest);
    const std::size_t one = cache.bytes();
    CHECK(one >= 32 * 32 * 9 * sizeof(float));  // at least the copy of the weights
    cache.set_budget(one + one / 2);  // room for one of the two
    for (int round = 0; round < 3; ++round)
        for (const auto* c : {&conv, &other}) {
            const float* p = c == &conv ? params.data() : other_params.data();
            c->forward(p, X, 2, grid, got, nn::ConvAlgorithm::fastest);
            c->forward_im2col(p, X, 2, grid, want);
            CHECK((got - want).cwiseAbs().maxCoeff() < 1e-4f);
            CHECK(cache.bytes() == one);
        }
    cache.set_budget(std::size_t(2) << 30);

    // wrong shapes are refused before oneDNN reads anything
    RowMatrix<float> wrong(2 * 16, 5);
    CHECK_THROWS_AS(conv.forward(params.data(), X, 2, {4, 4}, wrong), sda::error);
}

TEST_CASE("nn conv: nearest upsampling copies pixels and its adjoint sums them") {
    sda::Generator gen(22);
    for (std::size_t spatial : {1u, 2u}) {
        const nn::Grid g = spatial == 2 ? nn::Grid{3, 4} : nn::Grid{1, 5};
        const nn::Grid u = nn::upsampled(g, spatial);
        CHECK(u.width == 2 * g.width);
        CHECK(u.height == (spatial == 2 ? 2 * g.height : 1));
        const Matrix X = random_matrix(Eigen::Index(2 * g.pixels()), 3, gen);
        Matrix Y(Eigen::Index(2 * u.pixels()), 3);
        nn::upsample<double>(X, 2, g, spatial, Y);
        // pixel (1, i, j) of the upsampled map is pixel (1, i / 2, j / 2) of the input
        const std::size_t i = u.height - 1, j = u.width - 1;
        CHECK(Y.row(Eigen::Index((u.height + i) * u.width + j)) ==
              X.row(Eigen::Index((g.height + (spatial == 2 ? i / 2 : i)) * g.width + j / 2)));
        const Matrix V = random_matrix(Y.rows(), 3, gen);
        Matrix back(X.rows(), 3);
        nn::upsample_adjoint<double>(V, 2, g, spatial, back);
        CHECK((Y.array() * V.array()).sum() == doctest::Approx((X.array() * back.array()).sum()).epsilon(1e-12));
    }
}

TEST_CASE("nn unet: input, modulation and parameter gradients against finite differences") {
    sda::Generator gen(23);
    for (std::size_t spatial : {1u, 2u}) {
        CAPTURE(spatial);
        const nn::Grid grid = spatial == 2 ? nn::Grid{4, 8} : nn::Grid{1, 8};
        nn::ParameterSet<double> params;
        const nn::UNet<double> net(params, "network", spatial, grid, 3, 2, 2, {4, 5, 6}, {1, 2, 1}, 3, nn::Padding::circular,
                                   nn::Activation::silu, nn::LayerNorm<double>{true, 1e-5});
        CHECK(net.levels()[2].grid.width == 2);
        net.initialise(params, gen);
        const std::size_t n = 2;
        const Matrix X = random_matrix(Eigen::Index(n * grid.pixels()), 3, gen), M = random_matrix(Eigen::Index(n), 2, gen);
        const Matrix R = random_matrix(Eigen::Index(n * grid.pixels()), 2, gen);
        auto phi = [&](const Matrix& x, const Matrix& m) {
            Matrix y(R.rows(), R.cols());
            net.forward(params.data(), x, n, m, y);
            return (y.array() * R.array()).sum();
        };
        nn::UNet<double>::Cache cache;
        Matrix y(R.rows(), R.cols());
        net.forward(params.data(), X, n, M, y, &cache, /*keep_input=*/true);
        std::vector<double> grad(params.size(), 0.0);
        Matrix dX, dM = Matrix::Zero(M.rows(), M.cols());
        net.backward(params.data(), cache, R, n, M, grad.data(), &dX, &dM);
        CHECK(relative(dX, gradient_of([&](const Matrix& x) { return phi(x, M); }, X)) < 1e-6);
        CHECK(relative(dM, gradient_of([&](const Matrix& m) { return phi(X, m); }, M)) < 1e-6);
        CHECK(relative(grad, parameter_gradient(params.values(), [&] { return phi(X, M); })) < 1e-6);

        // a shared modulation row acts like that row repeated for every sample
        const Matrix shared = M.topRows(1);
        Matrix y1(R.rows(), R.cols()), y2(R.rows(), R.cols());
        net.forward(params.data(), X, n, shared, y1);
        net.forward(params.data(), X, n, shared.replicate(Eigen::Index(n), 1), y2);
        CHECK(relative(y1, y2) < 1e-14);
    }
}

TEST_CASE("nn unet: the layout and names of the paper's PyTorch module") {
    nn::ParameterSet<float> params;
    const nn::UNet<float> net(params, "network", 2, {16, 16}, 11, 10, 64, {96, 192, 384}, {3, 3, 3}, 3, nn::Padding::circular,
                              nn::Activation::silu, nn::LayerNorm<float>{});
    CHECK(params.find("network.heads.0.weight").shape == sda::Shape{96, 11, 3, 3});
    CHECK(params.find("network.heads.2.0.weight").shape == sda::Shape{384, 192, 3, 3});
    CHECK(params.find("network.descent.1.2.project.0.weight").shape == sda::Shape{192, 64});
    CHECK(params.find("network.descent.2.0.residue.3.bias").shape == sda::Shape{384});
    CHECK(params.find("network.ascent.0.1.residue.1.weight").shape == sda::Shape{384, 384, 3, 3});  // deepest level first
    CHECK(params.find("network.tails.0.2.weight").shape == sda::Shape{192, 384, 3, 3});
    CHECK(params.find("network.tails.2.weight").shape == sda::Shape{10, 96, 3, 3});
    CHECK_THROWS_AS(params.find("network.tails.2.2.weight"), sda::error);
}

TEST_CASE("score unet: eps, its input VJP and the training gradient against finite differences") {
    sda::Generator gen(24);
    nn::UNetConfig config = small_config();
    config.context.assign(64, 0.0);
    for (std::size_t i = 0; i < 64; ++i) config.context[i] = std::sin(2 * M_PI * double(i % 8) / 8.0 + 0.5);
    const nn::ScoreUNet<sda::VPCosine, double> net(sda::VPCosine{}, config, gen);
    static_assert(sda::ScoreModel<decltype(net)>);
    static_assert(nn::TrainableScoreModel<nn::ScoreUNet<sda::VPCosine, double>>);
    CHECK(net.network().in() == 7);  // 3 x 2 channels and the context
    const Tensor<double> x = sda::CpuBackend<double>::normal({3, 3, 2, 8, 8}, gen), v = sda::CpuBackend<double>::normal({3, 3, 2, 8, 8}, gen);
    for (double t : {0.05, 0.6}) {
        const Tensor<double> g = net.vjp(x, t, v);
        CHECK(sda::test::vjp_error([&](const Tensor<double>& p) { return net.eps(p, t); }, x, v, g) < 1e-6);
        const std::vector<double> times(3, t);
        CHECK(sda::test::relative_max_error(net.forward(x, times), net.eps(x, t)) < 1e-12);
        const auto lin = net.linearize(x, t);
        CHECK(sda::test::relative_max_error(lin.vjp(v), g) < 1e-12);
        CHECK(sda::test::relative_max_error(lin.eps(), net.eps(x, t)) < 1e-12);
    }
    // the context is an input: another context gives another eps
    nn::UNetConfig other = config;
    other.context.assign(64, 0.0);
    nn::ScoreUNet<sda::VPCosine, double> without(sda::VPCosine{}, other);
    without.parameters().values() = net.parameters().values();
    CHECK(sda::test::relative_max_error(without.eps(x, 0.3), net.eps(x, 0.3)) > 1e-3);

    // d/dtheta of sum_b <w_b, eps(x_b, t_b)>, one t per sample
    nn::ScoreUNet<sda::VPCosine, double> trainable = net;
    const std::vector<double> times = {0.1, 0.5, 0.9};
    const Tensor<double> w = sda::CpuBackend<double>::normal({3, 3, 2, 8, 8}, gen);
    const std::size_t features = 3 * 2 * 64;
    std::vector<double> grad(trainable.parameters().size(), 0.0);
    const double value = trainable.accumulate_gradient(x, times, [&](std::size_t b, const auto& eps, auto&& d_eps) {
        const Eigen::Map<const Eigen::Matrix<double, 1, Eigen::Dynamic>> wb(w.data() + features * b, Eigen::Index(features));
        d_eps = wb;
        return eps.dot(wb);
    }, grad);
    auto objective = [&] {
        const Tensor<double> eps = trainable.forward(x, times);
        return std::inner_product(eps.begin(), eps.end(), w.begin(), 0.0);
    };
    CHECK(value == doctest::Approx(objective()).epsilon(1e-12));
    CHECK(relative(grad, parameter_gradient(trainable.parameters().values(), objective)) < 1e-6);
}

TEST_CASE("score unet: composes with MarkovComposedScore on fields, and does not depend on the thread count") {
    sda::Generator gen(25);
    const nn::ScoreUNet<sda::VPCosine, double> window(sda::VPCosine{}, small_config({5, 2, 4, 4}), gen);
    const sda::MarkovComposedScore<decltype(window), 2> composed(window, 7);
    CHECK(composed.event_shape() == sda::Shape{7, 2, 4, 4});
    const Tensor<double> x = sda::CpuBackend<double>::normal({2, 7, 2, 4, 4}, gen), v = sda::CpuBackend<double>::normal({2, 7, 2, 4, 4}, gen);
    CHECK(sda::test::vjp_error([&](const Tensor<double>& p) { return composed.eps(p, 0.3); }, x, v, composed.vjp(x, 0.3, v)) < 1e-6);

    const nn::ScoreUNet<sda::VPCosine, float> net(sda::VPCosine{}, small_config({5, 2, 8, 8}), gen);
    const Tensor<float> batch = sda::CpuBackend<float>::normal({37, 5, 2, 8, 8}, gen);
    Tensor<float> one, two;
    std::vector<float> g1(net.parameters().size(), 0.f), g2(net.parameters().size(), 0.f);
    const std::vector<double> times(37, 0.5);
    auto loss = [](std::size_t, const auto& eps, auto&& d_eps) {
        d_eps = eps;
        return 0.5 * double(eps.squaredNorm());
    };
    tbb::task_arena(1).execute([&] { one = net.eps(batch, 0.3), net.accumulate_gradient(batch, times, loss, g1); });
    tbb::task_arena(2).execute([&] { two = net.eps(batch, 0.3), net.accumulate_gradient(batch, times, loss, g2); });
    CHECK(one == two);
    CHECK(g1 == g2);
}

TEST_CASE("score unet: bad configurations and inputs throw sda::error") {
    sda::Generator gen(26);
    nn::UNetConfig config = small_config({3, 2, 6, 6});
    config.channels = {4, 6, 8};  // 6 cannot be halved twice
    config.blocks = {1, 1, 1};
    CHECK_THROWS_AS(nn::ScoreUNet<sda::VPCosine>(sda::VPCosine{}, config, gen), sda::error);
    config = small_config();
    config.kernel = 4;
    CHECK_THROWS_AS(nn::ScoreUNet<sda::VPCosine>(sda::VPCosine{}, config, gen), sda::error);
    config = small_config();
    config.blocks = {1};
    CHECK_THROWS_AS(nn::ScoreUNet<sda::VPCosine>(sda::VPCosine{}, config, gen), sda::error);
    config = small_config();
    config.context.assign(65, 0.0);
    CHECK_THROWS_AS(nn::ScoreUNet<sda::VPCosine>(sda::VPCosine{}, config, gen), sda::error);
    config = small_config();
    CHECK(nn::UNetConfig::from_json(config.to_json()) == config);
    CHECK_THROWS_AS(nn::UNetConfig::from_json(nlohmann::json{{"event", {3, 8, 8}}}), sda::error);
    const nn::ScoreUNet<sda::VPCosine> net(sda::VPCosine{}, small_config(), gen);
    CHECK_THROWS_AS(net.eps(Tensor<float>(xt::zeros<float>({2, 3, 2, 8, 4})), 0.5), sda::error);
}
