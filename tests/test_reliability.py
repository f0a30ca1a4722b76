"""Reliability of the link against the simulated board (the neurofabric top
under Verilator behind a pty): byte-level faults injected by a relay between
the host and the board, fuzzing of the gateware's receiver, and the board
vanishing in the middle of a run.

The board is the small one of tests/test_board.py (n = 16, m = 8, S/W/T =
16/8/8, 4 lanes), so its build is shared with those tests.
"""

import logging
import os
import random
import re
import select
import threading
import time
import tty

import numpy as np
import pytest

import neurofabric as nf
from neurofabric.host.errors import LinkError
from neurofabric.host.link import NACK_SETTLE_S, NOISY_ATTEMPTS, LinkClient
from neurofabric.host.transport import SerialTransport
from neurofabric.contract.protocol import (
    MAX_ENCODED_FRAME, MAX_FRAME, MAX_PAYLOAD, PROTOCOL_VERSION, REPLY_FLAG, Command, Status,
)
from neurofabric.host.framing import (
    FrameDecoder, FrameError, cobs_encode, crc16, decode_frame, encode_frame, frame_body,
)
from neurofabric.host.serial_device import SerialDevice
from neurofabric.sim.board import SimulatedBoard

# The board of tests/test_board.py (same build, found in build/board/) and its checks.
from neurofabric.host.device import GoldenDevice

from .test_board import assert_same, golden_run, small_board_config

pytestmark = pytest.mark.rtl

BAUD = 3_000_000
LINK_LOGGER = "neurofabric.host.link"
RECORD_CODES = (Command.STEP_RECORD, Command.PROBE_RECORD)


@pytest.fixture(scope="module")
def running_board():
    with SimulatedBoard(small_board_config()) as running:
        yield running


@pytest.fixture
def board(running_board):
    """The module's board, once it has worked off what an earlier test left in
    its input (a hopeless line leaves kilobytes of garbage queued in the pty,
    which the board answers with a stream of NACKs for a while)."""
    settle(running_board.path)
    return running_board


def settle(path, quiet=0.3, limit=60.0):
    with SerialTransport(path, BAUD) as port:
        got = read_until_quiet(port, quiet=quiet, limit=limit)
        assert not port.read(quiet), f"the board still talks after {limit} s ({len(got)} bytes)"


# -- the fault-injecting relay ---------------------------------------------------------

