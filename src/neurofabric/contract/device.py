"""The device, described once: global registers, neuron words, memory tables.

Pure Python. The gateware builds its register enum, register file, word layouts and
address spaces from this module (hdl/core_ports.py, hdl/registers.py); the host
encodes and decodes registers and words with it (host/memory_map.py); the wire
protocol maps its tables onto commands (`contract.protocol`); the tables of
docs/protocol.md and docs/core.md are generated from it and checked by
tests/test_protocol_doc.py.

- A global register is one `Register` in `REGISTERS`: its address is its
  position, its width, signedness, access and reset value are written there, and
  the core's register file, the `Reg` enum and the host's encoders follow.
- A per-neuron parameter is its range in `model.NEURON_FIELDS` (what the spec
  allows) and its place in `NEURON_PARAMS_WORD` (where the core keeps it); the
  word's layout, width and packing follow. Both lists are checked against each
  other when this module is imported.

Widths are rules evaluated on a `CoreShape` (n, m, S, W, T, lanes): a field spec
of `model` (``("s", "weight_bits")``, ``("u", "trace_bits")``, ``(0, 31)``),
``("count", "n")`` for a number of used neurons or inputs (0 .. n, clamped), or
``("bits", 32)``.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .errors import LinkError
from .model import (CORE_MODEL_VERSION, GENERATOR_STATE_FIELDS, GLOBAL_FIELDS, NEURON_FIELDS, SOURCE_FIELDS,
                    SOURCE_STATE_FIELDS, STATE_FIELDS, STIMULUS_FIELDS, WIDTH_LIMITS, Widths, field_bits,
                    field_range)

__all__ = [
    "CoreShape", "Register", "REGISTERS", "GLOBAL_REGISTERS", "READ_ONLY_GLOBALS", "SIGNED_GLOBALS",
    "WRITABLE_GLOBALS", "NETWORK_GLOBALS", "GLOBAL_WORD_BITS", "register", "register_address",
    "global_register_bits", "network_register_values",
    "NEURON_PARAMS_WORD", "NEURON_STATE_WORD", "neuron_params_fields", "neuron_state_fields", "word_fields_bits",
    "MemoryTable", "MEMORY_TABLES", "memory_table", "WIDTH_LIMITS", "SPIKE_COUNT_BITS",
]


@dataclass(frozen=True)
class CoreShape:
    """The build-time sizes of a core (spec section 1, and lanes), as a HELLO reply announces them.

    It has the attribute names of `model.Widths` (state_bits, weight_bits,
    trace_bits), so field specs evaluate on it.
    """

    n: int
    m: int
    state_bits: int
    weight_bits: int
    trace_bits: int
    lanes: int

    @classmethod
    def from_hello(cls, hello):
        """From a HELLO reply: a dict of `HELLO_REPLY_FIELDS` or an object with those attributes."""
        get = hello.get if isinstance(hello, dict) else lambda name: getattr(hello, name)
        return cls(*(int(get(name)) for name in ("n", "m", "state_bits", "weight_bits", "trace_bits", "lanes")))

    @property
    def sources(self):
        return self.m + self.n

    @property
    def words_per_row(self):
        """Weight words per source row: n // lanes."""
        return self.n // self.lanes

    def weight_address(self, row, column_word):
        """Word address of weights ``w[row][column_word*lanes ...]`` (row: input k, or m + neuron j)."""
        return row * self.words_per_row + column_word


# -- the global registers ------------------------------------------------------

#: Every global register travels (and is read) as a 32-bit word.
GLOBAL_WORD_BITS = 32


