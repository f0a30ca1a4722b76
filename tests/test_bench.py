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
from neurofabric.host.bench import run as bench_run
from neurofabric.host.bench import tools as bench_tools
from neurofabric.host.cli import cli
from neurofabric.contract.device import CoreShape
from neurofabric.contract.protocol import (
    MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, REPLY_FLAG, RUN_REPLY_FIELDS, Command, pack_fields,
)
from neurofabric.host.framing import encode_frame
from neurofabric.host.memory_map import pack_weights, words_to_bytes
from neurofabric.host.records import encode_run_request, encode_spikes

ROOT = Path(__file__).resolve().parents[1]

ISSUE_KEYS = ("core.cycles_per_step.learn_off", "core.cycles_per_step.learn_on", "core.activity",
              "core.synaptic_events_per_cycle", "golden_vs_brian2")


def test_required_keys_are_dotted_paths_into_nested_objects():
    assert set(ISSUE_KEYS) <= set(bench.REQUIRED_KEYS)
    results = {"core": {"cycles_per_step": {"learn_off": 3000.0}, "activity": None}, "golden_vs_brian2": None}
    missing = bench.missing_keys(results)
    assert "core.cycles_per_step.learn_off" not in missing and "core.activity" not in missing
    assert "golden_vs_brian2" not in missing  # present, even when not measured (None)
    assert "core.cycles_per_step.learn_on" in missing and "core.synaptic_events_per_cycle" in missing
    # a flat key with dots in it is not the nested path
    assert "core.cycles_per_step.learn_on" in bench.missing_keys({"core.cycles_per_step.learn_on": 1})


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
    request = encode_frame(Command.RUN, seq, encode_run_request([[]] * steps, m))
    records = [encode_frame(Command.STEP_RECORD | REPLY_FLAG, seq, b"\0" + encode_spikes(t, [], n))
               for t in range(steps)]
    reply = encode_frame(Command.RUN | REPLY_FLAG, seq, b"\0" + pack_fields(RUN_REPLY_FIELDS, steps=steps))
    assert stream["run_requests"] == 1
    assert stream["input"]["wire_bytes"] * steps == pytest.approx(len(request))
    assert stream["input"]["data_bytes"] == 7  # step u32, format, count u16 = 0: an empty address list
    assert stream["output"]["wire_bytes"] * steps == pytest.approx(sum(map(len, records)))
    assert stream["both"]["wire_bytes"] * steps == pytest.approx(len(request) + sum(map(len, records)) + len(reply))
    assert stream["output"]["efficiency"] == pytest.approx(7 * steps / sum(map(len, records)))


def test_busier_spike_streams_cost_more_but_never_more_than_a_bitmap_per_step():
    costs = bench.link_costs(CoreShape(256, 256, 16, 8, 8, 4), activities=(0.0, 0.05, 0.5), steps=50)
    out = [s["output"] for s in costs["spike_stream"]]
    assert out[0]["data_bytes"] < out[1]["data_bytes"] <= out[2]["data_bytes"] == 5 + 256 // 8


def test_bench_help_has_examples():
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "neurofabric bench --quick --json" in result.output


@pytest.mark.rtl
def test_tiny_run_has_every_key_and_writes_the_page(tmp_path):
    plan = bench.BenchPlan.tiny(cache_dir=tmp_path / "cache")
    lines = []
    results = bench.run_bench(plan, say=lines.append, json_path=tmp_path / "bench.json",
                              docs_path=tmp_path / "benchmarks.md")
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
    assert (tmp_path / "benchmarks" / "core-cycles.png").stat().st_size > 1000
    assert any(re.match(r"== core", line) for line in lines)


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
