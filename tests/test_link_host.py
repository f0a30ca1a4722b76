"""The host side of the link: LinkClient against an in-process device through a
fault-injecting transport, and SerialTransport on pseudo-terminals."""

import dataclasses
import errno
import logging
import os
import time
from collections import Counter

import numpy as np
import pytest

from neurofabric.host.errors import LinkError
from neurofabric.host.faults import Fault, FaultyTransport
from neurofabric.host.link import LinkClient
from neurofabric.host.transport import TRACE, SerialTransport, Transport
from neurofabric.contract.device import GLOBAL_REGISTERS, CoreShape
from neurofabric.contract.model import CORE_MODEL_VERSION
from neurofabric.host.arith import xorshift32
from neurofabric.contract.protocol import (
    HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROTOCOL_VERSION, REPLY_FLAG, RUN_REPLY_FIELDS,
    RUN_REQUEST_FIELDS, STATUS_REPLY_FIELDS, TABLE_NAMES, Command, Family, RunFlags, Status, fields_size, memory_family,
    block_steps, pack_fields, probe_chunk_neurons, table_info, table_key, unpack_fields,
)
from neurofabric.host.framing import Frame, FrameDecoder, FrameError, FrameFault, encode_frame
from neurofabric.host.records import decode_spikes, encode_probe_record, encode_spikes, encode_step_block


