"""The `Device` interface that every backend implements, and `open_device`.

A device holds one network at a time. `load()` writes its weights and
parameters and resets the state; `run()` applies a stimulus from the current
state and returns a `Recording`; the state persists between runs until
`reset_state()` (spec section 4). The golden model, the simulated board and
real boards all speak this interface, so host code runs unchanged on each.
"""

from __future__ import annotations

import abc
import importlib
import logging
import numbers
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import CORE_MODEL_VERSION

from .errors import DeviceError, NetworkError
from .generator import check_rates, check_seed
from .golden import GoldenModel, Recording, check_snapshot_budget, check_stimulus
from .network import Network

#: What `Device.run(record=...)` may ask for.
PROBES = ("v", "i", "inputs")

__all__ = ["Capabilities", "Device", "GoldenDevice", "open_device", "open_golden", "DEVICE_KINDS", "DEVICE_OPENERS",
           "PROBES", "trials_of", "stack_trials", "check_record_neurons", "select_neurons"]

logger = logging.getLogger(__name__)

_D = TypeVar("_D", bound="Device")


@dataclass(frozen=True)
class Capabilities:
    """What a device can hold: its sizes and widths (the handshake of a board).

    `neurons`/`inputs` of None mean "any size" (the golden model).
    """

    kind: str
    core_model_version: int = CORE_MODEL_VERSION
    neurons: int | None = None
    inputs: int | None = None
    state_bits: int | None = None
    weight_bits: int | None = None
    trace_bits: int | None = None
    lanes: int | None = None
    clk_hz: int | None = None
    baud: int | None = None
    build_id: str | None = None

    def as_dict(self) -> dict[str, int | str]:
        """The fields that are known (not None), by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def check_fits(self, network: Network) -> None:
        """Raise `DeviceError` saying what fits when `network` does not."""
        problems = []
        if self.core_model_version != CORE_MODEL_VERSION:
            problems.append(f"the device implements core model {self.core_model_version}, "
                            f"this host core model {CORE_MODEL_VERSION}")
        for name, have in (("state_bits", self.state_bits), ("weight_bits", self.weight_bits),
                           ("trace_bits", self.trace_bits)):
            want = getattr(network, name)
            if have is not None and want != have:
                problems.append(f"{name} = {want} but the device has {name} = {have}")
        if self.neurons is not None and network.n > self.neurons:
            problems.append(f"{network.n} neurons but the device has {self.neurons}")
        if self.inputs is not None and network.m > self.inputs:
            problems.append(f"{network.m} inputs but the device has {self.inputs}")
        if problems:
            fits = (f"it fits up to n = {self.neurons} neurons, m = {self.inputs} inputs, "
                    f"S = {self.state_bits}, W = {self.weight_bits}, T = {self.trace_bits}")
            raise DeviceError(f"network does not fit device {self.kind!r}: "
                              + "; ".join(problems) + f" ({fits})")


class Device(abc.ABC):
    """A place that runs the core model: golden model, simulated board or board."""

    def __init__(self) -> None:
        self.network: Network | None = None

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """The device's sizes and widths."""

    _load_progress: Callable[[int, int], object] | None = None

    def load(self, network: Network, progress: Callable[[int, int], object] | None = None) -> None:
        """Load a network (weights, parameters, learning registers) and reset the state.

        `progress(done, total)` follows long loads (the weights over a link).
        Every field is checked again first (`Network.validate`, `NetworkError`):
        a network edited after it was built is refused here on every device.
        """
        if not isinstance(network, Network):
            raise DeviceError(f"load: {type(network).__name__} is not a Network")
        network.validate()
        self.capabilities().check_fits(network)
        self._load_progress = progress
        try:
            self._load(network)
        finally:
            self._load_progress = None
        self.network = network

    @abc.abstractmethod
    def _load(self, network: Network) -> None:
        """Backend part of `load`, after the size check."""

    def run(self, stimulus: ArrayLike | None, steps: int | None = None,
            record: Iterable[Literal["v", "i", "inputs"]] = (), snapshot_every: int = 0,
            progress: Callable[[int, int], object] | None = None, *, rates: ArrayLike | None = None,
            seed: int | None = None, record_neurons: ArrayLike | None = None, counts: bool = False) -> Recording:
        """Run `stimulus` (the host's `(steps, m)` 0/1 inputs) from the current state.

        `stimulus` may be None when `steps` is given: no host inputs. `steps`
        longer than the stimulus pads with silence; `record` may name "v", "i"
        and "inputs" (the set U of each step, host and generated inputs);
        `rates` are the stimulus generator's `rate[k]` per input (spec 5.0;
        0 .. 65535, None: all 0); `seed` loads a generator seed, which also
        sets the generator state (None: the generator goes on from its state,
        which a reset sets to the last seed loaded, 1 at first).
        `record_neurons` (neuron numbers) records only those neurons: the
        recording's `neurons` lists them ascending and `spikes`, `v`, `i` have a
        column for each; `counts=True` keeps only each recorded neuron's spike
        count over the run (`Recording.counts`, no `spikes`).
        `snapshot_every=K` keeps the weights every K steps. Snapshots beyond
        `golden.SNAPSHOT_BUDGET_BYTES` of memory are refused (`DeviceError`)
        here, on every device, before anything runs.
        """
        net = self._need_network()
        record = tuple(record)
        for key in record:
            if key not in PROBES:
                raise DeviceError(f"record: unknown probe {key!r}; allowed: {', '.join(PROBES)}")
        if isinstance(snapshot_every, numbers.Real) and snapshot_every < 0:
            raise DeviceError(f"snapshot_every = {snapshot_every} is out of range: allowed 0 or more")
        if stimulus is None:
            if steps is None:
                raise DeviceError("run: give a stimulus, or steps for a run without host inputs")
            stimulus = np.zeros((0, net.m), bool)
        stim = check_stimulus(stimulus, net.m, steps)
        rates = check_rates(rates, net.m)
        seed = check_seed(seed)
        # A board reads the weights back for each snapshot and holds them all
        # until the run ends, as the golden model does: the same budget, checked
        # before a run that could take hours fails for memory at its end.
        snapshot_every = check_snapshot_budget(stim.shape[0], snapshot_every, (net.m + net.n, net.n))
        neurons = check_record_neurons(record_neurons, net.n)
        if counts and not record and not snapshot_every:
            rec = self._run_counts(stim, progress, rates, seed, record_neurons=neurons)
            if rec is not None:
                return rec
        rec = self._run(stim, record, snapshot_every, progress, rates, seed, record_neurons=neurons)
        return select_neurons(rec, neurons, bool(counts))

    def run_trials(self, stimulus: ArrayLike | None, steps: int | None = None,
                   record: Iterable[Literal["v", "i", "inputs"]] = (), *, rates: ArrayLike | None = None,
                   seed: ArrayLike | None = None, record_neurons: ArrayLike | None = None, counts: bool = False,
                   progress: Callable[[int, int], object] | None = None) -> Recording:
        """Run a batch of trials (spec section 6), each from the reset state.

        `stimulus` is `(trials, steps, m)` (or None, with `steps` and a batch of
        `rates` or `seed` that says how many trials); `rates` is `(m,)` for
        every trial or `(trials, m)`; `seed` a scalar or `(trials,)`. Before each
        trial the state is reset (v, i, r, s, traces to 0, `g` to the seed);
        the weights carry over, so learning accumulates. Returns one
        `Recording` with `trials` set and a leading trials axis on `spikes`,
        `v`, `i`, `inputs` and `input_spikes`; `weights` are those after the
        last trial. `record_neurons` and `counts` are those of `run`, for
        every trial (`counts` then has one row per trial). `progress(done,
        total)` counts trials.
        """
        net = self._need_network()
        trials = trials_of(stimulus, rates, seed, net.m)
        if stimulus is None:
            if steps is None:
                raise DeviceError("run_trials: give a stimulus, or steps for trials without host inputs")
            stimulus = np.zeros((trials, 0, net.m), bool)
        stimulus = np.asarray(stimulus)
        rate_rows = _per_trial("rates", rates, trials, 1)
        seeds = _per_trial("seed", seed, trials, 0)
        results = []
        for t in range(trials):
            self.reset_state()
            try:
                results.append(self.run(stimulus[t], steps, record, rates=rate_rows[t], seed=seeds[t],
                                        record_neurons=record_neurons, counts=counts))
            except NetworkError as exc:
                raise NetworkError(f"trial {t}: {exc}") from None
            if progress is not None:
                progress(t + 1, trials)
        return stack_trials(results)

    @abc.abstractmethod
    def _run(self, stimulus: np.ndarray, record: tuple[Literal["v", "i", "inputs"], ...], snapshot_every: int,
             progress: Callable[[int, int], object] | None, rates: np.ndarray, seed: int | None, *,
             record_neurons: np.ndarray | None = None) -> Recording:
        """Backend part of `run`: `stimulus` is a checked bool `(steps, m)` array, `rates` a
        checked int64 `(m,)` array (zeros when none was given), `seed` an int or None.
        `record_neurons` (checked, ascending; None: all) are the neurons `run` keeps: a
        backend may leave the others' spikes out (zero), as a board that records only
        those does; `run` selects the columns afterwards."""

    def _run_counts(self, stimulus: np.ndarray, progress: Callable[[int, int], object] | None,
                    rates: np.ndarray, seed: int | None, *, record_neurons: np.ndarray | None = None
                    ) -> Recording | None:
        """Backend part of `run(..., counts=True)` without probes or snapshots, for a device
        that counts the spikes itself (a board: the line then carries no spikes): the
        recording as `run` returns it (`counts` of `record_neurons`, `neurons`,
        `step_count`, no `spikes`), or None to have `run` count the spikes of `_run`."""
        return None

    @abc.abstractmethod
    def read_weights(self) -> np.ndarray:
        """The current weights, `(m+n, n)`."""

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Set v, i, refractory counters, spikes and traces to 0 and the generator state
        to the seed (spec section 4); keep weights."""

    def close(self) -> None:  # noqa: B027 - optional: a device that holds nothing keeps this no-op
        """Release the device (ports, processes)."""

    def _need_network(self) -> Network:
        if self.network is None:
            raise DeviceError("no network loaded: call load(network) first")
        return self.network

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GoldenDevice(Device):
    """The golden model in-process, as a device of any size."""

    def __init__(self) -> None:
        super().__init__()
        self.model: GoldenModel | None = None

    def capabilities(self) -> Capabilities:
        """Any size and any widths: the golden model holds every valid network."""
        return Capabilities(kind="golden")

    def _load(self, network: Network) -> None:
        self.model = GoldenModel(network)

    def _run(self, stimulus: np.ndarray, record: tuple[Literal["v", "i", "inputs"], ...], snapshot_every: int,
             progress: Callable[[int, int], object] | None, rates: np.ndarray, seed: int | None, *,
             record_neurons: np.ndarray | None = None) -> Recording:
        return self.model.run(stimulus, record=record, snapshot_every=snapshot_every, progress=progress,
                              rates=rates, seed=seed)

    def read_weights(self) -> np.ndarray:
        """The model's current weights as int64, `(m+n, n)`."""
        self._need_network()
        return self.model.weights.astype(np.int64)

    def reset_state(self) -> None:
        """Set the model's state to 0; the weights stay."""
        self._need_network()
        self.model.reset()


