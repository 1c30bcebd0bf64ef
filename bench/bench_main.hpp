// bench/bench_main.hpp: the main of sda's benchmark programs: Google Benchmark's
// own flags plus `--threads=N` (oneTBB's workers; other runtimes through a
// callback) and program-specific `--key=value` options.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tbb/global_control.h>

namespace bench {

struct MainOptions {
    /// Called with the thread count: the `--threads` value, or every core when `always` and none is given.
    std::function<void(int)> on_threads;
    bool always = false;  ///< apply a thread count (all cores) even without `--threads`
    /// Takes a program-specific argument; returns false when it is not one.
    std::function<bool(std::string_view)> option;
};

/// Parses the arguments, caps oneTBB at `--threads=N` (recorded in the report's context)
/// and runs the registered benchmarks. Returns the process's exit code.
inline int run(int argc, char** argv, const char* program, const MainOptions& options = {}) {
    std::unique_ptr<tbb::global_control> workers;
    int threads = 0;
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        const std::string_view arg(argv[i]);
        if (arg.starts_with("--threads=")) {
            threads = std::atoi(argv[i] + 10);
            if (threads < 1) return std::fprintf(stderr, "%s: --threads needs a positive count\n", program), 2;
        } else if (i == 0 || !options.option || !options.option(arg)) {
            rest.push_back(argv[i]);
        }
    }
    if (threads == 0 && options.always) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads > 0) {
        workers = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
        benchmark::AddCustomContext("threads", std::to_string(threads));
        if (options.on_threads) options.on_threads(threads);
    }
    int count = static_cast<int>(rest.size());
    benchmark::Initialize(&count, rest.data());
    if (benchmark::ReportUnrecognizedArguments(count, rest.data())) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace bench
