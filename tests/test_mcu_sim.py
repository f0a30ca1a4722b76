"""The controller's instruction-set simulator (hdl/mcu_sim.py) against `MCU` in Amaranth's
simulator, its disassembler and listing, and the link firmware run on it."""

import dataclasses
import functools
import random
import subprocess
import sys
import time

import pytest
from amaranth.sim import Simulator

from neurofabric.contract.errors import BuildError
from neurofabric.contract.protocol import (
    HELLO_REPLY_FIELDS, MAX_PAYLOAD, PROTOCOL_VERSION, REPLY_FLAG, STATUS_REPLY_FIELDS, Command, Family, RunFlags,
    SpikeFormat, Status, memory_tables, pack_fields, probe_chunk_neurons, unpack_fields,
)
from neurofabric.contract.model import CORE_MODEL_VERSION
from neurofabric.hdl.core_ports import CoreConfig, Op, Reg, Space
from neurofabric.hdl.link import TABLE_SPACES, default_build_id
from neurofabric.hdl.mcu import MCU, PORT_BASE, X, Assembler, AssemblyError, _Fn
from neurofabric.hdl.mcu_sim import (
    LinkPorts, McuSim, alu, assemble_text, disassemble, disassemble_word, link_firmware, link_port_names, listing,
)

# -- random programs ---------------------------------------------------------------------

ALU = ["ld", "add", "adc", "sub", "sbc", "and", "or", "cmp"]
JUMPS = ["jmp", "jz", "jnz", "jc", "jnc", "call"]


def random_program(rng, length, data_depth):
    """`length` random instructions as text, every operand valid: RAM and port addresses,
    X + n, jumps within the program (calls nest as deep as they like)."""
    def memory():
        pick = rng.random()
        if pick < 0.35:
            return str(PORT_BASE + rng.randrange(8))           # a port
        if pick < 0.6:
            return f"X + {rng.choice([0, 1, 2, rng.randrange(1024)])}"
        return str(rng.randrange(min(data_depth, PORT_BASE)))

    lines = [f"ldi {rng.randrange(256)}"]       # not a RET to the empty stack's 0: that would spin at 0
    for _ in range(length - 1):
        pick = rng.random()
        if pick < 0.24:
            lines.append(f"{rng.choice(ALU)}i {rng.randrange(256)}")
        elif pick < 0.55:
            lines.append(f"{rng.choice(ALU)} {memory()}")
        elif pick < 0.7:
            lines.append(f"st {memory()}")
        elif pick < 0.9:
            # RET seldom: with the stack's bottom entry repeated it can spin in a small loop.
            op = rng.choice(["ldx", "inx", "tax", "txa", "shr", "shl"] * 3 + ["ret"])
            if op == "ldx":
                # X near a port window or the RAM's end now and then: indexed accesses wrap there.
                op += f" {rng.choice([rng.randrange(2048), PORT_BASE - 2, 2047, data_depth - 1])}"
            elif op == "tax":
                op += f" {rng.randrange(8)}"
            lines.append(op)
        else:
            # Mostly short jumps forward, so that a program seldom settles in a small loop;
            # past the end the program counter wraps around the ROM.
            here = len(lines)
            target = (here + rng.randrange(1, 24)) % length if rng.random() < 0.85 else rng.randrange(length)
            lines.append(f"{rng.choice(JUMPS)} {target}")
    return lines


class RandomPorts:
    """Ports that wait 0 .. 5 cycles per access and read random bytes; a log of every
    transfer `(cycle, port, 'r' or 'w', value)`. `now()` is the cycle being executed."""

    def __init__(self, seed, now):
        self.rng = random.Random(seed)
        self.now = now
        self.log = []
        self._left = None

    def wait(self, port, write, value):
        if self._left is None:
            self._left = self.rng.choice([0, 0, 0, 1, 2, 5])
        if self._left:
            self._left -= 1
            return True
        self._left = None
        return False

    def read(self, port):
        value = self.rng.randrange(256)
        self.log.append((self.now(), port, "r", value))
        return value

    def write(self, port, value):
        self.log.append((self.now(), port, "w", value))


CYCLES = 3000
SEEDS = range(16)


def case(seed):
    rng = random.Random(seed)
    data_depth = [512, 2048][seed % 2]
    # Every fourth program is longer than 1024 instructions: an 11-bit program counter.
    lines = random_program(rng, 1300 if seed % 4 == 3 else 256, data_depth)
    if len(lines) > 1024:
        lines[1] = f"jmp {rng.randrange(1024, 1300)}"     # into the part past a 10-bit pc
    words = assemble_text(lines)
    data = [rng.randrange(256) for _ in range(data_depth)]
    return words, data, data_depth


