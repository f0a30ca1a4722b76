"""The core's configuration, port layouts and enums, written once.

Everything a bus model, the link or the host needs to talk to `Core` lives
here: the build-time `CoreConfig`, the command/response and step stream
layouts, the memory spaces, the global registers, and helpers to pack and
unpack layout fields into plain integers. No other module repeats a field
offset or an enum value.

The memory spaces, the global registers and the neuron word layouts are built
from the device description, `neurofabric.contract.device` (the memory map in
docs/core.md and docs/protocol.md is generated from it too):

- `Space` has one member per `MemoryTable` (its `space` name and `code`);
- `Reg` has one member per `Register` (its name in capitals, its address);
- `CoreConfig.neuron_params_layout` / `neuron_state_layout` are
  `neuron_params_fields(S)` / `neuron_state_fields(S)` as structs.
"""

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum
from amaranth.utils import bits_for, ceil_log2

from neurofabric.contract.device import (MEMORY_TABLES, REGISTERS, WIDTH_LIMITS, CoreShape, neuron_params_fields,
                                         neuron_state_fields)

__all__ = [
    "CoreConfig", "WEIGHT_MEMORIES", "Op", "Space", "Reg", "StepEvent", "READ_ONLY_REGS",
    "pack", "unpack", "split_lanes", "join_lanes",
]


class Op(enum.Enum, shape=2):
    """What a command on the `cmd` stream does."""
    READ = 0         #: read one memory word or register; answered on `rdata`
    WRITE = 1        #: write one memory word or register; no answer
    RESET_STATE = 2  #: clear v, i, r, s, x, y and the spike history, set g to the seed (spec section 4)


def _enum(name, doc, members):
    """An `amaranth.lib.enum.Enum` with `members` ({name: value}), as narrow as its largest value."""
    shape = max(1, max(members.values()).bit_length())
    namespace = enum.EnumType.__prepare__(name, (enum.Enum,), shape=shape)
    namespace.update(members, __doc__=doc, __module__=__name__, __qualname__=name)
    return enum.EnumType(name, (enum.Enum,), namespace, shape=shape)


#: The address spaces of `Op.READ` / `Op.WRITE`: one per table of the memory map
#: (`contract.device.MEMORY_TABLES`: GLOBAL, WEIGHT, NEURON, STATE, PRE_TRACE,
#: POST_TRACE, PRE_MASK, POST_MASK, RATE).
Space = _enum("Space", "The address spaces of `Op.READ` / `Op.WRITE`.",
              {table.space: table.code for table in MEMORY_TABLES})

#: Addresses of the `Space.GLOBAL` registers (`contract.device.REGISTERS`, in
#: capitals: `Reg.N_USED` is register `n_used`).
Reg = _enum("Reg", "Addresses of the `Space.GLOBAL` registers.",
            {register.name.upper(): address for address, register in enumerate(REGISTERS)})

#: Registers that ignore writes.
READ_ONLY_REGS = frozenset(Reg[register.name.upper()] for register in REGISTERS if register.read_only)


class StepEvent(enum.Enum, shape=2):
    """Kinds of the records on the `step_out` stream."""
    SPIKE = 0  #: neuron `neuron` spiked in this step (ascending neuron order)
    PROBE = 1  #: `v` and `i` of neuron `neuron` after the step (when probed)
    END = 2    #: end of the step's output
    INPUT = 3  #: input `neuron` was in this step's input set U (host or generator; when asked)


#: The values of `CoreConfig.weight_memory`.
WEIGHT_MEMORIES = ("dual", "spram")


