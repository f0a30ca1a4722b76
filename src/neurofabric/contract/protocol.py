"""The wire protocol's tables, written once: version, frames, commands, status codes, layouts.

Pure Python (no Amaranth). The gateware (hdl/framing.py, the command decoder
hdl/link.py) and the host (host/framing.py, host/records.py, host/memory_map.py,
host/link.py) both import it, so no number of the wire format appears in two
places; docs/protocol.md describes the same format for people, and its command and
status tables are generated from `COMMAND_PAYLOADS` and `STATUS_MEANINGS`
(tests/test_protocol_doc.py).

A frame on the wire::

    0x00  COBS( command | seq | length (u16 LE) | payload | crc (u16 LE) )  0x00

- `command`: a `Command` code; replies (every frame the device sends) carry
  ``command | REPLY_FLAG``.
- `seq`: sequence number chosen by the host, echoed in the reply; a retry
  repeats it (see `Command`).
- `length`: number of payload bytes, at most `MAX_PAYLOAD`.
- `crc`: CRC-16/CCITT-FALSE (`CRC_POLY`, `CRC_INIT`) over header and payload.
- COBS removes every 0x00 from the frame, so 0x00 only ever delimits frames. A
  delimiter is sent before and after each frame: a frame cut short (lost bytes,
  a reset mid-frame) then ends at the next frame's leading delimiter and costs
  only itself. Empty frames (two delimiters in a row) are ignored.

Every reply's first payload byte is a `Status`.

The memory tables of READ_*/WRITE_* are the device's (`contract.device.MEMORY_TABLES`);
this module gives each a command family and a table id (`TABLE_NAMES`).
"""

import enum
from dataclasses import dataclass

from .device import MEMORY_TABLES, memory_table
from .errors import LinkError

__all__ = [
    "PROTOCOL_VERSION", "DELIMITER", "REPLY_FLAG", "HEADER_FIELDS", "HEADER_SIZE",
    "CRC_SIZE", "MAX_PAYLOAD", "MAX_FRAME", "MAX_ENCODED_FRAME", "COBS_MAX_RUN",
    "CRC_POLY", "CRC_INIT", "cobs_max_encoded_size",
    "Command", "Status", "COMMAND_PAYLOADS", "STATUS_MEANINGS",
    "HELLO_REPLY_FIELDS", "STATUS_REPLY_FIELDS", "MEMORY_REQUEST_FIELDS",
    "RUN_REQUEST_FIELDS", "RUN_REPLY_FIELDS", "RunFlags", "pack_fields", "unpack_fields", "fields_size",
    "SpikeFormat", "SPIKE_RECORD_FIELDS", "SPIKE_ADDRESS_BYTES", "STEP_BLOCK_FIELDS", "BLOCK_MAX_STEPS",
    "block_steps",
    "PROBE_RECORD_FIELDS", "probe_value_bytes", "probe_chunk_neurons",
    "Family", "FAMILY_COMMANDS", "memory_family", "TableInfo", "TABLE_NAMES", "table_key",
    "word_bits", "table_depth", "table_info", "memory_tables", "word_bytes",
]


#: Version of this wire format, returned by HELLO. Bump on any incompatible change.
#: 2: RUN requests carry a flags byte (probes), PROBE_RECORD frames, HELLO's
#: build_id, STATUS's last_step_cycles and lost_records, NACK with BUSY.
#: 3 (core model 2): table PARAMS 3 (the generator's rates), the seed and
#: gen_state registers, the RUN flag INPUTS and INPUT_RECORD frames.
#: 4: SET_RECORD and the RUN flags SUBSET (step records of the recorded neurons only)
#: and GENERATED (a RUN request without input records).
#: 5: table STATE 3 (spike_counts, the core's spike counter per neuron) and the RUN flag
#: NO_RECORDS (a RUN that sends no records: the host reads the counts instead).
#: 6: the RUN flag BLOCKS and STEP_BLOCK frames (the step records of up to
#: `BLOCK_MAX_STEPS` steps in one frame); a device may refuse BLOCKS (BAD_VALUE).
PROTOCOL_VERSION = 6

#: The frame delimiter; COBS guarantees it appears nowhere inside a frame.
DELIMITER = 0x00

#: Set in the command byte of every frame the device sends.
REPLY_FLAG = 0x80

#: The header, in wire order: (name, bytes). Multi-byte fields are little-endian.
HEADER_FIELDS = (("command", 1), ("seq", 1), ("length", 2))
HEADER_SIZE = 4

