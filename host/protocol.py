"""The wire protocol between the host and the device, written once.

Pure Python (no Amaranth): the host imports it, and the gateware (`hdl/framing.py`
and the command decoder) imports its constants, so no number of the wire format
appears in two places. docs/protocol.md describes the same format for people.

A frame on the wire::

    0x00  COBS( command | seq | length (u16 LE) | payload | crc (u16 LE) )  0x00

- `command`: a `Command` code; replies (every frame the device sends) carry
  ``command | REPLY_FLAG``.
- `seq`: sequence number chosen by the host, echoed in the reply; a retry
  repeats it (see `Command`).
- `length`: number of payload bytes, at most `MAX_PAYLOAD`.
- `crc`: CRC-16/CCITT-FALSE (`crc16`) over header and payload.
- COBS removes every 0x00 from the frame, so 0x00 only ever delimits frames. A
  delimiter is sent before and after each frame: a frame cut short (lost bytes,
  a reset mid-frame) then ends at the next frame's leading delimiter and costs
  only itself. Empty frames (two delimiters in a row) are ignored.

Every reply's first payload byte is a `Status`.
"""

import enum
import struct
from dataclasses import dataclass

from .errors import LinkError

__all__ = [
    "PROTOCOL_VERSION", "DELIMITER", "REPLY_FLAG", "HEADER_FIELDS", "HEADER_SIZE",
    "CRC_SIZE", "MAX_PAYLOAD", "MAX_FRAME", "MAX_ENCODED_FRAME", "COBS_MAX_RUN",
    "CRC_POLY", "CRC_INIT",
    "Command", "Status", "FrameFault", "FrameError", "Frame",
    "crc16", "cobs_encode", "cobs_decode", "cobs_max_encoded_size",
    "encode_frame", "decode_frame", "FrameDecoder",
    "HELLO_REPLY_FIELDS", "STATUS_REPLY_FIELDS", "MEMORY_REQUEST_FIELDS",
    "RUN_REQUEST_FIELDS", "RUN_REPLY_FIELDS", "RunFlags", "pack_fields", "unpack_fields", "fields_size",
    "SpikeFormat", "SPIKE_RECORD_FIELDS", "SPIKE_ADDRESS_BYTES",
    "encode_spikes", "decode_spikes", "spike_record_size",
    "encode_run_request", "run_request_size",
    "PROBE_RECORD_FIELDS", "probe_value_bytes", "probe_chunk_neurons", "encode_probe_record",
    "decode_probe_record",
    "Family", "FAMILY_COMMANDS", "memory_family", "CoreShape", "TableInfo", "TABLE_NAMES",
    "word_bits", "table_depth", "table_info", "memory_tables", "word_bytes",
    "GLOBAL_REGISTERS", "READ_ONLY_GLOBALS", "SIGNED_GLOBALS", "GLOBAL_WORD_BITS",
    "global_register_bits", "encode_global", "decode_global",
    "neuron_params_fields", "neuron_state_fields", "pack_word", "unpack_word",
    "pack_weights", "unpack_weights", "words_to_bytes", "bytes_to_words",
]