@dataclass(frozen=True)
class Register:
    """One global register of the core (memory space GLOBAL, table `globals`).

    `width` is a width rule (see the module's notes). `access` is "rw" or "ro"
    (read only: writes are ignored). A read-write register holds `reset` after
    reset: an int, "min" or "max" of its range, or a `CoreShape` attribute
    ("n"). A read-only register is the constant `value` (an int or a
    `CoreShape` attribute) or, when `value` is None, a value the core drives
    (a counter). `network` marks the registers that hold the network field of
    the same name (`model.GLOBAL_FIELDS`).
    """

    name: str
    width: tuple
    access: str = "rw"
    reset: int | str = 0
    value: int | str | None = None
    network: bool = False
    doc: str = ""

    @property
    def read_only(self):
        return self.access == "ro"

    @property
    def signed(self):
        return self.width[0] == "s"

    @property
    def counts(self):
        """The `CoreShape` size a used-count register is clamped to ("n" or "m"), else None."""
        return self.width[1] if self.width[0] == "count" else None

    def bits(self, shape: CoreShape) -> int:
        """Bits of the register that the core keeps (a write keeps the low bits only)."""
        kind, arg = self.width
        if kind == "count":
            return getattr(shape, arg).bit_length()
        if kind == "bits":
            return arg
        return field_bits(self.width, shape)[0]

    def value_range(self, shape: CoreShape) -> tuple[int, int]:
        """The inclusive (lo, hi) range of the values a write may carry."""
        kind, arg = self.width
        if kind == "count":
            return 0, getattr(shape, arg)
        if kind == "bits":
            return 0, (1 << arg) - 1
        return field_range(self.width, shape)

    def reset_value(self, shape: CoreShape) -> int:
        """The value of a read-write register after reset."""
        if self.reset in ("min", "max"):
            return self.value_range(shape)[self.reset == "max"]
        if isinstance(self.reset, str):
            return getattr(shape, self.reset)
        return self.reset

    def constant(self, shape: CoreShape) -> int | None:
        """The value of a constant read-only register, None for a driven one or a read-write one."""
        if isinstance(self.value, str):
            return getattr(shape, self.value)
        return self.value


def _network(name, doc, reset=0):
    return Register(name, GLOBAL_FIELDS[name], reset=reset, network=True, doc=doc)


#: The global registers in address order (address = position). The writable ones
#: come first, so a host writes them all in one request from address 0.
REGISTERS = (
    _network("learn", "STDP on (spec section 5)"),
    _network("a_plus", "potentiation amplitude"),
    _network("a_minus", "depression amplitude"),
    _network("stdp_shift", "right shift of amplitude x trace"),
    _network("decay_pre", "pre trace decay factor (0: none, 4096: cleared each step)"),
    _network("decay_post", "post trace decay factor (0: none, 4096: cleared each step)"),
    _network("inc_pre", "pre trace increment"),
    _network("inc_post", "post trace increment"),
    _network("trace_mode", "0: traces add the increment, 1: traces are set to it"),
    _network("w_min", "lowest weight STDP leaves", reset="min"),
    _network("w_max", "highest weight STDP leaves", reset="max"),
    Register("n_used", ("count", "n"), reset="n",
             doc="neurons in use; neurons >= n_used never update or spike"),
    Register("m_used", ("count", "m"), reset="m", doc="inputs in use; input addresses >= m_used are dropped"),
    Register("period", ("bits", 32), doc="minimum cycles between step starts (0: as fast as possible)"),
    Register("seed", STIMULUS_FIELDS["seed"], reset=1,
             doc="the stimulus generator's seed; a write (and RESET_STATE) sets the generator state g to it"),
    Register("steps_done", ("bits", 32), "ro", doc="steps finished since the last RESET_STATE"),
    Register("last_step_cycles", ("bits", 32), "ro", doc="cycles of the last step"),
    Register("gen_state", GENERATOR_STATE_FIELDS["g"], "ro", doc="the stimulus generator's state g (spec 5.0)"),
    Register("version", ("bits", 32), "ro", value=CORE_MODEL_VERSION, doc="core model version"),
    Register("cfg_n", ("bits", 32), "ro", value="n", doc="neurons built"),
    Register("cfg_m", ("bits", 32), "ro", value="m", doc="inputs built"),
    Register("cfg_s", ("bits", 32), "ro", value="state_bits", doc="S built"),
    Register("cfg_w", ("bits", 32), "ro", value="weight_bits", doc="W built"),
    Register("cfg_t", ("bits", 32), "ro", value="trace_bits", doc="T built"),
    Register("cfg_lanes", ("bits", 32), "ro", value="lanes", doc="weights per weight word"),
)

