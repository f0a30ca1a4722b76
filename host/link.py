"""The host side of the link: the protocol client over a byte transport.

Three layers, as in Glasgow:

- `Transport` (host/transport.py): a byte pipe with a read time-out.
  `SerialTransport` is a serial port (a USB-UART bridge of a board, or the
  pseudo-terminal of the simulated board); `FaultyTransport` (host/faults.py)
  wraps another transport and spoils frames on a schedule, for tests.
- `LinkClient`: one method per command of docs/protocol.md. It numbers requests
  (+1 mod 256), waits for the matching reply, resends the same frame with the
  same seq on a time-out, a bad frame or a NACK (the device answers a retry
  without applying it twice), and gives up after `retries` resends without an
  answer (or `NOISY_ATTEMPTS` times as many on a line that answers with
  NACKs) with a `LinkError` that names the command and what went wrong. Memory reads and writes are split
  into frames of at most the device's `max_payload`; `run()` streams a stimulus
  in bounded RUN requests and yields the step records as they arrive (with the
  probes and the step's inputs U when asked for), checking the device's running
  step counter so that a lost record is an error.
- `SerialDevice` (host/serial_device.py) is the `Device` on top of the client.

Logging: one line per frame at DEBUG, byte dumps at `TRACE` (5).
"""

import logging
import time
from dataclasses import dataclass

from .errors import LinkError
from .transport import TRACE, Transport, hex_dump
from neurofabric.contract.device import SPIKE_COUNT_BITS, CoreShape
from neurofabric.contract.protocol import (
    CRC_SIZE, HEADER_SIZE, HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROTOCOL_VERSION,
    RUN_REPLY_FIELDS, SPIKE_ADDRESS_BYTES, SPIKE_RECORD_FIELDS, STATUS_REPLY_FIELDS, Command, Family, RunFlags,
    Status, fields_size, pack_fields, table_info, table_key, unpack_fields,
)
from .framing import Frame, FrameDecoder, FrameError, encode_frame
from .memory_map import bytes_to_words, words_to_bytes
from .records import (
    block_span, decode_probe_record, decode_spikes, decode_step_block, encode_bitmap, encode_run_request,
    run_request_size,
)

__all__ = ["Hello", "StepRecord", "LinkClient", "RefusedError", "NOISY_ATTEMPTS", "NACK_SETTLE_S", "BLOCK_BREAK_EVEN",
           "DEFAULT_MAX_STEPS"]

logger = logging.getLogger(__name__)


_MEMORY_REQUEST_SIZE = fields_size(MEMORY_REQUEST_FIELDS)
_COUNTS = table_key("spike_counts")    # (family, table id) of the core's spike counters
_STEP_MASK = 0xFFFF_FFFF  # the step counter is a u32
#: The frames a RUN sends before its reply.
_RECORD_CODES = (Command.STEP_RECORD, Command.PROBE_RECORD, Command.INPUT_RECORD, Command.STEP_BLOCK)
#: Most steps in one RUN request (`run`'s `max_steps`): a request of host inputs also ends at
#: `MAX_PAYLOAD` (about 145 steps of few inputs); one of generated inputs is 3 bytes whatever
#: its steps, so more steps a request save round trips (each request waits for its reply).
DEFAULT_MAX_STEPS = 1024
#: Bitmap bytes per step up to which a STEP_BLOCK never costs more than a STEP_RECORD per step:
#: the least a STEP_RECORD takes on the wire (delimiter, COBS code, header, CRC, status, the
#: record's fields and an empty address list).
BLOCK_BREAK_EVEN = 2 + HEADER_SIZE + CRC_SIZE + 1 + fields_size(SPIKE_RECORD_FIELDS) + SPIKE_ADDRESS_BYTES


# -- the protocol client --------------------------------------------------------

@dataclass(frozen=True)
class Hello:
    """The HELLO reply: what the device is (`HELLO_REPLY_FIELDS`)."""

    protocol_version: int
    core_model_version: int
    n: int
    m: int
    state_bits: int
    weight_bits: int
    trace_bits: int
    lanes: int
    clk_hz: int
    baud: int
    max_payload: int
    build_id: int

    @property
    def shape(self):
        """The core's sizes, as the protocol's `CoreShape`."""
        return CoreShape.from_hello(self)