@functools.cache
def gateware_run(seed):
    """`MCU` in Amaranth's simulator: the state after every instruction, the port log,
    and the RAM at every instruction boundary's cycle count (`{cycles: ram}` for the
    last few)."""
    words, data, data_depth = case(seed)
    dut = MCU(words, data, data_depth)
    trace, rams = [], {}
    cycle = [0]
    ports = RandomPorts(seed, lambda: cycle[0])

    async def bench(ctx):
        regs = dut.registers
        for t in range(CYCLES + 20):
            cycle[0] = t
            stall = False
            read, write = ctx.get(dut.port_rd), ctx.get(dut.port_wr)
            if read or write:
                port, value = ctx.get(dut.port_addr), ctx.get(dut.port_wdata)
                stall = ports.wait(port, bool(write), value)
                ctx.set(dut.port_wait, stall)
                if not stall:
                    if read:
                        ctx.set(dut.port_rdata, ports.read(port))
                    else:
                        ports.write(port, value)
            else:
                ctx.set(dut.port_wait, 0)
            boundary = ctx.get(regs["advance"]) and ctx.get(regs["booted"])
            await ctx.tick()
            if boundary:
                trace.append((t + 1, ctx.get(regs["pc"]), ctx.get(regs["a"]), ctx.get(regs["x"]),
                              ctx.get(regs["z"]), ctx.get(regs["c"]), tuple(ctx.get(s) for s in regs["stack"])))
                if t + 1 > CYCLES:
                    rams[t + 1] = [ctx.get(regs["ram"][i]) for i in range(data_depth)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return trace, ports.log, rams


def isa_run(seed, sim_class=McuSim, ports_class=RandomPorts):
    """The same on the instruction-set simulator, up to the first instruction that ends past CYCLES."""
    words, data, data_depth = case(seed)
    holder = []
    ports = ports_class(seed, lambda: holder[0].cycles)
    sim = sim_class(words, data, data_depth, ports)
    holder.append(sim)
    trace = []
    while sim.cycles <= CYCLES:
        sim.step()
        trace.append(sim.state())
    return trace, ports.log, sim.ram


def compare(seed, **isa):
    """The first difference between the gateware and the simulator, or None."""
    hw_trace, hw_log, hw_rams = gateware_run(seed)
    trace, log, ram = isa_run(seed, **isa)
    end = trace[-1][0]
    hw_trace = [state for state in hw_trace if state[0] <= end]
    for index, (hw, sw) in enumerate(zip(hw_trace, trace)):
        if hw != sw:
            return f"instruction {index}: gateware {hw}, simulator {sw}"
    if len(hw_trace) != len(trace):
        return f"{len(hw_trace)} instructions in the gateware, {len(trace)} in the simulator"
    before = [entry for entry in log if entry[0] < end]
    if [entry for entry in hw_log if entry[0] < end] != before:
        return "port transfers differ"
    if hw_rams.get(end) != ram:
        return "data RAM differs"
    return None


@pytest.mark.parametrize("seed", SEEDS)
def test_simulator_matches_the_gateware_instruction_by_instruction(seed):
    hw_trace, _, _ = gateware_run(seed)
    assert len(hw_trace) > 400
    assert compare(seed) is None


def test_random_programs_cover_the_instruction_set_ports_and_the_stack():
    words = [w for seed in SEEDS for w in case(seed)[0]]
    mnemonics = {disassemble_word(w).split()[0] for w in words}
    assert mnemonics == {*(f + "i" for f in ALU), *ALU, "st", "ldx", "inx", "tax", "txa", "shr", "shl", "ret",
                         *JUMPS}
    runs = [isa_run(seed) for seed in SEEDS]
    # Port traffic (reads and writes), accesses that waited (a gap of more than 2 cycles
    # between an access and the next instruction), calls that fill the stack, a wrapped pc.
    log = [entry for _, seed_log, _ in runs for entry in seed_log]
    assert len(log) > 800 and {kind for _, _, kind, _ in log} == {"r", "w"}
    assert sum(len({state[6] for state in trace}) for trace, _, _ in runs) > 20
    assert any(b[0] - a[0] > 2 for trace, _, _ in runs for a, b in zip(trace, trace[1:]))
    assert any(state[1] >= 256 for trace, _, _ in runs for state in trace)
    assert any(state[1] >= 1024 for trace, _, _ in runs for state in trace)     # past a 10-bit pc


class CarryInvertedOnSub(McuSim):
    @staticmethod
    def alu(fn, a, b, c):
        result, z, carry = alu(fn, a, b, c)
        return result, z, carry ^ 1 if fn == _Fn.SUB else carry


class AdcWithoutCarry(McuSim):
    @staticmethod
    def alu(fn, a, b, c):
        return alu(_Fn.ADD if fn == _Fn.ADC else fn, a, b, c)


class WaitsOnce(RandomPorts):
    """Ports that wait at most one cycle: the same transfers, other cycle counts."""

    def wait(self, port, write, value):
        waiting = super().wait(port, write, value)
        if waiting:
            self._left = 0
        return waiting


@pytest.mark.parametrize("wrong", [dict(sim_class=CarryInvertedOnSub), dict(sim_class=AdcWithoutCarry),
                                   dict(ports_class=WaitsOnce)], ids=["sub-carry", "adc-carry", "wait-cycles"])
def test_a_wrong_simulator_is_caught(wrong):
    caught = [seed for seed in SEEDS[:4] if compare(seed, **wrong) is not None]
    assert caught, "the comparison let a wrong simulator through"


def test_simulator_errors_name_the_address():
    McuSim(assemble_text(["ld 700", "ld X + 1000"]), data_depth=768).step()      # inside the RAM
    sim = McuSim(assemble_text(["ldx 1900", "ld X + 1000"]), data_depth=768)
    sim.step()
    with pytest.raises(BuildError, match="data address 852 reaches RAM word 852, outside the 768-byte data RAM"):
        sim.step()
    with pytest.raises(BuildError, match="program: 2049 instructions, at most 2048"):
        McuSim([0] * 2049)


# -- disassembler, text assembler, listing -------------------------------------------------

def test_every_word_disassembles_and_assembles_back():
    words = list(range(1 << 16))
    assert assemble_text(disassemble(words)) == words


def test_text_assembles_like_the_assembler():
    asm = Assembler()
    counter = asm.var("counter", 2)
    asm.label("loop")
    for method, operand in (("ld", counter), ("addi", 1), ("st", counter), ("ld", counter + 1), ("adci", 0),
                            ("st", counter + 1), ("ldx", counter), ("ld", X + 1), ("and_", X + 1), ("tax", 3),
                            ("shr", None), ("jnz", "loop"), ("call", "f"), ("jmp", "loop")):
        getattr(asm, method)(*([] if operand is None else [operand]))
    asm.label("f")
    asm.ret()
    text = """
    loop: ld 0
        addi 1
        st 0          ; the low byte
        ld 1
        adci 0
        st 1
        ldx 0
        ld X + 1
        and X + 1
        tax 3
        shr
        jnz loop
        call f
        jmp 0
    f:  ret
    """
    assert assemble_text(text) == asm.assemble()
    with pytest.raises(AssemblyError, match="line 1: unknown instruction 'nop'"):
        assemble_text("nop")
    with pytest.raises(AssemblyError, match="immediate 300 outside -128 .. 255"):
        assemble_text("ldi 300")
    with pytest.raises(AssemblyError, match="jmp: undefined label 'nowhere'"):
        assemble_text("jmp nowhere")


FIRMWARE_CONFIGS = [CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2), CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4),
                    CoreConfig(n=300, m=260, S=16, W=8, T=8, lanes=4), CoreConfig(n=16, m=8),
                    CoreConfig(n=2040, m=2040, S=16, W=8, T=8, lanes=8)]     # the largest the link serves


