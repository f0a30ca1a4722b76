"""The command decoder: checked frames in, core accesses and runs, frames out.

`Link` sits between `FrameReceiver`/`FrameSender` (hdl/framing.py) and the
`Core` (hdl/core.py) and implements every command of contract/protocol.py, whose
constants, field tables and memory map it imports (docs/protocol.md describes
the same for people).

It is a small controller (`hdl.mcu.MCU`: an 8-bit accumulator machine whose
program and data live in block RAM) running the firmware `link_program` builds,
plus the I/O ports through which that firmware moves bytes between the frame
streams, the core's command, read-data and step streams and the status counters.
As state machines the decoder took about 1,800 iCE40 logic cells, more than the
iCE40UP5K has left beside a 256-neuron core; as firmware it takes block RAM
instead (docs/protocol.md, "The top level", has the figures). What has to be
faster than a program (taking the next request's header, dropping a payload at a
byte per cycle) is gateware around it.

What the firmware does, in the order of docs/protocol.md:

- one request at a time from the receiver: HELLO, ECHO, STATUS, RESET_STATE and
  the READ_*/WRITE_* commands through the core's `cmd`/`rdata` streams; it
  remembers the (command, seq) of the last request it answered (a retry of a
  write, RESET_STATE or RUN is answered again without being applied twice) and
  sends a NACK when the receiver refuses a frame;
- RUN: the receiver holds the request's payload in its buffer (`FrameReceiver`'s
  `hold`), so it is free for the next frame at once; the firmware checks the
  request completely (record by record) before the first step runs, then feeds
  each step's inputs to `step_in`, collects the step's spikes from `step_out`
  into a bitmap and sends one STEP_RECORD per step (bitmap or address list,
  whichever is shorter, like `encode_spikes`), and with probes the PROBE_RECORDs
  that carry v and i straight from `step_out`. Without probes the record of step
  t goes out while the core computes step t+1. With the INPUTS flag the core
  reports the step's input set U first (INPUT records on `step_out`); they are
  collected into the same bitmap and sent as the INPUT_RECORD as soon as the
  first record that is not an input comes, before the step's spikes are
  collected, so the data RAM holds one bitmap of max(n, m) bits. While it waits for the core it
  answers STATUS and refuses every other request with BUSY (as it does a request
  that came during the RUN and is only taken after it).

Nothing is ever dropped: when the UART is slower than the core, the frame sender
back-pressures the firmware (a port write waits), which back-pressures the core's
`step_out`, which stalls the core. STATUS sends every field as one consistent
value (see `status_reply` in `link_program`).
"""

import enum
import hashlib
import json
from dataclasses import asdict

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from neurofabric.contract.errors import BuildError
from neurofabric.contract.device import MEMORY_TABLES, CoreShape, neuron_params_fields, neuron_state_fields
from neurofabric.contract.protocol import (
    FAMILY_COMMANDS, HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROBE_RECORD_FIELDS, PROTOCOL_VERSION,
    REPLY_FLAG, RUN_REPLY_FIELDS, RUN_REQUEST_FIELDS, SPIKE_ADDRESS_BYTES, SPIKE_RECORD_FIELDS, STATUS_REPLY_FIELDS,
    Command, Family, RunFlags, SpikeFormat, Status, fields_size, memory_tables, pack_fields, probe_chunk_neurons,
    probe_value_bytes, word_bits,
)
from neurofabric.contract.model import CORE_MODEL_VERSION
from .core_ports import CoreConfig, Op, Reg, Space, StepEvent
from .framing import COUNTER_WIDTH, HeaderLayout, PayloadLayout, Refusal
from .mcu import MCU, PORT_BASE, X, Assembler

__all__ = ["Link", "TABLE_SPACES", "core_shape", "default_build_id", "check_word_layouts", "check_link_sizes",
           "link_program"]

#: The core's address space behind each table of the protocol's memory map.
TABLE_SPACES = {table.name: Space[table.space] for table in MEMORY_TABLES}

_MEMORY_REQUEST_SIZE = fields_size(MEMORY_REQUEST_FIELDS)
_RUN_REQUEST_SIZE = fields_size(RUN_REQUEST_FIELDS)
_SPIKE_HEAD_SIZE = fields_size(SPIKE_RECORD_FIELDS)
_PROBE_HEAD_SIZE = fields_size(PROBE_RECORD_FIELDS)

#: Bytes of the controller's data RAM (one iCE40 block RAM): variables, tables, the spike
#: bitmap and the record mask; `_BIG_DATA_DEPTH` for cores whose bitmap and mask need more.
_DATA_DEPTH = 512
_BIG_DATA_DEPTH = 1024
#: Largest n and m: the spike bitmaps' byte counters are 8 bits.
_MAX_SIZE = 8 * 255
#: Largest memory word (and core read word) in bytes: the read word's byte counter
#: (RBYTE) has 7 bits; a word of 1024 bits is the ULX3S-85F core's 128 lanes of 8 bits.
_MAX_WORD_BYTES = 128
#: Bytes of the core's read word at fixed ports (RDATA + i): the registers' 32 bits.
_RDATA_PORTS = 4
#: Most neurons per PROBE_RECORD the firmware sends: it counts a chunk in one
#: byte and compares with an 8-bit immediate (chunk + 1 <= 255). Only S <= 8
#: (one byte per value: probe_chunk_neurons(S) = 507) would allow more.
_MAX_PROBE_CHUNK = 254


class _R(enum.IntEnum):
    """Read ports (controller data addresses PORT_BASE + port)."""
    FLAGS = 0       # the `_F` bits
    RX = 1          # the next payload byte of the request (waits for it)
    RXH = 2         # the request's header (latched): command, seq, length low, length high (2 .. 5)
    NACK = 6        # status of the NACK to send
    SCAN = 7        # 8 + the lowest set bit of the scan register (cleared by the read), 0 when empty
    RBYTE = 12      # the core's read word's next byte, low byte first (waits for it; RDATA_ACK starts over)
    NEURON = 8      # step_out's neuron (or input), low and high byte (waits for a record)
    STIM = 10       # the next byte of the held RUN payload
    KIND = 11       # step_out's kind, a `StepEvent` (waits for a record)
    COUNTERS = 16   # the five error counters of STATUS, in its order, low byte first (16 .. 25)
    PROBE = 32      # step_out's v then i, sign-extended to value_bytes each (waits for a record)
    RDATA = 40      # the core's read word's low bytes, one port each (40 .. 43; waits for it)


class _W(enum.IntEnum):
    """Write ports."""
    IDLE = 0        # bit 0: the firmware only waits for a request (the `busy` output is low)
    TX = 1          # a reply's next byte, header first (waits until the sender takes it)
    RXH_ACK = 7     # done with the latched header: the next one may come
    NACK_CLEAR = 8
    SCAN = 9        # load the scan register
    ADDR = 10       # the core address, 3 bytes (10 .. 12)
    CMD = 13        # issue a core command: op | space << 2 (waits until the core takes it)
    RDATA_ACK = 14  # take the core's read word
    STEP_IN_HI = 15  # high byte of the next input
    STEP_IN = 16    # feed input (STEP_IN_HI, this byte) (waits until the core takes it)
    STEP_END = 17   # end the step's inputs; bit 0: probe, bit 1: report U (the RunFlags bits) (waits)
    STEP_ACK = 18   # take the step_out record (waits for one)
    STIM_RESET = 20  # reading starts over at byte 0
    RUNNING = 21    # bit 0: the running output
    DISCARD = 22    # drop the rest of the request's payload (waits until done)
    WORD = 40       # shift a byte into the core command's data word (from the top: low byte first)


# FLAGS bits.
_F_RXH = 1          # a request's header is latched
_F_NACK = 2         # a NACK is to be sent
_F_STEP_OUT = 4     # step_out has a record
_F_RX_LAST = 8      # the request's payload has been taken to its end (or is held, or was not kept)
_F_CORE_BUSY = 16
_F_HELD = 64        # the latched request came while a RUN's payload was held: its payload was not kept
_F_STIM_END = 128   # every byte of the held payload has been read
assert _R.RDATA + _RDATA_PORTS <= 64
# STEP_END takes the RUN flags PROBE and INPUTS as they are: bit 0 asks for probes, bit 1
# for the inputs (the firmware masks the others off).
assert int(RunFlags.PROBE) == 1 and int(RunFlags.INPUTS) == 2 and len(RunFlags) == 4
assert [name for name, _ in STATUS_REPLY_FIELDS] == [
    "running", "step", "uart_framing_errors", "uart_overruns", "crc_errors", "format_errors", "dropped_frames",
    "last_step_cycles", "lost_records"]

