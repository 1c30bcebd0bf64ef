# scripts/common.sh: shared by scripts/demo and scripts/test (sourced, not run).
#
# Each script installs from Debian's archive what the targets it builds need, and nothing else,
# then configures and builds them in build/ (Release, -O2, ccache when present). Everything is
# idempotent: a second run with everything present does no apt work and rebuilds only what
# changed. The two scripts share one build folder without undoing each other's configuration.
# tests/setup/ checks these lists: the demo configures and builds with every test-only package
# hidden, and each package its configuration requires is in its list.

set -euo pipefail

SDA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDA_BUILD="${SDA_BUILD:-$SDA_ROOT/build}"
SDA_JOBS="${SDA_JOBS:-$(nproc)}"
# extra arguments for cmake's configure step, split at spaces (e.g. -DSDA_NATIVE=OFF)
SDA_CMAKE_ARGS="${SDA_CMAKE_ARGS:-}"

# The Debian packages, by what needs them.
# the library (sda::sda) and the tools to build anything with it; ccache only makes rebuilds fast
SDA_PACKAGES_LIBRARY=(cmake g++ make ccache libeigen3-dev libxtensor-dev libtbb-dev librandom123-dev
                      nlohmann-json3-dev)
# the examples: command lines (CLI11) and trajectories in HDF5 (sda::hdf5, found through pkg-config)
SDA_PACKAGES_EXAMPLES=(libcli11-dev libhdf5-dev pkg-config)
# the Kolmogorov-flow solver (sda::fftw): its example and its tests
SDA_PACKAGES_FFTW=(libfftw3-dev)
# oneDNN (sda::dnnl): the networks' float matrix products and convolutions (and bfloat16
# sampling), for every demo, the tests and the benchmarks; without it they run in Eigen, slower
SDA_PACKAGES_DNNL=(libdnnl-dev)
# the demos' figures, drawn by Debian's /usr/bin/python3; the Kolmogorov figures also read HDF5
SDA_PACKAGES_PLOT=(python3-matplotlib)
SDA_PACKAGES_PLOT_KOLMOGOROV=(python3-h5py)
# the tests and benchmarks only: doctest, Boost.Math (Monte-Carlo quantiles), Google Benchmark;
# python3 runs tests/setup's package check; python3-torch the PyTorch interop test;
# libtorch-dev (a CPU build of libtorch) the torch adapter (sda::torch), built and tested
SDA_PACKAGES_TEST=(doctest-dev libboost-dev libbenchmark-dev python3 python3-torch libtorch-dev)
# the MPI component (sda::mpi, found by CMake's FindMPI): its headers, mpicxx and mpiexec, for the
# tests run on 1 to 4 ranks (label mpi); the demo does not use it
SDA_PACKAGES_MPI=(libopenmpi-dev openmpi-bin)
# scripts/fuzz only: clang with libFuzzer and the sanitizers' runtime
SDA_PACKAGES_FUZZ=(clang libclang-rt-14-dev)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# demo_build_packages EXAMPLE: what building EXAMPLE needs (the figures' Python packages aside).
demo_build_packages() {
    local packages=("${SDA_PACKAGES_LIBRARY[@]}" "${SDA_PACKAGES_EXAMPLES[@]}" "${SDA_PACKAGES_DNNL[@]}")
    [ "$1" = kolmogorov ] && packages+=("${SDA_PACKAGES_FFTW[@]}")
    printf '%s\n' "${packages[@]}"
}

# demo_packages EXAMPLE: the Debian packages `scripts/demo EXAMPLE` needs, one per line.
demo_packages() {
    demo_build_packages "$1"
    printf '%s\n' "${SDA_PACKAGES_PLOT[@]}"
    [ "$1" = kolmogorov ] && printf '%s\n' "${SDA_PACKAGES_PLOT_KOLMOGOROV[@]}"
    return 0
}

# test_packages: the Debian packages `scripts/test` needs (it builds every target), one per line.
test_packages() {
    printf '%s\n' "${SDA_PACKAGES_LIBRARY[@]}" "${SDA_PACKAGES_EXAMPLES[@]}" "${SDA_PACKAGES_FFTW[@]}" \
                  "${SDA_PACKAGES_TEST[@]}" "${SDA_PACKAGES_MPI[@]}" "${SDA_PACKAGES_DNNL[@]}"
}

# missing_packages PKG...: prints those of the packages that are not installed.
missing_packages() {
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$package"
        fi
    done
}

# ensure_packages PKG...: installs the missing ones with apt-get (as root), or
# prints the exact command to run and stops.
ensure_packages() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "sda needs these Debian packages: ${missing[*]}" >&2
        echo "Install them with:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    say "Installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# option_packages OPTION: the Debian packages what sda's CMake OPTION turns on needs, one per line.
option_packages() {
    case "$1" in
        SDA_BUILD_TESTS) test_packages ;;
        SDA_BUILD_EXAMPLES) printf '%s\n' "${SDA_PACKAGES_EXAMPLES[@]}" ;;
        SDA_BUILD_BENCHMARKS) echo libbenchmark-dev ;;
        SDA_WITH_TORCH) echo libtorch-dev ;;
        *) echo "option_packages: no option $1" >&2; return 2 ;;
    esac
}

# configure_build OPTION...: configures $SDA_BUILD (Release, -O2, ccache when present) with the
# given options of sda's CMake turned on: SDA_BUILD_TESTS, SDA_BUILD_EXAMPLES,
# SDA_BUILD_BENCHMARKS, SDA_WITH_TORCH. The others are turned off in a fresh folder, and in one
# where their packages have since been removed; otherwise they stay as the folder has them, so
# scripts/demo after scripts/test (or the other way round) never configures the other's targets
# away. Runs every time (seconds): dependencies installed since the last run are then found.
configure_build() {
    local args=() fresh=0 option
    [ -f "$SDA_BUILD/CMakeCache.txt" ] || fresh=1
    [ $fresh -eq 1 ] && args+=(-DCMAKE_BUILD_TYPE=Release)
    for option in SDA_BUILD_TESTS SDA_BUILD_EXAMPLES SDA_BUILD_BENCHMARKS SDA_WITH_TORCH; do
        if [[ " $* " == *" $option "* ]]; then
            args+=("-D$option=ON")
        elif [ $fresh -eq 1 ] || [ -n "$(missing_packages $(option_packages "$option"))" ]; then
            args+=("-D$option=OFF")
        fi
    done
    [ $fresh -eq 1 ] && say "Configuring in ${SDA_BUILD#"$SDA_ROOT"/}"
    # shellcheck disable=SC2086  # SDA_CMAKE_ARGS is split at spaces on purpose
    cmake -S "$SDA_ROOT" -B "$SDA_BUILD" "${args[@]}" $SDA_CMAKE_ARGS >/dev/null
}

# build TARGET...: builds the targets in the configured $SDA_BUILD.
build() {
    say "Building $*"
    cmake --build "$SDA_BUILD" --parallel "$SDA_JOBS" --target "$@"
}

# demo_build EXAMPLE: what scripts/demo does between installing its packages and running EXAMPLE
# (tests/setup/demo_packages.py does the same with the test-only packages hidden).
demo_build() {
    configure_build SDA_BUILD_EXAMPLES
    build "$1"
}
