"""The link's controller (hdl/mcu.py) in the Amaranth simulator, against a Python model
of its ALU, and its assembler's checks."""

import random

import pytest
from amaranth.sim import Simulator

from neurofabric.hdl.mcu import CODE_DEPTH, MCU, PORT_BASE, PORTS, STACK_DEPTH, X, Assembler, AssemblyError

OUT = PORT_BASE + 1          # a port the tests write results to
SLOW = PORT_BASE + 2         # a port that makes reads and writes wait


def run(program, data=(), data_depth=512, cycles=20000, wait_cycles=0, read_value=0):
    """Run `program`; return the bytes written to OUT, and per SLOW access (read or
    write) the number of cycles it waited and how often its transfer happened."""
    dut = MCU(program, data, data_depth)
    out, slow = [], []

    async def bench(ctx):
        waited = 0
        for _ in range(cycles):
            port = ctx.get(dut.port_addr)
            access = ctx.get(dut.port_rd) or ctx.get(dut.port_wr)
            if access and port == SLOW - PORT_BASE:
                ctx.set(dut.port_wait, waited < wait_cycles)
                ctx.set(dut.port_rdata, read_value)
                if waited == wait_cycles:
                    slow.append((waited, ctx.get(dut.port_wdata)))
                    waited = 0
                else:
                    waited += 1
            else:
                ctx.set(dut.port_wait, 0)
            if ctx.get(dut.port_wr) and port == OUT - PORT_BASE:
                out.append(ctx.get(dut.port_wdata))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, slow


def alu_model(fn, a, b, c):
    """(A, Z, C) after `fn` as the module docstring defines it."""
    if fn in ("add", "adc"):
        total = a + b + (c if fn == "adc" else 0)
        return total & 0xFF, (total & 0xFF) == 0, total > 0xFF
    if fn in ("sub", "sbc", "cmp"):
        total = a + (~b & 0xFF) + (c if fn == "sbc" else 1)
        result = a if fn == "cmp" else total & 0xFF
        return result, (total & 0xFF) == 0, total > 0xFF
    result = {"ld": b, "and": a & b, "or": a | b}[fn]
    return result, result == 0, c


def emit_flags(asm):
    """Write A, Z and C to OUT (keeps C)."""
    done, zero = asm.unique(), asm.unique()
    asm.st(OUT)
    asm.jz(zero)
    asm.ldi(0)
    asm.jmp(done)
    asm.label(zero)
    asm.ldi(1)
    asm.label(done)
    asm.st(OUT)
    asm.ldi(0)
    asm.adci(0)
    asm.st(OUT)


@pytest.mark.parametrize("seed", range(2))
def test_alu_and_flags_match_the_model(seed):
    rng = random.Random(seed)
    asm = Assembler()
    operand = asm.var("operand")
    expected = []
    for _ in range(30):
        fn = rng.choice(["ld", "add", "adc", "sub", "sbc", "and", "or", "cmp"])
        a, b, c = rng.randrange(256), rng.choice([0, 1, 0xFF, rng.randrange(256)]), rng.randrange(2)
        immediate = rng.random() < 0.5
        # C from an addition that carries or not; the flags of the setup do not matter.
        asm.ldi(0xFF if c else 0)
        asm.addi(1)
        if not immediate:
            asm.ldi(b)
            asm.st(operand)
        asm.ldi(a)
        name = {"and": "and_", "or": "or_"}.get(fn, fn)
        if immediate:
            getattr(asm, name + "i" if fn not in ("and", "or") else fn + "i")(b)
        else:
            getattr(asm, name)(operand)
        emit_flags(asm)
        result, z, carry = alu_model(fn, a, b, c)
        expected += [result, int(z), int(carry)]
    asm.label("end")
    asm.jmp("end")
    out, _ = run(asm.assemble(), asm.data())
    assert out == expected


