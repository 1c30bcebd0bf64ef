#!/usr/bin/env bash
# bench/gpu_check.sh: the first thing to run on a machine with a CUDA GPU. Builds the libtorch
# adapter against the CUDA torch a python already has (no network needed), runs its tests on the
# device, samples a whole guided posterior with torch's sync-debug mode on "error", times the
# adapter against plain PyTorch on the same weights, and prints one table of everything. Meant to
# finish within 8 minutes (--budget): a fresh build is most of it, ccache makes reruns short.
# docs/gpu.md says what each row shows.
#
#   bench/gpu_check.sh [--python PATH] [--build DIR] [--cuda DIR] [--budget S] [--skip-paper]
#                      [--configure-only]
#
#   --python PATH     a python whose torch is a CUDA build (default: bench/.venv/bin/python when it
#                     exists, else python3); the C++ is built against that torch
#   --build DIR       the build folder (default build-gpu/): Release, tests, examples, benchmarks and
#                     the torch adapter on, CMAKE_PREFIX_PATH at torch.utils.cmake_prefix_path;
#                     logs, JSON and the sampling run's data go to DIR/gpu_check/
#   --cuda DIR        the CUDA toolkit that torch's CMake config looks for (default: $CUDA_HOME,
#                     else /usr/local/cuda, else the one of the nvcc on PATH)
#   --budget S        seconds for the whole run (default 480); a stage gets what is left, and one
#                     that would start with less than a minute left is skipped
#   --skip-paper      leave out the paper-size U-Net benchmark (the slowest)
#   --configure-only  only look at the python's torch and configure (no device needed, nothing compiled)
#   SDA_JOBS=N        build parallelism (default: all cores); SDA_CMAKE_ARGS as for scripts/test
#
# Stages, each timed, each one or more rows of the final table; a stage that fails is FAIL there
# and the script goes on with the next one that can still run:
#   1. the device: torch.cuda.is_available() in that python; without a device (or with a CPU build
#      of torch) it says so and exits 3, since there is nothing to check
#   2. configure, and build sda_torch_tests, bench_torch and lorenz63_torch (keep-going)
#   3. ctest -L torch: the adapter's tests; "torch on CUDA: ..." must run, not be skipped
#   4. examples/lorenz63_torch --device cuda --sync-debug: a whole SDA-guided predictor-corrector
#      run (device noise, the backend's default) with torch's sync-debug mode on "error", so that
#      any host round trip (a .item(), a blocking copy) throws; small sizes
#   5. bench_torch --device=cuda and bench/torch_sampling_peer.py --device cuda, as
#      bench/compare_adapter.sh runs them but short: Lorenz-63 predictor-corrector steps and the
#      U-Net guided evaluations, the adapter against plain PyTorch on the same weights
# The C++ programs run with the CUDA libraries of the torch wheel first on LD_LIBRARY_PATH (the
# ones torch uses in python), not the toolkit's. Exit status: 0 when no stage failed, 1 when one
# did, 2 on bad usage or a python without torch, 3 without a CUDA device.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

usage="usage: bench/gpu_check.sh [--python PATH] [--build DIR] [--cuda DIR] [--budget S] [--skip-paper] [--configure-only]"
python=""
build_dir="$SDA_ROOT/build-gpu"
cuda="${CUDA_HOME:-${CUDA_PATH:-}}"
budget=480
paper=1
configure_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) python="${2:?$usage}"; shift ;;
        --build) build_dir="${2:?$usage}"; shift ;;
        --cuda) cuda="${2:?$usage}"; shift ;;
        --budget) budget="${2:?$usage}"; shift ;;
        --skip-paper) paper=0 ;;
        --configure-only) configure_only=1 ;;
        -h | --help) sed -n '2,/^source /p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
    shift