#: CRC-16/CCITT-FALSE: polynomial x^16 + x^12 + x^5 + 1, init 0xFFFF, no
#: reflection, no final XOR. Check value: crc16(b"123456789") == 0x29B1.
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_SIZE = 2

#: Largest payload of one frame. 1024 bytes keeps a whole decoded frame
#: (`MAX_FRAME` = 1030 bytes) in three 4-kbit block RAMs of an iCE40, and at
#: 1 Mbaud a full frame takes about 10 ms on the wire.
MAX_PAYLOAD = 1024

#: Largest decoded frame: header + payload + CRC.
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE

#: Longest run of non-zero bytes one COBS code byte can cover.
COBS_MAX_RUN = 254


def cobs_max_encoded_size(n):
    """Largest COBS encoding of `n` bytes (this encoder's), without delimiters."""
    return n + n // COBS_MAX_RUN + 1


#: Largest frame on the wire, both delimiters included.
MAX_ENCODED_FRAME = cobs_max_encoded_size(MAX_FRAME) + 2

assert HEADER_SIZE == sum(size for _, size in HEADER_FIELDS)


class Command(enum.IntEnum):
    """Command codes (the header's command byte, without `REPLY_FLAG`).

    Payload layouts (all multi-byte integers little-endian). "Reply" lists the
    reply payload, whose first byte is always a `Status`; on any status other
    than OK the reply carries the status byte only.

    Retries: the device remembers the (command, seq) of the last request it
    answered and its reply. A request with the same command and seq is a retry:
    the device sends the same answer again (reads are read again; writes,
    RESET_STATE and RUN are not applied a second time; RUN does not resend its
    step records). The host uses a new seq (+1 mod 256) for every new request.

    HELLO (0x01)
        Request: empty. Reply: status, then `HELLO_REPLY_FIELDS`. Always
        executed (never treated as a retry); it also forgets the last seq, so
        the first request after HELLO is never taken for a retry.
    ECHO (0x02)
        Request: any bytes (at most ``MAX_PAYLOAD - 1``). Reply: status, then
        the same bytes. For link tests.
    STATUS (0x03)
        Request: empty. Reply: status, then `STATUS_REPLY_FIELDS`.
    RESET_STATE (0x04)
        Request: empty. Clears the neuron state, traces and spike history (spec
        section 4). Reply: status.
    SET_RECORD (0x05)
        Request: a bitmap of the n neurons (``ceil(n / 8)`` bytes, bit k % 8
        of byte k // 8 for neuron k; bits from n on zero, else BAD_VALUE).
        Reply: status. The neurons that the step records of a RUN with
        `RunFlags.SUBSET` cover: their spikes alone, so the line carries
        nothing for the others. Kept until the next SET_RECORD; every neuron
        when the device starts.
    WRITE_GLOBALS, WRITE_PARAMS, WRITE_WEIGHTS, WRITE_STATE (0x10, 0x12, 0x14, 0x16)
        Request: `MEMORY_REQUEST_FIELDS` (table, address, count), then `count`
        words of ``word_bytes`` bytes each. Reply: status.
    READ_GLOBALS, READ_PARAMS, READ_WEIGHTS, READ_STATE (0x11, 0x13, 0x15, 0x17)
        Request: `MEMORY_REQUEST_FIELDS`. Reply: status, then `count` words.

        Tables: GLOBALS 0 = the global registers; PARAMS 0 = per-neuron
        parameters, 1 = pre plasticity mask (per source), 2 = post plasticity
        mask (per neuron), 3 = the stimulus generator's rates (per input);
        WEIGHTS 0 = the weight words (`lanes` weights per
        word, row-major by source); STATE 0 = per-neuron state (v, i, r, s),
        1 = pre traces x, 2 = post traces y. Addresses and word layouts are the
        core's memory map (contract/device.py, docs/core.md); a word travels in
        ``word_bytes = ceil(word_bits / 8)`` bytes, little-endian, unused high
        bits zero. An address range outside the table is BAD_ADDRESS; a
        payload whose size does not match `count` is BAD_LENGTH.
    RUN (0x20)
        Request: `RUN_REQUEST_FIELDS` (steps, flags), then `steps` spike records
        of the m inputs (see `encode_spikes`, `encode_run_request`), one per
        step in order; their step fields count from 0 within this request
        (none with `RunFlags.GENERATED`: every step's host inputs are empty, and
        the payload ends with the flags). `flags` is a `RunFlags`. Runs the steps, sending one STEP_RECORD per
        step (with `RunFlags.INPUTS`, its INPUT_RECORD right before it; with
        `RunFlags.PROBE`, its PROBE_RECORDs right after it), then the reply:
        status, then `RUN_REPLY_FIELDS` (steps run by this request, u32).
        The whole request is checked before the first step runs; a refused
        RUN runs nothing. While a RUN runs, the device answers STATUS and
        refuses every other request with BUSY.
    STEP_RECORD (0x21)
        Sent by the device only, with `REPLY_FLAG`, one per step of a RUN, seq =
        the RUN request's seq. Payload: status, then one spike record of the n
        neurons whose step field is the device's running step counter (cleared
        by RESET_STATE), so a lost record shows as a gap. With
        `RunFlags.SUBSET` the record holds only the spikes of the neurons
        SET_RECORD named (bitmap or address list, whichever is shorter, as
        always).
    PROBE_RECORD (0x22)
        Sent by the device only, with `REPLY_FLAG` and the RUN's seq, after each
        STEP_RECORD of a RUN with `RunFlags.PROBE`: status, then
        `PROBE_RECORD_FIELDS` (step, first neuron, count), then v and i of
        neurons first .. first+count-1 (see `encode_probe_record`). A step's
        n_used neurons come in chunks of `probe_chunk_neurons(S)`, ascending.
    STEP_BLOCK (0x24)
        Sent by the device only, with `REPLY_FLAG` and the RUN's seq, instead
        of STEP_RECORDs in a RUN with `RunFlags.BLOCKS`: status, then
        `STEP_BLOCK_FIELDS` (the first step's counter value, `steps`, `bytes`),
        then per step `bytes` bytes: the bitmap of neurons 0 .. 8 * bytes - 1
        (bit j % 8 of byte j // 8; see `decode_step_block`). `bytes` is
        ceil(n / 8), or with `RunFlags.SUBSET` the bytes of the SET_RECORD
        mask up to its last nonzero one; `steps` is at most `BLOCK_MAX_STEPS`
        and the frame at most `MAX_PAYLOAD`. The blocks of a RUN hold its steps
        in order, each once; while a block is being sent the device answers no
        request (it does when the block is complete).
    INPUT_RECORD (0x23)
        Sent by the device only, with `REPLY_FLAG` and the RUN's seq, before
        each STEP_RECORD of a RUN with `RunFlags.INPUTS`: status, then one
        spike record of the m inputs, the step's input set U (the host's
        inputs and the generator's, spec section 5.0), with the step field of
        the STEP_RECORD that follows.
    NACK (0x7F)
        Sent by the device only, with `REPLY_FLAG` and seq 0, when it drops a
        frame: status BAD_CRC (bad CRC), BAD_LENGTH (bad COBS, too short, too
        long, length field wrong) or BUSY (the frame arrived while the device
        was still taking in the previous one). A host with a request
        outstanding may resend it at once instead of waiting for its time-out.
    """

    HELLO = 0x01
    ECHO = 0x02
    STATUS = 0x03
    RESET_STATE = 0x04
    SET_RECORD = 0x05
    WRITE_GLOBALS = 0x10
    READ_GLOBALS = 0x11
    WRITE_PARAMS = 0x12
    READ_PARAMS = 0x13
    WRITE_WEIGHTS = 0x14
    READ_WEIGHTS = 0x15
    WRITE_STATE = 0x16
    READ_STATE = 0x17
    RUN = 0x20
    STEP_RECORD = 0x21
    PROBE_RECORD = 0x22
    INPUT_RECORD = 0x23
    STEP_BLOCK = 0x24
    NACK = 0x7F


