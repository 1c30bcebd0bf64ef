// Tests of sda/train: the optimiser, schedules, data, loss, checkpoints and
// the training loop's exact resumption.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <tbb/task_arena.h>

#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/loss.hpp"
#include "sda/train/lr_schedule.hpp"
#include "sda/train/windows.hpp"
#include "support/stats.hpp"

namespace fs = std::filesystem;
namespace nn = sda::nn;
namespace train = sda::train;
using sda::Tensor;

namespace {

nn::ScoreNetConfig tiny_config() {
    nn::ScoreNetConfig c;
    c.event = {3, 2};
    c.embedding = 4, c.width = 8, c.depth = 2, c.frequencies = 3, c.embedding_hidden = 6;
    return c;
}

/// Random trajectories [6, 12, 2] cut into windows of 3 (the same set validates), and fit's
/// options for a few epochs of 5 batches of 8.
struct SmallProblem {
    train::WindowDataset<float> train_set, valid_set;
    train::FitOptions options;
    SmallProblem(std::uint64_t seed, std::size_t epochs) : train_set(data(seed), 3), valid_set(data(seed), 3) {
        options.epochs = epochs, options.epoch_size = 40, options.batch_size = 8, options.valid_size = 16;
    }
    static Tensor<float> data(std::uint64_t seed) {
        sda::Generator gen(seed);
        return sda::CpuBackend<float>::normal({6, 12, 2}, gen);
    }
};

fs::path scratch(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("sda_test_train_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

}  // namespace

TEST_CASE("learning-rate schedules: the paper's LambdaLR factors") {
    using train::LrSchedule;
    CHECK(train::lr_factor(LrSchedule::linear, 0, 10) == 1.0);
    CHECK(train::lr_factor(LrSchedule::linear, 5, 10) == doctest::Approx(0.5));
    CHECK(train::lr_factor(LrSchedule::cosine, 5, 10) == doctest::Approx(0.5));
    CHECK(train::lr_factor(LrSchedule::cosine, 10, 10) == doctest::Approx(0.0));
    CHECK(train::lr_factor(LrSchedule::exponential, 10, 10) == doctest::Approx(std::exp(-7.0)));
    CHECK(train::lr_factor(LrSchedule::constant, 7, 10) == 1.0);
    CHECK(train::lr_schedule_from_name("cosine") == LrSchedule::cosine);
    CHECK_THROWS_AS(train::lr_schedule_from_name("step"), sda::error);
}

TEST_CASE("AdamW: torch.optim.AdamW's update, step by step") {
    // The algorithm as documented for torch.optim.AdamW, in double, is the oracle:
    // theta <- theta - lr wd theta; m, v <- moments; theta <- theta - lr m_hat / (sqrt(v_hat) + eps).
    const train::AdamWOptions options{.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
    std::vector<float> params = {0.5f, -1.0f, 2.0f, 0.0f};
    std::vector<double> theta(params.begin(), params.end()), m(4, 0.0), v(4, 0.0);
    train::AdamW<float> adamw(4, options);
    for (int k = 1; k <= 5; ++k) {
        const std::vector<float> g = {0.3f * k, -0.2f, 1.0f / k, k % 2 ? 0.5f : -0.5f};
        const double lr = options.lr * (1.0 - 0.1 * k);  // a scheduled rate
        adamw.step(params, g, lr);
        for (std::size_t i = 0; i < 4; ++i) {
            theta[i] -= lr * options.weight_decay * theta[i];
            m[i] = options.beta1 * m[i] + (1 - options.beta1) * g[i];
            v[i] = options.beta2 * v[i] + (1 - options.beta2) * double(g[i]) * g[i];
            const double m_hat = m[i] / (1 - std::pow(options.beta1, k)), v_hat = v[i] / (1 - std::pow(options.beta2, k));
            theta[i] -= lr * m_hat / (std::sqrt(v_hat) + options.eps);
        }
    }
    for (std::size_t i = 0; i < 4; ++i) CHECK(params[i] == doctest::Approx(theta[i]).epsilon(1e-5));
    CHECK(adamw.steps() == 5);
    CHECK_THROWS_AS(train::AdamW<float>(4, {.lr = -1.0}), sda::error);
    CHECK_THROWS_AS(adamw.step(params, std::vector<float>(3), 1e-3), sda::error);
}

TEST_CASE("gradient clipping: torch's clip_grad_norm_") {
    std::vector<double> g = {3.0, 4.0};
    CHECK(train::clip_grad_norm<double>(g, 1.0) == doctest::Approx(5.0));
    CHECK(g[0] == doctest::Approx(0.6 * 5.0 / (5.0 + 1e-6)));
    std::vector<double> small = {0.1, 0.1};
    train::clip_grad_norm<double>(small, 1.0);
    CHECK(small[0] == 0.1);
}

TEST_CASE("gradient norm: float buffers across blocks against double, NaN and infinity shown, any thread count") {
    // 100003 entries: six parallel blocks of 16384, the last partial, and runs of 256 with a partial end
    std::vector<float> g(100003);
    sda::Generator gen(8);
    sda::fill_normal(g.data(), 1, g.size(), gen);
    double exact = 0;
    for (float v : g) exact += double(v) * double(v);
    // runs of 256 squares summed in float: at most 256 roundings of 2^-24 each, relative
    const double norm = train::gradient_norm<float>(g);
    CHECK(std::abs(norm - std::sqrt(exact)) / std::sqrt(exact) < 256 * 0x1p-24);
    double one = 0, two = 0;
    tbb::task_arena(1).execute([&] { one = train::gradient_norm<float>(g); });
    tbb::task_arena(2).execute([&] { two = train::gradient_norm<float>(g); });
    CHECK(one == norm);
    CHECK(two == norm);
    g[70000] = std::numeric_limits<float>::infinity();
    CHECK(std::isinf(train::gradient_norm<float>(g)));
    g[99999] = std::numeric_limits<float>::quiet_NaN();
    CHECK(std::isnan(train::gradient_norm<float>(g)));
}

TEST_CASE("permutation: every order, uniformly") {
    sda::Generator gen(8);
    const auto p = train::permutation(1000, gen);
    std::vector<std::size_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
    // where element 0 lands, over 30000 shuffles of 6: chi-square with 5 dof at level 1e-3
    std::vector<double> counts(6, 0.0);
    for (int r = 0; r < 30000; ++r) {
        const auto q = train::permutation(6, gen);
        counts[static_cast<std::size_t>(std::find(q.begin(), q.end(), 0) - q.begin())] += 1;
    }
    double chi2 = 0;
    for (double c : counts) chi2 += (c - 5000.0) * (c - 5000.0) / 5000.0;
    CHECK(chi2 < sda::test::chi2_quantile(5, 1e-3));
}

TEST_CASE("window dataset: windows cut on the fly") {
    Tensor<float> x = sda::empty_tensor<float>({2, 6, 3});
    std::iota(x.begin(), x.end(), 0.f);
    const train::WindowDataset<float> data(x, 5);
    CHECK(data.size() == 4);
    CHECK(data.event_shape() == sda::Shape{5, 3});
    const std::vector<std::size_t> idx = {3, 0};
    const Tensor<float> b = data.batch(idx);
    CHECK(b(0, 0, 0) == x(1, 1, 0));  // window 3 = trajectory 1, start 1
    CHECK(b(0, 4, 2) == x(1, 5, 2));
    CHECK(b(1, 2, 1) == x(0, 2, 1));
    CHECK_THROWS_AS(train::WindowDataset<float>(x, 7), sda::error);
    const std::vector<std::size_t> bad = {4};
    CHECK_THROWS_AS(data.batch(bad), sda::error);
}

TEST_CASE("denoising loss: value and gradient, with and without weights") {
    sda::Generator gen(9);
    nn::ScoreNet<sda::VPCosine, double> net(sda::VPCosine{}, tiny_config(), gen);
    const Tensor<double> x = sda::CpuBackend<double>::normal({5, 3, 2}, gen);
    const std::vector<double> weights = {1.0, 2.0, 0.5, 0.0, 1.5};
    for (bool weighted : {false, true}) {
        const sda::Generator start = gen;
        std::vector<double> grad(net.parameters().size(), 0.0);
        sda::Generator a = start;
        const double value = train::denoising_loss_gradient(net, x, a, std::span<double>(grad),
                                                            weighted ? std::span<const double>(weights) : std::span<const double>{});
        // the same noise through the forward pass: the loss as a function of the parameters
        auto loss = [&] {
            sda::Generator b = start;
            const auto noised = train::noise_batch(net.schedule(), x, b);
            const Tensor<double> eps = net.forward(noised.xt, noised.t);
            double total = 0, wsum = 0;
            for (std::size_t s = 0; s < 5; ++s) {
                const double w = weighted ? weights[s] : 1.0;
                for (std::size_t i = 0; i < 6; ++i) total += w * std::pow(eps.data()[s * 6 + i] - noised.z.data()[s * 6 + i], 2);
                wsum += w;
            }
            return total / (6.0 * wsum);
        };
        CHECK(value == doctest::Approx(loss()).epsilon(1e-12));
        if (!weighted) {
            sda::Generator c = start;
            CHECK(train::denoising_loss(net, x, c) == doctest::Approx(value).epsilon(1e-12));
        }
        auto& values = net.parameters().values();
        double worst = 0, scale = 1e-300;
        for (std::size_t i = 0; i < values.size(); ++i) {
            const double keep = values[i];
            values[i] = keep + 1e-6;
            const double up = loss();
            values[i] = keep - 1e-6;
            const double down = loss();
            values[i] = keep;
            worst = std::max(worst, std::abs(grad[i] - (up - down) / 2e-6));
            scale = std::max(scale, std::abs(grad[i]));
        }
        CHECK(worst / scale < 1e-6);
    }
}

TEST_CASE("checkpoints: weights, moments and state round trip, and another architecture or schedule is refused") {
    sda::Generator gen(10);
    nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, tiny_config(), gen);
    train::CpuEngine<nn::ScoreNet<sda::VPCosine>> engine(net, {});
    sda::Generator data(9);
    engine.step(sda::CpuBackend<float>::normal({4, 3, 2}, data), data, 1e-3, 0.0);
    const train::TrainingState state{3, 10, 42, {{1, 0.5, 0.6, 1e-3, 2.0}, {2, 0.4, 0.5, 9e-4, 2.1}, {3, 0.3, 0.4, 8e-4, 2.2}}};
    const fs::path path = scratch("checkpoint.safetensors");
    engine.save(path, 0.0, state);

    nn::ScoreNet<sda::VPCosine> loaded(sda::VPCosine{}, tiny_config());
    train::CpuEngine<nn::ScoreNet<sda::VPCosine>> engine2(loaded, {});
    const auto resume = engine2.load(path, 0.0);
    CHECK(loaded.parameters().values() == net.parameters().values());
    CHECK(resume.steps == 1);
    CHECK(resume.ema_decay == 0.0);
    CHECK(resume.state.epoch == 3);
    CHECK(resume.state.draws == 42);
    REQUIRE(resume.state.history.size() == 3);
    CHECK(resume.state.history[1].valid_loss == 0.5);
    CHECK(resume.state.history[2].epoch == 3);
    // the moments came back: one more step from each engine gives the same weights
    sda::Generator d1(5), d2(5);
    const Tensor<float> x = sda::CpuBackend<float>::normal({4, 3, 2}, d1);
    sda::CpuBackend<float>::normal({4, 3, 2}, d2);
    engine.step(x, d1, 1e-3, 0.0), engine2.step(x, d2, 1e-3, 0.0);
    CHECK(loaded.parameters().values() == net.parameters().values());

    // the file records the architecture with its kind, and the schedule
    const sda::io::SafetensorsFile file(path);
    CHECK(nlohmann::json::parse(file.metadata("sda.config")).at("kind") == "mlp");
    CHECK(file.metadata("sda.schedule") == "VP(cos, eta=0.001)");

    nn::ScoreNetConfig other = tiny_config();
    other.width = 16;
    nn::ScoreNet<sda::VPCosine> wrong(sda::VPCosine{}, other);
    CHECK_THROWS_WITH_AS(train::load_weights(path, wrong), doctest::Contains("was written for the architecture"), sda::error);
    nn::ScoreNet<sda::VPLinear> linear(sda::VPLinear{}, tiny_config());
    CHECK_THROWS_WITH_AS(train::load_weights(path, linear),
                         doctest::Contains("trained with the noise schedule VP(cos, eta=0.001), not VP(lin, eta=0.001)"),
                         sda::error);
    nn::ScoreNet<sda::VPCosine> other_eta(sda::VPCosine(1e-2), tiny_config());
    CHECK_THROWS_AS(train::load_weights(path, other_eta), sda::error);
    // a file written before configurations recorded their kind loads into the same architecture
    {
        nlohmann::json legacy = net.config().to_json();
        legacy.erase("kind");
        sda::io::SafetensorsWriter writer;
        for (const auto& info : net.parameters().infos())
            writer.add<float>(info.name, std::span<const float>(net.parameters().data() + info.offset, info.size), info.shape);
        writer.metadata("sda.config", legacy.dump());
        writer.write(scratch("legacy.safetensors"));
        nn::ScoreNet<sda::VPCosine> from_legacy(sda::VPCosine{}, tiny_config());
        train::load_weights(scratch("legacy.safetensors"), from_legacy);
        CHECK(from_legacy.parameters().values() == net.parameters().values());
        CHECK_THROWS_WITH_AS(train::load_weights(scratch("legacy.safetensors"), wrong),
                             doctest::Contains("was written for the architecture"), sda::error);
    }
    // a weights-only file has no training state to resume
    train::save_weights(scratch("weights.safetensors"), net);
    CHECK_THROWS_WITH_AS(engine2.load(scratch("weights.safetensors"), 0.0), doctest::Contains("weights only"), sda::error);
    fs::remove_all(path.parent_path());
}

TEST_CASE("network configurations: one field table gives JSON, parsing and equality") {
    nn::ScoreNetConfig a = tiny_config();
    const nlohmann::json j = a.to_json();
    CHECK(j.at("kind") == "mlp");
    CHECK(j.at("activation") == "SiLU");
    CHECK(nn::ScoreNetConfig::from_json(j) == a);
    // every field takes part in equality and in the JSON form
    std::vector<std::string> names;
    std::apply([&](const auto&... f) { (names.push_back(f.name), ...); }, nn::ScoreNetConfig::fields());
    for (const auto& name : names) CHECK_MESSAGE(j.contains(name), name);
    nn::ScoreNetConfig b = a;
    b.unbiased_layer_norm = !a.unbiased_layer_norm;
    CHECK_FALSE(a == b);
    b = a, b.embedding_hidden += 1;
    CHECK_FALSE(a == b);
    CHECK(j.size() == std::tuple_size_v<decltype(nn::ScoreNetConfig::fields())> + 1);

    // a configuration that is not exactly a ScoreNet's is refused, naming what is wrong
    const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> broken{
        {[](nlohmann::json& c) { c.erase("kind"); }, "does not say its kind"},
        {[](nlohmann::json& c) { c["kind"] = "unet"; }, "of kind \"unet\", not \"mlp\""},
        {[](nlohmann::json& c) { c["widht"] = 3; }, "unknown field \"widht\""},
        {[](nlohmann::json& c) { c.erase("depth"); }, "has no \"depth\""},
        {[](nlohmann::json& c) { c["activation"] = "Swish"; }, "unknown activation"},
        {[](nlohmann::json& c) { c["width"] = "wide"; }, "\"width\" must be a whole number"},
        // integers are read strictly: nlohmann's get<std::size_t> turned -1 into 2^64 - 1 and 2.5 into 2
        {[](nlohmann::json& c) { c["width"] = -1; }, "\"width\" must be a whole number from 0 to 2^24, not -1"},
        {[](nlohmann::json& c) { c["depth"] = 2.5; }, "\"depth\" must be a whole number from 0 to 2^24, not 2.5"},
        {[](nlohmann::json& c) { c["event"] = {3, -2}; }, "\"event\" must be a whole number"},
        {[](nlohmann::json& c) { c["event"] = 6; }, "\"event\" must be a list of at most 64 sizes"},
        {[](nlohmann::json& c) { c["unbiased_layer_norm"] = 1; }, "must be true or false, not 1"},
        // sizes are bounded before any layer is built: these were accepted and ended in an OOM kill
        {[](nlohmann::json& c) { c["width"] = std::uint64_t(1) << 40; }, "\"width\" must be a whole number from 0 to 2^24"},
        {[](nlohmann::json& c) { c["depth"] = 1000000000; }, "\"depth\" must be a whole number from 0 to 2^24"},
        {[](nlohmann::json& c) { c["width"] = 1 << 20; }, "parameters, above the limit of 2^30"},
        {[](nlohmann::json& c) { c["depth"] = 5000; }, "depth 5000 is above 4096 blocks"},
        {[](nlohmann::json& c) { c["event"] = {65536, 65536, 65536}; }, "must hold from 1 to 2^32 values"},
        {[](nlohmann::json& c) { c["event"] = {3, 0}; }, "must hold from 1 to 2^32 values"}};
    for (const auto& [breaks, message] : broken) {
        nlohmann::json c = j;
        breaks(c);
        CHECK_THROWS_WITH_AS(nn::ScoreNetConfig::from_json(c), doctest::Contains(message.c_str()), sda::error);
    }
}

namespace {

/// A copy of the checkpoint at `from` with metadata `key` set to `value` (removed when empty).
fs::path with_metadata(const fs::path& from, const std::string& name, const std::string& key, const std::string& value) {
    const sda::io::SafetensorsFile file(from);
    sda::io::SafetensorsWriter writer;
    for (const auto& [tensor, info] : file.tensors()) writer.add<float>(tensor, file.read<float>(tensor, info.shape), info.shape);
    for (const auto& [k, v] : file.metadata())
        if (k != key) writer.metadata(k, v);
    if (!value.empty()) writer.metadata(key, value);
    const fs::path path = scratch(name);
    writer.write(path);
    return path;
}

}  // namespace

TEST_CASE("checkpoints: hostile metadata is refused with sda::error, never a crash or a silent wrap") {
    sda::Generator gen(10);
    nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, tiny_config(), gen);
    train::CpuEngine<nn::ScoreNet<sda::VPCosine>> engine(net, {});
    sda::Generator data(9);
    engine.step(sda::CpuBackend<float>::normal({4, 3, 2}, data), data, 1e-3, 0.0);
    const fs::path good = scratch("good.safetensors");
    engine.save(good, 0.0, train::TrainingState{2, 10, 42, {{1, 0.5, 0.6, 1e-3, 2.0}, {2, 0.4, 0.5, 9e-4, 2.1}}});

    nn::ScoreNet<sda::VPCosine> loaded(sda::VPCosine{}, tiny_config());
    train::CpuEngine<nn::ScoreNet<sda::VPCosine>> engine2(loaded, {});
    const auto refused = [&](const std::string& key, const std::string& value, const char* reason) {
        const fs::path path = with_metadata(good, "hostile.safetensors", key, value);
        std::string error = "no error";
        try {
            engine2.load(path, 0.0);
        } catch (const sda::error& e) {
            error = e.what();
        }
        CHECK_MESSAGE(error.find(reason) != std::string::npos, key, " = ", value.substr(0, 80), " -> ", error);
        CHECK_MESSAGE(error.find(path.string()) != std::string::npos, "names the file: ", error);
        CHECK_MESSAGE(error.size() < 1000, "a bounded message: ", error.size(), " characters");
    };
    REQUIRE_NOTHROW(engine2.load(good, 0.0));

    // a configuration nested 100,000 levels deep (200 KB) ended the process with a stack
    // overflow when the mismatch message printed it
    refused("sda.config", std::string(100000, '[') + std::string(100000, ']'), "nests deeper than 64 levels");
    refused("sda.config", R"({"kind":"mlp","width":)", "not valid JSON");
    // another architecture: the message shows both, shortened
    nlohmann::json wide = net.config().to_json();
    wide["context"] = std::vector<double>(5000, 0.5);
    refused("sda.config", wide.dump(), "was written for the architecture");
    // an epoch of "-1" was read as 2^64 - 1 and the resumed run trained nothing, silently
    refused("sda.epoch", "-1", "\"-1\" is not a non-negative whole number");
    refused("sda.epoch", "2.5", "is not a non-negative whole number");
    refused("sda.epoch", " 2", "is not a non-negative whole number");
    refused("sda.epoch", "18446744073709551616", "is not a non-negative whole number below 2^64");
    refused("sda.epoch", "3", "epoch 3 but the history holds 2 epochs");
    refused("sda.optimizer", R"({"name":"AdamW","steps":-1})", "\"steps\" must be a non-negative integer");
    refused("sda.optimizer", R"({"name":"AdamW","steps":1,"ema_decay":1.5})", "ema_decay 1.5 is outside [0, 1)");
    refused("sda.generator", R"({"seed":10,"draws":-5})", "\"draws\" must be a non-negative integer");
    refused("sda.generator", R"({"seed":10})", "\"draws\" must be a non-negative integer");
    refused("sda.generator", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            "nests deeper than 64 levels");
    refused("sda.history", R"([{"epoch":1,"train":0.5,"valid":0.6,"lr":0.001,"seconds":2}])", "the history holds 1 epochs");
    refused("sda.history", R"([{"epoch":2,"train":0.5,"valid":0.6,"lr":0.001,"seconds":2},{"epoch":1,"train":0.5,"valid":0.6,"lr":0.001,"seconds":2}])",
            "the history's entry 1 is for epoch 2");
    refused("sda.history", R"({"epoch":1})", "the history is not an array");
    refused("sda.history", R"([{"epoch":1,"train":"low","valid":0.6,"lr":0.001,"seconds":2},{"epoch":2}])",
            "\"train\" must be a finite number");

    // NaN weights or moments in a checkpoint are refused, naming the tensor, not trained on
    {
        const sda::io::SafetensorsFile file(good);
        sda::io::SafetensorsWriter writer;
        for (const auto& [tensor, info] : file.tensors()) {
            std::vector<float> values = file.read<float>(tensor, info.shape);
            if (tensor == "optimizer.exp_avg_sq." + net.parameters().infos().back().name) values.back() = std::nanf("");
            writer.add<float>(tensor, values, info.shape);
        }
        for (const auto& [k, v] : file.metadata()) writer.metadata(k, v);
        writer.write(scratch("nan.safetensors"));
        const std::string reason = "tensor optimizer.exp_avg_sq." + net.parameters().infos().back().name + " holds nan";
        CHECK_THROWS_WITH_AS(engine2.load(scratch("nan.safetensors"), 0.0), doctest::Contains(reason.c_str()), sda::error);
    }
    fs::remove_all(good.parent_path());
}

TEST_CASE("fit: NaN in the data is refused, and a non-finite step stops training before it touches the weights") {
    Tensor<float> data = SmallProblem::data(11);
    data(4, 7, 1) = std::nanf("");
    CHECK_THROWS_WITH_AS(train::WindowDataset<float>(data, 3),
                         "sda::train::WindowDataset: trajectory 4 has a non-finite value (nan) at state 7", sda::error);

    // a learning rate that overflows the weights: the step that would apply a non-finite
    // gradient throws, naming it, and the weights are those of the step before
    SmallProblem problem(11, 2);
    problem.options.optimizer.lr = 1e37;
    problem.options.checkpoint = scratch("diverged.safetensors");
    sda::Generator init(1), gen(2);
    nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, tiny_config(), init);
    std::vector<float> last;
    struct Keep {
        nn::ScoreNet<sda::VPCosine>* net;
        std::vector<float>* last;
        void on_batch(const train::BatchStats&) { last->assign(net->parameters().values().begin(), net->parameters().values().end()); }
    } keep{&net, &last};
    CHECK_THROWS_WITH_AS(train::fit(net, problem.train_set, problem.valid_set, problem.options, gen, keep),
                         doctest::Contains("gave a non-finite loss"), sda::error);
    REQUIRE_FALSE(last.empty());
    CHECK(std::equal(last.begin(), last.end(), net.parameters().values().begin()));
    CHECK_FALSE(fs::exists(scratch("diverged.safetensors")));  // no epoch completed, none written
    fs::remove_all(scratch("x").parent_path());
}