#: Version of this wire format, returned by HELLO. Bump on any incompatible change.
#: 2: RUN requests carry a flags byte (probes), PROBE_RECORD frames, HELLO's
#: build_id, STATUS's last_step_cycles and lost_records, NACK with BUSY.
PROTOCOL_VERSION = 2

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
    WRITE_GLOBALS, WRITE_PARAMS, WRITE_WEIGHTS, WRITE_STATE (0x10, 0x12, 0x14, 0x16)
        Request: `MEMORY_REQUEST_FIELDS` (table, address, count), then `count`
        words of ``word_bytes`` bytes each. Reply: status.
    READ_GLOBALS, READ_PARAMS, READ_WEIGHTS, READ_STATE (0x11, 0x13, 0x15, 0x17)
        Request: `MEMORY_REQUEST_FIELDS`. Reply: status, then `count` words.

        Tables: GLOBALS 0 = the global registers; PARAMS 0 = per-neuron
        parameters, 1 = pre plasticity mask (per source), 2 = post plasticity
        mask (per neuron); WEIGHTS 0 = the weight words (`lanes` weights per
        word, row-major by source); STATE 0 = per-neuron state (v, i, r, s),
        1 = pre traces x, 2 = post traces y. Addresses and word layouts are the
        core's memory map (hdl/core_ports.py, docs/core.md); a word travels in
        ``word_bytes = ceil(word_bits / 8)`` bytes, little-endian, unused high
        bits zero. An address range outside the table is BAD_ADDRESS; a
        payload whose size does not match `count` is BAD_LENGTH.
    RUN (0x20)
        Request: `RUN_REQUEST_FIELDS` (steps, flags), then `steps` spike records
        of the m inputs (see `encode_spikes`, `encode_run_request`), one per
        step in order; their step fields count from 0 within this request.
        `flags` is a `RunFlags`. Runs the steps, sending one STEP_RECORD per
        step (and, with `RunFlags.PROBE`, its PROBE_RECORDs right after it),
        then the reply: status, then `RUN_REPLY_FIELDS` (steps run by this
        request, u32). The whole request is checked before the first step
        runs; a refused RUN runs nothing. While a RUN runs, the device answers
        STATUS and refuses every other request with BUSY.
    STEP_RECORD (0x21)
        Sent by the device only, with `REPLY_FLAG`, one per step of a RUN, seq =
        the RUN request's seq. Payload: status, then one spike record of the n
        neurons whose step field is the device's running step counter (cleared
        by RESET_STATE), so a lost record shows as a gap.
    PROBE_RECORD (0x22)
        Sent by the device only, with `REPLY_FLAG` and the RUN's seq, after each
        STEP_RECORD of a RUN with `RunFlags.PROBE`: status, then
        `PROBE_RECORD_FIELDS` (step, first neuron, count), then v and i of
        neurons first .. first+count-1 (see `encode_probe_record`). A step's
        n_used neurons come in chunks of `probe_chunk_neurons(S)`, ascending.
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
    NACK = 0x7F


assert all(c < REPLY_FLAG for c in Command)


class Status(enum.IntEnum):
    """The first payload byte of every reply."""

    OK = 0x00
    BAD_CRC = 0x01          #: NACK only: a frame failed its CRC
    UNKNOWN_COMMAND = 0x02  #: the command code is not one of `Command`
    BAD_LENGTH = 0x03       #: the payload size does not fit the command; or NACK: bad COBS/length
    BAD_ADDRESS = 0x04      #: table or address range outside the core's memory
    BUSY = 0x05             #: a RUN is in progress; retry later (NACK: frame arrived while busy)
    OVERFLOW = 0x06         #: a frame or a reply would exceed MAX_PAYLOAD
    BAD_VALUE = 0x07        #: a field holds a value the device does not accept


# -- fixed-layout payload fields ---------------------------------------------

