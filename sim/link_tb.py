"""A cocotb testbench of the whole device (`nf_top`): a bit-level UART and a small host.

`UartLine` is the far end of the device's UART, written from the 8N1 rules
alone (not from hdl/uart.py): it drives `uart_rx` bit by bit and samples
`uart_tx` at bit centres. `LinkTB` owns the clock, the reset and the line, and
speaks the protocol with the contract and host/framing.py, records.py and
memory_map.py only (not host/link.py, so the two implementations check each
other): requests and replies, the memory tables,
loading a `Network`, the stimulus generator's rates and seed, RUN requests with
input, step and probe records, and reading weights and state back in the
network's shape.
"""

import random

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, Timer

from neurofabric.contract.device import (GLOBAL_REGISTERS, NETWORK_GLOBALS, CoreShape, network_register_values,
                                         neuron_params_fields, neuron_state_fields)
from neurofabric.contract.protocol import (
    MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, REPLY_FLAG, RUN_REQUEST_FIELDS, SPIKE_RECORD_FIELDS, Command, Family, RunFlags,
    SpikeFormat, Status, fields_size, pack_fields, table_info, table_key,
)
from neurofabric.host.framing import FrameDecoder, FrameError, encode_frame
from neurofabric.host.memory_map import (
    bytes_to_words, encode_global, pack_weights, pack_word, unpack_weights, unpack_word, words_to_bytes,
)
from neurofabric.host.records import decode_probe_record, decode_spikes, encode_run_request, run_request_size

__all__ = ["UartLine", "LinkTB", "Exchange", "StepData", "run_request_as"]

#: Clock period of the simulation, in ns (the simulated time scale is arbitrary:
#: only cycles per bit matter).
CLOCK_NS = 10

