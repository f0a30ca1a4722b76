"""Gateware framing: COBS frames with a CRC-16, to and from UART byte streams.

The wire format (delimiters, header, CRC, limits) is contract/protocol.py's; every
constant here is imported from it. `FrameReceiver` turns received bytes into
checked frames (header, then payload bytes); `FrameSender` turns a header and
payload bytes into an encoded frame.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import crc, data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from neurofabric.contract.protocol import (
    COBS_MAX_RUN, CRC_INIT, CRC_POLY, CRC_SIZE, DELIMITER, HEADER_FIELDS, HEADER_SIZE, MAX_FRAME, MAX_PAYLOAD,
)

__all__ = ["HeaderLayout", "PayloadLayout", "Refusal", "crc16_processor", "FrameReceiver", "FrameSender"]

#: The frame header as a struct. `lib.data` packs fields LSB first, so the raw
#: value is the header's wire bytes in little-endian order (byte i at bits 8i..).
HeaderLayout = data.StructLayout({name: unsigned(8 * size) for name, size in HEADER_FIELDS})

#: One payload byte on the receiver's output; `last` marks the frame's last byte.
PayloadLayout = data.StructLayout({"data": unsigned(8), "last": unsigned(1)})

#: Width of the error counters (saturating).
COUNTER_WIDTH = 16


class Refusal(enum.Enum, shape=2):
    """Why `FrameReceiver` refused a frame (its `refused` output, one cycle per counted frame)."""
    NONE = 0
    CRC = 1         #: counted in `crc_errors`
    FORMAT = 2      #: counted in `format_errors`
    DROPPED = 3     #: counted in `dropped`

assert HeaderLayout.size == 8 * HEADER_SIZE and CRC_SIZE == 2


def crc16_processor():
    """A byte-wide CRC-16 unit from `amaranth.lib.crc`, the protocol's algorithm.

    The wire's CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF,
    no reflection, no final XOR); the catalog entry is checked against the protocol's
    constants so the two cannot drift apart. `start` loads the initial value, `valid`
    adds `data`, and `crc` is the register (updated one cycle after `valid`).
    """
    algorithm = crc.catalog.CRC16_CCITT_FALSE
    assert (algorithm.crc_width, algorithm.polynomial, algorithm.initial_crc) == (8 * CRC_SIZE, CRC_POLY, CRC_INIT)
    assert not algorithm.reflect_input and not algorithm.reflect_output and algorithm.xor_output == 0
    return algorithm(data_width=8).create()


def _count(m, counter, strobe=None, reason=None):
    """Count one event in a saturating counter; raise `strobe` to `reason` when it counts."""
    with m.If(~counter.all()):      # saturate
        m.d.sync += counter.eq(counter + 1)
        if strobe is not None:
            m.d.comb += strobe.eq(reason)


class FrameReceiver(wiring.Component):
    """Receive COBS frames from a byte stream; hand out only frames that check.

    Bytes from `data` (a `UARTRx`, say) are COBS-decoded on the fly, the header
    and the CRC captured as they pass and the rest stored in a payload buffer
    (one `Memory` of `MAX_PAYLOAD` bytes: two iCE40 block RAMs; a frame's last
    two bytes, its CRC, only go there when they fit). At the closing delimiter a frame whose COBS,
    size, CRC and length field all check is handed out: first its header on
    `header` (one transfer), then exactly `header.length` bytes on `payload`,
    the last with `last` set. A frame that fails is dropped and counted:
    `crc_errors` for a bad CRC, `format_errors` for a cut COBS group, fewer
    than header + CRC bytes, more than `MAX_FRAME` bytes, or a length field
    that does not match. Either way decoding restarts at the next delimiter,
    so garbage costs at most the frame it hits.

    `data` is always ready. While a good frame is being handed out the buffer
    is busy: a frame that arrives meanwhile is dropped and counted in
    `dropped` (the protocol is stop-and-wait, so a host never causes this
    unless it sends before the previous reply).

    `refused` says, for one cycle, why a frame was just counted (`Refusal`);
    it stays `NONE` once that counter has saturated, like the counter.

    `hold` keeps a payload in the buffer for `read_addr`/`read_data` (random
    reads, the data one cycle after the address): while it is 1 (it may rise
    in the cycle a header is taken) no frame is written to the buffer and
    frames are still checked and counted, but handed out as their header only,
    without payload. The link holds a RUN's payload this way while it checks
    and runs it, and answers the requests that come meanwhile from their headers.
    """

    def __init__(self):
        super().__init__({
            "data": In(stream.Signature(8)),
            "header": Out(stream.Signature(HeaderLayout)),
            "payload": Out(stream.Signature(PayloadLayout)),
            "crc_errors": Out(COUNTER_WIDTH),
            "format_errors": Out(COUNTER_WIDTH),
            "dropped": Out(COUNTER_WIDTH),
            "refused": Out(Refusal),
            "hold": In(1),
            "read_addr": In(range(MAX_PAYLOAD)),
            "read_data": Out(8),
        })

    def elaborate(self, platform):
        m = Module()

        m.submodules.buffer = buffer = Memory(shape=unsigned(8), depth=MAX_PAYLOAD, init=[])
        wr = buffer.write_port()
        rd = buffer.read_port()

        # COBS decoder state.
        pos = Signal(range(MAX_FRAME + 1))        # decoded bytes so far
        code_left = Signal(8)                     # data bytes left in this group
        zero_pending = Signal()                   # this group's code < 0xFF: a zero follows it
        started = Signal()                        # a code byte has been seen
        overflow = Signal()
        discard = Signal()                        # skip to the next delimiter (busy)
        m.submodules.crc = crc = crc16_processor()
        # The last two decoded bytes: the CRC runs two bytes behind, so at the
        # end it covers header + payload and `tail` holds the received CRC.
        tail = Signal(16)
        header = Signal(HeaderLayout)

        byte = self.data.payload
        m.d.comb += self.data.ready.eq(1)

        emit = Signal()
        emit_byte = Signal(8)
        with m.If(emit):
            with m.If(pos < MAX_FRAME):
                body = pos - HEADER_SIZE
                m.d.comb += [wr.en.eq((pos >= HEADER_SIZE) & (body < MAX_PAYLOAD) & ~self.hold),
                             wr.addr.eq(body), wr.data.eq(emit_byte)]
                for i in range(HEADER_SIZE):
                    with m.If(pos == i):
                        m.d.sync += header.as_value().word_select(i, 8).eq(emit_byte)
                with m.If(pos >= 2):
                    m.d.comb += [crc.valid.eq(1), crc.data.eq(tail[:8])]
                m.d.sync += [tail.eq(Cat(tail[8:], emit_byte)), pos.eq(pos + 1)]
            with m.Else():
                m.d.sync += overflow.eq(1)

        restart = [pos.eq(0), code_left.eq(0), started.eq(0), overflow.eq(0)]

        # Read-out of the payload from the buffer (one cycle of read latency).
        rd_addr = Signal(range(MAX_PAYLOAD))
        remaining = Signal(range(MAX_PAYLOAD + 1))
        out_valid = Signal()
        out_last = Signal()
        m.d.comb += [
            rd.addr.eq(Mux(self.hold, self.read_addr, rd_addr)), rd.en.eq(self.hold),
            self.read_data.eq(rd.data),
            self.payload.valid.eq(out_valid),
            self.payload.payload.data.eq(rd.data),
            self.payload.payload.last.eq(out_last),
            self.header.payload.eq(header),
        ]

        with m.FSM() as fsm:
            with m.State("RECEIVE"):
                with m.If(self.data.valid):
                    with m.If(byte == DELIMITER):
                        m.d.sync += restart
                        m.d.comb += crc.start.eq(1)
                        with m.If(discard):
                            _count(m, self.dropped, self.refused, Refusal.DROPPED)
                            m.d.sync += discard.eq(0)
                        with m.Elif(~started):
                            pass                  # empty frame between two delimiters
                        with m.Elif((code_left != 0) | overflow | (pos < HEADER_SIZE + CRC_SIZE)):
                            _count(m, self.format_errors, self.refused, Refusal.FORMAT)
                        with m.Elif(crc.crc != tail):
                            _count(m, self.crc_errors, self.refused, Refusal.CRC)
                        with m.Elif(header.length != pos - (HEADER_SIZE + CRC_SIZE)):
                            _count(m, self.format_errors, self.refused, Refusal.FORMAT)
                        with m.Else():
                            m.d.sync += [rd_addr.eq(0), remaining.eq(header.length)]
                            m.next = "HEADER"
                    with m.Elif(discard):
                        pass
                    with m.Elif(code_left == 0):
                        # A code byte: the previous group's implied zero, if any, comes first.
                        m.d.comb += [emit.eq(started & zero_pending), emit_byte.eq(0)]
                        m.d.sync += [
                            code_left.eq(byte - 1),
                            zero_pending.eq(byte != COBS_MAX_RUN + 1),
                            started.eq(1),
                        ]
                    with m.Else():
                        m.d.comb += [emit.eq(1), emit_byte.eq(byte)]
                        m.d.sync += code_left.eq(code_left - 1)

            with m.State("HEADER"):
                m.d.comb += self.header.valid.eq(1)
                with m.If(self.header.ready):
                    with m.If(self.hold):
                        m.next = "RECEIVE"        # no payload to hand out
                    with m.Else():
                        m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                with m.If(~out_valid | self.payload.ready):
                    with m.If(remaining != 0):
                        m.d.comb += rd.en.eq(1)
                        m.d.sync += [
                            rd_addr.eq(rd_addr + 1), remaining.eq(remaining - 1),
                            out_valid.eq(1), out_last.eq(remaining == 1),
                        ]
                    with m.Else():
                        m.d.sync += out_valid.eq(0)
                        m.next = "RECEIVE"

        # Busy (HEADER, PAYLOAD): a frame arriving now cannot be buffered.
        with m.If(~fsm.ongoing("RECEIVE") & self.data.valid):
            with m.If(byte == DELIMITER):
                with m.If(discard):
                    _count(m, self.dropped, self.refused, Refusal.DROPPED)
                    m.d.sync += discard.eq(0)
            with m.Else():
                m.d.sync += discard.eq(1)

        return m


class FrameSender(wiring.Component):
    """Encode frames into a byte stream: delimiter, COBS(header, payload, CRC), delimiter.

    Takes a frame's body on `frame`: its four header bytes (command, seq,
    length low, length high: the wire's order), then exactly `length` payload
    bytes (at most `MAX_PAYLOAD`; the sender does not check), appends the CRC
    and sends the COBS encoding on `data` (to a `UARTTx`, say), framed by a
    delimiter on either side. COBS puts a group's length before its bytes, so
    each group of up to 254 non-zero bytes is collected in a small `Memory`
    first. The output is byte for byte what `protocol.encode_frame` makes.
    `busy` is 1 from a frame's first byte until its last delimiter has gone.
    """

    def __init__(self):
        super().__init__({
            "frame": In(stream.Signature(8)),
            "data": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()

        m.submodules.group = group = Memory(shape=unsigned(8), depth=COBS_MAX_RUN, init=[])
        wr = group.write_port()
        rd = group.read_port()

        # Where the source is: header bytes (counted by `head`), payload bytes (`left` of
        # them, from the header's length), then the CRC, low byte first.
        head = Signal(range(HEADER_SIZE + 1))
        left = Signal(range(MAX_PAYLOAD + 1))
        m.submodules.crc = crc = crc16_processor()
        crc_sent = Signal(range(CRC_SIZE + 1))
        count = Signal(range(COBS_MAX_RUN + 1))   # bytes in the current group
        final = Signal()                          # the current group ends the frame

        in_body = (head != HEADER_SIZE) | (left != 0)
        exhausted = ~in_body & (crc_sent == CRC_SIZE)
        src_valid = Mux(in_body, self.frame.valid, ~exhausted)
        src_byte = Mux(in_body, self.frame.payload, Mux(crc_sent == 0, crc.crc[:8], crc.crc[8:]))
        take = Signal()
        m.d.comb += self.frame.ready.eq(take & in_body)
        with m.If(take):
            with m.If(in_body):
                m.d.comb += [crc.valid.eq(1), crc.data.eq(src_byte)]
                with m.If(head != HEADER_SIZE):
                    m.d.sync += head.eq(head + 1)
                    # The length, little-endian, as it passes.
                    with m.If(head == 2):
                        m.d.sync += left[:8].eq(src_byte)
                    with m.If(head == 3):
                        m.d.sync += left[8:].eq(src_byte)
                with m.Else():
                    m.d.sync += left.eq(left - 1)
            with m.Else():
                m.d.sync += crc_sent.eq(crc_sent + 1)

        rd_addr = Signal(range(COBS_MAX_RUN + 1))     # group bytes read, up to `count`
        out_valid = Signal()
        m.d.comb += [rd.addr.eq(rd_addr), rd.en.eq(0), wr.addr.eq(count), wr.data.eq(src_byte)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.sync += [head.eq(0), left.eq(0), crc_sent.eq(0)]
                m.d.comb += crc.start.eq(1)
                with m.If(self.frame.valid):
                    m.next = "LEAD"

            with m.State("LEAD"):
                m.d.comb += [self.data.valid.eq(1), self.data.payload.eq(DELIMITER)]
                with m.If(self.data.ready):
                    m.d.sync += count.eq(0)
                    m.next = "FILL"

            with m.State("FILL"):
                with m.If(exhausted):
                    m.d.sync += final.eq(1)
                    m.next = "CODE"
                with m.Elif(src_valid):
                    m.d.comb += take.eq(1)
                    m.d.sync += final.eq(0)
                    with m.If(src_byte == 0):
                        m.next = "CODE"
                    with m.Else():
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += count.eq(count + 1)
                        with m.If(count == COBS_MAX_RUN - 1):
                            m.next = "CODE"

            with m.State("CODE"):
                m.d.comb += [self.data.valid.eq(1), self.data.payload.eq(count + 1)]
                with m.If(self.data.ready):
                    m.d.sync += [rd_addr.eq(0), out_valid.eq(0)]
                    m.next = "GROUP"

            with m.State("GROUP"):
                m.d.comb += [self.data.valid.eq(out_valid), self.data.payload.eq(rd.data)]
                with m.If(~out_valid | self.data.ready):
                    with m.If(rd_addr != count):
                        m.d.comb += rd.en.eq(1)
                        m.d.sync += [rd_addr.eq(rd_addr + 1), out_valid.eq(1)]
                    with m.Else():
                        m.d.sync += [out_valid.eq(0), count.eq(0)]
                        with m.If(final):
                            m.next = "TRAIL"
                        with m.Else():
                            m.next = "FILL"

            with m.State("TRAIL"):
                m.d.comb += [self.data.valid.eq(1), self.data.payload.eq(DELIMITER)]
                with m.If(self.data.ready):
                    m.next = "IDLE"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