def trials_of(stimulus, rates, seed, m: int) -> int:
    """The number of trials a batch describes (`run_trials`), from whichever of
    `stimulus` `(trials, steps, m)`, `rates` `(trials, m)` and `seed` `(trials,)` is
    batched; `DeviceError` when they disagree or none is."""
    counts = {}
    if stimulus is not None:
        shape = np.shape(stimulus)
        if len(shape) != 3 or shape[2] != m:
            raise DeviceError(f"trials: stimulus shape {shape} is not (trials, steps, m={m})")
        counts["stimulus"] = shape[0]
    if rates is not None and np.ndim(rates) == 2:
        counts["rates"] = np.shape(rates)[0]
    if seed is not None and np.ndim(seed) == 1:
        counts["seed"] = np.shape(seed)[0]
    if not counts:
        raise DeviceError("trials: nothing says how many trials: give a stimulus (trials, steps, m), "
                          "rates (trials, m) or seeds (trials,)")
    if len(set(counts.values())) > 1:
        raise DeviceError("trials: the batches disagree on the number of trials: "
                          + ", ".join(f"{k} has {v}" for k, v in counts.items()))
    trials = next(iter(counts.values()))
    if trials < 1:
        raise DeviceError("trials: a batch needs at least one trial")
    return trials


def _per_trial(name, value, trials, ndim):
    """`value` for each of `trials` trials: a batch (ndim + 1 dimensions) as it is, else repeated."""
    if value is None:
        return [None] * trials
    arr = np.asarray(value)
    if arr.ndim == ndim + 1:
        return list(arr)
    if arr.ndim != ndim:
        raise DeviceError(f"trials: {name} has {arr.ndim} dimensions; allowed {ndim} (every trial) "
                          f"or {ndim + 1} (one per trial)")
    return [value] * trials


