"""The single-port weight memory (`weight_memory="spram"`): the SPRAM model and its
tiling in the Amaranth simulator against a dictionary, and the whole core under
Verilator against the golden model, with the behavioural SPRAM model and with
Yosys' simulation model of the real `SB_SPRAM256KA` primitive."""


import numpy as np
import pytest
from amaranth.sim import Simulator

from neurofabric.hdl.core import Core
from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.hdl.spram import POISON, SinglePortRAM, SPRAMModel, TwoBankMemory, spram_tiles
from neurofabric.host.golden import GoldenModel
from neurofabric.sim.core_cocotb import case_stimulus, random_case_network
from neurofabric.sim.verilator import core_model

from .test_core_rtl import run_plan

from .test_core_rtl import make_plan


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


# -- the memory blocks in the Amaranth simulator --------------------------------------

def test_spram_model_reads_one_cycle_later_holds_and_poisons_after_a_write():
    dut = SPRAMModel(depth=16)

    async def bench(ctx):
        async def access(addr, en=1, we=0, wdata=0, mask=0b1111):
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, en)
            ctx.set(dut.we, we)
            ctx.set(dut.wdata, wdata)
            ctx.set(dut.mask, mask)
            await ctx.tick()
            return ctx.get(dut.rdata)

        await access(3, we=1, wdata=0x1234)
        assert ctx.get(dut.rdata) == POISON
        await access(4, we=1, wdata=0xABCD)
        assert await access(3) == 0x1234
        assert await access(4, en=0) == 0x1234      # no chip select: the data holds
        await access(3, we=1, wdata=0xFFFF, mask=0b0101)
        assert await access(3) == 0x1F3F              # nibbles 0 and 2 written
        assert await access(4) == 0xABCD

    simulate(dut, bench)


@pytest.mark.parametrize("width,depth,tile_depth", [(20, 40, 16), (16, 64, 32), (7, 5, 8)])
def test_single_port_ram_tiles_behave_as_one_memory(width, depth, tile_depth):
    dut = SinglePortRAM(width, depth, tile_depth=tile_depth)
    assert (dut.columns, dut.rows) == spram_tiles(width, depth, tile_depth)
    rng = np.random.default_rng(width * depth)
    expected = {}

    async def bench(ctx):
        last_read = None
        for _ in range(400):
            addr = int(rng.integers(depth))
            op = rng.choice(["read", "write", "idle"])
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, op != "idle")
            ctx.set(dut.we, op == "write")
            value = int(rng.integers(1 << width))
            ctx.set(dut.wdata, value)
            await ctx.tick()
            if op == "write":
                expected[addr] = value
                last_read = None
            elif op == "read":
                last_read = expected.get(addr, 0)
            if last_read is not None:
                assert ctx.get(dut.rdata) == last_read

    simulate(dut, bench)


def test_two_bank_memory_serves_a_read_and_a_write_of_different_banks_in_one_cycle():
    dut = TwoBankMemory(8, 48, bank_bit=2, tile_depth=8)
    rng = np.random.default_rng(3)
    expected = {}

    async def bench(ctx):
        conflicts = 0
        for _ in range(500):
            r_addr, w_addr = (int(a) for a in rng.integers(48, size=2))
            r_en, w_en = (bool(b) for b in rng.random(2) < 0.7)
            value = int(rng.integers(256))
            for port, v in ((dut.r_addr, r_addr), (dut.w_addr, w_addr), (dut.r_en, r_en), (dut.w_en, w_en),
                            (dut.w_data, value)):
                ctx.set(port, v)
            same_bank = (r_addr >> 2) & 1 == (w_addr >> 2) & 1
            conflict = ctx.get(dut.conflict)
            assert conflict == (r_en and w_en and same_bank)
            conflicts += conflict
            await ctx.tick()
            if r_en and not conflict:
                assert ctx.get(dut.r_data) == expected.get(r_addr, 0), (r_addr, w_addr)
            elif r_en:
                assert ctx.get(dut.r_data) == POISON & 0xFF     # the dropped read shows
            if w_en:
                expected[w_addr] = value
        assert conflicts > 50

    simulate(dut, bench)


# -- configuration ---------------------------------------------------------------------

def test_spram_mode_refuses_rows_that_are_not_a_power_of_two_of_words():
    with pytest.raises(ValueError, match="needs n // lanes to be a power of two; n = 12, lanes = 2 give 6"):
        CoreConfig(n=12, m=4, lanes=2, weight_memory="spram")
    with pytest.raises(ValueError, match="weight_memory = 'quad': allowed 'dual', 'spram'"):
        CoreConfig(n=8, m=4, weight_memory="quad")
    assert CoreConfig(n=8, m=4, lanes=2, weight_memory="spram").key().endswith("_spram")