@dataclass(frozen=True)
class StepRecord:
    """One step of a run as the device reported it.

    `step` is the device's running step counter, `spikes` the ascending
    indices of the neurons that spiked; `v` and `i` (tuples of the probed
    neurons' values, neuron 0 first) when the run was probed, else None;
    `inputs` the ascending indices of the step's input set U (the host's
    inputs and the generator's) when the run asked for them, else None.
    `index` is the step's position in the stimulus given to `LinkClient.run`.
    """

    step: int
    spikes: tuple
    v: tuple = None
    i: tuple = None
    index: int = None
    inputs: tuple = None


#: A request whose resends are answered with NACKs or spoilt replies (the
#: device is there, the line is noisy) may be sent this many times
#: (`retries` + 1) in all; one that gets no answer `retries` + 1 times fails
#: sooner.
NOISY_ATTEMPTS = 4

#: Seconds after a send (beyond the frame's time on the wire) in which NACKs
#: are taken together: they lead to one resend at the end of that window.
NACK_SETTLE_S = 0.02


class _Exchange:
    """Bookkeeping of one request and its attempts (for messages)."""

    def __init__(self, command, seq):
        self.command, self.seq = command, seq
        self.problems = []

    def describe(self):
        seen = {}
        for problem in self.problems:
            seen[problem] = seen.get(problem, 0) + 1
        return "; ".join(f"{p}" + (f" (x{k})" if k > 1 else "") for p, k in seen.items())


