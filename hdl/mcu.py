"""A small 8-bit controller and its assembler, for control logic that would cost
too many logic cells as gateware.

The link of the iCEBreaker build has to fit about 1,500 iCE40 logic cells next to
the core (UART and framing included); as state machines its command decoder alone
took 2,500. `MCU` keeps the control flow in a program in block RAM instead: an
accumulator machine with 16-bit instructions (up to 2048, in block RAM), an 8-bit
data RAM (block RAM) and memory-mapped I/O ports that the surrounding gateware
defines. About 280 iCE40 logic cells (synth_ice40, packed by nextpnr) whatever the
program does.

Machine
-------
- `A` (8 bits), the accumulator; flags `Z` (the last result was 0) and `C`
  (carry; after SUB/SBC/CMP: 1 when there was no borrow, i.e. A >= B unsigned,
  as on a 6502).
- `X` (11 bits), the index register: `X + n` (n < 1024) addresses data RAM or a port.
- `pc` (`pc_bits(len(program))`: 10 bits up to 1024 instructions, 11 beyond) and a
  return stack of `STACK_DEPTH` entries (CALL/RET).
- Data space: 2048 byte addresses. `PORT_BASE .. PORT_BASE + 63` are I/O ports
  (the surrounding gateware's `port_*` signals); the rest is data RAM (`data_depth`
  bytes from 0, with initial contents).

Every instruction takes two cycles (decode: the operand address goes to the RAM;
execute: the RAM data or port data is there), more while an I/O port says
`port_wait` (the instruction's execute cycle repeats: a port can make the program
wait for a stream without a polling loop). A port read takes one cycle more: the
port's data is taken into a register in the cycle the read happens, and the ALU
works on that register in the next, so that no path runs from the surrounding
gateware's memories through the port multiplexer into the ALU and the flags in
one cycle (on the ECP5 such a path, from the frame receiver's block RAM across
the die, held a 50 MHz build to 48 MHz).

Instructions (`Assembler` methods; `m` is an address: an int below 1024 (data RAM
or a port), or `X + n` for the byte n after X):

| class | instructions | effect |
|---|---|---|
| 0 | `ldi/addi/adci/subi/sbci/andi/ori/cmpi n` | A = A op n (8-bit immediate) |
| 1 | `ld/add/adc/sub/sbc/and_/or_/cmp m` | A = A op mem[m] |
| 2 | `st m`, `ldx n`, `inx`, `tax hi`, `shr`, `shl`, `ret`, `txa` | see `Assembler` |
| 3 | `jmp/jz/jnz/jc/jnc/call label` | jumps |

`ld` and `ldi` set Z too; `and_/or_` set Z; the adds and subtractions set Z and C;
`cmp`/`cmpi` only set the flags.
"""

import enum

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["MCU", "Assembler", "AssemblyError", "X", "PORT_BASE", "PORTS", "CODE_DEPTH", "DATA_SPACE",
           "STACK_DEPTH", "pc_bits", "rom_depth"]

#: Instructions the program counter can address (a jump's target field has 11 bits).
CODE_DEPTH = 2048
#: Byte addresses of the data space (data RAM and ports).
DATA_SPACE = 2048
#: Number of I/O ports and where they sit in the data space (direct addresses reach them).
PORTS = 64
PORT_BASE = 1024 - PORTS
#: Return addresses the stack holds (CALL nesting depth).
STACK_DEPTH = 2


class _Fn(enum.IntEnum):
    """ALU functions (instruction bits 13:11 of classes 0 and 1)."""
    LD = 0
    ADD = 1
    ADC = 2
    SUB = 3
    SBC = 4
    AND = 5
    OR = 6
    CMP = 7