class FakeDevice(Transport):
    """A device in-process, on the other side of a `Transport`: it speaks
    docs/protocol.md (retry cache, NACKs, memory tables with range checks, RUN
    with step records) and counts every command it applies.

    Its "core" is trivial and checkable: in a step, neuron j spikes when input
    j % m is in the step's input set U, and its probes are v = step - j,
    i = j - 3 * step (see `expected_probes`). U is the host's inputs and those
    of the stimulus generator of spec 5.0 (xorshift32 state `g` advanced
    m_used times a step, the rates table, the seed and gen_state registers;
    RESET_STATE sets g to the seed). Its spike counters (table spike_counts,
    16 bits) count every neuron's spikes; a RUN with NO_RECORDS sends no
    records (with PROBE or INPUTS it is BAD_VALUE). `lose_records` names steps whose
    STEP_RECORD is never sent, `lose_inputs` steps whose INPUT_RECORD is
    never sent, `lose_probes` (step, first neuron) probe records never sent;
    `silent` makes it answer nothing. With `blocks` it sends the step records of a
    RUN with BLOCKS as STEP_BLOCKs (a block holding a step of `lose_records` is
    never sent); without, BLOCKS is BAD_VALUE, as from a build without them.
    `reset_at` (a step number) resets the device as a power glitch would when a RUN
    reaches that step: every table cleared, the step counter 0, the RUN unanswered.
    """

    name = "fake device"

    def __init__(self, n=16, m=8, lanes=4, S=16, W=8, T=8, lose_records=(), lose_probes=(), lose_inputs=(),
                 silent=False, probe_chunk=None, counters=True, blocks=False, reset_at=None):
        self.n, self.m, self.lanes, self.S, self.W, self.T = n, m, lanes, S, W, T
        self.shape = CoreShape(n, m, S, W, T, lanes)
        self.infos = {key: table_info(*key, self.shape) for key in TABLE_NAMES}
        self.tables = {key: [0] * info.depth for key, info in self.infos.items()}
        if not counters:        # a build without spike counters: their table is BAD_ADDRESS
            del self.tables[table_key("spike_counts")]
        self.lose_records = set(lose_records)
        self.blocks = blocks
        self.reset_at = reset_at
        self.lose_probes = set(lose_probes)
        self.lose_inputs = set(lose_inputs)
        self.tables[(Family.GLOBALS, 0)][GLOBAL_REGISTERS.index("m_used")] = m
        self.tables[(Family.GLOBALS, 0)][SEED] = self.g = 1
        self.probe_chunk = probe_chunk or probe_chunk_neurons(S)
        self.silent = silent
        self.step = 0
        self.applied = Counter()      # commands carried out (a retry is not)
        self.writes = {name: [] for name in TABLE_NAMES.values()}   # table -> address ranges written
        self.retries_answered = 0
        self.nacks = 0
        self.frames = 0
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._last = None             # (command, seq, reply bytes)
        self.record = set(range(n))   # SET_RECORD's neurons
        self.run_payloads = []        # every RUN request's payload

    # -- Transport ----------------------------------------------------------------
    def write(self, data):
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                status = Status.BAD_CRC if item.fault == FrameFault.CRC else Status.BAD_LENGTH
                self.nacks += 1
                self._send(Command.NACK, 0, bytes([status]))
            else:
                self.frames += 1
                self._handle(item)

    def read(self, timeout):
        if self._out:
            out, self._out = bytes(self._out), bytearray()
            return out
        time.sleep(min(timeout, 0.002))
        return b""

    def close(self):
        pass

    # -- the device -----------------------------------------------------------------
    def _send(self, command, seq, payload):
        if not self.silent:
            self._out += encode_frame(command | REPLY_FLAG, seq, payload)

    def _handle(self, frame: Frame):
        command, seq, payload = frame.code, frame.seq, frame.payload
        if command == Command.HELLO:
            self._last = None
        elif self._last is not None and self._last[:2] == (command, seq):
            self.retries_answered += 1
            if not self.silent:
                self._out += self._last[2]
            return
        before = len(self._out)
        answer = self._execute(command, seq, payload)
        if answer is None:              # reset mid-request: no reply, nothing remembered
            self._last = None
            return
        status, body = answer
        if status == Status.OK:
            self.applied[command.name if isinstance(command, Command) else command] += 1
        reply = encode_frame(int(command) | REPLY_FLAG, seq, bytes([status]) + body)
        if not self.silent:
            self._out += reply
        del before
        self._last = (command, seq, reply)

    def _execute(self, command, seq, payload):
        if command == Command.HELLO:
            return Status.OK, pack_fields(HELLO_REPLY_FIELDS, protocol_version=PROTOCOL_VERSION,
                                          core_model_version=CORE_MODEL_VERSION, n=self.n, m=self.m, state_bits=self.S,
                                          weight_bits=self.W, trace_bits=self.T, lanes=self.lanes,
                                          clk_hz=12_000_000, baud=3_000_000, max_payload=MAX_PAYLOAD,
                                          build_id=0xB0A4D)
        if command == Command.ECHO:
            return Status.OK, payload
        if command == Command.STATUS:
            return Status.OK, pack_fields(STATUS_REPLY_FIELDS, running=0, step=self.step, uart_framing_errors=0,
                                          uart_overruns=0, crc_errors=0, format_errors=0,
                                          dropped_frames=0, last_step_cycles=0, lost_records=0)
        if command == Command.RESET_STATE:
            self.step = 0
            self.g = self.tables[(Family.GLOBALS, 0)][SEED]
            return Status.OK, b""
        if memory_family(command) is not None:
            return self._memory(command, payload)
        if command == Command.RUN:
            self.run_payloads.append(payload)
            return self._run(seq, payload)
        if command == Command.SET_RECORD:
            if len(payload) != (self.n + 7) // 8:
                return Status.BAD_LENGTH, b""
            self.record = {k for k in range(self.n) if payload[k // 8] >> (k % 8) & 1}
            return Status.OK, b""
        return Status.UNKNOWN_COMMAND, b""

    def _memory(self, command, payload):
        family, is_write = memory_family(command)
        if len(payload) < fields_size(MEMORY_REQUEST_FIELDS):
            return Status.BAD_LENGTH, b""
        req = unpack_fields(MEMORY_REQUEST_FIELDS, payload)
        key = (family, req["table"])
        if key not in self.tables:
            return Status.BAD_ADDRESS, b""
        memory, size = self.tables[key], self.infos[key].word_bytes
        lo, hi = req["address"], req["address"] + req["count"]
        if hi > len(memory):
            return Status.BAD_ADDRESS, b""
        data = payload[fields_size(MEMORY_REQUEST_FIELDS):]
        if key == (Family.GLOBALS, 0):
            memory[GEN_STATE] = self.g
        if not is_write:
            if data:
                return Status.BAD_LENGTH, b""
            if req["count"] * size > MAX_PAYLOAD - 1:
                return Status.OVERFLOW, b""
            return Status.OK, b"".join(w.to_bytes(size, "little") for w in memory[lo:hi])
        if len(data) != req["count"] * size:
            return Status.BAD_LENGTH, b""
        memory[lo:hi] = [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size)]
        self.writes[TABLE_NAMES[key]].append((lo, hi))
        if key == (Family.GLOBALS, 0) and lo <= SEED < hi:
            self.g = memory[SEED]
        return Status.OK, b""

    def _run(self, seq, payload):
        req = unpack_fields(RUN_REQUEST_FIELDS, payload)
        offset = fields_size(RUN_REQUEST_FIELDS)
        quiet = req["flags"] & RunFlags.NO_RECORDS
        if quiet and req["flags"] & (RunFlags.PROBE | RunFlags.INPUTS):
            return Status.BAD_VALUE, b""
        blocked = req["flags"] & RunFlags.BLOCKS
        if blocked and (not self.blocks or req["flags"] & (RunFlags.PROBE | RunFlags.INPUTS | RunFlags.NO_RECORDS)):
            return Status.BAD_VALUE, b""
        subset = req["flags"] & RunFlags.SUBSET
        span = (max(self.record) // 8 + 1 if self.record else 1) if subset else (self.n + 7) // 8
        block = []                      # (step, spikes) of every step of a BLOCKS run
        stimulus = []
        for t in range(req["steps"]):
            if req["flags"] & RunFlags.GENERATED:       # no input records: no host inputs
                stimulus.append([])
                continue
            step, inputs, offset = decode_spikes(payload, self.m, offset)
            assert step == t
            stimulus.append(inputs)
        if offset != len(payload):
            return Status.BAD_LENGTH, b""
        n_used = self.tables[(Family.GLOBALS, 0)][11] or self.n
        chunk = self.probe_chunk
        rates = self.tables[table_key("rates")]
        for inputs in stimulus:
            if self.step == self.reset_at:
                self.reset_at = None
                self.tables = {key: [0] * len(memory) for key, memory in self.tables.items()}
                self.step, self.record = 0, set(range(self.n))
                return None
            m_used = min(self.tables[(Family.GLOBALS, 0)][GLOBAL_REGISTERS.index("m_used")], self.m)
            u = {k for k in inputs if k < m_used}
            for k in range(m_used):
                self.g = xorshift32(self.g)
                if self.g >> 16 < rates[k]:
                    u.add(k)
            counts = self.tables.get(table_key("spike_counts"), [0] * self.n)
            for j in range(self.n):
                if j % self.m in u:
                    counts[j] = (counts[j] + 1) & 0xFFFF
            spikes = [j for j in range(self.n) if j % self.m in u
                      and (j in self.record or not req["flags"] & RunFlags.SUBSET)]
            if quiet:
                self.step += 1
                continue
            if blocked:
                block.append((self.step, spikes))
                self.step += 1
                continue
            if req["flags"] & RunFlags.INPUTS and self.step not in self.lose_inputs:
                self._send(Command.INPUT_RECORD, seq, bytes([Status.OK]) + encode_spikes(self.step, sorted(u), self.m))
            if self.step not in self.lose_records:
                self._send(Command.STEP_RECORD, seq, bytes([Status.OK]) + encode_spikes(self.step, spikes, self.n))
            if req["flags"] & RunFlags.PROBE:
                v, i = expected_probes(self.step, n_used)
                for first in range(0, n_used, chunk):
                    if (self.step, first) not in self.lose_probes:
                        self._send(Command.PROBE_RECORD, seq, bytes([Status.OK]) + encode_probe_record(
                            self.step, first, v[first:first + chunk], i[first:first + chunk], self.S))
            self.step += 1
        for start in range(0, len(block), block_steps(span)):
            part = block[start:start + block_steps(span)]
            if not self.lose_records & {step for step, _ in part}:
                self._send(Command.STEP_BLOCK, seq, bytes([Status.OK]) + encode_step_block(
                    part[0][0], [spikes for _, spikes in part], self.n, span))
        return Status.OK, pack_fields(RUN_REPLY_FIELDS, steps=req["steps"])


SEED = GLOBAL_REGISTERS.index("seed")
GEN_STATE = GLOBAL_REGISTERS.index("gen_state")


def expected_probes(step, n):
    return [step - j for j in range(n)], [j - 3 * step for j in range(n)]


def client_for(device, transport=None, **kw):
    kw.setdefault("timeout", 0.05)
    client = LinkClient(transport or device, **kw)
    client.hello()
    return client


def expected_spikes(stim, n, m):
    return [[j for j in range(n) if stim[t, j % m]] for t in range(stim.shape[0])]


# -- exchanges without faults ----------------------------------------------------------

def test_hello_echo_status_and_sequence_numbers_wrap():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)
    assert (client.device.n, client.device.m, client.device.lanes) == (16, 8, 4)
    seen = []
    for k in range(300):  # past 255: seq wraps and stays +1 mod 256
        data = bytes([k & 0xFF, 0, 7]) * (k % 5)
        assert client.echo(data) == data
        seen.append(client._seq)
    assert all((b - a) % 256 == 1 for a, b in zip(seen, seen[1:]))
    assert client.status()["step"] == 0
    assert dev.applied["ECHO"] == 300


def test_table_writes_and_reads_are_split_into_frames_of_at_most_max_payload():
    dev = FakeDevice(n=64, m=64)
    client = client_for(dev)
    rng = np.random.default_rng(1)
    words = [int(w) for w in rng.integers(0, 1 << 32, size=(64 + 64) * 64 // 4)]
    calls = []
    client.write_weights(0, words, progress=lambda done, total: calls.append((done, total)))
    per_frame = (MAX_PAYLOAD - fields_size(MEMORY_REQUEST_FIELDS)) // 4
    assert dev.applied["WRITE_WEIGHTS"] == -(-len(words) // per_frame) > 1
    assert calls[-1] == (len(words), len(words)) and len(calls) == dev.applied["WRITE_WEIGHTS"]
    assert dev.tables[(Family.WEIGHTS, 0)] == words
    assert client.read_weights(0, len(words)) == words
    assert dev.applied["READ_WEIGHTS"] == -(-len(words) // ((MAX_PAYLOAD - 1) // 4))
    params = [int(a) << 40 | int(b) for a, b in zip(rng.integers(0, 1 << 27, 64), rng.integers(0, 1 << 40, 64))]
    client.write_params(0, 0, params)
    assert client.read_params(0, 0, 64) == params  # 9-byte words
    client.write_params(1, 3, [1, 0, 1])
    assert client.read_params(1, 0, 7) == [0, 0, 0, 1, 0, 1, 0]


def test_refused_request_names_command_and_status():
    client = client_for(FakeDevice(n=16, m=8))
    with pytest.raises(LinkError, match=r"WRITE_WEIGHTS weights: addresses 95 .. 96 outside 0 .. 95"):
        client.write_weights(95, [1, 2])  # 96 words: the second is outside
    client.device = dataclasses.replace(client.device, n=32)  # the host believes in more words than there are
    with pytest.raises(LinkError, match=r"WRITE_WEIGHTS refused by the device: BAD_ADDRESS \(table or address"):
        client.write_weights(95, [1, 2])
    with pytest.raises(LinkError, match="WRITE_WEIGHTS weights from address 0: word 4294967296 does not fit 32 bits"):
        client.write_weights(0, [1 << 32])
    with pytest.raises(LinkError, match=r"no table 5 in WEIGHTS \(tables: \[0\]\)"):
        client.read_table(Family.WEIGHTS, 5, 0, 1)


def test_run_streams_records_in_bounded_requests_and_checks_the_counter():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)
    rng = np.random.default_rng(2)
    stim = rng.random((700, 8)) < 0.3
    records = list(client.run(stim, max_steps=100))
    assert [r.step for r in records] == list(range(700))
    assert [list(r.spikes) for r in records] == expected_spikes(stim, 16, 8)
    assert dev.applied["RUN"] == 7
    # The counter carries on from run to run, and starts again after RESET_STATE.
    more = list(client.run(stim[:5]))
    assert [r.step for r in more] == list(range(700, 705))
    client.reset_state()
    assert [r.step for r in client.run(stim[:3])] == [0, 1, 2]


def test_run_requests_respect_the_payload_limit():
    dev = FakeDevice(n=16, m=2000)
    client = client_for(dev)
    stim = np.zeros((40, 2000), bool)
    stim[:, ::3] = True  # 250-byte bitmaps: four steps per frame
    records = list(client.run(stim, max_steps=256))
    assert len(records) == 40 and dev.applied["RUN"] == 10


def test_run_yields_records_as_they_arrive():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)
    stim = np.ones((50, 8), bool)
    gen = client.run(stim, max_steps=10)
    first = next(gen)
    assert first.step == 0 and dev.applied["RUN"] == 1  # the later requests are not sent yet
    assert len(list(gen)) == 49 and dev.applied["RUN"] == 5


# -- faults --------------------------------------------------------------------------------

def every_third_reply(fault):
    """A read-side schedule: every third frame that is not a step record."""
    count = Counter()

    def schedule(index, frame):
        if frame is not None and frame.code == Command.STEP_RECORD:
            return None
        count["replies"] += 1
        return fault if count["replies"] % 3 == 1 else None
    return schedule


@pytest.mark.parametrize("direction", ["write", "read"])
@pytest.mark.parametrize("fault", Fault.ALL)
def test_each_fault_on_each_side_is_recovered_without_applying_twice(direction, fault):
    dev = FakeDevice(n=16, m=8)
    client = LinkClient(dev, timeout=0.05)
    client.hello()
    if direction == "write":
        faulty = FaultyTransport(dev, write_faults={i: fault for i in range(0, 40, 3)}, seed=3)
    else:
        faulty = FaultyTransport(dev, read_faults=every_third_reply(fault), seed=3)
    client.transport = faulty
    rng = np.random.default_rng(3)
    words = [int(w) for w in rng.integers(0, 1 << 32, size=96)]
    for k in range(4):
        client.write_weights(k * 24, words[k * 24:(k + 1) * 24])
    client.reset_state()
    stim = rng.random((30, 8)) < 0.4
    records = list(client.run(stim, max_steps=10))
    assert client.read_weights(0, 96) == words
    assert client.echo(b"after") == b"after"
    assert len(faulty.injected) >= 3
    assert [list(r.spikes) for r in records] == expected_spikes(stim, 16, 8)
    # Each request applied exactly once, however often it was sent.
    assert dev.applied["WRITE_WEIGHTS"] == 4 and dev.applied["RESET_STATE"] == 1 and dev.applied["RUN"] == 3
    assert dev.step == 30
    if fault in (Fault.DROP, Fault.CORRUPT, Fault.TRUNCATE):
        assert client.stats["retries"] >= 3
    if direction == "read" and fault in (Fault.DROP, Fault.CORRUPT, Fault.TRUNCATE):
        assert dev.retries_answered >= 3  # answered from the retry cache, not applied again


@pytest.mark.parametrize("fault, harmless", [(Fault.DROP, False), (Fault.CORRUPT, False),
                                             (Fault.TRUNCATE, False), (Fault.DUPLICATE, True),
                                             (Fault.NOISE, True)])
def test_a_spoilt_step_record_is_never_a_silent_gap(fault, harmless):
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)

    def schedule(index, frame):
        return fault if frame is not None and frame.code == Command.STEP_RECORD and \
            decode_spikes(frame.payload, 16, 1)[0] == 6 else None
    client.transport = FaultyTransport(dev, read_faults=schedule)
    stim = np.ones((12, 8), bool)
    if harmless:
        assert [r.step for r in client.run(stim)] == list(range(12))
    else:
        with pytest.raises(LinkError, match="RUN of 12 steps from step 0: .*step 6"):
            list(client.run(stim))
    assert dev.applied["RUN"] == 1
    assert [r.step for r in client.run(stim[:1])] == [12]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_faults_in_both_directions_give_the_fault_free_result(seed):
    rng = np.random.default_rng(seed)
    stim = rng.random((60, 8)) < 0.3
    words = [int(w) for w in rng.integers(0, 1 << 32, size=96)]
    results = []
    for rate in (0.0, 0.15):
        dev = FakeDevice(n=16, m=8)
        faulty = FaultyTransport(dev, rate=rate, seed=seed,
                                 kinds=(Fault.DROP, Fault.CORRUPT, Fault.TRUNCATE, Fault.DUPLICATE, Fault.NOISE))
        client = LinkClient(faulty, timeout=0.03, retries=8)
        client.hello()
        client.write_weights(0, words)
        client.reset_state()
        got = []
        # A lost step record cannot be asked for again: such a run is an error, never a silent gap.
        for start in range(0, 60, 5):
            try:
                got += [list(r.spikes) for r in client.run(stim[start:start + 5])]
            except LinkError as exc:
                assert "lost" in str(exc) or "records arrived" in str(exc), exc
                client.reset_state()
                got = None
                break
        results.append((client.read_weights(0, 96), got, dev.applied["WRITE_WEIGHTS"]))
        if rate:
            assert faulty.injected
    (w0, spikes0, writes0), (w1, spikes1, writes1) = results
    assert w0 == w1 == words and writes0 == writes1
    assert spikes0 == expected_spikes(stim, 16, 8)
    assert spikes1 is None or spikes1 == spikes0


def test_lost_step_record_is_an_error_naming_the_step_and_the_link_carries_on():
    dev = FakeDevice(n=16, m=8, lose_records={13})
    client = client_for(dev)
    stim = np.ones((20, 8), bool)
    got = []
    with pytest.raises(LinkError, match=r"RUN of 20 steps from step 0: .*step 14 arrived where step 13 was due"):
        for record in client.run(stim):
            got.append(record.step)
    assert got == list(range(13))  # records after a gap are never handed out
    assert dev.applied["RUN"] == 1
    assert client.echo(b"still there") == b"still there"
    assert [r.step for r in client.run(stim[:2])] == [20, 21]


def test_last_step_record_lost_is_an_error_too():
    dev = FakeDevice(n=16, m=8, lose_records={9})
    client = client_for(dev)
    with pytest.raises(LinkError, match=r"10 steps done and 9 whole step records arrived \(steps 9.. lost\)"):
        list(client.run(np.ones((10, 8), bool)))


def test_a_lenient_run_hands_out_every_whole_step_with_its_index_and_skips_lost_ones():
    dev = FakeDevice(n=600, m=8, lose_records={3, 11}, lose_probes={(6, probe_chunk_neurons(16))})
    client = client_for(dev)
    stim = np.random.default_rng(3).random((14, 8)) < 0.5
    records = list(client.run(stim, probe=True, max_steps=5, lenient=True))
    assert [r.index for r in records] == [k for k in range(14) if k not in (3, 6, 11)]
    assert [r.step for r in records] == [r.index for r in records]  # the counter started at 0
    for r in records:
        assert list(r.spikes) == expected_spikes(stim, 600, 8)[r.index]
        assert list(r.v) == expected_probes(r.step, 600)[0]
    assert dev.applied["RUN"] == 3
    # Strict (the default), the same losses are an error.
    dev.lose_records = {17}
    with pytest.raises(LinkError, match="step 17"):
        list(client.run(stim[:5], probe=True))


def test_a_lenient_run_still_refuses_a_step_count_that_does_not_match():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)
    real = dev._run

    def short(seq, payload):  # the device claims one step fewer than it was asked for
        status, body = real(seq, payload)
        if status != Status.OK:         # (the session's question whether it has step blocks)
            return status, body
        return status, pack_fields(RUN_REPLY_FIELDS, steps=unpack_fields(RUN_REPLY_FIELDS, body)["steps"] - 1)
    dev._run = short
    with pytest.raises(LinkError, match="reports 3 steps done"):
        list(client.run(np.ones((4, 8), bool), lenient=True))


def expected_inputs(stim, rates, g):
    """The input sets U of a run of `stim` from generator state `g` (spec 5.0), and g after it."""
    from neurofabric.host.generator import generate_inputs
    generated, g = generate_inputs(g, np.asarray(rates, np.int64), stim.shape[0])
    return [np.flatnonzero(stim[t] | generated[t]).tolist() for t in range(stim.shape[0])], g


def test_a_run_with_inputs_hands_out_each_steps_input_set():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)
    rates = [0, 65535, 0, 20000, 0, 0, 3000, 0]
    client.write_table(*table_key("rates"), 0, rates)
    client.write_globals(SEED, [0xC0FFEE])
    stim = np.random.default_rng(6).random((30, 8)) < 0.2
    records = list(client.run(stim, inputs=True, probe=True, max_steps=7))
    u, g = expected_inputs(stim, rates, 0xC0FFEE)
    assert [list(r.inputs) for r in records] == u
    assert [list(r.spikes) for r in records] == expected_spikes(np.array(
        [[k in row for k in range(8)] for row in u]), 16, 8)
    assert [list(r.v) for r in records] == [expected_probes(step, 16)[0] for step in range(30)]
    assert sum(len(row) for row in u) > stim.sum() + 30     # input 1 every step, 3 and 6 now and then
    assert all(r.inputs is None for r in client.run(stim[:2]))
    assert dev.g != g                                       # the generator ran on in the run without inputs


