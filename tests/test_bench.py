"""`neurofabric bench`: the results' keys, the link arithmetic against the protocol's encoders, a tiny run."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurofabric.boards import BOARDS
from neurofabric.host import bench
from neurofabric.host.bench import link
from neurofabric.host.link import DEFAULT_MAX_STEPS
from neurofabric.host.bench import run as bench_run
from neurofabric.host.bench import tools as bench_tools
from neurofabric.host.bench.plan import BenchPlan
from neurofabric.host.cli import cli
from neurofabric.contract.device import CoreShape
from neurofabric.contract.protocol import (
    MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, REPLY_FLAG, RUN_REPLY_FIELDS, Command, RunFlags, pack_fields,
)
from neurofabric.host.framing import encode_frame
from neurofabric.host.memory_map import pack_weights, words_to_bytes
from neurofabric.host.records import encode_run_request, encode_spikes

ROOT = Path(__file__).resolve().parents[1]

ISSUE_KEYS = ("core.cycles_per_step.learn_off", "core.cycles_per_step.learn_on", "core.activity",
              "core.synaptic_events_per_cycle", "golden_vs_brian2")

#: The keys the parallel core is judged by: the design's limit and synaptic events per cycle, and for
#: every iCE40 and ECP5 board its core against the golden model on the same network.
PARALLEL_CORE_KEYS = ("core.weights_per_cycle", "core.synaptic_events_per_cycle.learn_off",
                      "core.synaptic_events_per_cycle.learn_on")
BOARD_FIGURES = ("core.cycles_per_step", "core.steps_per_s", "golden.steps_per_s", "core_vs_golden")
OPEN_TOOL_BOARDS = [name for name, board in BOARDS.items() if board.family in ("ice40", "ecp5")]


def test_required_keys_are_dotted_paths_into_nested_objects():
    assert set(ISSUE_KEYS) <= set(bench.REQUIRED_KEYS)
    results = {"core": {"cycles_per_step": {"learn_off": 3000.0}, "activity": None}, "golden_vs_brian2": None}
    missing = bench.missing_keys(results)
    assert "core.cycles_per_step.learn_off" not in missing and "core.activity" not in missing
    assert "golden_vs_brian2" not in missing  # present, even when not measured (None)
    assert "core.cycles_per_step.learn_on" in missing and "core.synaptic_events_per_cycle" in missing
    # a flat key with dots in it is not the nested path
    assert "core.cycles_per_step.learn_on" in bench.missing_keys({"core.cycles_per_step.learn_on": 1})


def test_every_open_tool_board_must_have_its_core_against_the_golden_model():
    assert set(PARALLEL_CORE_KEYS) <= set(bench.REQUIRED_KEYS)
    missing = bench.missing_keys({})
    for name in OPEN_TOOL_BOARDS:
        for figure in BOARD_FIGURES:
            for learn in ("learn_off", "learn_on"):
                assert f"boards.{name}.{figure}.{learn}" in missing
    assert not [path for path in missing if path.startswith(("boards.cmod-a7.", "boards.arty-"))]
    entry = {"core": {"cycles_per_step": {"learn_off": 1.0, "learn_on": 2.0}}}
    missing = bench.missing_keys({"boards": {"ulx3s-85f": entry}})
    assert "boards.ulx3s-85f.core.cycles_per_step.learn_off" not in missing
    assert "boards.ulx3s-85f.core.steps_per_s.learn_off" in missing
    assert "boards.ulx3s-45f.core.cycles_per_step.learn_off" in missing


def test_quick_and_full_runs_measure_every_open_tool_boards_own_core_at_its_default_size():
    from neurofabric.host.bench.core import board_core_runs
    for plan in (bench.BenchPlan.quick(), bench.BenchPlan.full()):
        runs = board_core_runs(plan)
        assert set(OPEN_TOOL_BOARDS) <= set(runs)
        for name in OPEN_TOOL_BOARDS:
            board, run = BOARDS[name], runs[name]
            assert (run.n, run.m, run.lanes, run.weight_memory) == (board.neurons, board.inputs, board.lanes,
                                                                    board.weight_memory)
            assert bench.REFERENCE_ACTIVITY in run.activities
        # the iCE40 boards build the short pipeline (`Core(pipeline="auto")`), whose cycles differ
        assert runs["icebreaker"].pipeline == "short" and runs["ulx3s-85f"].pipeline == "long"
    assert set(board_core_runs(bench.BenchPlan.full())) == set(BOARDS)


def test_golden_on_workload_times_the_network_and_inputs_the_core_runs():
    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.host.bench.golden import golden_on_workload
    from neurofabric.host.golden import GoldenModel
    config = CoreConfig(n=16, m=8, lanes=4)
    result = golden_on_workload(config, 0.25, 7, steps=30, repeats=2)
    for learn, key in ((0, "learn_off"), (1, "learn_on")):
        net = bench.workload_network(config, 0.25, learn, 7)
        assert result["network"]["fingerprint"][key] == bench.network_fingerprint(net)
        assert len(result["run_s"][key]) == 2 and result["steps_per_s"][key] == pytest.approx(30 / min(
            result["run_s"][key]))
        # the inputs sim/bench_cocotb.py draws, step by step, from seed + 1
        rng = np.random.default_rng(8)
        stim = np.stack([rng.random(8) < 0.25 for _ in range(30)])
        assert np.array_equal(bench.workload_stimulus(8, 30, 0.25, 7), stim)
        spikes = GoldenModel(net).run(stim).spikes
        assert result["spiking_per_step"][key] == pytest.approx(spikes[1:].sum(axis=1).mean())
    assert result["network"]["fingerprint"]["learn_off"] != result["network"]["fingerprint"]["learn_on"]
    other = bench.workload_network(CoreConfig(n=16, m=8, lanes=4), 0.25, 0, 8)
    assert bench.network_fingerprint(other) != result["network"]["fingerprint"]["learn_off"]
    # and with the same activity of inputs made by the stimulus generator
    generated = result["generated"]
    assert generated["rate"] == 16384 and generated["seed"] == 1 and 0.1 < generated["input_activity"] < 0.4
    for key in ("learn_off", "learn_on"):
        assert len(generated["run_s"][key]) == 2
        assert generated["steps_per_s"][key] == pytest.approx(30 / min(generated["run_s"][key]))


def test_the_workload_network_uses_decay_factors_that_multiply():
    from neurofabric.hdl.core_ports import CoreConfig
    net = bench.workload_network(CoreConfig(n=16, m=8, lanes=4), 0.25, 1, 7)
    assert net.decay_mem.tolist() == [4096] * 16 and net.decay_syn.tolist() == [4096] * 16
    assert (net.decay_pre, net.decay_post) == (1024, 1024)
    assert net.plastic_mask().all() and net.learn == 1


def test_workload_rates_are_the_generator_twin_of_the_workload_stimulus():
    from neurofabric.host.generator import generate_inputs
    rates = bench.workload_rates(64, 0.1)
    assert rates.tolist() == [6554] * 64
    spikes, _ = generate_inputs(1, rates, 2000)
    assert abs(spikes.mean() - 0.1) < 5 * np.sqrt(0.09 / spikes.size)
    assert bench.workload_rates(0, 0.1).shape == (0,)


def test_board_targets_are_judged_only_at_the_boards_default_size():
    from neurofabric.host.bench.boards import board_targets
    entry = {"core": {"at_default_size": True, "weights_per_cycle": 2,
                      "cycles_per_step": {"learn_off": 2000.0, "learn_on": 9000.0}}}
    targets = {t["figure"]: t for t in board_targets("icebreaker", entry)}
    assert set(targets) == {f for f, _, _ in bench.PARALLEL_CORE_TARGETS["icebreaker"]}
    assert targets["core.weights_per_cycle"] == {"figure": "core.weights_per_cycle", "op": ">=", "limit": 6,
                                                 "measured": 2, "met": False}
    assert targets["core.cycles_per_step.learn_off"]["met"] is True      # 2,000 <= 2,500
    assert targets["core.cycles_per_step.learn_on"]["met"] is False      # 9,000 > 7,500
    entry["core"]["at_default_size"] = False
    assert {t["met"] for t in board_targets("icebreaker", entry)} == {None}
    ulx = board_targets("ulx3s-85f", {"core": {"at_default_size": True}, "core_vs_golden": {"learn_off": 6.0}})
    assert [(t["figure"], t["met"]) for t in ulx if t["figure"].startswith("core_vs")] == [
        ("core_vs_golden.learn_off", True), ("core_vs_golden.learn_on", None)]


def test_weight_load_bytes_equal_the_encoded_frames():
    shape = CoreShape(8, 4, 16, 8, 8, 2)
    weights = np.arange(-48, 48).reshape(12, 8)
    costs = bench.link_costs(shape, activities=(), steps=1, weights=weights)
    words = [pack_weights(row[c * 2:(c + 1) * 2], 8) for row in weights for c in range(4)]
    per_frame = (MAX_PAYLOAD - 7) // 2
    wire = replies = data = 0
    for frame, start in enumerate(range(0, len(words), per_frame)):
        chunk = words[start:start + per_frame]
        seq = 2 + frame  # HELLO was seq 1
        body = words_to_bytes(chunk, 16)
        data += len(body)
        wire += len(encode_frame(Command.WRITE_WEIGHTS, seq,
                                 pack_fields(MEMORY_REQUEST_FIELDS, table=0, address=start, count=len(chunk)) + body))
        replies += len(encode_frame(Command.WRITE_WEIGHTS | REPLY_FLAG, seq, b"\0"))
    load = costs["weight_load"]
    assert (load["data_bytes"], load["wire_bytes"], load["reply_wire_bytes"]) == (data, wire, replies)
    assert data == 96 and load["efficiency"] == data / wire and load["weights"] == 96


def test_weight_load_of_a_large_core_takes_several_frames():
    load = bench.link_costs(CoreShape(64, 64, 16, 8, 8, 4), activities=(), steps=1)["weight_load"]
    assert load["data_bytes"] == 128 * 64 and load["frames"] == -(-128 * 16 // ((MAX_PAYLOAD - 7) // 4))
    assert 0.9 < load["efficiency"] < 1


def test_spike_stream_bytes_equal_the_encoded_frames():
    n, m, steps = 256, 32, 40
    costs = bench.link_costs(CoreShape(n, m, 16, 8, 8, 4), activities=(0.0,), steps=steps)
    stream = costs["spike_stream"][0]
    seq = 3  # HELLO 1, STATUS 2; 40 silent steps fit one RUN request
    # Silent steps: a request without input records (GENERATED).
    request = encode_frame(Command.RUN, seq, encode_run_request([[]] * steps, m, RunFlags.GENERATED))
    records = [encode_frame(Command.STEP_RECORD | REPLY_FLAG, seq, b"\0" + encode_spikes(t, [], n))
               for t in range(steps)]
    reply = encode_frame(Command.RUN | REPLY_FLAG, seq, b"\0" + pack_fields(RUN_REPLY_FIELDS, steps=steps))
    assert stream["run_requests"] == 1
    assert stream["input"]["wire_bytes"] * steps == pytest.approx(len(request))
    assert stream["input"]["data_bytes"] == 0 and len(request) == 12    # the 3 bytes of the fields in a frame
    assert stream["output"]["wire_bytes"] * steps == pytest.approx(sum(map(len, records)))
    assert stream["both"]["wire_bytes"] * steps == pytest.approx(len(request) + sum(map(len, records)) + len(reply))
    assert stream["output"]["efficiency"] == pytest.approx(7 * steps / sum(map(len, records)))


def test_busier_spike_streams_cost_more_but_never_more_than_a_bitmap_per_step():
    costs = bench.link_costs(CoreShape(256, 256, 16, 8, 8, 4), activities=(0.0, 0.05, 0.5), steps=50)
    out = [s["output"] for s in costs["spike_stream"]]
    assert out[0]["data_bytes"] < out[1]["data_bytes"] <= out[2]["data_bytes"] == 5 + 256 // 8


def test_the_reference_streams_cost_a_round_trip_per_run_exchange_and_generated_inputs_send_no_records():
    n, m, steps = 256, 256, 600
    streams = bench.link_costs(CoreShape(n, m, 16, 8, 8, 64), activities=(), steps=steps,
                               reference_activity=0.1)["reference_streams"]
    raster, generated, recorded = streams["full_raster"], streams["generated"], streams["generated_32"]
    assert raster["activity"] == generated["activity"] == recorded["activity"] == 0.1
    assert generated["input"]["data_bytes"] == 0 == recorded["input"]["data_bytes"]   # requests without records
    # 32 of 256 neurons recorded on the device: their 4-byte bitmap a step in step blocks (and a
    # block's 6-byte head every 64 steps); every neuron's records come one a step (32-byte bitmaps).
    assert 4 < recorded["output"]["data_bytes"] < 4.2 < 5 + 2 * 6 < raster["output"]["data_bytes"]
    assert recorded["both"]["wire_bytes"] < generated["both"]["wire_bytes"] / 2
    assert 30 < raster["input"]["data_bytes"] <= 5 + m // 8   # about 26 inputs of 256: mostly bitmaps
    assert generated["output"] == raster["output"]   # the same spikes come back
    assert 30 < raster["output"]["data_bytes"] <= 5 + n // 8
    # RUN requests are one frame each: the generated stream packs DEFAULT_MAX_STEPS into each
    assert generated["run_requests"] == -(-steps // DEFAULT_MAX_STEPS) < raster["run_requests"]
    baud = 3_000_000
    for stream in (raster, generated, recorded):
        wire_s = stream["both"]["wire_bytes"] * 10 / baud
        assert link.stream_steps_per_s(stream, baud, 0.0) == pytest.approx(1 / wire_s)
        slow = link.stream_steps_per_s(stream, baud, 16e-3)
        assert slow == pytest.approx(1 / (wire_s + stream["run_requests"] * 16e-3 / steps))
        assert slow < link.stream_steps_per_s(stream, baud, 1e-3) < 1 / wire_s
    assert link.stream_steps_per_s(generated, baud, 1e-3) > link.stream_steps_per_s(raster, baud, 1e-3)
    assert link.stream_steps_per_s(recorded, baud, 1e-3) > link.stream_steps_per_s(generated, baud, 1e-3)
    # Counts only: no records, the counters (2 bytes a neuron) read before and after the 600 steps,
    # each read an exchange of its own with its round trip.
    counted = streams["generated_counts"]
    assert counted["input"]["data_bytes"] == 0 and counted["exchanges"] == counted["run_requests"] + 2
    assert counted["output"]["data_bytes"] == pytest.approx(2 * 2 * n / steps)
    assert counted["both"]["wire_bytes"] < recorded["both"]["wire_bytes"] / 2
    slow = link.stream_steps_per_s(counted, baud, 16e-3)
    assert slow == pytest.approx(1 / (counted["both"]["wire_bytes"] * 10 / baud + counted["exchanges"] * 16e-3 / steps))
    assert link.stream_steps_per_s(counted, baud, 1e-3) > 1.2 * link.stream_steps_per_s(recorded, baud, 1e-3)


def test_the_firmware_takes_fewer_cycles_for_fewer_spikes_and_recorded_neurons():
    """The firmware's cycles per step on the instruction-set simulator: more with host inputs to
    feed, more with more spikes to take, fewer with 32 neurons recorded (a shorter record)."""
    cycles = {case: link.firmware_cycles_per_step(256, 256, case, 0.1, steps=16) for case in link.LINK_CASES}
    assert cycles["generated_counts"] < cycles["generated_32"] < cycles["generated"] < cycles["full_raster"]
    assert link.firmware_cycles_per_step(256, 256, "generated", 0.02, steps=16) < 0.6 * cycles["generated"]
    # Each spike of 512 neurons costs more than one of 256 (two-byte neuron numbers).
    assert link.firmware_cycles_per_step(512, 256, "generated", 0.1, steps=16) > 2 * cycles["generated"]


def test_end_to_end_is_the_lower_of_core_and_link_and_is_judged_against_the_golden_model():
    results = {
        "boards": {
            "fast-core": {"core": {"steps_per_s": {"learn_off": 100_000.0, "learn_on": 20_000.0}},
                          "golden": {"steps_per_s": {"learn_off": 25_000.0, "learn_on": 8_000.0}}},
            "no-core": {"build": {}},
        },
        "link": {"boards": {
            name: {"activity": 0.1, "round_trip_s": 1e-3, "slow_round_trip_s": 16e-3,
                   "steps_per_s": {"full_raster": 4_000.0, "generated": 9_000.0, "generated_32": 50_000.0},
                   "steps_per_s_at_slow_round_trip": {"full_raster": 3_000.0, "generated": 9_000.0},
                   "wire_bytes_per_step": {"full_raster": 80.0, "generated": 50.0},
                   "firmware_steps_per_s": {"full_raster": 1.0, "generated": 2.0,
                                            "generated_32": 60_000.0 if name == "fast-core" else 30_000.0}}
            for name in ("fast-core", "no-core", "slow-firmware")}},
    }
    results["boards"]["slow-firmware"] = results["boards"]["fast-core"] | {}
    boards = link.end_to_end(results)["boards"]
    fast = boards["fast-core"]
    assert fast["end_to_end"]["steps_per_s"] == {"learn_off": 50_000.0, "learn_on": 20_000.0}
    assert fast["end_to_end"]["bound_by"] == {"learn_off": "link", "learn_on": "core"}
    assert fast["end_to_end"]["link_case"] == "generated_32"
    assert fast["end_to_end_vs_golden"] == {"learn_off": 2.0, "learn_on": 2.5}
    slow = boards["slow-firmware"]
    assert slow["end_to_end"]["steps_per_s"] == {"learn_off": 30_000.0, "learn_on": 20_000.0}
    assert slow["end_to_end"]["bound_by"] == {"learn_off": "firmware", "learn_on": "core"}
    assert fast["link"]["steps_per_s"]["full_raster"] == 4_000.0
    assert "end_to_end" not in boards["no-core"] and boards["no-core"]["link"]["round_trip_s"] == 1e-3


def test_bench_help_has_examples():
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "neurofabric bench --quick --json" in result.output


def test_bench_without_builds_takes_cached_builds_only(monkeypatch, tmp_path):
    """--no-builds: the full plan, each board's build from the cache or shown as not built."""
    import neurofabric.host.bench as bench_package
    from neurofabric.host.bench import boards as bench_boards
    plans = []

    def fake_run_bench(plan, say, json_path, docs_path):
        plans.append(plan)
        return {"wall_s": 1.0, "errors": {}}
    monkeypatch.setattr(bench_package, "run_bench", fake_run_bench)
    assert CliRunner().invoke(cli, ["bench", "--no-builds"]).exit_code == 0
    assert plans[0].name == "full" and plans[0].board_builds == "cached"
    calls = []
    monkeypatch.setattr(bench_boards, "build_board", lambda *a, **kw: calls.append(kw) or None)
    plan = dataclasses.replace(bench.BenchPlan.tiny(tmp_path), board_builds="cached", board_configs={})
    boards = bench_boards.bench_boards(plan, {}, lambda m: None)
    assert len(calls) == len(OPEN_TOOL_BOARDS) and all(kw.get("cached_only") for kw in calls)
    assert {name: b["build"]["status"] for name, b in boards.items() if name in OPEN_TOOL_BOARDS} == {
        name: "not_built" for name in OPEN_TOOL_BOARDS}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny bench run (`BenchPlan.tiny`): its results, its progress lines and its folder."""
    tmp_path = tmp_path_factory.mktemp("bench")
    plan = bench.BenchPlan.tiny(cache_dir=tmp_path / "cache")
    lines = []
    results = bench.run_bench(plan, say=lines.append, json_path=tmp_path / "bench.json",
                              docs_path=tmp_path / "benchmarks.md")
    return results, lines, tmp_path


@pytest.mark.rtl
def test_tiny_run_has_every_key_and_writes_the_page(tiny_run):
    results, lines, tmp_path = tiny_run
    assert results["errors"] == {}
    assert bench.missing_keys(results) == []
    assert json.loads((tmp_path / "bench.json").read_text())["core"]["cycles_per_step"] == results["core"][
        "cycles_per_step"]
    core = results["core"]
    assert 0 < core["cycles_per_step"]["learn_off"] < core["cycles_per_step"]["learn_on"]
    assert core["synaptic_events_per_cycle"]["memory_limit"] == 2
    assert set(results["boards"]) == set(BOARDS)
    assert results["boards"]["cmod-a7"]["build"]["status"] == "needs_vivado"
    page = (tmp_path / "benchmarks.md").read_text()
    assert "tiny run" in page and "## Link" in page and "```python" not in page
    assert "`end_to_end_vs_golden`" in page and "steps/s, `generated_32`, 1 ms" in page
    assert "`generated_32`: cycles / steps per second" in page      # the firmware's limit
    assert "steps/s, `generated_counts`, 1 ms" in page and "measured through the pty" in page
    # A board built without spike counters: its host counts from every neuron's records.
    for name, b in results["link"]["boards"].items():
        assert b["spike_counters"] == BOARDS[name].spike_counters
        if not b["spike_counters"]:
            assert b["steps_per_s"]["generated_counts"] == b["steps_per_s"]["generated"], name
    for name in OPEN_TOOL_BOARDS:
        b, link_b = results["boards"][name], results["link"]["boards"][name]
        limits = (link_b["steps_per_s"]["generated_32"], link_b["firmware_steps_per_s"]["generated_32"])
        assert b["end_to_end"]["steps_per_s"]["learn_off"] == min(b["core"]["steps_per_s"]["learn_off"], *limits)
    assert (tmp_path / "benchmarks" / "core-cycles.png").stat().st_size > 1000
    assert any(re.match(r"== core", line) for line in lines)


@pytest.mark.rtl
def test_tiny_run_measures_every_open_tool_boards_core_against_the_golden_model_on_its_network(tiny_run):
    results, _, tmp_path = tiny_run
    assert results["errors"] == {}
    saved = json.loads((tmp_path / "bench.json").read_text())
    core = results["core"]
    assert core["weights_per_cycle"] == 2  # the tiny reference core: 2 lanes, one word per cycle
    for key in ("learn_off", "learn_on"):
        assert core["synaptic_events_per_cycle"][key] > 0
        assert saved["core"]["synaptic_events_per_cycle"][key] == core["synaptic_events_per_cycle"][key]
    assert core["learn_cost"]["ratio"] == pytest.approx(core["cycles_per_step"]["learn_on"] /
                                                        core["cycles_per_step"]["learn_off"])
    sizes = bench.BenchPlan.tiny().board_configs
    for name in OPEN_TOOL_BOARDS:
        b = saved["boards"][name]
        c, g = b["core"], b["golden"]
        # the board's core at the tiny size: the lanes of the board that divide it (fewer than its own)
        board = BOARDS[name].with_sizes(neurons=sizes[name][0], inputs=sizes[name][1])
        assert board.lanes <= BOARDS[name].lanes and sizes[name][0] % board.lanes == 0
        assert (c["n"], c["m"], c["lanes"], c["weight_memory"]) == (*sizes[name], board.lanes, board.weight_memory)
        assert c["neurons_per_cycle"] == board.neurons_per_cycle
        assert c["weights_per_cycle"] == board.lanes and c["at_default_size"] is False
        for key in ("learn_off", "learn_on"):
            assert c["cycles_per_step"][key] > 0 and g["steps_per_s"][key] > 0
            assert c["steps_per_s"][key] == pytest.approx(board.clk_hz / c["cycles_per_step"][key])
            assert b["core_vs_golden"][key] == pytest.approx(c["steps_per_s"][key] / g["steps_per_s"][key])
        # the golden model ran the network the core ran: shape, seed and every field (its fingerprint)
        assert g["network"] == c["network"]
        assert (c["network"]["n"], c["network"]["m"], c["network"]["seed"]) == (*sizes[name], 7)
        config_rows = [r for r in core["runs"] if (r["n"], r["m"], r["lanes"]) == (c["n"], c["m"], c["lanes"])
                       and r["activity"] == 0.25]
        assert {r["network"] for r in config_rows} == set(c["network"]["fingerprint"].values())
        # learning off the network never changes: the same neurons spike in both
        assert g["spiking_per_step"]["learn_off"] == c["spiking_per_step"]["learn_off"] > 0
        assert b["targets"] and all(t["met"] is None for t in b["targets"])  # not at the board's size
    assert saved["boards"]["icebreaker"]["core"]["pipeline"] == "short"
    big, small = saved["boards"]["ulx3s-85f"], saved["boards"]["ulx3s-45f"]
    assert big["golden"]["network"]["fingerprint"] != small["golden"]["network"]["fingerprint"]
    assert "core" not in saved["boards"]["cmod-a7"]  # a Vivado board is not measured in a tiny run
    page = (tmp_path / "benchmarks.md").read_text()
    section = page.split("## Boards against the golden model")[1].split("\n## ")[0]
    for name in OPEN_TOOL_BOARDS:
        block = section.split(f"### `{name}`")[1].split("### ")[0]
        b = saved["boards"][name]
        assert f"| `core_vs_golden` | {b['core_vs_golden']['learn_off']:.2f} | " in block
        assert f"{b['golden']['steps_per_s']['learn_on']:,.0f}" in block
        assert (f"| golden model, inputs from the stimulus generator (rate {b['golden']['generated']['rate']} of "
                f"65536) | {b['golden']['generated']['steps_per_s']['learn_off']:,.0f} |") in block
        assert "| target | limit | measured |" in block and "not its default size" in block
    assert "weights read per cycle | >= 6 | 2 |" in section.split("### `icebreaker`")[1]


@pytest.fixture
def instant_quick_plan(monkeypatch, tmp_path):
    """`--quick` as a plan that measures no section: what the command writes, without the minutes."""
    def quick(cls):
        return dataclasses.replace(cls.tiny(cache_dir=tmp_path / "cache"), name="quick", sections=())
    monkeypatch.setattr(bench.BenchPlan, "quick", classmethod(quick))
    pages, real = [], bench_run.write_docs

    def write_docs(results, path):
        pages.append(Path(path))
        return real(results, path)
    monkeypatch.setattr(bench_run, "write_docs", write_docs)
    return pages


def test_quick_run_without_o_writes_no_page(instant_quick_plan, tmp_path, monkeypatch):
    committed = (ROOT / "docs" / "benchmarks.md").read_bytes()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["bench", "--quick"])
    assert result.exit_code == 0, result.output
    assert instant_quick_plan == []
    assert "no page written" in result.output
    assert (ROOT / "docs" / "benchmarks.md").read_bytes() == committed
    assert not list(tmp_path.rglob("*.md"))


def test_quick_run_writes_the_page_it_is_asked_for(instant_quick_plan, tmp_path):
    page = tmp_path / "bench.md"
    result = CliRunner().invoke(cli, ["bench", "--quick", "-o", str(page)])
    assert result.exit_code == 0, result.output
    assert instant_quick_plan == [page]
    text = page.read_text()
    assert "**This is a quick run**" in text and "`neurofabric bench -o docs/benchmarks.md`" in text
    assert f"wrote {page}" in result.output


def test_bench_outside_a_source_checkout_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bench_tools, "source_checkout", lambda: None)
    with pytest.raises(bench.BenchError, match="needs a source checkout"):
        bench.run_bench(bench.BenchPlan.tiny(cache_dir=tmp_path), say=lambda message: None)
    result = CliRunner().invoke(cli, ["bench", "--quick", "-o", str(tmp_path / "page.md")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: neurofabric bench needs a source checkout")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.rtl
def test_a_board_whose_core_run_failed_is_named_on_the_page(tiny_run, tmp_path):
    results = json.loads((tiny_run[2] / "bench.json").read_text())
    results["boards"]["ulx3s-25f"].update(core=None, golden=None, core_vs_golden=None)
    page = bench.write_docs(results, tmp_path / "page.md").read_text()
    section = page.split("## Boards against the golden model")[1].split("\n## ")[0]
    assert "### `ulx3s-25f`" not in section and "### `ulx3s-45f`" in section
    assert "Not measured in this run (the core run failed, see section Core): `ulx3s-25f`." in section


def test_the_page_shows_the_golden_model_with_generated_inputs():
    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.host.bench.golden import golden_on_workload
    from neurofabric.host.bench.page import _docs_boards_against_golden
    golden = golden_on_workload(CoreConfig(n=8, m=4, lanes=2), 0.25, 7, steps=20, repeats=1)
    per_learn = {"learn_off": 100.0, "learn_on": 300.0}
    core = {"at_default_size": False, "weight_memory": "dual", "n": 8, "m": 4, "lanes": 2, "pipeline": "long",
            "clk_hz": 50e6, "weights_per_cycle": 2, "network": golden["network"], "cycles_per_step": per_learn,
            "steps_per_s": {k: 50e6 / v for k, v in per_learn.items()}}
    board = {"core": core, "golden": golden, "core_vs_golden": {k: 1.0 for k in per_learn}, "neurons": 8,
             "inputs": 4, "targets": []}
    lines = []
    _docs_boards_against_golden({"boards": {"ulx3s-85f": board}}, lines.append)
    page = "\n".join(lines)
    assert (f"| golden model, inputs from the stimulus generator (rate 16384 of 65536) | "
            f"{golden['generated']['steps_per_s']['learn_off']:,.0f} | "
            f"{golden['generated']['steps_per_s']['learn_on']:,.0f} |") in page


def test_a_board_with_spike_counters_streams_counts_without_records(monkeypatch):
    """`generated_counts` on a board built with counters: no records, the counters read, fewer
    bytes than `generated_32` (32 neurons' bitmaps in step blocks); without counters the
    figures of `generated`."""
    import dataclasses as dc

    import neurofabric.boards as boards_module
    board = dc.replace(BOARDS["ulx3s-12f"], spike_counters=True)
    plain = dc.replace(BOARDS["ulx3s-12f"], name="plain", spike_counters=False)
    monkeypatch.setattr(boards_module, "BOARDS", {board.name: board, plain.name: plain})
    plan = dataclasses.replace(BenchPlan.quick(), link_activities=(0.1,), link_steps=300)
    result = link.bench_link(plan, lambda *a: None)["boards"]
    counted, plain_b = result[board.name], result["plain"]
    assert counted["wire_bytes_per_step"]["generated_counts"] < counted["wire_bytes_per_step"]["generated_32"] / 2
    assert counted["steps_per_s"]["generated_counts"] > counted["steps_per_s"]["generated_32"]
    assert plain_b["steps_per_s"]["generated_counts"] == plain_b["steps_per_s"]["generated"]
    assert plain_b["firmware_cycles_per_step"]["generated_counts"] == plain_b["firmware_cycles_per_step"]["generated"]