class FaultRelay:
    """A relay between a pty of its own (`path`, which the host opens like a
    serial port) and the board's pty, with two threads that copy bytes both
    ways and spoil them at the byte level: each byte, with probability `rate`
    (per direction, seeded), is bit-flipped, dropped, or preceded by 1..3
    garbage bytes (zeros included).

    With `spare_records`, the bytes the board sends are forwarded frame by
    frame and its STEP_RECORD / PROBE_RECORD frames pass untouched (every
    other frame is spoilt as above). `faults` counts the faults per
    direction ("up": host to board, "down": board to host).
    """

    KINDS = ("flip", "drop", "insert")

    def __init__(self, board_path, *, rate, seed=0, spare_records=False):
        self.rate = rate
        self.spare_records = spare_records
        self.rngs = {"up": random.Random(seed), "down": random.Random(seed + 1)}
        self.faults = {"up": 0, "down": 0}
        self.bytes = {"up": 0, "down": 0}
        self.errors = []
        self.board = SerialTransport(board_path, BAUD)
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._down_partial = bytearray()
        self._threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                         for f in (self._upstream, self._downstream)]
        for thread in self._threads:
            thread.start()

    def spoil(self, data, direction):
        rng, out = self.rngs[direction], bytearray()
        for byte in data:
            self.bytes[direction] += 1
            if self.rate and rng.random() < self.rate:
                self.faults[direction] += 1
                kind = rng.choice(self.KINDS)
                if kind == "flip":
                    out.append(byte ^ (1 << rng.randrange(8)))
                elif kind == "insert":
                    out += bytes(rng.choice((0, rng.randrange(256))) for _ in range(rng.randrange(1, 4)))
                    out.append(byte)
                # "drop": nothing
            else:
                out.append(byte)
        return bytes(out)

    def _guard(self, loop):
        try:
            loop()
        except Exception as exc:  # reported by close(), never a thread exception
            self.errors.append(exc)

    def _upstream(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: no one has the host side open right now
                time.sleep(0.01)
                continue
            if data:
                self.board.write(self.spoil(data, "up"))

    def _downstream(self):
        while not self._stop.is_set():
            data = self.board.read(0.02)
            if not data:
                continue
            if not self.spare_records:
                out = self.spoil(data, "down")
            else:
                out = bytearray()
                pieces = data.split(b"\x00")
                for index, piece in enumerate(pieces):
                    self._down_partial += piece
                    if index == len(pieces) - 1:
                        break  # no delimiter after it yet
                    body, self._down_partial = bytes(self._down_partial), bytearray()
                    if not body:
                        out += b"\x00"
                        continue
                    try:
                        spare = decode_frame(body).code in RECORD_CODES
                    except FrameError:
                        spare = False
                    out += (body if spare else self.spoil(body, "down")) + b"\x00"
            if out:
                os.write(self.master, out)

    def close(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.board.close()
        for fd in (self.master, self._slave):
            os.close(fd)
        assert not self.errors, f"relay failed: {self.errors!r}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def retry_records(caplog):
    return [r for r in caplog.records if r.name == LINK_LOGGER and "(retry " in r.getMessage()]


def learning_net_and_stimulus(seed, steps=300):
    net = nf.random_network(16, 8, seed=seed, learn=1)
    stim = np.random.default_rng(seed).random((steps, 8)) < 0.3
    return net, stim


# -- 1. a few faults per thousand bytes: retried, bit-exact ------------------------------

def run_through_relay(board, caplog, *, spare_records, seed):
    caplog.set_level(logging.DEBUG, logger=LINK_LOGGER)
    net, stim = learning_net_and_stimulus(seed)
    with FaultRelay(board.path, rate=1e-3, seed=seed, spare_records=spare_records) as relay:
        with SerialDevice.open(relay.path, BAUD, timeout=0.3, retries=8, max_steps=20) as dev:
            dev.load(net)
            rec = dev.run(stim, record=("v", "i"), snapshot_every=50)
            stats = dict(dev.client.stats)
    gold = golden_run(net, stim, record=("v", "i"), snapshot_every=50)
    assert gold.spikes.sum() > 0 and not np.array_equal(gold.weights, net.weights)
    assert_same(rec, gold, ("spikes", "v", "i", "weights", "weight_snapshots"))
    assert relay.faults["up"] > 0 and relay.faults["down"] > 0, relay.faults
    assert stats["retries"] > 0
    assert len(retry_records(caplog)) >= 1
    return relay, stats


def test_byte_faults_outside_step_records_are_retried_and_the_run_is_bit_exact(board, caplog):
    """One byte in a thousand spoilt both ways (flipped, dropped, garbage
    inserted), except inside STEP_RECORD / PROBE_RECORD frames: request
    retries alone carry the run."""
    relay, stats = run_through_relay(board, caplog, spare_records=True, seed=7)
    assert sum(relay.faults.values()) >= 3, relay.faults


@pytest.mark.parametrize("seed", [8, 21, 34])
def test_spoilt_step_records_are_recovered_from_checkpoints_and_the_run_is_bit_exact(board, caplog, seed):
    """One byte in a thousand spoilt both ways, records included (input records too:
    the stimulus generator runs and the inputs are recorded). The device keeps no
    record history, so `SerialDevice` re-runs a span whose records were spoilt
    from the checkpoint (state, the generator state g, and weights since the
    network learns) it read before the span; the result is bit-exact, the reruns
    are in the log, and a reset afterwards returns g to the seed (the restores
    wrote checkpoints' g to the seed register)."""
    caplog.set_level(logging.DEBUG)
    net, stim = learning_net_and_stimulus(seed)
    stim &= np.random.default_rng(seed).random(stim.shape) < 0.5
    rates = np.random.default_rng(seed).integers(0, 12000, net.m)
    options = dict(record=("v", "i", "inputs"), snapshot_every=50, rates=rates, seed=seed * 1000003)
    with FaultRelay(board.path, rate=1e-3, seed=seed) as relay:
        with SerialDevice.open(relay.path, BAUD, timeout=0.3, retries=8, max_steps=20) as dev:
            dev.load(net)
            rec = dev.run(stim, **options)
            reruns, stats = dev.reruns, dict(dev.client.stats)
            relay.rate = 0                         # no faults from here on
            dev.reset_state()
            again = dev.run(stim[:40], record=("inputs",), rates=rates)
    gold = GoldenDevice()
    gold.load(net)
    assert_same(rec, gold.run(stim, **options), ("spikes", "v", "i", "inputs", "weights", "weight_snapshots"))
    gold.reset_state()
    assert_same(again, gold.run(stim[:40], record=("inputs",), rates=rates), ("spikes", "inputs", "weights"))
    assert relay.faults["down"] > 0 and relay.faults["up"] > 0, relay.faults
    assert reruns > 0 and stats["retries"] > 0, (reruns, stats)
    logged = [r.getMessage() for r in caplog.records if "running the span again from its checkpoint" in r.getMessage()]
    assert len(logged) == reruns


def test_without_recovery_a_spoilt_step_record_is_a_link_error_never_wrong_data(board):
    """With recovery off, a spoilt record fails the run with a LinkError naming
    the RUN and the step (never a recording with a hole), and the board stays
    usable."""
    net, stim = learning_net_and_stimulus(8)
    with FaultRelay(board.path, rate=1e-3, seed=8) as relay:
        with SerialDevice.open(relay.path, BAUD, timeout=0.3, retries=8, max_steps=20, recover=False) as dev:
            dev.load(net)
            with pytest.raises(LinkError, match=r"RUN of \d+ steps from step \d+: .*(step|probe) record") as info:
                result = dev.run(stim, record=("v", "i"), snapshot_every=50)
                pytest.fail(f"returned {result!r} although records were spoilt")
            assert relay.faults["down"] > 0
            relay.rate = 0.0
            # The link carries on: reload and run again over the now clean relay.
            dev.load(net)
            rec = dev.run(stim[:100], record=("v", "i"))
    assert "step" in str(info.value)
    assert_same(rec, golden_run(net, stim[:100], record=("v", "i")))


# -- 2. a hopeless line: LinkError in bounded time, never data ---------------------------

def test_a_hopeless_line_fails_with_link_error_in_bounded_time(board):
    timeout, retries = 0.3, 3
    net, stim = learning_net_and_stimulus(9, steps=200)
    with FaultRelay(board.path, rate=0.0, seed=9) as relay:
        with SerialDevice.open(relay.path, BAUD, timeout=timeout, retries=retries) as dev:
            dev.load(net)
            # One request: at most (retries + 1) attempts that wait their time-out,
            # and NOISY_ATTEMPTS times as many in all that were answered by a NACK
            # or a spoilt reply (each waiting at most the NACK window), every
            # one plus the longest frame's time on the wire; plus slack for a busy machine.
            wire = 10 * MAX_ENCODED_FRAME / BAUD
            bound = (retries + 1) * (timeout + wire) + NOISY_ATTEMPTS * (retries + 1) * (NACK_SETTLE_S + wire) + 2.0
            relay.rate = 0.2
            for call in (lambda: dev.run(stim, record=("v", "i")), dev.read_weights, dev.status):
                start = time.monotonic()
                with pytest.raises(LinkError, match=r"failed after (\d+) attempts \((\d+) without an answer\)") \
                        as info:
                    result = call()
                    pytest.fail(f"returned {result!r} over a hopeless line")
                elapsed = time.monotonic() - start
                assert elapsed < bound, f"{elapsed:.2f} s > {bound:.2f} s: {info.value}"
                found = re.search(r"after (\d+) attempts \((\d+) without", str(info.value))
                attempts, silent = map(int, found.groups())
                assert silent == retries + 1 or attempts == NOISY_ATTEMPTS * (retries + 1), str(info.value)
    assert relay.faults["up"] + relay.faults["down"] > 10


# -- 3. fuzzing the gateware's receiver ------------------------------------------------

def read_until_quiet(port, quiet=0.04, limit=1.0):
    got, end = bytearray(), time.monotonic() + limit
    while time.monotonic() < end:
        data = port.read(quiet)
        if not data:
            break
        got += data
    return bytes(got)


def fuzz_cases(rng, count):
    """(kind, bytes to send, (command, seq) of a well-formed request or None)."""
    # Not NACK (0x7F) nor 0xFF: the reply to those would carry the code of the device's own NACKs.
    commands = [int(c) for c in Command if c != Command.NACK] + [0x00, 0x05, 0x30, 0x7E, 0x80, 0x81, 0xA0, 0xFE]
    for index in range(count):
        kind = ("random", "valid", "bad_crc", "truncated", "too_long", "bad_length")[index % 6]
        command, seq = rng.choice(commands), rng.randrange(256)
        if command in (Command.RUN, Command.RESET_STATE) or command & 0x7F in (Command.RUN,):
            command = Command.ECHO  # a random RUN could only be refused; keep the cases fast and simple
        payload = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 3, 7, 8, 20, 200))))
        if kind == "random":
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
            yield kind, data + b"\x00", None
        elif kind == "valid":
            yield kind, encode_frame(command, seq, payload), (command, seq)
        elif kind == "bad_crc":
            body = bytearray(frame_body(command, seq, payload))
            body[-1 - rng.randrange(2)] ^= 1 << rng.randrange(8)
            yield kind, b"\x00" + cobs_encode(bytes(body)) + b"\x00", None
        elif kind == "truncated":
            encoded = cobs_encode(frame_body(command, seq, payload))
            yield kind, b"\x00" + encoded[:rng.randrange(1, max(2, len(encoded) - 1))] + b"\x00", None
        elif kind == "too_long":
            body = bytes(rng.randrange(1, 256) for _ in range(MAX_FRAME + rng.randrange(1, 300)))
            yield kind, b"\x00" + cobs_encode(body) + b"\x00", None
        else:  # a length field that does not match the payload, with a good CRC
            body = bytearray(frame_body(command, seq, payload)[:-2])
            body[2] = (body[2] + rng.randrange(1, 250)) & 0xFF
            yield kind, b"\x00" + cobs_encode(bytes(body) + crc16(bytes(body)).to_bytes(2, "little")) + b"\x00", None