#: HELLO reply after the status byte: (name, bytes).
HELLO_REPLY_FIELDS = (
    ("protocol_version", 1),
    ("core_model_version", 1),  #: spec/core-model.md version (host.spec.CORE_MODEL_VERSION)
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


# -- CRC and COBS -------------------------------------------------------------

def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of `data` (pass a previous result as `crc` to continue)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


class FrameFault(enum.Enum):
    """Why a frame was refused."""

    COBS = "malformed COBS"
    SHORT = "shorter than header and CRC"
    CRC = "bad CRC"
    LENGTH = "length field does not match the payload"
    TOO_LONG = "longer than the largest frame"


class FrameError(LinkError):
    """A frame could not be decoded. `fault` is a `FrameFault`, `data` the raw bytes.

    Raised by `cobs_decode` and `decode_frame`; returned (not raised) by
    `FrameDecoder.feed`, which carries on with the next frame.
    """

    def __init__(self, fault, detail="", data=b""):
        self.fault = fault
        self.data = bytes(data)
        super().__init__(f"bad frame: {fault.value}" + (f" ({detail})" if detail else ""))


def cobs_encode(data):
    """COBS-encode `data`: the result has no 0x00 byte and is at most
    `cobs_max_encoded_size(len(data))` long.

    Every group of up to 254 non-zero bytes gets a code byte (its length + 1);
    a code below 0xFF implies a zero after the group, except at the end. This
    encoder always ends with a code byte, so data ending in a full 254-byte
    group or in a zero gets a final 0x01 (the gateware encoder does the same).
    """
    out = bytearray()
    group = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(group) + 1)
            out += group
            group.clear()
        else:
            group.append(byte)
            if len(group) == COBS_MAX_RUN:
                out.append(COBS_MAX_RUN + 1)
                out += group
                group.clear()
    out.append(len(group) + 1)
    out += group
    return bytes(out)


def cobs_decode(data):
    """Decode one COBS-encoded block (no delimiters). Raises `FrameError` (COBS)
    on a 0x00 byte, an empty block, or a code that runs past the end."""
    if not data:
        raise FrameError(FrameFault.COBS, "empty", data)
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError(FrameFault.COBS, f"0x00 at offset {i}", data)
        end = i + code
        if end > n:
            raise FrameError(FrameFault.COBS, f"code {code} at offset {i} runs past the end ({n} bytes)", data)
        group = data[i + 1:end]
        if 0 in group:
            raise FrameError(FrameFault.COBS, f"0x00 at offset {i + 1 + group.index(0)}", data)
        out += group
        i = end
        if code <= COBS_MAX_RUN and i < n:
            out.append(0)
    return bytes(out)


# -- frames -------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One decoded frame. `command` includes `REPLY_FLAG` when set."""

    command: int
    seq: int
    payload: bytes = b""

    @property
    def is_reply(self):
        return bool(self.command & REPLY_FLAG)

    @property
    def code(self):
        """The command code without `REPLY_FLAG`, as a `Command` when known."""
        code = self.command & ~REPLY_FLAG & 0xFF
        try:
            return Command(code)
        except ValueError:
            return code

    @property
    def status(self):
        """The status byte of a reply, as a `Status` when known (None if empty)."""
        if not self.payload:
            return None
        try:
            return Status(self.payload[0])
        except ValueError:
            return self.payload[0]


def frame_body(command, seq, payload=b""):
    """Header + payload + CRC, before COBS (what the gateware's buffers hold)."""
    payload = bytes(payload)
    if not 0 <= int(command) <= 0xFF:
        raise LinkError(f"frame command={command} is not a byte (0 .. 255)")
    if not 0 <= seq <= 0xFF:
        raise LinkError(f"frame seq={seq} is not a byte (0 .. 255)")
    if len(payload) > MAX_PAYLOAD:
        raise LinkError(f"frame payload of {len(payload)} bytes exceeds MAX_PAYLOAD={MAX_PAYLOAD}")
    body = struct.pack("<BBH", int(command), seq, len(payload)) + payload
    return body + crc16(body).to_bytes(CRC_SIZE, "little")


def encode_frame(command, seq, payload=b""):
    """The bytes of one frame on the wire: 0x00, COBS(header + payload + CRC), 0x00."""
    return bytes([DELIMITER]) + cobs_encode(frame_body(command, seq, payload)) + bytes([DELIMITER])