#: The register names in address order.
GLOBAL_REGISTERS = tuple(r.name for r in REGISTERS)

#: Registers that ignore writes.
READ_ONLY_GLOBALS = frozenset(r.name for r in REGISTERS if r.read_only)

#: Registers holding a signed value (sent as two's complement of their width).
SIGNED_GLOBALS = frozenset(r.name for r in REGISTERS if r.signed)

#: The writable registers, in address order from 0.
WRITABLE_GLOBALS = tuple(r.name for r in REGISTERS if not r.read_only)

#: The registers a network sets: its learning fields and the used sizes, in address order from 0.
NETWORK_GLOBALS = tuple(r.name for r in REGISTERS if r.network or r.counts)

_BY_NAME = {r.name: r for r in REGISTERS}

assert len(_BY_NAME) == len(REGISTERS), "register names must be unique"
assert GLOBAL_REGISTERS[:len(WRITABLE_GLOBALS)] == WRITABLE_GLOBALS, "writable registers must come first"
assert GLOBAL_REGISTERS[:len(NETWORK_GLOBALS)] == NETWORK_GLOBALS, "network registers must come first"
assert [r.name for r in REGISTERS if r.network] == list(GLOBAL_FIELDS), \
    "every global network field (model.GLOBAL_FIELDS) needs its register, in the same order"
assert all(r.access in ("rw", "ro") and (r.value is None or r.read_only) for r in REGISTERS)


def register(name: str) -> Register:
    """The `Register` called `name`; `LinkError` naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise LinkError(f"no global register {name!r} (registers: {', '.join(GLOBAL_REGISTERS)})") from None


def register_address(name):
    """The address of register `name`."""
    return GLOBAL_REGISTERS.index(register(name).name)


def global_register_bits(name, shape):
    """Bits of register `name` that the core keeps (a write keeps the low bits only;
    n_used and m_used are clamped to n and m)."""
    return register(name).bits(shape)


def network_register_values(net):
    """``{name: value}`` of the registers a network sets (`NETWORK_GLOBALS`): its
    learning fields, n_used = its n and m_used = its m. `net` is a `Network` (or
    anything with those attributes)."""
    return {r.name: int(getattr(net, r.counts if r.counts else r.name)) for r in REGISTERS
            if r.name in NETWORK_GLOBALS}


# -- the neuron words ------------------------------------------------------------

#: The NEURON_PARAMS word (table `neuron_params`), field names from bit 0 up; their
#: widths are the ranges of `model.NEURON_FIELDS`. plastic_post is table `post_mask`.
NEURON_PARAMS_WORD = ("threshold", "v_reset", "bias", "reset_mode", "decay_mem", "decay_syn", "refractory")

#: The NEURON_STATE word (table `neuron_state`), from bit 0 up; widths from
#: `model.STATE_FIELDS`. The post trace y is table `post_trace`.
NEURON_STATE_WORD = ("v", "i", "r", "s")

assert set(NEURON_PARAMS_WORD) | {"plastic_post"} == set(NEURON_FIELDS), \
    "every per-neuron parameter (model.NEURON_FIELDS) needs its place: NEURON_PARAMS_WORD or a table"
assert set(NEURON_STATE_WORD) | {"y"} == set(STATE_FIELDS), \
    "every per-neuron state field (model.STATE_FIELDS) needs its place: NEURON_STATE_WORD or a table"


def _word_fields(names, specs, state_bits):
    widths = Widths(state_bits=int(state_bits))
    return tuple((name, *field_bits(specs[name], widths)) for name in names)


def neuron_params_fields(state_bits: int) -> tuple[tuple[str, int, bool], ...]:
    """The NEURON_PARAMS word (table PARAMS 0): ``(name, bits, signed)`` from bit 0 up.

    The core's `CoreConfig.neuron_params_layout` is built from this list."""
    return _word_fields(NEURON_PARAMS_WORD, NEURON_FIELDS, state_bits)