def test_a_lost_input_record_is_an_error_or_a_dropped_step():
    dev = FakeDevice(n=16, m=8, lose_inputs={4})
    client = client_for(dev)
    with pytest.raises(LinkError, match=r"step record of step 4 arrived without its input record"):
        list(client.run(np.ones((6, 8), bool), inputs=True))
    client.reset_state()
    records = list(client.run(np.ones((6, 8), bool), inputs=True, lenient=True))
    assert [r.index for r in records] == [0, 1, 2, 3, 5]
    assert all(list(r.inputs) == list(range(8)) for r in records)
    # A step record lost after its input record: the next input record shows it.
    dev.lose_inputs, dev.lose_records = set(), {8}
    with pytest.raises(LinkError, match=r"input record of step 8 without its step record"):
        list(client.run(np.ones((4, 8), bool), inputs=True))
    dev.lose_records = set()
    with pytest.raises(LinkError, match=r"input record of step 10 in a run without inputs"):
        real = dev._run
        dev._run = lambda seq, payload: real(seq, payload[:2] + bytes([RunFlags.INPUTS]) + payload[3:])
        list(client.run(np.ones((2, 8), bool)))


def test_serial_device_drives_the_generator_and_records_the_inputs():
    """SerialDevice writes the rates only when they change, the seed only when one is
    given, records each step's U, keeps g across a re-run from a checkpoint, and
    resets g to the seed."""
    import neurofabric as nf
    from neurofabric.host.serial_device import SerialDevice
    dev = FakeDevice(n=16, m=8, lose_records={14})
    device = SerialDevice(dev, timeout=0.05, checkpoint_steps=10)
    net = nf.random_network(16, 6, seed=1)
    dev.tables[table_key("rates")] = [777] * 8                   # left by an earlier network
    device.load(net)
    assert dev.tables[table_key("rates")] == [0] * 8 and dev.g == 1 and dev.tables[(Family.GLOBALS, 0)][SEED] == 1
    rates = np.array([0, 65535, 9000, 0, 30000, 1200])
    rng = np.random.default_rng(8)
    stim = rng.random((25, 6)) < 0.1
    dev.writes = {name: [] for name in dev.writes}
    rec = device.run(stim, record=("inputs", "v"), rates=rates, seed=4242)
    u, g = expected_inputs(stim, rates, 4242)
    assert device.reruns == 1                                     # step 14's record was lost: steps 10..19 again
    assert rec.inputs.shape == (25, 6) and [np.flatnonzero(row).tolist() for row in rec.inputs] == u
    assert np.array_equal(rec.spikes, np.array([[j % 8 in row for j in range(16)] for row in u], np.uint8))
    assert dev.g == g and rec.v is not None
    assert dev.writes["rates"] == [(1, 6)] and (SEED, SEED + 1) in dev.writes["globals"]
    # The same rates again, no seed: nothing written, the generator goes on.
    dev.writes = {name: [] for name in dev.writes}
    rec = device.run(stim[:5], record=("inputs",), rates=rates)
    assert [np.flatnonzero(row).tolist() for row in rec.inputs] == expected_inputs(stim[:5], rates, g)[0]
    assert dev.writes["rates"] == [] and dev.writes["globals"] == []
    # One rate changed: one rate written. A run without "inputs" records none.
    rates[3] = 500
    assert device.run(stim[:3], rates=rates).inputs is None
    assert dev.writes["rates"] == [(3, 4)]
    # The re-run left a checkpoint's g in the seed register: the reset writes the seed back first.
    assert dev.tables[(Family.GLOBALS, 0)][SEED] != 4242
    device.reset_state()
    assert dev.g == 4242 and dev.tables[(Family.GLOBALS, 0)][SEED] == 4242
    rec = device.run(stim, record=("inputs",), rates=rates)
    assert [np.flatnonzero(row).tolist() for row in rec.inputs] == expected_inputs(stim, rates, 4242)[0]
    device.reset_state()
    assert (dev.g, dev.tables[(Family.GLOBALS, 0)][SEED]) == (4242, 4242)
    with pytest.raises(nf.NetworkError, match="seed"):
        device.run(stim, seed=0)