def stack_trials(results: list[Recording]) -> Recording:
    """One `Recording` of a run of trials from the recordings of its trials (in order)."""
    def stacked(key):
        values = [getattr(r, key) for r in results]
        return None if values[0] is None else np.stack(values)
    last = results[-1]
    return Recording(spikes=stacked("spikes"), weights=last.weights, v=stacked("v"), i=stacked("i"),
                     input_spikes=stacked("input_spikes"), inputs=stacked("inputs"), trials=len(results),
                     neurons=last.neurons, counts=stacked("counts"), step_count=last.step_count,
                     extras=dict(last.extras))


def check_record_neurons(neurons: ArrayLike | None, n: int) -> np.ndarray | None:
    """`record_neurons` as an ascending int64 array of distinct neurons 0 .. n-1 (None: all)."""
    if neurons is None:
        return None
    try:
        arr = np.asarray(neurons)
    except Exception as exc:  # ragged lists and the like
        raise DeviceError(f"record_neurons: not a list of neuron numbers ({exc})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise DeviceError(f"record_neurons: shape {arr.shape}; give a non-empty list of neuron numbers")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise DeviceError(f"record_neurons: dtype {arr.dtype} is not an integer type")
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise DeviceError(f"record_neurons: neuron {int(arr[bad][0])} is out of range: the network has "
                          f"neurons 0..{n - 1}")
    out = np.unique(arr.astype(np.int64))
    if out.size != arr.size:
        raise DeviceError("record_neurons: a neuron is named twice")
    return out


def select_neurons(rec: Recording, neurons: np.ndarray | None, counts: bool) -> Recording:
    """Keep only `neurons`' columns of a recording's spikes, v and i (all when None); with
    `counts`, replace the spikes by each recorded neuron's spike count over the run."""
    if neurons is not None:
        for key in ("spikes", "v", "i"):
            value = getattr(rec, key)
            if value is not None:
                setattr(rec, key, value[..., neurons])
        rec.neurons = neurons
    if counts and rec.spikes is not None:
        rec.step_count = rec.steps
        rec.counts = rec.spikes.sum(axis=-2, dtype=np.int64)
        rec.spikes = None
    return rec


#: Device names `open_device` understands, with a one-line description.
DEVICE_KINDS = {
    "golden": "the bit-exact golden model, in-process (any size)",
    "rtl": "the simulated board: the whole gateware under Verilator behind a pty, driven over the wire "
           "protocol like a real board (built to fit the network)",
    "rtl-direct": "the core alone under Verilator through cocotb, no link (slower; for debugging the core)",
    "serial:PATH[@BAUD]": "a board on a serial port, e.g. serial:/dev/ttyUSB1@3000000 "
                          "(or the pty of `neurofabric sim-board`)",
}


#: Device names -> the "module:callable" that opens one. A module is imported only
#: when its device is opened, so importing the host imports neither the simulation
#: nor the serial code. A name ending in ":" is a prefix: its callable gets the
#: rest of the name, then the options.
DEVICE_OPENERS = {
    "golden": "neurofabric.host.device:open_golden",
    "rtl": "neurofabric.sim.board:SimulatedBoardDevice",
    "rtl-direct": "neurofabric.sim.rtl_device:RTLDevice",
    "serial:": "neurofabric.host.serial_device:open_serial_device",
}


def open_golden(**options: Any) -> GoldenDevice:
    """The golden model as a device (`open_device("golden")`); it has no options, and ignores any."""
    return GoldenDevice()


def _load_opener(target: str) -> Callable[..., Device]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def open_device(name: str, **options: Any) -> Device:
    """Open a device by name: "golden", "rtl", "rtl-direct" or "serial:PATH[@BAUD]".

    `options` go to the device's constructor (for "rtl": lanes, neurons,
    inputs, timeout...; for "serial:...": timeout, retries, period_cycles...).
    The names are `DEVICE_OPENERS`.
    """
    if name in DEVICE_OPENERS and not name.endswith(":"):
        return _load_opener(DEVICE_OPENERS[name])(**options)
    for prefix, target in DEVICE_OPENERS.items():
        if prefix.endswith(":") and name.startswith(prefix):
            return _load_opener(target)(name[len(prefix):], **options)
    known = ", ".join(DEVICE_KINDS)
    raise DeviceError(f"unknown device {name!r}; known devices: {known}")
