"""An instruction-set simulator, a disassembler and a labelled listing for the
link's controller (`hdl.mcu.MCU`).

`McuSim` executes a program as the gateware does, cycle count included: every
instruction takes two cycles (decode, execute), an I/O access repeats its
execute cycle while the port says `wait`, and a port read takes one cycle more
(the gateware registers the port's data); the machine starts two cycles after
reset. The ports are a Python object (`Ports`), so the link's firmware runs
against models of the frame streams and the core in milliseconds instead of
the seconds a gateware simulation takes (tests/test_mcu_sim.py checks it
against `MCU` in Amaranth's simulator on random programs).

`LinkPorts` models the ports of `Link` (hdl/link.py) so that its firmware answers
requests, RUN included with a model of the core, without any gateware.

`disassemble` turns words back into the assembler's mnemonics (`assemble_text`
reads them back), `listing` adds the assembler's labels and the names of the
data RAM variables and ports. The link firmware's listing for a configuration::

    python -m neurofabric.hdl.mcu_sim --listing --neurons 16 --inputs 8
"""

import argparse
import re
import sys
from collections import deque

from neurofabric.contract.errors import BuildError
from .mcu import _INDEXED, CODE_DEPTH, DATA_SPACE, PORT_BASE, PORTS, STACK_DEPTH, X, Assembler, AssemblyError, _Cond, \
    _Fn, _Misc, pc_bits, rom_depth

__all__ = ["McuSim", "Ports", "alu", "disassemble", "disassemble_word", "assemble_text", "listing",
           "link_firmware", "link_port_names", "LinkPorts", "main"]

#: The cycles from reset to the first instruction's decode cycle (the ROM's first read).
BOOT_CYCLES = 2

_ALU_NAMES = {_Fn.LD: "ld", _Fn.ADD: "add", _Fn.ADC: "adc", _Fn.SUB: "sub", _Fn.SBC: "sbc", _Fn.AND: "and",
              _Fn.OR: "or", _Fn.CMP: "cmp"}
_MISC_NAMES = {_Misc.ST: "st", _Misc.LDX: "ldx", _Misc.INX: "inx", _Misc.TAX: "tax", _Misc.RET: "ret",
               _Misc.TXA: "txa"}
_JUMP_NAMES = {cond: cond.name.lower() for cond in _Cond}


def alu(fn, a, b, c):
    """`(A, Z, C)` after ALU function `fn` (classes 0 and 1) with operand `b`, as `MCU` computes them.

    Subtractions add the complement: C = 1 when there was no borrow; CMP keeps A;
    LD, AND and OR keep C.
    """
    if fn == _Fn.LD:
        return b, b == 0, c
    if fn == _Fn.AND:
        r = a & b
        return r, r == 0, c
    if fn == _Fn.OR:
        r = a | b
        return r, r == 0, c
    if fn == _Fn.ADD:
        total = a + b
    elif fn == _Fn.ADC:
        total = a + b + c
    elif fn == _Fn.SBC:
        total = a + (b ^ 0xFF) + c
    else:                                   # SUB, CMP
        total = a + (b ^ 0xFF) + 1
    r = total & 0xFF
    return (a if fn == _Fn.CMP else r), r == 0, total >> 8


class Ports:
    """The I/O ports of a simulated controller; subclass and override what a port does.

    `port` is 0 .. 63 (data address `PORT_BASE + port`). For every access the
    simulator first asks `wait` in each execute cycle; while it answers True the
    cycle repeats (as `port_wait` does), then it calls `read` (classes 1: ld, add,
    cmp ... of a port) or `write` (st). `McuSim.cycles` is the cycle being
    executed during these calls.
    """

    def wait(self, port, write, value):
        """True to repeat the execute cycle of this access (`value`: A, for a write)."""
        return False

    def read(self, port):
        """The byte the port gives (the cycle the read happens)."""
        return 0

    def write(self, port, value):
        """The port takes `value` (the cycle the write happens)."""