def test_shifts_index_register_and_indexed_addressing():
    asm = Assembler(data_depth=2048)
    table = asm.var("table", 4, [10, 20, 30, 40])
    high = asm.var("high", 1000)              # past the port window: reached through X only
    assert table < PORT_BASE and high >= PORT_BASE + PORTS
    asm.ldi(0x81); asm.shr(); emit_flags(asm)          # 0x40, Z 0, C 1
    asm.ldi(0x40); asm.shl(); asm.shl(); emit_flags(asm)   # 0x00, Z 1, C 1 (bit 7 of 0x80)
    asm.ldx(table); asm.ld(X + 3); asm.st(OUT)         # 40
    asm.inx(); asm.ld(X + 1); asm.st(OUT)              # 30
    asm.txa(); asm.subi(table); asm.st(OUT)            # 1
    asm.ldi(2); asm.tax(); asm.ld(table + X); asm.st(OUT)   # 30
    asm.ldx(high + 990); asm.ldi(0x5A); asm.st(X + 5); asm.ldi(0); asm.ld(X + 5); asm.st(OUT)   # 0x5A
    asm.ldi(high % 256); asm.tax(high // 256); asm.ld(X + 995); asm.st(OUT)                   # 0x5A again
    asm.label("end")
    asm.jmp("end")
    out, _ = run(asm.assemble(), asm.data(), data_depth=2048)
    assert out == [0x40, 0, 1, 0, 1, 1, 40, 30, 1, 30, 0x5A, 0x5A]


def test_calls_nest_as_deep_as_the_stack_and_return():
    asm = Assembler()
    asm.call("one"); asm.ldi(99); asm.st(OUT)
    asm.label("end")
    asm.jmp("end")
    for level, name in enumerate(["one", "two", "three"][:STACK_DEPTH]):
        asm.label(name)
        asm.ldi(level); asm.st(OUT)
        if level + 1 < STACK_DEPTH:
            asm.call(["one", "two", "three"][level + 1])
        asm.ldi(10 + level); asm.st(OUT)
        asm.ret()
    out, _ = run(asm.assemble())
    levels = list(range(STACK_DEPTH))
    assert out == levels + [10 + level for level in reversed(levels)] + [99]


def test_a_waiting_port_transfers_once():
    asm = Assembler()
    asm.ldi(7); asm.st(SLOW)                  # a write that waits
    asm.ld(SLOW); asm.st(OUT)                 # a read that waits
    asm.ldi(1); asm.st(OUT)
    asm.label("end")
    asm.jmp("end")
    out, slow = run(asm.assemble(), wait_cycles=5, read_value=0x33)
    assert out == [0x33, 1]
    assert slow == [(5, 7), (5, 7)]           # each access waited 5 cycles, then happened once


def test_assembler_refuses_what_does_not_fit():
    asm = Assembler()
    with pytest.raises(AssemblyError, match="immediate 256 outside -128 .. 255"):
        asm.ldi(256)
    with pytest.raises(AssemblyError, match="address 1024 outside 0 .. 1023"):
        asm.ld(1024)
    with pytest.raises(AssemblyError, match="offset 1024 outside 0 .. 1023"):
        asm.ld(X + 1024)
    asm.label("a")
    with pytest.raises(AssemblyError, match="label 'a' is defined twice"):
        asm.label("a")
    asm.var("v")
    with pytest.raises(AssemblyError, match="variable 'v' is defined twice"):
        asm.var("v")
    with pytest.raises(AssemblyError, match="does not fit the 512-byte data RAM"):
        Assembler(data_depth=512).var("big", 600)
    asm.jmp("nowhere")
    with pytest.raises(AssemblyError, match="jmp: undefined label 'nowhere'"):
        asm.assemble()

    long = Assembler()
    for _ in range(CODE_DEPTH + 1):
        long.inx()
    with pytest.raises(AssemblyError, match=f"{CODE_DEPTH + 1} instructions, at most {CODE_DEPTH} fit"):
        long.assemble()

    deep = Assembler()
    names = [f"f{i}" for i in range(STACK_DEPTH + 1)]
    deep.call(names[0])
    deep.label("end")
    deep.jmp("end")
    for here, there in zip(names, names[1:] + [None]):
        deep.label(here)
        if there:
            deep.call(there)
        deep.ret()
    message = f"nests calls {STACK_DEPTH + 1} deep; the return stack holds {STACK_DEPTH}"
    with pytest.raises(AssemblyError, match=message):
        deep.assemble()


def test_return_addresses_left_behind_at_a_top_level_label_do_not_count():
    # main calls f0, which calls down to the stack's depth and then jumps back to main
    # without returning: without the top-level label, every round would look one deeper.
    asm = Assembler()
    names = [f"f{i}" for i in range(STACK_DEPTH)]
    asm.label("main", top_level=True)
    asm.call(names[0])
    asm.jmp("main")
    for level, name in enumerate(names):
        asm.label(name)
        if level + 1 < STACK_DEPTH:
            asm.call(names[level + 1])
        if level == 0:
            asm.jmp("main")
        else:
            asm.ret()
    words = asm.assemble()
    assert asm.call_depth(words) == STACK_DEPTH


def test_a_program_that_calls_in_a_loop_is_refused_not_followed_forever():
    a = Assembler()
    a.label("loop")
    a.call("f")
    a.label("f")
    a.jmp("loop")
    with pytest.raises(AssemblyError, match="nests calls"):
        a.assemble()