def rom_depth(length):
    """Words of the program ROM for a program of `length` instructions: whole blocks of 256
    up to 1024, else all 2048 (so that the 11-bit program counter wraps inside it)."""
    return max(256, -(-int(length) // 256) * 256) if length <= 1024 else CODE_DEPTH


def pc_bits(length):
    """Bits of the program counter (and the return stack) for a program of `length`
    instructions: 10 up to 1024, so that a small program's controller stays as it was."""
    return max(10, (rom_depth(length) - 1).bit_length())


class _Misc(enum.IntEnum):
    """Class 2 operations (bits 13:11)."""
    ST = 0      # mem[m] = A
    LDX = 1     # X = n (11 bits)
    INX = 2     # X = X + 1
    TAX = 3     # X = hi << 8 | A
    SHIFT = 4   # bit 0: 1 = SHR (C = A[0]), 0 = SHL (C = A[7]); Z
    RET = 5
    TXA = 6     # A = X[7:0]


class _Cond(enum.IntEnum):
    """Class 3 conditions (bits 13:11)."""
    JMP = 0
    JZ = 1
    JNZ = 2
    JC = 3
    JNC = 4
    CALL = 5


class _Index:
    """`X + offset`, an operand of the memory instructions."""

    def __init__(self, offset=0):
        self.offset = offset

    def __add__(self, offset):
        return _Index(self.offset + int(offset))

    __radd__ = __add__

    def __repr__(self):
        return f"X + {self.offset}" if self.offset else "X"


#: The index register as an operand: `X`, `X + 5`, `table + X`.
X = _Index()

_INDEXED = 1 << 10


class AssemblyError(Exception):
    """A program that cannot be assembled (names the instruction and the operand)."""


class Assembler:
    """Build a program for `MCU`: one method per instruction, labels, data.

    >>> a = Assembler()
    >>> counter = a.var("counter")
    >>> a.label("loop"); a.ld(counter); a.addi(1); a.st(counter); a.jmp("loop")
    >>> words = a.assemble()

    `var(name, size, init)` allocates data RAM and returns its address;
    `data()` is the RAM's initial contents.
    Labels may be used before they are defined.
    """

    def __init__(self, data_depth=PORT_BASE):
        self.data_depth = data_depth
        self.code = []          # (word, label to resolve or None, what)
        self.labels = {}
        self.top_levels = set()
        self.vars = {}
        self._data = []
        self._unique = 0

    # -- data ------------------------------------------------------------------
    def var(self, name, size=1, init=None):
        """Allocate `size` bytes of data RAM named `name` and return the address.

        Variables are allocated upwards from 0 and skip the port window; those
        below `PORT_BASE` can be named directly in instructions, the others only
        through X. `init` gives the initial contents (zeros by default).
        """
        if name in self.vars:
            raise AssemblyError(f"variable {name!r} is defined twice")
        init = [0] * size if init is None else list(init)
        if len(init) != size or not all(0 <= b < 256 for b in init):
            raise AssemblyError(f"variable {name!r}: init must be {size} bytes")
        address = len(self._data)
        if address < PORT_BASE + PORTS and address + size > PORT_BASE:
            address = PORT_BASE + PORTS         # past the ports
        if address + size > self.data_depth:
            raise AssemblyError(f"variable {name!r} ({size} bytes) does not fit the {self.data_depth}-byte "
                                f"data RAM ({address} bytes used)")
        self._data += [0] * (address - len(self._data)) + init
        self.vars[name] = address
        return address

    def data(self):
        """The data RAM's initial contents (bytes from address 0)."""
        return list(self._data)

    # -- labels ------------------------------------------------------------------
    def label(self, name, top_level=False):
        """Name the next instruction. `top_level`: code there never returns (a main
        loop), so return addresses still on the stack there are never used."""
        if name in self.labels:
            raise AssemblyError(f"label {name!r} is defined twice")
        self.labels[name] = len(self.code)
        if top_level:
            self.top_levels.add(len(self.code))
        return name

    def unique(self, stem="l"):
        """A fresh label name (for macros)."""
        self._unique += 1
        return f".{stem}{self._unique}"

    @property
    def here(self):
        return len(self.code)

    # -- encoding -------------------------------------------------------------------
    def _emit(self, word, label=None, what=""):
        self.code.append((word, label, what))

    @staticmethod
    def _imm(value, what):
        value = int(value)
        if not -128 <= value <= 255:
            raise AssemblyError(f"{what}: immediate {value} outside -128 .. 255")
        return value & 0xFF

    def _mem(self, operand, what):
        if isinstance(operand, _Index):
            if not 0 <= operand.offset < 1024:
                raise AssemblyError(f"{what}: offset {operand.offset} outside 0 .. 1023")
            return _INDEXED | operand.offset
        address = int(operand)
        if not 0 <= address < 1024:
            raise AssemblyError(f"{what}: address {address} outside 0 .. 1023 (use X beyond)")
        return address

    def _alu_i(fn):
        def op(self, value):
            self._emit((0 << 14) | (fn << 11) | self._imm(value, fn.name.lower() + "i"))
        op.__doc__ = f"A = {fn.name} immediate" if fn != _Fn.CMP else "flags of A - immediate"
        return op

    def _alu_m(fn):
        def op(self, operand):
            self._emit((1 << 14) | (fn << 11) | self._mem(operand, fn.name.lower()))
        op.__doc__ = f"A = {fn.name} mem[m]" if fn != _Fn.CMP else "flags of A - mem[m]"
        return op

    ldi, addi, adci, subi = _alu_i(_Fn.LD), _alu_i(_Fn.ADD), _alu_i(_Fn.ADC), _alu_i(_Fn.SUB)
    sbci, andi, ori, cmpi = _alu_i(_Fn.SBC), _alu_i(_Fn.AND), _alu_i(_Fn.OR), _alu_i(_Fn.CMP)
    ld, add, adc, sub = _alu_m(_Fn.LD), _alu_m(_Fn.ADD), _alu_m(_Fn.ADC), _alu_m(_Fn.SUB)
    sbc, and_, or_, cmp = _alu_m(_Fn.SBC), _alu_m(_Fn.AND), _alu_m(_Fn.OR), _alu_m(_Fn.CMP)

    def st(self, operand):
        """mem[m] = A (a port write when m is a port)."""
        self._emit((2 << 14) | (_Misc.ST << 11) | self._mem(operand, "st"))

    def ldx(self, value):
        """X = value (0 .. 2047)."""
        if not 0 <= int(value) < DATA_SPACE:
            raise AssemblyError(f"ldx: {value} outside 0 .. {DATA_SPACE - 1}")
        self._emit((2 << 14) | (_Misc.LDX << 11) | int(value))

    def inx(self):
        """X = X + 1."""
        self._emit((2 << 14) | (_Misc.INX << 11))

    def tax(self, hi=0):
        """X = hi * 256 + A."""
        if not 0 <= hi < DATA_SPACE // 256:
            raise AssemblyError(f"tax: hi={hi} outside 0 .. {DATA_SPACE // 256 - 1}")
        self._emit((2 << 14) | (_Misc.TAX << 11) | hi)

    def txa(self):
        """A = X mod 256."""
        self._emit((2 << 14) | (_Misc.TXA << 11))

    def shr(self):
        """A = A >> 1, C = the bit shifted out."""
        self._emit((2 << 14) | (_Misc.SHIFT << 11) | 1)

    def shl(self):
        """A = A << 1, C = the bit shifted out."""
        self._emit((2 << 14) | (_Misc.SHIFT << 11))

    def ret(self):
        self._emit((2 << 14) | (_Misc.RET << 11))

    def _jump(cond):
        def op(self, label):
            self._emit((3 << 14) | (cond << 11), label, cond.name.lower())
        return op

    jmp, jz, jnz, jc, jnc, call = (_jump(_Cond.JMP), _jump(_Cond.JZ), _jump(_Cond.JNZ), _jump(_Cond.JC),
                                   _jump(_Cond.JNC), _jump(_Cond.CALL))

    def assemble(self):
        """The program as a list of 16-bit words (labels resolved). Raises
        `AssemblyError` when it does not fit or may call deeper than the stack."""
        if len(self.code) > CODE_DEPTH:
            raise AssemblyError(f"the program has {len(self.code)} instructions, at most {CODE_DEPTH} fit")
        words = []
        for word, label, what in self.code:
            if label is not None:
                if label not in self.labels:
                    raise AssemblyError(f"{what}: undefined label {label!r}")
                word |= self.labels[label]
            words.append(word)
        depth = self.call_depth(words)
        if depth > STACK_DEPTH:
            raise AssemblyError(f"the program nests calls {depth} deep; the return stack holds {STACK_DEPTH}")
        return words

    def call_depth(self, words):
        """The deepest nesting of calls on any path from address 0 (calls in flight
        are forgotten at top-level labels)."""
        deepest = 0
        seen = set()
        todo = [(0, ())]
        while todo:
            pc, stack = todo.pop()
            if pc in self.top_levels:
                stack = ()
            if (pc, stack) in seen or pc >= len(words):
                continue
            seen.add((pc, stack))
            deepest = max(deepest, len(stack))
            if deepest > STACK_DEPTH:
                # Too deep already: say so, rather than follow a path that calls
                # in a loop and would grow the stack without end.
                return deepest
            word = words[pc]
            cls, op, target = word >> 14, (word >> 11) & 7, word & 0x3FF
            if cls == 3 and op == _Cond.CALL:
                todo.append((target, stack + (pc + 1,)))
            elif cls == 3 and op == _Cond.JMP:
                todo.append((target, stack))
            elif cls == 3:
                todo += [(target, stack), (pc + 1, stack)]
            elif cls == 2 and op == _Misc.RET:
                if stack:
                    todo.append((stack[-1], stack[:-1]))
            else:
                todo.append((pc + 1, stack))
        return deepest


class MCU(wiring.Component):
    """The controller (see the module docstring).

    Parameters
    ----------
    program : list of int
        16-bit instruction words (`Assembler.assemble`).
    data : list of int
        Initial contents of the data RAM (`Assembler.data`).
    data_depth : int
        Bytes of data RAM: addresses 0 .. data_depth-1, except the port window.

    Ports
    -----
    port_addr : out
        The port (0 .. 63) an instruction reads or writes, while `port_rd` or `port_wr`.
    port_rd, port_wr : out
        The instruction in its execute cycle reads / writes the port; a read takes
        `port_rdata`, a write gives `port_wdata` (= A). While `port_wait` is 1
        the cycle repeats, so a port's side effect (a stream transfer, say) is
        its `port_rd`/`port_wr` cycle in which `port_wait` is 0. A read's
        instruction ends one cycle after that one, with `port_rd` low.
    """

    def __init__(self, program, data=(), data_depth=PORT_BASE):
        if len(program) > CODE_DEPTH:
            raise ValueError(f"{len(program)} instructions, at most {CODE_DEPTH}")
        if not len(data) <= data_depth <= DATA_SPACE:
            raise ValueError(f"data_depth={data_depth}: the initial data ({len(data)} bytes) must fit, "
                             f"at most {DATA_SPACE}")
        self.program = list(program)
        self.data = list(data) + [0] * (data_depth - len(data))
        self.data_depth = data_depth
        super().__init__({
            "port_addr": Out(6),
            "port_rd": Out(1),
            "port_wr": Out(1),
            "port_wdata": Out(8),
            "port_rdata": In(8),
            "port_wait": In(1),
        })

    def elaborate(self, platform):
        m = Module()

        # Block RAMs: a program ROM and the data RAM (both read synchronously).
        code_depth = rom_depth(len(self.program))
        width = pc_bits(len(self.program))
        m.submodules.rom = rom = Memory(shape=16, depth=code_depth, init=self.program)
        m.submodules.ram = ram = Memory(shape=8, depth=self.data_depth, init=self.data)
        rom_r = rom.read_port()
        ram_r = ram.read_port()
        ram_w = ram.write_port()

        pc = Signal(width)
        stack = [Signal(width, name=f"stack{i}") for i in range(STACK_DEPTH)]
        a = Signal(8)
        x = Signal(11)
        z = Signal()
        c = Signal()
        execute = Signal()          # 0: decode cycle, 1: execute cycle
        booted = Signal()           # the ROM output holds an instruction
        # The registers by name, so that a simulation can be compared with hdl/mcu_sim.py.
        self.registers = {"pc": pc, "a": a, "x": x, "z": z, "c": c, "stack": stack, "execute": execute,
                          "booted": booted, "ram": ram.data}

        ir = rom_r.data
        cls = ir[14:16]
        fn = ir[11:14]
        operand = ir[:11]
        # The data address of m / X + n goes to the RAM in the decode cycle and is kept
        # for the execute cycle, whose port and ALU paths then start at a register (the
        # adder after the program ROM's output would not fit a 50 MHz ECP5 cycle too).
        fetch_addr = Signal(11)
        m.d.comb += fetch_addr.eq(Mux(ir[10], x, 0) + ir[:10])
        # So are the instruction's kind of access (a load or a store): the ports' handshakes
        # (`port_wait`, then the stall that holds the program ROM) start at registers, not at
        # the program ROM's output (on the ULX3S-85F with a ROM of two block RAMs, that path
        # held the build to 47.3 MHz).
        addr = Signal(11)
        load_op = Signal()
        store_op = Signal()
        with m.If(~execute):
            m.d.sync += [addr.eq(fetch_addr), load_op.eq(cls == 1), store_op.eq((cls == 2) & (fn == _Misc.ST))]
        is_port = addr[6:] == PORT_BASE >> 6
        m.d.comb += [ram_r.addr.eq(fetch_addr), ram_r.en.eq(~execute)]

        # Operand B: immediate (class 0), or the RAM's or a port's data (class 1).
        port_access = execute & booted & is_port
        m.d.comb += [self.port_addr.eq(addr[:6]), self.port_wdata.eq(a)]
        # A port read: `port_rd` until the port's data is taken (the cycle without `port_wait`),
        # into `port_data`; the instruction then completes in the next cycle with `port_taken`.
        port_read = port_access & load_op
        port_taken = Signal()
        port_data = Signal(8)
        m.d.comb += self.port_rd.eq(port_read & ~port_taken)
        m.d.comb += self.port_wr.eq(port_access & store_op)
        stall = (self.port_rd | self.port_wr) & self.port_wait | self.port_rd
        with m.If(self.port_rd & ~self.port_wait):
            m.d.sync += [port_data.eq(self.port_rdata), port_taken.eq(1)]
        with m.Elif(~stall):
            m.d.sync += port_taken.eq(0)
        b = Mux(cls == 0, ir[:8], Mux(is_port, port_data, ram_r.data))

        # ALU: A + B (+ carry), A - B (= A + ~B + 1, carry = no borrow), AND, OR.
        subtract = (fn == _Fn.SUB) | (fn == _Fn.SBC) | (fn == _Fn.CMP)
        carry_in = Mux((fn == _Fn.ADC) | (fn == _Fn.SBC), c, subtract)
        total = Signal(9)
        m.d.comb += total.eq(a + Mux(subtract, ~b, b)[:8] + carry_in)
        result = Signal(8)
        with m.Switch(fn):
            with m.Case(_Fn.LD):
                m.d.comb += result.eq(b)
            with m.Case(_Fn.AND):
                m.d.comb += result.eq(a & b)
            with m.Case(_Fn.OR):
                m.d.comb += result.eq(a | b)
            with m.Default():
                m.d.comb += result.eq(total[:8])
        arithmetic = (fn != _Fn.LD) & (fn != _Fn.AND) & (fn != _Fn.OR)

        # The next instruction: pc + 1, a jump target or the return address.
        next_pc = Signal(width)
        taken = Signal()
        with m.Switch(fn):
            with m.Case(_Cond.JMP, _Cond.CALL):
                m.d.comb += taken.eq(1)
            with m.Case(_Cond.JZ):
                m.d.comb += taken.eq(z)
            with m.Case(_Cond.JNZ):
                m.d.comb += taken.eq(~z)
            with m.Case(_Cond.JC):
                m.d.comb += taken.eq(c)
            with m.Case(_Cond.JNC):
                m.d.comb += taken.eq(~c)
        is_ret = (cls == 2) & (fn == _Misc.RET)
        m.d.comb += next_pc.eq(Mux(~booted, 0, Mux((cls == 3) & taken, ir[:width], Mux(is_ret, stack[0], pc + 1))))
        advance = Signal()              # the execute cycle that ends the instruction
        m.d.comb += [advance.eq(execute & ~stall), rom_r.addr.eq(next_pc), rom_r.en.eq(advance)]
        self.registers["advance"] = advance

        with m.If(advance):
            m.d.sync += [pc.eq(next_pc), booted.eq(1)]
        with m.If(~execute):
            m.d.sync += execute.eq(1)
        with m.Elif(~stall):
            m.d.sync += execute.eq(0)

        with m.If(advance & booted):
            with m.Switch(cls):
                with m.Case(0, 1):
                    with m.If(fn != _Fn.CMP):
                        m.d.sync += a.eq(result)
                    m.d.sync += z.eq(result == 0)
                    with m.If(arithmetic):
                        m.d.sync += c.eq(total[8])
                with m.Case(2):
                    with m.Switch(fn):
                        with m.Case(_Misc.ST):
                            m.d.comb += [ram_w.addr.eq(addr), ram_w.data.eq(a), ram_w.en.eq(~is_port)]
                        with m.Case(_Misc.LDX):
                            m.d.sync += x.eq(operand)
                        with m.Case(_Misc.INX):
                            m.d.sync += x.eq(x + 1)
                        with m.Case(_Misc.TAX):
                            m.d.sync += x.eq(Cat(a, operand[:3]))
                        with m.Case(_Misc.TXA):
                            m.d.sync += a.eq(x[:8])
                        with m.Case(_Misc.SHIFT):
                            shifted = Mux(operand[0], a >> 1, (a << 1)[:8])
                            m.d.sync += [a.eq(shifted), z.eq(shifted == 0),
                                         c.eq(Mux(operand[0], a[0], a[7]))]
                        with m.Case(_Misc.RET):
                            m.d.sync += [stack[i].eq(stack[i + 1]) for i in range(STACK_DEPTH - 1)]
                with m.Case(3):
                    with m.If(fn == _Cond.CALL):
                        m.d.sync += stack[0].eq(pc + 1)
                        m.d.sync += [stack[i + 1].eq(stack[i]) for i in range(STACK_DEPTH - 1)]
        return m