@pytest.mark.parametrize("config", FIRMWARE_CONFIGS, ids=lambda c: f"n{c.n}-m{c.m}-S{c.S}")
def test_link_firmware_disassembles_and_assembles_back(config):
    from neurofabric.hdl.mcu import CODE_DEPTH
    program, words, data, data_depth = link_firmware(config)
    # One iCE40 block RAM of data, two for the largest cores (their bitmap and record mask).
    assert len(words) <= CODE_DEPTH and len(data) <= data_depth == (512 if config.n <= 1024 else 1024)
    assert assemble_text(disassemble(words)) == words
    assert not any(line.startswith(".word") for line in disassemble(words))


@pytest.mark.parametrize("config", FIRMWARE_CONFIGS[:2], ids=lambda c: f"n{c.n}-m{c.m}")
def test_listing_names_labels_variables_and_ports(config):
    program, words, _, _ = link_firmware(config)
    text = listing(program, link_port_names(), words)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("; code: "))
    variables, code = lines[1:start], [line for line in lines[start:] if line.startswith("0x")]
    assert lines[0] == f"; data RAM: {len(program.data())} of 512 bytes"
    # Every instruction once, in order, with its word.
    assert [(int(line.split()[0], 16), int(line.split()[1], 16)) for line in code] == list(enumerate(words))
    # Every label just before its instruction.
    for name, address in program.labels.items():
        at = lines.index(f"{name}:")
        following = next(line for line in lines[at:] if line.startswith("0x") and line in code)
        assert int(following.split()[0], 16) == address, name
    # Every variable with its address; names in the operands.
    for name, address in program.vars.items():
        assert any(line.split()[0] == f"{address:#05x}" and line.split()[-1] == name for line in variables), name
    hello = program.labels["c_hello"]
    assert any(line.startswith(f"{hello:#05x}") and "call empty_only" in line for line in code)
    assert "st [TX]" in text and "ld [FLAGS]" in text and "ld h_len + 1" in text and "st [CMD]" in text
    assert "ld [RXH + 1]" in text                                   # a port of several bytes


def test_command_line_prints_the_listing():
    out = subprocess.run([sys.executable, "-m", "neurofabric.hdl.mcu_sim", "--listing", "--neurons", "16",
                          "--inputs", "8"], capture_output=True, text=True, check=True).stdout
    program, words, _, _ = link_firmware(CoreConfig(n=16, m=8, lanes=2))
    assert out == listing(program, link_port_names(), words)
    bad = subprocess.run([sys.executable, "-m", "neurofabric.hdl.mcu_sim", "--neurons", "5000"],
                         capture_output=True, text=True)
    assert bad.returncode == BuildError.exit_code
    assert bad.stderr.count("\n") == 1 and "n=5000" in bad.stderr


# -- the link firmware on the simulator -----------------------------------------------------

def firmware(config, **ports):
    _, words, data, data_depth = link_firmware(config, clk_hz=12_000_000, baud=3_000_000)
    model = LinkPorts(config, **ports)
    return McuSim(words, data, data_depth, model), model


def exchange(sim, ports, *requests):
    """Send the requests, run until the firmware waits for the next; the replies."""
    before = len(ports.replies())
    for request in requests:
        ports.request(*request)
    sim.run(until=ports.quiet, cycles=sim.cycles + 2_000_000)
    assert ports.quiet(), "the firmware did not come back to its main loop"
    return ports.replies()[before:]


def test_firmware_answers_hello_and_echo_in_milliseconds():
    config = CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2)
    started = time.perf_counter()
    sim, ports = firmware(config)
    build = time.perf_counter()
    payload = bytes(random.Random(1).randrange(256) for _ in range(MAX_PAYLOAD - 1))
    hello, echo, empty = exchange(sim, ports, (Command.HELLO, 7), (Command.ECHO, 8, payload), (Command.ECHO, 9))
    elapsed = time.perf_counter() - build
    assert hello[:2] == (Command.HELLO | REPLY_FLAG, 7) and hello[2][0] == Status.OK
    assert unpack_fields(HELLO_REPLY_FIELDS, hello[2], 1) == dict(
        protocol_version=PROTOCOL_VERSION, core_model_version=CORE_MODEL_VERSION, n=8, m=8, state_bits=16,
        weight_bits=8, trace_bits=8, lanes=2, clk_hz=12_000_000, baud=3_000_000, max_payload=MAX_PAYLOAD,
        build_id=default_build_id(config, 12_000_000, 3_000_000))
    assert len(hello[2]) == 1 + sum(size for _, size in HELLO_REPLY_FIELDS)
    assert echo == (Command.ECHO | REPLY_FLAG, 8, bytes([Status.OK]) + payload)
    assert empty == (Command.ECHO | REPLY_FLAG, 9, bytes([Status.OK]))
    # About 6,000 instructions; well under a second even on a loaded machine (milliseconds when idle).
    assert sim.instructions > 3 * len(payload) and elapsed < 1.0, (sim.instructions, elapsed, build - started)