def test_fuzzing_the_receiver_gets_well_formed_replies_and_leaves_the_board_working(board):
    rng = random.Random(1234)
    replies, bad_replies, nacks, statuses = [], [], [], set()
    unanswered = []
    with SerialTransport(board.path, BAUD) as port:
        port.discard_input()
        before = LinkClient(port, timeout=1.0).status()
        decoder = FrameDecoder()
        for kind, data, request in fuzz_cases(rng, 300):
            port.write(data)
            got = decoder.feed(read_until_quiet(port))
            if request is not None:  # on a loaded machine the reply may come late: wait for it
                end = time.monotonic() + 2.0
                while time.monotonic() < end and not any(
                        not isinstance(f, FrameError) and f.command == request[0] | REPLY_FLAG
                        and f.seq == request[1] for f in got):
                    got += decoder.feed(port.read(0.05))
            for item in got:
                if isinstance(item, FrameError):
                    bad_replies.append((kind, item))
                    continue
                replies.append(item)
                if item.code == Command.NACK:
                    nacks.append(item)
                else:
                    statuses.add((kind, item.status))
            if request is not None:
                command, seq = request
                mine = [f for f in got if not isinstance(f, FrameError) and f.command == command | REPLY_FLAG
                        and f.seq == seq]
                if len(mine) != 1:
                    unanswered.append((kind, hex(command), seq, got))
        port.write(b"\x00\x00")
        tail = decoder.feed(read_until_quiet(port, quiet=0.2))
        assert not [t for t in tail if isinstance(t, FrameError)]

        # No reply frame is ever malformed, and every one is a reply with a known status.
        assert not bad_replies, bad_replies[:5]
        for frame in replies:
            assert frame.is_reply, frame
            assert isinstance(frame.status, Status), frame
            if frame.status != Status.OK:
                assert len(frame.payload) == 1, frame
        for frame in nacks:
            assert frame.seq == 0 and len(frame.payload) == 1, frame
        # Every well-formed request got exactly one reply of its own.
        assert not unanswered, unanswered[:5]
        # Malformed frames were refused with NACKs saying why.
        nack_statuses = {f.status for f in nacks}
        assert {Status.BAD_CRC, Status.BAD_LENGTH} <= nack_statuses, nack_statuses
        assert ("valid", Status.UNKNOWN_COMMAND) in statuses
        assert ("valid", Status.BAD_LENGTH) in statuses or ("valid", Status.BAD_ADDRESS) in statuses

        # The board still works: HELLO answers correctly, its counters saw the faults.
        client = LinkClient(port, timeout=1.0, retries=2)
        hello = client.hello()
        assert (hello.n, hello.m, hello.state_bits, hello.weight_bits, hello.trace_bits, hello.lanes) == \
            (16, 8, 16, 8, 8, 4)
        assert hello.protocol_version == PROTOCOL_VERSION and hello.max_payload == MAX_PAYLOAD
        after = client.status()
        assert after["crc_errors"] > before["crc_errors"]
        assert after["format_errors"] > before["format_errors"]
        assert after["running"] == 0 and after["lost_records"] == 0

    net = nf.random_network(10, 6, seed=1235, learn=1)
    stim = np.random.default_rng(1235).random((80, 6)) < 0.35
    with SerialDevice.open(board.path, BAUD, timeout=1.0) as dev:
        dev.load(net)
        rec = dev.run(stim, record=("v", "i"))
        assert dev.client.stats["retries"] == 0
    assert_same(rec, golden_run(net, stim, record=("v", "i")))