TEST_CASE("score networks: a diffusion time outside [0, 1], or NaN, is refused by eps, linearize and training") {
    sda::Generator gen(1);
    const nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, tiny_config(), gen);
    const Tensor<float> x = sda::CpuBackend<float>::normal({2, 3, 2}, gen);
    for (double t : {-0.5, 2.0, std::nan("")}) {
        CHECK_THROWS_WITH_AS(net.eps(x, t), doctest::Contains("is outside [0, 1]"), sda::error);
        CHECK_THROWS_WITH_AS(net.linearize(x, t), doctest::Contains("is outside [0, 1]"), sda::error);
        const std::vector<double> times = {0.5, t};
        CHECK_THROWS_WITH_AS(net.forward(x, times), doctest::Contains("is outside [0, 1]"), sda::error);
    }
    CHECK_NOTHROW(net.eps(x, 0.0));
    CHECK_NOTHROW(net.eps(x, 1.0));
}

TEST_CASE("fit: an interrupted run resumes exactly as if never stopped") {
    const SmallProblem problem(11, 4);
    const auto &train_set = problem.train_set, &valid_set = problem.valid_set;
    train::FitOptions options = problem.options;

    auto fresh = [] {
        sda::Generator init(12);
        return nn::ScoreNet<sda::VPCosine>(sda::VPCosine{}, tiny_config(), init);
    };
    // straight through
    auto straight = fresh();
    sda::Generator gen_a(13);
    const auto a = train::fit(straight, train_set, valid_set, options, gen_a);
    REQUIRE(a.history.size() == 4);

    // stopped after epoch 2 (its checkpoint written), then run again
    const fs::path path = scratch("resume.safetensors");
    options.checkpoint = path;
    auto interrupted = fresh();
    struct Stop {
        void on_epoch(const train::EpochStats& s) {
            if (s.epoch == 2) throw std::runtime_error("interrupted");
        }
    };
    sda::Generator gen_b(13);
    CHECK_THROWS_AS(train::fit(interrupted, train_set, valid_set, options, gen_b, Stop{}), std::runtime_error);
    auto resumed = fresh();  // a new process: fresh weights, fresh generator
    sda::Generator gen_c(13);
    const auto c = train::fit(resumed, train_set, valid_set, options, gen_c);
    CHECK(c.resumed_from == 2);
    CHECK(resumed.parameters().values() == straight.parameters().values());
    REQUIRE(c.history.size() == 4);
    for (std::size_t e = 0; e < 4; ++e) {
        CHECK(c.history[e].train_loss == a.history[e].train_loss);
        CHECK(c.history[e].valid_loss == a.history[e].valid_loss);
    }
    // a different seed may not resume someone else's run
    sda::Generator other(14);
    auto third = fresh();
    CHECK_THROWS_WITH_AS(train::fit(third, train_set, valid_set, options, other), doctest::Contains("trained with seed 13"),
                         sda::error);
    // training lowers the loss on this data
    CHECK(a.history.back().train_loss < a.history.front().train_loss);
    fs::remove_all(path.parent_path());
}