@pytest.mark.parametrize("n, S", [(16, 16), (600, 16), (700, 12)])
def test_probed_run_assembles_v_and_i_from_probe_chunks(n, S):
    dev = FakeDevice(n=n, m=8, S=S)
    client = client_for(dev)
    stim = np.random.default_rng(5).random((7, 8)) < 0.5
    records = list(client.run(stim, probe=True))
    assert [r.step for r in records] == list(range(7))
    assert [list(r.spikes) for r in records] == expected_spikes(stim, n, 8)
    for r in records:
        v, i = expected_probes(r.step, n)
        assert list(r.v) == v and list(r.i) == i
    # n_used smaller than the core: only those neurons are probed.
    client.write_globals(11, [5])
    records = list(client.run(stim[:2], probe=True, probe_neurons=5))
    assert [list(r.v) for r in records] == [expected_probes(step, 5)[0] for step in (7, 8)]
    assert all(r.v is None for r in client.run(stim[:2]))


def test_probe_chunks_of_any_size_are_assembled():
    dev = FakeDevice(n=16, m=8, probe_chunk=5)  # 5 + 5 + 5 + 1 neurons per step
    client = client_for(dev)
    records = list(client.run(np.ones((3, 8), bool), probe=True))
    assert [list(r.v) for r in records] == [expected_probes(step, 16)[0] for step in range(3)]
    dev.lose_probes = {(4, 10)}
    with pytest.raises(LinkError, match=r"probe record of step 4 holds neurons 15..15 where neuron 10 was due"):
        list(client.run(np.ones((2, 8), bool), probe=True))