@dataclass(frozen=True)
class CoreConfig:
    """Build-time parameters of the core (spec section 1) and derived shapes.

    `lanes` weights share a memory word; it must be a power of two dividing `n`.

    `weight_memory` is how the weights are stored:

    - `"dual"`: one simple dual-port memory (a read and a write every cycle);
      block RAM on ECP5, and the fastest schedule.
    - `"spram"`: two single-port banks (even and odd rows), at most one read or
      one write per bank per cycle, no initial contents: the iCE40UP's SPRAM
      (`SB_SPRAM256KA`). The host must write every weight word it uses before
      the first step. Needs `n // lanes` to be a power of two.

    `neurons_per_cycle` (1 or 2, at most `lanes`) is how many neurons the neuron pass
    updates per cycle: 2 keeps the neuron parameters and state in two memories (even
    and odd neurons) and has two neuron updates (4 more multipliers on the ECP5).

    `spike_counters` gives every neuron a 16-bit spike counter (`Space.COUNT`, the
    protocol's table `spike_counts`): one more memory of `n` x 16 bits (which the
    iCE40UP5K has no block RAM left for; of the boards only the ULX3S-45F builds with it
    by default).

    `record_filter` puts a filter in the link (hdl/link.py) that drops the core's
    SPIKE records of neurons a RUN does not record (SUBSET, NO_RECORDS) before the
    link's controller sees them, so that its time per step follows the recorded
    spikes, not all of them: a memory of `n` bits and a few logic cells (which the
    iCE40UP5K has no room for).

    `step_blocks` lets the link send a RUN's step records in blocks (RunFlags.BLOCKS,
    STEP_BLOCK frames: several steps' bitmaps in one frame): more firmware, a program
    ROM of 2,048 words instead of 1,024 (two more iCE40 block RAMs than the
    iCE40UP5K has left).
    """

    n: int
    m: int
    S: int = 16
    W: int = 8
    T: int = 8
    lanes: int = 4
    weight_memory: str = "dual"
    neurons_per_cycle: int = 1
    pot_banks: int = 1
    spike_counters: bool = True
    record_filter: bool = True
    step_blocks: bool = True

    def __post_init__(self):
        for name, value, lo, hi in (("n", self.n, 1, 1 << 16), ("m", self.m, 1, 1 << 16),
                                    ("S", self.S, *WIDTH_LIMITS["state_bits"]),
                                    ("W", self.W, *WIDTH_LIMITS["weight_bits"]),
                                    ("T", self.T, *WIDTH_LIMITS["trace_bits"]), ("lanes", self.lanes, 1, 128)):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"CoreConfig.{name} = {value!r} is out of range: allowed {lo}..{hi}")
        if self.lanes & (self.lanes - 1):
            raise ValueError(f"CoreConfig.lanes = {self.lanes} is not a power of two")
        if self.n % self.lanes:
            raise ValueError(f"CoreConfig.n = {self.n} is not a multiple of lanes = {self.lanes}")
        if self.weight_memory not in WEIGHT_MEMORIES:
            raise ValueError(f"CoreConfig.weight_memory = {self.weight_memory!r}: allowed "
                             + ", ".join(repr(w) for w in WEIGHT_MEMORIES))
        if self.neurons_per_cycle not in (1, 2) or self.neurons_per_cycle > self.lanes:
            raise ValueError(f"CoreConfig.neurons_per_cycle = {self.neurons_per_cycle!r}: allowed 1, or 2 with "
                             f"at least 2 lanes (lanes = {self.lanes})")
        for name in ("spike_counters", "record_filter", "step_blocks"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"CoreConfig.{name} = {getattr(self, name)!r}: allowed True or False")
        words = self.n // self.lanes
        banks = self.pot_banks
        if not isinstance(banks, int) or banks < 1 or banks & (banks - 1) or words % banks:
            raise ValueError(f"CoreConfig.pot_banks = {banks!r}: allowed a power of two dividing "
                             f"n // lanes = {words}")
        if banks > 1 and (self.weight_memory != "dual" or words & (words - 1)):
            raise ValueError(f"CoreConfig.pot_banks = {banks} needs 'dual' weights and n // lanes a power of "
                             f"two (weight_memory = {self.weight_memory!r}, n // lanes = {words})")
        if self.weight_memory == "spram" and words & (words - 1):
            raise ValueError(f"CoreConfig.weight_memory = 'spram' needs n // lanes to be a power of two; "
                             f"n = {self.n}, lanes = {self.lanes} give {words}")

    @staticmethod
    def fitting_pot_banks(n, lanes, banks):
        """The most weight banks, at most `banks` (a power of two), that a core of `n`
        neurons in `lanes` lanes allows as `pot_banks`: none (1) unless `n // lanes` is a
        power of two, else at most `n // lanes`."""
        words = n // lanes
        return 1 if words < 1 or words & (words - 1) else min(banks, words)

    # -- sizes ---------------------------------------------------------------
    @property
    def sources(self):
        """Rows of the weight matrix, m + n."""
        return self.m + self.n

    @property
    def words_per_row(self):
        """Memory words per weight row, n // lanes."""
        return self.n // self.lanes

    @property
    def weight_words(self):
        return self.sources * self.words_per_row

    @property
    def lane_bits(self):
        """log2(lanes)."""
        return ceil_log2(self.lanes)

    @property
    def acc_bits(self):
        """Exact accumulator of spec step 2: W + ceil(log2(m+n)) + 1 bits."""
        return self.W + ceil_log2(self.sources) + 1

    @property
    def source_bits(self):
        return max(1, ceil_log2(self.sources))

    @property
    def neuron_bits(self):
        return max(1, ceil_log2(self.n))

    @property
    def input_bits(self):
        return max(1, ceil_log2(self.m))

    @property
    def addr_bits(self):
        return max(bits_for(self.weight_words - 1), bits_for(self.sources - 1), Reg.as_shape().width)

    @property
    def data_bits(self):
        """Width of a command's data and of a read word: the widest word of the memory map."""
        shape = self.shape
        return max(table.word_bits(shape) for table in MEMORY_TABLES)

    # -- layouts -------------------------------------------------------------
    @property
    def shape(self):
        """The device description's `CoreShape` of this configuration."""
        return CoreShape(n=self.n, m=self.m, state_bits=self.S, weight_bits=self.W, trace_bits=self.T,
                         lanes=self.lanes)

    @staticmethod
    def _struct(fields):
        return data.StructLayout({name: signed(bits) if is_signed else unsigned(bits)
                                  for name, bits, is_signed in fields})

    @property
    def neuron_params_layout(self):
        """Per-neuron parameters (spec section 3) except plastic_post: `neuron_params_fields(S)`."""
        return self._struct(neuron_params_fields(self.S))

    @property
    def neuron_state_layout(self):
        """Per-neuron state (spec section 4) except the post trace y: `neuron_state_fields(S)`."""
        return self._struct(neuron_state_fields(self.S))

    @property
    def command_layout(self):
        """A memory-access command on the `cmd` stream."""
        return data.StructLayout({
            "op": Op,
            "space": Space,
            "addr": unsigned(self.addr_bits),
            "data": unsigned(self.data_bits),
        })

    @property
    def step_input_layout(self):
        """One record of a step's input list on `step_in`.

        A step is zero or more records with `end = 0`, each naming an input that
        spikes (`source` < m), then one record with `end = 1` (its `source` is
        ignored) that starts the step; `probe` of that record asks for v and i,
        `inputs` for the step's input set U (host and generated inputs).
        """
        return data.StructLayout({
            "source": unsigned(self.input_bits),
            "end": unsigned(1),
            "probe": unsigned(1),
            "inputs": unsigned(1),
        })

    @property
    def step_output_layout(self):
        """One record of a step's output on `step_out`: `neuron` is neuron j of a
        SPIKE or PROBE record, input k of an INPUT record."""
        return data.StructLayout({
            "kind": StepEvent,
            "neuron": unsigned(max(self.neuron_bits, self.input_bits)),
            "v": signed(self.S),
            "i": signed(self.S),
        })

    def key(self):
        """A short text naming the configuration (for build folders)."""
        key = f"n{self.n}_m{self.m}_S{self.S}_W{self.W}_T{self.T}_l{self.lanes}"
        if self.neurons_per_cycle != 1:
            key += f"_p{self.neurons_per_cycle}"
        if self.pot_banks != 1:
            key += f"_b{self.pot_banks}"
        if not self.spike_counters:
            key += "_nc"
        if not self.record_filter:
            key += "_nf"
        if not self.step_blocks:
            key += "_nb"
        return key if self.weight_memory == "dual" else f"{key}_{self.weight_memory}"


