"""The boards section: every board's default core's step time at its clock
(from the core section's cycles) and its `neurofabric build` with the open
tools (its report.json: clock, fmax, resources), cached by sources, tools and
sizes; each measured board core against the golden model on the same network
on this machine (`core_vs_golden`), and the parallel core's targets."""

import datetime
import json
import sys
from pathlib import Path

from .core import board_core_runs, core_cycles_for, core_row
from .golden import golden_on_workload
from .plan import PARALLEL_CORE_TARGETS, WORKLOAD_SEED, board_pipeline
from .tools import build_key, checkout, run_logged

__all__ = ["build_board", "bench_boards", "board_core", "board_targets"]

_LEARN = (("learn_off", 0), ("learn_on", 1))


def _failure_reason(out_dir, output):
    """Why a build failed, from nextpnr's log (a resource over its limit, its ERROR line) or the CLI's error."""
    from ...boards.base import parse_nextpnr_log
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
    from ...boards.base import parse_nextpnr_log, resources_from_utilisation
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
    out = Path(cache_dir) / "boards" / build_key(board, neurons, inputs)
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
    log_path = out / "bench-build.log"
    returncode, wall_s = run_logged(cmd, log_path, checkout(),
                                    lambda s: say(f"boards: still building {board.name} ({s:.0f} s)"))
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


def board_core(board, run, core, activity):
    """`boards.B.core`: the board's core `run` (a `CoreRun`) on the reference workload from the core
    section's rows: cycles per step, steps per second at the board's clock, the weights read per
    cycle and the network it ran; None when the core section did not measure it."""
    rows = {key: core_row(core, run, activity, learn) for key, learn in _LEARN}
    if None in rows.values():
        return None
    config = run.config()
    off = rows["learn_off"]
    return {"n": run.n, "m": run.m, "lanes": run.lanes, "neurons_per_cycle": run.neurons_per_cycle,
            "pot_banks": run.pot_banks, "weight_memory": run.weight_memory,
            "pipeline": run.pipeline, "clk_hz": board.clk_hz,
            "at_default_size": (run.n, run.m) == (board.neurons, board.inputs),
            "weights_per_cycle": off["weights_per_cycle"],
            "cycles_per_step": {key: r["cycles"] for key, r in rows.items()},
            "steps_per_s": {key: board.clk_hz / r["cycles"] for key, r in rows.items()},
            "spiking_per_step": {key: r["spiking"] for key, r in rows.items()},
            "network": {"n": run.n, "m": run.m, "S": config.S, "W": config.W, "T": config.T, "activity": activity,
                        "seed": off["seed"],
                        "fingerprint": {key: r["network"] for key, r in rows.items()}}}


def _figure(entry, path):
    node = entry
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def board_targets(name, entry):
    """The parallel core's targets of board `name` (`PARALLEL_CORE_TARGETS`) against its entry: each
    `{"figure", "op", "limit", "measured", "met"}`; `met` is None when the figure was not measured at
    the board's default size."""
    at_default = bool((entry.get("core") or {}).get("at_default_size"))
    out = []
    for figure, op, limit in PARALLEL_CORE_TARGETS.get(name, ()):
        measured = _figure(entry, figure)
        met = None
        if measured is not None and at_default:
            met = bool(measured <= limit if op == "<=" else measured >= limit)
        out.append({"figure": figure, "op": op, "limit": limit, "measured": measured, "met": met})
    return out


def _against_golden(plan, board, run, core, golden_cache, say):
    """The `core`, `golden`, `core_vs_golden` and `targets` keys of a board's entry."""
    measured = board_core(board, run, core, plan.reference_activity)
    if measured is None:
        return {"core": None, "golden": None, "core_vs_golden": None}
    config = run.config()
    shape = (run.n, run.m)
    if shape not in golden_cache:  # the network depends on n, m and the widths (the same on every board)
        say(f"boards: golden model on the {run.n} x {run.m} workload network, {plan.golden_steps} steps, "
            f"{plan.golden_repeats} runs")
        golden_cache[shape] = golden_on_workload(config, plan.reference_activity, WORKLOAD_SEED,
                                                 plan.golden_steps, plan.golden_repeats)
    golden = golden_cache[shape]
    ratio = {key: measured["steps_per_s"][key] / golden["steps_per_s"][key] for key, _ in _LEARN}
    say(f"boards: {board.name}: core {measured['steps_per_s']['learn_off']:,.0f} / "
        f"{measured['steps_per_s']['learn_on']:,.0f} steps/s, golden {golden['steps_per_s']['learn_off']:,.0f} / "
        f"{golden['steps_per_s']['learn_on']:,.0f} (learning off / on): core_vs_golden "
        f"{ratio['learn_off']:.2f} / {ratio['learn_on']:.2f}")
    return {"core": measured, "golden": golden, "core_vs_golden": ratio}


def bench_boards(plan, core, say):
    """Every board: its default core's step time at its clock (from the core runs), and its build;
    each measured board core against the golden model on the same network (`core_vs_golden`)."""
    from ...boards import BOARDS
    boards = {}
    runs = board_core_runs(plan)
    golden_cache = {}
    for board in BOARDS.values():
        entry = {"description": board.description, "family": board.family, "neurons": board.neurons,
                 "inputs": board.inputs, "lanes": board.lanes, "weight_memory": board.weight_memory,
                 "clk_hz": board.clk_hz, "baud": board.baud}
        cycles = core_cycles_for(core, board.neurons, board.inputs, board.lanes, board.weight_memory,
                                 neurons_per_cycle=board.neurons_per_cycle, pot_banks=board.pot_banks,
                                 pipeline=board_pipeline(board))
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
        elif plan.board_builds == "cached":
            build = build_board(board, board.neurons, board.inputs, plan.cache_dir, say, cached_only=True)
            if build is None:
                build = {"status": "not_built", "reason": "run without builds (--no-builds), and no build of these "
                                                          "sources in the cache (docs/boards.md has the measured "
                                                          "builds)"}
        else:
            build = {"status": "not_built", "reason": f"{plan.name} run: no board builds"}
        entry["build"] = build
        at_default = build.get("neurons") == board.neurons and build.get("inputs") == board.inputs
        fmax = build.get("fmax_hz")
        if cycles and at_default and fmax and fmax < board.clk_hz:
            entry["us_per_step_at_fmax"] = {k: c / fmax * 1e6 for k, c in cycles.items()}
        if board.name in runs:
            entry.update(_against_golden(plan, board, runs[board.name], core, golden_cache, say))
            entry["targets"] = board_targets(board.name, entry)
        boards[board.name] = entry
    return boards
