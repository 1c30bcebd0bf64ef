// docs/snippets/torch.cpp: the code docs/torch.md quotes, built by the test suite when libtorch
// is found (not run: it wants a CUDA device and the demo's checkpoint).
#include <sda/backend/torch.hpp>
#include <sda/nn/torch.hpp>
#include <sda/sda.hpp>

int main() {
    const sda::Tensor<float> y = xt::zeros<float>({9, 1});
    // snippet: device
    const sda::TorchBackend be{.device = torch::kCUDA};                  // float32 by default

    // a window model trained by sda (CPU or GPU) or written by tools/torch_interop.py; the schedule
    // it was trained with is recorded in the file and checked
    const sda::TorchScoreModel window(sda::torch_nn::load("window_K2.safetensors", sda::VPCosine{}), sda::VPCosine{},
                                      {5, 3}, be);
    const sda::MarkovComposedScore<decltype(window), 2> prior(window, 65);  // windows cut on the device

    // y: the first coordinate of every 8th state, std 0.05; sda's operators run on the device
    const sda::observe::Select every_8th({0, 8, 16, 24, 32, 40, 48, 56, 64}, {0});
    const sda::GaussianObservation obs(every_8th, sda::to_torch(y, be), 0.05 * 0.05, be);  // y: sda::Tensor<float> [9, 1]

    sda::Generator gen(42);
    const torch::Tensor x = sda::sample(sda::PredictorCorrector{.steps = 256, .corrector = {.corrections = 1}},
                                        sda::guide(prior, obs, sda::SDA{.gamma = 3e-2}), 1024, gen);
    const sda::Tensor<float> samples = sda::from_torch<float>(x);       // [1024, 65, 3] on the host
    // end snippet
    return samples.size() > 0 ? 0 : 1;
}