def _pow2_mask(depth):
    return (1 << (depth - 1).bit_length()) - 1


class McuSim:
    """The controller of `hdl.mcu` as a Python instruction-set simulator.

    Parameters are those of `MCU` (`program`, `data`, `data_depth`) plus `ports`,
    a `Ports`. The state is public: `a`, `x`, `z`, `c` (ints), `pc` (the next
    instruction), `stack` (`STACK_DEPTH` return addresses, the top first),
    `ram` (a list of `data_depth` bytes), `cycles` (since reset) and
    `instructions` (executed).

    Addresses wrap as in the gateware: X + n in 11 bits, the program counter and
    return addresses in 10, and the ROM and the RAM take the low bits of an
    address (a program of up to 256 words is a 256-word ROM, so address 256 reads
    word 0). Where the gateware's block RAM would be read outside its depth (a
    depth that is not a power of two) the simulator raises `BuildError`.
    """

    #: The ALU (`alu`); a test can swap in a wrong one to see that comparisons catch it.
    alu = staticmethod(alu)

    def __init__(self, program, data=(), data_depth=PORT_BASE, ports=None):
        if len(program) > CODE_DEPTH:
            raise BuildError(f"program: {len(program)} instructions, at most {CODE_DEPTH}")
        if not len(data) <= data_depth <= DATA_SPACE:
            raise BuildError(f"data_depth={data_depth}: the initial data ({len(data)} bytes) must fit, "
                             f"at most {DATA_SPACE}")
        # The ROM as MCU builds it: whole 256-word blocks, zeros after the program.
        code_depth = rom_depth(len(program))
        self._pc_mask = (1 << pc_bits(len(program))) - 1
        self.program = list(program) + [0] * (code_depth - len(program))
        self.code_depth = code_depth
        self.data_depth = data_depth
        self.ram = list(data) + [0] * (data_depth - len(data))
        self.ports = Ports() if ports is None else ports
        self._decoded = [(w >> 14, (w >> 11) & 7, w & 0x7FF) for w in self.program]
        self.a = self.x = self.z = self.c = 0
        self.pc = 0
        self.stack = [0] * STACK_DEPTH
        self.cycles = BOOT_CYCLES
        self.instructions = 0
        self._in_execute = False        # stopped inside a waiting access: resume in its execute cycle

    def _address(self, operand):
        return ((self.x if operand & _INDEXED else 0) + (operand & 0x3FF)) & (DATA_SPACE - 1)

    def _ram_index(self, address):
        index = address & _pow2_mask(self.data_depth)
        if index >= self.data_depth:
            raise BuildError(f"pc={self.pc}: data address {address} reaches RAM word {index}, outside the "
                             f"{self.data_depth}-byte data RAM")
        return index

    def step(self):
        """Execute one instruction (however long its ports make it wait)."""
        self.run(instructions=1)

    def run(self, instructions=None, cycles=None, until=None):
        """Execute until `instructions` more have run, the cycle count reaches `cycles`,
        or `until()` (called after each port access) is true. Returns the instructions run.

        Stopping at `cycles` can leave an access waiting; the next `run` resumes it.
        """
        rom_mask = _pow2_mask(self.code_depth)
        pc_mask = self._pc_mask
        decoded, ram, ports, alu = self._decoded, self.ram, self.ports, self.alu
        stack = self.stack
        a, x, z, c, pc, t = self.a, self.x, int(self.z), self.c, self.pc, self.cycles
        done = 0
        limit = float("inf") if instructions is None else instructions
        end = float("inf") if cycles is None else cycles
        resume = self._in_execute
        try:
            while done < limit and t < end:
                index = pc & rom_mask
                if index >= self.code_depth:
                    raise BuildError(f"pc={pc} reaches ROM word {index}, outside the {self.code_depth}-word ROM")
                cls, fn, operand = decoded[index]
                # The decode cycle (skipped when resuming an access that waited).
                execute = t if resume else t + 1
                resume = False
                next_pc = (pc + 1) & pc_mask
                if cls == 0:
                    a_new, z_new, c = alu(fn, a, operand & 0xFF, c)
                    if fn != _Fn.CMP:
                        a = a_new
                    z = int(z_new)
                elif cls == 1 or (cls == 2 and fn == _Misc.ST):
                    # A memory access: LD/ALU ops read mem[m], ST writes A there.
                    writing = cls == 2
                    address = ((x if operand & _INDEXED else 0) + (operand & 0x3FF)) & (DATA_SPACE - 1)
                    on_port = address >> 6 == PORT_BASE >> 6
                    if on_port:
                        port = address - PORT_BASE
                        self.cycles = execute
                        while ports.wait(port, writing, a):
                            execute += 1
                            self.cycles = execute
                            if execute >= end:
                                self._in_execute = True
                                t = execute
                                return done
                        if writing:
                            ports.write(port, a)
                        else:
                            b = ports.read(port) & 0xFF
                            execute += 1    # the ALU takes the registered port data a cycle later
                    else:
                        self.pc = pc
                        if writing:
                            ram[self._ram_index(address)] = a
                        else:
                            b = ram[self._ram_index(address)]
                    if not writing:
                        a_new, z_new, c = alu(fn, a, b, c)
                        if fn != _Fn.CMP:
                            a = a_new
                        z = int(z_new)
                    if on_port:
                        # `until` is asked after each port access.
                        pc = next_pc
                        t = execute + 1
                        done += 1
                        if until is not None and until():
                            break
                        continue
                elif cls == 2:
                    if fn == _Misc.LDX:
                        x = operand
                    elif fn == _Misc.INX:
                        x = (x + 1) & (DATA_SPACE - 1)
                    elif fn == _Misc.TAX:
                        x = a | (operand & 7) << 8
                    elif fn == _Misc.TXA:
                        a = x & 0xFF
                    elif fn == _Misc.SHIFT:
                        if operand & 1:
                            c, a = a & 1, a >> 1
                        else:
                            c, a = a >> 7, (a << 1) & 0xFF
                        z = int(a == 0)
                    elif fn == _Misc.RET:
                        next_pc = stack[0]
                        stack[:-1] = stack[1:]
                else:
                    if fn == _Cond.JMP:
                        taken = True
                    elif fn == _Cond.CALL:
                        taken = True
                        stack[1:] = stack[:-1]
                        stack[0] = next_pc
                    elif fn == _Cond.JZ:
                        taken = z
                    elif fn == _Cond.JNZ:
                        taken = not z
                    elif fn == _Cond.JC:
                        taken = c
                    elif fn == _Cond.JNC:
                        taken = not c
                    else:
                        taken = False
                    if taken:
                        next_pc = operand & pc_mask
                pc = next_pc
                t = execute + 1
                done += 1
            self._in_execute = False
            return done
        finally:
            self.a, self.x, self.z, self.c, self.pc, self.cycles = a, x, bool(z), c, pc, t
            self.instructions += done

    def state(self):
        """`(cycles, pc, a, x, z, c, stack)` (a tuple to compare)."""
        return self.cycles, self.pc, self.a, self.x, int(self.z), self.c, tuple(self.stack)