def test_firmware_refuses_as_the_protocol_says():
    sim, ports = firmware(CoreConfig(n=8, m=8, lanes=2))
    replies = exchange(sim, ports, (Command.ECHO, 1, bytes(MAX_PAYLOAD)), (0x06, 2, b"xy"), (Command.HELLO, 3, b"z"),
                       (Command.STATUS, 4, b"z"))
    assert replies == [(Command.ECHO | REPLY_FLAG, 1, bytes([Status.OVERFLOW])),
                       (0x06 | REPLY_FLAG, 2, bytes([Status.UNKNOWN_COMMAND])),
                       (Command.HELLO | REPLY_FLAG, 3, bytes([Status.BAD_LENGTH])),
                       (Command.STATUS | REPLY_FLAG, 4, bytes([Status.BAD_LENGTH]))]
    ports.refuse(Status.BAD_CRC)
    assert exchange(sim, ports) == [(Command.NACK | REPLY_FLAG, 0, bytes([Status.BAD_CRC]))]


def test_firmware_status_reports_the_counters_and_the_core_registers():
    sim, ports = firmware(CoreConfig(n=8, m=8, lanes=2), counters=(1, 2, 0x1234, 4, 0xFFFF))
    ports.memory[(Space.GLOBAL.value, Reg.STEPS_DONE.value)] = 123_456
    ports.memory[(Space.GLOBAL.value, Reg.LAST_STEP_CYCLES.value)] = 789
    ((command, seq, payload),) = exchange(sim, ports, (Command.STATUS, 5))
    assert (command, seq, payload[0]) == (Command.STATUS | REPLY_FLAG, 5, Status.OK)
    assert unpack_fields(STATUS_REPLY_FIELDS, payload, 1) == dict(
        running=0, step=123_456, uart_framing_errors=1, uart_overruns=2, crc_errors=0x1234, format_errors=4,
        dropped_frames=0xFFFF, last_step_cycles=789, lost_records=0)


def test_firmware_writes_and_reads_memory_through_the_core_commands():
    config = CoreConfig(n=16, m=8, S=16, W=8, T=8, lanes=2)
    sim, ports = firmware(config)
    table = next(t for t in memory_tables(config.shape) if t.family == Family.PARAMS and t.table == 0)
    rng = random.Random(3)
    words = [bytes(rng.randrange(256) for _ in range(table.word_bytes)) for _ in range(3)]
    fields = pack_fields((("table", 1), ("address", 4), ("count", 2)), table=0, address=5, count=3)
    write, again, read = exchange(sim, ports, (Command.WRITE_PARAMS, 1, fields + b"".join(words)),
                                  (Command.WRITE_PARAMS, 1, fields + b"".join(words)),     # a retry
                                  (Command.READ_PARAMS, 2, fields))
    assert write == again == (Command.WRITE_PARAMS | REPLY_FLAG, 1, bytes([Status.OK]))
    assert read == (Command.READ_PARAMS | REPLY_FLAG, 2, bytes([Status.OK]) + b"".join(words))
    space = TABLE_SPACES[table.name].value
    writes = [(address, word) for op, s, address, word in ports.commands if op == Op.WRITE.value]
    assert writes == [(5 + i, int.from_bytes(w, "little")) for i, w in enumerate(words)]   # applied once
    assert all(s == space for op, s, _, _ in ports.commands if op == Op.WRITE.value)
    out_of_range = pack_fields((("table", 1), ("address", 4), ("count", 2)), table=0, address=config.n - 1, count=2)
    assert exchange(sim, ports, (Command.READ_PARAMS, 3, out_of_range)) == [
        (Command.READ_PARAMS | REPLY_FLAG, 3, bytes([Status.BAD_ADDRESS]))]


def test_a_run_without_a_core_model_says_so():
    from neurofabric.host.records import encode_run_request
    sim, ports = firmware(CoreConfig(n=8, m=8, lanes=2))
    ports.request(Command.RUN, 1, encode_run_request([[1]], 8))
    with pytest.raises(BuildError, match="the core's steps .* is not modelled by LinkPorts"):
        sim.run(until=ports.quiet, cycles=100_000)


class GoldenCore:
    """The core of `LinkPorts` as the golden model of a random network; `rates` and
    `gen_seed` drive its stimulus generator, and it reports a step's inputs U in a
    random order (the core may report them in any order)."""

    def __init__(self, config, seed, n=None, m=None, rates=None, gen_seed=None):
        from neurofabric.contract.model import Widths
        from neurofabric.host.golden import GoldenModel
        from neurofabric.host.network import random_network
        self.net = random_network(n or config.n, m or config.m, seed=seed, widths=Widths(config.S, config.W, config.T),
                                  density=0.5)
        self.golden = GoldenModel(self.net)
        self.rates = rates
        if gen_seed is not None:
            self.golden.set_seed(gen_seed)
        self._order = random.Random(seed)

    def step(self, sources):
        import numpy as np
        mask = np.zeros(self.net.m, bool)
        mask[list(sources)] = True
        return np.flatnonzero(self.golden.step(mask, self.rates)).tolist()

    @property
    def inputs(self):
        import numpy as np
        u = np.flatnonzero(self.golden.u).tolist()
        self._order.shuffle(u)
        return u

    @property
    def v(self):
        return self.golden.v

    @property
    def i(self):
        return self.golden.i


def expected_run(config, seed, stimulus, probe, chunk, first_step=0, n=None, m=None, inputs=False, **generator):
    """The frames a RUN of `stimulus` answers with, from the golden model and the host's encoders."""
    import numpy as np

    from neurofabric.host.records import encode_probe_record, encode_spikes
    reference = GoldenCore(config, seed, n, m, **generator)
    frames = []
    for t, row in enumerate(stimulus):
        spikes = reference.step(row)
        step = first_step + t
        if inputs:
            frames.append((Command.INPUT_RECORD | REPLY_FLAG, bytes([Status.OK]) + encode_spikes(
                step, np.flatnonzero(reference.golden.u), config.m)))
        frames.append((Command.STEP_RECORD | REPLY_FLAG, bytes([Status.OK]) + encode_spikes(step, spikes, config.n)))
        for first in range(0, reference.net.n, chunk) if probe else ():
            last = min(first + chunk, reference.net.n)
            frames.append((Command.PROBE_RECORD | REPLY_FLAG, bytes([Status.OK]) + encode_probe_record(
                step, first, reference.v[first:last], reference.i[first:last], config.S)))
    frames.append((Command.RUN | REPLY_FLAG, bytes([Status.OK]) + len(stimulus).to_bytes(4, "little")))
    return frames