TEST_CASE("fit: the EMA of the weights equals its definition over the recorded weights") {
    const SmallProblem problem(21, 2);
    const auto &train_set = problem.train_set, &valid_set = problem.valid_set;
    train::FitOptions options = problem.options;
    options.ema_decay = 0.9;
    options.checkpoint = scratch("ema.safetensors");
    sda::Generator init(22);
    nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, tiny_config(), init);
    // ema_0 = w_0, ema_k = d ema_{k-1} + (1 - d) w_k after step k, in double
    std::vector<double> ema(net.parameters().values().begin(), net.parameters().values().end());
    struct Record {
        const nn::ScoreNet<sda::VPCosine>* net;
        std::vector<double>* ema;
        std::size_t steps = 0;
        void on_batch(const train::BatchStats&) {
            const auto& w = net->parameters().values();
            for (std::size_t i = 0; i < w.size(); ++i) (*ema)[i] = 0.9 * (*ema)[i] + 0.1 * double(w[i]);
            ++steps;
        }
    } record{&net, &ema};
    sda::Generator gen(23);
    train::fit(net, train_set, valid_set, options, gen, record);
    REQUIRE(record.steps == 10);
    // the checkpoint's weights to sample with are the EMA; the trained ones are under "training."
    nn::ScoreNet<sda::VPCosine> loaded(sda::VPCosine{}, tiny_config());
    train::load_weights(options.checkpoint, loaded);
    const sda::io::SafetensorsFile file(options.checkpoint);
    const auto& infos = net.parameters().infos();
    const std::vector<float> trained = file.read<float>("training." + infos[0].name, infos[0].shape);
    CHECK(std::equal(trained.begin(), trained.end(), net.parameters().values().begin()));
    // float rounding: each update errs by ~2 ulp of max(|ema|, |w|) and the error decays by d,
    // so the whole is within 2.4e-7 max|w| / (1 - d); allow twice that
    double worst = 0, scale = 0, moved = 0;
    for (std::size_t i = 0; i < ema.size(); ++i) {
        worst = std::max(worst, std::abs(double(loaded.parameters().values()[i]) - ema[i]));
        scale = std::max(scale, std::abs(ema[i]));
        moved = std::max(moved, std::abs(ema[i] - double(net.parameters().values()[i])));
    }
    MESSAGE("EMA: max error ", worst, " for max |w| ", scale, "; EMA differs from the weights by up to ", moved);
    CHECK(worst <= 2 * 2.4e-7 * scale / (1 - 0.9));
    CHECK(moved > 100 * worst);  // the EMA is not the weights themselves
    fs::remove_all(options.checkpoint.parent_path());
}