# -- disassembler -----------------------------------------------------------------

def _plain_memory(operand, kind):
    offset = operand & 0x3FF
    if operand & _INDEXED:
        return f"X + {offset}" if offset else "X"
    return str(offset)


def disassemble_word(word, memory=_plain_memory, target=str):
    """One instruction word as the assembler's mnemonic and operand (`.word 0x....`
    for a word the assembler cannot produce).

    `memory(operand, kind)` renders a data operand (11 bits; `kind` is "read" or
    "write"), `target(address)` a jump target; by default both are numbers.
    """
    cls, fn, operand = word >> 14, (word >> 11) & 7, word & 0x7FF
    if cls == 0 and operand < 0x100:
        return f"{_ALU_NAMES[fn]}i {operand}"
    if cls == 1:
        return f"{_ALU_NAMES[fn]} {memory(operand, 'read')}"
    if cls == 2:
        if fn == _Misc.ST:
            return f"st {memory(operand, 'write')}"
        if fn == _Misc.LDX:
            return f"ldx {operand}"
        if fn == _Misc.TAX and operand < 8:
            return f"tax {operand}" if operand else "tax"
        if fn == _Misc.SHIFT and operand < 2:
            return "shr" if operand else "shl"
        if fn in _MISC_NAMES and operand == 0:
            return _MISC_NAMES[fn]
    if cls == 3 and fn in _JUMP_NAMES:
        return f"{_JUMP_NAMES[fn]} {target(operand)}"
    return f".word {word:#06x}"


