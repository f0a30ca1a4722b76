"""`neurofabric selftest`: is this board (real or simulated) healthy?

Checks, in order: the handshake (core model and protocol version, sizes);
an echo of frames of every length class (COBS group boundaries, the largest
payload); a small random network, learning on, run with host inputs and the
device's stimulus generator (rates and a seed) with probes and each step's
inputs, compared step by step with the golden model; the weights read back;
and the link's error counters. Each check passes or fails on its own, with the reason.

The counters are judged by how much they grew during the checks, not by their
totals: a board that once received line noise (a terminal opened on its port,
a cable plugged in) counts it for the rest of its life, and still computes
correctly.
"""

import time
from dataclasses import dataclass

import numpy as np

from .compare import first_divergence
from .device import open_device
from .errors import DeviceError, NeurofabricError
from .golden import GoldenModel
from .network import random_network
from neurofabric.contract.model import CORE_MODEL_VERSION, Widths
from neurofabric.contract.protocol import STATUS_REPLY_FIELDS

__all__ = ["Check", "selftest", "CHECKS", "ERROR_COUNTERS"]

#: The checks, in the order they run.
CHECKS = ("handshake", "echo", "network", "weights", "link counters")

#: The STATUS counters that count faults on the line or in the device.
ERROR_COUNTERS = ("uart_framing_errors", "uart_overruns", "crc_errors", "format_errors", "dropped_frames",
                  "lost_records")


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    seconds: float


def _echo_lengths(max_payload):
    # Around every COBS group boundary (254) and up to the largest payload
    # (the reply adds a status byte, so the echo can carry max_payload - 1).
    top = max_payload - 1
    lengths = {0, 1, 2, 253, 254, 255, 256, 507, 508, 509, top - 1, top}
    return sorted(x for x in lengths if 0 <= x <= top)


def _counter_max(name):
    """The value a STATUS error counter saturates at (docs/protocol.md: it never wraps)."""
    return (1 << (8 * dict(STATUS_REPLY_FIELDS)[name])) - 1


def selftest(device_name, seed=0, steps=200, say=print):
    """Run every check on `device_name`; return the list of `Check`s."""
    if device_name in ("golden", "rtl-direct"):
        what = "the golden model" if device_name == "golden" else "the core alone under Verilator, with no link"
        raise DeviceError(f"selftest checks a board and its link, and {device_name} is {what}: use --device rtl "
                          "or --device serial:PATH[@BAUD]")
    checks = []
    rng = np.random.default_rng(seed)

    def run_check(name, func):
        start = time.monotonic()
        try:
            detail = func()
            checks.append(Check(name, True, detail, time.monotonic() - start))
        except NeurofabricError as exc:
            checks.append(Check(name, False, str(exc), time.monotonic() - start))
        except AssertionError as exc:
            checks.append(Check(name, False, str(exc), time.monotonic() - start))
        c = checks[-1]
        say(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail} ({c.seconds:.1f} s)")
        return c.passed

    with open_device(device_name) as dev:
        # A simulated board is built to fit the network, so it needs one first;
        # a real board tells its sizes in the handshake.
        if hasattr(dev, "board_capabilities"):
            probe_net = random_network(16, 8, seed=seed, learn=1)
            dev.load(probe_net)
            serial = dev.serial
        else:
            serial = dev
        caps = serial.capabilities()
        client = serial.client
        # The counters as the checks find them: only what they add is judged.
        start_status = client.status()

        def handshake():
            assert caps.core_model_version == CORE_MODEL_VERSION, (
                f"the device implements core model {caps.core_model_version}, the host {CORE_MODEL_VERSION}")
            return (f"core model {caps.core_model_version}, n = {caps.neurons}, m = {caps.inputs}, "
                    f"S/W/T = {caps.state_bits}/{caps.weight_bits}/{caps.trace_bits}, {caps.lanes} lanes, "
                    f"{caps.clk_hz / 1e6:g} MHz, {caps.baud} baud, build {caps.build_id}")

        def echo():
            lengths = _echo_lengths(client.max_payload)
            sent = 0
            for length in lengths:
                data = rng.integers(0, 256, length, dtype=np.uint8)
                data[::7] = 0  # zeros exercise COBS
                back = client.echo(data.tobytes())
                assert back == data.tobytes(), f"echo of {length} bytes came back different"
                sent += length
            return f"{len(lengths)} frames of {lengths[0]}..{lengths[-1]} bytes, {sent} bytes each way"

        n = min(caps.neurons, 16)
        m = min(caps.inputs, 8)
        widths = Widths(caps.state_bits, caps.weight_bits, caps.trace_bits)
        net = random_network(n, m, seed=seed + 1, learn=1, widths=widths)
        stim = rng.random((steps, m)) < 0.15
        rates = rng.integers(0, 20_000, m)
        rates[0] = 0
        gen_seed = int(rng.integers(1, 1 << 32))
        outcome = {}

        def network_run():
            dev.load(net)
            options = dict(record=("v", "i", "inputs"), rates=rates, seed=gen_seed)
            rec = dev.run(stim, **options)
            outcome["rec"] = rec
            want = GoldenModel(net).run(stim, **options)
            outcome["want"] = want
            found = first_divergence(want, rec)
            assert found is None, found.describe("golden", "device") if found else ""
            if not np.array_equal(rec.inputs, want.inputs):
                t, k = np.argwhere(rec.inputs != want.inputs)[0]
                raise AssertionError(f"step {t}: input {k} is {int(rec.inputs[t, k])} in the device's inputs, "
                                     f"{int(want.inputs[t, k])} in the golden model's")
            generated = int(want.inputs.sum() - (want.inputs & stim).sum())
            return (f"{n} neurons, {m} inputs, learning on, {steps} steps: {int(rec.spikes.sum())} spikes, "
                    f"{generated} generated input spikes; spikes, v, i and the inputs equal to the golden model "
                    f"at every step")

        def weights_back():
            assert "want" in outcome, "needs the network run"
            got = dev.read_weights()
            want = outcome["want"].weights
            changed = int((want != net.weights).sum())
            if not np.array_equal(got, want):
                k, j = np.argwhere(got != want)[0]
                raise AssertionError(f"w[{k}][{j}] read back {got[k, j]}, golden model {want[k, j]}")
            return f"{got.size} weights read back equal to the golden model ({changed} changed by learning)"

        def counters():
            status = client.status()
            full = [k for k in ERROR_COUNTERS if start_status[k] == _counter_max(k)]
            assert not full, (f"{', '.join(full)} saturated at {_counter_max(full[0])} before the checks: whether "
                              "they added faults cannot be told (power-cycle the board to clear the counters)")
            grown = {k: status[k] - start_status[k] for k in ERROR_COUNTERS if status[k] != start_status[k]}
            assert not grown, ("error counters grew during the checks: "
                               + ", ".join(f"{k} +{v}" for k, v in grown.items()))
            earlier = {k: start_status[k] for k in ERROR_COUNTERS if start_status[k]}
            before = ("" if not earlier else "; before them the board had counted "
                      + ", ".join(f"{k} {v}" for k, v in earlier.items()))
            return (f"no link errors during the checks{before}; last step took {status['last_step_cycles']} "
                    "cycles")

        if run_check(CHECKS[0], handshake):
            for name, func in zip(CHECKS[1:], (echo, network_run, weights_back, counters)):
                run_check(name, func)
    return checks
