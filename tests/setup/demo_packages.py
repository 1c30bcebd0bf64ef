#!/usr/bin/python3
"""Checks that scripts/demo needs nothing beyond its own Debian package list.

    demo_packages.py build DIR   configures a fresh build folder DIR exactly as scripts/demo does
                                 (scripts/common.sh's demo_build), with CMake forbidden to find any
                                 package that only scripts/test installs, and builds the demo's
                                 target; the configuration is traced into DIR.trace.json
    demo_packages.py check DIR   reads that trace: every find_package, find_path, find_program,
                                 find_library and pkg_check_modules call made with REQUIRED, and
                                 the compiler, make and cmake themselves, must come from a Debian
                                 package that the demo's list installs (the package itself or one
                                 it depends on); so must the modules the demo's plot script imports

The package lists are read from scripts/common.sh, never repeated here. "Test-only" packages are
those that scripts/test's list pulls in (with their dependencies) and what the demo's build needs
does not; the CMake package names they provide (their *Config.cmake / *-config.cmake files) are
what gets CMAKE_DISABLE_FIND_PACKAGE_<Name>=ON, so a new test dependency is covered without editing
this file, unless CMake finds it through one of its own Find modules (FIND_MODULES below).
Runs on Debian with the test packages installed (dpkg-query, apt-cache); exits 1 naming what fails.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = os.path.join(ROOT, "scripts", "common.sh")
EXAMPLE = "lorenz63"  # the demo's default example: what `scripts/demo` runs
PLOT_SCRIPT = os.path.join(ROOT, "examples", f"plot_{EXAMPLE}.py")  # what scripts/demo plots with


# The CMake packages found by a Find module of CMake's own, whose name no file of the Debian package
# gives, each with the package it finds: hidden too where that package is test-only.
FIND_MODULES = {"MPI": "libopenmpi-dev"}  # sda::mpi (find_package(MPI)), for the tests only


def run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


def common(function, *args):
    """Output lines of a function of scripts/common.sh."""
    script = 'source "$0"; "$@"'
    return run(["bash", "-c", script, COMMON, function, *args]).split()


def closure(packages):
    """The installed packages among `packages` and everything they depend on (Depends and
    Pre-Depends, every alternative, the providers of virtual packages)."""
    text = run(["apt-cache", "depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
                "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    names = set()
    for line in text.splitlines():
        stripped = line.strip()
        if not line.startswith(" "):
            names.add(stripped.strip("<>"))
        elif ":" not in stripped:  # an indented provider of a virtual package
            names.add(stripped.strip("<>"))
    return names


def owner(path):
    """The Debian package that installed `path`, or None."""
    candidates = [path, os.path.realpath(path)]
    for candidate in list(candidates):
        for merged, split in (("/usr/lib/", "/lib/"), ("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/")):
            if candidate.startswith(merged):
                candidates.append(split + candidate[len(merged):])
            elif candidate.startswith(split):
                candidates.append(merged + candidate[len(split):])
    for candidate in candidates:
        result = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            if line.startswith("diversion "):
                continue
            package = line.split(":", 1)[0].split(",")[0].strip()
            return package
    return None


def test_only_cmake_names():
    # against what building the demo needs: the figures' Python packages pull in much of Debian
    # (python3-matplotlib depends, through scipy and pythran, on libboost-dev), none of it for CMake
    demo, test = common("demo_build_packages", EXAMPLE), common("test_packages")
    installed = set(run(["dpkg-query", "-W", "-f=${Package}\\n"]).split())
    only = sorted((closure(test) - closure(demo)) & installed)
    files = run(["dpkg-query", "-L", *only]).splitlines() if only else []
    names = set()
    for path in files:
        match = re.search(r"/cmake[^/]*/(?:[^/]+/)*([A-Za-z0-9_.+-]+?)(Config|-config)\.cmake$", path)
        if match:
            names.add(match.group(1))
    names |= {name for name, package in FIND_MODULES.items() if package in only}
    return only, sorted(names)


def build(directory):
    only, names = test_only_cmake_names()
    print(f"test-only Debian packages (with their dependencies): {len(only)}")
    print("CMake packages hidden from the demo's configuration: " + " ".join(names))
    shutil.rmtree(directory, ignore_errors=True)
    trace = directory + ".trace.json"
    arguments = [f"-DCMAKE_DISABLE_FIND_PACKAGE_{name}=ON" for name in names]
    arguments += ["--trace-format=json-v1", "--trace-expand", f"--trace-redirect={trace}"]
    environment = dict(os.environ, SDA_BUILD=directory, SDA_CMAKE_ARGS=" ".join(arguments))
    result = subprocess.run(["bash", "-c", 'source "$0"; demo_build "$1"', COMMON, EXAMPLE], env=environment,
                            stdout=sys.stdout, stderr=sys.stderr)
    if result.returncode != 0:
        print(f"FAILED: scripts/demo's configure and build of {EXAMPLE} with the test-only packages hidden")
        return 1
    program = os.path.join(directory, "examples", EXAMPLE)
    if subprocess.run([program, "--help"], capture_output=True).returncode != 0:
        print(f"FAILED: {program} --help")
        return 1
    print(f"the demo's target {EXAMPLE} configures and builds without the test-only packages")
    return 0


REQUIRED_CALLS = {"find_package", "find_path", "find_file", "find_program", "find_library",
                  "pkg_check_modules", "pkg_search_module"}
PKG_KEYWORDS = {"REQUIRED", "QUIET", "NO_CMAKE_PATH", "NO_CMAKE_ENVIRONMENT_PATH", "IMPORTED_TARGET", "GLOBAL"}


def cache_entries(directory):
    entries = {}
    with open(os.path.join(directory, "CMakeCache.txt")) as cache:
        for line in cache:
            match = re.match(r"^([A-Za-z0-9_.+-]+):[A-Z_]+=(.*)$", line.rstrip("\n"))
            if match:
                entries[match.group(1)] = match.group(2)
    return entries


def required_files(directory):
    """(what, file) for every REQUIRED find call of the traced configuration and the tools."""
    with open(directory + ".trace.json") as trace:
        events = [json.loads(line) for line in trace][1:]
    cache = cache_entries(directory)
    found = []
    for index, event in enumerate(events):
        command, args = event["cmd"].lower(), [a for a in event["args"] if a != ""]
        if command not in REQUIRED_CALLS or "REQUIRED" not in args:
            continue
        what = f"{command}({' '.join(args)})"
        if command == "find_package":
            # the package's own file is the last Config/Find file the call runs, one frame deeper
            files = []
            for later in events[index + 1:]:
                if later["frame"] <= event["frame"]:
                    break
                if later["frame"] == event["frame"] + 1:
                    files.append(later["file"])
            package_files = [f for f in files if re.search(r"(Config|-config|/Find[^/]*)\.cmake$", f)]
            found.append((what, package_files[-1] if package_files else None))
        elif command.startswith("pkg_"):
            modules = [re.split(r"[<>=]", a)[0] for a in args[1:] if a not in PKG_KEYWORDS]
            for module in modules:
                pc_dir = subprocess.run([cache["PKG_CONFIG_EXECUTABLE"], "--variable=pcfiledir", module],
                                        capture_output=True, text=True).stdout.strip()
                found.append((f"{what}: {module}.pc", os.path.join(pc_dir, module + ".pc") if pc_dir else None))
            found.append((f"{what}: the pkg-config program", cache.get("PKG_CONFIG_EXECUTABLE")))
        else:
            variable = args[0]
            value = cache.get(variable, "")
            if command == "find_path":
                names = args[args.index("NAMES") + 1:] if "NAMES" in args else args[1:2]
                value = next((os.path.join(value, n) for n in names if os.path.exists(os.path.join(value, n))), None)
            found.append((what, value or None))
    for variable in ("CMAKE_CXX_COMPILER", "CMAKE_MAKE_PROGRAM", "CMAKE_COMMAND"):
        found.append((variable, cache.get(variable)))
    return found


def plot_modules():
    """(what, file) for each non-standard module the demo's plot script imports, under the python
    scripts/demo runs it with; a module that does not import here is reported, not checked."""
    tree = ast.parse(open(PLOT_SCRIPT).read())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    standard = set(run(["/usr/bin/python3", "-c", "import sys; print(*sys.stdlib_module_names)"]).split())
    found = []
    for module in sorted(modules - standard):
        result = subprocess.run(["/usr/bin/python3", "-c", f"import {module}; print({module}.__file__)"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"  not checked: {module} (imported by {os.path.basename(PLOT_SCRIPT)}) is not installed here")
            continue
        found.append((f"import {module} ({os.path.basename(PLOT_SCRIPT)})", result.stdout.strip()))
    return found


def check(directory):
    demo = common("demo_packages", EXAMPLE)
    covered = closure(demo)
    print("scripts/demo installs: " + " ".join(demo))
    failures = 0
    for what, path in required_files(directory) + plot_modules():
        package = owner(path) if path else None
        if package is None:
            print(f"  FAIL {what}: {path or 'no file found'} belongs to no Debian package")
            failures += 1
        elif package not in covered:
            print(f"  FAIL {what}: {path} comes from {package}, which scripts/demo does not install")
            failures += 1
        else:
            print(f"  ok   {what}: {package}")
    if failures:
        print(f"{failures} requirement(s) of the demo are outside its package list (scripts/common.sh)")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("build", "check"):
        sys.exit(__doc__)
    sys.exit(build(sys.argv[2]) if sys.argv[1] == "build" else check(sys.argv[2]))
