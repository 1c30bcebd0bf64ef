# scripts/common.sh: shared by scripts/demo and scripts/test (sourced, not run).
#
# Installs what is missing from Debian's archive, configures and builds sda in
# build/ (Release, -O2, ccache when present). Everything is idempotent: a second
# run with everything present does no apt work and rebuilds only what changed.

set -euo pipefail

SDA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDA_BUILD="${SDA_BUILD:-$SDA_ROOT/build}"
SDA_JOBS="${SDA_JOBS:-$(nproc)}"

# Every Debian package sda needs to build, test, benchmark and plot.
SDA_PACKAGES_BUILD=(cmake g++ make ccache pkg-config libeigen3-dev libxtensor-dev libxtensor-blas-dev libtbb-dev
                    librandom123-dev libopenblas-dev liblapack-dev nlohmann-json3-dev libhdf5-dev libcli11-dev
                    libfftw3-dev)
# python3-torch: the PyTorch interop test (tools/torch_interop.py) runs instead of being skipped;
# libtorch-dev (a CPU build of libtorch): the torch adapter (sda::torch) is built and tested
SDA_PACKAGES_TEST=(doctest-dev libboost-dev libbenchmark-dev python3-torch libtorch-dev)
SDA_PACKAGES_PLOT=(python3-matplotlib python3-h5py)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_packages PKG...: installs the missing ones with apt-get (as root), or
# prints the exact command to run and stops.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$package")
        fi
    done
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

# configure_and_build TARGET...: configures build/ once, then builds the targets.
configure_and_build() {
    # configure every time (seconds): optional dependencies installed since the last
    # run (libtorch-dev by scripts/test after scripts/demo) are then found
    if [ ! -f "$SDA_BUILD/CMakeCache.txt" ]; then
        say "Configuring in ${SDA_BUILD#"$SDA_ROOT"/}"
        cmake -S "$SDA_ROOT" -B "$SDA_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    else
        cmake -S "$SDA_ROOT" -B "$SDA_BUILD" >/dev/null
    fi
    say "Building $*"
    cmake --build "$SDA_BUILD" --parallel "$SDA_JOBS" --target "$@"
}
