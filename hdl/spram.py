"""Single-port RAM for the weights: the iCE40UP SPRAM (`SB_SPRAM256KA`) and a
behavioural model of it with the same timing, and the two-bank weight store of
`CoreConfig(weight_memory="spram")`.

`SB_SPRAM256KA` (iCE40UP3K/UP5K; the UP5K has 4) is 16384 x 16 bits, one port:
each clock edge with `CHIPSELECT` does either one read (`WREN = 0`: `DATAOUT`
takes the word at `ADDRESS`, so the data is there one cycle after the address)
or one write (`WREN = 1`, nibble write enables `MASKWREN`; `DATAOUT` becomes
undefined); without `CHIPSELECT`, `DATAOUT` holds. It has no initial contents.

- `SPRAMModel`: that behaviour in plain Amaranth (a `lib.memory.Memory`), for the
  Amaranth simulator and Verilator; after a write its read data is a poison
  pattern, so a design that uses read data the cycle after a write (or a read
  that lost to a write) fails the bit-exact tests instead of passing by luck.
- `SinglePortRAM`: any width and depth, tiled from 16-bit, 16K-word SPRAMs
  (`cells="sb_spram256ka"`) or from models (`cells="model"`), with the same
  tiling, address decode and read-data select in both cases.
- `TwoBankMemory`: two `SinglePortRAM` banks selected by one address bit, with a
  read request and a write request per cycle; they may share a cycle when they
  go to different banks. A conflict (both to one bank) lets the write win and
  drops the read (the model then returns poison), and raises `conflict`.
"""

from amaranth.hdl import C, Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["SPRAM_WIDTH", "SPRAM_DEPTH", "CELLS", "SPRAMModel", "SinglePortRAM", "TwoBankMemory",
           "spram_tiles"]

#: Width and depth of one SB_SPRAM256KA.
SPRAM_WIDTH = 16
SPRAM_DEPTH = 16384
#: What a `SinglePortRAM` is built from.
CELLS = ("model", "sb_spram256ka")
#: `SPRAMModel`'s read data after a write (SB_SPRAM256KA's is undefined).
POISON = 0xDEAD