done
[[ "$budget" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check.sh: --budget takes seconds" >&2; exit 2; }
if [ -z "$python" ]; then
    python=python3
    [ -x "$SDA_ROOT/bench/.venv/bin/python" ] && python="$SDA_ROOT/bench/.venv/bin/python"
fi
jobs="$SDA_JOBS"

# --- the table: one row per check, printed at the end ----------------------------------------
rows=()     # check <TAB> result <TAB> details <TAB> seconds
failed=0
row() {  # row CHECK RESULT DETAILS [SECONDS]
    rows+=("$1"$'\t'"$2"$'\t'"${3//$'\n'/ }"$'\t'"${4:-}")
    if [ "$2" = FAIL ]; then failed=$((failed + 1)); fi
}
print_table() {
    local line check result details seconds
    printf '\n| check | result | details | time [s] |\n| --- | --- | --- | ---: |\n'
    for line in "${rows[@]}"; do
        IFS=$'\t' read -r check result details seconds <<< "$line"
        printf '| %s | %s | %s | %s |\n' "$check" "$result" "${details//|/\\|}" "$seconds"
    done
    echo
    echo "logs and JSON: ${logs#"$SDA_ROOT"/}/"
}
# seconds left of the budget for a stage that may use at most CAP; 0 when under a minute is left
time_for() {
    local left=$((budget - SECONDS))
    if [ $left -lt 60 ]; then echo 0; elif [ $left -lt "$1" ]; then echo $left; else echo "$1"; fi
}
# the last lines of a log that say what went wrong
tail_of() { grep -v '^[[:space:]]*$' "$1" | tail -n "${2:-3}" | cut -c1-300 | tr '\n' ' '; }

# --- 1. the python's torch and the device ------------------------------------------------------
say "torch of $python"
if ! command -v "$python" >/dev/null; then
    echo "gpu_check.sh: no python '$python' (give one with --python)" >&2
    exit 2
fi
# one value per line: version, CUDA of the build, device available, device name and count,
# capability, cmake prefix, library folder, C++11 ABI, the wheel's CUDA library folders
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
if ! "$python" - > "$probe/torch.txt" 2> "$probe/torch.log" <<'PY'; then
import glob, os
import torch
available = torch.version.cuda is not None and torch.cuda.is_available()
site = os.path.dirname(os.path.dirname(torch.__file__))
print(torch.__version__)
print(torch.version.cuda or "none")
print(1 if available else 0)
print(torch.cuda.get_device_name(0) if available else "none")
print(torch.cuda.device_count() if available else 0)
print("%d.%d" % torch.cuda.get_device_capability(0) if available else "none")
print(torch.utils.cmake_prefix_path)
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(1 if torch.compiled_with_cxx11_abi() else 0)
print(":".join(sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib")))))
PY
    echo "gpu_check.sh: $python cannot import torch: $(tail_of "$probe/torch.log" 1)" >&2
    exit 2
fi
mapfile -t info < "$probe/torch.txt"
torch_version="${info[0]}" torch_cuda="${info[1]}" available="${info[2]}" device_name="${info[3]}"
device_count="${info[4]}" capability="${info[5]}" torch_prefix="${info[6]}" torch_lib="${info[7]}"
cxx11_abi="${info[8]}" wheel_libs="${info[9]:-}"
if [ "$available" != 1 ]; then
    if [ "$torch_cuda" = none ]; then
        why="its torch $torch_version is a CPU build (torch.version.cuda is None)"
    else
        why="torch $torch_version (CUDA $torch_cuda) sees no CUDA device: torch.cuda.is_available() is False"
    fi
    if [ $configure_only -eq 0 ]; then
        echo "gpu_check.sh: no CUDA device to check with $python: $why." >&2
        echo "Nothing was built or run; on a machine with a GPU, give a python with a CUDA torch (--python)." >&2
        exit 3
    fi
    say "no CUDA device ($why); configuring only"
fi
mkdir -p "$build_dir"
SDA_BUILD="$(cd "$build_dir" && pwd)"
logs="$SDA_BUILD/gpu_check"
mkdir -p "$logs"
cp "$probe/torch.txt" "$logs/torch.txt"
driver="unknown"
if command -v nvidia-smi >/dev/null; then
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)"
    [ -n "$driver" ] || driver="unknown"
fi
abi_name="C++11 ABI"
[ "$cxx11_abi" = 1 ] || abi_name="pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0)"
if [ "$available" = 1 ]; then
    row "device" info "$device_name (capability $capability; $device_count device(s), the first is used)"
else
    row "device" info "none ($why)"
fi
row "torch" info "$torch_version from $python ($abi_name)"

# the CUDA toolkit torch's CMake config needs (it enables CMake's CUDA language and FindCUDAToolkit)
if [ -z "$cuda" ]; then
    if [ -x /usr/local/cuda/bin/nvcc ]; then
        cuda=/usr/local/cuda
    elif command -v nvcc >/dev/null; then
        cuda="$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)"
    fi
fi
toolkit="none found"
if [ -n "$cuda" ] && [ -x "$cuda/bin/nvcc" ]; then
    toolkit="$("$cuda/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') at $cuda"
fi
row "CUDA" info "torch built with $torch_cuda; driver $driver; toolkit $toolkit"

# --- 2. configure and build ----------------------------------------------------------------------
# As scripts/common.sh's configure_build does for a fresh folder (Release, the four options named
# on), into this folder of its own, against the python's torch. Torch_DIR and Caffe2_DIR are given
# outright: a cached one from another python would otherwise win. TorchConfig.cmake puts
# TORCH_CXX_FLAGS (-D_GLIBCXX_USE_CXX11_ABI=0 from a pre-C++11-ABI torch) on its `torch` target's
# INTERFACE_COMPILE_OPTIONS, which sda::torch links, so every target of the adapter compiles with
# torch's ABI; checked below in the flags CMake writes. TorchConfig.cmake finds libc10 and libtorch
# with find_library(... PATHS torch/lib), which looks in the system's folders first: with Debian's
# libtorch-dev installed it would link Debian's libc10.so.1.13 beside the wheel's libc10.so (two
# c10s in one process). torch's own folder goes on CMAKE_PREFIX_PATH and the two are given
# outright (a cached one would stay); the link line is checked below. MPI is off: no target here
# needs it.
say "configuring ${SDA_BUILD#"$SDA_ROOT"/} against torch $torch_version"
stage=$SECONDS
cmake_args=(-S "$SDA_ROOT" -B "$SDA_BUILD" -DCMAKE_BUILD_TYPE=Release
            -DSDA_BUILD_TESTS=ON -DSDA_BUILD_EXAMPLES=ON -DSDA_BUILD_BENCHMARKS=ON -DSDA_WITH_TORCH=ON
            -DSDA_WITH_MPI=OFF
            "-DCMAKE_PREFIX_PATH=$torch_prefix;$(dirname "$torch_lib")" "-DTorch_DIR=$torch_prefix/Torch"
            "-DCaffe2_DIR=$torch_prefix/Caffe2" "-Dc10_LIBRARY=$torch_lib/libc10.so" "-DTORCH_LIBRARY=$torch_lib/libtorch.so")
if [ -n "$cuda" ] && [ -x "$cuda/bin/nvcc" ]; then
    cmake_args+=("-DCMAKE_CUDA_COMPILER=$cuda/bin/nvcc" "-DCUDAToolkit_ROOT=$cuda" "-DCUDA_TOOLKIT_ROOT_DIR=$cuda")
    export PATH="$cuda/bin:$PATH"
fi
# shellcheck disable=SC2206  # SDA_CMAKE_ARGS is split at spaces on purpose, as in scripts/common.sh
cmake_args+=($SDA_CMAKE_ARGS)
# the Debian packages this configuration needs besides torch (nothing is installed here: the machine
# may be offline); named in the configure row when configuring fails
missing_debs=""
if command -v dpkg-query >/dev/null; then
    missing_debs="$(missing_packages "${SDA_PACKAGES_LIBRARY[@]}" "${SDA_PACKAGES_EXAMPLES[@]}" "${SDA_PACKAGES_FFTW[@]}" \
                    ${SDA_PACKAGES_DNNL[@]+"${SDA_PACKAGES_DNNL[@]}"} doctest-dev libboost-dev libbenchmark-dev | tr '\n' ' ')"
fi
configured=0
t=$(time_for 180)
if [ "$t" -eq 0 ]; then
    row "configure" skip "over the time budget" 0
elif ! timeout "$t" cmake "${cmake_args[@]}" > "$logs/configure.log" 2>&1; then
    why="$(grep -m 1 -A 3 'CMake Error' "$logs/configure.log" | cut -c1-200 | tr '\n' ' ' || true)"
    [ -n "$missing_debs" ] && why="Debian packages missing: $missing_debs; $why"
    row "configure" FAIL "${why:-$(tail_of "$logs/configure.log" 4)} (${logs#"$SDA_ROOT"/}/configure.log)" $((SECONDS - stage))
elif ! grep -q -- '-- sda: libtorch .* found' "$logs/configure.log"; then
    row "configure" FAIL "configured, but find_package(Torch) did not find $torch_prefix/Torch (configure.log)" $((SECONDS - stage))
else
    # the compile flags and link line CMake wrote for the torch tests (Makefiles; build.ninja has them all)
    flags="$SDA_BUILD/tests/CMakeFiles/sda_torch_tests.dir/flags.make"
    link="$SDA_BUILD/tests/CMakeFiles/sda_torch_tests.dir/link.txt"
    [ -f "$flags" ] || flags="$SDA_BUILD/build.ninja"
    [ -f "$link" ] || link="$SDA_BUILD/build.ninja"
    abi_flag="$(grep -o -- '-D_GLIBCXX_USE_CXX11_ABI=[01]' "$flags" 2>/dev/null | head -n 1 || true)"
    # every libc10*/libtorch* on it must be the python's
    foreign="$(grep -o -E '[^ ",]*/lib(c10|torch)[a-z_]*\.so[^ ",]*' "$link" 2>/dev/null | grep -v -F "$torch_lib/" | sort -u | tr '\n' ' ' || true)"
    found="$(sed -n 's/.*sda: libtorch \([^ ]*\) found.*/\1/p' "$logs/configure.log" | head -n 1)"
    if [ -n "$foreign" ]; then
        row "configure" FAIL "sda_torch_tests would link torch libraries other than $torch_lib: $foreign" $((SECONDS - stage))
    elif [ "$cxx11_abi" = 0 ] && [ "$abi_flag" != "-D_GLIBCXX_USE_CXX11_ABI=0" ]; then
        row "configure" FAIL "torch uses the pre-C++11 ABI but sda_torch_tests compiles without -D_GLIBCXX_USE_CXX11_ABI=0" \
            $((SECONDS - stage))
    else
        note=""
        # Debian's libbenchmark and the other C++ libraries are built with the C++11 ABI
        [ "$cxx11_abi" = 0 ] && note="; pre-C++11 ABI: bench_torch may not link against Debian's libbenchmark"
        row "configure" ok "libtorch $found, ${abi_flag:-default C++11 ABI} on the adapter's targets$note" $((SECONDS - stage))
        configured=1
    fi
fi
say "configure: $((SECONDS - stage)) s"
if [ $configure_only -eq 1 ]; then
    row "total" "$([ $failed -eq 0 ] && echo ok || echo FAIL)" "configure only; $failed failed" "$SECONDS"
    print_table
    if [ $failed -eq 0 ]; then exit 0; fi
    exit 1
fi

# The C++ programs load the wheel's CUDA libraries (cudart, cuBLAS, cuDNN), as torch does in python:
# the executables also link the toolkit's libcudart, which may be an older minor version.
if [ -n "$wheel_libs" ]; then
    export LD_LIBRARY_PATH="$wheel_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
tests_exe="$SDA_BUILD/tests/sda_torch_tests"
bench_exe="$SDA_BUILD/bench/bench_torch"
example_exe="$SDA_BUILD/examples/lorenz63_torch"
built=()
if [ $configured -eq 1 ]; then
    say "building sda_torch_tests bench_torch lorenz63_torch on $jobs cores"
    stage=$SECONDS
    # removed first, so that what exists afterwards was built by this run (a relink when unchanged)
    rm -f "$tests_exe" "$bench_exe" "$example_exe"
    keep_going=(-k)
    grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$SDA_BUILD/CMakeCache.txt" && keep_going=(-k 0)
    t=$(time_for 330)
    if [ "$t" -eq 0 ]; then
        row "build" skip "over the time budget" 0
    else
        status=0
        timeout "$t" cmake --build "$SDA_BUILD" --parallel "$jobs" \
            --target sda_torch_tests bench_torch lorenz63_torch -- "${keep_going[@]}" > "$logs/build.log" 2>&1 || status=$?
        missing=()
        for exe in "$tests_exe" "$bench_exe" "$example_exe"; do
            if [ -x "$exe" ]; then built+=("$(basename "$exe")"); else missing+=("$(basename "$exe")"); fi
        done
        if [ $status -eq 0 ] && [ ${#missing[@]} -eq 0 ]; then
            row "build" ok "sda_torch_tests, bench_torch, lorenz63_torch" $((SECONDS - stage))
        else
            why="$(grep -m 3 -E 'error|Error [0-9]' "$logs/build.log" | cut -c1-200 | tr '\n' ' ' || true)"
            [ $status -eq 124 ] && why="timed out after $t s; $why"
            row "build" FAIL "not built: ${missing[*]:-none}; ${why:-see build.log} (${logs#"$SDA_ROOT"/}/build.log)" \
                $((SECONDS - stage))
        fi
    fi
    say "build: $((SECONDS - stage)) s"
fi
is_built() { [[ " ${built[*]} " == *" $1 "* ]]; }

# --- 3. ctest -L torch -----------------------------------------------------------------------------
if is_built sda_torch_tests; then
    say "ctest -L torch"
    stage=$SECONDS
    t=$(time_for 180)
    if [ "$t" -eq 0 ]; then
        row "ctest -L torch" skip "over the time budget" 0
    else
        rm -f "$logs/ctest.xml"
        status=0
        timeout "$t" ctest --test-dir "$SDA_BUILD" -L torch -j 2 --timeout 150 --output-on-failure \
            --output-junit "$logs/ctest.xml" > "$logs/ctest.log" 2>&1 || status=$?
        # passed failed skipped, and how the CUDA case ended
        counts="$("$python" - "$logs/ctest.xml" <<'PY' 2>/dev/null || true
import sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
cuda = "absent"
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None or case.get("status") == "fail":
        result = "failed"; failed += 1
    elif case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
        result = "skipped"; skipped += 1
    else:
        result = "passed"; passed += 1
    if case.get("name", "").startswith("torch on CUDA"):
        cuda = result
print(passed, failed, skipped, cuda)
PY
)"
        if [ -z "$counts" ]; then
            row "ctest -L torch" FAIL "no test report (exit $status): $(tail_of "$logs/ctest.log" 2)" $((SECONDS - stage))
        else
            read -r passed nfailed skipped cuda_case <<< "$counts"
            details="$passed passed, $nfailed failed, $skipped skipped; CUDA case $cuda_case"
            if [ $status -eq 0 ] && [ "$nfailed" -eq 0 ] && [ "$passed" -gt 0 ] && [ "$cuda_case" = passed ]; then
                row "ctest -L torch" ok "$details" $((SECONDS - stage))
            else
                [ "$cuda_case" = skipped ] && details="$details (libtorch in C++ sees no CUDA device)"
                row "ctest -L torch" FAIL "$details (${logs#"$SDA_ROOT"/}/ctest.log)" $((SECONDS - stage))
            fi
        fi
    fi
    say "ctest: $((SECONDS - stage)) s"
elif [ $configured -eq 1 ]; then
    row "ctest -L torch" skip "sda_torch_tests was not built" 0
fi

# --- 4. a whole guided sampling run with sync-debug on "error" ---------------------------------------
# Small sizes: 1024 generated trajectories (reused from DIR/gpu_check/lorenz63 on later runs), a
# window prior trained for one short epoch on the CPU, 64 samples x 64 steps x 1 correction on the device.
if is_built lorenz63_torch; then
    say "lorenz63_torch --device cuda --sync-debug"
    stage=$SECONDS
    t=$(time_for 120)
    sampling=(--device cuda --skip-cpu --quiet --samples 64 --steps 64 --corrections 1 --epochs 1 --epoch-size 256
              --out "$logs/lorenz63")
    if [ "$t" -eq 0 ]; then
        row "sync-debug sampling" skip "over the time budget" 0
    else
        status=0
        TORCH_SHOW_CPP_STACKTRACES=1 timeout "$t" "$example_exe" --sync-debug "${sampling[@]}" \
            > "$logs/sync_debug.log" 2>&1 || status=$?
        if [ $status -eq 0 ] && grep -q '^adapter on' "$logs/sync_debug.log"; then
            row "sync-debug sampling" ok "no host round trip: $(grep -m 1 '^adapter on' "$logs/sync_debug.log" | cut -c1-160)" \
                $((SECONDS - stage))
        else
            why="$(grep -m 1 -i 'synchroniz' "$logs/sync_debug.log" | cut -c1-200 || true)"
            # where, when libtorch could name the frame (TORCH_SHOW_CPP_STACKTRACES)
            where="$(grep -m 1 -o -E 'sda::[A-Za-z0-9_:]+' "$logs/sync_debug.log" || true)"
            [ $status -eq 124 ] && why="timed out after $t s"
            row "sync-debug sampling" FAIL "exit $status: ${why:-$(tail_of "$logs/sync_debug.log" 2)}${where:+ (at $where)} (${logs#"$SDA_ROOT"/}/sync_debug.log)" \
                $((SECONDS - stage))
        fi
    fi
    say "sync-debug sampling: $((SECONDS - stage)) s"
elif [ $configured -eq 1 ]; then
    row "sync-debug sampling" skip "lorenz63_torch was not built" 0
fi

# --- 5. the adapter against plain PyTorch on the same weights (bench/compare_adapter.sh, short) -------
if is_built bench_torch; then
    say "bench_torch --device=cuda, then plain PyTorch on the same weights"
    stage=$SECONDS
    export OMP_WAIT_POLICY=PASSIVE  # as bench/compare_adapter.sh
    threads=$(nproc)
    filter='.*'
    peer_args=(--device cuda --threads "$threads" --repeats 5)
    if [ $paper -eq 0 ]; then
        filter='lorenz|unet'
        peer_args+=(--skip-paper)
    fi
    t=$(time_for 240)
    status=0
    if [ "$t" -eq 0 ]; then
        row "benchmarks" skip "over the time budget" 0
    else
        rm -f "$logs/bench_torch.json" "$logs/peer.json"
        timeout "$t" "$bench_exe" --device=cuda --threads="$threads" --benchmark_filter="$filter" \
            --benchmark_min_time=0.2 --benchmark_out="$logs/bench_torch.json" --benchmark_out_format=json \
            > "$logs/bench_torch.log" 2>&1 || status=$?
        if [ $status -ne 0 ]; then
            row "benchmarks" FAIL "bench_torch exit $status: $(tail_of "$logs/bench_torch.log" 2)" $((SECONDS - stage))
        else
            t=$(time_for 120)
            if [ "$t" -eq 0 ]; then
                status=124
                row "benchmarks" skip "bench_torch ran; no time left for the PyTorch peer" $((SECONDS - stage))
            else
                timeout "$t" "$python" "$SDA_ROOT/bench/torch_sampling_peer.py" "${peer_args[@]}" \
                    > "$logs/peer.json" 2> "$logs/peer.log" || status=$?
                if [ $status -ne 0 ]; then
                    row "benchmarks" FAIL "torch_sampling_peer.py exit $status: $(tail_of "$logs/peer.log" 2)" $((SECONDS - stage))
                fi
            fi
        fi
    fi
    if [ $status -eq 0 ] && [ "$t" -ne 0 ]; then
        # one row per workload: check <TAB> result <TAB> details, as the table wants them
        mapfile -t bench_rows < <("$python" - "$logs/bench_torch.json" "$logs/peer.json" "$paper" <<'PY'
import json, sys
bench = {b["name"]: b["real_time"] for b in json.load(open(sys.argv[1]))["benchmarks"]
         if b.get("run_type", "iteration") == "iteration"}
peer = json.load(open(sys.argv[2]))
rows = [("Lorenz PC step, 64 samples", "BM_lorenz_step_{}/64/real_time", "lorenz_step_64_ms"),
        ("Lorenz PC step, 1024 samples", "BM_lorenz_step_{}/1024/real_time", "lorenz_step_1024_ms"),
        ("U-Net guided eval, 32^2", "BM_unet_guided_{}/real_time", "unet_guided_ms"),
        ("U-Net guided eval, paper 64^2", "BM_paper_guided_{}/iterations:2/real_time", "paper_guided_ms")]
if sys.argv[3] == "0":  # --skip-paper
    rows.pop()
for label, key, peer_key in rows:
    adapter, cpu, torch_ms = bench.get(key.format("torch")), bench.get(key.format("sda")), peer.get(peer_key)
    if adapter is None and torch_ms is None:
        continue
    if adapter is None or torch_ms is None:
        print(f"bench: {label}\tFAIL\tmissing: {'bench_torch' if adapter is None else 'PyTorch peer'}")
        continue
    cpu_note = f"; sda CPU networks {cpu:.2f} ms" if cpu is not None else ""
    print(f"bench: {label}\tok\tsda (adapter) {adapter:.2f} ms, PyTorch {torch_ms:.2f} ms, "
          f"PyTorch/sda {torch_ms / adapter:.2f}{cpu_note}")
PY
        ) || true
        if [ ${#bench_rows[@]} -eq 0 ]; then
            row "benchmarks" FAIL "no rows could be read from bench_torch.json and peer.json" $((SECONDS - stage))
        else
            row "benchmarks" ok "bench_torch (--benchmark_min_time=0.2) and torch_sampling_peer.py on cuda; rows below" \
                $((SECONDS - stage))
            for line in "${bench_rows[@]}"; do
                IFS=$'\t' read -r check result details <<< "$line"
                row "$check" "$result" "$details"
            done
        fi
    fi
    say "benchmarks: $((SECONDS - stage)) s"
elif [ $configured -eq 1 ]; then
    row "benchmarks" skip "bench_torch was not built" 0
fi

row "total" "$([ $failed -eq 0 ] && echo ok || echo FAIL)" "$failed check(s) failed; budget $budget s" "$SECONDS"
print_table
if [ $failed -eq 0 ]; then exit 0; fi
exit 1
