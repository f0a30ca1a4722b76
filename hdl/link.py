"""The command decoder: checked frames in, core accesses and runs, frames out.

`Link` sits between `FrameReceiver`/`FrameSender` (hdl/framing.py) and the
`Core` (hdl/core.py) and implements every command of host/protocol.py, whose
constants, field tables and memory map it imports (docs/protocol.md describes
the same for people). Two state machines share the frame sender:

- the **request machine** takes one request at a time from the receiver,
  answers HELLO, ECHO, STATUS, RESET_STATE and the READ_*/WRITE_* commands
  through the core's `cmd`/`rdata` streams, remembers the (command, seq) of
  the last request it answered (a retry of a write, RESET_STATE or RUN is
  answered again without being applied twice), and sends a NACK when the
  receiver's error counters show that it dropped a frame. A RUN request is
  copied into a stimulus buffer and checked completely (record by record)
  before the first step runs, which frees the receiver: while the run goes on,
  STATUS is answered and every other request gets BUSY.
- the **run engine** feeds the stimulus records of the buffer to `step_in`,
  one step at a time, collects each step's spikes from `step_out` into a spike
  list and sends one STEP_RECORD per step (bitmap or address list, whichever
  is shorter, like `encode_spikes`), and with probes the PROBE_RECORDs that
  carry v and i straight from `step_out`. Without probes the record of step t
  goes out while the core computes step t+1.

Nothing is ever dropped: when the UART is slower than the core, the frame
sender back-pressures the engine, which back-pressures the core's `step_out`,
which stalls the core. The sender is shared at frame granularity, taking turns
when both machines want it.
"""

import hashlib
import json
from dataclasses import asdict

from amaranth.hdl import C, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..host.errors import BuildError
from ..host.protocol import (
    FAMILY_COMMANDS, HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROBE_RECORD_FIELDS, PROTOCOL_VERSION,
    REPLY_FLAG, RUN_REPLY_FIELDS, RUN_REQUEST_FIELDS, SPIKE_ADDRESS_BYTES, SPIKE_RECORD_FIELDS,
    STATUS_REPLY_FIELDS, Command, CoreShape, Family, RunFlags, SpikeFormat, Status, fields_size,
    memory_tables, neuron_params_fields, neuron_state_fields, pack_fields, probe_chunk_neurons,
    probe_value_bytes, word_bits,
)
from ..host.spec import CORE_MODEL_VERSION
from .core_ports import CoreConfig, Op, Reg, Space, StepEvent
from .framing import COUNTER_WIDTH, HeaderLayout, PayloadLayout

__all__ = ["Link", "TABLE_SPACES", "core_shape", "default_build_id", "check_word_layouts"]

#: The core's address space behind each table of the protocol's memory map.
TABLE_SPACES = {
    "globals": Space.GLOBAL,
    "neuron_params": Space.NEURON,
    "pre_mask": Space.PRE_MASK,
    "post_mask": Space.POST_MASK,
    "weights": Space.WEIGHT,
    "neuron_state": Space.STATE,
    "pre_trace": Space.PRE_TRACE,
    "post_trace": Space.POST_TRACE,
}

_MEMORY_REQUEST_SIZE = fields_size(MEMORY_REQUEST_FIELDS)
_RUN_REQUEST_SIZE = fields_size(RUN_REQUEST_FIELDS)
_SPIKE_HEAD_SIZE = fields_size(SPIKE_RECORD_FIELDS)
_PROBE_HEAD_SIZE = fields_size(PROBE_RECORD_FIELDS)

# What the request machine does with the remembered request when a reply is done.
_KEEP, _REMEMBER, _FORGET = 0, 1, 2

# Which machine owns the frame sender.
_OWN_NONE, _OWN_MAIN, _OWN_RUN = 0, 1, 2

# States of the RUN request checker.
_P_STEP, _P_FORMAT, _P_BITMAP, _P_COUNT, _P_ADDRESS, _P_DEAD = range(6)


def core_shape(config: CoreConfig) -> CoreShape:
    """The protocol's `CoreShape` of a core configuration."""
    return CoreShape(n=config.n, m=config.m, state_bits=config.S, weight_bits=config.W,
                     trace_bits=config.T, lanes=config.lanes)