class LinkClient:
    """The protocol of docs/protocol.md over a `Transport`.

    `timeout` is how long a request waits for its reply (for RUN: how long the
    line may stay silent), `retries` how many times a request is resent after
    getting no answer before `LinkError`; resends after a NACK or a spoilt
    reply (the device is there, the line is noisy) are allowed
    `NOISY_ATTEMPTS` times as often. Call `hello()` first: it starts the session and tells the
    client the device's sizes (and so every table's word width) and
    `max_payload`.
    """

    def __init__(self, transport: Transport, *, timeout=1.0, retries=4):
        self.transport = transport
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.device = None          # the Hello after hello()
        self.max_payload = MAX_PAYLOAD
        self._seq = 0
        self._decoder = FrameDecoder()
        self._pending = []          # decoded frames not handled yet
        self._next_step = None      # the running step counter the next record must carry
        self._abandoned_run = None  # (seq, timeout) of a RUN whose reader stopped early
        self._blocks = None         # whether the device sends STEP_BLOCKs (None: not asked yet)
        self._record_span = None    # bitmap bytes of a SUBSET step in a block (the mask's, up to its last neuron)
        self.stats = {"requests": 0, "retries": 0, "bad_frames": 0, "stale_frames": 0, "nacks": 0,
                      "bytes_out": 0, "bytes_in": 0}

    # -- the exchange ---------------------------------------------------------
    def _new_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _frames(self, timeout):
        """Frames (or FrameErrors) that arrive within `timeout` seconds; [] when none."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        data = self.transport.read(timeout)
        if not data:
            return []
        self.stats["bytes_in"] += len(data)
        if logger.isEnabledFor(TRACE):
            logger.log(TRACE, "<< %s", hex_dump(data))
        return self._decoder.feed(data)

    def _send(self, frame_bytes, name, seq, length, attempt):
        if attempt:
            self.stats["retries"] += 1
        logger.debug("-> %s seq %d, %d payload bytes%s", name, seq, length, f" (retry {attempt})" if attempt else "")
        if logger.isEnabledFor(TRACE):
            logger.log(TRACE, ">> %s", hex_dump(frame_bytes))
        self.stats["bytes_out"] += len(frame_bytes)
        self.transport.write(frame_bytes)

    def _exchange(self, command, payload=b"", *, run=None, timeout=None):
        """Send a request and return its OK reply payload (after the status byte).

        A generator: for RUN (`run` a `_Run`) it yields each `StepRecord` as it
        arrives; other requests yield nothing (use `_request`).
        """
        command = Command(command)
        if self._abandoned_run is not None:
            self._finish_abandoned_run()
        seq = self._new_seq()
        frame = encode_frame(command, seq, payload)
        xchg = _Exchange(command, seq)
        # The time-out covers the host's silence budget plus the frame's time on the wire.
        timeout = (self.timeout if timeout is None else timeout) + self._wire_s(len(frame))
        self.stats["requests"] += 1
        accepted = False  # RUN: a step record shows the device took the request
        attempt = 0
        # NACKs that arrive within `settle` of a send may be about an earlier
        # frame (a burst of garbage gives several): they lead to one resend at
        # the end of that window, not one each.
        settle = self._wire_s(len(frame)) + NACK_SETTLE_S
        nacked = None
        silent = 0  # attempts that got no answer at all (a NACK or a spoilt reply shows the device is there)
        self._send(frame, command.name, seq, len(payload), attempt)
        sent = time.monotonic()
        deadline = sent + timeout
        while True:
            resend = None
            now = time.monotonic()
            if now >= deadline:
                resend = nacked or f"no reply within {timeout:.3g} s"
                silent += nacked is None
                items = []
            else:
                items = self._frames(deadline - now)
            while items:
                item = items.pop(0)
                if resend is not None:
                    self._pending.append(item)  # handled after the resend
                    continue
                if isinstance(item, FrameError):
                    self.stats["bad_frames"] += 1
                    logger.debug("<- bad frame: %s", item)
                    if command == Command.RUN:
                        # Perhaps one of our step records (the record check will
                        # say); if the device did not get the RUN, it NACKs it or
                        # stays silent until the time-out.
                        xchg.problems.append(str(item))
                    else:
                        resend = str(item)
                    continue
                verdict = self._classify(item, command, seq)
                if verdict == "nack":
                    self.stats["nacks"] += 1
                    status = item.status
                    logger.debug("<- NACK %s", getattr(status, "name", status))
                    if not accepted:
                        reason = f"NACK {getattr(status, 'name', status)}"
                        if time.monotonic() - sent >= settle:
                            resend = reason
                        elif nacked is None:
                            nacked = reason
                            deadline = min(deadline, sent + settle)
                elif verdict == "record":
                    accepted = True
                    nacked = None
                    deadline = time.monotonic() + timeout  # the device is alive and running
                    logger.debug("<- %s seq %d, %d bytes", item.code.name, seq, len(item.payload))
                    try:
                        records = self._decode_record(item, run)
                    except LinkError as exc:
                        run.fail(str(exc))
                        continue
                    for record in records:
                        try:
                            yield record
                        except GeneratorExit:
                            # The caller stopped reading: the device still runs the
                            # request; the next request waits for its end first.
                            self._abandoned_run = (seq, timeout)
                            self._next_step = None
                            raise
                elif verdict == "reply":
                    status = item.status
                    logger.debug("<- %s seq %d, status %s, %d bytes", command.name, seq,
                                 getattr(status, "name", status), len(item.payload))
                    if status == Status.BUSY:
                        # A RUN still runs (ours or an earlier one): wait a little, then ask again.
                        xchg.problems.append("device busy")
                        deadline = min(deadline, time.monotonic() + timeout / 4)
                        continue
                    self._pending.extend(items)  # whatever came after the reply
                    if status == Status.OK:
                        return item.payload[1:]
                    raise RefusedError(self._refusal(command, status), status)
                else:
                    self.stats["stale_frames"] += 1
                    logger.debug("<- stale frame %s seq %d ignored (waiting for %s seq %d)",
                                 getattr(item.code, "name", item.code), item.seq, command.name, seq)
            if resend is None:
                continue
            xchg.problems.append(resend)
            if silent > self.retries or attempt >= NOISY_ATTEMPTS * (self.retries + 1) - 1:
                raise LinkError(f"{command.name} (seq {seq}) failed after {attempt + 1} attempts "
                                f"({silent} without an answer) on {self.transport.name}: {xchg.describe()}")
            attempt += 1
            nacked = None
            self._send(frame, command.name, seq, len(payload), attempt)
            sent = time.monotonic()
            deadline = sent + timeout

    def _finish_abandoned_run(self):
        """Wait (while the line is not silent for a time-out) for the reply of a
        RUN whose records nobody read any more, dropping its records."""
        seq, timeout = self._abandoned_run
        self._abandoned_run = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self._frames(deadline - time.monotonic()):
                if isinstance(item, FrameError):
                    continue
                if item.is_reply and item.seq == seq and item.code in (Command.RUN, *_RECORD_CODES):
                    deadline = time.monotonic() + timeout
                    if item.code == Command.RUN and item.status != Status.BUSY:
                        logger.debug("<- RUN seq %d ended (its records were not read)", seq)
                        return
        logger.debug("no end of the abandoned RUN seq %d within %.3g s", seq, timeout)

    def _wire_s(self, nbytes):
        """Seconds `nbytes` take on the wire at the device's baud rate (10 bits a byte)."""
        return 10.0 * nbytes / self.device.baud if self.device is not None and self.device.baud else 0.0

    def _request(self, command, payload=b"", timeout=None):
        """`_exchange` for requests without step records: returns the reply payload."""
        gen = self._exchange(command, payload, timeout=timeout)
        try:
            while True:
                next(gen)
        except StopIteration as done:
            return done.value

    @staticmethod
    def _classify(frame: Frame, command, seq):
        if not frame.is_reply:
            return "stale"  # the host's own frame echoed back: not ours to answer
        code = frame.code
        if code == Command.NACK:
            return "nack"
        if frame.seq != seq:
            return "stale"
        if code in _RECORD_CODES and command == Command.RUN:
            return "record"
        if code == command:
            return "reply"
        return "stale"

    @staticmethod
    def _refusal(command, status):
        meaning = {
            Status.UNKNOWN_COMMAND: "the device does not know this command",
            Status.BAD_LENGTH: "the payload size does not fit the command",
            Status.BAD_ADDRESS: "table or address range outside the device's memory",
            Status.OVERFLOW: "the answer would not fit one frame",
            Status.BAD_VALUE: "a field holds a value the device does not accept",
        }.get(status, "")
        name = getattr(status, "name", f"0x{status:02X}" if isinstance(status, int) else status)
        return f"{command.name} refused by the device: {name}" + (f" ({meaning})" if meaning else "")

    # -- simple commands ------------------------------------------------------
    def hello(self):
        """Start a session: returns the device's `Hello` and remembers it."""
        payload = self._request(Command.HELLO)
        values = unpack_fields(HELLO_REPLY_FIELDS, payload)
        hello = Hello(**values)
        if hello.protocol_version != PROTOCOL_VERSION:
            raise LinkError(f"the device speaks protocol version {hello.protocol_version}, this host "
                            f"version {PROTOCOL_VERSION}: update the host software or the bitstream")
        self.device = hello
        self.max_payload = min(MAX_PAYLOAD, hello.max_payload)
        self._next_step = None
        self._blocks = None
        self._record_span = block_span(hello.n)     # every neuron until a SET_RECORD
        logger.info("device: %s", ", ".join(f"{k} {v}" for k, v in values.items()))
        return hello

    def echo(self, data=b""):
        """Send bytes and return what the device sends back (for link tests)."""
        return self._request(Command.ECHO, bytes(data))

    def status(self):
        """The STATUS reply as a dict (`STATUS_REPLY_FIELDS`)."""
        values = unpack_fields(STATUS_REPLY_FIELDS, self._request(Command.STATUS))
        if not values["running"]:
            self._next_step = values["step"]
        return values

    def check_step_counter(self):
        """Read STATUS and raise `LinkError` when the device's step counter is not where
        this session's runs left it: the device was reset (a power glitch, a new
        bitstream, another program) and what it held (the network) may be gone."""
        due = self._next_step
        values = self.status()
        if due is not None and not values["running"] and values["step"] != due:
            raise LinkError(f"the device's step counter is at {values['step']} where this session left it at "
                            f"{due}: the device was reset (or used by another program) during the run, and the "
                            "network it held may be gone; load it again")
        return values

    def reset_state(self):
        """Clear the neuron state, traces, spike history and the step counter."""
        self._request(Command.RESET_STATE)
        self._next_step = 0

    # -- memories -------------------------------------------------------------
    def _table(self, family, table):
        if self.device is None:
            raise LinkError(f"{Family(family).name} table {table}: no session (call hello() first)")
        return table_info(family, table, self.device.shape)

    def write_table(self, family, table, address, words, progress=None):
        """Write `words` (ints of the table's word width) from `address` on in
        table `table` of `family` (a `Family`), in as many frames as it takes;
        `progress(done, total)` after each frame."""
        info = self._table(family, table)
        words = [int(w) for w in words]
        end = address + len(words)
        if address < 0 or end > info.depth:
            raise LinkError(f"{info.write_command.name} {info.name}: addresses {address} .. {end - 1} outside "
                            f"0 .. {info.depth - 1}")
        per_frame = max(1, (self.max_payload - _MEMORY_REQUEST_SIZE) // info.word_bytes)
        for start in range(0, len(words), per_frame):
            chunk = words[start:start + per_frame]
            try:
                data = words_to_bytes(chunk, info.word_bits)
            except LinkError as exc:
                raise LinkError(f"{info.write_command.name} {info.name} from address {address + start}: {exc}") \
                    from None
            self._request(info.write_command, pack_fields(MEMORY_REQUEST_FIELDS, table=table,
                                                          address=address + start, count=len(chunk)) + data)
            if progress is not None:
                progress(start + len(chunk), len(words))

    def read_table(self, family, table, address, count, progress=None):
        """Read `count` words from `address` on in table `table` of `family`; a list of ints."""
        info = self._table(family, table)
        if address < 0 or address + count > info.depth:
            raise LinkError(f"{info.read_command.name} {info.name}: addresses {address} .. {address + count - 1} "
                            f"outside 0 .. {info.depth - 1}")
        per_frame = max(1, (self.max_payload - 1) // info.word_bytes)  # the reply: status + words
        out = []
        for start in range(0, count, per_frame):
            k = min(per_frame, count - start)
            data = self._request(info.read_command, pack_fields(MEMORY_REQUEST_FIELDS, table=table,
                                                                address=address + start, count=k))
            if len(data) != k * info.word_bytes:
                raise LinkError(f"{info.read_command.name} {info.name} at {address + start}: {len(data)} bytes "
                                f"for {k} words of {info.word_bytes} bytes")
            out += bytes_to_words(data, info.word_bits)
            if progress is not None:
                progress(start + k, count)
        return out

    def write_globals(self, address, words):
        """WRITE_GLOBALS: registers from `address` on (`protocol.GLOBAL_REGISTERS` order)."""
        self.write_table(Family.GLOBALS, 0, address, words)

    def read_globals(self, address, count):
        """READ_GLOBALS: `count` registers from `address` on."""
        return self.read_table(Family.GLOBALS, 0, address, count)

    def write_params(self, table, address, words, progress=None):
        """WRITE_PARAMS: table 0 neuron parameters, 1 pre mask, 2 post mask."""
        self.write_table(Family.PARAMS, table, address, words, progress)

    def read_params(self, table, address, count, progress=None):
        """READ_PARAMS: table 0 neuron parameters, 1 pre mask, 2 post mask."""
        return self.read_table(Family.PARAMS, table, address, count, progress)

    def write_weights(self, address, words, progress=None):
        """WRITE_WEIGHTS: weight words (`lanes` weights each, row-major by source)."""
        self.write_table(Family.WEIGHTS, 0, address, words, progress)

    def read_weights(self, address, count, progress=None):
        """READ_WEIGHTS: weight words."""
        return self.read_table(Family.WEIGHTS, 0, address, count, progress)

    def write_state(self, table, address, words):
        """WRITE_STATE: table 0 neuron state (v, i, r, s), 1 pre traces, 2 post traces."""
        self.write_table(Family.STATE, table, address, words)

    def read_state(self, table, address, count):
        """READ_STATE: table 0 neuron state (v, i, r, s), 1 pre traces, 2 post traces."""
        return self.read_table(Family.STATE, table, address, count)

    # -- runs -----------------------------------------------------------------
    def set_record(self, neurons):
        """SET_RECORD: the neurons (numbers below the device's n) whose spikes the step
        records of a `run(..., subset=True)` carry; the others cost no bytes."""
        if self.device is None:
            raise LinkError("set_record: no session (call hello() first)")
        n = self.device.n
        neurons = [int(k) for k in neurons]
        bad = next((k for k in neurons if not 0 <= k < n), None)
        if bad is not None:
            raise LinkError(f"set_record: neuron {bad} is out of range: the device has {n} neurons")
        self._request(Command.SET_RECORD, encode_bitmap(neurons, n))
        self._record_span = block_span(n, neurons)

    def has_blocks(self):
        """Whether the device sends a RUN's step records in blocks (`RunFlags.BLOCKS`):
        asked once a session, with a RUN of no steps (a device built without them
        refuses the flag, BAD_VALUE)."""
        if self.device is None:
            raise LinkError("has_blocks: no session (call hello() first)")
        if self._blocks is None:
            try:
                self._request(Command.RUN, encode_run_request([], self.device.m, RunFlags.GENERATED | RunFlags.BLOCKS))
                self._blocks = True
            except RefusedError as exc:
                if exc.status != Status.BAD_VALUE:
                    raise
                self._blocks = False
        return self._blocks

    def run(self, stimulus, *, probe=False, probe_neurons=None, inputs=False, max_steps=DEFAULT_MAX_STEPS,
            lenient=False, subset=False, records=True, blocks=None):
        """Run the steps of `stimulus` (a sequence of per-step input index
        lists, or bool rows of m) and yield a `StepRecord` per step as it
        arrives.

        With `probe`, each record also holds v and i of neurons
        0 .. `probe_neurons`-1 (the device's n_used; default its n). With
        `inputs`, each also holds the step's input set U (`RunFlags.INPUTS`:
        the host's inputs and the stimulus generator's). The
        stimulus goes out in RUN requests of at most `max_steps` steps and one
        frame each. Records must carry consecutive values of the device's step
        counter; a gap, or a step count that does not match, raises
        `LinkError` once the RUN has ended (so the link stays in step).

        With `lenient`, a record lost on the line (a spoilt frame, a gap) is
        not an error: the records that arrived whole are yielded (each knows
        its `index`) and the caller sees which are missing. `SerialDevice`
        uses this to re-run a span of steps from a checkpoint.

        With `subset`, the step records carry the spikes of the neurons of the
        last `set_record` alone (`RunFlags.SUBSET`). A request whose steps have
        no host inputs goes without input records (`RunFlags.GENERATED`), so a
        run of generated inputs sends no bytes per step.

        With `records=False` (not with `probe` or `inputs`) the device sends no
        records at all (`RunFlags.NO_RECORDS`): it only counts each neuron's spikes
        in its `spike_counts` table (`read_state(3, ...)`), and this yields nothing.

        `blocks`: whether the step records come as STEP_BLOCKs (`RunFlags.BLOCKS`,
        several steps' bitmaps in one frame; not with `probe` or `inputs`). By default
        they do where the device has them and a step's bitmap is at most
        `BLOCK_BREAK_EVEN` bytes (every neuron's: ceil(n / 8); with `subset`, up to the
        highest recorded neuron's byte), so that a block never costs more per step
        than a STEP_RECORD.
        """
        if self.device is None:
            raise LinkError("run: no session (call hello() first)")
        m = self.device.m
        steps = [self._indices(row, m) for row in stimulus]
        if not records and (probe or inputs):
            raise LinkError("run: records=False sends no records, so no probes or inputs either")
        if blocks and (probe or inputs or not records):
            raise LinkError("run: blocks=True sends step records in blocks: not with probes, inputs or "
                            "records=False")
        if blocks is None:
            span = self._record_span if subset else block_span(self.device.n)
            blocks = bool(steps) and records and not (probe or inputs) and span <= BLOCK_BREAK_EVEN \
                and self.has_blocks()
        elif blocks and not self.has_blocks():
            raise LinkError("run: blocks=True, but the device sends no step blocks (built without them)")
        flags = ((RunFlags.PROBE if probe else 0) | (RunFlags.INPUTS if inputs else 0)
                 | (RunFlags.SUBSET if subset else 0) | (0 if records else RunFlags.NO_RECORDS)
                 | (RunFlags.BLOCKS if blocks else 0))
        probed = (self.device.n if probe_neurons is None else int(probe_neurons)) if probe else 0
        if steps and self._next_step is None:
            self.status()  # learn the step counter, so the first record is checked too
        start = 0
        while start < len(steps):
            end = start + 1
            if run_request_size(steps[start:end], m) > self.max_payload:
                raise LinkError(f"run: the stimulus of step {start} does not fit one frame of "
                                f"{self.max_payload} bytes")
            size = run_request_size(steps[start:end], m)
            quiet = not steps[start]        # no host inputs so far: a request without records
            while end < len(steps) and end - start < max_steps:
                more = run_request_size([steps[end]], m) - run_request_size([], m)
                if size + more > self.max_payload and not (quiet and not steps[end]):
                    break
                size += more
                quiet = quiet and not steps[end]
                end += 1
            chunk = steps[start:end]
            quiet = RunFlags.GENERATED if quiet else 0
            yield from self._run_request(end - start, encode_run_request(chunk, m, flags | quiet), probed,
                                         bool(inputs), start, lenient, records)
            start = end

    def run_counts(self, stimulus, first, count, *, span, max_steps=DEFAULT_MAX_STEPS, progress=None):
        """Run `stimulus` (as `run`) without records (`RunFlags.NO_RECORDS`) and return the
        spikes of neurons `first` .. `first + count - 1` over it, a list of ints, from the
        device's spike counters (table `spike_counts`): read before the run and after every
        `span` steps (at most 2**16 - 1: a neuron spikes at most once a step, so no counter
        wraps unseen), the differences added up. `progress(done, total)` after each span."""
        wrap = 1 << SPIKE_COUNT_BITS
        span = max(1, min(int(span), wrap - 1))

        def counters():
            return self.read_table(*_COUNTS, first, count) if count else []

        steps = len(stimulus)
        before = counters()
        total = [0] * count
        for start in range(0, steps, span):
            end = min(steps, start + span)
            for _ in self.run(stimulus[start:end], max_steps=max_steps, records=False):
                pass        # (none come)
            after = counters()
            total = [t + (a - b) % wrap for t, a, b in zip(total, after, before)]
            before = after
            if progress is not None:
                progress(end, steps)
        return total

    @staticmethod
    def _indices(row, m):
        if getattr(getattr(row, "dtype", None), "kind", None) == "b":   # a numpy bool row
            if row.shape != (m,):
                raise LinkError(f"run: a stimulus row of shape {row.shape}, expected ({m},)")
            return [int(k) for k in row.nonzero()[0]]
        return [int(k) for k in row]

    def _run_request(self, steps, payload, probed, inputs=False, index=0, lenient=False, records=True):
        first = self._next_step
        run = _Run(first, steps, probed, inputs=inputs, index=index, lenient=lenient, records=records)
        reply = yield from self._exchange(Command.RUN, payload, run=run)
        done = unpack_fields(RUN_REPLY_FIELDS, reply)["steps"] if len(reply) >= fields_size(RUN_REPLY_FIELDS) \
            else None
        self._next_step = (first + steps) & _STEP_MASK
        run.finish(done)
        if run.error is not None:
            raise LinkError(f"RUN of {steps} steps from step {first}: {run.error}")

    def _decode_record(self, frame, run):
        """Hand a STEP_RECORD, PROBE_RECORD, INPUT_RECORD or STEP_BLOCK of the current
        RUN to `run`; returns the `StepRecord`s that it completes (a list)."""
        payload = frame.payload
        what = frame.code.name
        if not run.records:
            run.fail(f"{what} in a RUN without records (NO_RECORDS)")
            return []
        if not payload or payload[0] != Status.OK:
            raise LinkError(f"{what} with status {payload[:1].hex() or 'missing'}")
        if frame.code == Command.STEP_BLOCK:
            step, rows, end = decode_step_block(payload, self.device.n, 1)
            if end != len(payload):
                raise LinkError(f"{what} of step {step}: {len(payload) - end} bytes after the block")
            done = [run.step((step + t) & _STEP_MASK, row) for t, row in enumerate(rows)]
            return [record for record in done if record is not None]
        record = self._decode_one(frame, run, payload, what)
        return [] if record is None else [record]

    def _decode_one(self, frame, run, payload, what):
        if frame.code == Command.PROBE_RECORD:
            step, first, v, i, end = decode_probe_record(payload, self.device.state_bits, 1)
        else:
            count = self.device.n if frame.code == Command.STEP_RECORD else self.device.m
            step, indices, end = decode_spikes(payload, count, 1)
        if end != len(payload):
            raise LinkError(f"{what} of step {step}: {len(payload) - end} bytes after the record")
        if frame.code == Command.STEP_RECORD:
            return run.step(step, indices)
        if frame.code == Command.INPUT_RECORD:
            return run.inputs(step, indices)
        return run.probe(step, first, v, i)


class RefusedError(LinkError):
    """The device refused a request: its reply's `status` (a `Status`) was not OK."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class _Run:
    """The records of one RUN request, checked against the step counter.

    A step is complete with its STEP_RECORD, preceded by its INPUT_RECORD when
    the run asked for `inputs` and, when probed, followed by the PROBE_RECORDs
    that cover neurons 0 .. probed-1 in order. Strict (the default): anything
    out of place (a gap in the step counter, a missing input record, a missing
    or misplaced probe chunk) sets `error`, and no later step is handed out.
    `lenient`: a step whose records are out of place or missing is dropped
    (`dropped` counts them) and the others are handed out; only a step count
    that does not match the request is an error. `index` is the request's
    first step's position in the caller's stimulus. Without `records`
    (NO_RECORDS) no record may come at all.
    """

    def __init__(self, first, steps, probed, *, inputs=False, index=0, lenient=False, records=True):
        self.first, self.steps, self.probed, self.want_inputs = first, steps, probed, bool(inputs)
        self.records = bool(records)
        self.index, self.lenient = index, lenient
        self.received = set()  # offsets of the steps handed out
        self.error = None
        self.dropped = 0
        self._partial = None   # (step, spikes, v list, i list, inputs) waiting for probe chunks
        self._inputs = None    # (step, inputs) waiting for the step record

    def _due(self):
        return (self.first + len(self.received)) & _STEP_MASK

    def fail(self, message):
        if self.lenient:
            logger.debug("record dropped: %s", message)
            self.dropped += 1
        elif self.error is None:
            self.error = message

    def _offset(self, step):
        return (step - self.first) & _STEP_MASK

    def _hand_out(self, step, spikes, v=None, i=None, inputs=None):
        offset = self._offset(step)
        self.received.add(offset)
        return StepRecord(step=step, spikes=spikes, v=v, i=i, index=self.index + offset, inputs=inputs)

    def _close_partial(self, what):
        """A record of another step arrived while a step waits for probe chunks: that step
        is incomplete. Returns False when the record that arrived must be refused too."""
        if self._partial is None:
            return True
        self.fail(f"probe records of step {self._partial[0]} incomplete ({len(self._partial[2])} of "
                  f"{self.probed} neurons) when the {what} arrived")
        self._partial = None
        return self.lenient

    def inputs(self, step, inputs):
        if self.error is not None:
            return None
        if not self.want_inputs:
            self.fail(f"input record of step {step} in a run without inputs")
            return None
        offset = self._offset(step)
        if offset in self.received or (self._inputs is not None and self._inputs[0] == step) or (
                self._partial is not None and self._partial[0] == step):
            logger.debug("repeated input record of step %d ignored", step)
            return None
        if not self._close_partial(f"input record of step {step}"):
            return None
        if self._inputs is not None:
            self.fail(f"input record of step {self._inputs[0]} without its step record (the input record "
                      f"of step {step} came next)")
            if not self.lenient:
                return None
        if offset >= self.steps:
            self.fail(f"input record of step {step} is outside the run's steps "
                      f"{self.first}..{(self.first + self.steps - 1) & _STEP_MASK}")
            self._inputs = None
            return None
        self._inputs = (step, tuple(inputs))
        return None

    def step(self, step, spikes):
        if self.error is not None:
            return None
        offset = self._offset(step)
        if offset in self.received or (self._partial is not None and step == self._partial[0]):
            logger.debug("repeated step record %d ignored", step)
            return None
        due = self._due()
        if not self._close_partial(f"record of step {step}"):
            return None
        if offset >= self.steps:
            self.fail(f"step record of step {step} is outside the run's steps "
                      f"{self.first}..{(self.first + self.steps - 1) & _STEP_MASK}")
            return None
        if offset != len(self.received) and not self.lenient:
            self.fail(f"step record of step {step} arrived where step {due} was due "
                      f"(records of steps {due}..{(step - 1) & _STEP_MASK} lost)")
            return None
        inputs = None
        if self.want_inputs:
            pending, self._inputs = self._inputs, None
            if pending is None or pending[0] != step:
                self.fail(f"step record of step {step} arrived without its input record"
                          + (f" (the last input record was of step {pending[0]})" if pending else ""))
                return None
            inputs = pending[1]
        if not self.probed:
            return self._hand_out(step, tuple(spikes), inputs=inputs)
        self._partial = (step, tuple(spikes), [], [], inputs)
        return None

    def probe(self, step, first, v, i):
        if self.error is not None:
            return None
        if not self.probed:
            self.fail(f"probe record of step {step} in a run without probes")
            return None
        if self._offset(step) in self.received:
            logger.debug("repeated probe record of step %d ignored", step)
            return None
        if self._partial is None or self._partial[0] != step:
            self.fail(f"probe record of step {step} (neurons from {first}) arrived before the step record "
                      f"of step {self._due() if self._partial is None else self._partial[0]}")
            return None
        _, spikes, vs, is_, inputs = self._partial
        if first < len(vs):
            logger.debug("repeated probe record of step %d, neuron %d ignored", step, first)
            return None
        # Chunks must follow each other without a gap; their size is the
        # device's choice (probe_chunk_neurons(S) unless built otherwise).
        if first != len(vs) or not v or first + len(v) > self.probed:
            self.fail(f"probe record of step {step} holds neurons {first}..{first + len(v) - 1} where neuron "
                      f"{len(vs)} was due (of 0..{self.probed - 1})")
            self._partial = None
            return None
        vs += v
        is_ += i
        if len(vs) < self.probed:
            return None
        self._partial = None
        return self._hand_out(step, spikes, tuple(vs), tuple(is_), inputs)

    def finish(self, done):
        """The RUN reply said `done` steps ran: check every step arrived whole
        (lenient: only that `done` is the request's step count)."""
        if self._partial is not None:
            self.fail(f"probe records of step {self._partial[0]} incomplete ({len(self._partial[2])} of "
                      f"{self.probed} neurons)")
            self._partial = None
        if self._inputs is not None:
            self.fail(f"input record of step {self._inputs[0]} without its step record")
            self._inputs = None
        whole = self.steps if self.records else 0
        if self.error is None and (done != self.steps or (len(self.received) != whole and not self.lenient)):
            self.lenient = False  # a step count that does not match is never a line fault
            missing = whole - len(self.received)
            self.fail(f"the device reports {done} steps done and {len(self.received)} whole step records "
                      f"arrived" + (f" (steps {self._due()}.. lost)" if missing > 0 else ""))
