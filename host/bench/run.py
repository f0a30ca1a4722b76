"""A bench run: every section of a `BenchPlan`, the results' required keys, the JSON and the page."""

import datetime
import json
import logging
import time
from pathlib import Path

from .boards import bench_boards
from .core import bench_core
from .golden import bench_golden
from .link import bench_link, end_to_end
from .machine import machine_info
from .page import write_docs
from .plan import NEUROCOREX
from .simulated_board import bench_simulated_board
from .tools import checkout

__all__ = ["REQUIRED_KEYS", "BOARD_KEYS", "missing_keys", "run_bench"]

logger = logging.getLogger(__name__)

#: Dotted paths every run's results hold (`missing_keys` checks them).
REQUIRED_KEYS = (
    "machine.cpu", "machine.cores", "machine.ram_gb", "machine.os", "machine.python", "machine.versions",
    "date", "quick", "wall_s",
    "core.reference", "core.cycles_per_step.learn_off", "core.cycles_per_step.learn_on", "core.activity",
    "core.weights_per_cycle", "core.learn_cost",
    "core.activity.inputs", "core.activity.neurons",
    "core.synaptic_events_per_cycle", "core.synaptic_events_per_cycle.learn_off",
    "core.synaptic_events_per_cycle.learn_on", "core.synaptic_events_per_cycle.memory_limit",
    "core.targets", "core.meets_target", "core.runs",
    "boards", "neurocorex",
    "link.weight_load.efficiency", "link.weight_load.wire_bytes", "link.network_load", "link.spike_stream",
    "link.boards",
    "simulated_board.cycles_per_second", "simulated_board.steps_per_second", "simulated_board.runs",
    "simulated_board.link.steps_per_s.full_raster", "simulated_board.link.steps_per_s.generated_32",
    "simulated_board.link.steps_per_s.generated_counts",
    "golden", "golden_vs_brian2",
)

#: Dotted paths under `boards.B` that every iCE40 and ECP5 board's entry holds (`missing_keys`
#: checks them): its core on the reference workload against the golden model on the same network.
BOARD_KEYS = (
    "core.cycles_per_step.learn_off", "core.cycles_per_step.learn_on", "core.steps_per_s.learn_off",
    "core.steps_per_s.learn_on", "core.weights_per_cycle", "core.network",
    "golden.steps_per_s.learn_off", "golden.steps_per_s.learn_on", "golden.network",
    "core_vs_golden.learn_off", "core_vs_golden.learn_on", "targets",
    "link.steps_per_s.full_raster", "link.steps_per_s.generated", "link.steps_per_s.generated_32",
    "link.steps_per_s.generated_counts", "link.firmware_steps_per_s.generated_counts",
    "link.firmware_steps_per_s.generated_32", "link.round_trip_s",
    "end_to_end.steps_per_s.learn_off", "end_to_end.steps_per_s.learn_on",
    "end_to_end_vs_golden.learn_off", "end_to_end_vs_golden.learn_on",
)


def _open_tool_boards():
    """The boards the open tools build (iCE40, ECP5): those `BOARD_KEYS` applies to."""
    from ...boards import BOARDS
    return [name for name, board in BOARDS.items() if board.family in ("ice40", "ecp5")]


def missing_keys(results):
    """The dotted paths of `REQUIRED_KEYS`, and of `BOARD_KEYS` under every iCE40 and ECP5 board
    (`boards.B.core_vs_golden.learn_off`, ...), that `results` lacks (a key whose value is None is there)."""
    missing = []
    board_paths = [f"boards.{name}.{key}" for name in _open_tool_boards() for key in BOARD_KEYS]
    for path in (*REQUIRED_KEYS, *board_paths):
        node = results
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    return missing


def run_bench(plan, say=print, json_path=None, docs_path=None):
    """Measure every section of `plan`; write the JSON and the page only when
    given paths (the page is written where asked, never by default).

    A section that fails is recorded in `errors` (its key is then None) and
    the others still run. Outside a source checkout a one-line `BenchError`
    before anything runs: the bench needs its benchmarks/ scripts.
    """
    checkout()
    start = time.monotonic()
    results = {"plan": plan.name, "quick": plan.name != "full",
               "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    errors, section_s = {}, {}
    say(f"neurofabric bench ({plan.name} run): sections {', '.join(plan.sections)}")

    def section(name, measure):
        if name not in plan.sections:
            results[name] = None
            return
        t0 = time.monotonic()
        say(f"== {name}")
        try:
            results[name] = measure()
        except Exception as exc:  # one failed section must not cost the others' figures
            logger.debug("section %s failed", name, exc_info=True)
            errors[name] = f"{type(exc).__name__}: {exc}"
            results[name] = None
            say(f"{name}: FAILED: {errors[name]}")
        section_s[name] = round(time.monotonic() - t0, 1)
        say(f"{name}: {section_s[name]:.0f} s (run so far {time.monotonic() - start:.0f} s)")

    section("core", lambda: bench_core(plan, say))
    section("boards", lambda: bench_boards(plan, results.get("core"), say))
    section("link", lambda: bench_link(plan, say))
    section("simulated_board", lambda: bench_simulated_board(plan, say))
    section("golden", lambda: bench_golden(plan, say))
    end_to_end(results)
    results["golden_vs_brian2"] = (results.get("golden") or {}).get("golden_vs_brian2")
    results["neurocorex"] = NEUROCOREX
    results["machine"] = machine_info(results.get("golden"))
    results["section_s"] = section_s
    results["errors"] = errors
    results["wall_s"] = round(time.monotonic() - start, 1)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")
        say(f"wrote {json_path}")
    if docs_path:
        write_docs(results, docs_path)
        say(f"wrote {docs_path}")
    return results
