// Must not compile: SDA guidance differentiates through the model, so a model
// without an input VJP is refused. The diagnostic must name "Guidance".
#include "sda/backend/cpu.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/schedule/vp.hpp"

struct NoVjp {
    sda::CpuBackend<double> backend() const { return {}; }
    sda::VPCosine schedule() const { return sda::VPCosine{}; }
    sda::Shape event_shape() const { return {3, 1}; }
    sda::Tensor<double> eps(const sda::Tensor<double>& x, double) const { return x; }
};

int main() {
    const sda::Tensor<double> y = {{0.0}};
    sda::guide(NoVjp{}, sda::GaussianObservation(sda::observe::Select({0}, {0}), y, 0.1), sda::SDA{});
}