def test_lost_probe_record_is_an_error():
    dev = FakeDevice(n=600, m=8, lose_probes={(3, probe_chunk_neurons(16))})
    client = client_for(dev)
    with pytest.raises(LinkError, match=r"RUN of 6 steps from step 0: probe record of step 3 holds neurons "
                                        r"506..599 where neuron 253 was due \(of 0..599\)"):
        list(client.run(np.ones((6, 8), bool), probe=True))
    assert [r.step for r in client.run(np.ones((1, 8), bool), probe=True)] == [6]
    dev.lose_probes = {(7, 506)}  # the last chunk of a step
    with pytest.raises(LinkError, match=r"probe records of step 7 incomplete \(506 of 600 neurons\) when the "
                                        r"record of step 8 arrived"):
        list(client.run(np.ones((3, 8), bool), probe=True))
    dev.lose_probes = {(10, 506)}  # the last chunk of the run
    with pytest.raises(LinkError, match=r"probe records of step 10 incomplete \(506 of 600 neurons\)$"):
        list(client.run(np.ones((1, 8), bool), probe=True))


def test_timeout_names_the_command_attempts_and_what_happened():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev, timeout=0.02, retries=3)
    dev.silent = True
    start = time.monotonic()
    with pytest.raises(LinkError, match=r"STATUS \(seq \d+\) failed after 4 attempts \(4 without an answer\) "
                                        r"on fake device: no reply within 0.02 s \(x4\)"):
        client.status()
    assert time.monotonic() - start < 1.0
    assert dev.frames == 1 + 4  # HELLO, then STATUS sent four times with the same seq
    dev.silent = False
    assert client.echo(b"x") == b"x"


