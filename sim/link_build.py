"""Verilog and Verilator builds of the whole device (`hdl.top.NeurofabricTop`), cached.

`top_verilog(config, clk_hz, baud)` generates the top level's Verilog (module
`nf_top`; ports clk, rst, uart_rx, uart_tx, busy, led_running, led_error)
into `rtl/top-<config>-c<clk>-b<baud>-<hash>/nf_top.v` of the cache folder
(`neurofabric.paths.cache_dir()`) once and returns
its path; `top_model(...)` also builds it for cocotb with Verilator and
returns a `TopModel` that `sim.verilator.run_cocotb` runs test modules on.
The hash covers the configuration, the clock and baud rate, the Amaranth
version and every source the gateware is made from (hdl/*.py and the host
modules whose constants it imports), so an edit makes a new build. Both
hold a file lock on the folder while they work, so parallel processes build
each configuration once (the scheme of `sim.verilator.core_model`).
"""

import fcntl
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.paths import cache_dir, package_sources

from .verilator import BuildError, ensure_tools

__all__ = ["TOP_TOPLEVEL", "TopModel", "top_build_dir", "top_verilog", "top_model", "generate_top_verilog",
           "top_env"]

logger = logging.getLogger(__name__)

#: The Verilog module name of the top level (`hdl.top.TOP_MODULE`).
TOP_TOPLEVEL = "nf_top"

#: What the gateware is made from: hdl/*.py and the contract whose constants it imports.
_GATEWARE_SOURCES = ("neurofabric.hdl", "neurofabric.contract")


@dataclass(frozen=True)
class TopModel:
    """The generated (and, from `top_model`, built) top level of one configuration."""

    config: CoreConfig
    clk_hz: int
    baud: int
    build_id: int
    build_dir: Path
    verilog: Path
    toplevel: str = TOP_TOPLEVEL
    probe_chunk: int = None


def _defaults(clk_hz, baud):
    from neurofabric.hdl.top import SIMULATED_BAUD, SIMULATED_CLK_HZ
    return int(clk_hz or SIMULATED_CLK_HZ), int(baud or SIMULATED_BAUD)


def _source_hash(config, clk_hz, baud, probe_chunk):
    import amaranth
    h = hashlib.sha256()
    h.update(json.dumps({"config": asdict(config), "clk_hz": clk_hz, "baud": baud, "probe_chunk": probe_chunk},
                        sort_keys=True).encode())
    h.update(amaranth.__version__.encode())
    for label, path in package_sources(*_GATEWARE_SOURCES):
        h.update(label.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def top_build_dir(config: CoreConfig, clk_hz=None, baud=None, build_root=None, probe_chunk=None) -> Path:
    """The build folder of the top level of `config` at `clk_hz`/`baud` (the
    simulated board's defaults, `hdl.top.SIMULATED_CLK_HZ`/`SIMULATED_BAUD`, when None)."""
    clk_hz, baud = _defaults(clk_hz, baud)
    build_root = Path(build_root or cache_dir() / "rtl")
    chunk = "" if probe_chunk is None else f"-p{probe_chunk}"
    return build_root / (f"top-{config.key()}-c{clk_hz}-b{baud}{chunk}-"
                         f"{_source_hash(config, clk_hz, baud, probe_chunk)}")


def generate_top_verilog(config, clk_hz, baud, path, probe_chunk=None):
    """Write the Verilog of the top level (module `nf_top`) to `path`.

    Raises `neurofabric.host.errors.BuildError` when `baud` cannot be made
    from `clk_hz` or the core does not fit the protocol."""
    ensure_tools()
    from amaranth.back import verilog

    from neurofabric.hdl.top import NeurofabricTop
    top = NeurofabricTop(config, clk_hz=clk_hz, baud=baud, probe_chunk=probe_chunk)
    text = verilog.convert(top, name=TOP_TOPLEVEL, emit_src=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _locked(config, clk_hz, baud, build_root, probe_chunk, build):
    from neurofabric.hdl.link import default_build_id
    from neurofabric.hdl.uart import uart_divisor
    uart_divisor(clk_hz, baud)   # refuse a bad baud rate before anything else
    build_id = default_build_id(config, clk_hz, baud)
    build_dir = top_build_dir(config, clk_hz, baud, build_root, probe_chunk)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        verilog_path = build_dir / f"{TOP_TOPLEVEL}.v"
        if not verilog_path.exists():
            start = time.monotonic()
            generate_top_verilog(config, clk_hz, baud, verilog_path, probe_chunk)
            logger.info("generated %s in %.1f s", verilog_path, time.monotonic() - start)
        stamp = build_dir / "built.ok"
        if build and not stamp.exists():
            from cocotb_tools.runner import get_runner

            from .toolchain import ensure_verilator
            ensure_verilator()
            start = time.monotonic()
            try:
                get_runner("verilator").build(
                    sources=[verilog_path], hdl_toplevel=TOP_TOPLEVEL, build_dir=build_dir / "sim_build",
                    build_args=["-Wno-fatal", "-O2"], always=True, log_file=build_dir / "build.log")
            except SystemExit as exc:  # the runner exits instead of raising
                raise BuildError(f"Verilator build of the top level of {config.key()} failed "
                                 f"(see {build_dir / 'build.log'})") from exc
            stamp.write_text("ok\n")
            logger.info("built %s in %.1f s", build_dir, time.monotonic() - start)
    return TopModel(config=config, clk_hz=clk_hz, baud=baud, build_id=build_id, build_dir=build_dir,
                    verilog=verilog_path, probe_chunk=probe_chunk)


def top_verilog(config: CoreConfig, clk_hz=None, baud=None, build_root=None, probe_chunk=None) -> Path:
    """The Verilog file of the top level of `config`, generated once per
    configuration, clock and baud rate (the simulated board's by default)."""
    ensure_tools()
    clk_hz, baud = _defaults(clk_hz, baud)
    return _locked(config, clk_hz, baud, build_root, probe_chunk, build=False).verilog


def top_model(config: CoreConfig, clk_hz=None, baud=None, build_root=None, probe_chunk=None) -> TopModel:
    """Generate (if needed) and build for cocotb (if needed) the top level of `config`."""
    ensure_tools()
    clk_hz, baud = _defaults(clk_hz, baud)
    return _locked(config, clk_hz, baud, build_root, probe_chunk, build=True)


def top_env(model: TopModel):
    """The environment a cocotb test module of the top level reads (`NF_TOP`);
    `run_cocotb` adds the configuration (`NF_CORE_CONFIG`)."""
    return {"NF_TOP": json.dumps({"clk_hz": model.clk_hz, "baud": model.baud, "build_id": model.build_id,
                                  "probe_chunk": model.probe_chunk})}
