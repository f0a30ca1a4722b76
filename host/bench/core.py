"""The core section: cycles per step of the core's RTL under Verilator
(`benchmarks/core_cycles.py`) for the reference workload and its growth with
n, m, lanes and activity; synaptic events per cycle against the weight
memory's limit (`weights_per_cycle`: the weights the design reads per cycle);
the boards' own cores (their sizes, weight memories and pipelines) on the
reference workload."""

import logging
import time

from .plan import LEARN_COST_TARGET, REFERENCE_ACTIVITY, WORKLOAD_SEED, BenchError, CoreRun, board_pipeline
from .tools import script

__all__ = ["synaptic_events", "weights_per_cycle", "board_core_runs", "bench_core", "summarise_core",
           "core_cycles_for", "core_row"]

logger = logging.getLogger(__name__)


def synaptic_events(row):
    """Synaptic events of a step: every delivered source adds its weight to each
    of the n neurons (and, learning on, depresses it in the same visit); with
    learning on, each spiking neuron's column of m + n weights is potentiated."""
    events = row["delivered"] * row["n"]
    if row["learn"]:
        events += row["spiking"] * (row["m"] + row["n"])
    return events


def weights_per_cycle(config):
    """The weights the core design reads per cycle at `config`, its limit on synaptic events per
    cycle: one word of `lanes` weights from its one weight memory."""
    return config.lanes


def board_core_runs(plan):
    """{board name: CoreRun} of the boards' cores the plan measures (`BenchPlan.board_configs`), on
    the reference workload, each with the board's lanes, weight memory and pipeline."""
    from ...boards import BOARDS
    wanted = plan.board_configs
    runs = {}
    for name, board in BOARDS.items():
        if wanted == "all" or (wanted == "open" and not board.needs_vivado):
            n, m = board.neurons, board.inputs
        elif isinstance(wanted, dict) and name in wanted:
            n, m = wanted[name]
        else:
            continue
        board = board.with_sizes(neurons=n, inputs=m)    # a small core: the lanes that divide it
        runs[name] = CoreRun(n, m, board.lanes, board.weight_memory, activities=(plan.reference_activity,),
                             neurons_per_cycle=board.neurons_per_cycle, pot_banks=board.pot_banks,
                             pipeline=board_pipeline(board))
    return runs


def _core_runs(plan):
    """The plan's core runs, with the boards' cores added when asked, merged by configuration."""
    runs = {}
    for run in [*plan.core_runs, *board_core_runs(plan).values()]:
        have = runs.get(run.key)
        acts = tuple(sorted(set(run.activities) | set(have.activities if have else ())))
        runs[run.key] = CoreRun(run.n, run.m, run.lanes, run.weight_memory, activities=acts, pipeline=run.pipeline,
                                neurons_per_cycle=run.neurons_per_cycle, pot_banks=run.pot_banks)
    return list(runs.values())


class _RunnerChatter(logging.Filter):
    """cocotb's runner logs every command at INFO whatever the CLI's level: shown with -v only."""

    def filter(self, record):
        return record.levelno >= logging.WARNING or logger.isEnabledFor(logging.INFO)


_RUNNER_FILTER = _RunnerChatter()


def bench_core(plan, say):
    """Cycles per step of every core run of the plan; the reference workload's figures."""
    core_cycles = script("core_cycles")
    runner_log = logging.getLogger("Verilator")  # cocotb_tools.runner's logger (its class name)
    if _RUNNER_FILTER not in runner_log.filters:
        runner_log.addFilter(_RUNNER_FILTER)
    rows, failed = [], []
    for run in _core_runs(plan):
        config = run.config()
        workloads = [dict(activity=a, learn=learn, steps=plan.core_steps, seed=WORKLOAD_SEED)
                     for a in run.activities for learn in (0, 1)]
        say(f"core: n = {run.n}, m = {run.m}, {run.lanes} lanes, {run.neurons_per_cycle} neuron(s) per cycle, "
            f"{run.pot_banks} potentiation bank(s), "
            f"{run.weight_memory} weights, {run.pipeline} "
            f"pipeline: {len(workloads)} workloads (builds the Verilator model once per configuration and sources)")
        start = time.monotonic()
        try:
            results = core_cycles.measure(config, workloads, pipeline=run.pipeline)
        except (SystemExit, Exception) as exc:  # SystemExit: the script's way of failing
            reason = f"{type(exc).__name__}: {exc}".strip()
            if run.key == plan.reference.key:
                raise BenchError(f"core n={run.n} m={run.m} lanes={run.lanes} (the reference): {reason}") from None
            # one configuration of a sweep costs only its own row
            failed.append({"n": run.n, "m": run.m, "lanes": run.lanes, "weight_memory": run.weight_memory,
                           "pipeline": run.pipeline, "reason": reason.splitlines()[0][:300]})
            say(f"core: n = {run.n}, m = {run.m}, {run.lanes} lanes: FAILED: {failed[-1]['reason']}")
            continue
        for r in results:
            row = dict(n=run.n, m=run.m, lanes=run.lanes, weight_memory=run.weight_memory, pipeline=run.pipeline,
                       neurons_per_cycle=run.neurons_per_cycle, pot_banks=run.pot_banks,
                       activity=r["activity"], learn=r["learn"], steps=r["steps"], cycles=r["cycles"],
                       cycles_max=r["cycles_max"], delivered=r["delivered"], spiking=r["spiking"],
                       seed=r["seed"], network=r["network"], weights_per_cycle=weights_per_cycle(config))
            row["synaptic_events"] = synaptic_events(row)
            row["events_per_cycle"] = row["synaptic_events"] / row["cycles"] if row["cycles"] else 0.0
            row["fraction_of_limit"] = row["events_per_cycle"] / row["weights_per_cycle"]
            rows.append(row)
        shown = REFERENCE_ACTIVITY if REFERENCE_ACTIVITY in run.activities else run.activities[0]
        brief = ", ".join(f"learning {'on' if r['learn'] else 'off'} {r['cycles']:,.0f}" for r in rows[-len(results):]
                          if r["activity"] == shown)
        say(f"core: n = {run.n}, m = {run.m}, {run.lanes} lanes, activity {shown:g}: {brief} cycles/step "
            f"({time.monotonic() - start:.0f} s)")
    core = summarise_core(plan, rows, core_cycles.TARGETS)
    core["failed_runs"] = failed
    return core


