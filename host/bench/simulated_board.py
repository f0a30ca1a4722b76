"""The simulated board section: the Verilator board program (`sim/board.py`)
driven through its pseudo-terminal by `SerialDevice`: simulated cycles and
steps per second, learning off and on and per link case, every step (or count)
checked against the golden model."""

import re
import time

import numpy as np

from .link import RECORDED_NEURONS
from .plan import REFERENCE_ACTIVITY, BenchError, workload_network

__all__ = ["bench_simulated_board"]


_SUMMARY = re.compile(r"(\d+) cycles in ([\d.]+) s running")


def bench_simulated_board(plan, say):
    """Simulated cycles and steps per second of the Verilator board program,
    driven through its pty by `SerialDevice`, on the reference workload; every
    step's spikes are checked against the golden model."""
    from ...hdl.core_ports import CoreConfig
    from ...sim.board import BoardConfig, SimulatedBoard
    from ..golden import GoldenModel
    from ..serial_device import SerialDevice
    runs = []
    for n, m, lanes in plan.simboard_configs:
        config = BoardConfig(CoreConfig(n=n, m=m, lanes=lanes))
        say(f"simulated board: n = {n}, m = {m}, {lanes} lanes: building or reusing the board program "
            "(a build takes a minute or more)")
        start = time.monotonic()
        board = SimulatedBoard(config)
        build_s = time.monotonic() - start
        workloads = []
        with board, SerialDevice.open(board.path, config.baud, kind="rtl", timeout=10.0) as dev:
            for learn in (0, 1):
                net = workload_network(config.core, REFERENCE_ACTIVITY, learn, seed=7)
                stim = np.random.default_rng(8).random((plan.simboard_steps, m)) < REFERENCE_ACTIVITY
                t0 = time.monotonic()
                dev.load(net)
                load_s = time.monotonic() - t0
                t0 = time.monotonic()
                records = list(dev.client.run([np.flatnonzero(row) for row in stim], max_steps=dev.max_steps))
                run_s = time.monotonic() - t0
                last_step_cycles = dev.status()["last_step_cycles"]
                expected = GoldenModel(net).run(stim).spikes
                got = np.zeros_like(expected)
                for t, record in enumerate(records):
                    got[t, list(record.spikes)] = 1
                if not np.array_equal(got, expected):
                    step = int(np.flatnonzero((got != expected).any(axis=1))[0])
                    raise BenchError(f"simulated board n={n} m={m}: step {step} differs from the golden model")
                workloads.append({"learn": learn, "steps": len(records), "load_s": load_s, "run_s": run_s,
                                  "steps_per_second": len(records) / run_s, "last_step_cycles": last_step_cycles})
                say(f"simulated board: learning {'on' if learn else 'off'}: {len(records) / run_s:,.0f} steps/s "
                    f"(load {load_s:.1f} s)")
                if not learn:
                    link = _link_cases(dev, net, len(records) / run_s, plan.simboard_steps)
                    say("simulated board: link cases, steps/s: " + ", ".join(
                        f"{case} {rate:,.0f}" for case, rate in link.items()))
        match = _SUMMARY.search(board.summary or "")
        if not match:
            raise BenchError(f"the simulated board printed no summary ({board.summary!r})")
        cycles, busy_s = int(match.group(1)), float(match.group(2))
        runs.append({"n": n, "m": m, "lanes": lanes, "clk_hz": config.clk_hz, "baud": config.baud,
                     "build_or_reuse_s": build_s, "cycles": cycles, "busy_s": busy_s,
                     "cycles_per_second": cycles / busy_s if busy_s else None, "workloads": workloads,
                     "link": {"steps_per_s": link}})
        say(f"simulated board: {cycles / busy_s / 1e6:.2f} M cycles/s while busy" if busy_s else
            "simulated board: no busy time")
    first = runs[0]
    return {"config": {k: first[k] for k in ("n", "m", "lanes", "clk_hz", "baud")},
            "cycles_per_second": first["cycles_per_second"],
            "steps_per_second": {("learn_on" if w["learn"] else "learn_off"): w["steps_per_second"]
                                 for w in first["workloads"]},
            "link": first["link"],
            "runs": runs}


def _link_cases(dev, net, full_raster, steps):
    """Steps per second through the pty in the link cases of `boards.B.link` (learning off):
    ``full_raster`` is that of the run above (host inputs, every neuron's records); ``generated_32``
    and ``generated_counts`` run `steps` steps of generated inputs at the reference activity
    with `Device.run` (32 neurons recorded on the board; counts only), each checked against
    the golden model."""
    from ..golden import GoldenModel
    rates = np.full(net.m, round(REFERENCE_ACTIVITY * 65536))
    neurons = np.arange(min(RECORDED_NEURONS, net.n))
    want = GoldenModel(net)
    want.set_seed(9)
    spikes = want.run(np.zeros((steps, net.m), bool), rates=rates).spikes
    out = {"full_raster": full_raster}
    for case, options in (("generated_32", dict(record_neurons=neurons)), ("generated_counts", dict(counts=True))):
        dev.reset_state()
        t0 = time.monotonic()
        rec = dev.run(None, steps=steps, rates=rates, seed=9, **options)
        out[case] = steps / (time.monotonic() - t0)
        got_ok = (np.array_equal(rec.spikes, spikes[:, neurons]) if case == "generated_32"
                  else np.array_equal(rec.counts, spikes.sum(axis=0)))
        if not got_ok or not spikes.any():
            raise BenchError(f"simulated board n={net.n} m={net.m}: link case {case} differs from the golden model"
                             + ("" if spikes.any() else " (no spikes)"))
    return out