assert all(c < REPLY_FLAG for c in Command)


class Status(enum.IntEnum):
    """The first payload byte of every reply (meanings: `STATUS_MEANINGS`)."""

    OK = 0x00
    BAD_CRC = 0x01
    UNKNOWN_COMMAND = 0x02
    BAD_LENGTH = 0x03
    BAD_ADDRESS = 0x04
    BUSY = 0x05
    OVERFLOW = 0x06
    BAD_VALUE = 0x07


#: What each command carries (docs/protocol.md's command table): (request payload,
#: reply payload after the status byte).
COMMAND_PAYLOADS = {
    Command.HELLO: ("empty", "`HELLO_REPLY_FIELDS`"),
    Command.ECHO: (f"any bytes (at most {MAX_PAYLOAD - 1})", "the same bytes"),
    Command.STATUS: ("empty", "`STATUS_REPLY_FIELDS`"),
    Command.RESET_STATE: ("empty", "empty"),
    Command.SET_RECORD: ("a bitmap of the `n` neurons (`ceil(n / 8)` bytes)", "empty"),
    Command.WRITE_GLOBALS: ("memory request + words", "empty"),
    Command.READ_GLOBALS: ("memory request", "`count` words"),
    Command.WRITE_PARAMS: ("memory request + words", "empty"),
    Command.READ_PARAMS: ("memory request", "`count` words"),
    Command.WRITE_WEIGHTS: ("memory request + words", "empty"),
    Command.READ_WEIGHTS: ("memory request", "`count` words"),
    Command.WRITE_STATE: ("memory request + words", "empty"),
    Command.READ_STATE: ("memory request", "`count` words"),
    Command.RUN: ("`RUN_REQUEST_FIELDS` (`steps` u16, `flags` u8), then `steps` input spike records "
                  "(none with GENERATED)",
                  "`RUN_REPLY_FIELDS` (`steps` u32), after the records"),
    Command.STEP_RECORD: ("(device to host only, the RUN's seq)", "one spike record of the `n` neurons"),
    Command.PROBE_RECORD: ("(device to host only, the RUN's seq)",
                           "`PROBE_RECORD_FIELDS`, then v and i of `count` neurons"),
    Command.INPUT_RECORD: ("(device to host only, the RUN's seq)", "one spike record of the `m` inputs (the step's U)"),
    Command.STEP_BLOCK: ("(device to host only, the RUN's seq)",
                         "`STEP_BLOCK_FIELDS`, then a bitmap of `bytes` bytes per step"),
    Command.NACK: ("(device to host only, seq 0)", "(the status says why a frame was dropped)"),
}