# -- 4. the port vanishing mid-run -----------------------------------------------------

def test_the_board_vanishing_mid_run_is_a_clear_link_error_without_a_hang():
    net, _ = learning_net_and_stimulus(10)
    stim = np.random.default_rng(10).random((200_000, 8)) < 0.3  # far longer than the test waits
    timeout, retries = 0.5, 2
    with SimulatedBoard(small_board_config()) as doomed:
        path = doomed.path
        with SerialDevice.open(path, BAUD, timeout=timeout, retries=retries) as dev:
            dev.load(net)
            killer = threading.Timer(1.0, doomed.process.kill)
            killer.start()
            start = time.monotonic()
            try:
                with pytest.raises(LinkError) as info:
                    result = dev.run(stim, record=("v", "i"))
                    pytest.fail(f"returned {result!r} from a board that was killed")
                elapsed = time.monotonic() - start
            finally:
                killer.cancel()
                killer.join()
    message = str(info.value)
    assert path in message, message
    assert any(word in message for word in ("device gone", "closed", "stopped answering", "no reply")), message
    # Killed after 1 s; the host must notice within its retry budget (plus slack), not hang.
    bound = 1.0 + (retries + 1) * (timeout + 10 * MAX_ENCODED_FRAME / BAUD) + 3.0
    assert elapsed < bound, f"{elapsed:.2f} s > {bound:.2f} s: {message}"
    assert elapsed > 0.9, f"failed before the board was killed: {message}"
