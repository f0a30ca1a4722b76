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
    "RUN_REQUEST_FIELDS", "pack_fields", "unpack_fields", "fields_size",
    "SpikeFormat", "SPIKE_RECORD_FIELDS", "SPIKE_ADDRESS_BYTES",
    "encode_spikes", "decode_spikes", "spike_record_size",
]

#: Version of this wire format, returned by HELLO. Bump on any incompatible change.
PROTOCOL_VERSION = 1

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
        Request: `RUN_REQUEST_FIELDS` (steps), then `steps` spike records of the
        m inputs (see `encode_spikes`), one per step in order; their step
        fields count from 0 within this request. Runs the steps, sending one
        STEP_RECORD per step, then the reply: status, then `steps` (u32) done.
    STEP_RECORD (0x21)
        Sent by the device only, with `REPLY_FLAG`, one per step of a RUN, seq =
        the RUN request's seq. Payload: status, then one spike record of the n
        neurons whose step field is the device's running step counter (cleared
        by RESET_STATE), so a lost record shows as a gap.
    NACK (0x7F)
        Sent by the device only, with `REPLY_FLAG` and seq 0, when it drops a
        frame it cannot trust (bad CRC, bad COBS, bad length, too long).
        Payload: status. A host with a request outstanding may resend it at
        once instead of waiting for its time-out.
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
    NACK = 0x7F


assert all(c < REPLY_FLAG for c in Command)


class Status(enum.IntEnum):
    """The first payload byte of every reply."""

    OK = 0x00
    BAD_CRC = 0x01          #: NACK only: a frame failed its CRC
    UNKNOWN_COMMAND = 0x02  #: the command code is not one of `Command`
    BAD_LENGTH = 0x03       #: the payload size does not fit the command; or NACK: bad COBS/length
    BAD_ADDRESS = 0x04      #: table or address range outside the core's memory
    BUSY = 0x05             #: a RUN is in progress; retry later
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
)

#: Start of every READ_*/WRITE_* request.
MEMORY_REQUEST_FIELDS = (("table", 1), ("address", 4), ("count", 2))

#: Start of a RUN request.
RUN_REQUEST_FIELDS = (("steps", 2),)


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