#: What each status code means (docs/protocol.md's status table).
STATUS_MEANINGS = {
    Status.OK: "done",
    Status.BAD_CRC: "in a NACK only: a frame failed its CRC",
    Status.UNKNOWN_COMMAND: "the command code is not a request of the table below (codes with bit 7 set, "
                            "STEP_RECORD, PROBE_RECORD, INPUT_RECORD, STEP_BLOCK and NACK included)",
    Status.BAD_LENGTH: "the payload size does not fit the command (in a NACK: bad COBS, size or length field)",
    Status.BAD_ADDRESS: "table or address range outside the core's memory",
    Status.BUSY: "a RUN is in progress; try again later (in a NACK: a frame arrived while the device was still "
                 "taking in the previous one)",
    Status.OVERFLOW: "the answer would not fit `MAX_PAYLOAD`",
    Status.BAD_VALUE: "a field holds a value the device does not accept",
}

assert set(COMMAND_PAYLOADS) == set(Command) and set(STATUS_MEANINGS) == set(Status)

# -- fixed-layout payload fields ---------------------------------------------

#: HELLO reply after the status byte: (name, bytes).
HELLO_REPLY_FIELDS = (
    ("protocol_version", 1),
    ("core_model_version", 1),  #: spec/core-model.md version (contract.model.CORE_MODEL_VERSION)
    ("n", 2),                   #: neurons
    ("m", 2),                   #: external inputs
    ("state_bits", 1),          #: S
    ("weight_bits", 1),         #: W
    ("trace_bits", 1),          #: T
    ("lanes", 1),               #: weights per weight word
    ("clk_hz", 4),
    ("baud", 4),
    ("max_payload", 2),         #: MAX_PAYLOAD of the device
    ("build_id", 4),            #: identifies the build (configuration, clock, baud, versions)
)

#: STATUS reply after the status byte. Counters saturate at their maximum.
STATUS_REPLY_FIELDS = (
    ("running", 1),             #: 1 while a RUN is in progress
    ("step", 4),                #: the running step counter
    ("uart_framing_errors", 2),
    ("uart_overruns", 2),
    ("crc_errors", 2),          #: frames dropped for a bad CRC
    ("format_errors", 2),       #: frames dropped for bad COBS, length or size
    ("dropped_frames", 2),      #: frames that arrived while the receiver was busy
    ("last_step_cycles", 4),    #: clock cycles of the last step
    ("lost_records", 2),        #: step/probe records the device had to drop (0: records back-pressure the core)
)

#: Start of every READ_*/WRITE_* request.
MEMORY_REQUEST_FIELDS = (("table", 1), ("address", 4), ("count", 2))

#: Start of a RUN request: the number of steps and `RunFlags`.
RUN_REQUEST_FIELDS = (("steps", 2), ("flags", 1))