def default_build_id(config: CoreConfig, clk_hz, baud):
    """A 32-bit identifier of a build: a hash of the configuration, clock, baud
    rate and the protocol and core model versions (HELLO's `build_id`)."""
    text = json.dumps({"config": asdict(config), "clk_hz": int(clk_hz), "baud": int(baud),
                       "protocol": PROTOCOL_VERSION, "core_model": CORE_MODEL_VERSION}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def check_word_layouts(config: CoreConfig):
    """Check that host/protocol.py's word widths and field lists are the core's.

    Raises `BuildError` naming the table when they differ: the host builds
    every word from protocol.py alone, so they must agree bit for bit.
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
        Neurons per PROBE_RECORD, at most (and by default) `probe_chunk_neurons(S)`;
        smaller values exist for tests of the chunking.

    Ports
    -----
    rx_header, rx_payload : in streams
        From `FrameReceiver.header` / `.payload`.
    tx_header, tx_payload : out streams
        To `FrameSender.header` / `.payload`.
    cmd, rdata, step_in, step_out, core_busy, steps_done, step_cycles
        To and from the `Core` ports of the same names (`core_busy` is `busy`).
    uart_framing_errors, uart_overruns, crc_errors, format_errors, dropped_frames : in
        The counters of `UARTRx` and `FrameReceiver`, reported by STATUS; a
        change of the last three makes the link send a NACK.
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
            "tx_header": Out(stream.Signature(HeaderLayout)),
            "tx_payload": Out(stream.Signature(8)),
            "cmd": Out(stream.Signature(config.command_layout)),
            "rdata": In(stream.Signature(unsigned(config.data_bits))),
            "step_in": Out(stream.Signature(config.step_input_layout)),
            "step_out": In(stream.Signature(config.step_output_layout)),
            "core_busy": In(1),
            "steps_done": In(32),
            "step_cycles": In(32),
            "uart_framing_errors": In(COUNTER_WIDTH),
            "uart_overruns": In(COUNTER_WIDTH),
            "crc_errors": In(COUNTER_WIDTH),
            "format_errors": In(COUNTER_WIDTH),
            "dropped_frames": In(COUNTER_WIDTH),
            "running": Out(1),
            "busy": Out(1),
        })

    def _check(self, config, clk_hz, baud, build_id, probe_chunk):
        self.config = config
        self.probe_chunk = probe_chunk_neurons(config.S) if probe_chunk is None else int(probe_chunk)
        if not 1 <= self.probe_chunk <= probe_chunk_neurons(config.S):
            raise BuildError(f"probe_chunk={probe_chunk} outside 1 .. {probe_chunk_neurons(config.S)} (S={config.S})")
        self.clk_hz = int(clk_hz)
        self.baud = int(baud)
        self.build_id = default_build_id(config, clk_hz, baud) if build_id is None else int(build_id)
        if not 0 <= self.build_id < 1 << 32:
            raise BuildError(f"build_id={self.build_id} does not fit 32 bits")
        bitmap_n = (config.n + 7) // 8
        bitmap_m = (config.m + 7) // 8
        if 1 + _SPIKE_HEAD_SIZE + bitmap_n > MAX_PAYLOAD:
            raise BuildError(f"n={config.n}: a step record ({1 + _SPIKE_HEAD_SIZE + bitmap_n} bytes) would not "
                             f"fit MAX_PAYLOAD={MAX_PAYLOAD} (n <= {8 * (MAX_PAYLOAD - 1 - _SPIKE_HEAD_SIZE)})")
        if _RUN_REQUEST_SIZE + _SPIKE_HEAD_SIZE + bitmap_m > MAX_PAYLOAD:
            raise BuildError(f"m={config.m}: a one-step RUN request with a bitmap would not fit "
                             f"MAX_PAYLOAD={MAX_PAYLOAD}")
        check_word_layouts(config)

    def hello_bytes(self):
        """The HELLO reply after the status byte."""
        cfg = self.config
        return pack_fields(HELLO_REPLY_FIELDS, protocol_version=PROTOCOL_VERSION,
                           core_model_version=CORE_MODEL_VERSION, n=cfg.n, m=cfg.m, state_bits=cfg.S,
                           weight_bits=cfg.W, trace_bits=cfg.T, lanes=cfg.lanes, clk_hz=self.clk_hz,
                           baud=self.baud, max_payload=MAX_PAYLOAD, build_id=self.build_id)

    def elaborate(self, platform):
        cfg = self.config
        n, M = cfg.n, cfg.m
        m = Module()

        shape = core_shape(cfg)
        tables = memory_tables(shape)
        value_bytes = probe_value_bytes(cfg.S)
        chunk = self.probe_chunk
        bitmap_n = (n + 7) // 8
        bitmap_m = (M + 7) // 8
        max_word_bytes = max(t.word_bytes for t in tables)
        hello = self.hello_bytes()
        small_max = 1 + max(len(hello), fields_size(STATUS_REPLY_FIELDS), fields_size(RUN_REPLY_FIELDS))
        stim_depth = MAX_PAYLOAD - _RUN_REQUEST_SIZE

        # ---- the frame sender, shared by the request machine and the run engine ----
        # Each machine drives a header and payload bytes; the owner keeps the
        # sender from its header to its last payload byte.
        main_h = Signal(HeaderLayout)
        main_hv, main_hr, main_pv, main_pr = Signal(), Signal(), Signal(), Signal()
        main_pd = Signal(8)
        run_h = Signal(HeaderLayout)
        run_hv, run_hr, run_pv, run_pr = Signal(), Signal(), Signal(), Signal()
        run_pd = Signal(8)

        owner = Signal(2)
        last_owner = Signal(2)
        in_payload = Signal()
        tx_left = Signal(range(MAX_PAYLOAD + 1))
        for code, h, hv, hr, pv, pd, pr in ((_OWN_MAIN, main_h, main_hv, main_hr, main_pv, main_pd, main_pr),
                                            (_OWN_RUN, run_h, run_hv, run_hr, run_pv, run_pd, run_pr)):
            with m.If(owner == code):
                m.d.comb += [
                    self.tx_header.valid.eq(hv & ~in_payload), self.tx_header.payload.eq(h),
                    hr.eq(self.tx_header.ready & ~in_payload),
                    self.tx_payload.valid.eq(pv & in_payload), self.tx_payload.payload.eq(pd),
                    pr.eq(self.tx_payload.ready & in_payload),
                ]
        with m.If(owner == _OWN_NONE):
            # Both want it: the one that did not have it last time.
            with m.If(main_hv & (~run_hv | (last_owner != _OWN_MAIN))):
                m.d.sync += [owner.eq(_OWN_MAIN), last_owner.eq(_OWN_MAIN)]
            with m.Elif(run_hv):
                m.d.sync += [owner.eq(_OWN_RUN), last_owner.eq(_OWN_RUN)]
        with m.Elif(self.tx_header.valid & self.tx_header.ready):
            with m.If(self.tx_header.payload.length == 0):
                m.d.sync += owner.eq(_OWN_NONE)
            with m.Else():
                m.d.sync += [in_payload.eq(1), tx_left.eq(self.tx_header.payload.length)]
        with m.Elif(self.tx_payload.valid & self.tx_payload.ready):
            m.d.sync += tx_left.eq(tx_left - 1)
            with m.If(tx_left == 1):
                m.d.sync += [owner.eq(_OWN_NONE), in_payload.eq(0)]

        # ---- NACK: the receiver dropped a frame (its counters moved) ----
        seen_crc = Signal(COUNTER_WIDTH)
        seen_format = Signal(COUNTER_WIDTH)
        seen_dropped = Signal(COUNTER_WIDTH)
        nack_pending = Signal()
        nack_status = Signal(8)
        nack_take = Signal()
        with m.If(nack_take):
            m.d.sync += nack_pending.eq(0)
        for counter, seen, status in ((self.crc_errors, seen_crc, Status.BAD_CRC),
                                      (self.format_errors, seen_format, Status.BAD_LENGTH),
                                      (self.dropped_frames, seen_dropped, Status.BUSY)):
            with m.If(counter != seen):
                m.d.sync += [seen.eq(counter), nack_pending.eq(1), nack_status.eq(status)]

        # ---- request machine state ----
        h_cmd = Signal(8)
        h_seq = Signal(8)
        # The receiver hands out only frames whose length field is right, so <= MAX_PAYLOAD.
        h_len = Signal(range(MAX_PAYLOAD + 1))
        rx_left = Signal(range(MAX_PAYLOAD + 1))
        rep_cmd = Signal(8)
        rep_seq = Signal(8)
        rep_status = Signal(8)
        fin = Signal(2)
        # A reply of a status byte and up to `small_max - 1` bytes: HELLO's (constant),
        # a STATUS snapshot, or a 4-byte value (RUN's steps); sent by byte index.
        small_kind = Signal(2)
        short_value = Signal(16)        # sent as a u32
        status_snap = Signal(8 * fields_size(STATUS_REPLY_FIELDS))
        slen = Signal(range(small_max + 1))
        sidx = Signal(range(small_max + 1))

        last_valid = Signal()
        last_cmd = Signal(8)
        last_seq = Signal(8)
        last_status = Signal(8)
        last_steps = Signal(16)

        run_active = Signal()
        run_start = Signal()
        engine_done = Signal()
        run_seq = Signal(8)
        run_steps = Signal(16)
        run_probe = Signal()
        n_used = Signal(range(n + 1))
        m.d.comb += self.running.eq(run_active)

        req_layout = data.StructLayout({name: unsigned(8 * size) for name, size in MEMORY_REQUEST_FIELDS})
        req = Signal(req_layout)
        req_raw = req.as_value()
        head_count = Signal(range(max(_MEMORY_REQUEST_SIZE, _RUN_REQUEST_SIZE) + 1))
        mem_addr = Signal(range(max(t.depth for t in tables) + 1))   # used once the range is checked
        mem_count = Signal(range(MAX_PAYLOAD + 1))
        byte_idx = Signal(range(max_word_bytes + 1))
        # One memory word on its way (writes: from the payload; reads: from the core).
        word = Signal(max(cfg.data_bits, 8 * max_word_bytes))

        # The request's table (combinational on the latched command and table).
        t_ok = Signal()
        t_space = Signal(Space)
        t_depth = Signal(range(max(t.depth for t in tables) + 1))
        t_wb = Signal(range(max_word_bytes + 1))
        t_bytes = Signal(range(0xFFFF * max_word_bytes + 1))
        is_write = Signal()
        for info in tables:
            for command, write in ((info.read_command, 0), (info.write_command, 1)):
                with m.If((h_cmd == command) & (req.table == info.table)):
                    m.d.comb += [t_ok.eq(1), t_space.eq(TABLE_SPACES[info.name]), t_depth.eq(info.depth),
                                 t_wb.eq(info.word_bytes)]
        m.d.comb += t_bytes.eq(req.count * t_wb)      # one small multiplier for every table
        reads = [read for read, _ in FAMILY_COMMANDS.values()]
        writes = [write for _, write in FAMILY_COMMANDS.values()]
        m.d.comb += is_write.eq(Cat(*[h_cmd == c for c in writes]).any())
        is_read = Cat(*[h_cmd == c for c in reads]).any()

        retryable = Cat(*[h_cmd == c for c in writes + [Command.RESET_STATE, Command.RUN]]).any()
        is_retry = last_valid & (last_cmd == h_cmd) & (last_seq == h_seq) & retryable

        # STATUS, sampled when the request is dispatched.
        status_values = {
            "running": run_active, "step": self.steps_done,
            "uart_framing_errors": self.uart_framing_errors, "uart_overruns": self.uart_overruns,
            "crc_errors": self.crc_errors, "format_errors": self.format_errors,
            "dropped_frames": self.dropped_frames, "last_step_cycles": self.step_cycles,
            "lost_records": C(0, 16),  # records back-pressure the core: none is ever dropped
        }
        status_now = Cat(*[_zero_extend(status_values[name], 8 * size) for name, size in STATUS_REPLY_FIELDS])
        hello_const = Const(int.from_bytes(hello, "little"), 8 * len(hello))

        SMALL_SHORT, SMALL_HELLO, SMALL_STATUS = 0, 1, 2

        def small_reply(status, kind=SMALL_SHORT, nbytes=0, mode=_REMEMBER, value=None):
            """Prepare a reply of a status byte and `nbytes` bytes of `kind`."""
            stmts = [small_kind.eq(kind), slen.eq(1 + nbytes), rep_status.eq(status), fin.eq(mode)]
            if kind == SMALL_STATUS:
                stmts.append(status_snap.eq(status_now))
            if value is not None:
                stmts.append(short_value.eq(value))
            return stmts

        def refuse(status, mode=_REMEMBER):
            """Reply with `status` alone once the rest of the payload is consumed."""
            m.d.sync += small_reply(status, mode=mode)
            m.next = "DISCARD"

        def latch_header():
            hdr = self.rx_header.payload
            m.d.comb += self.rx_header.ready.eq(1)
            m.d.sync += [h_cmd.eq(hdr.command), h_seq.eq(hdr.seq), h_len.eq(hdr.length), rx_left.eq(hdr.length),
                         rep_cmd.eq(hdr.command | REPLY_FLAG), rep_seq.eq(hdr.seq)]

        def send_nack():
            m.d.comb += nack_take.eq(1)
            m.d.sync += small_reply(nack_status, mode=_KEEP)
            m.d.sync += [rep_cmd.eq(Command.NACK | REPLY_FLAG), rep_seq.eq(0)]
            m.next = "SMALL_HDR"

        rx_byte = self.rx_payload.payload.data
        rx_fire = self.rx_payload.valid & self.rx_payload.ready

        # The stimulus buffer: the records of the RUN request being run.
        m.submodules.stimulus = stim = Memory(shape=unsigned(8), depth=stim_depth, init=[])
        stim_w = stim.write_port()
        stim_r = stim.read_port()
        wp = Signal(range(stim_depth + 1))

        # RUN request checker state.
        p_state = Signal(range(_P_DEAD + 1))
        p_idx = Signal(2)
        p_left = Signal(range(bitmap_m + 1))
        p_k = Signal(16)
        p_lo = Signal(8)
        p_err = Signal(8)
        rec_count = Signal(16)

        def run_check_byte(byte):
            """Check one byte of the RUN records (spike records of the m inputs)."""
            def fail(status):
                with m.If(p_err == Status.OK):
                    m.d.sync += p_err.eq(status)

            def record_done():
                m.d.sync += [rec_count.eq(rec_count + 1), p_state.eq(_P_STEP), p_idx.eq(0)]

            with m.Switch(p_state):
                with m.Case(_P_STEP):
                    with m.If((p_idx == 0) & (rec_count == run_steps)):
                        fail(Status.BAD_LENGTH)          # a byte after the last record
                        m.d.sync += p_state.eq(_P_DEAD)
                    with m.Else():
                        # The record's step field counts from 0 within the request.
                        with m.If(byte != _byte_of(m, Cat(rec_count, C(0, 16)), p_idx)):
                            fail(Status.BAD_VALUE)
                        m.d.sync += p_idx.eq(p_idx + 1)
                        with m.If(p_idx == 3):
                            m.d.sync += p_state.eq(_P_FORMAT)
                with m.Case(_P_FORMAT):
                    with m.If(byte == SpikeFormat.BITMAP):
                        m.d.sync += [p_state.eq(_P_BITMAP), p_left.eq(bitmap_m)]
                    with m.Elif(byte == SpikeFormat.ADDRESSES):
                        m.d.sync += [p_state.eq(_P_COUNT), p_idx.eq(0)]
                    with m.Else():
                        fail(Status.BAD_VALUE)
                        m.d.sync += p_state.eq(_P_DEAD)
                with m.Case(_P_BITMAP):
                    m.d.sync += p_left.eq(p_left - 1)
                    with m.If(p_left == 1):
                        if M % 8:
                            with m.If(byte >> (M % 8) != 0):   # an input >= m
                                fail(Status.BAD_VALUE)
                        record_done()
                with m.Case(_P_COUNT):
                    with m.If(p_idx == 0):
                        m.d.sync += [p_k[:8].eq(byte), p_idx.eq(1)]
                    with m.Else():
                        m.d.sync += [p_k.eq(Cat(p_k[:8], byte)), p_idx.eq(0), p_state.eq(_P_ADDRESS)]
                        with m.If(Cat(p_k[:8], byte) == 0):
                            record_done()
                with m.Case(_P_ADDRESS):
                    with m.If(p_idx == 0):
                        m.d.sync += [p_lo.eq(byte), p_idx.eq(1)]
                    with m.Else():
                        with m.If(Cat(p_lo, byte) >= M):
                            fail(Status.BAD_VALUE)
                        m.d.sync += [p_k.eq(p_k - 1), p_idx.eq(0)]
                        with m.If(p_k == 1):
                            record_done()

        # ---- the request machine ----
        with m.FSM(name="request") as request_fsm:
            with m.State("IDLE"):
                with m.If(nack_pending):
                    send_nack()
                with m.Elif(self.rx_header.valid):
                    latch_header()
                    m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.If(is_retry):
                    # The same command and seq as the last request: answer again, apply nothing.
                    ran = (h_cmd == Command.RUN) & (last_status == Status.OK)
                    m.d.sync += small_reply(last_status, mode=_KEEP, value=last_steps)
                    m.d.sync += slen.eq(Mux(ran, 1 + fields_size(RUN_REPLY_FIELDS), 1))
                    m.next = "DISCARD"
                with m.Elif(h_cmd == Command.HELLO):
                    with m.If(h_len != 0):
                        refuse(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += small_reply(Status.OK, SMALL_HELLO, len(hello), mode=_FORGET)
                        m.next = "SMALL_HDR"
                with m.Elif(h_cmd == Command.ECHO):
                    with m.If(h_len > MAX_PAYLOAD - 1):
                        refuse(Status.OVERFLOW)
                    with m.Else():
                        m.d.sync += [rep_status.eq(Status.OK), fin.eq(_REMEMBER)]
                        m.next = "ECHO_HDR"
                with m.Elif(h_cmd == Command.STATUS):
                    with m.If(h_len != 0):
                        refuse(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += small_reply(Status.OK, SMALL_STATUS, fields_size(STATUS_REPLY_FIELDS))
                        m.next = "SMALL_HDR"
                with m.Elif(h_cmd == Command.RESET_STATE):
                    with m.If(h_len != 0):
                        refuse(Status.BAD_LENGTH)
                    with m.Else():
                        m.next = "RESET_ISSUE"
                with m.Elif(is_read | is_write):
                    with m.If((h_len < _MEMORY_REQUEST_SIZE) | is_read & (h_len != _MEMORY_REQUEST_SIZE)):
                        refuse(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += head_count.eq(0)
                        m.next = "MEM_REQUEST"
                with m.Elif(h_cmd == Command.RUN):
                    with m.If(h_len < _RUN_REQUEST_SIZE):
                        refuse(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += head_count.eq(0)
                        m.next = "RUN_REQUEST"
                with m.Else():
                    refuse(Status.UNKNOWN_COMMAND)

            # Consume what is left of the payload, then send the prepared reply.
            with m.State("DISCARD"):
                with m.If(rx_left == 0):
                    m.next = "SMALL_HDR"
                with m.Else():
                    m.d.comb += self.rx_payload.ready.eq(1)
                    with m.If(self.rx_payload.valid):
                        m.d.sync += rx_left.eq(rx_left - 1)

            # A reply of up to `small_max` bytes.
            with m.State("SMALL_HDR"):
                m.d.comb += [main_hv.eq(1), main_h.command.eq(rep_cmd), main_h.seq.eq(rep_seq),
                             main_h.length.eq(slen)]
                with m.If(main_hr):
                    m.d.sync += sidx.eq(0)
                    m.next = "SMALL_BYTES"

            with m.State("SMALL_BYTES"):
                after = (sidx - 1).as_unsigned()
                with m.If(sidx == 0):
                    m.d.comb += main_pd.eq(rep_status)
                with m.Elif(small_kind == SMALL_HELLO):
                    m.d.comb += main_pd.eq(_byte_of(m, hello_const, after))
                with m.Elif(small_kind == SMALL_STATUS):
                    m.d.comb += main_pd.eq(_byte_of(m, status_snap, after))
                with m.Else():
                    m.d.comb += main_pd.eq(_byte_of(m, _zero_extend(short_value, 32), after[:2]))
                m.d.comb += main_pv.eq(1)
                with m.If(main_pr):
                    m.d.sync += sidx.eq(sidx + 1)
                    with m.If(sidx == slen - 1):
                        m.next = "FINISH"

            with m.State("FINISH"):
                with m.Switch(fin):
                    with m.Case(_REMEMBER):
                        m.d.sync += [last_valid.eq(1), last_cmd.eq(rep_cmd & ~REPLY_FLAG), last_seq.eq(rep_seq),
                                     last_status.eq(rep_status), last_steps.eq(run_steps)]
                    with m.Case(_FORGET):
                        m.d.sync += last_valid.eq(0)
                with m.If(run_active):
                    m.next = "RUNNING"
                with m.Else():
                    m.next = "IDLE"

            # ECHO: the payload goes straight back.
            with m.State("ECHO_HDR"):
                m.d.comb += [main_hv.eq(1), main_h.command.eq(rep_cmd), main_h.seq.eq(rep_seq),
                             main_h.length.eq(h_len + 1)]
                with m.If(main_hr):
                    m.next = "ECHO_STATUS"

            with m.State("ECHO_STATUS"):
                m.d.comb += [main_pv.eq(1), main_pd.eq(Status.OK)]
                with m.If(main_pr):
                    m.next = "ECHO_BYTES"

            with m.State("ECHO_BYTES"):
                with m.If(rx_left == 0):
                    m.next = "FINISH"
                with m.Else():
                    m.d.comb += [main_pv.eq(self.rx_payload.valid), main_pd.eq(rx_byte),
                                 self.rx_payload.ready.eq(main_pr)]
                    with m.If(rx_fire):
                        m.d.sync += rx_left.eq(rx_left - 1)

            # RESET_STATE: answered once the core has cleared the state.
            with m.State("RESET_ISSUE"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(Op.RESET_STATE)]
                with m.If(self.cmd.ready):
                    m.next = "RESET_WAIT"

            with m.State("RESET_WAIT"):
                with m.If(~self.core_busy):
                    m.d.sync += small_reply(Status.OK)
                    m.next = "SMALL_HDR"

            # READ_* / WRITE_*: table, address, count; then checks in the documented order.
            with m.State("MEM_REQUEST"):
                m.d.comb += self.rx_payload.ready.eq(1)
                with m.If(self.rx_payload.valid):
                    m.d.sync += [req_raw.eq(Cat(req_raw[8:], rx_byte)), rx_left.eq(rx_left - 1),
                                 head_count.eq(head_count + 1)]
                    with m.If(head_count == _MEMORY_REQUEST_SIZE - 1):
                        m.next = "MEM_CHECK"

            with m.State("MEM_CHECK"):
                m.d.sync += [mem_addr.eq(req.address), mem_count.eq(req.count), byte_idx.eq(0), word.eq(0),
                             rep_status.eq(Status.OK), fin.eq(_REMEMBER)]
                with m.If(~t_ok):
                    refuse(Status.BAD_ADDRESS)
                with m.Elif(is_write & (h_len != _MEMORY_REQUEST_SIZE + t_bytes)):
                    refuse(Status.BAD_LENGTH)
                with m.Elif(req.address + req.count > t_depth):
                    refuse(Status.BAD_ADDRESS)
                with m.Elif(~is_write & (t_bytes > MAX_PAYLOAD - 1)):
                    refuse(Status.OVERFLOW)
                with m.Elif(is_write):
                    m.next = "WRITE_BYTES"
                with m.Else():
                    m.next = "READ_HDR"

            with m.State("WRITE_BYTES"):
                with m.If(mem_count == 0):
                    m.d.sync += small_reply(Status.OK)
                    m.next = "SMALL_HDR"
                with m.Else():
                    m.d.comb += self.rx_payload.ready.eq(1)
                    with m.If(self.rx_payload.valid):
                        # Little-endian: byte b of the word at bits 8b ..
                        m.d.sync += rx_left.eq(rx_left - 1)
                        with m.Switch(byte_idx):
                            for i in range(max_word_bytes):
                                with m.Case(i):
                                    m.d.sync += word[8 * i:8 * i + 8].eq(rx_byte)
                        with m.If(byte_idx == t_wb - 1):
                            m.d.sync += byte_idx.eq(0)
                            m.next = "WRITE_ISSUE"
                        with m.Else():
                            m.d.sync += byte_idx.eq(byte_idx + 1)

            with m.State("WRITE_ISSUE"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(Op.WRITE),
                             self.cmd.payload.space.eq(t_space), self.cmd.payload.addr.eq(mem_addr),
                             self.cmd.payload.data.eq(word)]
                with m.If(self.cmd.ready):
                    m.d.sync += [mem_addr.eq(mem_addr + 1), mem_count.eq(mem_count - 1)]
                    m.next = "WRITE_BYTES"

            with m.State("READ_HDR"):
                m.d.comb += [main_hv.eq(1), main_h.command.eq(rep_cmd), main_h.seq.eq(rep_seq),
                             main_h.length.eq(1 + t_bytes)]
                with m.If(main_hr):
                    m.next = "READ_STATUS"

            with m.State("READ_STATUS"):
                m.d.comb += [main_pv.eq(1), main_pd.eq(Status.OK)]
                with m.If(main_pr):
                    m.next = "READ_ISSUE"

            with m.State("READ_ISSUE"):
                with m.If(mem_count == 0):
                    m.next = "FINISH"
                with m.Else():
                    m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(Op.READ),
                                 self.cmd.payload.space.eq(t_space), self.cmd.payload.addr.eq(mem_addr)]
                    with m.If(self.cmd.ready):
                        m.next = "READ_WAIT"

            with m.State("READ_WAIT"):
                m.d.comb += self.rdata.ready.eq(1)
                with m.If(self.rdata.valid):
                    m.d.sync += [word.eq(self.rdata.payload), byte_idx.eq(0)]
                    m.next = "READ_BYTES"

            with m.State("READ_BYTES"):
                m.d.comb += [main_pv.eq(1), main_pd.eq(_byte_of(m, word[:8 * max_word_bytes], byte_idx))]
                with m.If(main_pr):
                    m.d.sync += byte_idx.eq(byte_idx + 1)
                    with m.If(byte_idx == t_wb - 1):
                        m.d.sync += [mem_addr.eq(mem_addr + 1), mem_count.eq(mem_count - 1)]
                        m.next = "READ_ISSUE"

            # RUN: steps and flags, then the records into the stimulus buffer, checked on the way.
            with m.State("RUN_REQUEST"):
                m.d.comb += self.rx_payload.ready.eq(1)
                with m.If(self.rx_payload.valid):
                    m.d.sync += [req_raw.eq(Cat(req_raw[8:], rx_byte)), rx_left.eq(rx_left - 1),
                                 head_count.eq(head_count + 1)]
                    with m.If(head_count == _RUN_REQUEST_SIZE - 1):
                        m.next = "RUN_START_COPY"

            with m.State("RUN_START_COPY"):
                # After 3 shifts the request's bytes sit at the top of req_raw.
                run_head = req_raw[-8 * _RUN_REQUEST_SIZE:]
                flags = run_head[16:24]
                m.d.sync += [run_steps.eq(run_head[:16]), run_probe.eq(flags[0]),
                             p_err.eq(Mux((flags & ~int(RunFlags.PROBE)) != 0, Status.BAD_VALUE, Status.OK)),
                             p_state.eq(_P_STEP), p_idx.eq(0), rec_count.eq(0), wp.eq(0)]
                m.next = "RUN_COPY"

            with m.State("RUN_COPY"):
                with m.If(rx_left == 0):
                    m.next = "RUN_CHECK"
                with m.Else():
                    m.d.comb += self.rx_payload.ready.eq(1)
                    with m.If(self.rx_payload.valid):
                        m.d.comb += [stim_w.addr.eq(wp), stim_w.data.eq(rx_byte), stim_w.en.eq(1)]
                        m.d.sync += [wp.eq(wp + 1), rx_left.eq(rx_left - 1)]
                        run_check_byte(rx_byte)

            with m.State("RUN_CHECK"):
                with m.If(p_err != Status.OK):
                    m.d.sync += small_reply(p_err)
                    m.next = "SMALL_HDR"
                with m.Elif((rec_count != run_steps) | (p_state != _P_STEP) | (p_idx != 0)):
                    m.d.sync += small_reply(Status.BAD_LENGTH)
                    m.next = "SMALL_HDR"
                with m.Else():
                    m.next = "RUN_N_USED"

            # The probes need the number of neurons in use.
            with m.State("RUN_N_USED"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(Op.READ),
                             self.cmd.payload.space.eq(Space.GLOBAL), self.cmd.payload.addr.eq(Reg.N_USED)]
                with m.If(self.cmd.ready):
                    m.next = "RUN_N_USED_WAIT"

            with m.State("RUN_N_USED_WAIT"):
                m.d.comb += self.rdata.ready.eq(1)
                with m.If(self.rdata.valid):
                    m.d.comb += run_start.eq(1)
                    m.d.sync += [n_used.eq(self.rdata.payload), run_active.eq(1), run_seq.eq(h_seq)]
                    m.next = "RUNNING"

            # A RUN is in progress: STATUS is answered, everything else is BUSY.
            with m.State("RUNNING"):
                with m.If(nack_pending):
                    send_nack()
                with m.Elif(self.rx_header.valid):
                    latch_header()
                    m.next = "BUSY_DISPATCH"
                with m.Elif(engine_done):
                    m.d.sync += small_reply(Status.OK, nbytes=fields_size(RUN_REPLY_FIELDS), value=run_steps)
                    m.d.sync += [run_active.eq(0), rep_cmd.eq(Command.RUN | REPLY_FLAG), rep_seq.eq(run_seq)]
                    m.next = "SMALL_HDR"

            with m.State("BUSY_DISPATCH"):
                with m.If((h_cmd == Command.STATUS) & (h_len == 0)):
                    m.d.sync += small_reply(Status.OK, SMALL_STATUS, fields_size(STATUS_REPLY_FIELDS), mode=_KEEP)
                    m.next = "SMALL_HDR"
                with m.Else():
                    refuse(Status.BUSY, mode=_KEEP)

        # ---- the run engine ----
        rp = Signal(range(stim_depth + 1))
        rinc = Signal()
        m.d.comb += stim_r.addr.eq(rp + rinc)
        m.d.sync += rp.eq(rp + rinc)
        rbyte = stim_r.data                 # == stimulus[rp] (the address ran one cycle ahead)

        m.submodules.spikes = spk = Memory(shape=unsigned(cfg.neuron_bits), depth=n, init=[])
        spk_w = spk.write_port()
        spk_r = spk.read_port()
        sp_idx = Signal(range(n + 1))
        sp_inc = Signal()
        m.d.comb += spk_r.addr.eq(sp_idx + sp_inc)
        m.d.sync += sp_idx.eq(sp_idx + sp_inc)
        spike = Signal(16)
        m.d.comb += spike.eq(spk_r.data)    # == spike list[sp_idx]
        spk_count = Signal(range(n + 1))

        e_t = Signal(16)                    # steps of this request fed so far (or being fed)
        pending = Signal()                  # the record of the last step is still to be sent
        rec_step = Signal(32)
        skip = Signal(2)
        bits = Signal(8)
        base = Signal(range(8 * bitmap_m + 1))
        bcount = Signal(range(bitmap_m + 1))
        k_left = Signal(16)
        a_lo = Signal(8)
        eidx = Signal(range(max(1 + _SPIKE_HEAD_SIZE, 1 + _PROBE_HEAD_SIZE) + 1))
        acc = Signal(8)
        bm_byte = Signal(range(bitmap_n + 1))
        chunk_first = Signal(range(n + 1))
        chunk_count = Signal(range(chunk + 1))
        chunk_i = Signal(range(chunk + 1))
        probe_values = Signal(16 * value_bytes)      # v then i of one neuron, sign-extended
        pidx = Signal(range(2 * value_bytes + 1))

        lowest = Signal(3)                  # lowest set bit of `bits`
        for i in reversed(range(8)):
            with m.If(bits[i]):
                m.d.comb += lowest.eq(i)

        as_list = Signal()                  # the shorter form, as encode_spikes picks it
        m.d.comb += as_list.eq(SPIKE_ADDRESS_BYTES * (1 + spk_count) < bitmap_n)
        body_len = Mux(as_list, SPIKE_ADDRESS_BYTES * (1 + spk_count), bitmap_n)
        # The records' first bytes: status, step, then the format, or first and count.
        step_head = Cat(C(Status.OK, 8), rec_step,
                        _zero_extend(Mux(as_list, SpikeFormat.ADDRESSES, SpikeFormat.BITMAP), 8))
        probe_head = Cat(C(Status.OK, 8), rec_step, _zero_extend(chunk_first, 16), _zero_extend(chunk_count, 16))
        remaining_used = n_used - chunk_first
        this_chunk = Mux(remaining_used > chunk, chunk, remaining_used)

        out = self.step_out.payload
        v_ext = Signal(signed(8 * value_bytes))
        i_ext = Signal(signed(8 * value_bytes))
        m.d.comb += [v_ext.eq(out.v), i_ext.eq(out.i)]

        def after_step_record():
            m.d.sync += pending.eq(0)
            with m.If(run_probe):
                m.d.sync += chunk_first.eq(0)
                m.next = "E_PROBE_START"
            with m.Elif(e_t == run_steps):
                m.next = "E_DONE"
            with m.Else():
                m.d.sync += spk_count.eq(0)
                m.next = "E_COLLECT"

        def step_finished():
            m.d.sync += e_t.eq(e_t + 1)
            with m.If(e_t + 1 == run_steps):
                m.next = "E_DONE"
            with m.Else():
                m.next = "E_FEED"

        with m.FSM(name="engine"):
            with m.State("E_IDLE"):
                m.d.sync += [rp.eq(0), skip.eq(0)]
                with m.If(run_start):
                    m.d.sync += [e_t.eq(0), pending.eq(0)]
                    with m.If(run_steps == 0):
                        m.next = "E_DONE"
                    with m.Else():
                        m.next = "E_FEED"

            # ---- feed one step's inputs from its record ----
            with m.State("E_FEED"):           # skip the step field (checked already)
                m.d.comb += rinc.eq(1)
                m.d.sync += skip.eq(skip + 1)
                with m.If(skip == 3):
                    m.next = "E_FORMAT"

            with m.State("E_FORMAT"):
                m.d.comb += rinc.eq(1)
                with m.If(rbyte == SpikeFormat.BITMAP):
                    m.d.sync += [bcount.eq(bitmap_m), base.eq(0)]
                    m.next = "E_BITMAP_LOAD"
                with m.Else():
                    m.next = "E_LIST_K0"

            with m.State("E_BITMAP_LOAD"):
                m.d.comb += rinc.eq(1)
                m.d.sync += [bits.eq(rbyte), bcount.eq(bcount - 1)]
                m.next = "E_BITMAP_BITS"

            with m.State("E_BITMAP_BITS"):
                with m.If(bits == 0):
                    m.d.sync += base.eq(base + 8)
                    with m.If(bcount == 0):
                        m.next = "E_FEED_END"
                    with m.Else():
                        m.next = "E_BITMAP_LOAD"
                with m.Else():
                    m.d.comb += [self.step_in.valid.eq(1), self.step_in.payload.source.eq(base + lowest)]
                    with m.If(self.step_in.ready):
                        m.d.sync += bits.eq(bits & (bits - 1))

            with m.State("E_LIST_K0"):
                m.d.comb += rinc.eq(1)
                m.d.sync += k_left[:8].eq(rbyte)
                m.next = "E_LIST_K1"

            with m.State("E_LIST_K1"):
                m.d.comb += rinc.eq(1)
                m.d.sync += k_left.eq(Cat(k_left[:8], rbyte))
                with m.If(Cat(k_left[:8], rbyte) == 0):
                    m.next = "E_FEED_END"
                with m.Else():
                    m.next = "E_LIST_LO"

            with m.State("E_LIST_LO"):
                m.d.comb += rinc.eq(1)
                m.d.sync += a_lo.eq(rbyte)
                m.next = "E_LIST_HI"

            with m.State("E_LIST_HI"):
                m.d.comb += [self.step_in.valid.eq(1), self.step_in.payload.source.eq(Cat(a_lo, rbyte))]
                with m.If(self.step_in.ready):
                    m.d.comb += rinc.eq(1)
                    m.d.sync += k_left.eq(k_left - 1)
                    with m.If(k_left == 1):
                        m.next = "E_FEED_END"
                    with m.Else():
                        m.next = "E_LIST_LO"

            with m.State("E_FEED_END"):
                m.d.comb += [self.step_in.valid.eq(1), self.step_in.payload.end.eq(1),
                             self.step_in.payload.probe.eq(run_probe)]
                with m.If(self.step_in.ready):
                    with m.If(pending):
                        m.next = "E_EMIT_HDR"       # last step's record, while this step runs
                    with m.Else():
                        m.d.sync += spk_count.eq(0)
                        m.next = "E_COLLECT"

            # ---- collect the step's spikes ----
            with m.State("E_COLLECT"):
                with m.If(self.step_out.valid):
                    with m.If(out.kind == StepEvent.SPIKE):
                        m.d.comb += [self.step_out.ready.eq(1), spk_w.addr.eq(spk_count),
                                     spk_w.data.eq(out.neuron), spk_w.en.eq(1)]
                        m.d.sync += spk_count.eq(spk_count + 1)
                    with m.Else():
                        m.d.sync += rec_step.eq(self.steps_done)   # counts this step once END is taken
                        with m.If(run_probe):
                            m.next = "E_EMIT_HDR"
                        with m.Else():
                            m.d.comb += self.step_out.ready.eq(1)  # the END record
                            m.d.sync += [pending.eq(1), e_t.eq(e_t + 1)]
                            with m.If(e_t + 1 == run_steps):
                                m.next = "E_EMIT_HDR"
                            with m.Else():
                                m.next = "E_FEED"

            # ---- STEP_RECORD: status, step, format, body ----
            with m.State("E_EMIT_HDR"):
                m.d.comb += [run_hv.eq(1), run_h.command.eq(Command.STEP_RECORD | REPLY_FLAG),
                             run_h.seq.eq(run_seq), run_h.length.eq(1 + _SPIKE_HEAD_SIZE + body_len)]
                m.d.sync += [eidx.eq(0), sp_idx.eq(0), acc.eq(0), bm_byte.eq(0)]
                with m.If(run_hr):
                    m.next = "E_EMIT_HEAD"

            with m.State("E_EMIT_HEAD"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(_byte_of(m, step_head, eidx))]
                with m.If(run_pr):
                    m.d.sync += eidx.eq(eidx + 1)
                    with m.If(eidx == _SPIKE_HEAD_SIZE):
                        m.d.sync += eidx.eq(0)
                        with m.If(as_list):
                            m.next = "E_EMIT_COUNT"
                        with m.Else():
                            m.next = "E_EMIT_BITMAP"

            with m.State("E_EMIT_COUNT"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(_byte_of(m, _zero_extend(spk_count, 16), eidx[0]))]
                with m.If(run_pr):
                    m.d.sync += eidx.eq(eidx + 1)
                    with m.If(eidx == 1):
                        with m.If(spk_count == 0):
                            after_step_record()
                        with m.Else():
                            m.next = "E_EMIT_LO"

            with m.State("E_EMIT_LO"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(spike[:8])]
                with m.If(run_pr):
                    m.next = "E_EMIT_HI"

            with m.State("E_EMIT_HI"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(spike[8:])]
                with m.If(run_pr):
                    m.d.comb += sp_inc.eq(1)
                    with m.If(sp_idx + 1 == spk_count):
                        after_step_record()
                    with m.Else():
                        m.next = "E_EMIT_LO"

            with m.State("E_EMIT_BITMAP"):      # gather the byte's bits from the ascending list
                with m.If((sp_idx < spk_count) & (spike[3:] == bm_byte)):
                    m.d.comb += sp_inc.eq(1)
                    m.d.sync += acc.eq(acc | (C(1, 8) << spike[:3]))
                with m.Else():
                    m.next = "E_EMIT_BITMAP_SEND"

            with m.State("E_EMIT_BITMAP_SEND"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(acc)]
                with m.If(run_pr):
                    m.d.sync += [acc.eq(0), bm_byte.eq(bm_byte + 1)]
                    with m.If(bm_byte == bitmap_n - 1):
                        after_step_record()
                    with m.Else():
                        m.next = "E_EMIT_BITMAP"

            # ---- PROBE_RECORDs: v and i of neurons 0 .. n_used-1, in chunks ----
            with m.State("E_PROBE_START"):
                with m.If(chunk_first >= n_used):
                    m.next = "E_PROBE_END"
                with m.Else():
                    m.d.sync += chunk_count.eq(this_chunk)
                    m.next = "E_PROBE_HDR"

            with m.State("E_PROBE_HDR"):
                m.d.comb += [run_hv.eq(1), run_h.command.eq(Command.PROBE_RECORD | REPLY_FLAG),
                             run_h.seq.eq(run_seq),
                             run_h.length.eq(1 + _PROBE_HEAD_SIZE + chunk_count * (2 * value_bytes))]
                m.d.sync += [eidx.eq(0), chunk_i.eq(0)]
                with m.If(run_hr):
                    m.next = "E_PROBE_HEAD"

            with m.State("E_PROBE_HEAD"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(_byte_of(m, probe_head, eidx))]
                with m.If(run_pr):
                    m.d.sync += eidx.eq(eidx + 1)
                    with m.If(eidx == _PROBE_HEAD_SIZE):
                        m.next = "E_PROBE_WAIT"

            with m.State("E_PROBE_WAIT"):
                with m.If(chunk_i == chunk_count):
                    m.d.sync += chunk_first.eq(chunk_first + chunk_count)
                    m.next = "E_PROBE_START"
                with m.Elif(self.step_out.valid):
                    m.d.comb += self.step_out.ready.eq(1)   # a PROBE record, neuron chunk_first + chunk_i
                    m.d.sync += [probe_values.eq(Cat(v_ext, i_ext)), pidx.eq(0)]
                    m.next = "E_PROBE_BYTES"

            with m.State("E_PROBE_BYTES"):
                m.d.comb += [run_pv.eq(1), run_pd.eq(_byte_of(m, probe_values, pidx))]
                with m.If(run_pr):
                    m.d.sync += pidx.eq(pidx + 1)
                    with m.If(pidx == 2 * value_bytes - 1):
                        m.d.sync += chunk_i.eq(chunk_i + 1)
                        m.next = "E_PROBE_WAIT"

            with m.State("E_PROBE_END"):
                with m.If(self.step_out.valid):
                    m.d.comb += self.step_out.ready.eq(1)   # the END record
                    step_finished()

            with m.State("E_DONE"):
                m.d.comb += engine_done.eq(1)
                with m.If(~run_active):       # the request machine has taken the result
                    m.next = "E_IDLE"

        m.d.comb += self.busy.eq(~request_fsm.ongoing("IDLE") | run_active | nack_pending | (owner != _OWN_NONE))
        return m


def _byte_of(m, value, index):
    """Byte `index` of `value` as a case mux (yosys makes a barrel shifter of a
    variable `word_select`, several times larger for a wide value)."""
    out = Signal(8)
    with m.Switch(index):
        for i in range((len(value) + 7) // 8):
            with m.Case(i):
                m.d.comb += out.eq(value[8 * i:8 * i + 8])
    return out


def _zero_extend(value, width):
    """`value` (unsigned, at most `width` bits) as exactly `width` bits."""
    value = value.as_unsigned() if hasattr(value, "as_unsigned") else value
    if len(value) > width:
        raise ValueError(f"{len(value)}-bit value does not fit {width} bits")
    if len(value) == width:
        return value
    return Cat(value, C(0, width - len(value)))