def test_nack_makes_the_client_resend_at_once():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev, timeout=5.0)  # a time-out would make this test slow
    client.transport = FaultyTransport(dev, write_faults={0: Fault.CORRUPT, 1: Fault.CORRUPT})
    start = time.monotonic()
    assert client.echo(b"abc") == b"abc"
    assert time.monotonic() - start < 1.0
    assert dev.nacks >= 2 and client.stats["nacks"] >= 2 and dev.applied["ECHO"] == 1


def test_frames_are_logged_at_debug_and_bytes_at_trace(caplog):
    dev = FakeDevice(n=16, m=8)
    with caplog.at_level(TRACE, logger="neurofabric.host.link"):
        client_for(dev).echo(b"\x01\x02")
    text = caplog.text
    assert "-> ECHO seq 2, 2 payload bytes" in text
    assert "<- ECHO seq 2, status OK" in text
    assert any(r.levelno == TRACE and r.getMessage().startswith(">> 00 ") for r in caplog.records)
    assert logging.getLevelName(TRACE) == "TRACE"


# -- the fault injector itself -------------------------------------------------------------

class Recorder(Transport):
    name = "recorder"

    def __init__(self, incoming=b""):
        self.sent, self.incoming = bytearray(), bytearray(incoming)

    def write(self, data):
        self.sent += data

    def read(self, timeout):
        out, self.incoming = bytes(self.incoming), bytearray()
        return out

    def close(self):
        pass


def test_fault_injector_does_what_its_schedule_says():
    frames = [encode_frame(Command.ECHO, k, bytes([k + 1] * 20)) for k in range(5)]
    rec = Recorder()
    faulty = FaultyTransport(rec, write_faults={0: Fault.DROP, 1: Fault.DUPLICATE, 2: Fault.CORRUPT,
                                                3: Fault.TRUNCATE})
    for f in frames:
        faulty.write(f)
    results = FrameDecoder().feed(bytes(rec.sent))
    good = [r for r in results if isinstance(r, Frame)]
    bad = [r for r in results if isinstance(r, FrameError)]
    assert [f.seq for f in good] == [1, 1, 4]
    assert len(bad) == 2  # the corrupted frame, and the cut one (ended by frame 4's delimiter)
    assert [i[2] for i in faulty.injected] == [Fault.DROP, Fault.DUPLICATE, Fault.CORRUPT, Fault.TRUNCATE]
    # Reads: frames are reassembled across chunks before the schedule applies.
    stream = b"".join(frames)
    rec = Recorder(stream[:7])
    faulty = FaultyTransport(rec, read_faults={1: Fault.DROP})
    out = faulty.read(0)
    rec.incoming += stream[7:]
    out += faulty.read(0)
    assert [f.seq for f in FrameDecoder().feed(out)] == [0, 2, 3, 4]


# -- SerialTransport -------------------------------------------------------------------------

def test_serial_transport_missing_port_says_so_and_lists_ports():
    with pytest.raises(LinkError, match=r"serial port /dev/ttyNOPE7 does not exist: is the board plugged in"):
        SerialTransport("/dev/ttyNOPE7", 115200)


def test_serial_transport_permission_denied_names_dialout_and_udev(monkeypatch):
    import serial

    def refuse(*args, **kwargs):
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB1: [Errno 13] Permission denied")
    monkeypatch.setattr(serial, "Serial", refuse)
    with pytest.raises(LinkError, match=r"permission denied on serial port /dev/ttyUSB1: .*'dialout'.*udev rule"):
        SerialTransport("/dev/ttyUSB1", 3_000_000)


def test_serial_transport_on_a_pty_carries_every_byte_value_and_refuses_a_second_user():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        with SerialTransport(path, 3_000_000) as port:
            with pytest.raises(LinkError, match=f"serial port {path} is busy: another program has it open"):
                SerialTransport(path, 3_000_000)
            data = bytes(range(256)) * 4
            port.write(data)
            got = b""
            while len(got) < len(data):
                got += os.read(master, 4096)
            assert got == data
            os.write(master, data[::-1])
            back = b""
            deadline = time.monotonic() + 2
            while len(back) < len(data) and time.monotonic() < deadline:
                back += port.read(0.1)
            assert back == data[::-1]
            start = time.monotonic()
            assert port.read(0.1) == b""
            assert 0.08 <= time.monotonic() - start < 0.5
    finally:
        os.close(master)
        os.close(slave)


