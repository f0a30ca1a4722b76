"""`hdl.registers.RegisterFile` against the device description, in the Amaranth simulator.

The expected values are computed from `contract.device.REGISTERS` by the rules the
protocol documents (a register keeps the low bits of a write, a used count is
clamped to the core's size, read-only registers ignore writes), not from the
gateware.
"""

import random

import pytest
from amaranth.sim import Simulator

from neurofabric.contract.device import REGISTERS
from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.hdl.registers import RegisterFile


def expected_after_write(register, shape, word, old):
    """What a read returns after writing `word` (a 32-bit value) to `register`."""
    if register.read_only:
        return old
    bits = register.bits(shape)
    if register.counts:
        return min(word, getattr(shape, register.counts))
    return word & ((1 << bits) - 1)


def reset_word(register, shape):
    """What a read returns after reset (signed values as two's complement of their width)."""
    value = register.constant(shape) if register.read_only else register.reset_value(shape)
    if value is None:         # driven by the core: the test drives 0
        return 0
    return value & ((1 << register.bits(shape)) - 1) if register.signed else value


@pytest.mark.parametrize("kwargs", [dict(n=8, m=6, lanes=2), dict(n=64, m=20, S=12, W=6, T=5, lanes=4),
                                    dict(n=3, m=2, S=2, W=2, T=1, lanes=1)])
def test_register_file_is_the_description(kwargs):
    config = CoreConfig(**kwargs)
    shape = config.shape
    dut = RegisterFile(config)
    rng = random.Random(config.key())

    async def bench(ctx):
        async def read(address):
            ctx.set(dut.read_addr, address)
            return ctx.get(dut.read_data)

        values = {}
        for address, register in enumerate(REGISTERS):
            values[address] = await read(address)
            assert values[address] == reset_word(register, shape), register.name
        assert await read(len(REGISTERS)) == 0 and await read(31) == 0
        for _ in range(6):
            for address, register in enumerate(REGISTERS):
                word = rng.choice([0, 1, (1 << 32) - 1, rng.randrange(1 << 32), shape.n + 1, shape.m + 1])
                ctx.set(dut.write_addr, address)
                ctx.set(dut.write_data, word)
                ctx.set(dut.write, 1)
                assert ctx.get(dut.sizes_written) == bool(register.counts), register.name
                assert ctx.get(dut.seed_written) == (register.name == "seed"), register.name
                await ctx.tick()
                ctx.set(dut.write, 0)
                values[address] = expected_after_write(register, shape, word, values[address])
                assert await read(address) == values[address], (register.name, word)
            # Every other register kept its value.
            for address in values:
                assert await read(address) == values[address], REGISTERS[address].name
        # A write to an address past the registers changes nothing.
        ctx.set(dut.write_addr, len(REGISTERS))
        ctx.set(dut.write_data, 5)
        ctx.set(dut.write, 1)
        await ctx.tick()
        for address in values:
            assert await read(address) == values[address]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_seed_resets_to_1_and_keeps_all_32_bits_of_a_write():
    """The generator's seed (spec 3: 1 .. 2^32 - 1): reset 1, every bit of a write kept, the strobe
    that tells the core to load g with it."""
    config = CoreConfig(n=4, m=4, lanes=2)
    dut = RegisterFile(config)
    address = [r.name for r in REGISTERS].index("seed")

    async def bench(ctx):
        assert ctx.get(dut.seed) == 1
        for word in (0xFFFFFFFF, 0x80000000, 2463534242):
            ctx.set(dut.write_addr, address)
            ctx.set(dut.write_data, word)
            ctx.set(dut.write, 1)
            assert ctx.get(dut.seed_written)
            await ctx.tick()
            ctx.set(dut.write, 0)
            assert ctx.get(dut.seed_written) == 0
            assert ctx.get(dut.seed) == word
            ctx.set(dut.read_addr, address)
            assert ctx.get(dut.read_data) == word

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_signed_registers_hold_their_value_signed():
    config = CoreConfig(n=4, m=4, W=6, lanes=2)
    dut = RegisterFile(config)

    async def bench(ctx):
        assert ctx.get(dut.w_min) == -32 and ctx.get(dut.w_max) == 31
        ctx.set(dut.write_addr, [r.name for r in REGISTERS].index("w_min"))
        ctx.set(dut.write_data, 0x3F)           # -1 as 6-bit two's complement
        ctx.set(dut.write, 1)
        await ctx.tick()
        assert ctx.get(dut.w_min) == -1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