# -- packing helpers (host side and bus models) ------------------------------

def _field_width_signed(shape):
    if isinstance(shape, type) and issubclass(shape, enum.Enum):
        return shape.as_shape().width, False
    s = shape if hasattr(shape, "signed") else shape.as_shape()
    return s.width, s.signed


def pack(layout, **values):
    """Pack field values (ints or enum members) into an integer of `layout`."""
    word = 0
    for name, field in layout:
        value = values.pop(name, 0)
        if isinstance(value, enum.Enum):
            value = value.value
        width, _ = _field_width_signed(field.shape)
        word |= (int(value) & ((1 << width) - 1)) << field.offset
    if values:
        raise KeyError(f"unknown fields for this layout: {', '.join(values)}")
    return word


def unpack(layout, word):
    """Unpack an integer of `layout` into a dict of ints (signed fields sign-extended)."""
    out = {}
    word = int(word)
    for name, field in layout:
        width, is_signed = _field_width_signed(field.shape)
        value = (word >> field.offset) & ((1 << width) - 1)
        if is_signed and value >> (width - 1):
            value -= 1 << width
        out[name] = value
    return out


def split_lanes(word, lanes, bits, signed_lanes=True):
    """The `lanes` values of a packed memory word, lane 0 first."""
    out = []
    for lane in range(lanes):
        value = (int(word) >> (lane * bits)) & ((1 << bits) - 1)
        if signed_lanes and value >> (bits - 1):
            value -= 1 << bits
        out.append(value)
    return out


def join_lanes(values, bits):
    """Pack values (lane 0 first) into a memory word of `bits` per lane."""
    word = 0
    for lane, value in enumerate(values):
        word |= (int(value) & ((1 << bits) - 1)) << (lane * bits)
    return word