def test_client_over_a_pty_to_a_device_on_the_other_side():
    """The whole host stack on a real tty: SerialTransport, client, and a
    device that reads the pty master (the simulated board's shape, in Python)."""
    import threading
    master, slave = os.openpty()
    path = os.ttyname(slave)
    dev = FakeDevice(n=16, m=8)
    stop = threading.Event()

    def serve():
        import select
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.01)
            if ready:
                dev.write(os.read(master, 4096))
                out = dev.read(0)
                if out:
                    os.write(master, out)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with SerialTransport(path, 3_000_000) as port:
            client = client_for(dev, transport=port, timeout=1.0)
            stim = np.random.default_rng(4).random((100, 8)) < 0.5
            assert [list(r.spikes) for r in client.run(stim)] == expected_spikes(stim, 16, 8)
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)


def test_a_run_abandoned_by_its_reader_leaves_the_link_usable():
    dev = FakeDevice(n=16, m=8)
    client = client_for(dev)
    gen = client.run(np.ones((40, 8), bool), max_steps=40)
    assert [next(gen).step for _ in range(3)] == [0, 1, 2]
    gen.close()
    assert client.echo(b"next") == b"next"
    assert client.stats["stale_frames"] == 0  # the rest of the RUN was taken as the RUN's, not as noise
    assert [r.step for r in client.run(np.ones((2, 8), bool))] == [40, 41]


def test_serial_device_records_only_the_neurons_asked_for_on_the_device():
    """record_neurons goes to the device (SET_RECORD once, then RUNs with SUBSET): the step
    records carry the recorded neurons' spikes alone, fewer bytes, and the recording is the
    same as recording everything and keeping those columns; generated inputs go in RUN
    requests without input records."""
    import neurofabric as nf
    from neurofabric.contract.protocol import RUN_REQUEST_FIELDS
    from neurofabric.host.serial_device import SerialDevice
    net = nf.random_network(128, 8, seed=2)
    rates = np.full(8, 20000)
    results = {}
    for subset in (None, [1, 4, 9, 15]):
        dev = FakeDevice(n=128, m=8)
        device = SerialDevice(dev, timeout=0.05, checkpoint_steps=40)
        device.load(net)
        before = len(dev._out), dev.applied["SET_RECORD"]
        wire = []
        dev_send = dev._send

        def metered(command, seq, payload, dev_send=dev_send, wire=wire):
            if command == Command.STEP_RECORD:
                wire.append(len(payload))
            dev_send(command, seq, payload)
        dev._send = metered
        rec = device.run(None, steps=100, rates=rates, seed=7, record_neurons=subset, counts=False)
        again = device.run(None, steps=10, rates=rates, record_neurons=subset)
        results[subset is None] = (rec, again, sum(wire), dev)
        del before
    (full, full_again, full_bytes, full_dev), (part, part_again, part_bytes, part_dev) = results[True], results[False]
    assert part.neurons.tolist() == [1, 4, 9, 15]
    assert np.array_equal(part.spikes, full.spikes[:, [1, 4, 9, 15]]) and part.spikes.sum() > 20
    assert np.array_equal(part_again.spikes, full_again.spikes[:, [1, 4, 9, 15]])
    assert part_bytes < 0.6 * full_bytes
    assert part_dev.applied["SET_RECORD"] == 1 and part_dev.record == {1, 4, 9, 15}      # sent once
    assert full_dev.applied["SET_RECORD"] == 0
    runs = [p for p in part_dev.run_payloads if p[:2] != b"\0\0"]   # (not the question whether it has blocks)
    flags = [payload[2] for payload in runs]
    assert flags and all(f == RunFlags.SUBSET | RunFlags.GENERATED for f in flags)
    assert all(len(p) == fields_size(RUN_REQUEST_FIELDS) for p in runs)
    # Host inputs: records go with them, and no GENERATED flag.
    stim = np.zeros((5, 8), bool)
    stim[2, 3] = True
    part_dev.run_payloads.clear()
    device = SerialDevice(part_dev, timeout=0.05)
    device.load(net)
    device.run(stim, record_neurons=[1, 4, 9, 15])
    assert [p[2] for p in part_dev.run_payloads if p[:2] != b"\0\0"] == [RunFlags.SUBSET]


@pytest.mark.parametrize("rate, counters", [(0.0, True), (0.2, True), (0.2, False)])
def test_serial_device_counts_spikes_on_the_device_through_a_faulty_line(rate, counters):
    """counts=True: RUNs with NO_RECORDS, no step record on the line, the spike counters
    read before the run and after each span (a counter that wraps past 2**16 included), and
    the counts equal those of the spikes recorded step by step, with frames dropped,
    corrupted, cut and duplicated in both directions. A device without counters (BAD_ADDRESS
    for their table) gets RUNs with records and the host counts, to the same counts."""
    import neurofabric as nf
    from neurofabric.host.serial_device import SerialDevice
    net = nf.random_network(16, 8, seed=5, learn=0)
    rng = np.random.default_rng(5)
    stim = rng.random((95, 8)) < 0.3
    dev = FakeDevice(n=16, m=8, counters=counters)
    faulty = FaultyTransport(dev, rate=rate, seed=11,
                             kinds=(Fault.DROP, Fault.CORRUPT, Fault.TRUNCATE, Fault.DUPLICATE, Fault.NOISE))
    device = SerialDevice(faulty, timeout=0.03, retries=8, checkpoint_steps=40)
    device.load(net)
    if counters:
        dev.tables[table_key("spike_counts")][3] = 0xFFF0           # wraps during the run
    records = []
    dev_send = dev._send

    def metered(command, seq, payload):
        records.append(command)
        dev_send(command, seq, payload)
    dev._send = metered
    rec = device.run(stim, rates=np.full(8, 9000), seed=3, counts=True, record_neurons=[0, 3, 11])
    # Spans of 40, 40 and 15 steps; with records, spoilt ones run a span again.
    assert (Command.STEP_RECORD in records) != counters and (dev.applied["RUN"] == 3 if counters else
                                                             dev.applied["RUN"] >= 3)
    assert all(bool(p[2] & RunFlags.NO_RECORDS) == counters for p in dev.run_payloads)
    reference = FakeDevice(n=16, m=8)
    expected = SerialDevice(reference, timeout=0.05)
    expected.load(net)
    full = expected.run(stim, rates=np.full(8, 9000), seed=3)
    assert rec.spikes is None and rec.step_count == 95 and rec.neurons.tolist() == [0, 3, 11]
    assert rec.counts.tolist() == full.spikes[:, [0, 3, 11]].sum(axis=0).tolist() and rec.counts.min() > 10
    assert np.array_equal(rec.weights, net.weights)
    if rate:
        assert faulty.injected
    with pytest.raises(LinkError, match="no probes or inputs"):
        list(device.client.run(stim[:2], probe=True, records=False))