def generator_rates(m, seed):
    """Rates of every kind for `m` inputs: never, rarely, often and always (65535)."""
    rng = random.Random(seed)
    return [rng.choice([0, 0, 700, 6000, 30000, 65535]) for _ in range(m)]


@pytest.mark.parametrize("config, probe, n, m, inputs", [
    (CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2), False, None, None, False),
    (CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2), True, None, None, False),
    (CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4), False, None, None, False),     # lists and bitmaps
    (CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4), True, 40, 13, False),          # fewer neurons used
    (CoreConfig(n=300, m=260, S=16, W=8, T=8, lanes=4), True, None, None, False),    # two-byte inputs and neurons
    (CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2), False, None, None, True),
    (CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4), True, 40, 13, True),
    (CoreConfig(n=300, m=260, S=16, W=8, T=8, lanes=4), False, None, None, True),    # input lists and bitmaps
    (CoreConfig(n=8, m=2040, S=16, W=8, T=8, lanes=2), True, None, 1500, True),      # inputs in 255 bytes
], ids=["small", "small-probe", "wide", "wide-probe-used", "large-probe", "small-inputs", "wide-probe-used-inputs",
        "large-inputs", "many-inputs-probe"])
def test_firmware_runs_steps_and_sends_the_records_the_host_expects(config, probe, n, m, inputs):
    from neurofabric.host.records import decode_spikes, encode_run_request
    seed = 5
    used_n, used_m = n or config.n, m or config.m
    generator = dict(rates=generator_rates(used_m, seed), gen_seed=0x9E3779B9) if inputs else {}
    sim, ports = firmware(config, core=GoldenCore(config, seed, n, m, **generator))
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = used_n
    rng = random.Random(seed)
    rate = rng.choice([0.02, 0.1, 0.3]) if used_m < 1000 else 0.005    # one RUN request holds the stimulus
    stimulus = [sorted(j for j in range(used_m) if rng.random() < rate) for _ in range(6)]
    if inputs:
        stimulus[2] = []                                    # a step of generated inputs only
    chunk = min(probe_chunk_neurons(config.S), 254)       # Link's default
    flags = int(probe) | (RunFlags.INPUTS if inputs else 0)
    frames = exchange(sim, ports, (Command.RUN, 9, encode_run_request(stimulus, config.m, flags=flags)))
    expected = expected_run(config, seed, stimulus, probe, chunk, n=n, m=m, inputs=inputs, **generator)
    assert [(command, payload) for command, _, payload in frames] == expected
    assert {seq for _, seq, _ in frames} == {9}
    assert ports.fed == stimulus
    if inputs:
        # The inputs reported are the host's and the generator's: more than the host sent.
        reported = [decode_spikes(payload, config.m, 1)[1] for command, _, payload in frames
                    if command == Command.INPUT_RECORD | REPLY_FLAG]
        assert len(reported) == 6 and all(set(host) <= set(u) for host, u in zip(stimulus, reported))
        assert sum(len(u) - len(host) for host, u in zip(stimulus, reported)) > 6
    # A second RUN goes on from the steps done.
    more = [sorted(j for j in range(used_m) if rng.random() < min(rate * 3, 0.3)) for _ in range(3)]
    frames = exchange(sim, ports, (Command.RUN, 10, encode_run_request(more, config.m, flags=flags)))
    assert [payload for _, _, payload in frames][-1] == bytes([Status.OK, 3, 0, 0, 0])
    for code in (Command.STEP_RECORD, Command.INPUT_RECORD) if inputs else (Command.STEP_RECORD,):
        steps = [int.from_bytes(payload[1:5], "little") for command, _, payload in frames
                 if command == code | REPLY_FLAG]
        assert steps == [6, 7, 8], code


def test_firmware_reports_inputs_in_runs_with_and_without_them():
    """A run without INPUTS asks the core for no inputs and sends no INPUT_RECORD, one with
    it sends an INPUT_RECORD before every STEP_RECORD (address lists, where shorter, too)."""
    from neurofabric.host.records import decode_spikes, encode_run_request
    config = CoreConfig(n=64, m=64, S=16, W=8, T=8, lanes=4)
    rates = [65535 if k in (3, 40) else 0 for k in range(64)]          # inputs 3 and 40 every step
    sim, ports = firmware(config, core=GoldenCore(config, 7, rates=rates))
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = config.n
    plain = exchange(sim, ports, (Command.RUN, 1, encode_run_request([[1], []], 64)))
    assert [command & 0x7F for command, _, _ in plain] == [Command.STEP_RECORD, Command.STEP_RECORD, Command.RUN]
    both = exchange(sim, ports, (Command.RUN, 2, encode_run_request([[1], [], [3, 63]], 64,
                                                                   RunFlags.INPUTS | RunFlags.PROBE)))
    assert [command & 0x7F for command, _, _ in both] == [Command.INPUT_RECORD, Command.STEP_RECORD,
                                                          Command.PROBE_RECORD] * 3 + [Command.RUN]
    reported = [decode_spikes(payload, 64, 1)[:2] for command, _, payload in both
                if command == Command.INPUT_RECORD | REPLY_FLAG]
    assert reported == [(2, [1, 3, 40]), (3, [3, 40]), (4, [3, 40, 63])]
    assert both[0][2][5] == SpikeFormat.BITMAP and both[3][2][5] == SpikeFormat.ADDRESSES   # 3 inputs, then 2


