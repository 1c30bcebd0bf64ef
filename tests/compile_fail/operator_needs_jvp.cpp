// Must not compile: an observation operator without jvp. The diagnostic must
// name "ObservationOperator".
#include "sda/backend/cpu.hpp"
#include "sda/observe/gaussian.hpp"

struct NoJvp {
    sda::Shape output_shape(const sda::Shape& event) const { return event; }
    sda::Tensor<double> apply(const sda::Tensor<double>& x) const { return x; }
    sda::Tensor<double> vjp(const sda::Tensor<double>&, const sda::Tensor<double>& v) const { return v; }
};

int main() {
    const sda::Tensor<double> y = {0.0};
    sda::GaussianObservation obs(NoJvp{}, y, 0.1);
}
