"""The golden section: `benchmarks/golden_vs_brian2.py`, whose Brian2 time over
the golden model's time is `golden_vs_brian2`; and the golden model's steps per
second on a core's own workload network (`golden_on_workload`, for the boards)."""

import json
import sys
import tempfile
import time
from pathlib import Path

from .plan import BenchError, network_fingerprint, workload_network, workload_rates, workload_stimulus
from .tools import checkout, run_streamed, script_path

__all__ = ["bench_golden", "golden_on_workload"]


def golden_on_workload(config, activity, seed, steps, repeats):
    """Steps per second of `GoldenModel.run` on this machine, on the network and inputs the core
    section measures at `config` (`workload_network(config, activity, learn, seed)`, inputs from
    `workload_stimulus`), learning off and on: the fastest of `repeats` timed runs of `steps` steps,
    each from a fresh model. The network's fingerprint and the spikes per step record what ran.

    `generated` times the same runs with the inputs made by the stimulus generator instead
    (`workload_rates`, the same activity, seed 1): what on-chip inputs cost the golden model.
    """
    from ..golden import GoldenModel
    stim = workload_stimulus(config.m, steps, activity, seed)
    rates = workload_rates(config.m, activity)
    result = {"network": {"n": config.n, "m": config.m, "S": config.S, "W": config.W, "T": config.T,
                          "activity": activity, "seed": seed, "fingerprint": {}},
              "steps": steps, "repeats": repeats, "steps_per_s": {}, "run_s": {}, "spiking_per_step": {},
              "generated": {"rate": int(rates[0]) if len(rates) else 0, "seed": 1, "steps_per_s": {}, "run_s": {},
                            "input_activity": _generated_activity(rates, steps)}}
    generated = result["generated"]
    for learn, key in ((0, "learn_off"), (1, "learn_on")):
        net = workload_network(config, activity, learn, seed)
        times, generated_times = [], []
        for _ in range(repeats):
            model = GoldenModel(net)
            t0 = time.perf_counter()
            recording = model.run(stim)
            times.append(time.perf_counter() - t0)
            model = GoldenModel(net)
            t0 = time.perf_counter()
            model.run(None, steps=steps, rates=rates, seed=1)
            generated_times.append(time.perf_counter() - t0)
        result["network"]["fingerprint"][key] = network_fingerprint(net)
        result["run_s"][key] = times
        result["steps_per_s"][key] = steps / min(times)
        # the first step has no neuron spikes to deliver; the core's figures leave it out too
        result["spiking_per_step"][key] = float(recording.spikes[1:].sum(axis=1).mean()) if steps > 1 else 0.0
        generated["run_s"][key] = generated_times
        generated["steps_per_s"][key] = steps / min(generated_times)
    return result


def _generated_activity(rates, steps):
    """The fraction of input spikes the generator makes at `rates` from seed 1 over `steps` steps."""
    from ..generator import generate_inputs
    spikes, _ = generate_inputs(1, rates, steps)
    return float(spikes.mean()) if spikes.size else 0.0


def bench_golden(plan, say):
    """benchmarks/golden_vs_brian2.py with the plan's arguments; its JSON."""
    script = script_path("golden_vs_brian2")
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as tmp:
        out = Path(tmp) / "golden.json"
        cmd = [sys.executable, str(script), *plan.golden_args, "--json", str(out)]
        say(f"golden: python benchmarks/golden_vs_brian2.py {' '.join(plan.golden_args)} (the first run also "
            "makes Brian2's venv in the cache folder)")
        returncode, tail = run_streamed(cmd, checkout(), lambda line: say(f"golden: {line}"))
        if returncode != 0 or not out.exists():
            raise BenchError(f"benchmarks/golden_vs_brian2.py failed (exit {returncode}):\n" + "\n".join(tail))
        result = json.loads(out.read_text())
    result["arguments"] = plan.golden_args
    return result