def disassemble(words):
    """The words as lines of `disassemble_word` (numbers for addresses and targets)."""
    return [disassemble_word(word) for word in words]


_METHODS = {"and": "and_", "or": "or_"}
_LINE = re.compile(r"^\s*(?:(?P<label>[.\w]+):)?\s*(?:(?P<op>[.\w]+)(?:\s+(?P<arg>[^;]*?))?)?\s*(?:;.*)?$")


def _operand(text, where):
    text = text.replace(" ", "")
    try:
        if text == "X":
            return X
        if text.startswith("X+"):
            return X + int(text[2:], 0)
        if text.endswith("+X"):
            return X + int(text[:-2], 0)
        return int(text, 0)
    except ValueError:
        raise AssemblyError(f"{where}: operand {text!r} is not a number, X or X + number") from None


def assemble_text(text):
    """Assemble lines as `disassemble` writes them (`label:` definitions, `;` comments,
    jump targets as labels or numbers) into 16-bit words, with the `Assembler`'s
    encoding and checks (the call-depth check aside: any word sequence assembles)."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    asm = Assembler(data_depth=DATA_SPACE)
    for number, line in enumerate(lines, 1):
        where = f"line {number}"
        match = _LINE.match(line)
        if not match:
            raise AssemblyError(f"{where}: cannot read {line!r}")
        if match["label"]:
            asm.label(match["label"])
        op, arg = match["op"], match["arg"]
        if not op:
            continue
        if op == ".word":
            value = int(arg, 0)
            if not 0 <= value < 1 << 16:
                raise AssemblyError(f"{where}: .word {value} outside 0 .. 65535")
            asm._emit(value)
            continue
        method = getattr(asm, _METHODS.get(op, op), None)
        if op.startswith("_") or op in ("var", "data", "label", "unique", "assemble", "call_depth", "here") \
                or not callable(method):
            raise AssemblyError(f"{where}: unknown instruction {op!r}")
        if op in _JUMP_NAMES.values():
            if not arg:
                raise AssemblyError(f"{where}: {op} needs a target")
            method(int(arg, 0) if arg[0].isdigit() else arg)
        elif op in ("inx", "txa", "shr", "shl", "ret") or (op == "tax" and not arg):
            method()
        elif op in _ALU_NAMES.values() or op == "st":
            method(_operand(arg, where))
        else:
            method(int(arg, 0))
    words = []
    for word, label, what in asm.code:
        if label is not None:
            if isinstance(label, int):
                if not 0 <= label < CODE_DEPTH:
                    raise AssemblyError(f"{what}: target {label} outside 0 .. {CODE_DEPTH - 1}")
                word |= label
            elif label in asm.labels:
                word |= asm.labels[label]
            else:
                raise AssemblyError(f"{what}: undefined label {label!r}")
        words.append(word)
    return words


# -- listing ------------------------------------------------------------------------

def _variables(program):
    """`[(address, name, size)]` of an `Assembler`'s variables, by address."""
    placed = sorted((address, name) for name, address in program.vars.items())
    used = len(program.data())
    out = []
    for (address, name), following in zip(placed, [a for a, _ in placed[1:]] + [used]):
        if address < PORT_BASE + PORTS <= following and address < PORT_BASE:
            following = min(following, PORT_BASE)     # the next one skipped the port window
        out.append((address, name, following - address))
    return out