def test_spram_primitives_for_the_iceBreaker_core_fit_and_a_larger_one_is_refused():
    from amaranth.back import rtlil

    text = rtlil.convert(Core(CoreConfig(n=256, m=256, lanes=2, weight_memory="spram"),
                              weight_cells="sb_spram256ka"), name="nf_core", emit_src=False)
    assert text.count("cell \\SB_SPRAM256KA") == 4
    with pytest.raises(ValueError, match="need 8 SB_SPRAM256KA"):
        rtlil.convert(Core(CoreConfig(n=256, m=256, lanes=8, weight_memory="spram"),
                           weight_cells="sb_spram256ka"), name="nf_core", emit_src=False)


def test_auto_cells_follow_the_platform():
    from amaranth.hdl import Fragment
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    core = Core(CoreConfig(n=8, m=8, lanes=2, weight_memory="spram"))
    assert core._cells(ICEBreakerPlatform()) == "sb_spram256ka"
    assert core._cells(ULX3S_85F_Platform()) == "model"
    assert core._cells(None) == "model"
    Fragment.get(core, ICEBreakerPlatform())   # elaborates with the primitives
    with pytest.raises(ValueError, match="weight_cells = 'bram'"):
        Core(CoreConfig(n=8, m=8), weight_cells="bram")


# -- the whole core under Verilator ----------------------------------------------------

#: name -> (config, weight cells, number of random cases, case template)
CONFIGS = {
    # Two lanes of 8 bits: one SPRAM word per weight word, as on the iCEBreaker
    # (with its short pipeline: a word written back one cycle after its read), and
    # like it without spike counters.
    "spram_l2": (CoreConfig(n=16, m=16, lanes=2, weight_memory="spram", spike_counters=False), "model", 60,
                 dict(steps=20, rate=0.3)),
    # Odd m and narrow widths: the input-to-neuron jump of the potentiation sweep
    # repeats a row parity; a 4 x 5-bit word pads its SPRAM tiles; networks
    # smaller than the core. The long pipeline: a word written back three cycles
    # after its read.
    "spram_odd": (CoreConfig(n=8, m=5, S=12, W=5, T=4, lanes=4, weight_memory="spram"), "model", 40,
                  dict(steps=20, rate=0.4)),
    # Yosys' simulation model of SB_SPRAM256KA itself: the primitives' wiring.
    "spram_cells": (CoreConfig(n=8, m=8, lanes=2, weight_memory="spram"), "sb_spram256ka", 16,
                    dict(steps=20, rate=0.4)),
}

#: The configurations built with the long pipeline (the others as on the iCEBreaker).
LONG = {"spram_odd"}


def spram_plan(name, config, count, template):
    """`make_plan`'s cases; on a core with odd m, every other network has an even number
    of inputs, so that the potentiation sweep's jump from the last input row (odd) to
    the first neuron row m (odd) hits the same bank and must wait a cycle."""
    plan = make_plan(name, config, count, template)
    if config.m % 2:
        rng = np.random.default_rng(11)
        for case in plan[1::2]:
            case["m"] = int(rng.choice(range(2, config.m, 2)))
            case["n"] = int(rng.integers(1, config.n + 1))
    return plan


def test_spram_plans_exercise_the_schedule():
    """Odd and even rows in D, uneven, with learning on: the bank alternation and its bubbles."""
    for name, (config, _cells, count, template) in CONFIGS.items():
        uneven = learning = 0
        for case in spram_plan(name, config, count, template):
            net = random_case_network(config, case)
            learning += net.learn
            for inputs in case_stimulus(net, case):
                rows = np.flatnonzero(inputs)
                uneven += abs(int((rows % 2 == 0).sum()) - int((rows % 2 == 1).sum())) > 1
        assert learning >= count // 2 - 1, name
        assert uneven > count, (name, uneven)


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(CONFIGS))
def test_spram_core_matches_golden(name, tmp_path):
    config, cells, count, template = CONFIGS[name]
    model = core_model(config, weight_cells=cells, pipeline="long" if name in LONG else "short")
    plan = spram_plan(name, config, count, template)
    assert len(plan) == count
    run_plan(model, plan, tmp_path)


def test_golden_reference_changes_weights_in_spram_plans():
    config, _cells, count, template = CONFIGS["spram_l2"]
    changed = 0
    for case in spram_plan("spram_l2", config, count, template)[:10]:
        net = random_case_network(config, case)
        golden = GoldenModel(net)
        before = golden.weights.copy()
        for inputs in case_stimulus(net, case):
            golden.step(inputs)
        changed += int((golden.weights != before).sum())
    assert changed > 50