TEST_CASE("fit: an interrupted run with EMA resumes bit for bit") {
    const SmallProblem problem(31, 4);
    const auto &train_set = problem.train_set, &valid_set = problem.valid_set;
    train::FitOptions options = problem.options;
    options.ema_decay = 0.8;
    auto fresh = [] {
        sda::Generator init(32);
        return nn::ScoreNet<sda::VPCosine>(sda::VPCosine{}, tiny_config(), init);
    };
    auto straight = fresh();
    options.checkpoint = scratch("ema_straight.safetensors");
    sda::Generator gen_a(33);
    train::fit(straight, train_set, valid_set, options, gen_a);

    options.checkpoint = scratch("ema_interrupted.safetensors");
    struct Stop {
        void on_epoch(const train::EpochStats& s) {
            if (s.epoch == 2) throw std::runtime_error("interrupted");
        }
    };
    auto interrupted = fresh();
    sda::Generator gen_b(33);
    CHECK_THROWS_AS(train::fit(interrupted, train_set, valid_set, options, gen_b, Stop{}), std::runtime_error);
    auto resumed = fresh();
    sda::Generator gen_c(33);
    CHECK(train::fit(resumed, train_set, valid_set, options, gen_c).resumed_from == 2);
    CHECK(resumed.parameters().values() == straight.parameters().values());
    auto ema_of = [&](const fs::path& path) {
        auto net = fresh();
        train::load_weights(path, net);
        return net.parameters().values();
    };
    CHECK(ema_of(scratch("ema_straight.safetensors")) == ema_of(scratch("ema_interrupted.safetensors")));
    CHECK(ema_of(scratch("ema_straight.safetensors")) != straight.parameters().values());
    // resuming with another decay (or none) is refused
    options.ema_decay = 0.5;
    auto other = fresh();
    sda::Generator gen_d(33);
    CHECK_THROWS_WITH_AS(train::fit(other, train_set, valid_set, options, gen_d), doctest::Contains("EMA decay 0.8"),
                         sda::error);
    fs::remove_all(options.checkpoint.parent_path());
}