def decode_frame(encoded):
    """Decode the bytes between two delimiters into a `Frame`; raises `FrameError`."""
    if len(encoded) > MAX_ENCODED_FRAME - 2:
        raise FrameError(FrameFault.TOO_LONG, f"{len(encoded)} encoded bytes", encoded)
    body = cobs_decode(encoded)
    if len(body) < HEADER_SIZE + CRC_SIZE:
        raise FrameError(FrameFault.SHORT, f"{len(body)} bytes", encoded)
    if len(body) > MAX_FRAME:
        raise FrameError(FrameFault.TOO_LONG, f"{len(body)} bytes", encoded)
    crc = int.from_bytes(body[-CRC_SIZE:], "little")
    if crc16(body[:-CRC_SIZE]) != crc:
        raise FrameError(FrameFault.CRC, f"received 0x{crc:04X}, computed 0x{crc16(body[:-CRC_SIZE]):04X}",
                         encoded)
    command, seq, length = struct.unpack_from("<BBH", body)
    payload = body[HEADER_SIZE:-CRC_SIZE]
    if length != len(payload):
        raise FrameError(FrameFault.LENGTH, f"field says {length}, frame holds {len(payload)}", encoded)
    return Frame(command, seq, payload)


class FrameDecoder:
    """Incremental frame decoder for a byte stream.

    `feed` takes any chunk of received bytes and returns the frames completed
    by it, in order: a `Frame`, or a `FrameError` for a frame that was refused.
    Decoding resynchronises at every 0x00, so garbage, a cut frame, a bad CRC
    or a bad length costs at most the frame it hits. Bytes beyond
    `MAX_ENCODED_FRAME` without a delimiter are discarded (one TOO_LONG error
    at the next delimiter), so the buffer stays bounded.
    """

    def __init__(self):
        self._buffer = bytearray()
        self._overflow = False

    def feed(self, data):
        results = []
        for chunk_end, chunk in _split_keep(bytes(data)):
            if not self._overflow:
                self._buffer += chunk
                if len(self._buffer) > MAX_ENCODED_FRAME - 2:
                    self._overflow = True
                    self._buffer.clear()
            if chunk_end:
                if self._overflow:
                    results.append(FrameError(FrameFault.TOO_LONG, "no delimiter in time"))
                elif self._buffer:
                    try:
                        results.append(decode_frame(bytes(self._buffer)))
                    except FrameError as error:
                        results.append(error)
                self._buffer.clear()
                self._overflow = False
        return results


def _split_keep(data):
    """Split at 0x00: yields (ended_by_delimiter, bytes before it)."""
    start = 0
    while True:
        end = data.find(DELIMITER, start)
        if end < 0:
            if start < len(data):
                yield False, data[start:]
            return
        yield True, data[start:end]
        start = end + 1


# -- spike records ------------------------------------------------------------

class SpikeFormat(enum.IntEnum):
    """How a spike record lists its spikes."""

    BITMAP = 0        #: ceil(count / 8) bytes; index j is bit j % 8 of byte j // 8
    ADDRESSES = 1     #: u16 number of spikes, then each index as u16, ascending


#: Start of a spike record: the step index and the `SpikeFormat`.
SPIKE_RECORD_FIELDS = (("step", 4), ("format", 1))

#: Bytes per index in an address list (and for its length).
SPIKE_ADDRESS_BYTES = 2


def _bitmap_size(count):
    return (count + 7) // 8


def spike_record_size(spikes, count):
    """Bytes of the record `encode_spikes` makes for `len(spikes)` spikes of `count`."""
    k = len(spikes)
    body = min(_bitmap_size(count), SPIKE_ADDRESS_BYTES * (1 + k))
    return fields_size(SPIKE_RECORD_FIELDS) + body