def _port_name(names, port):
    below = [p for p in names if p <= port]
    if not below:
        return f"port {port}"
    base = max(below)
    return names[base] if base == port else f"{names[base]} + {port - base}"


def listing(program, ports=None, words=None):
    """A labelled listing of an `Assembler`: its data RAM variables (address, name,
    bytes), then every instruction (address, word, mnemonic) under its labels, with
    variables, ports and jump targets by name.

    `ports` is `(read_names, write_names)`, each `{port: name}`, as
    `link_port_names` gives them; `words` the assembled program (assembled here by
    default).
    """
    words = program.assemble() if words is None else list(words)
    variables = _variables(program)
    read_names, write_names = ports if ports is not None else ({}, {})
    label_at = {}
    for name, address in sorted(program.labels.items(), key=lambda item: item[0].startswith(".")):
        label_at.setdefault(address, []).append(name)

    def symbol(address):
        if PORT_BASE <= address < PORT_BASE + PORTS:
            return None
        for start, name, size in variables:
            if start <= address < start + size:
                return name if address == start else f"{name} + {address - start}"
        return None

    def memory(operand, kind):
        offset = operand & 0x3FF
        is_port = PORT_BASE <= offset < PORT_BASE + PORTS
        if operand & _INDEXED and is_port:
            return f"X + {offset}    ; X + PORT_BASE + {offset - PORT_BASE}"
        if is_port:
            names = read_names if kind == "read" else write_names
            text = f"[{_port_name(names, offset - PORT_BASE)}]"
        else:
            text = symbol(offset) or str(offset)
        if operand & _INDEXED:
            # X + n: n is often a small step, not a variable; the name of n goes in a comment.
            return f"X + {offset}    ; X + {text}" if offset else "X"
        return text

    def target(address):
        return label_at[address][0] if address in label_at else str(address)

    used = len(program.data())
    lines = [f"; data RAM: {used} of {program.data_depth} bytes"]
    lines += [f"{address:#05x}  {size:4d}  {name}" for address, name, size in variables]
    lines.append(f"; code: {len(words)} of {CODE_DEPTH} words")
    for address, word in enumerate(words):
        for name in label_at.get(address, []):
            lines.append(f"{name}:")
        lines.append(f"{address:#05x}  {word:04x}    {disassemble_word(word, memory, target)}")
    return "\n".join(lines) + "\n"


# -- the link's firmware ---------------------------------------------------------------

def link_port_names():
    """`(read_names, write_names)` of the link's ports (hdl/link.py), for `listing`."""
    from .link_ports import _R, _W
    return {p.value: p.name for p in _R}, {p.value: p.name for p in _W}


def link_firmware(config, clk_hz=12_000_000, baud=3_000_000, build_id=None, probe_chunk=None):
    """`(assembler, words, data, data_depth)` of the link firmware `Link` builds for `config`."""
    from .link import Link, link_program
    link = Link(config, clk_hz=clk_hz, baud=baud, build_id=build_id, probe_chunk=probe_chunk)
    link._MustUse__silence = True       # only its firmware is wanted, never its gateware
    program = link_program(config, link.hello_bytes(), link.probe_chunk)
    return program, program.assemble(), program.data(), program.data_depth