#: Bits of the core's rate memory: `rate[k]` is compared with the 16 high bits of the
#: generator state (spec 5.0).
_RATE_BITS = 16

#: The CMD port's byte: op in bits 0-1, the space from bit 2 (`Space` codes are 0 .. 8).
_SPACE_BITS = Space.as_shape().width
assert Op.as_shape().width == 2 and 2 + _SPACE_BITS <= 8

# The memory commands: 0x10 + 2 * family, + 1 for the read.
_MEMORY_BASE = min(min(pair) for pair in FAMILY_COMMANDS.values())
assert _MEMORY_BASE == 0x10 and all(
    (read, write) == (_MEMORY_BASE + 2 * family + 1, _MEMORY_BASE + 2 * family)
    for family, (read, write) in FAMILY_COMMANDS.items()) and len(FAMILY_COMMANDS) == 4


def core_shape(config: CoreConfig) -> CoreShape:
    """The protocol's `CoreShape` of a core configuration."""
    return config.shape


def default_build_id(config: CoreConfig, clk_hz, baud):
    """A 32-bit identifier of a build: a hash of the configuration, clock, baud
    rate and the protocol and core model versions (HELLO's `build_id`)."""
    text = json.dumps({"config": asdict(config), "clk_hz": int(clk_hz), "baud": int(baud),
                       "protocol": PROTOCOL_VERSION, "core_model": CORE_MODEL_VERSION}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def check_word_layouts(config: CoreConfig):
    """Check that the protocol's word widths and field lists (contract/) are the core's.

    Raises `BuildError` naming the table when they differ: the host builds
    every word from the contract alone, so they must agree bit for bit.
    """
    shape = core_shape(config)
    expected = {
        (Family.GLOBALS, 0): 32,
        (Family.PARAMS, 0): config.neuron_params_layout.size,
        (Family.PARAMS, 1): 1,
        (Family.PARAMS, 2): 1,
        (Family.WEIGHTS, 0): config.lanes * config.W,
        (Family.STATE, 0): config.neuron_state_layout.size,
        (Family.STATE, 1): config.T,
        (Family.STATE, 2): config.T,
        (Family.PARAMS, 3): _RATE_BITS,
    }
    for (family, table), bits in expected.items():
        if word_bits(family, table, shape) != bits:
            raise BuildError(f"protocol word width of {family.name} table {table} is "
                             f"{word_bits(family, table, shape)} bits, the core's is {bits}")
    if max(expected.values()) > config.data_bits:
        raise BuildError(f"a table word is wider than the core's data_bits={config.data_bits}")
    for fields, layout in ((neuron_params_fields(config.S), config.neuron_params_layout),
                           (neuron_state_fields(config.S), config.neuron_state_layout)):
        offset = 0
        described = []
        for name, bits, is_signed in fields:
            described.append((name, offset, bits, is_signed))
            offset += bits
        actual = [(name, field.offset, field.width, field.shape.signed) for name, field in layout]
        if described != actual:
            raise BuildError(f"protocol word layout {described} differs from the core's {actual}")


def check_link_sizes(n, m):
    """Raise `BuildError` when the link cannot serve a core of `n` neurons and `m` inputs.

    The firmware counts spike bitmap bytes in 8 bits (n and m up to 2040), and
    a step record and a one-step RUN request must fit `MAX_PAYLOAD`.
    """
    bitmap_n = (n + 7) // 8
    bitmap_m = (m + 7) // 8
    if 1 + _SPIKE_HEAD_SIZE + bitmap_n > MAX_PAYLOAD:
        raise BuildError(f"n={n}: a step record ({1 + _SPIKE_HEAD_SIZE + bitmap_n} bytes) would not "
                         f"fit MAX_PAYLOAD={MAX_PAYLOAD} (n <= {8 * (MAX_PAYLOAD - 1 - _SPIKE_HEAD_SIZE)})")
    if _RUN_REQUEST_SIZE + _SPIKE_HEAD_SIZE + bitmap_m > MAX_PAYLOAD:
        raise BuildError(f"m={m}: a one-step RUN request with a bitmap would not fit "
                         f"MAX_PAYLOAD={MAX_PAYLOAD}")
    # The protocol's limits first (they hold for any device), then the firmware's own.
    if max(n, m) > _MAX_SIZE:
        raise BuildError(f"n={n}, m={m}: the link handles n and m up to {_MAX_SIZE}")


class Link(wiring.Component):
    """The command decoder between the framing layer and the core.

    Parameters
    ----------
    config : CoreConfig
        The core it drives.
    clk_hz, baud : int
        Reported by HELLO.
    build_id : int, optional
        Reported by HELLO; `default_build_id` by default.
    probe_chunk : int, optional
        Neurons per PROBE_RECORD, at most (and by default) `probe_chunk_neurons(S)`
        or 254, whichever is fewer (the firmware counts a chunk in one byte);
        smaller values exist for tests of the chunking.

    Ports
    -----
    rx_header, rx_payload : in streams
        From `FrameReceiver.header` / `.payload`.
    rx_hold, rx_read_addr, rx_read_data
        To and from `FrameReceiver.hold`, `.read_addr`, `.read_data`: a RUN's
        payload stays in the receiver's buffer while it is checked and run.
    tx_frame : out stream
        To `FrameSender.frame`: each reply's header bytes, then its payload.
    cmd, rdata, step_in, step_out, core_busy
        To and from the `Core` ports of the same names (`core_busy` is `busy`).
        The link sends a read word from `rdata` and a probe's v and i from
        `step_out` byte by byte before it takes them: it relies on the core
        holding a stream's payload until it is taken.
    uart_framing_errors, uart_overruns, crc_errors, format_errors, dropped_frames : in
        The counters of `UARTRx` and `FrameReceiver`, reported by STATUS.
    refused : in
        `FrameReceiver.refused`: a frame was just refused (and counted); the
        link sends a NACK.
    running : out
        1 while a RUN is in progress.
    busy : out
        1 while the link has work: a request, a run, a NACK or a frame to send.
    """

    def __init__(self, config: CoreConfig, *, clk_hz, baud, build_id=None, probe_chunk=None):
        try:
            self._check(config, clk_hz, baud, build_id, probe_chunk)
        except BuildError:
            self._MustUse__silence = True   # refused: no "created but never used" warning later
            raise
        super().__init__({
            "rx_header": In(stream.Signature(HeaderLayout)),
            "rx_payload": In(stream.Signature(PayloadLayout)),
            "rx_hold": Out(1),
            "rx_read_addr": Out(range(MAX_PAYLOAD)),
            "rx_read_data": In(8),
            "tx_frame": Out(stream.Signature(8)),
            "cmd": Out(stream.Signature(config.command_layout)),
            "rdata": In(stream.Signature(unsigned(config.data_bits))),
            "step_in": Out(stream.Signature(config.step_input_layout)),
            "step_out": In(stream.Signature(config.step_output_layout)),
            "core_busy": In(1),
            "uart_framing_errors": In(COUNTER_WIDTH),
            "uart_overruns": In(COUNTER_WIDTH),
            "crc_errors": In(COUNTER_WIDTH),
            "format_errors": In(COUNTER_WIDTH),
            "dropped_frames": In(COUNTER_WIDTH),
            "refused": In(Refusal),
            "running": Out(1),
            "busy": Out(1),
        })

    def _check(self, config, clk_hz, baud, build_id, probe_chunk):
        self.config = config
        most = min(probe_chunk_neurons(config.S), _MAX_PROBE_CHUNK)
        self.probe_chunk = most if probe_chunk is None else int(probe_chunk)
        if not 1 <= self.probe_chunk <= most:
            raise BuildError(f"probe_chunk={probe_chunk} outside 1 .. {most} (S={config.S})")
        self.clk_hz = int(clk_hz)
        self.baud = int(baud)
        self.build_id = default_build_id(config, clk_hz, baud) if build_id is None else int(build_id)
        if not 0 <= self.build_id < 1 << 32:
            raise BuildError(f"build_id={self.build_id} does not fit 32 bits")
        check_link_sizes(config.n, config.m)
        check_word_layouts(config)
        if (config.data_bits + 7) // 8 > _MAX_WORD_BYTES:
            raise BuildError(f"data_bits={config.data_bits}: the link moves words of up to {8 * _MAX_WORD_BYTES} bits")

    def hello_bytes(self):
        """The HELLO reply after the status byte."""
        cfg = self.config
        return pack_fields(HELLO_REPLY_FIELDS, protocol_version=PROTOCOL_VERSION,
                           core_model_version=CORE_MODEL_VERSION, n=cfg.n, m=cfg.m, state_bits=cfg.S,
                           weight_bits=cfg.W, trace_bits=cfg.T, lanes=cfg.lanes, clk_hz=self.clk_hz,
                           baud=self.baud, max_payload=MAX_PAYLOAD, build_id=self.build_id)

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        value_bytes = probe_value_bytes(cfg.S)
        program = link_program(cfg, self.hello_bytes(), self.probe_chunk)
        m.submodules.mcu = mcu = MCU(program.assemble(), program.data(), program.data_depth)

        port = mcu.port_addr
        rd = mcu.port_rd
        wr = mcu.port_wr
        a = mcu.port_wdata

        def reading(p):
            return rd & (port == p)

        def writing(p):
            return wr & (port == p)

        # ---- state behind the ports ----
        idle = Signal()
        nack_pending = Signal()
        nack_status = Signal(3)
        rx_last = Signal()              # the request's payload has been read to its end
        scan = Signal(8)
        addr = Signal(24)
        word = Signal(8 * ((cfg.data_bits + 7) // 8))
        src_hi = Signal(8)
        running = Signal()
        m.d.comb += self.running.eq(running)

        # NACK: the receiver refused a frame (a clear and a refusal in one cycle: the refusal wins).
        with m.If(writing(_W.NACK_CLEAR)):
            m.d.sync += nack_pending.eq(0)
        for reason, status in ((Refusal.CRC, Status.BAD_CRC), (Refusal.FORMAT, Status.BAD_LENGTH),
                               (Refusal.DROPPED, Status.BUSY)):
            with m.If(self.refused == reason):
                m.d.sync += [nack_pending.eq(1), nack_status.eq(status)]

        # The header latch takes the next request's header as soon as the firmware is done
        # with the last one, as the receiver hands it out. A RUN's payload (outside a run)
        # is not handed out: the receiver holds it in its buffer, where the firmware reads
        # it, until the RUN is refused or over; meanwhile requests come as headers alone.
        # So the receiver is free again as soon as the RUN's header is taken.
        rx_h = Signal(HeaderLayout)
        rx_full = Signal()
        rx_late = Signal()              # the latched header came while a payload was held
        held = Signal()
        hdr = self.rx_header.payload
        latch = self.rx_header.valid & ~rx_full
        hold_now = held | latch & (hdr.command == Command.RUN) & ~running
        m.d.comb += [self.rx_header.ready.eq(~rx_full), self.rx_hold.eq(hold_now)]
        with m.If(writing(_W.RXH_ACK)):
            m.d.sync += rx_full.eq(0)
        with m.If(writing(_W.RXH_ACK) & ~running | writing(_W.RUNNING) & ~a[0]):
            m.d.sync += held.eq(0)
        with m.If(writing(_W.DISCARD)):
            m.d.comb += [mcu.port_wait.eq(~rx_last & ~(self.rx_payload.valid & self.rx_payload.payload.last)),
                         self.rx_payload.ready.eq(~rx_last)]
            with m.If(~rx_last & self.rx_payload.valid):
                m.d.sync += rx_last.eq(self.rx_payload.payload.last)
        with m.If(latch):
            m.d.sync += [rx_h.eq(hdr), rx_full.eq(1), rx_last.eq((hdr.length == 0) | hold_now), held.eq(hold_now),
                         rx_late.eq(held)]

        # The held payload, read from byte 0 on; the read address runs one byte ahead, so
        # the data of byte stim_ptr is always there.
        stim_ptr = Signal(range(MAX_PAYLOAD + 1))
        stim_next = reading(_R.STIM)
        m.d.comb += self.rx_read_addr.eq(stim_ptr + stim_next)
        with m.If(writing(_W.STIM_RESET)):
            m.d.sync += stim_ptr.eq(0)
        with m.Elif(stim_next):
            m.d.sync += stim_ptr.eq(stim_ptr + 1)

        # The scan register: the bits of a bitmap byte, lowest first.
        lowest = Signal(3)
        for i in reversed(range(8)):
            with m.If(scan[i]):
                m.d.comb += lowest.eq(i)
        with m.If(writing(_W.SCAN)):
            m.d.sync += scan.eq(a)
        with m.Elif(reading(_R.SCAN)):
            m.d.sync += scan.eq(scan & (scan - 1))

        # ---- reads ----
        out = self.step_out.payload
        v_ext = Signal(signed(8 * value_bytes))
        i_ext = Signal(signed(8 * value_bytes))
        m.d.comb += [v_ext.eq(out.v), i_ext.eq(out.i)]
        rdata = self.rdata.payload
        sources = {
            _R.FLAGS: Cat(rx_full, nack_pending, self.step_out.valid, rx_last, self.core_busy, C(0, 1),
                          rx_late, stim_ptr == rx_h.length),
            _R.KIND: out.kind.as_value(),
            _R.RX: self.rx_payload.payload.data,
            _R.NACK: nack_status,
            _R.SCAN: Mux(scan == 0, 0, Cat(lowest, C(1, 1))),
            _R.STIM: self.rx_read_data,
        }
        for i, value in enumerate([rx_h.command, rx_h.seq, rx_h.length[:8], rx_h.length[8:]]):
            sources[_R.RXH + i] = value
        fields = [(_R.NEURON, out.neuron, (len(out.neuron) + 7) // 8),
                  (_R.PROBE, Cat(v_ext, i_ext), 2 * value_bytes),
                  (_R.RDATA, rdata, min(_RDATA_PORTS, (len(rdata) + 7) // 8))]
        for i, counter in enumerate([self.uart_framing_errors, self.uart_overruns, self.crc_errors,
                                     self.format_errors, self.dropped_frames]):
            fields.append((_R.COUNTERS + 2 * i, counter, 2))
        for base, value, size in fields:
            for i in range(size):
                sources[base + i] = value[8 * i:8 * i + 8]
        # RBYTE: the read word byte by byte, at a counter that RDATA_ACK clears.
        rdata_bytes = (len(rdata) + 7) // 8
        rbyte = Signal(range(max(rdata_bytes, 2)))
        sources[_R.RBYTE] = Cat(rdata, C(0, 8 * rdata_bytes - len(rdata))).word_select(rbyte, 8)
        with m.Switch(port):
            for p, value in sources.items():
                with m.Case(p):
                    m.d.comb += mcu.port_rdata.eq(value)

        # Reads that wait for a stream, and their transfers.
        with m.If(reading(_R.RX)):
            m.d.comb += [mcu.port_wait.eq(~self.rx_payload.valid), self.rx_payload.ready.eq(1)]
            with m.If(self.rx_payload.valid):
                m.d.sync += rx_last.eq(self.rx_payload.payload.last)
        with m.If(rd & ((port == _R.NEURON) | (port == _R.NEURON + 1) | (port == _R.KIND) |
                        (port >= _R.PROBE) & (port < _R.PROBE + 2 * value_bytes))):
            m.d.comb += mcu.port_wait.eq(~self.step_out.valid)
        with m.If(rd & ((port >= _R.RDATA) | (port == _R.RBYTE))):
            m.d.comb += mcu.port_wait.eq(~self.rdata.valid)
        with m.If(reading(_R.RBYTE)):
            m.d.sync += rbyte.eq(rbyte + 1)
        with m.If(writing(_W.RDATA_ACK)):
            m.d.sync += rbyte.eq(0)

        # ---- writes ----
        with m.If(writing(_W.IDLE)):
            m.d.sync += idle.eq(a[0])
        with m.If(writing(_W.RUNNING)):
            m.d.sync += running.eq(a[0])
        for i in range(3):
            with m.If(writing(_W.ADDR + i)):
                m.d.sync += addr[8 * i:8 * i + 8].eq(a)
        with m.If(writing(_W.WORD)):
            m.d.sync += word.eq(Cat(word[8:], a))
        if cfg.input_bits > 8:
            with m.If(writing(_W.STEP_IN_HI)):
                m.d.sync += src_hi.eq(a)
        m.d.comb += [
            self.tx_frame.payload.eq(a),
            self.cmd.payload.op.as_value().eq(a[:2]),
            self.cmd.payload.space.as_value().eq(a[2:2 + _SPACE_BITS]),
            self.cmd.payload.addr.eq(addr), self.cmd.payload.data.eq(word),
            self.step_in.payload.source.eq(Cat(a, src_hi)),
            self.step_in.payload.probe.eq(a[0]), self.step_in.payload.inputs.eq(a[1]),
        ]
        # Writes that are stream transfers: the controller waits until they happen.
        for p, valid, ready in ((_W.TX, self.tx_frame.valid, self.tx_frame.ready),
                                (_W.CMD, self.cmd.valid, self.cmd.ready),
                                (_W.STEP_IN, self.step_in.valid, self.step_in.ready),
                                (_W.STEP_END, self.step_in.valid, self.step_in.ready)):
            with m.If(writing(p)):
                m.d.comb += [valid.eq(1), mcu.port_wait.eq(~ready)]
        with m.If(writing(_W.STEP_END)):
            m.d.comb += self.step_in.payload.end.eq(1)
        for p, valid, ready in ((_W.RDATA_ACK, self.rdata.valid, self.rdata.ready),
                                (_W.STEP_ACK, self.step_out.valid, self.step_out.ready)):
            with m.If(writing(p)):
                m.d.comb += [ready.eq(1), mcu.port_wait.eq(~valid)]

        m.d.comb += self.busy.eq(~idle | rx_full | self.rx_header.valid | nack_pending)
        return m


def link_program(config: CoreConfig, hello: bytes, probe_chunk: int) -> Assembler:
    """The link's firmware for a core of `config` (an `Assembler`, ready to assemble).

    `hello` is the HELLO reply after its status byte, `probe_chunk` the most
    neurons per PROBE_RECORD.
    """
    n, M = config.n, config.m
    shape = core_shape(config)
    bitmap_n = (n + 7) // 8
    bitmap_m = (M + 7) // 8
    value_bytes = probe_value_bytes(config.S)
    assert SPIKE_ADDRESS_BYTES == 2 and _SPIKE_HEAD_SIZE == 5 and _PROBE_HEAD_SIZE == 8
    assert int(Status.OK) == 0 and int(SpikeFormat.BITMAP) == 0 and StepEvent.SPIKE.value == 0

    a = Assembler(data_depth=_DATA_DEPTH)

    def P(port):
        return PORT_BASE + port

    def var(name, size=1, init=None):
        return a.var(name, size, init)

    # ---- data RAM ----
    h_cmd, h_seq, h_len = var("h_cmd"), var("h_seq"), var("h_len", 2)
    tlen = var("tlen", 2)                               # the reply's payload length
    status = var("status")
    last_valid, last_cmd = var("last_valid"), var("last_cmd")
    last_seq, last_status = var("last_seq"), var("last_status")
    running = var("running")
    k, cnt, tmp = var("k"), var("cnt"), var("tmp", 2)
    req = var("req", _MEMORY_REQUEST_SIZE)              # table, address (4), count (2)
    t_space, t_wb, ti = var("t_space"), var("t_wb"), var("ti")
    size = var("size", 3)
    end = var("end", 3)
    steps, probe, dec, run_seq, pending = var("steps", 2), var("probe"), var("dec"), var("run_seq"), var("pending")
    rec, kk, lo = var("rec", 2), var("kk", 2), var("lo")
    n_used, spikes, first, left = var("n_used", 2), var("spikes", 2), var("first", 2), var("left", 2)
    j8 = var("j8", 2)
    # The RUN's flags as STEP_END takes them, the INPUTS bit alone, and whether this
    # step's INPUT_RECORD is still to be sent.
    end_flags, want_inputs, inputs_due = var("end_flags"), var("want_inputs"), var("inputs_due")
    # What `record` sends: the frame's command, the bitmap's bytes, the most indices
    # sent as an address list + 1 (0: never), a bitmap record's length, what the
    # step field is less than steps_done.
    r_cmd, r_bytes, r_list, r_len, r_dec = var("r_cmd"), var("r_bytes"), var("r_list"), var("r_len", 2), var("r_dec")
    # steps_done and step_cycles, as the core's registers of those names hold them: read
    # whenever they change (the firmware takes a step's END, or resets the state).
    progress = var("progress", 8)
    hello_at = var("hello", len(hello), hello)
    masks = var("masks", 8, [1 << i for i in range(8)])
    # The table of tables: 8 bytes per (family, table < 4): space | 0x80 when it exists, word bytes, depth.
    infos = [0] * (8 * 16)
    for info in memory_tables(shape):
        if info.depth >= 1 << 24:
            raise BuildError(f"table {info.name} has {info.depth} words; the link addresses at most 2**24")
        if info.word_bytes > _MAX_WORD_BYTES:
            raise BuildError(f"table {info.name}: a word of {info.word_bytes} bytes is more than the link's "
                             f"{_MAX_WORD_BYTES}")
        entry = 8 * (4 * info.family + info.table)
        infos[entry:entry + 5] = [0x80 | TABLE_SPACES[info.name].value, info.word_bytes,
                                  *info.depth.to_bytes(3, "little")]
    table_info = var("table_info", len(infos), infos)
    # A step's spikes, or before them its inputs (`spikes` counts either).
    bitmap = var("bitmap", max(bitmap_n, bitmap_m))
    # The neurons a RUN with SUBSET records (SET_RECORD; every neuron at first), whether
    # this RUN has SUBSET and GENERATED, and whether the record being collected is
    # a step's spikes under SUBSET (the mask applies) rather than its inputs.
    subset, generated, masked = var("subset"), var("generated"), var("masked")
    # The bytes of rmask up to its last nonzero one (an address list of a SUBSET record
    # only looks at those), and the bytes `record` looks at for a list.
    rmask_end, r_end = var("rmask_end", 1, [bitmap_n]), var("r_end")
    if a.data_depth < len(a.data()) + bitmap_n:
        a.data_depth = _BIG_DATA_DEPTH      # a large core: the data RAM of two block RAMs
    rmask = var("rmask", bitmap_n, [0xFF] * (n // 8) + ([(1 << (n % 8)) - 1] if n % 8 else []))

    # ---- small routines ----
    def inc16(v):
        a.ldx(v); a.call("inc16")

    def dec16(v):
        a.ldx(v); a.call("dec16")

    def jne16(x, y, label):
        a.ld(x); a.cmp(y); a.jnz(label); a.ld(x + 1); a.cmp(y + 1); a.jnz(label)

    def send(*values):
        """Send bytes: ints are immediates, 1-tuples variable addresses."""
        for value in values:
            if isinstance(value, tuple):
                a.ld(value[0])
            else:
                a.ldi(value)
            a.st(P(_W.TX))

    def set_tlen(length):
        a.ldi(length & 0xFF); a.st(tlen); a.ldi(length >> 8); a.st(tlen + 1)

    # reply_status: a reply of the status byte alone (header from the request).
    # reply_hdr: the same with the payload length in tlen: header, then the status byte.
    a.jmp("start")
    a.label("reply_status")
    set_tlen(1)
    a.label("reply_hdr")
    a.ld(h_cmd); a.ori(REPLY_FLAG); a.st(P(_W.TX))
    send((h_seq,), (tlen,), (tlen + 1,), (status,))
    a.ret()

    a.label("inc16")                # the 16-bit variable at X + 1
    a.ld(X); a.addi(1); a.st(X); a.ld(X + 1); a.adci(0); a.st(X + 1); a.ret()
    a.label("dec16")                # the 16-bit variable at X - 1
    a.ld(X); a.subi(1); a.st(X); a.ld(X + 1); a.sbci(0); a.st(X + 1); a.ret()

    a.label("remember")
    a.ldi(1); a.st(last_valid); a.ld(h_cmd); a.st(last_cmd); a.ld(h_seq); a.st(last_seq)
    a.ld(status); a.st(last_status); a.ret()

    a.label("take_header")          # the latched header (released with RXH_ACK when done)
    for i, v in enumerate((h_cmd, h_seq, h_len, h_len + 1)):
        a.ld(P(_R.RXH + i)); a.st(v)
    a.ret()

    a.label("discard")              # the rest of the request's payload
    a.st(P(_W.DISCARD)); a.ret()

    a.label("send_nack")            # NACK, seq 0, the latest refusal's status
    a.st(P(_W.NACK_CLEAR)); a.ld(P(_R.NACK)); a.st(status)
    send(Command.NACK | REPLY_FLAG, 0, 1, 0, (status,))
    a.ret()

    a.label("send_block")           # A bytes (1 .. 255) from X on
    a.st(k)
    a.label("send_block_loop")
    a.ld(X); a.st(P(_W.TX)); a.inx(); a.ld(k); a.subi(1); a.st(k); a.jnz("send_block_loop")
    a.ret()

    # progress: the copies of steps_done and step_cycles, read from the core (idle).
    a.label("progress")
    a.ldi(0); a.st(P(_W.ADDR + 1)); a.st(P(_W.ADDR + 2))
    for offset, register in ((0, Reg.STEPS_DONE), (4, Reg.LAST_STEP_CYCLES)):
        a.ldi(register.value); a.st(P(_W.ADDR)); a.ldi(Op.READ.value | Space.GLOBAL.value << 2); a.st(P(_W.CMD))
        for i in range(4):
            a.ld(P(_R.RDATA + i)); a.st(progress + offset + i)
        a.st(P(_W.RDATA_ACK))
    a.ret()

    # STATUS: OK, running, then the fields (and lost_records = 0). Every field goes out as
    # one value: the copies of steps_done and step_cycles only change when the firmware
    # takes a step's END, never while it answers; an error counter (which only counts up)
    # is read high byte, low byte, high byte again, and again while the high byte moved.
    a.label("status_reply")          # (its header inline: it is called two calls deep)
    a.ld(h_cmd); a.ori(REPLY_FLAG); a.st(P(_W.TX))
    send((h_seq,), 1 + fields_size(STATUS_REPLY_FIELDS), 0, Status.OK, (running,))
    send(*[(progress + i,) for i in range(4)])
    a.ldx(_R.COUNTERS)
    a.label("status_counter")
    a.ld(PORT_BASE + 1 + X); a.st(tmp); a.ld(PORT_BASE + X); a.st(lo)
    a.ld(PORT_BASE + 1 + X); a.cmp(tmp); a.jnz("status_counter")
    a.ld(lo); a.st(P(_W.TX)); a.ld(tmp); a.st(P(_W.TX))
    a.inx(); a.inx(); a.txa(); a.cmpi(_R.COUNTERS + 10); a.jnz("status_counter")
    send(*[(progress + 4 + i,) for i in range(4)], 0, 0)
    a.ret()

    # ---- the main loop ----
    a.label("next")                 # done with the request: release its header
    a.st(P(_W.RXH_ACK))
    a.label("start")
    a.call("progress")
    a.label("main", top_level=True)
    a.ldi(1); a.st(P(_W.IDLE))
    a.label("wait")
    a.ld(P(_R.FLAGS)); a.andi(_F_RXH | _F_NACK); a.jz("wait")
    a.ldi(0); a.st(P(_W.IDLE))
    a.ld(P(_R.FLAGS)); a.andi(_F_NACK); a.jz("request")
    a.call("send_nack"); a.jmp("main")

    a.label("request")
    a.call("take_header")
    # A request that came during a RUN (its payload was not kept): as during the RUN.
    a.ld(P(_R.FLAGS)); a.andi(_F_HELD); a.jz("request_now")
    a.call("answer_in_run"); a.jmp("main")
    a.label("request_now")
    # A retry: the same command and seq as the last answered request, a write, RESET_STATE or RUN.
    a.ld(last_valid); a.jz("fresh")
    a.ld(last_cmd); a.cmp(h_cmd); a.jnz("fresh")
    a.ld(last_seq); a.cmp(h_seq); a.jnz("fresh")
    a.ld(h_cmd); a.cmpi(Command.RESET_STATE); a.jz("retry"); a.cmpi(Command.RUN); a.jz("retry")
    a.andi(0xF9); a.cmpi(_MEMORY_BASE); a.jnz("fresh")             # the writes: 0x10, 0x12, 0x14, 0x16
    a.label("retry")                # answered again, nothing applied
    a.call("discard")
    a.ld(last_status); a.st(status)
    a.jnz("retry_status")
    a.ld(h_cmd); a.cmpi(Command.RUN); a.jnz("retry_status")
    a.call("run_reply"); a.jmp("next")
    a.label("retry_status")
    a.call("reply_status"); a.jmp("next")

    a.label("fresh")
    a.ld(h_cmd)
    for command, label in ((Command.HELLO, "c_hello"), (Command.ECHO, "c_echo"), (Command.STATUS, "c_status"),
                           (Command.RESET_STATE, "c_reset"), (Command.SET_RECORD, "c_record"),
                           (Command.RUN, "c_run")):
        a.cmpi(command); a.jz(label)
    a.andi(0xF8); a.cmpi(_MEMORY_BASE); a.jz("c_memory")
    a.ldi(Status.UNKNOWN_COMMAND); a.jmp("refuse")

    for code in (Status.BAD_LENGTH, Status.BAD_ADDRESS, Status.OVERFLOW, Status.BAD_VALUE):
        a.label(f"refuse_{code.name.lower()}")
        a.ldi(code); a.jmp("refuse")
    a.label("refuse")               # the status alone, once the payload is consumed; remembered
    a.st(status); a.call("discard")
    a.label("answer")
    a.call("reply_status")
    a.label("done")
    a.call("remember"); a.jmp("next")

    a.label("empty_only")           # Z: the payload is empty, else BAD_LENGTH
    a.ld(h_len); a.or_(h_len + 1); a.jnz("refuse_bad_length"); a.ret()

    # HELLO: the constant reply; forgets the remembered request.
    a.label("c_hello")
    a.call("empty_only")
    set_tlen(1 + len(hello)); a.st(status); a.call("reply_hdr")
    a.ldx(hello_at); a.ldi(len(hello)); a.call("send_block")
    a.ldi(0); a.st(last_valid); a.jmp("next")

    # ECHO: the payload straight back (OVERFLOW from 1024 bytes on).
    a.label("c_echo")
    a.ld(h_len + 1); a.cmpi(MAX_PAYLOAD >> 8); a.jc("refuse_overflow")
    assert MAX_PAYLOAD & 0xFF == 0
    a.ld(h_len); a.addi(1); a.st(tlen); a.ld(h_len + 1); a.adci(0); a.st(tlen + 1)
    a.ldi(Status.OK); a.st(status); a.call("reply_hdr")
    a.label("echo_loop")
    a.ld(P(_R.FLAGS)); a.andi(_F_RX_LAST); a.jnz("done")
    a.ld(P(_R.RX)); a.st(P(_W.TX)); a.jmp("echo_loop")

    a.label("c_status")
    a.call("empty_only"); a.call("status_reply"); a.jmp("done")

    # RESET_STATE: answered once the core has cleared the state.
    a.label("c_reset")
    a.call("empty_only")
    a.ldi(Op.RESET_STATE.value); a.st(P(_W.CMD))
    a.label("reset_wait")
    a.ld(P(_R.FLAGS)); a.andi(_F_CORE_BUSY); a.jnz("reset_wait")
    a.call("progress")
    a.ldi(Status.OK); a.st(status); a.jmp("answer")

    # SET_RECORD: the bitmap of the neurons to record, taken into the bitmap (free
    # between RUNs), checked, then copied to rmask (the bitmap cleared on the way).
    a.label("c_record")
    a.ld(h_len + 1); a.jnz("refuse_bad_length"); a.ld(h_len); a.cmpi(bitmap_n); a.jnz("refuse_bad_length")
    a.ldx(0)
    a.label("record_take")
    a.ld(P(_R.RX)); a.st(bitmap + X); a.inx(); a.txa(); a.cmpi(bitmap_n); a.jnz("record_take")
    if n % 8:
        a.ld(bitmap + bitmap_n - 1); a.andi((0xFF << (n % 8)) & 0xFF); a.jnz("record_bad")
    a.ldi(1); a.st(rmask_end)        # (at least one byte: the list loop looks at one or more)
    a.ldx(0)
    a.label("record_copy")
    a.ld(bitmap + X); a.st(rmask + X); a.jz("record_zero"); a.inx(); a.txa(); a.st(rmask_end); a.jmp("record_next")
    a.label("record_zero")
    a.inx()
    a.label("record_next")
    a.ldi(0); a.st((bitmap - 1) + X); a.txa(); a.cmpi(bitmap_n); a.jnz("record_copy")
    a.ldi(Status.OK); a.st(status); a.jmp("answer")
    a.label("record_bad")           # a neuron >= n: refused, the mask as it was
    a.ldi(0); a.st(bitmap + bitmap_n - 1); a.jmp("refuse_bad_value")

    # READ_* / WRITE_*: table, address, count; then the checks in the documented order.
    a.label("c_memory")
    a.ld(h_len + 1); a.jnz("mem_long")
    a.ld(h_len); a.cmpi(_MEMORY_REQUEST_SIZE); a.jnc("refuse_bad_length"); a.jz("mem_length_ok")
    a.label("mem_long")             # longer than the request fields: writes only
    a.ld(h_cmd); a.andi(1); a.jnz("refuse_bad_length")
    a.label("mem_length_ok")
    a.ldx(0)
    a.label("mem_fields")
    a.ld(P(_R.RX)); a.st(req + X); a.inx(); a.txa(); a.cmpi(_MEMORY_REQUEST_SIZE); a.jnz("mem_fields")
    # 1. the table: (family * 4 + table) * 8 into the table of tables
    a.ld(req); a.cmpi(4); a.jc("refuse_bad_address")
    a.st(tmp); a.ld(h_cmd); a.andi(6); a.shl(); a.or_(tmp); a.shl(); a.shl(); a.shl(); a.st(ti); a.tax()
    a.ld(table_info + X); a.jz("refuse_bad_address")
    a.andi((1 << _SPACE_BITS) - 1); a.shl(); a.shl(); a.st(t_space)    # space << 2, as the CMD port wants it
    a.ld(table_info + 1 + X); a.st(t_wb)
    # size = 1 + count * word bytes (a read's reply), 24 bits
    a.ldi(1); a.st(size); a.ldi(0); a.st(size + 1); a.st(size + 2); a.st(tmp + 1)
    a.label("mem_size_loop")
    a.ld(size); a.add(req + 5); a.st(size); a.ld(size + 1); a.adc(req + 6); a.st(size + 1)
    a.ld(size + 2); a.adci(0); a.st(size + 2)
    a.ld(tmp + 1); a.addi(1); a.st(tmp + 1); a.cmp(t_wb); a.jnz("mem_size_loop")
    # 3. a write's payload is 7 + count * word bytes = size + 6
    a.ld(h_cmd); a.andi(1); a.jnz("mem_range")
    a.ld(size + 2); a.jnz("refuse_bad_length")
    a.ld(h_len); a.subi(_MEMORY_REQUEST_SIZE - 1); a.st(tmp); a.ld(h_len + 1); a.sbci(0); a.cmp(size + 1)
    a.jnz("refuse_bad_length"); a.ld(tmp); a.cmp(size); a.jnz("refuse_bad_length")
    # 4. address + count <= depth
    a.label("mem_range")
    a.ld(req + 4); a.jnz("refuse_bad_address")
    a.ld(req + 1); a.add(req + 5); a.st(end); a.ld(req + 2); a.adc(req + 6); a.st(end + 1)
    a.ld(req + 3); a.adci(0); a.st(end + 2); a.jc("refuse_bad_address")
    a.ld(ti); a.tax()
    a.ld(table_info + 2 + X); a.sub(end); a.ld(table_info + 3 + X); a.sbc(end + 1)
    a.ld(table_info + 4 + X); a.sbc(end + 2); a.jnc("refuse_bad_address")
    a.call("set_address")
    a.ld(h_cmd); a.andi(1); a.jz("mem_write")
    # 5. a read's reply fits MAX_PAYLOAD
    a.ld(size + 2); a.jnz("refuse_overflow")
    a.ld(size); a.subi((MAX_PAYLOAD + 1) & 0xFF); a.ld(size + 1); a.sbci((MAX_PAYLOAD + 1) >> 8)
    a.jc("refuse_overflow")
    a.ld(size); a.st(tlen); a.ld(size + 1); a.st(tlen + 1)
    a.ldi(Status.OK); a.st(status); a.call("reply_hdr")
    a.label("read_word")
    a.ld(req + 5); a.or_(req + 6); a.jz("done")
    a.ld(t_space); a.ori(Op.READ.value); a.st(P(_W.CMD))
    a.ldx(0)
    a.label("read_bytes")
    a.ld(P(_R.RBYTE)); a.st(P(_W.TX)); a.inx(); a.txa(); a.cmp(t_wb); a.jnz("read_bytes")
    a.st(P(_W.RDATA_ACK))
    a.call("next_word"); a.jmp("read_word")

    a.label("mem_write")
    a.label("write_word")
    a.ld(req + 5); a.or_(req + 6); a.jz("write_done")
    a.ldx(0)
    a.label("write_bytes")          # the word's bytes, then zeros up to the core's data width
    a.ldi(0); a.st(tmp); a.txa(); a.cmp(t_wb); a.jc("write_shift")
    a.ld(P(_R.RX)); a.st(tmp)
    a.label("write_shift")
    a.ld(tmp); a.st(P(_W.WORD)); a.inx(); a.txa(); a.cmpi((config.data_bits + 7) // 8); a.jnz("write_bytes")
    a.ld(t_space); a.ori(Op.WRITE.value); a.st(P(_W.CMD))
    a.call("next_word"); a.jmp("write_word")
    a.label("write_done")
    a.ldi(Status.OK); a.st(status); a.jmp("answer")

    a.label("next_word")            # count - 1, address + 1 (also in the ADDR ports)
    dec16(req + 5)
    a.ld(req + 1); a.addi(1); a.st(req + 1); a.ld(req + 2); a.adci(0); a.st(req + 2)
    a.ld(req + 3); a.adci(0); a.st(req + 3)
    a.label("set_address")
    for i in range(3):
        a.ld(req + 1 + i); a.st(P(_W.ADDR + i))
    a.ret()

    # ---- RUN ----
    a.label("c_run")
    a.ld(h_len + 1); a.jnz("run_fields")
    a.ld(h_len); a.cmpi(_RUN_REQUEST_SIZE); a.jnc("refuse_bad_length")
    a.label("run_fields")           # the payload, held in the receiver's buffer
    a.st(P(_W.STIM_RESET))
    a.ld(P(_R.STIM)); a.st(steps); a.ld(P(_R.STIM)); a.st(steps + 1)
    a.ld(P(_R.STIM)); a.st(tmp); a.andi(~int(RunFlags.PROBE | RunFlags.INPUTS | RunFlags.SUBSET
                                            | RunFlags.GENERATED) & 0xFF)
    a.jnz("refuse_bad_value")
    a.ld(tmp); a.andi(RunFlags.PROBE | RunFlags.INPUTS); a.st(end_flags); a.andi(RunFlags.PROBE); a.st(probe)
    a.ld(tmp); a.andi(RunFlags.INPUTS); a.st(want_inputs)
    a.ld(tmp); a.andi(RunFlags.SUBSET); a.st(subset)
    a.ld(tmp); a.andi(RunFlags.GENERATED); a.st(generated)
    a.ldi(0); a.st(rec); a.st(rec + 1)
    # GENERATED: no input records; the payload ends with the flags.
    a.ld(generated); a.jz("run_record")
    a.ld(P(_R.FLAGS)); a.andi(_F_STIM_END); a.jz("refuse_bad_length"); a.jmp("run_checked")
    # The records, checked; the first failure answers.
    a.label("run_record")
    a.ld(P(_R.FLAGS)); a.andi(_F_STIM_END); a.jnz("run_records_end")
    a.ld(rec); a.cmp(steps); a.jnz("run_record_step"); a.ld(rec + 1); a.cmp(steps + 1)
    a.jz("refuse_bad_length")        # a byte after the last record
    a.label("run_record_step")       # step field = the record's index
    a.call("getb"); a.cmp(rec); a.jnz("refuse_bad_value")
    a.call("getb"); a.cmp(rec + 1); a.jnz("refuse_bad_value")
    a.call("getb"); a.jnz("refuse_bad_value")
    a.call("getb"); a.jnz("refuse_bad_value")
    a.call("getb"); a.jz("run_bitmap")
    a.cmpi(SpikeFormat.ADDRESSES); a.jnz("refuse_bad_value")
    a.call("getb"); a.st(kk); a.call("getb"); a.st(kk + 1)
    a.label("run_address")
    a.ld(kk); a.or_(kk + 1); a.jz("run_record_done")
    a.call("getb"); a.st(lo); a.call("getb")
    a.cmpi(M >> 8); a.jnc("run_address_ok"); a.jnz("refuse_bad_value")      # high byte vs m's
    a.ld(lo); a.cmpi(M & 0xFF); a.jc("refuse_bad_value")
    a.label("run_address_ok")
    dec16(kk); a.jmp("run_address")
    a.label("run_bitmap")
    a.ldi(bitmap_m); a.st(cnt)
    a.label("run_bitmap_loop")
    a.call("getb"); a.st(tmp); a.ld(cnt); a.subi(1); a.st(cnt); a.jnz("run_bitmap_loop")
    if M % 8:
        a.ld(tmp); a.andi((0xFF << (M % 8)) & 0xFF); a.jnz("refuse_bad_value")     # an input >= m
    a.label("run_record_done")
    inc16(rec); a.jmp("run_record")

    a.label("getb")                 # the next record byte (Z from it)
    a.ld(P(_R.FLAGS)); a.andi(_F_STIM_END); a.jnz("getb_cut")
    a.ld(P(_R.STIM)); a.ret()
    a.label("getb_cut")             # a record cut short
    a.ldi(Status.BAD_LENGTH); a.st(status); a.jmp("answer")

    a.label("run_records_end")      # as many records as steps
    jne16(rec, steps, "refuse_bad_length")
    a.label("run_checked")
    # Run: the probes need n_used.
    a.ldi(Reg.N_USED.value); a.st(P(_W.ADDR)); a.ldi(0); a.st(P(_W.ADDR + 1)); a.st(P(_W.ADDR + 2))
    a.ldi(Op.READ.value | Space.GLOBAL.value << 2); a.st(P(_W.CMD))
    a.ld(P(_R.RDATA)); a.st(n_used); a.ld(P(_R.RDATA + 1)); a.st(n_used + 1); a.st(P(_W.RDATA_ACK))
    a.ld(h_seq); a.st(run_seq); a.ldi(1); a.st(running); a.st(P(_W.RUNNING))
    a.st(P(_W.RXH_ACK))             # requests may come: STATUS or BUSY
    a.ldi(1); a.sub(probe); a.st(dec)           # step records carry steps_done - 1 without probes
    a.ldi(0); a.st(rec); a.st(rec + 1); a.st(pending)
    a.st(P(_W.STIM_RESET))          # to the first record
    for _ in range(_RUN_REQUEST_SIZE):
        a.ld(P(_R.STIM))
    a.label("run_step")
    jne16(rec, steps, "run_feed")
    a.ld(pending); a.jz("run_end")
    a.call("step_record")
    a.label("run_end")
    a.ldi(0); a.st(running); a.st(P(_W.RUNNING)); a.st(status)
    a.ldi(Command.RUN); a.st(h_cmd); a.ld(run_seq); a.st(h_seq)     # remembered as the RUN's answer
    a.call("run_reply"); a.call("remember"); a.jmp("main")   # (its header went at the start)

    a.label("run_feed")
    a.call("feed")
    a.ld(pending); a.jz("run_collect")
    a.call("step_record")           # the last step's record, while this step runs
    # The step's inputs (when asked for) and then its spikes into the bitmap, until a
    # record that is neither; the first record that is not an input sends the inputs.
    # Requests that arrive meanwhile are answered.
    # Per record, the fast path is a spike: its bit goes into the bitmap (under SUBSET only
    # when rmask has it) and `spikes` counts it, saturating at 255 (`record` only needs
    # to know whether the count is below the address list's limit, at most 127).
    # `masked` is SUBSET for the step's spikes and 0 for its inputs, which come first.
    a.label("run_collect")
    a.ldi(0); a.st(spikes); a.st(spikes + 1)
    a.ld(subset); a.st(masked)
    a.ld(want_inputs); a.st(inputs_due); a.jz("collect_wait")
    a.ldi(0); a.st(masked)
    a.label("collect_wait")
    a.ld(P(_R.FLAGS)); a.andi(_F_RXH | _F_NACK); a.jz("collect_poll")
    a.call("service")
    a.label("collect_poll")
    a.ld(P(_R.FLAGS)); a.andi(_F_STEP_OUT); a.jz("collect_wait")
    a.ld(P(_R.KIND)); a.jnz("collect_other")            # not a SPIKE
    a.ld(inputs_due); a.jnz("collect_inputs_sent")      # the step's inputs go out first
    a.label("collect_bit")                              # neuron or input into the bitmap
    a.ld(P(_R.NEURON)); a.andi(7); a.tax(); a.ld(masks + X); a.st(tmp)
    if max(n, M) > 256:
        a.ld(P(_R.NEURON + 1)); a.shl(); a.shl(); a.shl(); a.shl(); a.shl(); a.st(tmp + 1)
        a.ld(P(_R.NEURON)); a.shr(); a.shr(); a.shr(); a.or_(tmp + 1)
    else:
        a.ld(P(_R.NEURON)); a.shr(); a.shr(); a.shr()
    a.tax()
    a.ld(masked); a.jz("collect_set")
    a.ld(rmask + X); a.and_(tmp); a.jz("collect_skip")
    a.label("collect_set")
    a.ld(bitmap + X); a.or_(tmp); a.st(bitmap + X)
    a.st(P(_W.STEP_ACK))
    a.ld(spikes); a.addi(1); a.jz("collect_poll"); a.st(spikes); a.jmp("collect_poll")
    a.label("collect_skip")         # not recorded: taken, not counted
    a.st(P(_W.STEP_ACK)); a.jmp("collect_poll")
    a.label("collect_other")        # A: the kind
    a.cmpi(StepEvent.INPUT.value); a.jz("collect_bit")
    a.ld(inputs_due); a.jz("collected")
    a.label("collect_inputs_sent")  # the first record that is not an input: send the inputs
    a.call("input_record")
    a.ldi(0); a.st(inputs_due); a.st(spikes); a.st(spikes + 1)
    a.ld(subset); a.st(masked); a.jmp("collect_poll")     # the record again, now as a step's
    a.label("collected")
    a.ld(probe); a.jz("run_no_probe")
    a.call("step_record"); a.call("probes")
    a.ldi(0); a.jmp("run_next")
    a.label("run_no_probe")
    a.st(P(_W.STEP_ACK)); a.ldi(1)  # the END record; the step record waits
    a.label("run_next")
    a.st(pending); a.call("progress"); inc16(rec); a.jmp("run_step")

    a.label("run_reply")            # status, then steps (u32)
    set_tlen(1 + fields_size(RUN_REPLY_FIELDS))
    a.call("reply_hdr")
    a.ld(steps); a.st(P(_W.TX)); a.ld(steps + 1); a.st(P(_W.TX)); a.ldi(0); a.st(P(_W.TX)); a.st(P(_W.TX))
    a.ret()

    # feed: one step's inputs from its record, then the end of the step.
    a.label("feed")
    a.ld(generated); a.jnz("feed_end")  # no record to read
    for _ in range(4):
        a.ld(P(_R.STIM))            # the step field (checked)
    a.ld(P(_R.STIM)); a.jz("feed_bitmap")
    a.ld(P(_R.STIM)); a.st(kk); a.ld(P(_R.STIM)); a.st(kk + 1)
    a.label("feed_address")
    a.ld(kk); a.or_(kk + 1); a.jz("feed_end")
    a.ld(P(_R.STIM)); a.st(lo); a.ld(P(_R.STIM))
    if M > 256:
        a.st(P(_W.STEP_IN_HI))
    a.ld(lo); a.st(P(_W.STEP_IN))
    dec16(kk); a.jmp("feed_address")
    a.label("feed_bitmap")
    a.ldi(0); a.st(j8); a.st(j8 + 1); a.ldi(bitmap_m); a.st(cnt)
    a.label("feed_byte")
    if M > 256:
        a.ld(j8 + 1); a.st(P(_W.STEP_IN_HI))
    a.ld(P(_R.STIM)); a.st(P(_W.SCAN))
    a.label("feed_bit")
    a.ld(P(_R.SCAN)); a.jz("feed_next")
    a.subi(8); a.or_(j8); a.st(P(_W.STEP_IN)); a.jmp("feed_bit")
    a.label("feed_next")
    a.ld(j8); a.addi(8); a.st(j8); a.ld(j8 + 1); a.adci(0); a.st(j8 + 1)
    a.ld(cnt); a.subi(1); a.st(cnt); a.jnz("feed_byte")
    a.label("feed_end")
    a.ld(end_flags); a.st(P(_W.STEP_END)); a.ret()

    # service: during a RUN, a NACK, STATUS, or BUSY for any other request (none remembered).
    a.label("service")
    a.ld(P(_R.FLAGS)); a.andi(_F_NACK); a.jz("service_request")
    a.call("send_nack")
    a.label("service_request")
    a.ld(P(_R.FLAGS)); a.andi(_F_RXH); a.jz("service_end")
    a.call("take_header")
    a.label("answer_in_run")        # STATUS, or BUSY for anything else
    a.ld(h_cmd); a.cmpi(Command.STATUS); a.jnz("service_busy")
    a.ld(h_len); a.or_(h_len + 1); a.jnz("service_busy")
    a.call("status_reply"); a.jmp("service_ack")
    a.label("service_busy")
    a.call("discard"); a.ldi(Status.BUSY); a.st(status); a.call("reply_status")
    a.label("service_ack")
    a.st(P(_W.RXH_ACK))
    a.label("service_end")
    a.ret()

    # send_step: the step field, steps_done - r_dec.
    a.label("send_step")
    a.ld(progress); a.sub(r_dec); a.st(P(_W.TX))
    for i in range(1, 4):
        a.ld(progress + i); a.sbci(0); a.st(P(_W.TX))
    a.ret()

    # step_record / input_record: the STEP_RECORD / INPUT_RECORD of the bitmap (cleared on
    # the way): each sets what `record` sends.
    def record_kind(label, command, count, dec):
        size = (count + 7) // 8
        # Up to this many indices the record is an address list (encode_spikes: 2 + 2k < bitmap bytes).
        list_max = (size - 3) // 2
        length = 1 + _SPIKE_HEAD_SIZE + size
        a.label(label)
        for value, at in ((command | REPLY_FLAG, r_cmd), (size, r_bytes), (max(list_max + 1, 0), r_list),
                          (length & 0xFF, r_len), (length >> 8, r_len + 1)):
            a.ldi(value); a.st(at)
        if isinstance(dec, tuple):
            a.ld(dec[0])
        else:
            a.ldi(dec)
        a.st(r_dec)

    record_kind("step_record", Command.STEP_RECORD, n, (dec,))
    a.ldi(bitmap_n); a.st(r_end); a.ld(subset); a.jz("record")
    a.ld(rmask_end); a.st(r_end); a.jmp("record")
    record_kind("input_record", Command.INPUT_RECORD, M, 0)     # sent before the step's END: steps_done
    a.ldi(bitmap_m); a.st(r_end)
    a.label("record")               # `spikes` indices in the bitmap
    send((r_cmd,), (run_seq,))
    a.ld(spikes + 1); a.jnz("record_bitmap"); a.ld(spikes); a.cmp(r_list); a.jc("record_bitmap")
    a.shl(); a.addi(1 + _SPIKE_HEAD_SIZE + 2); a.st(P(_W.TX)); a.ldi(0); a.adci(0); a.st(P(_W.TX))
    send(Status.OK); a.call("send_step")
    a.ldi(SpikeFormat.ADDRESSES); a.st(P(_W.TX)); a.ld(spikes); a.st(P(_W.TX)); a.ld(spikes + 1)
    a.st(P(_W.TX))
    a.ld(spikes); a.jz("record_list_end")      # nothing set: nothing to clear either
    a.ldx(0)
    a.label("record_list_byte")
    a.ld(bitmap + X); a.jz("record_list_next")
    a.st(P(_W.SCAN)); a.ldi(0); a.st(bitmap + X)
    a.txa(); a.shl(); a.shl(); a.shl(); a.st(j8); a.txa(); a.shr(); a.shr(); a.shr(); a.shr(); a.shr()
    a.st(j8 + 1)
    a.label("record_list_bit")
    a.ld(P(_R.SCAN)); a.jz("record_list_next")
    a.subi(8); a.or_(j8); a.st(P(_W.TX)); a.ld(j8 + 1); a.st(P(_W.TX)); a.jmp("record_list_bit")
    a.label("record_list_next")
    a.inx(); a.txa(); a.cmp(r_end); a.jnz("record_list_byte")
    a.label("record_list_end")
    a.ret()
    a.label("record_bitmap")
    send((r_len,), (r_len + 1,), Status.OK); a.call("send_step")
    a.ldi(SpikeFormat.BITMAP); a.st(P(_W.TX))
    a.ldx(0)
    a.label("record_bitmap_byte")
    a.ld(bitmap + X); a.st(P(_W.TX)); a.ldi(0); a.st(bitmap + X)
    a.inx(); a.txa(); a.cmp(r_bytes); a.jnz("record_bitmap_byte")
    a.ret()

    # probes: PROBE_RECORDs of neurons 0 .. n_used-1 in chunks, then the END record.
    value_size = 2 * value_bytes
    a.label("probes")
    a.ldi(0); a.st(first); a.st(first + 1)
    a.label("probe_chunk")
    a.ld(n_used); a.sub(first); a.st(left); a.ld(n_used + 1); a.sbc(first + 1); a.st(left + 1)
    a.or_(left); a.jz("probes_end")
    a.ld(left + 1); a.jnz("probe_full"); a.ld(left); a.cmpi(probe_chunk + 1); a.jnc("probe_count")
    a.label("probe_full")
    a.ldi(probe_chunk)
    a.label("probe_count")
    a.st(cnt)
    # length = 9 + cnt * value_size, 16 bits
    a.ldi(value_size); a.st(k)
    a.ldi(1 + _PROBE_HEAD_SIZE); a.st(end); a.ldi(0); a.st(end + 1)
    a.label("probe_length")
    a.ld(end); a.add(cnt); a.st(end); a.ld(end + 1); a.adci(0); a.st(end + 1)
    a.ld(k); a.subi(1); a.st(k); a.jnz("probe_length")
    send(Command.PROBE_RECORD | REPLY_FLAG, (run_seq,), (end,), (end + 1,), Status.OK)
    a.call("send_step")
    a.ld(first); a.st(P(_W.TX)); a.ld(first + 1); a.st(P(_W.TX)); a.ld(cnt); a.st(P(_W.TX))
    a.ldi(0); a.st(P(_W.TX))
    a.label("probe_neuron")
    a.ldx(0)
    a.label("probe_byte")           # v then i, straight from the PROBE record
    a.ld(P(_R.PROBE) + X); a.st(P(_W.TX)); a.inx(); a.txa(); a.cmpi(value_size); a.jnz("probe_byte")
    a.st(P(_W.STEP_ACK))
    inc16(first)
    a.ld(cnt); a.subi(1); a.st(cnt); a.jnz("probe_neuron")
    a.jmp("probe_chunk")
    a.label("probes_end")
    a.st(P(_W.STEP_ACK))            # the END record
    a.ret()
    return a