#: RUN reply after the status byte: the steps this request ran.
RUN_REPLY_FIELDS = (("steps", 4),)


class RunFlags(enum.IntFlag):
    """The `flags` byte of a RUN request. Other bits must be 0 (BAD_VALUE)."""

    PROBE = 0x01      #: send v and i of every used neuron after each step (PROBE_RECORD)
    INPUTS = 0x02     #: send each step's input set U before its step record (INPUT_RECORD)
    SUBSET = 0x04     #: step records hold only the spikes of the neurons SET_RECORD named
    GENERATED = 0x08  #: no input records: no host inputs, the stimulus generator's alone
    NO_RECORDS = 0x10  #: no STEP_RECORDs: the spikes are only counted (table spike_counts); not with PROBE or INPUTS
    BLOCKS = 0x20     #: the step records come as STEP_BLOCKs; not with PROBE, INPUTS or NO_RECORDS


def fields_size(fields):
    """Bytes taken by a field table."""
    return sum(size for _, size in fields)


def pack_fields(fields, **values):
    """Pack keyword `values` into bytes by a field table (little-endian)."""
    missing = [name for name, _ in fields if name not in values]
    extra = sorted(set(values) - {name for name, _ in fields})
    if missing or extra:
        raise LinkError(f"fields: missing {missing}, unexpected {extra}")
    out = bytearray()
    for name, size in fields:
        value = int(values[name])
        if not 0 <= value < 1 << (8 * size):
            raise LinkError(f"field {name}={value} does not fit {size} byte(s) (0 .. {(1 << 8 * size) - 1})")
        out += value.to_bytes(size, "little")
    return bytes(out)


def unpack_fields(fields, data, offset=0):
    """Unpack a field table from `data` at `offset`; returns a dict of ints."""
    size = fields_size(fields)
    if len(data) - offset < size:
        raise LinkError(f"payload too short: {len(data) - offset} bytes, need {size}")
    values = {}
    for name, width in fields:
        values[name] = int.from_bytes(data[offset:offset + width], "little")
        offset += width
    return values



# -- spike and probe records ---------------------------------------------------

class SpikeFormat(enum.IntEnum):
    """How a spike record lists its spikes."""

    BITMAP = 0        #: ceil(count / 8) bytes; index j is bit j % 8 of byte j // 8
    ADDRESSES = 1     #: u16 number of spikes, then each index as u16, ascending


#: Start of a spike record: the step index and the `SpikeFormat`.
SPIKE_RECORD_FIELDS = (("step", 4), ("format", 1))

#: Bytes per index in an address list (and for its length).
SPIKE_ADDRESS_BYTES = 2

#: Start of a STEP_BLOCK after its status byte: the first step (the running step
#: counter), the number of steps and the bitmap bytes per step.
STEP_BLOCK_FIELDS = (("step", 4), ("steps", 1), ("bytes", 1))

#: Most steps in one STEP_BLOCK.
BLOCK_MAX_STEPS = 64