def summarise_core(plan, rows, targets):
    """The `core` section from the rows of every run: the reference workload's figures first."""
    ref = plan.reference
    activity = plan.reference_activity
    chosen = _rows_by_learn(rows, ref.key, activity)
    if set(chosen) != {0, 1}:
        raise BenchError(f"no reference workload among the core runs (n = {ref.n}, m = {ref.m}, "
                         f"{ref.lanes} lanes, activity {activity})")
    off, on = chosen[0], chosen[1]
    names = {0: "learn_off", 1: "learn_on"}
    learn_cost = on["cycles"] / off["cycles"] if off["cycles"] else None
    return {
        "reference": {"n": ref.n, "m": ref.m, "lanes": ref.lanes, "weight_memory": ref.weight_memory,
                      "pipeline": ref.pipeline, "activity": activity, "steps": off["steps"], "S": 16, "W": 8, "T": 8},
        "weights_per_cycle": off["weights_per_cycle"],
        "cycles_per_step": {names[k]: r["cycles"] for k, r in chosen.items()},
        "cycles_per_step_max": {names[k]: r["cycles_max"] for k, r in chosen.items()},
        "targets": {names[k]: targets[k] for k in (0, 1)},
        "meets_target": {names[k]: bool(chosen[k]["cycles"] <= targets[k]) for k in (0, 1)},
        "activity": {"requested": activity,
                     # the fixed spiking neurons are delivered again next step: the rest are inputs
                     "inputs": (off["delivered"] - off["spiking"]) / ref.m, "neurons": off["spiking"] / ref.n,
                     "delivered_per_step": off["delivered"]},
        # learning on over learning off, in cycles per step, against its target
        "learn_cost": {"ratio": learn_cost, "target": LEARN_COST_TARGET,
                       "met": None if learn_cost is None else bool(learn_cost <= LEARN_COST_TARGET)},
        "synaptic_events_per_cycle": {"learn_off": off["events_per_cycle"], "learn_on": on["events_per_cycle"],
                                      "memory_limit": off["weights_per_cycle"],
                                      "fraction_of_limit": {"learn_off": off["fraction_of_limit"],
                                                            "learn_on": on["fraction_of_limit"]}},
        "runs": rows,
    }


def _rows_by_learn(rows, key, activity):
    """The rows of configuration `key` (`CoreRun.key`) at `activity`, by `learn`."""
    return {r["learn"]: r for r in rows if (r["n"], r["m"], r["lanes"], r["weight_memory"], r["pipeline"],
                                             r.get("neurons_per_cycle", 1), r.get("pot_banks", 1)) == key
            and abs(r["activity"] - activity) < 1e-9}


def core_row(core, run, activity, learn):
    """The measured row of `run` (a `CoreRun`) at `activity` with learning `learn` (0 or 1), or None."""
    return _rows_by_learn((core or {}).get("runs", ()), run.key, activity).get(learn)


def core_cycles_for(core, n, m, lanes, weight_memory="dual", activity=REFERENCE_ACTIVITY, pipeline="long",
                    neurons_per_cycle=1, pot_banks=1):
    """`{"learn_off": c, "learn_on": c}` of a measured configuration, or None."""
    key = (n, m, lanes, weight_memory, pipeline, neurons_per_cycle, pot_banks)
    found = _rows_by_learn((core or {}).get("runs", ()), key, activity)
    return {"learn_off": found[0]["cycles"], "learn_on": found[1]["cycles"]} if set(found) == {0, 1} else None