def encode_spikes(step, spikes, count):
    """Encode one step's spikes as a record: step (u32), format (u8), body.

    `spikes` is an iterable of indices in ``0 .. count-1`` (or a sequence of
    `count` bools, or a boolean numpy array). The body is a bitmap or an address list,
    whichever is shorter; on a tie the bitmap.
    """
    if not 0 < count <= 1 << (8 * SPIKE_ADDRESS_BYTES):
        raise LinkError(f"spike record count={count} outside 1 .. {1 << 8 * SPIKE_ADDRESS_BYTES}")
    if getattr(spikes, "dtype", None) == bool:
        spikes = spikes.nonzero()[0]
    spikes = list(spikes)
    if spikes and all(isinstance(s, bool) for s in spikes):
        if len(spikes) != count:
            raise LinkError(f"spike mask has {len(spikes)} entries, count is {count}")
        spikes = [j for j, s in enumerate(spikes) if s]
    indices = sorted(set(int(j) for j in spikes))
    if indices and not (0 <= indices[0] and indices[-1] < count):
        raise LinkError(f"spike index outside 0 .. {count - 1}: {indices[0] if indices[0] < 0 else indices[-1]}")
    bitmap_size = _bitmap_size(count)
    list_size = SPIKE_ADDRESS_BYTES * (1 + len(indices))
    if list_size < bitmap_size:
        body = len(indices).to_bytes(SPIKE_ADDRESS_BYTES, "little") + b"".join(
            j.to_bytes(SPIKE_ADDRESS_BYTES, "little") for j in indices)
        fmt = SpikeFormat.ADDRESSES
    else:
        bitmap = bytearray(bitmap_size)
        for j in indices:
            bitmap[j // 8] |= 1 << (j % 8)
        body = bytes(bitmap)
        fmt = SpikeFormat.BITMAP
    return pack_fields(SPIKE_RECORD_FIELDS, step=step, format=fmt) + body


def decode_spikes(data, count, offset=0):
    """Decode the spike record at `offset`: returns ``(step, indices, next_offset)``.

    `indices` is the ascending list of spiking indices. Raises `LinkError` on a
    truncated record, an unknown format, a set bitmap bit past `count`, or an
    address list that is unsorted or out of range.
    """
    head = unpack_fields(SPIKE_RECORD_FIELDS, data, offset)
    offset += fields_size(SPIKE_RECORD_FIELDS)
    if head["format"] == SpikeFormat.BITMAP:
        size = _bitmap_size(count)
        bitmap = data[offset:offset + size]
        if len(bitmap) < size:
            raise LinkError(f"spike bitmap truncated: {len(bitmap)} of {size} bytes")
        indices = [8 * b + i for b, byte in enumerate(bitmap) for i in range(8) if byte >> i & 1]
        if indices and indices[-1] >= count:
            raise LinkError(f"spike bitmap sets index {indices[-1]}, count is {count}")
        return head["step"], indices, offset + size
    if head["format"] == SpikeFormat.ADDRESSES:
        if len(data) - offset < SPIKE_ADDRESS_BYTES:
            raise LinkError("spike address list truncated before its length")
        k = int.from_bytes(data[offset:offset + SPIKE_ADDRESS_BYTES], "little")
        offset += SPIKE_ADDRESS_BYTES
        end = offset + k * SPIKE_ADDRESS_BYTES
        if len(data) < end:
            raise LinkError(f"spike address list truncated: {k} addresses announced")
        indices = [int.from_bytes(data[i:i + SPIKE_ADDRESS_BYTES], "little")
                   for i in range(offset, end, SPIKE_ADDRESS_BYTES)]
        if any(a >= b for a, b in zip(indices, indices[1:])) or (indices and indices[-1] >= count):
            raise LinkError(f"spike address list not ascending within 0 .. {count - 1}")
        return head["step"], indices, end
    raise LinkError(f"spike record format={head['format']} unknown (0 bitmap, 1 addresses)")


def _spike_indices(spikes, count):
    if getattr(spikes, "dtype", None) == bool:
        return [int(j) for j in spikes.nonzero()[0]]
    spikes = list(spikes)
    if spikes and all(isinstance(s, bool) for s in spikes):
        return [j for j, s in enumerate(spikes) if s]
    return sorted(set(int(j) for j in spikes))


# -- RUN requests -------------------------------------------------------------

def run_request_size(stimulus, m):
    """Payload bytes of the RUN request `encode_run_request` makes for `stimulus`."""
    return fields_size(RUN_REQUEST_FIELDS) + sum(spike_record_size(_spike_indices(row, m), m) for row in stimulus)


def encode_run_request(stimulus, m, flags=0):
    """The payload of one RUN request: steps, flags, one input spike record per step.

    `stimulus` is a sequence of steps, each the spiking input indices (or a
    bool row of `m`); the records' step fields count from 0. Raises
    `LinkError` when the request would exceed `MAX_PAYLOAD` (split the
    stimulus into several requests) or a flag is unknown.
    """
    flags = int(flags)
    if flags & ~int(RunFlags.PROBE):
        raise LinkError(f"RUN flags=0x{flags:02X} has unknown bits (known: PROBE=0x01)")
    rows = [_spike_indices(row, m) for row in stimulus]
    payload = pack_fields(RUN_REQUEST_FIELDS, steps=len(rows), flags=flags) + b"".join(
        encode_spikes(t, row, m) for t, row in enumerate(rows))
    if len(payload) > MAX_PAYLOAD:
        raise LinkError(f"RUN request of {len(rows)} steps takes {len(payload)} bytes, more than "
                        f"MAX_PAYLOAD={MAX_PAYLOAD}: send fewer steps per request")
    return payload


# -- probe records -------------------------------------------------------------

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


def encode_probe_record(step, first, v, i, state_bits):
    """The body of a PROBE_RECORD (after the status byte) for neurons first .. first+len(v)-1."""
    v, i = [int(x) for x in v], [int(x) for x in i]
    if len(v) != len(i):
        raise LinkError(f"probe record: {len(v)} v values but {len(i)} i values")
    if len(v) > probe_chunk_neurons(state_bits):
        raise LinkError(f"probe record of {len(v)} neurons exceeds {probe_chunk_neurons(state_bits)} per record")
    size = probe_value_bytes(state_bits)
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
    out = bytearray(pack_fields(PROBE_RECORD_FIELDS, step=step, first=first, count=len(v)))
    for name, a, b in zip(range(len(v)), v, i):
        for value in (a, b):
            if not lo <= value <= hi:
                raise LinkError(f"probe value {value} of neuron {first + name} outside {lo} .. {hi} (S={state_bits})")
            out += value.to_bytes(size, "little", signed=True)
    return bytes(out)


def decode_probe_record(data, state_bits, offset=0):
    """Decode a PROBE_RECORD body at `offset`: returns ``(step, first, v, i, next_offset)``."""
    head = unpack_fields(PROBE_RECORD_FIELDS, data, offset)
    offset += fields_size(PROBE_RECORD_FIELDS)
    size = probe_value_bytes(state_bits)
    end = offset + 2 * size * head["count"]
    if len(data) < end:
        raise LinkError(f"probe record truncated: {head['count']} neurons need {end - offset} bytes, "
                        f"{len(data) - offset} there")
    values = [int.from_bytes(data[k:k + size], "little", signed=True) for k in range(offset, end, size)]
    return head["step"], head["first"], values[0::2], values[1::2], end


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


#: (family, table) -> the table's name. The tables of docs/protocol.md and the
#: core's memory map (hdl/core_ports.py `Space`): globals = GLOBAL,
#: neuron_params = NEURON, pre_mask = PRE_MASK, post_mask = POST_MASK,
#: weights = WEIGHT, neuron_state = STATE, pre_trace = PRE_TRACE,
#: post_trace = POST_TRACE.
TABLE_NAMES = {
    (Family.GLOBALS, 0): "globals",
    (Family.PARAMS, 0): "neuron_params",
    (Family.PARAMS, 1): "pre_mask",
    (Family.PARAMS, 2): "post_mask",
    (Family.WEIGHTS, 0): "weights",
    (Family.STATE, 0): "neuron_state",
    (Family.STATE, 1): "pre_trace",
    (Family.STATE, 2): "post_trace",
}

#: The global registers in address order (hdl/core_ports.py `Reg`).
GLOBAL_REGISTERS = (
    "learn", "a_plus", "a_minus", "stdp_shift", "k_pre", "k_post", "inc_pre", "inc_post", "trace_mode",
    "w_min", "w_max", "n_used", "m_used", "period",
    "steps_done", "last_step_cycles", "version", "cfg_n", "cfg_m", "cfg_s", "cfg_w", "cfg_t", "cfg_lanes",
)

#: Registers that ignore writes.
READ_ONLY_GLOBALS = frozenset(GLOBAL_REGISTERS[GLOBAL_REGISTERS.index("steps_done"):])

#: Registers holding a signed W-bit value (sent as W-bit two's complement).
SIGNED_GLOBALS = frozenset({"w_min", "w_max"})

#: Every global register travels as a 32-bit word.
GLOBAL_WORD_BITS = 32


@dataclass(frozen=True)
class CoreShape:
    """The build-time sizes a HELLO reply announces (spec section 1, and lanes)."""

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

    def table(self, family, table):
        """The `TableInfo` of one table."""
        return table_info(family, table, self)


def neuron_params_fields(state_bits):
    """The NEURON_PARAMS word (table PARAMS 0): ``(name, bits, signed)`` from bit 0 up.

    The same fields, order and widths as `CoreConfig.neuron_params_layout`
    (plastic_post lives in the post_mask table)."""
    S = int(state_bits)
    return (("threshold", S, True), ("v_reset", S, True), ("bias", S, True), ("reset_mode", 1, False),
            ("k_mem", 5, False), ("k_syn", 5, False), ("refractory", 8, False))


def neuron_state_fields(state_bits):
    """The NEURON_STATE word (table STATE 0): ``(name, bits, signed)`` from bit 0 up, as
    `CoreConfig.neuron_state_layout` (the post trace y lives in the post_trace table)."""
    S = int(state_bits)
    return (("v", S, True), ("i", S, True), ("r", 8, False), ("s", 1, False))


def _fields_bits(fields):
    return sum(bits for _, bits, _ in fields)


def word_bits(family, table, shape):
    """Width in bits of one word of (family, table) on a core of `shape` (a `CoreShape`).

    The gateware (hdl/link.py) sizes its requests with this function and
    checks it against the core's layouts, so host and device agree.
    Raises `LinkError` for a table the family does not have.
    """
    name = _table_name(family, table)
    return {
        "globals": GLOBAL_WORD_BITS,
        "neuron_params": _fields_bits(neuron_params_fields(shape.state_bits)),
        "pre_mask": 1,
        "post_mask": 1,
        "weights": shape.lanes * shape.weight_bits,
        "neuron_state": _fields_bits(neuron_state_fields(shape.state_bits)),
        "pre_trace": shape.trace_bits,
        "post_trace": shape.trace_bits,
    }[name]


def _table_name(family, table):
    key = (Family(family), int(table))
    if key not in TABLE_NAMES:
        raise LinkError(f"no table {table} in {key[0].name} (tables: "
                        f"{sorted(t for f, t in TABLE_NAMES if f == key[0])})")
    return TABLE_NAMES[key]


def table_depth(family, table, shape):
    """Number of words (valid addresses 0 .. depth-1) of (family, table)."""
    name = _table_name(family, table)
    return {
        "globals": len(GLOBAL_REGISTERS),
        "neuron_params": shape.n,
        "pre_mask": shape.sources,
        "post_mask": shape.n,
        "weights": shape.sources * shape.words_per_row,
        "neuron_state": shape.n,
        "pre_trace": shape.sources,
        "post_trace": shape.n,
    }[name]


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


def global_register_bits(name, shape):
    """Bits of register `name` that the core keeps (a write keeps the low bits only;
    n_used and m_used are clamped to n and m)."""
    widths = {"learn": 1, "a_plus": 8, "a_minus": 8, "stdp_shift": 4, "k_pre": 5, "k_post": 5,
              "inc_pre": shape.trace_bits, "inc_post": shape.trace_bits, "trace_mode": 1,
              "w_min": shape.weight_bits, "w_max": shape.weight_bits,
              "n_used": shape.n.bit_length(), "m_used": shape.m.bit_length()}
    if name not in GLOBAL_REGISTERS:
        raise LinkError(f"no global register {name!r} (registers: {', '.join(GLOBAL_REGISTERS)})")
    return widths.get(name, GLOBAL_WORD_BITS)


def encode_global(name, value, shape):
    """The 32-bit word to write to global register `name` (signed ones as W-bit two's complement).

    Raises `LinkError` naming the register when `value` is outside its range.
    """
    bits = global_register_bits(name, shape)
    value = int(value)
    if name in SIGNED_GLOBALS:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, {"n_used": shape.n, "m_used": shape.m}.get(name, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise LinkError(f"global register {name}={value} outside {lo} .. {hi}")
    return value & ((1 << bits) - 1)


def decode_global(name, word, shape):
    """The value of global register `name` from the word read back."""
    bits = global_register_bits(name, shape)
    word = int(word) & ((1 << bits) - 1)
    if name in SIGNED_GLOBALS and word >> (bits - 1):
        word -= 1 << bits
    return word


def pack_word(fields, **values):
    """Pack `values` into one word by a ``(name, bits, signed)`` field list (bit 0 first).

    Every field must be given; a value outside its range raises `LinkError`
    naming the field, the value and the range."""
    missing = [name for name, _, _ in fields if name not in values]
    extra = sorted(set(values) - {name for name, _, _ in fields})
    if missing or extra:
        raise LinkError(f"word fields: missing {missing}, unexpected {extra}")
    word, offset = 0, 0
    for name, bits, is_signed in fields:
        value = int(values[name])
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise LinkError(f"word field {name}={value} outside {lo} .. {hi}")
        word |= (value & ((1 << bits) - 1)) << offset
        offset += bits
    return word


def unpack_word(fields, word):
    """The field values (signed ones sign-extended) of one word, as a dict."""
    out, offset, word = {}, 0, int(word)
    for name, bits, is_signed in fields:
        value = (word >> offset) & ((1 << bits) - 1)
        if is_signed and value >> (bits - 1):
            value -= 1 << bits
        out[name] = value
        offset += bits
    return out


def pack_weights(values, weight_bits):
    """One weight word: `values` (lane 0 first, signed W-bit each) side by side, lane l at bit l*W."""
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    word = 0
    for lane, value in enumerate(values):
        value = int(value)
        if not lo <= value <= hi:
            raise LinkError(f"weight {value} (lane {lane}) outside {lo} .. {hi} (W={weight_bits})")
        word |= (value & ((1 << weight_bits) - 1)) << (lane * weight_bits)
    return word


def unpack_weights(word, lanes, weight_bits):
    """The `lanes` signed weights of one weight word, lane 0 first."""
    mask, out = (1 << weight_bits) - 1, []
    for lane in range(lanes):
        value = (int(word) >> (lane * weight_bits)) & mask
        out.append(value - (1 << weight_bits) if value >> (weight_bits - 1) else value)
    return out


def words_to_bytes(words, bits):
    """Words of `bits` each as wire bytes: ceil(bits / 8) bytes per word, little-endian."""
    size = word_bytes(bits)
    out = bytearray()
    for word in words:
        word = int(word)
        if not 0 <= word < 1 << bits:
            raise LinkError(f"word {word} does not fit {bits} bits")
        out += word.to_bytes(size, "little")
    return bytes(out)


def bytes_to_words(data, bits):
    """Wire bytes back to words of `bits` each (the inverse of `words_to_bytes`)."""
    size = word_bytes(bits)
    if len(data) % size:
        raise LinkError(f"{len(data)} bytes are not a whole number of {size}-byte words")
    return [int.from_bytes(data[k:k + size], "little") for k in range(0, len(data), size)]