// --- training reaches the analytic optimum -----------------------------------------------

#include <Eigen/Eigenvalues>

#include "sda/systems/linear_gaussian.hpp"

TEST_SUITE("training") {
    TEST_CASE("training a score network on Gaussian windows approaches the Bayes-optimal loss") {
        // For x ~ N(m, S) the best possible eps is the analytic one, whose loss is
        //   L*(t) = (1/n) sum_k mu^2 l_k / (mu^2 l_k + sigma^2),  l_k the eigenvalues of S,
        // averaged over t ~ U(0, 1). No network can do better in expectation; a
        // trained one should close most of the gap from its initial loss.
        const auto chain = sda::systems::LinearGaussianChain::damped_spring();
        const auto [mean, cov] = chain.joint_law(3);
        const Eigen::VectorXd lambda = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(cov).eigenvalues();
        const sda::VPCosine schedule;
        double optimum = 0;
        const int grid = 20000;
        for (int i = 0; i < grid; ++i) {
            const double t = (i + 0.5) / grid, mu = schedule.mu(t), sigma = schedule.sigma(t);
            optimum += (mu * mu * lambda.array() / (mu * mu * lambda.array() + sigma * sigma)).mean() / grid;
        }

        nn::ScoreNetConfig config;
        config.event = {3, 4};
        config.embedding = 16, config.width = 64, config.depth = 3;
        sda::Generator gen(30);
        nn::ScoreNet<sda::VPCosine> net(schedule, config, gen);
        auto evaluate = [&] {  // the loss on 2^17 fresh windows, and its standard error
            sda::Generator fresh(31);
            std::vector<double> losses;
            for (int k = 0; k < 32; ++k) {
                const Tensor<float> x = chain.simulate<float>(4096, 3, fresh);
                losses.push_back(train::denoising_loss(net, x, fresh));
            }
            double m = 0, v = 0;
            for (double l : losses) m += l / losses.size();
            for (double l : losses) v += (l - m) * (l - m) / (losses.size() - 1);
            return std::pair{m, std::sqrt(v / losses.size())};
        };
        const double initial = evaluate().first;
        train::AdamW<float> adamw(net.parameters().size(), {.lr = 2e-3, .weight_decay = 1e-4});
        std::vector<float> grad(net.parameters().size());
        const int steps = 3000;
        for (int step = 0; step < steps; ++step) {
            const Tensor<float> x = chain.simulate<float>(256, 3, gen);
            std::fill(grad.begin(), grad.end(), 0.f);
            train::denoising_loss_gradient(net, x, gen, std::span<float>(grad));
            adamw.step(net.parameters().values(), grad, 2e-3 * (1.0 - double(step) / steps));
        }
        const auto [trained, se] = evaluate();
        MESSAGE("Bayes-optimal loss ", optimum, "; network: initial ", initial, ", trained ", trained, " +- ", se,
                " (gap closed: ", 100.0 * (initial - trained) / (initial - optimum), "%)");
        CHECK(trained >= optimum - 4.5 * se);                       // nothing beats the Bayes optimum
        CHECK(trained - optimum <= 0.05 * (initial - optimum));     // training closes at least 95% of the gap
    }
}
