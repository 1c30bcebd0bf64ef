// docs/snippets/training.cpp: the code docs/training.md quotes, built by the test suite
// (docs/snippets/check_docs.py checks that the page quotes it verbatim). With an argument
// (a folder) it also runs the training snippet there, on a small problem.
#include <sda/io/hdf5.hpp>
#include <sda/sda.hpp>

#include <cmath>
#include <filesystem>
#include <vector>

int main(int argc, char** argv) {
    {
        // snippet: network
        sda::nn::ScoreNetConfig config;
        config.event = {5, 3};                       // a window of 2K+1 = 5 states of Lorenz-63
        sda::Generator init(1);
        sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, config, init);   // torch's default initialisation
        const sda::MarkovComposedScore<decltype(net), 2> prior(net, 65);       // a prior over 65 states
        // end snippet
        if (sda::nn::bfloat16_available()) {
            // snippet: precision
            net.set_sampling_precision(sda::nn::Precision::bfloat16);  // eps, linearize, vjp; training stays float
            // end snippet
        }
    }
    {
        std::vector<double> forcing(32 * 32);
        for (std::size_t i = 0; i < forcing.size(); ++i) forcing[i] = std::sin(4.0 * 2.0 * M_PI * double(i % 32) / 32.0);
        sda::Generator init(2);
        // snippet: unet
        sda::nn::UNetConfig config;
        config.event = {5, 2, 32, 32};               // 2K+1 = 5 velocity fields of 32^2
        config.channels = {32, 64, 128};             // per level; the paper: 96, 192, 384 at 64^2
        config.blocks = {1, 1, 1};                   // residual blocks per level, each way; the paper: 3, 3, 3
        config.context = forcing;                    // optional fixed input channels, e.g. sin(4y)
        sda::nn::ScoreUNet<sda::VPCosine> net(sda::VPCosine{}, config, init);
        const sda::MarkovComposedScore<decltype(net), 2> prior(net, 16);   // 16 states
        // end snippet
    }
    if (argc < 2) return 0;
    // a small run of the training snippet: 64 trajectories of the damped spring in DIR/data
    const std::filesystem::path dir = argv[1];
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "data");
    std::filesystem::current_path(dir);
    const auto chain = sda::systems::LinearGaussianChain::damped_spring();
    sda::Generator data(3);
    sda::io::write_trajectories("data/train.h5", chain.simulate<float>(64, 32, data));
    sda::io::write_trajectories("data/valid.h5", chain.simulate<float>(8, 32, data));
    sda::nn::ScoreNetConfig config;
    config.event = {5, 4};
    config.width = 32, config.depth = 2;
    sda::Generator init(4);
    sda::nn::ScoreNet<sda::VPCosine> net(sda::VPCosine{}, config, init);
    // snippet: fit
    const auto train_x = sda::io::read_trajectories("data/train.h5");   // [N, L, D] float32, the paper's layout
    const auto valid_x = sda::io::read_trajectories("data/valid.h5");
    const sda::train::WindowDataset<float> train(train_x, 5), valid(valid_x, 5);
    sda::train::FitOptions fit;                  // the paper's: AdamW 1e-3, wd 1e-3, batch 64, linear decay
    fit.epochs = 64;
    fit.ema_decay = 0.999;                       // keep an EMA of the weights, the checkpoint's weights to sample with
    fit.checkpoint = "window.safetensors";       // saved every epoch; a rerun resumes from it
    sda::Generator gen(2);
    const auto result = sda::train::fit(net, train, valid, fit, gen, sda::train::TrainingProgress("window K=2"));
    sda::train::load_weights("window.safetensors", net);   // the EMA weights, to sample with
    // end snippet
    return result.history.size() == 64 ? 0 : 1;
}
