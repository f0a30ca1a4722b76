"""`SerialDevice`: the `Device` interface over the wire protocol.

The same code drives a real board (`open_device("serial:/dev/ttyUSB1@3000000")`)
and the simulated board (`open_device("rtl")`, through its pseudo-terminal).

- Opening starts a session with HELLO: the core model version, n, m, S, W, T,
  lanes, clock, baud and build id become the `Capabilities`, and `load()`
  refuses a network that does not fit, saying what does.
- `load()` writes the global registers (learning registers, N_USED, M_USED,
  PERIOD, and SEED = 1), the neuron parameters, the plasticity masks, the
  generator's rates (all 0) and the weights (rows padded to the device's n,
  with progress), then RESET_STATE. A network smaller than the core maps input
  k to core row k and neuron j to core row m_core + j; the neurons and inputs
  it does not use get zero parameters and masks and are switched off by
  N_USED / M_USED, so they behave as absent.
- `run()` writes the rates when they differ from those the device holds and
  the seed register when a seed is given (which sets the generator state g),
  streams the stimulus in RUN requests, collects spikes (and the v, i probes
  and the input sets U), reads the weights back every `snapshot_every` steps
  and at the end (at the end only when the network learns: otherwise they are
  the network's own), and returns a `Recording` like the golden model's.
- `run(..., counts=True)` without probes or snapshots lets a device with spike
  counters (the simulated board, the ULX3S-45F, a board built with `--spike-counters`) count:
  its RUN requests ask for no records (`RunFlags.NO_RECORDS`), and the host reads
  the recorded neurons' spike counters (table `spike_counts`, 16 bits) before
  the run and after every span of at most `checkpoint_steps` steps (so that no
  counter wraps unseen), and adds up the differences. No spike crosses the line.
- `reset_state()` is RESET_STATE, which sets g to the seed register: the
  seed last given (1 after load).
- A spoilt step record cannot be asked for again (the device keeps no
  history), so `run()` works in spans of at most `checkpoint_steps` steps: it
  reads the device's state (and the weights, when the network learns) before
  each span, and when records of the span were lost on the line it writes
  that checkpoint back and runs the span again, keeping the records that
  arrived whole from every attempt, until it has them all. The core is
  deterministic, so every attempt reports the same steps. The generator
  state g is part of the checkpoint (register `gen_state`); it can only be
  set through the seed register, so a restore leaves that register holding
  the checkpoint's g, and the next `reset_state()` writes the seed back
  before its RESET_STATE.
"""

import logging

import numpy as np

from .device import Capabilities, Device
from .errors import LinkError
from .golden import Recording
from .link import DEFAULT_MAX_STEPS, LinkClient, RefusedError
from .transport import SerialTransport
from neurofabric.contract.bauds import AUTO_BAUDS
from neurofabric.contract.device import (NEURON_PARAMS_WORD, WRITABLE_GLOBALS, neuron_params_fields,
                                         network_register_values, register, register_address)
from neurofabric.contract.protocol import Status, table_key
from .memory_map import decode_global, encode_global, pack_weights, pack_word, unpack_weights

__all__ = ["SerialDevice", "COMMON_BAUDS", "parse_serial_name", "open_serial_device"]

logger = logging.getLogger(__name__)

#: Steps between checkpoints (and between two reads of the spike counters) by default.
DEFAULT_CHECKPOINT_STEPS = 1024

#: (family, table id) of the generator's rates, and of the core's spike counters.
_RATES = table_key("rates")
_COUNTS = table_key("spike_counts")
_SEED_ADDRESS = register_address("seed")
_GEN_STATE_ADDRESS = register_address("gen_state")

#: Baud rates tried, in order, when `serial:PATH` names none: every board's rate
#: (`contract.bauds.BOARD_BAUDS`, which boards/ builds with), then common others.
#: A pseudo-terminal (the simulated board) answers at any rate.
COMMON_BAUDS = AUTO_BAUDS


