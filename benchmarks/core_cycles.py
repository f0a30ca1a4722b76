"""Cycles per step of the core, measured from the RTL simulation (Verilator via cocotb).

For each core configuration (n = m, lanes) and each workload (activity: the
fraction of inputs spiking per step and of neurons spiking per step; learning
off or on, all synapses plastic) it runs a few steps and prints the mean
`step_cycles` the core reports (from the end of the step's input list to the
end of its output; spike output included, probes off). Every step's spikes
are checked against the golden model on the way.

    .venv/bin/python benchmarks/core_cycles.py              # the default table
    .venv/bin/python benchmarks/core_cycles.py --reference  # n = m = 256, 4 lanes, 10 % only
    .venv/bin/python benchmarks/core_cycles.py --reference --weight-memory spram --lanes 2,4
    .venv/bin/python benchmarks/core_cycles.py --reference --lanes 64 --pot-banks 4   # the banked weights

The reference workload's targets: <= 4,000 cycles per step learning off,
<= 24,000 learning on (n = m = 256, 4 lanes, dual-port weights). `--weight-memory
spram` measures the single-port (iCE40UP SPRAM) schedule instead; `--lanes`
with `--reference` picks the lanes of the n = m = 256 core (default 4).
`--pipeline` picks the core's pipeline (`Core(pipeline=...)`); by default the one
the boards build with these weights: long for dual-port (ULX3S), short for spram
(iCEBreaker). `--pot-banks` splits the weights into that many banks by word column
(`CoreConfig.pot_banks`, fewer where a configuration has fewer word columns).
"""

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.sim.verilator import core_model, run_cocotb

REFERENCE = (256, 4)
TARGETS = {0: 4000, 1: 24000}


def measure(config, workloads, pipeline="long"):
    """Run `workloads` on a Verilator build of `config`; returns their results."""
    model = core_model(config, pipeline=pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cycles.json"
        plan = Path(tmp) / "bench.json"
        plan.write_text(json.dumps({"workloads": workloads, "out": str(out)}))
        tests, failures, messages = run_cocotb(model, "neurofabric.sim.bench_cocotb", {"NF_BENCH": str(plan)},
                                               test_dir=Path(tmp) / "run")
        if failures:
            raise SystemExit("benchmark run failed:\n" + "\n".join(messages))
        return json.loads(out.read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true", help="only the reference configuration and workload")
    parser.add_argument("--sizes", default="64,128,256", help="n = m values (comma separated)")
    parser.add_argument("--lanes", default=None,
                        help="lanes for the largest size (comma separated; default 2,4,8, or 4 with --reference)")
    parser.add_argument("--activity", default="0.0,0.05,0.1,0.2", help="activities (comma separated)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--weight-memory", choices=("dual", "spram"), default="dual",
                        help="the core's weight memory (CoreConfig.weight_memory)")
    parser.add_argument("--pot-banks", type=int, default=1,
                        help="weight banks that potentiate in parallel (CoreConfig.pot_banks)")
    parser.add_argument("--pipeline", choices=("auto", "long", "short"), default="auto",
                        help="the core's pipeline (Core(pipeline=...)); auto: short for spram, long for dual")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pipeline = args.pipeline if args.pipeline != "auto" else "short" if args.weight_memory == "spram" else "long"
    if args.reference:
        runs = [(REFERENCE[0], int(l)) for l in (args.lanes or str(REFERENCE[1])).split(",")]
        activities = [0.1]
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        runs = [(s, 4) for s in sizes] + [(sizes[-1], int(l)) for l in (args.lanes or "2,4,8").split(",")
                                          if int(l) != 4]
        activities = [float(a) for a in args.activity.split(",")]
        if REFERENCE not in runs:
            runs.append(REFERENCE)
    print(f"{'n=m':>5} {'lanes':>5} {'activity':>8} {'learn':>5} {'delivered':>9} {'spiking':>7} "
          f"{'cycles/step':>11} {'max':>7}")
    reference = {}
    for n, lanes in runs:
        banks = CoreConfig.fitting_pot_banks(n, lanes, args.pot_banks)
        config = CoreConfig(n=n, m=n, lanes=lanes, weight_memory=args.weight_memory, pot_banks=banks)
        acts = activities if n != REFERENCE[0] else sorted(set(activities) | {0.1})
        workloads = [dict(activity=a, learn=learn, steps=args.steps, seed=7) for a in acts for learn in (0, 1)]
        start = time.monotonic()
        for r in measure(config, workloads, pipeline):
            print(f"{n:>5} {lanes:>5} {r['activity']:>8.2f} {r['learn']:>5} {r['delivered']:>9.1f} "
                  f"{r['spiking']:>7.1f} {r['cycles']:>11.0f} {r['cycles_max']:>7}")
            if n == REFERENCE[0] and r["activity"] == 0.1:
                reference[lanes, r["learn"]] = r
        print(f"# n=m={n} lanes={lanes} banks={banks} {args.weight_memory} {pipeline}: "
              f"{time.monotonic() - start:.0f} s",
              flush=True)
    print()
    print(f"Reference workload: n = m = 256, W = 8, 10 % of inputs and neurons spiking per step, "
          f"{args.weight_memory} weight memory, {pipeline} pipeline")
    ok = True
    for (lanes, learn), r in sorted(reference.items()):
        official = (lanes, args.weight_memory) == (REFERENCE[1], "dual")
        verdict = (("meets" if r["cycles"] <= TARGETS[learn] else "MISSES") if official
                   else "(targets are for 4 lanes, dual)")
        ok &= r["cycles"] <= TARGETS[learn] or not official
        print(f"  {lanes} lanes, learning {'on ' if learn else 'off'}: {r['cycles']:.0f} cycles/step "
              f"(max {r['cycles_max']}), target <= {TARGETS[learn]}: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
