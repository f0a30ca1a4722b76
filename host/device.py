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

from .errors import DeviceError
from .golden import GoldenModel, Recording, check_snapshot_budget, check_stimulus
from .network import Network

__all__ = ["Capabilities", "Device", "GoldenDevice", "open_device", "open_golden", "DEVICE_KINDS", "DEVICE_OPENERS"]

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

    def run(self, stimulus: ArrayLike, steps: int | None = None, record: Iterable[Literal["v", "i"]] = (),
            snapshot_every: int = 0, progress: Callable[[int, int], object] | None = None) -> Recording:
        """Run `stimulus` (`(steps, m)` 0/1) from the current state.

        `steps` longer than the stimulus pads with silence; `record` may name
        "v" and "i"; `snapshot_every=K` keeps the weights every K steps.
        Snapshots beyond `golden.SNAPSHOT_BUDGET_BYTES` of memory are refused
        (`DeviceError`) here, on every device, before anything runs.
        """
        net = self._need_network()
        record = tuple(record)
        for key in record:
            if key not in ("v", "i"):
                raise DeviceError(f"record: unknown probe {key!r}; allowed: v, i")
        if isinstance(snapshot_every, numbers.Real) and snapshot_every < 0:
            raise DeviceError(f"snapshot_every = {snapshot_every} is out of range: allowed 0 or more")
        stim = check_stimulus(stimulus, net.m, steps)
        # A board reads the weights back for each snapshot and holds them all
        # until the run ends, as the golden model does: the same budget, checked
        # before a run that could take hours fails for memory at its end.
        snapshot_every = check_snapshot_budget(stim.shape[0], snapshot_every, (net.m + net.n, net.n))
        return self._run(stim, record, snapshot_every, progress)

    @abc.abstractmethod
    def _run(self, stimulus: np.ndarray, record: tuple[Literal["v", "i"], ...], snapshot_every: int,
             progress: Callable[[int, int], object] | None) -> Recording:
        """Backend part of `run`: `stimulus` is a checked bool `(steps, m)` array."""

    @abc.abstractmethod
    def read_weights(self) -> np.ndarray:
        """The current weights, `(m+n, n)`."""

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Set v, i, refractory counters, spikes and traces to 0; keep weights."""

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

    def _run(self, stimulus: np.ndarray, record: tuple[Literal["v", "i"], ...], snapshot_every: int,
             progress: Callable[[int, int], object] | None) -> Recording:
        return self.model.run(stimulus, record=record, snapshot_every=snapshot_every, progress=progress)

    def read_weights(self) -> np.ndarray:
        """The model's current weights as int64, `(m+n, n)`."""
        self._need_network()
        return self.model.weights.astype(np.int64)

    def reset_state(self) -> None:
        """Set the model's state to 0; the weights stay."""
        self._need_network()
        self.model.reset()


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