def run_request_as(rows, m, flags, form, rng):
    """A RUN request whose records use `form`: "bitmap", "list" (inputs in random
    order, some twice: the stimulus is a set) or "mixed" (either, at random)."""
    out = bytearray(pack_fields(RUN_REQUEST_FIELDS, steps=len(rows), flags=int(flags)))
    for t, row in enumerate(rows):
        use_list = form == "list" or form == "mixed" and rng.random() < 0.5
        if use_list:
            listed = list(row) + [k for k in row if rng.random() < 0.3]
            rng.shuffle(listed)
            out += pack_fields(SPIKE_RECORD_FIELDS, step=t, format=SpikeFormat.ADDRESSES)
            out += len(listed).to_bytes(2, "little") + b"".join(k.to_bytes(2, "little") for k in listed)
        else:
            bitmap = bytearray((m + 7) // 8)
            for k in row:
                bitmap[k // 8] |= 1 << (k % 8)
            out += pack_fields(SPIKE_RECORD_FIELDS, step=t, format=SpikeFormat.BITMAP) + bytes(bitmap)
    return bytes(out)


class UartLine:
    """8N1, LSB first, idle high, at `divisor` clock cycles per bit.

    `send` drives the device's `uart_rx`; a monitor samples `uart_tx` from
    each falling start edge at bit centres and hands the bytes to `on_byte`.
    `tx_bit_ns` may differ from the device's bit time to model a far end
    whose clock is off. A stop bit that reads 0 is counted in `framing_errors`.
    """

    def __init__(self, dut, divisor, on_byte, tx_bit_ns=None):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_NS
        self.tx_bit_ns = tx_bit_ns or self.bit_ns
        self.on_byte = on_byte
        self.framing_errors = 0

    def start(self):
        self.dut.uart_rx.value = 1
        cocotb.start_soon(self._monitor())

    async def send(self, data, bad_stop=False):
        """Send bytes back to back; with `bad_stop` every stop bit is 0 (a framing error)."""
        rx = self.dut.uart_rx
        for byte in bytes(data):
            rx.value = 0
            await Timer(self.tx_bit_ns, "ns")
            for i in range(8):
                rx.value = (byte >> i) & 1
                await Timer(self.tx_bit_ns, "ns")
            rx.value = 0 if bad_stop else 1
            await Timer(self.tx_bit_ns, "ns")
        rx.value = 1
        if bad_stop:
            await Timer(self.tx_bit_ns, "ns")   # the line idles again

    async def _monitor(self):
        tx = self.dut.uart_tx
        half = self.bit_ns // 2
        while True:
            await FallingEdge(tx)
            await Timer(half, "ns")
            if tx.value != 0:
                continue                      # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, "ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, "ns")
            if tx.value != 1:
                self.framing_errors += 1
                continue
            self.on_byte(byte)


class Exchange:
    """What came back for one request: the reply and the frames before it with its seq."""

    def __init__(self, reply, records):
        self.reply = reply
        self.records = records

    @property
    def status(self):
        return self.reply.status

    @property
    def data(self):
        return self.reply.payload[1:]


class StepData:
    """The records of one step: spikes (indices), v and i when probed, the inputs U
    (indices) and their record's bytes when asked for."""

    def __init__(self, step, spikes, v=None, i=None, record=b"", inputs=None, inputs_record=None):
        self.step, self.spikes, self.v, self.i, self.record = step, spikes, v, i, record
        self.inputs, self.inputs_record = inputs, inputs_record


class LinkTB:
    """Clock, reset, UART line and a protocol host for one `nf_top` instance."""

    def __init__(self, dut, config, *, clk_hz, baud, build_id, tx_bit_ns=None):
        from neurofabric.hdl.uart import uart_divisor
        self.dut, self.cfg = dut, config
        self.clk_hz, self.baud, self.build_id = clk_hz, baud, build_id
        self.divisor = uart_divisor(clk_hz, baud)[0]
        self.shape = CoreShape(n=config.n, m=config.m, state_bits=config.S, weight_bits=config.W,
                               trace_bits=config.T, lanes=config.lanes)
        self.decoder = FrameDecoder()
        self.inbox = []            # replies not yet claimed by a request
        self.records = {}          # seq -> STEP_RECORD / PROBE_RECORD frames, in order
        self.arrived = Event()
        self.bad_frames = []       # FrameErrors of device frames (must stay empty)
        self.nacks = []            # NACK frames
        self.line = UartLine(dut, self.divisor, self._on_byte, tx_bit_ns)
        self.seq = 0
        self.network = None

    def _on_byte(self, byte):
        for item in self.decoder.feed(bytes([byte])):
            if isinstance(item, FrameError):
                self.bad_frames.append(item)
            elif item.command == Command.NACK | REPLY_FLAG and item.seq == 0:
                self.nacks.append(item)
            elif (item.command in (Command.STEP_RECORD | REPLY_FLAG, Command.PROBE_RECORD | REPLY_FLAG,
                                   Command.INPUT_RECORD | REPLY_FLAG)
                  and item.payload[:1] == bytes([Status.OK])):
                # (A request with a record's code is refused: its reply carries a status only.)
                self.records.setdefault(item.seq, []).append(item)
            else:
                self.inbox.append(item)
            self.arrived.set()

    async def start(self):
        dut = self.dut
        self.line.start()
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)   # the line changes between rising edges from now on

    def byte_ns(self, count):
        """Simulated time of `count` bytes on the line."""
        return count * 10 * self.line.bit_ns

    # -- frames -----------------------------------------------------------------
    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    async def send_frame(self, command, seq, payload=b""):
        await self.line.send(encode_frame(command, seq, payload))

    async def wait_for(self, predicate, timeout_ns, what):
        """Wait until `predicate()` is true (checked whenever a frame arrives)."""
        waited = 0
        step = 20_000
        while not predicate():
            if waited >= timeout_ns:
                raise AssertionError(f"no {what} within {timeout_ns} ns (inbox {self.inbox[:4]}, "
                                     f"nacks {self.nacks[:4]}, bad frames {self.bad_frames[:2]})")
            self.arrived.clear()
            await First(self.arrived.wait(), Timer(step, "ns"))
            waited += step
        return predicate()

    async def reply(self, command, seq, timeout_ns=None, take_records=True):
        """The reply to (command, seq), with the record frames of that seq (unless
        `take_records` is false: then they stay for a later reply)."""
        want = int(command) | REPLY_FLAG
        timeout_ns = timeout_ns or self.byte_ns(2 * MAX_PAYLOAD + 64) + 2_000_000

        def found():
            return next((f for f in self.inbox if f.command == want and f.seq == seq), None)

        frame = await self.wait_for(found, timeout_ns, f"reply to command 0x{want & 0x7F:02X} seq {seq}")
        self.inbox.remove(frame)
        return Exchange(frame, self.records.pop(seq, []) if take_records else [])

    async def quiet(self, ns):
        """Let `ns` pass; returns the frames that arrived unclaimed meanwhile."""
        await Timer(ns, "ns")
        out, self.inbox = self.inbox, []
        return out

    async def request(self, command, payload=b"", *, seq=None, timeout_ns=None):
        """Send a request and wait for its reply (and the records of its seq)."""
        seq = self.next_seq() if seq is None else seq
        self.records.pop(seq, None)
        await self.send_frame(command, seq, payload)
        ex = await self.reply(command, seq, timeout_ns)
        assert not self.inbox, f"unexpected frames from the device: {self.inbox}"
        return ex

    async def ok(self, command, payload=b"", **kwargs):
        """`request`, asserting the status OK; returns the `Exchange`."""
        ex = await self.request(command, payload, **kwargs)
        assert ex.status == Status.OK, f"{Command(command).name}: status {ex.status!r}"
        return ex

    # -- memory tables ----------------------------------------------------------
    def table(self, family, table):
        return table_info(family, table, self.shape)

    async def write_table(self, family, table, address, words):
        info = self.table(family, table)
        words = list(words)
        for start in range(0, len(words), info.max_write_words):
            chunk = words[start:start + info.max_write_words]
            payload = pack_fields(MEMORY_REQUEST_FIELDS, table=table, address=address + start, count=len(chunk))
            await self.ok(info.write_command, payload + words_to_bytes(chunk, info.word_bits))

    async def read_table(self, family, table, address, count):
        info = self.table(family, table)
        out = []
        for start in range(0, count, info.max_read_words):
            k = min(info.max_read_words, count - start)
            ex = await self.ok(info.read_command, pack_fields(MEMORY_REQUEST_FIELDS, table=table,
                                                              address=address + start, count=k))
            assert len(ex.data) == k * info.word_bytes, (len(ex.data), k, info)
            out += bytes_to_words(ex.data, info.word_bits)
        return out

    # -- networks -----------------------------------------------------------------
    def row(self, k):
        """Core row of network source `k` (inputs first, then neurons at m + j)."""
        return k if k < self.network.m else self.cfg.m + (k - self.network.m)

    async def load(self, net):
        """Write a network's registers, parameters, masks, weights and the generator's rates
        (all 0: a memory keeps its words through a reset of the device), then RESET_STATE."""
        cfg, shape = self.cfg, self.shape
        self.network = net
        values = network_register_values(net)
        await self.write_table(Family.GLOBALS, 0, 0, [encode_global(name, values[name], shape)
                                                      for name in NETWORK_GLOBALS])
        fields = neuron_params_fields(cfg.S)
        params = [pack_word(fields, **{name: int(getattr(net, name)[j]) for name, _, _ in fields})
                  if j < net.n else 0 for j in range(cfg.n)]
        await self.write_table(Family.PARAMS, 0, 0, params)
        await self.write_table(Family.PARAMS, 2, 0, [int(net.plastic_post[j]) if j < net.n else 0
                                                     for j in range(cfg.n)])
        pre = [0] * shape.sources
        for k in range(net.m + net.n):
            pre[self.row(k)] = int(net.plastic_pre[k])
        await self.write_table(Family.PARAMS, 1, 0, pre)
        L, NW = cfg.lanes, shape.words_per_row
        padded = np.zeros((shape.sources, cfg.n), np.int64)
        for k in range(net.m + net.n):
            padded[self.row(k), :net.n] = net.weights[k]
        words = [pack_weights(padded[r, c * L:(c + 1) * L], cfg.W) for r in range(shape.sources) for c in range(NW)]
        await self.write_table(Family.WEIGHTS, 0, 0, words)
        await self.write_rates([])
        await self.ok(Command.RESET_STATE)

    async def write_rates(self, rates):
        """The generator's rate[k] of the network's inputs (those of the core's other inputs: 0)."""
        rates = [int(r) for r in rates] + [0] * (self.cfg.m - len(rates))
        await self.write_table(*table_key("rates"), 0, rates)

    async def write_seed(self, seed):
        """The seed register (which sets the generator state g)."""
        await self.write_table(Family.GLOBALS, 0, GLOBAL_REGISTERS.index("seed"),
                               [encode_global("seed", seed, self.shape)])

    async def read_gen_state(self):
        """The generator state g (register gen_state)."""
        return (await self.read_table(Family.GLOBALS, 0, GLOBAL_REGISTERS.index("gen_state"), 1))[0]

    async def write_state(self, state):
        """Write v, i, r, s, y (n') and x (m'+n') of the network to the device."""
        net, cfg = self.network, self.cfg
        fields = neuron_state_fields(cfg.S)
        await self.write_table(Family.STATE, 0, 0, [
            pack_word(fields, **{key: int(state[key][j]) for key in ("v", "i", "r", "s")}) for j in range(net.n)])
        x = [0] * self.shape.sources
        for k in range(net.m + net.n):
            x[self.row(k)] = int(state["x"][k])
        await self.write_table(Family.STATE, 1, 0, x)
        await self.write_table(Family.STATE, 2, 0, [int(y) for y in state["y"]])

    async def read_weights(self):
        """The network's weights `(m'+n', n')` as the device holds them."""
        net, cfg, shape = self.network, self.cfg, self.shape
        words = await self.read_table(Family.WEIGHTS, 0, 0, shape.sources * shape.words_per_row)
        full = np.array([unpack_weights(w, cfg.lanes, cfg.W) for w in words], np.int64).reshape(shape.sources, cfg.n)
        return np.stack([full[self.row(k), :net.n] for k in range(net.m + net.n)])

    async def read_state(self):
        """v, i, r, s, y (n') and x (m'+n') of the network, from the device."""
        net, cfg = self.network, self.cfg
        words = await self.read_table(Family.STATE, 0, 0, net.n)
        fields = [unpack_word(neuron_state_fields(cfg.S), w) for w in words]
        state = {key: np.array([f[key] for f in fields], np.int64) for key in ("v", "i", "r", "s")}
        x = await self.read_table(Family.STATE, 1, 0, self.shape.sources)
        state["x"] = np.array([x[self.row(k)] for k in range(net.m + net.n)], np.int64)
        state["y"] = np.array(await self.read_table(Family.STATE, 2, 0, net.n), np.int64)
        return state

    async def run(self, stimulus, *, probe=False, inputs=False, max_steps=8, first_step=0, form=None, rng=None):
        """Run `stimulus` (steps x m' bools) in RUN requests of at most `max_steps`
        steps; returns a `StepData` per step, checking the records' framing,
        step counters, input records and probe chunks on the way. `form` forces
        the records' format (see `run_request_as`); by default
        `encode_run_request` picks."""
        rows = [np.flatnonzero(row).tolist() for row in np.asarray(stimulus, bool)]
        flags = (RunFlags.PROBE if probe else 0) | (RunFlags.INPUTS if inputs else 0)
        out, step, start = [], first_step, 0
        while start < len(rows):
            seed = rng.random() if rng is not None else 0

            def build(chunk, seed=seed):
                if form is None:
                    return encode_run_request(chunk, self.cfg.m, flags)
                return run_request_as(chunk, self.cfg.m, flags, form, random.Random(seed))

            end = start + 1
            while (end < len(rows) and end - start < max_steps
                   and (form is None and run_request_size(rows[start:end + 1], self.cfg.m)
                        or len(build(rows[start:end + 1]))) <= MAX_PAYLOAD):
                end += 1
            chunk = rows[start:end]
            budget = self.byte_ns(MAX_PAYLOAD + 64) + len(chunk) * (
                self.byte_ns(64 + (4 * self.cfg.n if probe else self.cfg.n // 8) + (self.cfg.m // 8 + 16) * inputs)
                + 200_000)
            ex = await self.ok(Command.RUN, build(chunk), timeout_ns=budget)
            assert ex.data == len(chunk).to_bytes(4, "little"), f"RUN reply {ex.data.hex()}"
            out += self.parse_records(ex.records, len(chunk), step, probe, inputs)
            step += len(chunk)
            start = end
        return out

    def parse_records(self, frames, steps, first_step, probe, inputs=False):
        """Check and decode the record frames of one RUN request."""
        cfg, n_used = self.cfg, self.network.n if self.network else self.cfg.n
        out = []
        frames = list(frames)
        for t in range(steps):
            step_inputs = inputs_record = None
            if inputs:
                assert frames, f"step {first_step + t}: no INPUT_RECORD"
                frame = frames.pop(0)
                assert frame.code == Command.INPUT_RECORD and frame.payload[0] == Status.OK, frame
                step, step_inputs, end = decode_spikes(frame.payload, cfg.m, 1)
                assert end == len(frame.payload), f"{len(frame.payload) - end} bytes after the input record"
                assert step == first_step + t, f"INPUT_RECORD of step {step}, expected {first_step + t}"
                inputs_record = frame.payload[1:]
            assert frames, f"step {first_step + t}: no STEP_RECORD"
            frame = frames.pop(0)
            assert frame.code == Command.STEP_RECORD and frame.payload[0] == Status.OK, frame
            step, spikes, end = decode_spikes(frame.payload, cfg.n, 1)
            assert end == len(frame.payload), f"{len(frame.payload) - end} bytes after the spike record"
            assert step == first_step + t, f"STEP_RECORD of step {step}, expected {first_step + t}"
            data = StepData(step, spikes, record=frame.payload[1:], inputs=step_inputs, inputs_record=inputs_record)
            if probe:
                v, i = [], []
                while len(v) < n_used:
                    assert frames, f"step {step}: probes of neurons {len(v)}.. missing"
                    pf = frames.pop(0)
                    assert pf.code == Command.PROBE_RECORD and pf.payload[0] == Status.OK, pf
                    pstep, first, pv, pi, pend = decode_probe_record(pf.payload, cfg.S, 1)
                    assert pend == len(pf.payload) and pstep == step and first == len(v), (pstep, first, len(v))
                    assert 0 < len(pv) <= self.probe_chunk, len(pv)
                    v += pv
                    i += pi
                assert len(v) == n_used
                data.v, data.i = np.array(v, np.int64), np.array(i, np.int64)
            out.append(data)
        assert not frames, f"{len(frames)} extra record frames: {frames[:3]}"
        return out

    @property
    def probe_chunk(self):
        import json
        import os
        from neurofabric.contract.protocol import probe_chunk_neurons
        top = json.loads(os.environ.get("NF_TOP", "{}"))
        return top.get("probe_chunk") or probe_chunk_neurons(self.cfg.S)


def status_fields(ex):
    from neurofabric.contract.protocol import STATUS_REPLY_FIELDS, unpack_fields
    assert len(ex.data) == fields_size(STATUS_REPLY_FIELDS)
    return unpack_fields(STATUS_REPLY_FIELDS, ex.data)