def spram_tiles(width, depth, tile_depth=SPRAM_DEPTH):
    """(columns, rows) of 16-bit, `tile_depth`-word tiles that hold `depth` x `width`."""
    return -(-width // SPRAM_WIDTH), -(-depth // tile_depth)


class SPRAMModel(wiring.Component):
    """Behavioural SB_SPRAM256KA (see the module docstring): `en` is CHIPSELECT,
    `we` WREN, `mask` MASKWREN (one bit per nibble), `rdata` DATAOUT.

    `depth` may be smaller than the real 16384 words (a model only needs the
    words the design addresses); `init` fills the words, to stand for the
    undefined contents at power-up.
    """

    def __init__(self, depth=SPRAM_DEPTH, init=()):
        self.depth = depth
        self._init = list(init)
        super().__init__({
            "addr": In(max(1, ceil_log2(depth))),
            "wdata": In(SPRAM_WIDTH),
            "mask": In(4, init=0b1111),
            "we": In(1),
            "en": In(1),
            "rdata": Out(SPRAM_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        # One port: a read and a write never share a cycle. An asynchronous read and a
        # register, which Yosys merges into a block RAM read port without emulating
        # read-first collisions (`no_rw_check`; see `core.registered_read_port`).
        m.submodules.mem = mem = Memory(shape=SPRAM_WIDTH, depth=self.depth, init=self._init,
                                        attrs={"no_rw_check": 1})
        rd = mem.read_port(domain="comb")
        wr = mem.write_port(granularity=4)
        data = Signal(SPRAM_WIDTH, reset_less=True)
        with m.If(self.en & ~self.we):
            m.d.sync += data.eq(rd.data)
        poisoned = Signal()
        m.d.comb += [
            rd.addr.eq(self.addr),
            wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(Mux(self.en & self.we, self.mask, 0)),
            self.rdata.eq(Mux(poisoned, POISON, data)),
        ]
        with m.If(self.en):
            m.d.sync += poisoned.eq(self.we)
        return m


class SinglePortRAM(wiring.Component):
    """A `depth` x `width` single-port RAM with SB_SPRAM256KA timing, from SPRAM tiles.

    Ports: `addr`, `wdata`, `we`, `en` (no access without it), `rdata` (the word
    read at the previous `en & ~we` edge; holds otherwise, undefined after a write).
    Tiles: `ceil(width / 16)` side by side, `ceil(depth / tile_depth)` deep; the
    top address bits pick a row of tiles, and a register of them (loaded on
    every access) picks the read data.
    """

    def __init__(self, width, depth, cells="model", *, tile_depth=SPRAM_DEPTH, init_seed=None):
        if cells not in CELLS:
            raise ValueError(f"SinglePortRAM cells = {cells!r}: allowed {', '.join(CELLS)}")
        if tile_depth & (tile_depth - 1) or not 1 <= tile_depth <= SPRAM_DEPTH:
            raise ValueError(f"SinglePortRAM tile_depth = {tile_depth}: a power of two up to {SPRAM_DEPTH}")
        if cells == "sb_spram256ka" and tile_depth != SPRAM_DEPTH:
            raise ValueError("SB_SPRAM256KA tiles are 16384 words deep")
        self.width, self.depth, self.cells, self.tile_depth = width, depth, cells, tile_depth
        self.init_seed = init_seed
        self.columns, self.rows = spram_tiles(width, depth, tile_depth)
        super().__init__({
            "addr": In(max(1, ceil_log2(depth))),
            "wdata": In(width),
            "we": In(1),
            "en": In(1),
            "rdata": Out(width),
        })

    def _garbage(self, words, salt):
        """Deterministic junk standing for the undefined contents at power-up."""
        if self.init_seed is None:
            return ()
        x = (self.init_seed * 0x9E3779B1 + salt * 0x85EBCA6B) & 0xFFFF_FFFF
        out = []
        for _ in range(words):
            x ^= (x << 13) & 0xFFFF_FFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFF_FFFF
            out.append(x & 0xFFFF)
        return out

    def elaborate(self, platform):
        m = Module()
        tile_bits = ceil_log2(self.tile_depth)
        row_sel = self.addr[tile_bits:] if self.rows > 1 else C(0, 1)
        tile_addr = self.addr[:tile_bits] if tile_bits else C(0, 1)
        wdata = Cat(self.wdata, C(0, self.columns * SPRAM_WIDTH - self.width))
        row_data = []
        for r in range(self.rows):
            cs = self.en & (row_sel == r)
            outs = []
            for c in range(self.columns):
                dout = Signal(SPRAM_WIDTH, name=f"dout_r{r}_c{c}")
                din = wdata[c * SPRAM_WIDTH:(c + 1) * SPRAM_WIDTH]
                if self.cells == "sb_spram256ka":
                    m.submodules[f"spram_r{r}_c{c}"] = Instance(
                        "SB_SPRAM256KA",
                        i_ADDRESS=Cat(tile_addr, C(0, 14))[:14], i_DATAIN=din, i_MASKWREN=C(0b1111, 4),
                        i_WREN=self.we, i_CHIPSELECT=cs, i_CLOCK=ClockSignal(),
                        i_STANDBY=C(0, 1), i_SLEEP=C(0, 1), i_POWEROFF=C(1, 1),
                        o_DATAOUT=dout)
                else:
                    # A model needs only the words this RAM addresses.
                    words = min(self.tile_depth, self.depth - r * self.tile_depth)
                    model = SPRAMModel(depth=words, init=self._garbage(words, r * self.columns + c))
                    m.submodules[f"spram_r{r}_c{c}"] = model
                    m.d.comb += [model.addr.eq(tile_addr), model.wdata.eq(din), model.we.eq(self.we),
                                 model.en.eq(cs), dout.eq(model.rdata)]
                outs.append(dout)
            row_data.append(Cat(*outs)[:self.width])
        if self.rows > 1:
            # Follows every access, so after a write rdata is the written tiles' (undefined) data.
            read_row = Signal(range(self.rows))
            with m.If(self.en):
                m.d.sync += read_row.eq(row_sel)
            rdata = row_data[0]
            for r in range(1, self.rows):
                rdata = Mux(read_row == r, row_data[r], rdata)
            m.d.comb += self.rdata.eq(rdata)
        else:
            m.d.comb += self.rdata.eq(row_data[0])
        return m


class TwoBankMemory(wiring.Component):
    """Two single-port banks; address bit `bank_bit` picks the bank.

    A word at logical address `a` lives in bank `a[bank_bit]` at
    `Cat(a[:bank_bit], a[bank_bit + 1:])`. Each cycle takes one read request
    (`r_en`, `r_addr`; `r_data` the next cycle) and one write request (`w_en`,
    `w_addr`, `w_data`): both are served when they go to different banks. When
    both go to one bank the write wins, the read is dropped and `conflict` is 1
    (a schedule error; the core never does it).
    """

    def __init__(self, width, depth, bank_bit, cells="model", *, tile_depth=SPRAM_DEPTH, init_seed=None):
        self.width, self.depth, self.bank_bit = width, depth, bank_bit
        low = 1 << bank_bit
        # Logical addresses 0 .. depth-1; each bank holds every other block of `low` words.
        blocks = -(-depth // low)
        self.bank_depth = -(-blocks // 2) * low
        self.banks = [SinglePortRAM(width, self.bank_depth, cells, tile_depth=tile_depth,
                                    init_seed=None if init_seed is None else init_seed + 7 * b)
                      for b in range(2)]
        addr_bits = max(bank_bit + 1, ceil_log2(depth))
        super().__init__({
            "r_en": In(1), "r_addr": In(addr_bits), "r_data": Out(width),
            "w_en": In(1), "w_addr": In(addr_bits), "w_data": In(width),
            "conflict": Out(1),
        })

    def _split(self, addr):
        b = self.bank_bit
        return addr[b], Cat(addr[:b], addr[b + 1:])

    def elaborate(self, platform):
        m = Module()
        r_bank, r_local = self._split(self.r_addr)
        w_bank, w_local = self._split(self.w_addr)
        for b, bank in enumerate(self.banks):
            m.submodules[f"bank{b}"] = bank
            write = self.w_en & (w_bank == b)
            read = self.r_en & (r_bank == b)
            m.d.comb += [
                bank.addr.eq(Mux(write, w_local, r_local)), bank.wdata.eq(self.w_data),
                bank.we.eq(write), bank.en.eq(write | read),
            ]
        m.d.comb += self.conflict.eq(self.r_en & self.w_en & (r_bank == w_bank))
        read_bank = Signal()
        with m.If(self.r_en):
            m.d.sync += read_bank.eq(r_bank)
        m.d.comb += self.r_data.eq(Mux(read_bank, self.banks[1].rdata, self.banks[0].rdata))
        return m