def parse_serial_name(name):
    """``"serial:PATH[@BAUD]"`` -> ``(path, baud or None)``."""
    if not name.startswith("serial:") or len(name) == len("serial:"):
        raise LinkError(f"device {name!r}: expected serial:PATH or serial:PATH@BAUD "
                        "(for example serial:/dev/ttyUSB1@3000000)")
    spec = name[len("serial:"):]
    path, sep, baud = spec.rpartition("@")
    if sep and baud.isdigit() and path:
        if int(baud) <= 0:
            raise LinkError(f"device {name!r}: baud={baud} must be positive")
        return path, int(baud)
    if sep and path and not baud.isdigit():
        raise LinkError(f"device {name!r}: baud {baud!r} is not a number (serial:PATH@BAUD, e.g. @3000000)")
    return spec, None


def open_serial_device(spec, **options):
    """`open_device("serial:PATH[@BAUD]")`: `SerialDevice.open` on the port `spec` names."""
    path, baud = parse_serial_name(f"serial:{spec}")
    return SerialDevice.open(path, baud, **options)


class SerialDevice(Device):
    """A board (real or simulated) behind a `Transport`, driven with `LinkClient`.

    `timeout` and `retries` are the client's (see `LinkClient`); `period_cycles`
    is written to the PERIOD register at load (0: every step as fast as the
    core can; more: real-time mode); `max_steps` bounds the steps of one RUN
    request. With `recover` (the default), a run whose records are spoilt on
    the line is re-run span by span from checkpoints of `checkpoint_steps`
    steps (at most `retries` times a span); without it a lost record is a
    `LinkError` (a run then moves no state or weights over the line but its
    records). `kind` and `build_id` name the device in `Capabilities`
    (`build_id` defaults to the one HELLO reports). `on_close` is called by
    `close()` after the transport is closed.
    """

    def __init__(self, transport, *, kind="serial", timeout=1.0, retries=4, period_cycles=0,
                 max_steps=DEFAULT_MAX_STEPS, recover=True, checkpoint_steps=DEFAULT_CHECKPOINT_STEPS, build_id=None,
                 on_close=None):
        super().__init__()
        self.transport = transport
        self.client = LinkClient(transport, timeout=timeout, retries=retries)
        self.period_cycles = int(period_cycles)
        self.max_steps = int(max_steps)
        self._record_mask = None        # the neurons the device's SET_RECORD holds, as last sent
        self._counters = None           # whether the device has spike counters (asked at the first counts run)
        self.recover = bool(recover)
        self.checkpoint_steps = max(1, int(checkpoint_steps))
        #: Spans of steps run again from their checkpoint because records were lost.
        self.reruns = 0
        self._on_close = on_close
        self._rates = None          # the generator's rates the device holds (network inputs), after load
        self._seed = None           # the seed a reset returns g to
        self._seed_register = None  # what the seed register holds (a restored checkpoint's g, or the seed)
        self.hello = self.client.hello()
        self.shape = self.hello.shape
        hello = self.hello
        self._capabilities = Capabilities(
            kind=kind, core_model_version=hello.core_model_version, neurons=hello.n, inputs=hello.m,
            state_bits=hello.state_bits, weight_bits=hello.weight_bits, trace_bits=hello.trace_bits,
            lanes=hello.lanes, clk_hz=hello.clk_hz, baud=hello.baud,
            build_id=build_id if build_id is not None else f"{hello.build_id:08x}")
        logger.info("%s: core model %d, n = %d, m = %d, S = %d, W = %d, T = %d, %d lanes, %d Hz, %d baud, build %s",
                    kind, hello.core_model_version, hello.n, hello.m, hello.state_bits, hello.weight_bits,
                    hello.trace_bits, hello.lanes, hello.clk_hz, hello.baud, self._capabilities.build_id)

    @classmethod
    def open(cls, path, baud=None, **options):
        """Open the board on serial port `path`. Without `baud`, try `COMMON_BAUDS`
        until one answers HELLO."""
        options.setdefault("kind", f"serial:{path}" + (f"@{baud}" if baud else ""))
        bauds = [baud] if baud else list(COMMON_BAUDS)
        problems = []
        for rate in bauds:
            transport = SerialTransport(path, rate)
            try:
                if baud is None:  # a quick question per rate; the session then uses the given time-outs
                    probe = LinkClient(transport, timeout=0.25, retries=1)
                    probe.hello()
                return cls(transport, **options)
            except LinkError as exc:
                transport.close()
                problems.append(f"{rate} baud: {exc}")
        tried = "; ".join(problems)
        raise LinkError(f"no neurofabric device answers on {path}: is the board programmed with a neurofabric "
                        f"bitstream and is the baud rate its own (serial:{path}@BAUD)? ({tried})")

    # -- Device -----------------------------------------------------------------
    def capabilities(self):
        return self._capabilities

    def _row(self, net, k):
        """Core row of network source `k` (input k, or neuron k - m)."""
        return k if k < net.m else self.shape.m + (k - net.m)

    def _load(self, net):
        shape, client = self.shape, self.client
        n_core, m_core = shape.n, shape.m
        values = network_register_values(net)
        values.update(period=self.period_cycles, seed=register("seed").reset_value(shape))
        try:
            words = [encode_global(name, values[name], shape) for name in WRITABLE_GLOBALS]
        except KeyError as exc:
            raise LinkError(f"load: no value for global register {exc}") from None
        client.write_globals(0, words)
        fields = neuron_params_fields(net.state_bits)
        params = [pack_word(fields, **{f: int(getattr(net, f)[j]) for f in NEURON_PARAMS_WORD}) for j in range(net.n)]
        client.write_params(0, 0, params + [0] * (n_core - net.n))
        client.write_params(2, 0, [int(p) for p in net.plastic_post] + [0] * (n_core - net.n))
        pre = [0] * (m_core + n_core)
        for k, p in enumerate(net.plastic_pre):
            pre[self._row(net, k)] = int(p)
        client.write_params(1, 0, pre)
        # Rates of every input of the core: the generator reads only those below m_used,
        # but a later network may use more inputs.
        client.write_table(*_RATES, 0, [0] * m_core)
        self._rates = np.zeros(net.m, np.int64)
        self._seed = self._seed_register = values["seed"]
        self._write_weights(net, net.weights, self._load_progress)
        client.reset_state()

    def _write_weights(self, net, weights, progress=None):
        """Write `weights` `(m+n, n)` as whole rows (padded with zeros to the
        core's n) of the sources in use, in two runs of addresses: inputs, then
        neurons."""
        shape, client = self.shape, self.client
        m_core = shape.m
        padded = np.zeros((net.m + net.n, shape.n), np.int64)
        padded[:, :net.n] = weights
        L, W, per_row = shape.lanes, shape.weight_bits, shape.words_per_row
        rows = [[pack_weights(padded[k, c * L:(c + 1) * L], W) for c in range(per_row)]
                for k in range(net.m + net.n)]
        runs = [(0, rows[:net.m]), (shape.weight_address(m_core, 0), rows[net.m:])]
        total = (net.m + net.n) * per_row
        done = 0
        for address, block in runs:
            flat = [w for row in block for w in row]
            base = done
            client.write_weights(address, flat, progress=(lambda d, t, base=base: progress(base + d, total))
                                 if progress else None)
            done += len(flat)

    def _set_generator(self, rates, seed):
        """Write the rates that differ from the device's and, when given, the seed (which sets g)."""
        client = self.client
        changed = np.flatnonzero(rates != self._rates)
        if changed.size:
            # One write from the first to the last rate that changed.
            lo, hi = int(changed[0]), int(changed[-1]) + 1
            client.write_table(*_RATES, lo, [int(r) for r in rates[lo:hi]])
            self._rates = np.array(rates, np.int64)
        if seed is not None:
            self._write_seed(seed)
            self._seed = seed

    def _write_seed(self, value):
        self.client.write_globals(_SEED_ADDRESS, [encode_global("seed", value, self.shape)])
        self._seed_register = value

    def _run(self, stimulus, record, snapshot_every, progress, rates, seed, *, record_neurons=None):
        net = self.network
        steps = stimulus.shape[0]
        self._set_generator(rates, seed)
        subset = record_neurons is not None
        if subset and self._record_mask != tuple(record_neurons):
            # The device records these neurons alone (SET_RECORD, RunFlags.SUBSET); a device
            # that lost the mask (a reset) records more, which `run` drops as before.
            self.client.set_record(record_neurons)
            self._record_mask = tuple(int(k) for k in record_neurons)
        spikes = np.zeros((steps, net.n), np.uint8)
        want_inputs = "inputs" in record
        record = tuple(key for key in record if key != "inputs")
        probes = {key: np.zeros((steps, net.n), np.int64) for key in record}
        inputs_seen = np.zeros((steps, net.m), np.uint8) if want_inputs else None
        snaps, snap_steps = [], []
        inputs = [np.flatnonzero(row) for row in stimulus]
        ends = set(range(snapshot_every, steps + 1, snapshot_every)) if snapshot_every else set()
        if self.recover:
            ends |= set(range(self.checkpoint_steps, steps, self.checkpoint_steps))
        ends = sorted((ends | {steps}) - {0})  # no span (and no checkpoint) for a run of 0 steps
        t = 0
        for end in ends:
            for k, rec in enumerate(self._run_span(inputs, t, end, bool(record), want_inputs, subset)):
                if rec.spikes and rec.spikes[-1] >= net.n:
                    raise LinkError(f"step {rec.step}: neuron {rec.spikes[-1]} spiked, but the network has "
                                    f"{net.n} neurons (N_USED not applied?)")
                spikes[t + k, list(rec.spikes)] = 1
                for key in record:
                    probes[key][t + k] = getattr(rec, key)[:net.n]
                if want_inputs:
                    if rec.inputs and rec.inputs[-1] >= net.m:
                        raise LinkError(f"step {rec.step}: input {rec.inputs[-1]} in the step's inputs, but the "
                                        f"network has {net.m} inputs (M_USED not applied?)")
                    inputs_seen[t + k, list(rec.inputs)] = 1
            t = end
            if progress is not None:
                progress(t, steps)
            if snapshot_every and end % snapshot_every == 0 and end > 0:
                snaps.append(self.read_weights())
                snap_steps.append(end)
        recording = Recording(spikes=spikes, weights=self._weights_after(), input_spikes=stimulus.astype(np.uint8),
                              v=probes.get("v"), i=probes.get("i"), inputs=inputs_seen)
        if snapshot_every:
            recording.weight_snapshots = (np.stack(snaps) if snaps
                                          else np.zeros((0, net.m + net.n, net.n), np.int64))
            recording.snapshot_steps = np.array(snap_steps, np.int64)
        return recording

    def _has_counters(self):
        """Whether the device has its spike counters (a build without them refuses their
        table with BAD_ADDRESS); asked once per session."""
        if self._counters is None:
            try:
                self.client.read_table(*_COUNTS, 0, 1)
                self._counters = True
            except RefusedError as exc:
                if exc.status != Status.BAD_ADDRESS:
                    raise
                logger.info("%s: no spike counters on the device; counting spikes from the step records",
                            self._capabilities.kind)
                self._counters = False
        return self._counters

    def _run_counts(self, stimulus, progress, rates, seed, *, record_neurons=None):
        if not self._has_counters():
            return None
        net = self.network
        self._set_generator(rates, seed)
        neurons = np.arange(net.n) if record_neurons is None else np.asarray(record_neurons, np.int64)
        lo, hi = (int(neurons[0]), int(neurons[-1]) + 1) if neurons.size else (0, 0)
        total = self.client.run_counts([np.flatnonzero(row) for row in stimulus], lo, hi - lo,
                                       span=self.checkpoint_steps, max_steps=self.max_steps, progress=progress)
        return Recording(spikes=None, weights=self._weights_after(), input_spikes=stimulus.astype(np.uint8),
                         neurons=record_neurons, counts=np.array(total, np.int64)[neurons - lo],
                         step_count=stimulus.shape[0])

    def _run_span(self, inputs, start, end, probe, want_inputs=False, subset=False):
        """The `StepRecord`s of steps `start` .. `end`-1, in order (see the
        module's notes on recovery)."""
        net, client = self.network, self.client
        options = dict(probe=probe, probe_neurons=net.n, inputs=want_inputs, max_steps=self.max_steps,
                       subset=subset)
        if not self.recover:
            return list(client.run(inputs[start:end], **options))
        saved = self._checkpoint()
        got = [None] * (end - start)
        missing = list(range(end - start))   # steps without a whole record yet
        for attempt in range(client.retries + 1):
            if attempt:
                self.reruns += 1
                logger.warning("steps %d..%d: the records of %d steps were spoilt on the line (first: step %d); "
                               "running the span again from its checkpoint (rerun %d of at most %d)",
                               start, end - 1, len(missing), start + missing[0], attempt, client.retries)
                client.check_step_counter()     # a device that was reset has lost the network: say so
                self._restore(saved)
            for rec in client.run(inputs[start:end], lenient=True, **options):
                if got[rec.index] is None:
                    got[rec.index] = rec
            missing = [k for k, rec in enumerate(got) if rec is None]
            if not missing:
                return got
        lost = ", ".join(str(start + k) for k in missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise LinkError(f"steps {start}..{end - 1}: the records of steps {lost} were spoilt on the line in each "
                        f"of {client.retries + 1} runs from the checkpoint")

    def _weights_after(self):
        """The weights at the end of a run: read back when the network learns; otherwise the
        network's own (weights change only by learning), which spares the line their bytes."""
        return self.read_weights() if self._learns() else np.array(self.network.weights, np.int64)

    def _learns(self):
        net = self.network
        return bool(net.learn) and bool(np.any(net.plastic_pre)) and bool(np.any(net.plastic_post))

    def _checkpoint(self):
        """What a span needs to start again: the state of the neurons and rows
        in use, the generator state g, and the weights when the network learns."""
        net, client, m_core = self.network, self.client, self.shape.m
        saved = {
            "gen_state": decode_global("gen_state", client.read_globals(_GEN_STATE_ADDRESS, 1)[0], self.shape),
            "neuron_state": client.read_state(0, 0, net.n),
            "post_trace": client.read_state(2, 0, net.n),
            "pre_trace_inputs": client.read_state(1, 0, net.m) if net.m else [],
            "pre_trace_neurons": client.read_state(1, m_core, net.n),
        }
        if self._learns():
            saved["weights"] = self.read_weights()
        return saved

    def _restore(self, saved):
        net, client, m_core = self.network, self.client, self.shape.m
        if "weights" in saved:
            self._write_weights(net, saved["weights"])
        self._write_seed(saved["gen_state"])     # sets g; the seed goes back at the next reset
        client.write_state(0, 0, saved["neuron_state"])
        client.write_state(2, 0, saved["post_trace"])
        if net.m:
            client.write_state(1, 0, saved["pre_trace_inputs"])
        client.write_state(1, m_core, saved["pre_trace_neurons"])

    def read_weights(self, progress=None):
        """The network's weights `(m+n, n)` as the device holds them now."""
        net = self._need_network()
        shape = self.shape
        L, W, per_row = shape.lanes, shape.weight_bits, shape.words_per_row
        used = -(-net.n // L)  # words of a row that hold used neurons
        out = np.zeros((net.m + net.n, used * L), np.int64)
        # Whole rows in one run of addresses, unless most of each row is unused.
        span = per_row if 2 * used > per_row else used
        for first, count in ((0, net.m), (net.m, net.n)):
            if not count:
                continue
            base = shape.weight_address(self._row(net, first), 0)
            if span == per_row:
                words = self.client.read_weights(base, count * per_row, progress=progress)
            else:
                words = [w for r in range(count) for w in self.client.read_weights(base + r * per_row, used)]
            for r in range(count):
                row = words[r * span:r * span + used]
                out[first + r] = [w for word in row for w in unpack_weights(word, L, W)]
        return out[:, :net.n]

    def reset_state(self):
        """RESET_STATE: v, i, r, s, traces and the step counter to 0, and g to the seed."""
        self._need_network()
        if self._seed_register != self._seed:
            self._write_seed(self._seed)
        self.client.reset_state()

    def status(self):
        """The device's STATUS: step counter, error counters, last step's cycles."""
        return self.client.status()

    def close(self):
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
            if self._on_close is not None:
                self._on_close()