def block_steps(nbytes):
    """Most steps in one STEP_BLOCK of `nbytes` bitmap bytes per step: at most
    `BLOCK_MAX_STEPS`, and the payload (status, fields, bitmaps) within `MAX_PAYLOAD`."""
    return min(BLOCK_MAX_STEPS, (MAX_PAYLOAD - 1 - fields_size(STEP_BLOCK_FIELDS)) // int(nbytes))


#: Start of a PROBE_RECORD after its status byte: the step (the running step
#: counter, as in the STEP_RECORD it follows), the first neuron and the number
#: of neurons in this record. Then, per neuron, v then i, each a signed S-bit
#: value in `probe_value_bytes(S)` bytes, little-endian two's complement
#: (sign-extended to whole bytes).
PROBE_RECORD_FIELDS = (("step", 4), ("first", 2), ("count", 2))


def probe_value_bytes(state_bits):
    """Bytes of one probed value (v or i): ceil(S / 8)."""
    return (int(state_bits) + 7) // 8


def probe_chunk_neurons(state_bits):
    """Neurons per PROBE_RECORD (the last record of a step may hold fewer):
    as many as fit `MAX_PAYLOAD` after the status byte and the fields."""
    return (MAX_PAYLOAD - 1 - fields_size(PROBE_RECORD_FIELDS)) // (2 * probe_value_bytes(state_bits))


# -- the memory map: tables, word widths, word layouts ------------------------

class Family(enum.IntEnum):
    """The four READ_*/WRITE_* command pairs."""

    GLOBALS = 0
    PARAMS = 1
    WEIGHTS = 2
    STATE = 3


#: Family -> (read command, write command).
FAMILY_COMMANDS = {
    Family.GLOBALS: (Command.READ_GLOBALS, Command.WRITE_GLOBALS),
    Family.PARAMS: (Command.READ_PARAMS, Command.WRITE_PARAMS),
    Family.WEIGHTS: (Command.READ_WEIGHTS, Command.WRITE_WEIGHTS),
    Family.STATE: (Command.READ_STATE, Command.WRITE_STATE),
}


def memory_family(command):
    """``(Family, is_write)`` of a READ_*/WRITE_* command, None for other commands."""
    for family, (read, write) in FAMILY_COMMANDS.items():
        if int(command) == read:
            return family, False
        if int(command) == write:
            return family, True
    return None


#: (family, table id) -> the name of the device's memory table
#: (`contract.device.MEMORY_TABLES`, which also names the core's space for it).
TABLE_NAMES = {
    (Family.GLOBALS, 0): "globals",
    (Family.PARAMS, 0): "neuron_params",
    (Family.PARAMS, 1): "pre_mask",
    (Family.PARAMS, 2): "post_mask",
    (Family.PARAMS, 3): "rates",
    (Family.WEIGHTS, 0): "weights",
    (Family.STATE, 0): "neuron_state",
    (Family.STATE, 1): "pre_trace",
    (Family.STATE, 2): "post_trace",
    (Family.STATE, 3): "spike_counts",
}

assert sorted(TABLE_NAMES.values()) == sorted(memory_table(name).name for name in TABLE_NAMES.values())
assert sorted(TABLE_NAMES.values()) == sorted(table.name for table in MEMORY_TABLES), \
    "every memory table of the device (contract.device.MEMORY_TABLES) needs its (family, table id)"


def table_key(name):
    """``(Family, table id)`` of the memory table called `name` (`TABLE_NAMES`)."""
    for key, table_name in TABLE_NAMES.items():
        if table_name == name:
            return key
    raise LinkError(f"no memory table {name!r} (tables: {', '.join(TABLE_NAMES.values())})")


def _table_name(family, table):
    key = (Family(family), int(table))
    if key not in TABLE_NAMES:
        raise LinkError(f"no table {table} in {key[0].name} (tables: "
                        f"{sorted(t for f, t in TABLE_NAMES if f == key[0])})")
    return TABLE_NAMES[key]


def word_bits(family, table, shape):
    """Width in bits of one word of (family, table) on a core of `shape` (a `CoreShape`).

    The gateware (hdl/link.py) sizes its requests with this function, and the
    core's layouts are built from the same description (`contract.device`), so
    host and device agree. Raises `LinkError` for a table the family does not have.
    """
    return memory_table(_table_name(family, table)).word_bits(shape)


def table_depth(family, table, shape):
    """Number of words (valid addresses 0 .. depth-1) of (family, table)."""
    return memory_table(_table_name(family, table)).depth(shape)


def word_bytes(bits):
    """Bytes a word of `bits` takes on the wire: ceil(bits / 8)."""
    return (int(bits) + 7) // 8


@dataclass(frozen=True)
class TableInfo:
    """One memory table: its commands, name, word width and depth on a given core."""

    family: Family
    table: int
    name: str
    word_bits: int
    depth: int

    @property
    def word_bytes(self):
        return word_bytes(self.word_bits)

    @property
    def read_command(self):
        return FAMILY_COMMANDS[self.family][0]

    @property
    def write_command(self):
        return FAMILY_COMMANDS[self.family][1]

    @property
    def max_read_words(self):
        """Most words one read can return (the reply holds a status byte and the words)."""
        return (MAX_PAYLOAD - 1) // self.word_bytes

    @property
    def max_write_words(self):
        """Most words one write can carry (after `MEMORY_REQUEST_FIELDS`)."""
        return (MAX_PAYLOAD - fields_size(MEMORY_REQUEST_FIELDS)) // self.word_bytes


def table_info(family, table, shape):
    """The `TableInfo` of (family, table) on a core of `shape`."""
    return TableInfo(Family(family), int(table), _table_name(family, table), word_bits(family, table, shape),
                     table_depth(family, table, shape))


def memory_tables(shape):
    """Every table of the memory map on a core of `shape`, as `TableInfo`s."""
    return [table_info(family, table, shape) for family, table in TABLE_NAMES]


