"""The whole device (UART, framing, link, core) as generated Verilog under Verilator,
driven through its UART pins with the host's protocol code (sim/link_cocotb.py).

One Verilator build per configuration (cached in build/rtl/top-*), all of a
configuration's cocotb tests in one simulator process.
"""

import json

import pytest

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host.errors import BuildError
from neurofabric.contract.protocol import probe_chunk_neurons
from neurofabric.sim.link_build import top_env, top_model
from neurofabric.sim.verilator import run_cocotb

pytestmark = pytest.mark.rtl

#: name -> (config, clk_hz, baud, probe_chunk, golden cases)
CONFIGS = {
    # The simulated board's clock and baud (4 cycles per bit). n = 8: step records are always bitmaps.
    # gen_rate: the stimulus generator makes inputs too (rates written through the link),
    # gen_seed: a seed written first; inputs: every step's INPUT_RECORD is checked byte for byte.
    "small": (CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2), None, None, None, [
        dict(seed=1, learn=1, probe=True, steps=20, rate=0.2, max_steps=7, plastic_all=True, wide_bounds=True,
             inputs=True, gen_rate=0.2, gen_seed=0x6A09E667),
        dict(seed=2, learn=0, probe=False, steps=20, rate=0.3, max_steps=20, gen_rate=0.3),
        dict(seed=3, learn=1, trace_mode=1, probe=False, steps=24, rate=0.3, max_steps=5, saturate=True,
             form="list", preset_state=True, inputs=True),
        dict(seed=4, learn=0, probe=True, steps=16, rate=0.4, max_steps=3, n=5, m=6, form="mixed", inputs=True,
             gen_rate=0.3, gen_seed=0xBB67AE85),
    ]),
    # Odd widths (S = 12: probes in 2 bytes; W = 6 with 64 lanes: one 48-byte weight word a row, wider
    # than the core's other words, as on the ECP5 boards), m not a multiple of 8, n = 64: records as
    # address lists (<= 2 spikes) and bitmaps, tables deep enough for OVERFLOW, probe records in
    # chunks of 24, a ULX3S-like 25 MHz clock at 5 cycles per bit.
    "wide": (CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=64), 25_000_000, 5_000_000, 24, [
        dict(seed=11, learn=1, probe=True, steps=14, rate=0.1, max_steps=6, plastic_all=True, wide_bounds=True,
             inputs=True, gen_rate=0.1, gen_seed=0x3C6EF372),
        dict(seed=12, learn=0, probe=False, steps=20, rate=0.05, max_steps=20, form="mixed", gen_rate=0.05),
        dict(seed=13, learn=1, trace_mode=1, probe=True, steps=10, rate=0.2, max_steps=4, n=40, m=13,
             form="list", preset_state=True, inputs=True, gen_rate=0.2, gen_seed=0xA54FF53A),
        # Few neurons can fire: 0 .. 6 spikes per step, so records of both forms and the tie (3 spikes);
        # quiet inputs, so some input records are empty address lists.
        dict(seed=14, learn=1, probe=False, steps=16, rate=0.03, max_steps=16, plastic_all=True, wide_bounds=True,
             inputs=True, overrides={"threshold": [2047] * 58 + [80] * 6, "decay_mem": [1024] * 64}),
    ]),
}

#: cocotb tests per configuration besides the golden cases.
FIXED_TESTS = 7


def plan(name, cases):
    return [dict(case, name=f"{name}-{index}") for index, case in enumerate(cases)]


