"""Simulation control: `setup`, `run`, `run_until`, `reset`, `end` and the state queries."""

from __future__ import annotations

import logging
import numbers

from pyNN import common
from pyNN.common.control import DEFAULT_MIN_DELAY, DEFAULT_TIMESTEP
from pyNN.recording import get_io

from neurofabric.host.device import Device
from neurofabric.host.errors import DeviceError, NetworkError
from neurofabric.host.generator import check_seed
from neurofabric.host.network import Network
from neurofabric.host.units import check_tolerance

from . import simulator
from .engine import Engine, PyNNReport
from .errors import UnsupportedError

__all__ = ["setup", "end", "run", "run_until", "run_for", "reset", "initialize", "get_current_time",
           "get_time_step", "get_min_delay", "get_max_delay", "num_processes", "rank", "quantisation_report",
           "core_network"]

logger = logging.getLogger(__name__)

#: Arguments of other backends' `setup()` that mean nothing on the core (threads, verbosity, ...).
IGNORED_SETUP_ARGUMENTS = ("threads", "debug", "quit_on_end", "verbosity", "t_flush", "label", "filename",
                           "file", "rank", "num_processes", "use_cython", "spike_precision")


def setup(timestep=DEFAULT_TIMESTEP, min_delay=DEFAULT_MIN_DELAY, *, device: str | Device | None = None,
          device_options: dict | None = None, tolerance: float = 0.1, rng_seed: int | None = None, rng=None,
          **extra_params):
    """Start a new simulation (any earlier network is discarded).

    `timestep` in ms is the core's step. `device` is "golden" (the bit-exact
    model, the default), "rtl" (the simulated board), "serial:PATH[@BAUD]" (a
    board), or an open `neurofabric.Device`; `device_options` go to
    `open_device`. `tolerance` is the relative error the quantisation may
    make in any parameter before it is refused (0.1 = 10 %). `rng_seed`, or
    the seed of a `NumpyRNG` given as `rng`, seeds the core's stimulus
    generator (1 .. 2**32 - 1; default 1). `min_delay` must be the time step
    or "auto": the core delivers spikes one step later.
    """
    max_delay = extra_params.pop("max_delay", "auto")
    precision = extra_params.get("spike_precision", "on_grid")
    if precision != "on_grid":
        raise UnsupportedError(f"spike_precision={precision!r}: the core's spikes are on the time-step grid; "
                               "supported: 'on_grid'")
    unknown = set(extra_params) - set(IGNORED_SETUP_ARGUMENTS)
    if unknown:
        logger.info("setup(): ignoring %s (no meaning on neurofabric)", ", ".join(sorted(unknown)))
    common.setup(timestep, min_delay, max_delay=max_delay)
    if not (isinstance(timestep, numbers.Real) and timestep > 0):
        raise NetworkError(f"timestep = {timestep!r} ms: allowed a positive number of ms")
    if min_delay != "auto" and abs(min_delay - timestep) > 1e-9 * timestep:
        logger.info("setup(min_delay=%g): the core's delay between neurons is one step (%g ms)", min_delay,
                    timestep)
    if rng_seed is None and rng is not None:
        rng_seed = getattr(rng, "seed", None)
    seed = 1 if rng_seed is None else check_seed(rng_seed)
    state = simulator.state
    state.clear()
    state.dt = float(timestep)
    state.min_delay = state.dt if min_delay == "auto" else float(min_delay)
    state.max_delay = max_delay
    if device is None:
        device = state.default_device
        if device_options is None:
            device_options = state.default_device_options
    state.engine = Engine(state, device, device_options or {}, check_tolerance(tolerance), seed)
    return rank()


def end(compatible_output=True):
    """Write the files asked for with `record(..., to_file=...)` and release the device.

    Recorded data stay available (`get_data()` after `end()`).
    """
    state = simulator.state
    for population, variables, filename in state.write_on_end:
        if not state.running and not list(population.recorder.cache):
            logger.warning("end(): nothing was recorded for %s, so %s is not written", population.label, filename)
            continue
        population.write_data(get_io(filename), variables)
    state.write_on_end = []
    if state.engine is not None:
        state.engine.close()
        state.engine.ended = True


run, run_until = common.build_run(simulator)
run_for = run
reset = common.build_reset(simulator)
initialize = common.initialize
get_current_time, get_time_step, get_min_delay, get_max_delay, num_processes, rank = \
    common.build_state_queries(simulator)


def quantisation_report() -> PyNNReport:
    """What the integers change: every parameter as requested and as realised, the learning rule, the rates.

    Compiles the network as it is now if no run has. `report.lines()` is the text form.
    """
    engine = simulator.state.engine
    if engine is None:
        raise DeviceError("quantisation_report(): call setup() first")
    return engine.report()


def core_network() -> Network:
    """The integer `Network` the PyNN network compiles to (spec section 6), for neurofabric's other tools.

    Inputs are the spike sources (in the order they were created), then the
    neurons; `save_network` writes it for the command line. The stimulus
    (spike times, Poisson rates) is not part of it.
    """
    engine = simulator.state.engine
    if engine is None:
        raise DeviceError("core_network(): call setup() first")
    return engine.compile().network