def test_firmware_answers_status_and_busy_during_a_run():
    from neurofabric.host.records import encode_run_request
    config = CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2)
    sim, ports = firmware(config, core=GoldenCore(config, 2))
    stimulus = [[0, 3], [], [7]]
    request = encode_run_request(stimulus, config.m)
    frames = exchange(sim, ports, (Command.RUN, 1, request), (Command.STATUS, 2), (Command.HELLO, 3),
                      (Command.RUN, 4, request))
    by_seq = {}
    for command, seq, payload in frames:
        by_seq.setdefault(seq, []).append((command, payload))
    assert set(by_seq) == {1, 2, 3, 4} and frames[-1][:2] == (Command.RUN | REPLY_FLAG, 1)
    status = by_seq[2][0][1]
    assert by_seq[2][0][0] == Command.STATUS | REPLY_FLAG
    assert unpack_fields(STATUS_REPLY_FIELDS, status, 1)["running"] == 1
    assert by_seq[3] == [(Command.HELLO | REPLY_FLAG, bytes([Status.BUSY]))]
    assert by_seq[4] == [(Command.RUN | REPLY_FLAG, bytes([Status.BUSY]))]
    assert by_seq[1][-1][1] == bytes([Status.OK, 3, 0, 0, 0]) and len(ports.fed) == 3
    # The RUN's retry (same command and seq, after it) is answered again without running.
    assert exchange(sim, ports, (Command.RUN, 1, request)) == [(Command.RUN | REPLY_FLAG, 1, by_seq[1][-1][1])]
    assert len(ports.fed) == 3
    # After the run, STATUS says it is over and counts the steps.
    ((_, _, status),) = exchange(sim, ports, (Command.STATUS, 5))
    assert unpack_fields(STATUS_REPLY_FIELDS, status, 1)["running"] == 0
    assert unpack_fields(STATUS_REPLY_FIELDS, status, 1)["step"] == 3


def test_firmware_checks_a_run_request_before_the_first_step():
    from neurofabric.host.records import encode_run_request
    config = CoreConfig(n=8, m=8, S=16, W=8, T=8, lanes=2)
    sim, ports = firmware(config, core=GoldenCore(config, 2))
    good = encode_run_request([[1], [2]], config.m)
    wrong_step = good[:3] + bytes([1]) + good[4:]                   # the first record says step 1
    frames = exchange(sim, ports, (Command.RUN, 1, good[:-1]), (Command.RUN, 2, wrong_step),
                      (Command.RUN, 3, good[:3]), (Command.RUN, 4, good + b"\0"))
    assert [payload for _, _, payload in frames] == [bytes([Status.BAD_LENGTH]), bytes([Status.BAD_VALUE]),
                                                     bytes([Status.BAD_LENGTH]), bytes([Status.BAD_LENGTH])]
    assert ports.fed == []


@pytest.mark.parametrize("config", [CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4),
                                    CoreConfig(n=300, m=260, S=16, W=8, T=8, lanes=4),
                                    CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4, record_filter=False),
                                    CoreConfig(n=300, m=260, S=16, W=8, T=8, lanes=4, record_filter=False)],
                         ids=["n64", "n300", "n64-nofilter", "n300-nofilter"])
