// The optional targets of an installed sda: a trajectory through HDF5 (sda::hdf5) and a few steps
// of the Kolmogorov-flow solver (sda::fftw). Exits 1 unless both do what they should. With
// SDA_CONSUMER_MPI, also MPI's header and library through sda::mpi (no MPI job: mpiexec is not run).
// With SDA_CONSUMER_DNNL, a float convolution through sda::dnnl (oneDNN) against the im2col kernel.
#include <sda/io/hdf5.hpp>
#include <sda/nn/conv.hpp>
#include <sda/systems/kolmogorov.hpp>
#ifdef SDA_CONSUMER_MPI
#include <mpi.h>
#endif

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

int main(int argc, char** argv) {
    const std::filesystem::path file = std::filesystem::path(argc > 1 ? argv[1] : ".") / "trajectory.h5";
    sda::Tensor<float> x = xt::zeros<float>({2, 3, 4});
    x(1, 2, 3) = 1.5f;
    sda::io::write_trajectories(file, x);
    const bool hdf5_ok = sda::io::read_trajectories(file) == x;

    sda::systems::KolmogorovFlow flow({.grid = 16});
    sda::Generator gen(1);
    std::vector<double> omega = flow.random_vorticity(gen);
    const double before = flow.energy(omega);
    flow.advance(omega, 0.1);
    const double after = flow.energy(omega);
    const bool fftw_ok = std::isfinite(after) && after > 0 && after != before;
    std::printf("hdf5 round trip %s, fftw solver %s\n", hdf5_ok ? "ok" : "FAILED", fftw_ok ? "ok" : "FAILED");
#ifdef SDA_CONSUMER_MPI
    int major = 0, minor = 0;
    MPI_Get_version(&major, &minor);  // one of the calls allowed before MPI_Init
    std::printf("linked against MPI %d.%d\n", major, minor);
#endif
    bool dnnl_ok = true;
#ifdef SDA_CONSUMER_DNNL
    sda::nn::ParameterSet<float> params;
    const auto conv = sda::nn::conv2d(params, "conv", 3, 4);
    conv.initialise(params, "conv", gen);
    const sda::RowMatrix<float> X = sda::RowMatrix<float>::Random(2 * 25, 3);
    sda::RowMatrix<float> Y(2 * 25, 4), Y_im2col(2 * 25, 4);
    conv.forward(params.data(), X, 2, {5, 5}, Y);
    conv.forward_im2col(params.data(), X, 2, {5, 5}, Y_im2col);
    dnnl_ok = conv.uses_dnnl() && (Y - Y_im2col).cwiseAbs().maxCoeff() < 1e-5f;
    std::printf("oneDNN convolution %s\n", dnnl_ok ? "ok" : "FAILED");
#endif
    return hdf5_ok && fftw_ok && dnnl_ok ? 0 : 1;
}