class LinkPorts(Ports):
    """The ports of `Link` (hdl/link.py) as Python models, to run the link firmware on
    `McuSim` without gateware: requests go in whole (`request`), reply bytes come out
    in `sent` (each reply's header, then its payload, as the firmware writes them to
    the frame sender), and the core is a memory plus an optional step model:
    `memory[(space, address)]` holds a word (the `Space.GLOBAL` registers included);
    `commands` lists the core commands `(op, space, address, word)` in order.

    `core`, for RUN, has `step(sources)` (the step's input indices, in the order the
    firmware feeds them) returning the neurons that spiked, `v` and `i` (per
    neuron, after the step) for the probe records, and `inputs` (the step's input
    set U, as indices in the order the core reports them) for a step whose end
    asks for its inputs; each step counts up the `STEPS_DONE` register. A RUN's
    payload is held as the gateware holds it in the receiver's buffer (requests
    latched meanwhile keep no payload). Without a `core`, a RUN raises
    `BuildError` when the firmware feeds the first step.
    """

    def __init__(self, config, counters=(0, 0, 0, 0, 0), core=None):
        from .core_ports import Reg, Space
        from .link_ports import _R, _W
        self._R, self._W = _R, _W
        self._steps_done = (Space.GLOBAL.value, Reg.STEPS_DONE.value)
        self.config = config
        self.core = core
        self.word_bytes = (config.data_bits + 7) // 8
        self.value_bytes = (config.S + 7) // 8
        self.requests = deque()
        self.header = None              # (command, seq, length) of the latched request
        self.length = 0                 # the last latched length (kept after RXH_ACK, as the gateware's)
        self.payload = deque()
        self.rx_last = True
        self.held = None                # a RUN's payload, held in the receiver's buffer
        self.late = False               # the latched request came while a payload was held
        self.stim = 0
        self.nack = None                # the status of a NACK to send
        self.nack_status = 0            # kept after NACK_CLEAR, as the gateware's register
        self.idle = False
        self.sent = bytearray()
        self.counters = list(counters)
        self.memory = {}
        self.commands = []
        self.address = 0
        self.word = 0
        self.rdata = None
        self.rbyte = 0                  # RBYTE's counter
        self.scan = 0
        self.running = 0
        self.source_hi = 0
        self.inputs = []                # the step being fed
        self.fed = []                   # every step's inputs so far
        self.records = deque()          # step_out: ("input", k), ("spike", j), ("probe", j), ("end", None)
        # The record filter (CoreConfig.record_filter): its mask (every neuron at first),
        # the mask's write address and whether it drops unrecorded / all spikes.
        self.filter_mask = [True] * config.n
        self.filter_ptr = 0
        self.filter_subset = self.filter_all = False
        self.filtered = 0               # SPIKE records the filter took (the firmware never saw them)

    # -- the host's side --
    def request(self, command, seq, payload=b""):
        """A request frame that the receiver passed (its header and payload)."""
        self.requests.append((int(command), int(seq), bytes(payload)))
        self._latch()

    def refuse(self, status):
        """The receiver refused a frame: the firmware is to send a NACK of `status`."""
        self.nack = self.nack_status = int(status)

    def quiet(self):
        """The firmware waits for a request with nothing left to answer."""
        return self.idle and self.header is None and not self.requests and self.nack is None

    def replies(self):
        """The frames sent so far: `[(command, seq, payload)]`."""
        out, data = [], bytes(self.sent)
        while len(data) >= 4:
            length = data[2] | data[3] << 8
            out.append((data[0], data[1], data[4:4 + length]))
            data = data[4 + length:]
        return out

    def _latch(self):
        from neurofabric.contract.protocol import Command
        if self.header is not None or not self.requests:
            return
        command, seq, payload = self.requests.popleft()
        hold = self.held is not None or (command == Command.RUN and not self.running)
        self.late = self.held is not None
        if hold and self.held is None:
            self.held = payload
        self.header = (command, seq, len(payload))
        self.length = len(payload)
        self.payload = deque() if hold else deque(payload)
        self.rx_last = not payload or hold

    def _unmodelled(self, port, what):
        raise BuildError(f"port {port}: {what} is not modelled by LinkPorts")

    def _filter(self):
        # The gateware's filter takes a dropped SPIKE as soon as it is step_out's record.
        if not self.config.record_filter:
            return
        while self.records and self.records[0][0] == "spike" and (
                self.filter_all or self.filter_subset and not self.filter_mask[self.records[0][1]]):
            self.records.popleft()
            self.filtered += 1

    def _record(self, port):
        self._filter()
        if not self.records:
            raise BuildError(f"port {port}: the firmware waits for a step_out record the core never makes")
        return self.records[0]

    def _step(self, flags):
        if self.core is None:
            self._unmodelled(self._W.STEP_END, "the core's steps (LinkPorts(core=...))")
        from .core_ports import Reg, Space
        probe, report_inputs = flags & 1, flags >> 1 & 1
        spikes = [int(j) for j in self.core.step(list(self.inputs))]
        self.fed.append(list(self.inputs))
        self.inputs = []
        if report_inputs:
            self.records.extend(("input", int(k)) for k in self.core.inputs)
        self.records.extend(("spike", j) for j in spikes)
        if probe:
            n_used = self.memory.get((Space.GLOBAL.value, Reg.N_USED.value), self.config.n)
            self.records.extend(("probe", j) for j in range(n_used))
        self.records.append(("end", None))
        self.memory[self._steps_done] = self.memory.get(self._steps_done, 0) + 1

    # -- the firmware's side --
    def wait(self, port, write, value):
        R, W = self._R, self._W
        if write:
            return port == W.RDATA_ACK and self.rdata is None
        if port == R.RX and not self.payload:
            raise BuildError("port RX: the firmware reads past the request's payload")
        if (port >= R.RDATA or port == R.RBYTE) and self.rdata is None:
            raise BuildError("port RDATA: the firmware waits for a core word it never asked for")
        return False

    def read(self, port):
        R = self._R
        if port == R.FLAGS:
            self._filter()
            return ((self.header is not None) | (self.nack is not None) << 1 | bool(self.records) << 2
                    | self.rx_last << 3 | self.late << 6 | (self.stim == self.length) << 7)
        if port == R.KIND:
            from .core_ports import StepEvent
            return StepEvent[self._record(port)[0].upper()].value
        if port == R.RX:
            byte = self.payload.popleft()
            self.rx_last = not self.payload
            return byte
        if R.RXH <= port < R.RXH + 4:
            command, seq, length = self.header
            return (command, seq, length & 0xFF, length >> 8)[port - R.RXH]
        if port == R.NACK:
            return self.nack_status
        if port == R.SCAN:
            if not self.scan:
                return 0
            lowest = (self.scan & -self.scan).bit_length() - 1
            self.scan &= self.scan - 1
            return 8 + lowest
        if R.COUNTERS <= port < R.COUNTERS + 10:
            index = port - R.COUNTERS
            return self.counters[index // 2] >> (8 * (index % 2)) & 0xFF
        if port >= R.RDATA:
            return self.rdata >> (8 * (port - R.RDATA)) & 0xFF
        if port == R.RBYTE:
            self.rbyte += 1
            return self.rdata >> (8 * (self.rbyte - 1)) & 0xFF
        if port == R.STIM:
            if self.held is None or self.stim >= len(self.held):
                raise BuildError(f"port STIM: byte {self.stim} is past the held payload")
            self.stim += 1
            return self.held[self.stim - 1]
        if port in (R.NEURON, R.NEURON + 1):
            return self._record(port)[1] >> (8 * (port - R.NEURON)) & 0xFF
        if R.PROBE <= port < R.PROBE + 2 * self.value_bytes:
            kind, neuron = self._record(port)
            values = (int(self.core.v[neuron]), int(self.core.i[neuron]))
            index = port - R.PROBE
            bits = 8 * self.value_bytes
            return (values[index // self.value_bytes] & ((1 << bits) - 1)) >> (8 * (index % self.value_bytes)) & 0xFF
        return 0

    def write(self, port, value):
        from .core_ports import Op
        W = self._W
        if port == W.IDLE:
            self.idle = bool(value & 1)
        elif port == W.TX:
            self.sent.append(value)
        elif port == W.RXH_ACK:
            self.header = None
            if not self.running:
                self.held = None
            self._latch()
        elif port == W.NACK_CLEAR:
            self.nack = None
        elif port == W.SCAN:
            self.scan = value
        elif W.ADDR <= port < W.ADDR + 3:
            shift = 8 * (port - W.ADDR)
            self.address = self.address & ~(0xFF << shift) | value << shift
        elif port == W.CMD:
            from .core_ports import Space
            op, space = value & 3, value >> 2 & ((1 << Space.as_shape().width) - 1)
            self.commands.append((op, space, self.address, self.word))
            if op == Op.READ.value:
                self.rdata = self.memory.get((space, self.address), 0)
            elif op == Op.WRITE.value:
                self.memory[(space, self.address)] = self.word
        elif port == W.RDATA_ACK:
            self.rdata = None
            self.rbyte = 0
        elif port == W.DISCARD:
            self.payload.clear()
            self.rx_last = True
        elif port == W.WORD:
            self.word = self.word >> 8 | value << (8 * (self.word_bytes - 1))
        elif port == W.RUNNING:
            self.running = value & 1
            if not self.running:
                self.held = None
                self._latch()
        elif port == W.STIM_RESET:
            self.stim = 0
        elif port == W.STEP_IN_HI:
            if self.config.input_bits > 8:
                self.source_hi = value
        elif port == W.STEP_IN:
            self.inputs.append(self.source_hi << 8 | value)
        elif port == W.STEP_END:
            self._step(value)
        elif port in (W.FILTER, W.FMASK) and self.config.record_filter:
            from .link_ports import _FILTER_ALL, _FILTER_SUBSET
            if port == W.FILTER:
                self.filter_subset, self.filter_all = bool(value >> _FILTER_SUBSET & 1), bool(value >> _FILTER_ALL & 1)
                self.filter_ptr = 0
            else:
                for bit in range(8):
                    if 8 * self.filter_ptr + bit < self.config.n:
                        self.filter_mask[8 * self.filter_ptr + bit] = bool(value >> bit & 1)
                self.filter_ptr += 1
        elif port == W.STEP_ACK:
            self._record(port)
            self.records.popleft()


def main(argv=None):
    """`python -m neurofabric.hdl.mcu_sim`: the link firmware's listing or disassembly."""
    from .core_ports import CoreConfig
    parser = argparse.ArgumentParser(description="The link firmware of a configuration, listed or disassembled.")
    parser.add_argument("--neurons", type=int, default=16, help="n")
    parser.add_argument("--inputs", type=int, default=8, help="m")
    parser.add_argument("--state-bits", type=int, default=16, help="S")
    parser.add_argument("--weight-bits", type=int, default=8, help="W")
    parser.add_argument("--trace-bits", type=int, default=8, help="T")
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--clk-hz", type=int, default=12_000_000)
    parser.add_argument("--baud", type=int, default=3_000_000)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--listing", action="store_true", help="labelled listing (the default)")
    what.add_argument("--disassemble", action="store_true", help="plain disassembly, one instruction a line")
    args = parser.parse_args(argv)
    try:
        config = CoreConfig(n=args.neurons, m=args.inputs, S=args.state_bits, W=args.weight_bits,
                            T=args.trace_bits, lanes=args.lanes)
        program, words, _, _ = link_firmware(config, args.clk_hz, args.baud)
    except (ValueError, BuildError, AssemblyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BuildError.exit_code
    if args.disassemble:
        sys.stdout.write("\n".join(disassemble(words)) + "\n")
    else:
        sys.stdout.write(listing(program, link_port_names(), words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