def neuron_state_fields(state_bits: int) -> tuple[tuple[str, int, bool], ...]:
    """The NEURON_STATE word (table STATE 0): ``(name, bits, signed)`` from bit 0 up.

    The core's `CoreConfig.neuron_state_layout` is built from this list."""
    return _word_fields(NEURON_STATE_WORD, STATE_FIELDS, state_bits)


def word_fields_bits(fields):
    """Width of a word of ``(name, bits, signed)`` fields."""
    return sum(bits for _, bits, _ in fields)


# -- the memory tables -----------------------------------------------------------

@dataclass(frozen=True)
class MemoryTable:
    """One table of the core's memory map.

    `space` and `code` are the core's address space for it (hdl.core_ports.Space);
    `word_bits(shape)` and `depth(shape)` its word width and number of words on a
    core of `shape`; `address` and `doc` say what an address and a word hold.
    """

    name: str
    space: str
    code: int
    word_bits: Callable[[CoreShape], int]
    depth: Callable[[CoreShape], int]
    address: str
    doc: str


def _bits_of(spec):
    return lambda shape: field_bits(spec, shape)[0]


#: Width of a `spike_counts` word: the core counts each neuron's spikes modulo 2**16, so
#: that a host reading the table at least every 65,535 steps knows every count exactly.
SPIKE_COUNT_BITS = 16

#: Every table of the memory map, by the core's space code.
MEMORY_TABLES = (
    MemoryTable("globals", "GLOBAL", 0, lambda s: GLOBAL_WORD_BITS, lambda s: len(REGISTERS),
                "a register's address", "the register, raw two's complement in its width"),
    MemoryTable("weights", "WEIGHT", 1, lambda s: s.lanes * s.weight_bits, lambda s: s.sources * s.words_per_row,
                "`k * (n / lanes) + c`", "weights `w[k][c*lanes + l]`, lane `l` at bits `l*W`"),
    MemoryTable("neuron_params", "NEURON", 2, lambda s: word_fields_bits(neuron_params_fields(s.state_bits)),
                lambda s: s.n, "neuron `j`", "the NEURON_PARAMS word"),
    MemoryTable("neuron_state", "STATE", 3, lambda s: word_fields_bits(neuron_state_fields(s.state_bits)),
                lambda s: s.n, "neuron `j`", "the NEURON_STATE word"),
    MemoryTable("pre_trace", "PRE_TRACE", 4, _bits_of(SOURCE_STATE_FIELDS["x"]), lambda s: s.sources,
                "source `k`", "`x[k]`"),
    MemoryTable("post_trace", "POST_TRACE", 5, _bits_of(STATE_FIELDS["y"]), lambda s: s.n,
                "neuron `j`", "`y[j]`"),
    MemoryTable("pre_mask", "PRE_MASK", 6, _bits_of(SOURCE_FIELDS["plastic_pre"]), lambda s: s.sources,
                "source `k`", "`plastic_pre[k]`"),
    MemoryTable("post_mask", "POST_MASK", 7, _bits_of(NEURON_FIELDS["plastic_post"]), lambda s: s.n,
                "neuron `j`", "`plastic_post[j]`"),
    MemoryTable("rates", "RATE", 8, _bits_of(STIMULUS_FIELDS["rate"]), lambda s: s.m,
                "input `k`", "the generator's `rate[k]` (spec 5.0)"),
    MemoryTable("spike_counts", "COUNT", 9, lambda s: SPIKE_COUNT_BITS, lambda s: s.n,
                "neuron `j`", "the spikes of neuron `j` since the last reset of the state, modulo 2^16 "
                "(a recording aid, not model state: nothing reads it back into the model)"),
)

_TABLES = {t.name: t for t in MEMORY_TABLES}
assert [t.code for t in MEMORY_TABLES] == list(range(len(MEMORY_TABLES)))


def memory_table(name: str) -> MemoryTable:
    """The `MemoryTable` called `name`."""
    try:
        return _TABLES[name]
    except KeyError:
        raise LinkError(f"no memory table {name!r} (tables: {', '.join(_TABLES)})") from None