def test_plans_exercise_the_link():
    """On the golden model: the cases spike, learn, send both record formats where n allows
    it, split probes into several records where the chunk is small, and generate inputs
    (some the host sent too) in runs that report them and in runs that do not."""
    import numpy as np

    from neurofabric.host.golden import GoldenModel
    from neurofabric.contract.protocol import SpikeFormat
    from neurofabric.host.records import encode_spikes
    from neurofabric.sim.core_cocotb import case_rates, case_stimulus, random_case_network

    for name, (config, _, _, chunk, cases) in CONFIGS.items():
        formats, input_formats, spikes, changed, chunked = set(), set(), 0, 0, False
        generated = {True: 0, False: 0}
        for case in plan(name, cases):
            net = random_case_network(config, case)
            golden = GoldenModel(net)
            rates = case_rates(net, case)
            if case.get("gen_seed") is not None:
                golden.set_seed(case["gen_seed"])
            before = golden.weights.copy()
            for t, inputs in enumerate(case_stimulus(net, case)):
                fired = np.flatnonzero(golden.step(inputs, rates))
                spikes += len(fired)
                formats.add(encode_spikes(t, fired, config.n)[4])
                generated[bool(case.get("inputs"))] += int((golden.u & ~inputs).sum())
                if case.get("inputs"):
                    input_formats.add(encode_spikes(t, np.flatnonzero(golden.u), config.m)[4])
            changed += int((golden.weights != before).sum())
            chunked |= bool(case.get("probe")) and net.n > (chunk or probe_chunk_neurons(config.S))
        assert spikes > 20 * len(cases) and changed > 10, (name, spikes, changed)
        assert generated[True] > 20 and generated[False] > 20, (name, generated)
        assert SpikeFormat.BITMAP in input_formats, name
        if config.n >= 32:
            assert formats == {SpikeFormat.BITMAP, SpikeFormat.ADDRESSES}, (name, formats)
            assert input_formats == {SpikeFormat.BITMAP, SpikeFormat.ADDRESSES}, (name, input_formats)
            assert chunked, name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_link_through_the_uart(name, tmp_path):
    config, clk_hz, baud, chunk, cases = CONFIGS[name]
    model = top_model(config, clk_hz, baud, probe_chunk=chunk)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan(name, cases)))
    tests, failures, messages = run_cocotb(model, "neurofabric.sim.link_cocotb",
                                           {"NF_PLAN": str(plan_path), **top_env(model)}, test_dir=tmp_path / "run")
    assert failures == 0, f"{failures} of {tests} cocotb tests failed:\n" + "\n".join(m[:3000] for m in messages[:5])
    assert tests == FIXED_TESTS + len(cases)


def test_top_refuses_a_baud_rate_it_cannot_make():
    from neurofabric.hdl.top import NeurofabricTop
    with pytest.raises(BuildError, match="baud=5000000 cannot be made from clk_hz=12000000"):
        NeurofabricTop(CoreConfig(n=8, m=8, lanes=2), clk_hz=12_000_000, baud=5_000_000)


def test_link_refuses_what_the_protocol_cannot_carry():
    from neurofabric.hdl.link import Link
    with pytest.raises(BuildError, match="probe_chunk=300 outside 1 .. 253"):
        Link(CoreConfig(n=8, m=8, lanes=2), clk_hz=12_000_000, baud=3_000_000, probe_chunk=300)
    with pytest.raises(BuildError, match="n=8192: a step record"):
        Link(CoreConfig(n=8192, m=8, lanes=8), clk_hz=12_000_000, baud=3_000_000)
    assert probe_chunk_neurons(16) == 253


def test_top_verilog_names_the_ports_the_board_harness_uses(tmp_path):
    import re

    from neurofabric.sim.link_build import top_verilog
    path = top_verilog(CoreConfig(n=8, m=8, lanes=2), build_root=tmp_path)
    text = path.read_text()
    ports = re.search(r"module nf_top\((.*?)\);", text, re.S).group(1)
    assert {p.strip() for p in ports.split(",")} == {"clk", "rst", "uart_rx", "uart_tx", "busy", "led_running",
                                                     "led_error"}
    assert path.parent.name.startswith("top-n8_m8_S16_W8_T8_l2") and "-c12000000-b3000000-" in path.parent.name
    assert top_verilog(CoreConfig(n=8, m=8, lanes=2), build_root=tmp_path) == path   # cached
