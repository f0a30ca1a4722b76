"""The command decoder: checked frames in, core accesses and runs, frames out.

`Link` sits between `FrameReceiver`/`FrameSender` (hdl/framing.py) and the
`Core` (hdl/core.py) and implements every command of contract/protocol.py, whose
constants, field tables and memory map it imports (docs/protocol.md describes
the same for people).

It is a small controller (`hdl.mcu.MCU`: an 8-bit accumulator machine whose
program and data live in block RAM) running the firmware `link_program` builds
(hdl/link_firmware.py, one routine per command), plus the I/O ports
(hdl/link_ports.py) through which that firmware moves bytes between the frame
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
  collected, so the data RAM holds one bitmap of max(n, m) bits. With
  `CoreConfig.record_filter` the gateware drops the SPIKE records of neurons
  that the RUN does not record (SUBSET: those SET_RECORD left out; NO_RECORDS:
  all) before the firmware sees them. While it waits for the core it
  answers STATUS and refuses every other request with BUSY (as it does a request
  that came during the RUN and is only taken after it).

Nothing is ever dropped: when the UART is slower than the core, the frame sender
back-pressures the firmware (a port write waits), which back-pressures the core's
`step_out`, which stalls the core. STATUS sends every field as one consistent
value (see `status_reply` in hdl/link_firmware.py).
"""

import hashlib
import json
from dataclasses import asdict

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from neurofabric.contract.errors import BuildError
from neurofabric.contract.device import CoreShape, neuron_params_fields, neuron_state_fields
from neurofabric.contract.protocol import (
    HELLO_REPLY_FIELDS, MAX_PAYLOAD, PROTOCOL_VERSION,
    Command, Family, Status, pack_fields, probe_chunk_neurons,
    probe_value_bytes, word_bits,
)
from neurofabric.contract.model import CORE_MODEL_VERSION
from .core_ports import CoreConfig, StepEvent
from .framing import COUNTER_WIDTH, HeaderLayout, PayloadLayout, Refusal
from .link_firmware import link_program
from .link_ports import (
    _MAX_PROBE_CHUNK, _MAX_SIZE, _MAX_WORD_BYTES, _RATE_BITS, _RDATA_PORTS, _RUN_REQUEST_SIZE, _SPACE_BITS,
    _SPIKE_HEAD_SIZE, _FILTER_ALL, _FILTER_SUBSET,
    TABLE_SPACES, _R, _W, every_neuron_mask,
)
from .mcu import MCU

__all__ = ["Link", "TABLE_SPACES", "core_shape", "default_build_id", "check_word_layouts", "check_link_sizes",
           "link_program"]

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

        # ---- the record filter ----
        # `out_valid` / `out_ready` are step_out as the firmware sees it. With the filter,
        # a record waits one cycle (`fresh`: the mask bit of its neuron has been read),
        # then a SPIKE of a neuron the run does not record is taken at once.
        out = self.step_out.payload
        out_valid = Signal()
        out_ready = Signal()
        if cfg.record_filter:
            mask_bytes = (cfg.n + 7) // 8
            m.submodules.fmask = fmask = Memory(shape=8, depth=mask_bytes, init=every_neuron_mask(cfg.n))
            f_wr = fmask.write_port()
            f_rd = fmask.read_port(transparent_for=())
            f_ctl = Signal(2)
            f_ptr = Signal(range(max(mask_bytes, 2)))
            with m.If(writing(_W.FILTER)):
                m.d.sync += [f_ctl.eq(Cat(a[_FILTER_SUBSET], a[_FILTER_ALL])), f_ptr.eq(0)]
            with m.If(writing(_W.FMASK)):
                m.d.sync += f_ptr.eq(f_ptr + 1)
            m.d.comb += [f_wr.addr.eq(f_ptr), f_wr.data.eq(a), f_wr.en.eq(writing(_W.FMASK)),
                         f_rd.addr.eq(out.neuron[3:])]
            fresh = Signal()
            m.d.sync += fresh.eq(self.step_out.valid & ~self.step_out.ready)
            spike = out.kind == StepEvent.SPIKE
            drop = fresh & spike & (f_ctl[1] | f_ctl[0] & ~f_rd.data.bit_select(out.neuron[:3], 1))
            m.d.comb += [out_valid.eq(self.step_out.valid & fresh & ~drop),
                         self.step_out.ready.eq(out_ready & out_valid | self.step_out.valid & drop)]
        else:
            m.d.comb += [out_valid.eq(self.step_out.valid), self.step_out.ready.eq(out_ready)]

        # ---- reads ----
        v_ext = Signal(signed(8 * value_bytes))
        i_ext = Signal(signed(8 * value_bytes))
        m.d.comb += [v_ext.eq(out.v), i_ext.eq(out.i)]
        rdata = self.rdata.payload
        sources = {
            _R.FLAGS: Cat(rx_full, nack_pending, out_valid, rx_last, self.core_busy, C(0, 1),
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
            m.d.comb += mcu.port_wait.eq(~out_valid)
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
                                (_W.STEP_ACK, out_valid, out_ready)):
            with m.If(writing(p)):
                m.d.comb += [ready.eq(1), mcu.port_wait.eq(~valid)]

        m.d.comb += self.busy.eq(~idle | rx_full | self.rx_header.valid | nack_pending)
        return m


