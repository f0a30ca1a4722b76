"""`RTLDevice` (`open_device("rtl-direct")`): the golden model's interface, run on
the Verilator model of the core alone, without the link (`open_device("rtl")`
is the whole simulated board, sim/board.py).

Each `run()` writes the network, the device state (with the stimulus
generator's state g) and the stimulus (host spikes and rates) to a temporary
folder as .npz, runs the cocotb job `sim.rtl_job_cocotb` on a Verilator build
of the core in a subprocess (built once per configuration and cached in rtl/ of
the cache folder), and reads back the recording, the state the core ended with
and g, so state persists from run to run as spec section 4 asks. The device
keeps the seed: `reset_state()` returns g to it.
The core is sized for the network: n and m rounded up to a power of two (n at
least `lanes`), with the network's bit widths.
"""

import logging
import tempfile
from pathlib import Path

import numpy as np

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host.device import Capabilities, Device
from neurofabric.host.errors import DeviceError
from neurofabric.host.golden import Recording

from .verilator import core_model, run_cocotb

__all__ = ["RTLDevice", "core_config_for"]

logger = logging.getLogger(__name__)

STATE_KEYS = ("v", "i", "r", "s", "x", "y")


def _pow2(value, minimum):
    size = max(1, minimum)
    while size < value:
        size *= 2
    return size


def core_config_for(network, lanes=4):
    """The core configuration the RTL device builds for `network` (`DeviceError` when none fits)."""
    n, m = _pow2(network.n, lanes), _pow2(network.m, 1)
    try:
        return CoreConfig(n=n, m=m, S=network.state_bits, W=network.weight_bits, T=network.trace_bits, lanes=lanes)
    except ValueError as exc:
        raise DeviceError(f"a network of n = {network.n} neurons, m = {network.m} inputs does not fit the core "
                          f"of rtl-direct, which rounds n and m up to powers of two (n = {n}, m = {m}): "
                          f"{exc}") from None


class RTLDevice(Device):
    """The core's generated Verilog under Verilator, bit-exact with the golden model."""

    def __init__(self, lanes=4, build_root=None):
        super().__init__()
        self.lanes = lanes
        self.build_root = build_root
        self._weights = None
        self._state = None
        self._model = None
        self._seed = 1        # the seed register (spec section 4: a reset sets g to it)
        self._gen_state = 1   # g

    def capabilities(self):
        return Capabilities(kind="rtl-direct", lanes=self.lanes)

    def _load(self, network):
        self._model = core_model(core_config_for(network, self.lanes), self.build_root)
        self._weights = network.weights.astype(np.int64).copy()
        self._state = None
        self._seed = self._gen_state = 1

    def _run(self, stimulus, record, snapshot_every, progress, rates, seed, *, record_neurons=None):
        net = self.network
        if seed is not None:
            self._seed = self._gen_state = int(seed)
        with tempfile.TemporaryDirectory(prefix="nf-rtl-") as tmp:
            tmp = Path(tmp)
            arrays = net.to_arrays()
            arrays["weights"] = self._weights
            np.savez(tmp / "network.npz", **arrays)
            job = {"spikes": stimulus.astype(np.uint8), "record": np.array(",".join(record)),
                   "snapshot_every": np.array(snapshot_every), "rates": np.asarray(rates, np.int64),
                   "gen_state": np.array(self._gen_state, np.int64)}
            if self._state is not None:
                job.update({f"state_{key}": value for key, value in self._state.items()})
            np.savez(tmp / "job.npz", **job)
            tests, failures, messages = run_cocotb(self._model, "neurofabric.sim.rtl_job_cocotb",
                                                   {"NF_RTL_JOB": str(tmp)}, test_dir=tmp / "run")
            if failures or not (tmp / "recording.npz").exists():
                raise DeviceError("RTL simulation failed: " + "; ".join(messages))
            with np.load(tmp / "recording.npz") as rec:
                out = {key: rec[key] for key in rec.files}
        self._weights = out["weights"].astype(np.int64)
        self._state = {key: out[f"state_{key}"].astype(np.int64) for key in STATE_KEYS}
        self._gen_state = int(out["gen_state"])
        if progress is not None:
            progress(stimulus.shape[0], stimulus.shape[0])
        recording = Recording(spikes=out["spikes"].astype(np.uint8), weights=self._weights.copy(),
                              input_spikes=stimulus.astype(np.uint8), v=out.get("v"), i=out.get("i"),
                              inputs=out.get("inputs"))
        if snapshot_every:
            recording.weight_snapshots = out["weight_snapshots"]
            recording.snapshot_steps = out["snapshot_steps"]
        recording.extras["step_cycles"] = out["step_cycles"]
        return recording

    def read_weights(self):
        self._need_network()
        return self._weights.copy()

    def reset_state(self):
        """State to 0 and g to the seed (spec section 4); the weights stay."""
        self._need_network()
        self._state = None
        self._gen_state = self._seed

    @property
    def gen_state(self):
        """The generator state g the next run starts from."""
        return self._gen_state
