// Must not compile: a type without eps handed to sda::sample. The diagnostic
// must name the concept it misses (checked by CTest: "EpsModel").
#include "sda/backend/cpu.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"

struct NoEps {
    sda::CpuBackend<double> backend() const { return {}; }
    sda::VPCosine schedule() const { return sda::VPCosine{}; }
    sda::Shape event_shape() const { return {3}; }
};

int main() {
    sda::Generator gen(0);
    sda::sample(sda::PredictorCorrector{}, NoEps{}, 4, gen);
}