@pytest.mark.parametrize("rate", [0.0, 0.15])
def test_step_blocks_carry_the_same_recording_in_fewer_bytes_through_a_faulty_line(rate):
    """A device with step blocks gets RUNs with BLOCKS (several steps' bitmaps a frame) for a
    subset of neurons in few bytes and for a small core's every neuron; the recording is the
    one a device without blocks gives, in fewer bytes on the line, with frames dropped,
    corrupted, cut and duplicated both ways (a spoilt block is run again from a checkpoint)."""
    import neurofabric as nf
    from neurofabric.host.serial_device import SerialDevice
    net = nf.random_network(16, 8, seed=6, learn=0)
    stim = np.random.default_rng(6).random((150, 8)) < 0.3
    results = {}
    for blocks in (False, True):
        dev = FakeDevice(n=16, m=8, blocks=blocks)
        faulty = FaultyTransport(dev, rate=rate if blocks else 0.0, seed=12,
                                 kinds=(Fault.DROP, Fault.CORRUPT, Fault.TRUNCATE, Fault.DUPLICATE, Fault.NOISE))
        device = SerialDevice(faulty, timeout=0.03, retries=8, checkpoint_steps=40)
        device.load(net)
        sent = Counter()
        dev_send = dev._send

        def metered(command, seq, payload, dev_send=dev_send, sent=sent):
            sent[command] += len(encode_frame(command | REPLY_FLAG, seq, payload))
            dev_send(command, seq, payload)
        dev._send = metered
        everyone = device.run(stim, rates=np.full(8, 9000), seed=3)
        some = device.run(None, steps=130, rates=np.full(8, 9000), record_neurons=[2, 5, 11])
        results[blocks] = everyone, some, sent, dev, faulty
    (plain, plain_some, plain_sent, _, _), (blocked, blocked_some, sent, dev, faulty) = results[False], results[True]
    assert np.array_equal(blocked.spikes, plain.spikes) and plain.spikes.sum() > 100
    assert np.array_equal(blocked_some.spikes, plain_some.spikes) and plain_some.spikes.sum() > 50
    assert np.array_equal(blocked.weights, plain.weights)
    assert Command.STEP_RECORD not in sent and sent[Command.STEP_BLOCK] > 0
    flags = [p[2] for p in dev.run_payloads if p[:2] != b"\0\0"]
    assert flags and all(f & RunFlags.BLOCKS for f in flags)
    if rate:
        assert faulty.injected
    else:
        assert sent[Command.STEP_BLOCK] < 0.5 * plain_sent[Command.STEP_RECORD]


def test_blocks_only_where_they_pay_and_the_device_has_them():
    """The default: blocks for a step bitmap of at most BLOCK_BREAK_EVEN bytes, never with
    probes or inputs; blocks=True where the device has none, or with probes, is an error
    that says so; a device without blocks is asked once a session."""
    from neurofabric.host.link import BLOCK_BREAK_EVEN
    big = FakeDevice(n=8 * BLOCK_BREAK_EVEN + 8, m=8, blocks=True)
    client = client_for(big)
    stim = np.ones((3, 8), bool)
    for kwargs, want in ((dict(), False), (dict(probe=True), False), (dict(inputs=True), False)):
        big.run_payloads.clear()
        assert len(list(client.run(stim, **kwargs))) == 3
        assert [bool(p[2] & RunFlags.BLOCKS) for p in big.run_payloads if p[:2] != b"\0\0"] == [want], kwargs
    client.set_record([3, 8 * BLOCK_BREAK_EVEN - 1])       # a span of BLOCK_BREAK_EVEN bytes: blocks
    big.run_payloads.clear()
    records = list(client.run(stim, subset=True))
    assert [p[2] & RunFlags.BLOCKS for p in big.run_payloads if p[:2] != b"\0\0"] == [RunFlags.BLOCKS]
    assert [r.spikes for r in records] == [(3, 8 * BLOCK_BREAK_EVEN - 1)] * 3
    with pytest.raises(LinkError, match="blocks=True sends step records in blocks: not with probes"):
        list(client.run(stim, probe=True, blocks=True))
    plain = FakeDevice(n=16, m=8)
    client = client_for(plain)
    for _ in range(2):
        assert len(list(client.run(stim))) == 3
    assert sum(p[:2] == b"\0\0" for p in plain.run_payloads) == 1         # asked once
    with pytest.raises(LinkError, match="the device sends no step blocks"):
        list(client.run(stim, blocks=True))


def test_a_device_reset_mid_stream_is_an_error_that_says_so():
    """A device that resets during a run (its tables cleared, the step counter back at 0,
    the RUN unanswered) is not run again from a checkpoint as if it had only lost records:
    the step counter shows the reset, and the error says to load the network again."""
    import neurofabric as nf
    from neurofabric.host.serial_device import SerialDevice
    net = nf.random_network(16, 8, seed=7, learn=0)
    stim = np.random.default_rng(7).random((300, 8)) < 0.3
    dev = FakeDevice(n=16, m=8, reset_at=170)
    device = SerialDevice(dev, timeout=0.03, checkpoint_steps=100)
    device.load(net)
    with pytest.raises(LinkError, match="step counter is at .* where this session left it at 200: the device was "
                                        "reset .* load it again"):
        device.run(stim)
    assert dev.reset_at is None and dev.step < 170 and device.reruns == 1