def test_firmware_records_the_neurons_set_record_names(config):
    """SET_RECORD takes a bitmap of the n neurons; a RUN with SUBSET sends the spikes of
    those neurons alone (bitmap or address list, whichever is shorter), one without it
    every neuron's; a bad mask is refused and leaves the mask as it was. With the record
    filter the gateware takes the spikes not recorded: the firmware never sees them."""
    from neurofabric.host.records import encode_run_request, encode_spikes
    seed = 11
    sim, ports = firmware(config, core=GoldenCore(config, seed))
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = config.n
    reference = GoldenCore(config, seed)
    rng = random.Random(seed)
    recorded = sorted(rng.sample(range(config.n), 9)) + [config.n - 1]
    mask = bytearray((config.n + 7) // 8)
    for k in recorded:
        mask[k // 8] |= 1 << (k % 8)
    assert exchange(sim, ports, (Command.SET_RECORD, 1, bytes(mask))) == [
        (Command.SET_RECORD | REPLY_FLAG, 1, bytes([Status.OK]))]
    # Refused: a byte short, a neuron >= n (config.n is not a multiple of 8 for n300).
    bad = bytearray(mask)
    bad[-1] |= 0x80
    refused = [(Command.SET_RECORD, 2, bytes(mask[:-1]))] + ([(Command.SET_RECORD, 3, bytes(bad))] if config.n % 8
                                                             else [])
    assert [payload for _, _, payload in exchange(sim, ports, *refused)] == (
        [bytes([Status.BAD_LENGTH])] + ([bytes([Status.BAD_VALUE])] if config.n % 8 else []))
    stimulus = [sorted(j for j in range(config.m) if rng.random() < 0.3) for _ in range(8)]
    recorded_spikes = dropped = 0
    for flags, keep in ((RunFlags.SUBSET, set(recorded)), (0, set(range(config.n))),
                        (RunFlags.SUBSET | RunFlags.PROBE, set(recorded))):
        frames = exchange(sim, ports, (Command.RUN, 4 + flags, encode_run_request(stimulus, config.m, flags)))
        records = [payload for command, _, payload in frames if command == Command.STEP_RECORD | REPLY_FLAG]
        expected = []
        for row in stimulus:
            everyone = reference.step(row)
            expected.append([j for j in everyone if j in keep])
            dropped += len(everyone) - len(expected[-1])
        first = int.from_bytes(records[0][1:5], "little")
        assert records == [bytes([Status.OK]) + encode_spikes(first + t, spikes, config.n)
                           for t, spikes in enumerate(expected)], flags
        recorded_spikes += sum(map(len, expected))
    assert recorded_spikes > 0 and dropped > 0     # the mask kept some spikes and dropped others
    assert ports.filtered == (dropped if config.record_filter else 0)
    # No neuron recorded: empty records.
    exchange(sim, ports, (Command.SET_RECORD, 20, bytes(len(mask))))
    frames = exchange(sim, ports, (Command.RUN, 21, encode_run_request(stimulus[:3], config.m, RunFlags.SUBSET)))
    records = [payload for command, _, payload in frames if command == Command.STEP_RECORD | REPLY_FLAG]
    first = int.from_bytes(records[0][1:5], "little")
    assert records == [bytes([Status.OK]) + encode_spikes(first + t, [], config.n) for t in range(3)]


def test_firmware_runs_generated_inputs_from_a_request_without_records():
    """GENERATED: the request is its fields alone, each step is fed no host inputs, and
    anything after the fields is BAD_LENGTH (nothing runs)."""
    from neurofabric.host.records import encode_run_request, encode_spikes
    config = CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4)
    rates = generator_rates(config.m, 4)
    sim, ports = firmware(config, core=GoldenCore(config, 4, rates=rates, gen_seed=99))
    reference = GoldenCore(config, 4, rates=rates, gen_seed=99)
    request = encode_run_request([[]] * 30, config.m, RunFlags.GENERATED)
    assert len(request) == 3
    assert [payload for _, _, payload in exchange(sim, ports, (Command.RUN, 1, request + b"\0"))] == [
        bytes([Status.BAD_LENGTH])]
    assert ports.fed == []
    frames = exchange(sim, ports, (Command.RUN, 2, request))
    spikes = [reference.step([]) for _ in range(30)]
    expected = [(Command.STEP_RECORD | REPLY_FLAG, bytes([Status.OK]) + encode_spikes(t, row, config.n))
                for t, row in enumerate(spikes)]
    assert [(command, payload) for command, _, payload in frames] == expected + [
        (Command.RUN | REPLY_FLAG, bytes([Status.OK, 30, 0, 0, 0]))]
    assert ports.fed == [[]] * 30 and sum(map(len, spikes)) > 0     # the generator's inputs made spikes


@pytest.mark.parametrize("record_filter", [True, False], ids=["filter", "nofilter"])
def test_a_refused_record_mask_leaves_the_next_run_as_it_was(record_filter):
    """SET_RECORD with a neuron >= n is BAD_VALUE and changes nothing: the mask bytes it
    took leave no spikes behind in the next run's records, and a SUBSET run still records
    every neuron (the mask as it was, in the firmware and in the record filter)."""
    from neurofabric.host.records import encode_run_request, encode_spikes
    config = CoreConfig(n=300, m=260, S=16, W=8, T=8, lanes=4, record_filter=record_filter)
    sim, ports = firmware(config, core=GoldenCore(config, 3))
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = config.n
    reference = GoldenCore(config, 3)
    bad = bytes([0xFF] * 37 + [0x80])                         # neuron 303 of 300
    assert exchange(sim, ports, (Command.SET_RECORD, 1, bad)) == [
        (Command.SET_RECORD | REPLY_FLAG, 1, bytes([Status.BAD_VALUE]))]
    stimulus = [[], [3, 200], []]
    frames = exchange(sim, ports, (Command.RUN, 2, encode_run_request(stimulus, config.m)))
    assert [payload for command, _, payload in frames if command == Command.STEP_RECORD | REPLY_FLAG] == [
        bytes([Status.OK]) + encode_spikes(t, reference.step(row), config.n) for t, row in enumerate(stimulus)]
    frames = exchange(sim, ports, (Command.RUN, 3, encode_run_request(stimulus, config.m, RunFlags.SUBSET)))
    spikes = [reference.step(row) for row in stimulus]
    assert [payload for command, _, payload in frames if command == Command.STEP_RECORD | REPLY_FLAG] == [
        bytes([Status.OK]) + encode_spikes(3 + t, row, config.n) for t, row in enumerate(spikes)]
    assert sum(map(len, spikes)) > 0 and ports.filtered == 0


@pytest.mark.parametrize("record_filter", [True, False], ids=["filter", "nofilter"])
def test_firmware_runs_without_records_and_the_next_run_has_them_all(record_filter):
    """NO_RECORDS: a RUN of host inputs or generated ones sends its reply alone (the
    spikes are the core's to count), a RUN after it has every step's record as if the
    quiet one had sent its own, and NO_RECORDS with PROBE or INPUTS is BAD_VALUE (nothing
    runs). With the record filter the firmware sees none of a quiet run's spikes."""
    from neurofabric.host.records import encode_run_request, encode_spikes
    config = CoreConfig(n=300, m=40, S=16, W=8, T=8, lanes=4, record_filter=record_filter)
    rates = generator_rates(config.m, 6)
    sim, ports = firmware(config, core=GoldenCore(config, 6, rates=rates, gen_seed=17))
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = config.n
    reference = GoldenCore(config, 6, rates=rates, gen_seed=17)
    request = encode_run_request([[1]], config.m)
    for flags in (RunFlags.NO_RECORDS | RunFlags.PROBE, RunFlags.NO_RECORDS | RunFlags.INPUTS):
        bad = request[:2] + bytes([flags]) + request[3:]          # (the host's encoder refuses it)
        assert [payload for _, _, payload in exchange(sim, ports, (Command.RUN, 1, bad))] == [bytes([Status.BAD_VALUE])]
    assert ports.fed == []
    host = [[1, 7], [], [3], [39, 2]] * 5
    quiet = [[]] * 25
    spiked = 0
    for seq, (stimulus, flags) in enumerate([(host, RunFlags.NO_RECORDS),
                                             (quiet, RunFlags.NO_RECORDS | RunFlags.GENERATED)], start=2):
        frames = exchange(sim, ports, (Command.RUN, seq, encode_run_request(stimulus, config.m, flags)))
        assert [(command, payload) for command, _, payload in frames] == [
            (Command.RUN | REPLY_FLAG, bytes([Status.OK, len(stimulus), 0, 0, 0]))]
        spiked += sum(len(reference.step(row)) for row in stimulus)
    assert spiked > 0 and len(ports.fed) == 45 and ports.filtered == (spiked if record_filter else 0)
    stimulus = [[5], [], [6, 8]]
    frames = exchange(sim, ports, (Command.RUN, 4, encode_run_request(stimulus, config.m)))
    assert [payload for command, _, payload in frames if command == Command.STEP_RECORD | REPLY_FLAG] == [
        bytes([Status.OK]) + encode_spikes(45 + t, reference.step(row), config.n) for t, row in enumerate(stimulus)]


@pytest.mark.parametrize("counters", [True, False])
def test_the_spike_counters_table_is_there_when_the_core_has_counters(counters):
    """READ_STATE of table 3 (spike_counts) reads the core's space COUNT; a core built
    without counters refuses it with BAD_ADDRESS."""
    from neurofabric.contract.protocol import MEMORY_REQUEST_FIELDS, pack_fields
    config = CoreConfig(n=16, m=8, S=16, W=8, T=8, lanes=4, spike_counters=counters)
    sim, ports = firmware(config)
    for j in range(16):
        ports.memory[(Space.COUNT.value, j)] = 1000 + j
    request = pack_fields(MEMORY_REQUEST_FIELDS, table=3, address=2, count=3)
    (_, _, payload), = exchange(sim, ports, (Command.READ_STATE, 1, request))
    assert payload == (bytes([Status.OK]) + b"".join((1000 + j).to_bytes(2, "little") for j in (2, 3, 4))
                       if counters else bytes([Status.BAD_ADDRESS]))


@pytest.mark.parametrize("config", [CoreConfig(n=64, m=20, S=12, W=6, T=5, lanes=4),
                                    CoreConfig(n=300, m=40, S=16, W=8, T=8, lanes=4, record_filter=False)],
                         ids=["n64", "n300-nofilter"])
def test_firmware_sends_step_blocks(config):
    """BLOCKS: a RUN's step records come as STEP_BLOCKs of every neuron's bitmap (SUBSET:
    the mask's bytes up to its last nonzero one), as many steps a block as fit (at most
    BLOCK_MAX_STEPS), the last block shorter, the same spikes as the golden model; a
    STATUS that comes meanwhile is answered between blocks, never inside one; BLOCKS with
    PROBE, INPUTS or NO_RECORDS is BAD_VALUE, and a core built without step blocks
    refuses the flag."""
    from neurofabric.contract.protocol import BLOCK_MAX_STEPS, block_steps
    from neurofabric.host.records import decode_step_block, encode_run_request
    rates = generator_rates(config.m, 8)
    sim, ports = firmware(config, core=GoldenCore(config, 8, rates=rates, gen_seed=5))
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = config.n
    reference = GoldenCore(config, 8, rates=rates, gen_seed=5)
    for flags in (RunFlags.PROBE, RunFlags.INPUTS, RunFlags.NO_RECORDS):
        bad = encode_run_request([[]], config.m, RunFlags.GENERATED)
        bad = bad[:2] + bytes([RunFlags.GENERATED | RunFlags.BLOCKS | flags])
        assert [payload for _, _, payload in exchange(sim, ports, (Command.RUN, 1, bad))] == [bytes([Status.BAD_VALUE])]
    assert ports.fed == []
    recorded = [1, 5, 17, 20]
    mask = bytearray((config.n + 7) // 8)
    for k in recorded:
        mask[k // 8] |= 1 << (k % 8)
    exchange(sim, ports, (Command.SET_RECORD, 2, bytes(mask)))
    step, spiked = 0, 0
    for seq, (flags, keep, nbytes) in enumerate([(0, range(config.n), len(mask)), (RunFlags.SUBSET, recorded, 3)],
                                                start=3):
        steps = block_steps(nbytes) + 7
        request = encode_run_request([[]] * steps, config.m, flags | RunFlags.GENERATED | RunFlags.BLOCKS)
        before, start = len(ports.replies()), len(ports.sent)
        ports.request(Command.RUN, seq, request)
        # A STATUS once the first block's header has gone: answered right after that block.
        sim.run(until=lambda start=start: Command.STEP_BLOCK | REPLY_FLAG in ports.sent[start:],
                cycles=sim.cycles + 2_000_000)
        ports.request(Command.STATUS, 40 + seq)
        sim.run(until=ports.quiet, cycles=sim.cycles + 2_000_000)
        frames = ports.replies()[before:]
        status = [index for index, frame in enumerate(frames) if frame[0] == Command.STATUS | REPLY_FLAG]
        blocks = [frame for frame in frames if frame[0] == Command.STEP_BLOCK | REPLY_FLAG]
        assert status == [1] and frames[0][0] == Command.STEP_BLOCK | REPLY_FLAG
        assert all(frame[1] == seq and frame[2][0] == Status.OK for frame in blocks)
        assert frames[-1] == (Command.RUN | REPLY_FLAG, seq, bytes([Status.OK]) + steps.to_bytes(4, "little"))
        rows = []
        for _, _, payload in blocks:
            first, block, end = decode_step_block(payload, config.n, 1)
            assert end == len(payload) and first == step + len(rows) and payload[6] == nbytes
            rows += block
        assert [len(decode_step_block(p, config.n, 1)[1]) for _, _, p in blocks] == [block_steps(nbytes), 7]
        expected = [[j for j in reference.step([]) if j in keep] for _ in range(steps)]
        assert rows == expected
        spiked += sum(map(len, expected))
        step += steps
    assert spiked > 0 and block_steps(len(mask)) <= BLOCK_MAX_STEPS
    # Without step blocks the flag is unknown.
    plain = dataclasses.replace(config, step_blocks=False)
    sim, ports = firmware(plain, core=GoldenCore(plain, 8))
    request = encode_run_request([[]] * 3, config.m, RunFlags.GENERATED | RunFlags.BLOCKS)
    assert [payload for _, _, payload in exchange(sim, ports, (Command.RUN, 1, request))] == [bytes([Status.BAD_VALUE])]
    assert ports.fed == []
