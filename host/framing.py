"""Frames on the host side: CRC-16, COBS, `Frame`, `encode_frame`, the stream decoder.

A host-side reference implementation of the framing of docs/protocol.md, written
from the protocol's tables (`neurofabric.contract.protocol`) independently of the
gateware's (hdl/framing.py): the link tests check one against the other.
"""

import enum
import struct
from dataclasses import dataclass

from neurofabric.contract.errors import LinkError
from neurofabric.contract.protocol import (
    COBS_MAX_RUN, CRC_INIT, CRC_POLY, CRC_SIZE, DELIMITER, HEADER_SIZE, MAX_ENCODED_FRAME, MAX_FRAME, MAX_PAYLOAD,
    REPLY_FLAG, Command, Status,
)

__all__ = [
    "crc16", "cobs_encode", "cobs_decode", "FrameFault", "FrameError", "Frame",
    "frame_body", "encode_frame", "decode_frame", "FrameDecoder",
]


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
